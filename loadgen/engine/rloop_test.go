//go:build linux

package engine

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portstorm/portstorm/internal/fdcheck"
	"github.com/portstorm/portstorm/internal/loopback"
	"github.com/portstorm/portstorm/loadgen/dial"
	"github.com/portstorm/portstorm/loadgen/metrics"
	"github.com/portstorm/portstorm/loadgen/proto"
	"github.com/portstorm/portstorm/loadgen/schedule"
	"github.com/portstorm/portstorm/target"
)

// TestRatedLoopsAsGoroutines: the rated loops (rloop_linux.go) and the goroutine path (rate.go)
// give the same counts and outcomes, on loopback, for a rate held over connections that answer,
// for connections that close or reset at once, and for a target that never answers (the I/O
// timeout). The loops ran each case (loops started), and the goroutine path did not start them.
func TestRatedLoopsAsGoroutines(t *testing.T) {
	tests := []struct {
		name  string
		mode  target.Mode
		send  Send
		model Model
		check func(t *testing.T, tot *metrics.Snapshot)
		same  bool // the counts are the same by both paths (not when they depend on when the answers come)
	}{
		{"total rate, held", target.ModeEcho,
			Send{Bytes: 64, Echo: true, Unlimited: true, TotalRate: &schedule.Ramp{Start: 2000, Stages: []schedule.Stage{{Duration: 400 * time.Millisecond, Target: 2000}}}},
			Concurrency, func(t *testing.T, tot *metrics.Snapshot) {
				// The 800 intended are offered (but for the last few, when the stop comes first);
				// those due before the connections opened, or at the stop, are not written (no
				// connection was sending), by either path.
				if tot.RequestsOffered < 780 || tot.RequestsOffered > 800 || tot.Requests == 0 || tot.Requests > tot.RequestsOffered || tot.RequestOutcomes[metrics.OK] != tot.Requests {
					t.Errorf("offered %d written %d outcomes %v: want 800 offered, every one written answered", tot.RequestsOffered, tot.Requests, tot.RequestOutcomes)
				}
			}, false},
		{"per connection, pipelined, count", target.ModeEcho, Send{Bytes: 64, Echo: true, Rate: 500, Count: 50, Pipeline: 4}, Arrival,
			func(t *testing.T, tot *metrics.Snapshot) {
				if tot.Requests != 500 || tot.RequestOutcomes[metrics.OK] != 500 || tot.BytesIn != 500*64 {
					t.Errorf("written %d outcomes %v in %d B: want 500 answered", tot.Requests, tot.RequestOutcomes, tot.BytesIn)
				}
			}, true},
		{"ramp-down", target.ModeEcho, Send{Bytes: 64, Echo: true, Unlimited: true, Rate: 200}, Concurrency,
			func(t *testing.T, tot *metrics.Snapshot) {
				// 10 slots, 5 of them ramped down at 200 ms: their connections end ok, the others at
				// the stop.
				if tot.Closed != tot.Established || tot.Outcomes[metrics.OK] != tot.Closed || tot.RequestOutcomes[metrics.OK] != tot.Requests || tot.Requests == 0 {
					t.Errorf("closed %d, outcomes %v, requests %d %v", tot.Closed, tot.Outcomes, tot.Requests, tot.RequestOutcomes)
				}
			}, false},
		// Whether the server's FIN or its RST (to the request written after the FIN) is seen first
		// depends on when the request is written: either is the connection's and its request's end.
		{"server closes", target.ModeClose, Send{Bytes: 64, Echo: true, Rate: 100, Count: 5}, Arrival, closedByServer, false},
		{"server resets", target.ModeRST, Send{Bytes: 64, Echo: true, Rate: 100, Count: 5}, Arrival, closedByServer, false},
		{"never answers", target.ModeSink, Send{Bytes: 64, Echo: true, Rate: 100, Count: 5, Pipeline: 2}, Arrival,
			func(t *testing.T, tot *metrics.Snapshot) {
				if tot.RequestOutcomes[metrics.ETIMEDOUT] == 0 || tot.Outcomes[metrics.ETIMEDOUT] != 10 {
					t.Errorf("requests %v, connections %v: want timeouts", tot.RequestOutcomes, tot.Outcomes)
				}
			}, false}, // the goroutine path may write one more in the moment its reader fails
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, err := target.Start(context.Background(), target.Config{Mode: tt.mode})
			if err != nil {
				t.Fatal(err)
			}
			defer srv.Close()
			run := func(loops bool) *metrics.Snapshot {
				useLoops = loops
				defer func() { useLoops = true }()
				send := tt.send
				cfg := Config{Model: tt.model, Ramp: schedule.Ramp{Start: 10, Stages: []schedule.Stage{{Duration: 400 * time.Millisecond, Target: 10}}},
					Destinations: []dial.Destination{dial.NewDestination(netip.MustParseAddrPort(srv.Addrs()[0]))},
					Dialer:       dial.NewKernel(dial.Options{ConnectTimeout: time.Second}), Close: dial.CloseFIN, Send: &send,
					IOTimeout: 300 * time.Millisecond, MaxInFlight: 10, GracefulStop: 5 * time.Second, Hold: time.Hour}
				if tt.name == "ramp-down" {
					cfg.Ramp = schedule.Ramp{Start: 10, Stages: []schedule.Stage{{Duration: 200 * time.Millisecond, Target: 10},
						{Duration: time.Millisecond, Target: 5}, {Duration: 200 * time.Millisecond, Target: 5}}}
				}
				if tt.model == Arrival {
					cfg.Ramp = schedule.Ramp{Start: 100, Stages: []schedule.Stage{{Duration: 100 * time.Millisecond, Target: 100}}}
					cfg.Hold = 0
				}
				var started bool
				loopStarted = func() { started = true }
				defer func() { loopStarted = nil }()
				res, err := Run(context.Background(), cfg)
				if err != nil {
					t.Fatal(err)
				}
				if started != loops {
					t.Fatalf("loops started %v, want %v", started, loops)
				}
				tot := res.Total
				checkTotals(t, tot)
				if tt.check != nil {
					t.Run(fmt.Sprintf("loops %v", loops), func(t *testing.T) { tt.check(t, tot) })
				}
				return tot
			}
			g, l := run(false), run(true)
			if tt.same && (g.Requests != l.Requests || g.RequestsOffered != l.RequestsOffered) {
				t.Errorf("written %d and offered %d by the loops, %d and %d by goroutines", l.Requests, l.RequestsOffered, g.Requests, g.RequestsOffered)
			}
			if !tt.same {
				return
			}
			if !maps.Equal(outcomes(g.RequestOutcomes[:]), outcomes(l.RequestOutcomes[:])) {
				t.Errorf("request outcomes: loops %v, goroutines %v (%v / %v)", l.RequestOutcomes, g.RequestOutcomes, l.Examples, g.Examples)
			}
			if !maps.Equal(outcomes(g.Outcomes[:]), outcomes(l.Outcomes[:])) {
				t.Errorf("connection outcomes: loops %v, goroutines %v (%v / %v)", l.Outcomes, g.Outcomes, l.Examples, g.Examples)
			}
		})
	}
}

// outcomes is the outcomes that happened, without their counts.
func outcomes(counts []uint64) map[int]bool {
	m := map[int]bool{}
	for i, n := range counts {
		if n > 0 {
			m[i] = true
		}
	}
	return m
}

// closedByServer checks a run against a server that closes or resets every connection at once:
// each connection's one request failed, and so did the connection, with EOF or ECONNRESET.
func closedByServer(t *testing.T, tot *metrics.Snapshot) {
	for o, n := range tot.Outcomes {
		if n > 0 && metrics.Outcome(o) != metrics.EOF && metrics.Outcome(o) != metrics.ECONNRESET {
			t.Errorf("connection outcomes %v (%v): want EOF or ECONNRESET", tot.Outcomes, tot.Examples)
		}
	}
	// (a reset may come before the connect returns: that connection failed, and sent nothing)
	if tot.Closed+tot.Failed != 10 || tot.Requests != tot.Closed || tot.RequestErrors() != tot.Requests {
		t.Errorf("closed %d, failed %d, requests %d (%v): want 10 connections, each closed one's request failed",
			tot.Closed, tot.Failed, tot.Requests, tot.RequestOutcomes)
	}
}

// TestRatedLoopSeesCloseWithAnswer: a server that writes an answer delimited by the end of the
// stream (HTTP/1.0 with no Content-Length) and closes at once, so that the answer and the FIN
// come in one edge. The loop stops reading at a read shorter than its buffer, except when the
// event said the server closed: every answer is then whole (ok), none waits for the I/O timeout.
func TestRatedLoopSeesCloseWithAnswer(t *testing.T) {
	addr := loopback.Serve(t, func(c net.Conn) {
		b := make([]byte, 4096)
		for got := ""; !strings.Contains(got, "\r\n\r\n"); {
			n, err := c.Read(b)
			if err != nil {
				return
			}
			got += string(b[:n])
		}
		c.Write([]byte("HTTP/1.0 200 OK\r\n\r\nthe end of the stream ends this body"))
	})
	started := false
	loopStarted = func() { started = true }
	defer func() { loopStarted = nil }()
	res := runRatedHTTP(t, addr, 400, 100*time.Millisecond, 1, 1000)
	if !started {
		t.Fatal("the rated loops did not run the conversations")
	}
	tot := res.Total
	if tot.Requests != 40 || tot.RequestOutcomes[metrics.OK] != 40 {
		t.Errorf("written %d, outcomes %v (%v): want 40 answered whole", tot.Requests, tot.RequestOutcomes, tot.Examples)
	}
	if h := tot.Hist[metrics.RequestIntended]; h.Max() > (30 * time.Second).Microseconds() {
		t.Errorf("an answer took %d µs: it waited for the I/O timeout", h.Max())
	}
}

// TestRatedLoopSocketOnlyInItsSet: while a rated loop runs a conversation, the connection's socket
// is in exactly one epoll set, the loop's. Left in Go's poller as well (the net.Conn's
// registration), every answer also woke a runtime thread: a third of a request's system calls and
// context switches at 30,000 requests/s (docs/measurements.md "Rated loops in the kernel"). Every
// request is still answered, and the socket handed back is closed with the rest at the end. The
// run adds a P per loop (a loop waiting in the kernel keeps its P) and takes them back.
func TestRatedLoopSocketOnlyInItsSet(t *testing.T) {
	fdcheck.Check(t)
	procs, during := runtime.GOMAXPROCS(0), 0
	loopStarted = func() { during = runtime.GOMAXPROCS(0) }
	defer func() { loopStarted = nil }()
	sets, res := lookMidConversation(t, func(c net.Conn) (int, error) {
		return epollSetsOf(c.RemoteAddr().(*net.TCPAddr).Port, c.LocalAddr().(*net.TCPAddr).Port)
	})
	if sets != 1 {
		t.Errorf("the client's socket was in %d epoll sets during its conversation, want 1 (its loop's)", sets)
	}
	if want := procs + loopCount(procs); during != want {
		t.Errorf("GOMAXPROCS %d while the loops ran, want %d (%d and one per loop)", during, want, procs)
	}
	if after := runtime.GOMAXPROCS(0); after != procs {
		t.Errorf("GOMAXPROCS %d after the run, %d before", after, procs)
	}
	tot := res.Total
	if want := uint64(50); tot.Requests != want || tot.RequestOutcomes[metrics.OK] != want {
		t.Errorf("written %d, outcomes %v (%v): want %d answered", tot.Requests, tot.RequestOutcomes, tot.Examples, want)
	}
}

// TestRatedLoopOwnsItsThread: each loop runs on a thread of its own for the run, named
// portstorm-loop (the name is set on a thread the loop is locked to; were it not locked, the name
// would label whatever the thread ran next), and the thread has its name back after the run. A
// loop on the main thread leaves it unnamed (it is the process's name).
func TestRatedLoopOwnsItsThread(t *testing.T) {
	fdcheck.Check(t)
	onMain := loopsOnMainThread.Load()
	named, res := lookMidConversation(t, func(net.Conn) (int, error) { return threadsNamed(loopThreadName) })
	onMain = loopsOnMainThread.Load() - onMain
	if want := loopCount(runtime.GOMAXPROCS(0)) - int(onMain); named != want {
		t.Errorf("%d threads named %q during the conversations, want %d (one per loop, %d on the main thread)",
			named, loopThreadName, want, onMain)
	}
	after, err := threadsNamed(loopThreadName)
	if err != nil {
		t.Fatal(err)
	}
	if after != 0 {
		t.Errorf("%d threads named %q after the run, want none (a loop's thread has its name back)", after, loopThreadName)
	}
	if tot := res.Total; tot.RequestOutcomes[metrics.OK] != 50 {
		t.Errorf("outcomes %v (%v): want 50 answered", tot.RequestOutcomes, tot.Examples)
	}
}

// lookMidConversation runs 10 rated HTTP connections (runRatedHTTP: 200 requests/s, 50 in all)
// against a server that runs look once, with the server's end of the connection, when a client's
// socket is in the middle of its conversation (its third request); it returns look's answer and
// the run's result.
func lookMidConversation(t *testing.T, look func(net.Conn) (int, error)) (int, *Result) {
	t.Helper()
	type answer struct {
		n   int
		err error
	}
	var once sync.Once
	looked := make(chan answer, 1)
	addr := serveHTTPAnswers(t, func(n int, c net.Conn) {
		if n == 3 {
			once.Do(func() {
				n, err := look(c)
				looked <- answer{n, err}
			})
		}
	})
	res := runRatedHTTP(t, addr, 100, 50*time.Millisecond, 10, 200)
	var a answer
	select {
	case a = <-looked:
	default:
		t.Fatal("no connection got to its third request")
	}
	if a.err != nil {
		t.Fatal(a.err)
	}
	return a.n, res
}

// threadsNamed counts this process's threads named name (/proc/self/task/*/comm).
func threadsNamed(name string) (int, error) {
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return 0, err
	}
	n := 0
	for _, task := range tasks {
		comm, err := os.ReadFile("/proc/self/task/" + task.Name() + "/comm")
		if err != nil {
			continue // the thread ended meanwhile
		}
		if strings.TrimSpace(string(comm)) == name {
			n++
		}
	}
	return n, nil
}

// epollSetsOf counts the epoll sets of this process that hold the TCP socket from local port lp to
// remote port rp (by its inode, in /proc/net/tcp and each set's /proc/self/fdinfo).
func epollSetsOf(lp, rp int) (int, error) {
	tab, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		return 0, err
	}
	ino := ""
	for _, line := range strings.Split(string(tab), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) > 9 && strings.HasSuffix(f[1], fmt.Sprintf(":%04X", lp)) && strings.HasSuffix(f[2], fmt.Sprintf(":%04X", rp)) {
			ino = f[9]
		}
	}
	if ino == "" {
		return 0, fmt.Errorf("no socket from port %d to %d in /proc/net/tcp", lp, rp)
	}
	n, err := strconv.ParseUint(ino, 10, 64)
	if err != nil {
		return 0, err
	}
	want := fmt.Sprintf("ino:%x ", n)
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return 0, err
	}
	sets := 0
	for _, e := range ents {
		if l, _ := os.Readlink("/proc/self/fd/" + e.Name()); l != "anon_inode:[eventpoll]" {
			continue
		}
		info, err := os.ReadFile("/proc/self/fdinfo/" + e.Name())
		if err != nil {
			continue // closed meanwhile
		}
		if strings.Contains(string(info), want) {
			sets++
		}
	}
	return sets, nil
}

// runRatedHTTP opens connections to addr's HTTP server at perSec a second for d (the arrival model),
// each sending count requests at rate a second, and returns the run's result.
func runRatedHTTP(t *testing.T, addr string, perSec float64, d time.Duration, count int, rate float64) *Result {
	t.Helper()
	x, err := proto.Compile(proto.Spec{Protocol: proto.HTTP, HTTP: proto.HTTPSpec{Host: addr}})
	if err != nil {
		t.Fatal(err)
	}
	res, err := Run(context.Background(), Config{
		Model: Arrival, Ramp: schedule.Ramp{Start: perSec, Stages: []schedule.Stage{{Duration: d, Target: perSec}}},
		Destinations: []dial.Destination{dial.NewDestination(netip.MustParseAddrPort(addr))},
		Dialer:       dial.NewKernel(dial.Options{ConnectTimeout: time.Second}), Close: dial.CloseFIN,
		Send:      &Send{Count: count, Rate: rate, Exchange: x},
		IOTimeout: time.Minute, MaxInFlight: 100, GracefulStop: 5 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// serveHTTPAnswers serves addr's connections a fixed empty HTTP/1.1 answer for every request;
// onRequest (may be nil) runs before the n-th answer of each connection (from 1).
func serveHTTPAnswers(t *testing.T, onRequest func(n int, c net.Conn)) string {
	return loopback.Serve(t, func(c net.Conn) {
		b := make([]byte, 4096)
		got := ""
		for n := 0; ; {
			k, err := c.Read(b)
			if err != nil {
				return
			}
			got += string(b[:k])
			for strings.Contains(got, "\r\n\r\n") {
				got = got[strings.Index(got, "\r\n\r\n")+4:]
				n++
				if onRequest != nil {
					onRequest(n, c)
				}
				if _, err := c.Write([]byte("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")); err != nil {
					return
				}
			}
		}
	})
}

// TestRatedLoopSweepsOnRampDown: a loop looks at every connection's slot only when the ramp's
// target fell (or the run stops), not at every sweep: with 10,000 connections the look was most
// of the loop's CPU. A ramp-down still ends the connections of the slots it removes.
func TestRatedLoopSweepsOnRampDown(t *testing.T) {
	fdcheck.Check(t)
	addr := serveHTTPAnswers(t, nil)
	x, err := proto.Compile(proto.Spec{Protocol: proto.HTTP, HTTP: proto.HTTPSpec{Host: addr}})
	if err != nil {
		t.Fatal(err)
	}
	var visits atomic.Int64
	sweepVisit = func() { visits.Add(1) }
	defer func() { sweepVisit = nil }()
	started := false
	loopStarted = func() { started = true }
	defer func() { loopStarted = nil }()
	const conns, sweepsOver = 20, 60 // 600 ms of plateaus: 60 sweeps of 10 ms
	res, err := Run(context.Background(), Config{
		Model: Concurrency, Ramp: schedule.Ramp{Start: conns, Stages: []schedule.Stage{
			{Duration: 300 * time.Millisecond, Target: conns},
			{Duration: time.Millisecond, Target: conns / 2},
			{Duration: 300 * time.Millisecond, Target: conns / 2},
		}},
		Destinations: []dial.Destination{dial.NewDestination(netip.MustParseAddrPort(addr))},
		Dialer:       dial.NewKernel(dial.Options{ConnectTimeout: time.Second}), Close: dial.CloseFIN,
		Send:      &Send{Unlimited: true, Rate: 100, Exchange: x},
		Hold:      time.Hour,
		IOTimeout: time.Minute, MaxInFlight: 100, GracefulStop: 5 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	if !started {
		t.Fatal("the rated loops did not run the conversations")
	}
	tot := res.Total
	if tot.Established != conns {
		t.Errorf("established %d, want %d", tot.Established, conns)
	}
	// The ramp-down's half ended then: its connections wrote nothing after it.
	if got, want := tot.RequestOutcomes[metrics.OK], uint64(conns*30+conns/2*30); got > want+uint64(conns) {
		t.Errorf("%d requests answered, want about %d: the ramp-down did not end its connections", got, want)
	} else if got < want/2 {
		t.Errorf("%d requests answered, want about %d", got, want)
	}
	// A look at each connection when the target fell (it falls in steps over the ramp-down's
	// millisecond) and at the stop, against one every sweep before.
	if v := visits.Load(); v > conns*10 {
		t.Errorf("sweeps looked at connections %d times, want at most %d (%d connections, ~%d sweeps)", v, conns*10, conns, sweepsOver)
	}
}

// TestRatedLoopStepsThePump: with a total rate, the first rated loop hands out the rate's times
// once the loops started (pump.takeOver), and the dispatcher's goroutine no longer does: it woke a
// thread of its own 500 times a second for it. A time it hands its own connection only sets that
// connection's wake time (rconn.given). The counts stay what they were: every time that
// came before the stop is offered, every one written is answered, and none is written late for
// want of a connection once they are open.
func TestRatedLoopStepsThePump(t *testing.T) {
	fdcheck.Check(t)
	srv, err := target.Start(context.Background(), target.Config{Mode: target.ModeEcho})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	var started atomic.Bool
	var byLoop, byGoroutine, goroutineAfter atomic.Int64
	var queued atomic.Int64
	loopStarted = func() { started.Store(true) }
	readied = func() { queued.Add(1) }
	pumpStep = func(loop bool) {
		switch {
		case loop:
			byLoop.Add(1)
		case started.Load():
			goroutineAfter.Add(1)
		default:
			byGoroutine.Add(1)
		}
	}
	defer func() { loopStarted, pumpStep, readied = nil, nil, nil }()
	const conns, rate, run = 10, 2000, 400 * time.Millisecond
	res, err := Run(context.Background(), Config{
		Model: Concurrency, Ramp: schedule.Ramp{Start: conns, Stages: []schedule.Stage{{Duration: run, Target: conns}}},
		Destinations: []dial.Destination{dial.NewDestination(netip.MustParseAddrPort(srv.Addrs()[0]))},
		Dialer:       dial.NewKernel(dial.Options{ConnectTimeout: time.Second}), Close: dial.CloseFIN,
		Send: &Send{Bytes: 64, Echo: true, Unlimited: true, TotalRate: &schedule.Ramp{Start: rate,
			Stages: []schedule.Stage{{Duration: run, Target: rate}}}},
		Hold: time.Hour, IOTimeout: time.Minute, MaxInFlight: 10, GracefulStop: 5 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	if !started.Load() {
		t.Fatal("the rated loops did not run the conversations")
	}
	tot := res.Total
	checkTotals(t, tot)
	if goroutineAfter.Load() != 0 {
		t.Errorf("the dispatcher's goroutine stepped the pump %d times after the loops started", goroutineAfter.Load())
	}
	// 400 ms in steps of dispatchAhead/2 at most: ~200 steps, all but the first few by the loop.
	if n := byLoop.Load(); n < int64(run/dispatchAhead) {
		t.Errorf("the loop stepped the pump %d times (the goroutine %d before it started), want at least %d", n, byGoroutine.Load(), run/dispatchAhead)
	}
	want := uint64(rate * run / time.Second)
	if tot.RequestsOffered < want-want/50 || tot.RequestsOffered > want || tot.Requests == 0 ||
		tot.Requests > tot.RequestsOffered || tot.RequestOutcomes[metrics.OK] != tot.Requests {
		t.Errorf("offered %d, written %d, outcomes %v: want about %d offered, every one written answered",
			tot.RequestsOffered, tot.Requests, tot.RequestOutcomes, want)
	}
	// A time the loop hands its own connection sets its wake time: the connection is queued for
	// the loop when it opens, not for every time (then a lock, a kick and a service each).
	if n := queued.Load(); n > 2*conns {
		t.Errorf("connections queued for their loop %d times, want at most %d (%d connections)", n, 2*conns, conns)
	}
	// Those not written are the first few milliseconds', due before any connection joined.
	if short := tot.RequestsOffered - tot.Requests; short > want/20 {
		t.Errorf("%d of %d offered not written", short, tot.RequestsOffered)
	}
}

// TestRatedLoopHeap: the loop's heap of wake times keeps its order and every connection's index
// through wake times set later, earlier, to none, and connections taken out, in any order.
func TestRatedLoopHeap(t *testing.T) {
	tests := []struct {
		name  string
		conns int
		ops   int
		seed  uint64
	}{
		{"one", 1, 50, 1},
		{"few", 5, 500, 2},
		{"many", 300, 20000, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rnd := rand.New(rand.NewPCG(tt.seed, 0))
			l := &rloop{}
			cs := make([]*rconn, tt.conns)
			for i := range cs {
				cs[i] = &rconn{l: l, hi: -1}
			}
			t0 := time.Now()
			for range tt.ops {
				c := cs[rnd.IntN(len(cs))]
				switch op := rnd.IntN(10); {
				case op == 0:
					l.heapSet(c, time.Time{})
				case op == 1 && c.hi >= 0:
					l.heapRemove(c)
				default:
					l.heapSet(c, t0.Add(time.Duration(rnd.IntN(1000))*time.Microsecond))
				}
				for i, h := range l.heap {
					if h.hi != i {
						t.Fatalf("heap[%d] says it is at %d", i, h.hi)
					}
					if i > 0 && h.wake.Before(l.heap[(i-1)/2].wake) {
						t.Fatalf("heap[%d] (%v) before its parent (%v)", i, h.wake, l.heap[(i-1)/2].wake)
					}
				}
				in := 0
				for _, c := range cs {
					if c.hi >= 0 {
						in++
					}
				}
				if in != len(l.heap) {
					t.Fatalf("%d connections say they are in the heap of %d", in, len(l.heap))
				}
			}
		})
	}
}
