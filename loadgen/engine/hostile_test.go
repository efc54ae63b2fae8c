//go:build linux

package engine

import (
	"context"
	"crypto/rand"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/portstorm/portstorm/internal/loopback"
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

// trickleEvery is far beyond the tests' io_timeout (200 ms), so that a reader starved by a busy
// machine still sees the deadline pass between two bytes.
const trickleEvery = 10 * time.Second

func trickle(c net.Conn, done <-chan struct{}) {
	defer c.Close()
	c.Read(make([]byte, 64))
	t := time.NewTicker(trickleEvery)
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

// arrivalPlan's timeouts and graceful stop are a minute: on a busy machine a slow connection is
// slow, not failed. A test whose point is a timeout sets a short one; one whose point is that
// nothing hangs asserts that the graceful stop cut nothing (Result.Aborted), not a duration.
func arrivalPlan(dsts []dial.Destination, rate float64, d time.Duration) Config {
	return Config{
		Model: Arrival, Ramp: schedule.Ramp{Start: rate, Stages: []schedule.Stage{{Duration: d, Target: rate}}},
		Destinations: dsts, Dialer: dial.NewKernel(dial.Options{ConnectTimeout: time.Minute}),
		IOTimeout: time.Minute, Send: &Send{Bytes: 64, Count: 1, Echo: true},
		MaxInFlight: 1000, Close: dial.CloseRST, GracefulStop: time.Minute, Interval: 100 * time.Millisecond,
	}
}

// TestHostileTargets: whatever the target does, the run ends without the graceful stop cutting a
// connection, every connection is classified (outcomes.other stays 0), counts are conserved and
// nothing hangs.
func TestHostileTargets(t *testing.T) {
	tests := []struct {
		name   string
		behave func(net.Conn, <-chan struct{})
		want   metrics.Outcome
		// ioTimeout, when set, is the point of the case: the answer never completes.
		ioTimeout time.Duration
		// bytesInPerConn, when > 0, caps what may have been read per established connection: the
		// answer asked for, plus at most one buffer the reader took ahead.
		bytesInPerConn uint64
	}{
		{"silent: accepts, never answers", silent, metrics.ETIMEDOUT, 200 * time.Millisecond, 0},
		{"garbage answers", garbage, metrics.EchoMismatch, 0, 64 + proto.BufferSize},
		{"10 MiB answer", huge, metrics.EchoMismatch, 0, 64 + proto.BufferSize},
		{"1 byte per 10 s", trickle, metrics.ETIMEDOUT, 200 * time.Millisecond, 64},
	}
	// Rated (talk.oneByOne rather than converse), the same targets end its conversations the same
	// way.
	for _, tt := range tests {
		for _, rated := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/rated %v", tt.name, rated), func(t *testing.T) {
				srv := startHostile(t, tt.behave)
				cfg := arrivalPlan(srv.dst(), 100, 500*time.Millisecond)
				if rated {
					cfg.Send.Rate = 100
				}
				if tt.ioTimeout > 0 {
					cfg.IOTimeout = tt.ioTimeout
				}
				res, err := Run(context.Background(), cfg)
				if err != nil {
					t.Fatal(err)
				}
				tot := res.Total
				checkTotals(t, tot)
				if tot.Outcomes[tt.want] != tot.Established || tot.Established == 0 {
					t.Fatalf("outcomes %v (examples %v), want all %d as %s", tot.Outcomes, tot.Examples, tot.Established, tt.want)
				}
				// The deadline covers the whole answer: a trickle does not extend it, so a connection
				// ends before a second byte comes (trickleEvery is 50 io_timeouts).
				if max := time.Duration(tot.Hist[metrics.Lifetime].Max()) * time.Microsecond; tt.ioTimeout > 0 && max >= trickleEvery {
					t.Errorf("a connection lived %v, io_timeout %v", max, cfg.IOTimeout)
				}
				if tt.bytesInPerConn > 0 && tot.BytesIn > tt.bytesInPerConn*tot.Established {
					t.Errorf("read %d bytes from %d connections: reads must be capped", tot.BytesIn, tot.Established)
				}
				if res.Aborted {
					t.Errorf("the graceful stop (%v) cut connections: one hung (run took %v)", cfg.GracefulStop, res.End.Sub(res.Start))
				}
			})
		}
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

// killAfter passes the first n dials through, then kills the target: every later dial starts once
// it is dead. An event (the nth connect), not a clock, so that on a busy machine too some
// connections are open when the target dies and some find it gone.
type killAfter struct {
	dial.Dialer
	n      int64
	dials  atomic.Int64
	kill   func()
	killed chan struct{}
	once   sync.Once
}

func (k *killAfter) Dial(ctx context.Context, dst dial.Destination) (net.Conn, error) {
	i := k.dials.Add(1)
	if i > k.n {
		<-k.killed
		return k.Dialer.Dial(ctx, dst)
	}
	c, err := k.Dialer.Dial(ctx, dst)
	if i == k.n {
		k.once.Do(func() { k.kill(); close(k.killed) })
	}
	return c, err
}

// TestTargetKilledMidRun: the target dies after 80 of 200 connects; the run still ends without
// the graceful stop cutting anything, with every failure classified.
func TestTargetKilledMidRun(t *testing.T) {
	srv, err := target.Start(context.Background(), target.Config{Mode: target.ModeHold})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	cfg := arrivalPlan([]dial.Destination{dial.NewDestination(netip.MustParseAddrPort(srv.Addrs()[0]))}, 200, time.Second)
	cfg.Send = nil
	cfg.Hold = 2 * time.Second
	cfg.Dialer = &killAfter{Dialer: cfg.Dialer, n: 80, kill: func() { srv.Close() }, killed: make(chan struct{})}
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
	if res.Aborted {
		t.Errorf("the graceful stop cut held connections the target's death should have ended (run took %v)", res.End.Sub(res.Start))
	}
}

// TestTargetNeverAccepts: a listener with a full accept queue drops SYNs; connects time out.
func TestTargetNeverAccepts(t *testing.T) {
	dst := dial.NewDestination(loopback.Unaccepted(t))
	cfg := arrivalPlan([]dial.Destination{dst}, 50, 400*time.Millisecond)
	cfg.Dialer = dial.NewKernel(dial.Options{ConnectTimeout: 300 * time.Millisecond}) // the point
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
	// That the timeouts do not stall the schedule is TestConnectTimeoutsDoNotStallSchedule's, in
	// virtual time: here, on a busy machine, the lag is the machine's.
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

// TestRatedHardStopLoopback: against a target that never answers, over a real socket, the hard
// stop at the graceful stop's end cuts the wait: the connection and its request are canceled, and
// nothing waits for the minute of io_timeout.
func TestRatedHardStopLoopback(t *testing.T) {
	srv := startHostile(t, silent)
	cfg := arrivalPlan(srv.dst(), 1, time.Second)
	cfg.Model, cfg.Ramp = Concurrency, schedule.Ramp{Start: 1, Stages: []schedule.Stage{{Duration: 200 * time.Millisecond, Target: 1}}}
	cfg.Send = &Send{Bytes: 64, Rate: 100, Unlimited: true, Echo: true}
	cfg.GracefulStop = 100 * time.Millisecond
	res, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	tot := res.Total
	checkTotals(t, tot)
	if !res.Aborted || tot.Outcomes[metrics.Canceled] != 1 || tot.Requests != 1 || tot.RequestOutcomes[metrics.Canceled] != 1 {
		t.Fatalf("aborted %v, outcomes %v, requests %d %v: want the one request and its connection canceled",
			res.Aborted, tot.Outcomes, tot.Requests, tot.RequestOutcomes)
	}
}
