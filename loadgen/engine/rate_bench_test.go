package engine

import (
	"context"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/portstorm/portstorm/loadgen/dial"
	"github.com/portstorm/portstorm/loadgen/metrics"
	"github.com/portstorm/portstorm/loadgen/schedule"
)

// memConn is an echo in memory, without a goroutine or a descriptor: what is written is read back
// at once. It measures what the generator spends per connection, and nothing of the kernel's.
type memConn struct {
	net.Conn
	buf []byte
}

func (c *memConn) Write(b []byte) (int, error) { c.buf = append(c.buf, b...); return len(b), nil }
func (c *memConn) Read(b []byte) (int, error) {
	n := copy(b, c.buf)
	c.buf = c.buf[:copy(c.buf, c.buf[n:])]
	return n, nil
}
func (*memConn) Close() error                     { return nil }
func (*memConn) SetDeadline(time.Time) error      { return nil }
func (*memConn) SetReadDeadline(time.Time) error  { return nil }
func (*memConn) SetWriteDeadline(time.Time) error { return nil }
func (*memConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (*memConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }

type memDialer struct{}

func (memDialer) Dial(context.Context, dial.Destination) (net.Conn, error) { return &memConn{}, nil }

// BenchmarkSendingConnMemory measures the generator's memory per connection sending 1 message/s
// (64 B, echoed; count: unlimited), for 20,000 connections, beside the same connections held idle
// (parked without a goroutine) measured in the same run: heap and stacks in use 2.5 s in, after
// a collection, over the connections. Run with -benchtime=1x; it takes about 8 s of wall time.
func BenchmarkSendingConnMemory(b *testing.B) {
	const conns = 20000
	measure := func(send *Send, hold time.Duration) float64 {
		runtime.GC()
		var before runtime.MemStats
		runtime.ReadMemStats(&before)
		var inUse float64
		_, err := Run(context.Background(), Config{
			Model: Concurrency, Ramp: schedule.Ramp{Start: conns, Stages: []schedule.Stage{{Duration: 3 * time.Second, Target: conns}}},
			Destinations: simDst, Dialer: memDialer{}, Send: send, Hold: hold, Close: dial.CloseFIN,
			Interval: 500 * time.Millisecond, GracefulStop: time.Second,
			OnSnapshot: func(s *metrics.Snapshot) {
				if s.Seq == 4 {
					runtime.GC()
					var m runtime.MemStats
					runtime.ReadMemStats(&m)
					inUse = float64(m.HeapInuse+m.StackInuse) - float64(before.HeapInuse+before.StackInuse)
				}
			},
		})
		if err != nil {
			b.Fatal(err)
		}
		return inUse / conns
	}
	for range b.N {
		held := measure(nil, time.Hour)
		sending := measure(&Send{Rate: 1, Unlimited: true, Bytes: 64, Echo: true}, 0)
		b.ReportMetric(held, "B/held-conn")
		b.ReportMetric(sending, "B/sending-conn")
		b.ReportMetric(sending/held, "sending/held")
	}
}
