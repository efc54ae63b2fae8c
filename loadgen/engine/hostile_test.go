//go:build linux

package engine

import (
	"context"
	"crypto/rand"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
	"golang.org/x/sys/unix"

	"github.com/portstorm/portstorm/loadgen/dial"
	"github.com/portstorm/portstorm/loadgen/metrics"
	"github.com/portstorm/portstorm/loadgen/proto"
	"github.com/portstorm/portstorm/loadgen/schedule"
	"github.com/portstorm/portstorm/target"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// hostileServer accepts on loopback and hands every connection to behave, one goroutine each.
// close stops it and every connection, and waits for the goroutines.
type hostileServer struct {
	ln    net.Listener
	wg    sync.WaitGroup
	mu    sync.Mutex
	conns []net.Conn
	done  chan struct{}
}

func startHostile(t *testing.T, behave func(c net.Conn, done <-chan struct{})) *hostileServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &hostileServer{ln: ln, done: make(chan struct{})}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.conns = append(s.conns, c)
			s.mu.Unlock()
			s.wg.Add(1)
			go func() { defer s.wg.Done(); behave(c, s.done) }()
		}
	}()
	t.Cleanup(s.close)
	return s
}

// kill ends the server abruptly: listener closed, every connection reset.
func (s *hostileServer) kill() {
	s.ln.Close()
	s.mu.Lock()
	for _, c := range s.conns {
		c.(*net.TCPConn).SetLinger(0)
		c.Close()
	}
	s.mu.Unlock()
}

func (s *hostileServer) close() {
	select {
	case <-s.done:
		return
	default:
	}
	close(s.done)
	s.kill()
	s.wg.Wait()
}

func (s *hostileServer) dst() []dial.Destination {
	return []dial.Destination{dial.NewDestination(netip.MustParseAddrPort(s.ln.Addr().String()))}
}

// drainThen reads the request, then does what, until done.
func silent(c net.Conn, done <-chan struct{}) { <-done; c.Close() }

func garbage(c net.Conn, done <-chan struct{}) {
	buf := make([]byte, 64)
	for {
		n, err := c.Read(buf)
		if err != nil {
			c.Close()
			return
		}
		rand.Read(buf[:n])
		buf[0] ^= 0xff // never equal to the request, however unlucky the random bytes
		c.Write(buf[:n])
	}
}

func huge(c net.Conn, done <-chan struct{}) {
	defer c.Close()
	chunk := make([]byte, 64<<10)
	c.Read(make([]byte, 64))
	for written := 0; written < 10<<20; written += len(chunk) {
		c.SetWriteDeadline(time.Now().Add(2 * time.Second))
		if _, err := c.Write(chunk); err != nil {
			return
		}
	}
}

func trickle(c net.Conn, done <-chan struct{}) {
	defer c.Close()
	c.Read(make([]byte, 64))
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for range 10 {
		if _, err := c.Write([]byte{'x'}); err != nil {
			return
		}
		select {
		case <-t.C:
		case <-done:
			return
		}
	}
}

func arrivalPlan(dsts []dial.Destination, rate float64, d time.Duration) Config {
	return Config{
		Model: Arrival, Ramp: schedule.Ramp{Start: rate, Stages: []schedule.Stage{{Duration: d, Target: rate}}},
		Destinations: dsts, Dialer: dial.NewKernel(dial.Options{ConnectTimeout: 300 * time.Millisecond}),
		IOTimeout: 200 * time.Millisecond, Send: &Send{Bytes: 64, Count: 1, Echo: true},
		MaxInFlight: 1000, Close: dial.CloseRST, GracefulStop: 2 * time.Second, Interval: 100 * time.Millisecond,
	}
}

// TestHostileTargets: whatever the target does, the run ends on time, every connection is
// classified (outcomes.other stays 0), counts are conserved and nothing hangs.
func TestHostileTargets(t *testing.T) {
	tests := []struct {
		name   string
		behave func(net.Conn, <-chan struct{})
		want   metrics.Outcome
		// bytesInPerConn, when > 0, caps what may have been read per established connection: the
		// answer asked for, plus at most one buffer the reader took ahead.
		bytesInPerConn uint64
	}{
		{"silent: accepts, never answers", silent, metrics.ETIMEDOUT, 0},
		{"garbage answers", garbage, metrics.EchoMismatch, 64 + proto.BufferSize},
		{"10 MiB answer", huge, metrics.EchoMismatch, 64 + proto.BufferSize},
		{"1 byte per second", trickle, metrics.ETIMEDOUT, 64},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := startHostile(t, tt.behave)
			cfg := arrivalPlan(srv.dst(), 100, 500*time.Millisecond)
			res, err := Run(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			tot := res.Total
			checkTotals(t, tot)
			if tot.Outcomes[tt.want] != tot.Established || tot.Established == 0 {
				t.Fatalf("outcomes %v (examples %v), want all %d as %s", tot.Outcomes, tot.Examples, tot.Established, tt.want)
			}
			// Each connection ends within its io_timeout plus 100 ms.
			if max := time.Duration(tot.Hist[metrics.Lifetime].Max()) * time.Microsecond; max > cfg.IOTimeout+100*time.Millisecond {
				t.Errorf("a connection lived %v, io_timeout %v", max, cfg.IOTimeout)
			}
			if tt.bytesInPerConn > 0 && tot.BytesIn > tt.bytesInPerConn*tot.Established {
				t.Errorf("read %d bytes from %d connections: reads must be capped", tot.BytesIn, tot.Established)
			}
			if d := res.End.Sub(res.Start); d > 500*time.Millisecond+cfg.IOTimeout+time.Second {
				t.Errorf("run took %v", d)
			}
		})
	}
}

func checkTotals(t *testing.T, tot *metrics.Snapshot) {
	t.Helper()
	if tot.Attempted != tot.Established+tot.Failed+tot.Dropped {
		t.Errorf("attempted %d != established %d + failed %d + dropped %d", tot.Attempted, tot.Established, tot.Failed, tot.Dropped)
	}
	if tot.Closed != tot.Established || tot.Active != 0 {
		t.Errorf("closed %d of %d established, %d still active", tot.Closed, tot.Established, tot.Active)
	}
	var n uint64
	for _, v := range tot.Outcomes {
		n += v
	}
	if n != tot.Failed+tot.Closed {
		t.Errorf("outcomes sum %d, failed+closed %d", n, tot.Failed+tot.Closed)
	}
	if tot.Outcomes[metrics.Other] != 0 {
		t.Errorf("outcome other %d: %v", tot.Outcomes[metrics.Other], tot.Examples[metrics.Other])
	}
}

// TestTargetKilledMidRun: the target dies half way; the run still ends on time with every failure
// classified.
func TestTargetKilledMidRun(t *testing.T) {
	srv, err := target.Start(context.Background(), target.Config{Mode: target.ModeHold})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	cfg := arrivalPlan([]dial.Destination{dial.NewDestination(netip.MustParseAddrPort(srv.Addrs()[0]))}, 200, time.Second)
	cfg.Send = nil
	cfg.Hold = 2 * time.Second
	var once sync.Once
	cfg.OnSnapshot = func(s *metrics.Snapshot) {
		if s.EndUS >= 400_000 {
			once.Do(func() { srv.Close() })
		}
	}
	res, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	tot := res.Total
	checkTotals(t, tot)
	if tot.Outcomes[metrics.ECONNREFUSED] == 0 {
		t.Errorf("no ECONNREFUSED after the target died: %v", tot.Outcomes)
	}
	if tot.Outcomes[metrics.OK]+tot.Outcomes[metrics.EOF]+tot.Outcomes[metrics.ECONNRESET] == 0 {
		t.Errorf("connections open when the target died were not classified: %v %v", tot.Outcomes, tot.Examples)
	}
	if d := res.End.Sub(res.Start); d > 4*time.Second {
		t.Errorf("run took %v", d)
	}
}

// TestTargetNeverAccepts: a listener with a full accept queue drops SYNs; connects time out.
func TestTargetNeverAccepts(t *testing.T) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := unix.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	sa, _ := unix.Getsockname(fd)
	port := sa.(*unix.SockaddrInet4).Port
	dst := dial.NewDestination(netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(port)))
	cfg := arrivalPlan([]dial.Destination{dst}, 50, 400*time.Millisecond)
	cfg.Send = nil
	cfg.Hold = 100 * time.Millisecond
	res, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	tot := res.Total
	checkTotals(t, tot)
	if tot.Outcomes[metrics.ETIMEDOUT] == 0 {
		t.Fatalf("no connect timeouts against a full accept queue: %v", tot.Outcomes)
	}
	if max := time.Duration(tot.Hist[metrics.ScheduleLag].Max()) * time.Microsecond; max > 100*time.Millisecond {
		t.Errorf("schedule lag %v: timeouts must not stall the schedule", max)
	}
}

func TestImmediateRST(t *testing.T) {
	srv, err := target.Start(context.Background(), target.Config{Mode: target.ModeRST})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	cfg := arrivalPlan([]dial.Destination{dial.NewDestination(netip.MustParseAddrPort(srv.Addrs()[0]))}, 200, 300*time.Millisecond)
	res, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	tot := res.Total
	checkTotals(t, tot)
	// The RST may beat connect()'s return (a failed connect) or come on the first read or write.
	if got := tot.Outcomes[metrics.ECONNRESET] + tot.Outcomes[metrics.EOF]; got != tot.Attempted {
		t.Errorf("outcomes %v (examples %v), want all %d reset", tot.Outcomes, tot.Examples, tot.Attempted)
	}
}

// TestBarePathOneMoreP: while connections dial bare (blocking connects), the engine runs one P
// more than it found, and gives it back when the run ends; with requests to send, it does not.
func TestBarePathOneMoreP(t *testing.T) {
	srv, err := target.Start(context.Background(), target.Config{Mode: target.ModeSink})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	dsts := []dial.Destination{dial.NewDestination(netip.MustParseAddrPort(srv.Addrs()[0]))}
	for _, tt := range []struct {
		name  string
		send  *Send
		extra int
	}{
		{"bare", nil, 1},
		{"sending", &Send{Bytes: 8, Count: 1}, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			before := runtime.GOMAXPROCS(0)
			cfg := arrivalPlan(dsts, 200, 200*time.Millisecond)
			d, err := dial.New(dial.Options{ConnectTimeout: time.Second})
			if err != nil {
				t.Fatal(err)
			}
			cfg.Dialer, cfg.Send = d, tt.send
			var during atomic.Int64
			cfg.OnSnapshot = func(*metrics.Snapshot) { during.CompareAndSwap(0, int64(runtime.GOMAXPROCS(0))) }
			res, err := Run(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			checkTotals(t, res.Total)
			if got := int(during.Load()); got != before+tt.extra {
				t.Errorf("GOMAXPROCS %d during the run, want %d", got, before+tt.extra)
			}
			if got := runtime.GOMAXPROCS(0); got != before {
				t.Errorf("GOMAXPROCS %d after the run, want %d back", got, before)
			}
		})
	}
}
