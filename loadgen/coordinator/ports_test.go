//go:build linux

package coordinator

import (
	"context"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/portstorm/portstorm/loadgen/isolate/nstest"
	"github.com/portstorm/portstorm/loadgen/metrics"
	"github.com/portstorm/portstorm/loadgen/plan"
	"github.com/portstorm/portstorm/loadgen/ports"
	"github.com/portstorm/portstorm/loadgen/report"
)

// The acceptance tests of the port observatory. Each runs in its own private network namespace
// (nstest), so that no other socket on the machine holds a port, a TIME_WAIT or a counter the test
// counts, and so that it may narrow ip_local_port_range without touching the host.
//
// Goroutines stay under the race detector's 8128: the engine runs one per concurrent slot and the
// built-in target one per held connection.

// portPlan is a plan built in code: a built-in target, a concurrency ramp to top over rise, held
// for flat.
func portPlan(mode string, listeners int, strategy, window string, sources []string, top float64, rise, flat time.Duration) *plan.Plan {
	p := &plan.Plan{
		Version: 1, Name: "ports",
		Target:     plan.Target{Builtin: &plan.Builtin{Mode: mode, Listeners: listeners}},
		Source:     plan.Source{Addresses: sources, Ports: plan.Ports{Strategy: strategy, Range: window, ExpectExhaustion: true}},
		Connection: plan.Connection{Hold: plan.Duration(time.Minute), Close: "rst", ConnectTimeout: plan.Duration(2 * time.Second)},
		Load: plan.Load{Stages: []plan.Stage{{Duration: plan.Duration(rise), Target: top}, {Duration: plan.Duration(flat), Target: top}},
			GracefulStop: plan.Duration(2 * time.Second)},
		Output: plan.Output{Interval: plan.Duration(250 * time.Millisecond)},
	}
	p.Defaults()
	return p
}

func runPlan(t *testing.T, p *plan.Plan, o Options) *report.Summary {
	t.Helper()
	return runPlanCtx(t, context.Background(), p, o)
}

// runPlanCtx is runPlan with a context, which a test cancels to stop the run once it saw what it
// waited for.
func runPlanCtx(t *testing.T, ctx context.Context, p *plan.Plan, o Options) *report.Summary {
	t.Helper()
	if errs := p.Validate(); len(errs) > 0 {
		t.Fatalf("invalid plan: %v", errs)
	}
	o.OutDir = t.TempDir()
	out, err := Run(ctx, compile(t, p), o)
	if err != nil {
		t.Fatal(err)
	}
	s := out.Summary
	if s.Ports == nil {
		t.Fatal("summary.json has no ports")
	}
	if c := s.Connections; c.Attempted != c.Established+c.Failed+c.Dropped {
		t.Fatalf("attempted %d != established %d + failed %d + dropped %d", c.Attempted, c.Established, c.Failed, c.Dropped)
	}
	return s
}

// TestExhaustionAtWindow: a 1000-port window (per-socket IP_LOCAL_PORT_RANGE), one destination:
// the first failure comes at exactly 1000 concurrent, EADDRNOTAVAIL from connect, 100% occupancy.
func TestExhaustionAtWindow(t *testing.T) {
	if !nstest.Run(t) {
		return
	}
	// A moderate pace and a long flat stage: on a loaded machine the goroutines that record a
	// connection can lag the kernel by tens of milliseconds.
	p := portPlan("hold", 1, "range", "40000-40999", nil, 1050, time.Second, 1500*time.Millisecond)
	p.Load.MaxConnectRate = 1500
	s := runPlan(t, p, Options{})
	x := s.Ports.Exhaustion
	if x == nil {
		t.Fatalf("no exhaustion recorded; ports %+v", s.Ports)
	}
	t.Logf("outcomes %v, first %v, examples %v, kernel %v", s.Outcomes, s.First, s.Examples, s.Ports.Kernel)
	if x.Concurrency != 1000 || x.Open != 1000 || x.Occupancy != 1 || x.Errno != "EADDRNOTAVAIL" || x.Syscall != "connect" {
		t.Errorf("exhaustion %+v, want concurrency 1000, 1000 open, occupancy 1, EADDRNOTAVAIL from connect", x)
	}
	// (The outcome counters' first.EADDRNOTAVAIL.concurrency reads the open count without the
	// observatory's correction for connects in flight at that instant, so it may be a little lower.)
	if f := s.First["EADDRNOTAVAIL"]; f.Concurrency > 1000 {
		t.Errorf("first EADDRNOTAVAIL at concurrency %d, above the window", f.Concurrency)
	}
	if s.Connections.PeakConcurrent != 1000 {
		t.Errorf("peak concurrent %d, want 1000", s.Connections.PeakConcurrent)
	}
	if d := s.Ports.Destinations; len(d) != 1 || d[0].PeakConcurrent != 1000 || d[0].Capacity != 1000 {
		t.Errorf("destinations %+v, want one with peak 1000 of capacity 1000", d)
	}
	if src := s.Ports.Sources; len(src) != 1 || src[0].UniquePorts != 1000 {
		t.Errorf("sources %+v, want one with 1000 unique ports", src)
	}
	if s.Ports.Range.Effective != 1000 || s.Ports.Range.From != "IP_LOCAL_PORT_RANGE" {
		t.Errorf("range %+v, want 1000 effective ports from IP_LOCAL_PORT_RANGE", s.Ports.Range)
	}
}

// TestStrategiesThreeDestinations: with a 1000-port range and three destinations, kernel and
// bind-no-port share each port across the destinations and reach 3000; bind reserves a port per
// socket and stops at 1000, with EADDRINUSE from bind().
func TestStrategiesThreeDestinations(t *testing.T) {
	tests := []struct {
		strategy string
		sources  []string
		peak     int64
		errno    string
		syscall  string
	}{
		{"kernel", nil, 3000, "EADDRNOTAVAIL", "connect"},
		{"bind-no-port", []string{"127.0.0.1"}, 3000, "EADDRNOTAVAIL", "connect"},
		{"bind", []string{"127.0.0.1"}, 1000, "EADDRINUSE", "bind"},
	}
	for _, tt := range tests {
		t.Run(tt.strategy, func(t *testing.T) {
			if !nstest.Run(t) {
				return
			}
			nstest.Sysctl(t, "ip_local_port_range", "40000 40999")
			// Just past the limit, so that few slots keep failing; the flat stage leaves time to get
			// there on a loaded machine.
			p := portPlan("hold", 3, tt.strategy, "", tt.sources, 3030, 2*time.Second, 6*time.Second)
			p.Load.MaxConnectRate = 3000
			s := runPlan(t, p, Options{})
			if s.Connections.PeakConcurrent != tt.peak {
				t.Errorf("peak concurrent %d, want %d", s.Connections.PeakConcurrent, tt.peak)
			}
			x := s.Ports.Exhaustion
			if x == nil || x.Errno != tt.errno || x.Syscall != tt.syscall || x.Open != 1000 || x.Occupancy != 1 {
				t.Fatalf("exhaustion %+v, want %s from %s at 1000 open (100%%)", x, tt.errno, tt.syscall)
			}
			if got := s.Outcomes[tt.errno]; got == 0 {
				t.Errorf("outcome %s never counted: %v", tt.errno, s.Outcomes)
			}
			if len(s.Ports.Destinations) != 3 {
				t.Fatalf("destinations %+v, want 3", s.Ports.Destinations)
			}
			var sum int
			for _, d := range s.Ports.Destinations {
				sum += d.PeakConcurrent
			}
			if int64(sum) < tt.peak {
				t.Errorf("peaks per destination add up to %d, want at least %d", sum, tt.peak)
			}
			if tt.strategy != "bind" && s.Ports.SharedPorts.Ports != 1000 {
				t.Errorf("shared ports %d, want every one of the 1000 shared by the three destinations", s.Ports.SharedPorts.Ports)
			}
			if tt.strategy == "bind" && s.Ports.SharedPorts.Ports != 0 {
				t.Errorf("bind shared %d ports, want none", s.Ports.SharedPorts.Ports)
			}
		})
	}
}

// TestKernelParityAndKnee: connect() takes ports of the range's first parity (even) only, until
// half the range is taken; past that, each connect walks the taken half first, and the connect p50
// above 50% occupancy is higher than below.
//
// Parity counts connections, not distinct ports: a port freed and taken again counts twice. So the
// run must end while nothing is connecting. Ended by its schedule, it did not on a loaded machine:
// slots whose connect() had not run yet when the stop came (a goroutine runs hundreds of
// milliseconds late at load 15 on 2 cores) took the even ports the stop's RSTs had just freed, and
// parity read up to 4493 even (reuse 493, every reuse recorded after the stop began). The run now
// ends on an event, the first interval with all 7600 held: every slot holds its connection, none is
// connecting, and the stop's closes free ports nobody takes.
func TestKernelParityAndKnee(t *testing.T) {
	if !nstest.Run(t) {
		return
	}
	nstest.Sysctl(t, "ip_local_port_range", "40000 47999")
	const n = 7600
	// The target closes at once (no goroutine per connection); the client keeps its socket, so the
	// port stays taken. Holds and the flat stage of 10 minutes: the event ends the run, however
	// slowly a busy machine gets there (a connect whose SYN an overflowing accept queue dropped
	// times out after 2 s and its slot tries again).
	p := portPlan("close", 1, "kernel", "", nil, n, 3*time.Second, 10*time.Minute)
	p.Connection.Hold = plan.Duration(10 * time.Minute)
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	var all atomic.Bool
	s := runPlanCtx(t, ctx, p, Options{OnSnapshot: func(s *metrics.Snapshot) {
		if s.Active == n && !all.Swap(true) {
			stop()
		}
	}})
	if !all.Load() {
		t.Fatalf("no interval ended with all %d connections held", n)
	}
	src := s.Ports.Sources
	if len(src) != 1 {
		t.Fatalf("sources %+v", src)
	}
	par := src[0].Parity
	// The occupancy of a connection is read when it is recorded, after connect() returned: on a
	// loaded machine a few connects in flight are not counted yet, hence the slack.
	if par.Preferred != "even" || par.SecondPass == nil || par.SecondPass.Occupancy < 0.45 {
		t.Errorf("parity %+v (second pass %+v): want even ports only until 50%% occupancy", par, par.SecondPass)
	}
	// Nothing closed while anything connected: each connection has a port of its own.
	if par.Even != 4000 || par.Odd != n-4000 || src[0].Reuse != 0 || src[0].UniquePorts != n {
		t.Errorf("even %d, odd %d, reuse %d, unique %d: want all 4000 even ports taken, then %d odd, none twice; outcomes %v, kernel %v",
			par.Even, par.Odd, src[0].Reuse, src[0].UniquePorts, n-4000, s.Outcomes, s.Ports.Kernel)
	}
	var below, above []int64
	for _, d := range s.Ports.ConnectByOccupancy {
		if d.Count == 0 {
			continue
		}
		if d.To <= 0.5 {
			below = append(below, d.P50)
		} else {
			above = append(above, d.P50)
		}
	}
	if len(below) == 0 || len(above) == 0 || median(above) <= median(below) {
		t.Errorf("connect p50 per occupancy decile: below 50%% %v, above %v; want higher above", below, above)
	}
	t.Logf("connect p50 below 50%%: %v µs, above: %v µs; second pass at %+v", below, above, par.SecondPass)
}

func median(v []int64) int64 {
	s := append([]int64(nil), v...)
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
	return s[len(s)/2]
}

// TestChurnTimeWait: a FIN storm leaves the client in TIME_WAIT, and connect() takes a 4-tuple
// over only once it is tcp_tw_reuse_delay old; an RST storm leaves no TIME_WAIT.
func TestChurnTimeWait(t *testing.T) {
	tests := []struct {
		close string
		tw    bool
	}{
		{"fin", true},
		{"rst", false},
	}
	for _, tt := range tests {
		t.Run(tt.close, func(t *testing.T) {
			if !nstest.Run(t) {
				return
			}
			// 1000 ports at 400 connections/s: the kernel comes back to a port after about 1.25 s.
			nstest.Sysctl(t, "ip_local_port_range", "40000 40999")
			p := &plan.Plan{Version: 1, Name: "churn",
				Target:     plan.Target{Builtin: &plan.Builtin{Mode: "echo"}},
				Connection: plan.Connection{Close: tt.close},
				Load: plan.Load{Model: "arrival", Start: 400, Stages: []plan.Stage{{Duration: plan.Duration(4 * time.Second), Target: 400}},
					MaxInFlight: 1000},
				Output: plan.Output{Interval: plan.Duration(500 * time.Millisecond)},
			}
			p.Defaults()
			s := runPlan(t, p, Options{})
			if s.Connections.Established < 1500 || s.Errors.Count != 0 {
				t.Fatalf("established %d, errors %d (%v): want a clean storm of 1600", s.Connections.Established, s.Errors.Count, s.Examples)
			}
			tw, ru := s.Ports.TimeWait, s.Ports.Reuse
			if tw.Samples == 0 {
				t.Fatalf("TIME_WAIT never sampled: %+v (warnings %v)", tw, s.Ports.Warnings)
			}
			if !tt.tw {
				if s.Ports.TimeWaitPeak > 5 {
					t.Errorf("RST churn: TIME_WAIT peak %d, want near zero", s.Ports.TimeWaitPeak)
				}
				return
			}
			if s.Ports.TimeWaitPeak == 0 {
				t.Errorf("FIN churn: no TIME_WAIT seen")
			}
			if ru.FourTuples == 0 {
				t.Fatalf("FIN churn: no 4-tuple reused; reuse %+v", ru)
			}
			// connect() never takes over a TIME_WAIT younger than tcp_tw_reuse_delay. A 4-tuple can be
			// free sooner only when its TIME_WAIT was killed by a RST (RFC 1337 assassination): on a
			// loaded machine the target's delayed ACK, overtaken by its FIN, draws a RST from the
			// target once the client's TIME_WAIT answers it (seen with tcpdump). Each such early
			// reuse is then witnessed by a RST the namespace sent, and by one TIME_WAIT fewer recycled.
			delay := ru.TWReuseDelayMS * 1000
			k := s.Ports.Kernel
			if delay <= 0 || ru.TupleInterval.P1 < delay || ru.Early > k["OutRsts"] || ru.Early*100 > ru.FourTuples {
				t.Errorf("4-tuple reuse interval p1 %dµs, early %d, RSTs sent %d; want p1 >= tcp_tw_reuse_delay %dµs and "+
					"early reuses only as TIME_WAITs killed by RSTs (at most 1%%)", ru.TupleInterval.P1, ru.Early, k["OutRsts"], delay)
			}
			// Every reuse took over a TIME_WAIT (TcpExt TWRecycled) or found it killed by a RST.
			if k["TWRecycled"]+k["OutRsts"] < ru.FourTuples {
				t.Errorf("TcpExt TWRecycled %d + RSTs %d < 4-tuple reuses %d: a reuse neither recycled from TIME_WAIT nor explained by a RST",
					k["TWRecycled"], k["OutRsts"], ru.FourTuples)
			}
			t.Logf("TIME_WAIT peak %d; 4-tuple reuse %d, min %dµs p1 %dµs p50 %dµs, early %d", s.Ports.TimeWaitPeak, ru.FourTuples,
				ru.TupleInterval.Min, ru.TupleInterval.P1, ru.TupleInterval.P50, ru.Early)
			t.Logf("kernel %v; warnings %q", k, s.Ports.Warnings)
		})
	}
}

// TestCensusMatches: unique ports per source and peak per (source, destination) equal a census of
// the sockets taken by sock_diag while every connection is held. The plan holds them for 10
// minutes and the census ends the run (an event): a collector that lags on a busy machine still
// takes it while they are held. Under the explicit strategy the observatory learns each port from
// the dialer that bound it, without a getsockname: the census checks those ports too.
func TestCensusMatches(t *testing.T) {
	if !nstest.Run(t) {
		return
	}
	tests := []struct{ strategy, window string }{
		{"bind-no-port", ""},
		{"explicit", "20000-29999"},
	}
	for _, tt := range tests {
		t.Run(tt.strategy, func(t *testing.T) { censusMatches(t, tt.strategy, tt.window) })
	}
}

func censusMatches(t *testing.T, strategy, window string) {
	const n = 600
	sources := []string{"127.0.0.2", "127.0.0.3"}
	p := portPlan("hold", 2, strategy, window, sources, n, time.Second, 10*time.Minute)
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	type pairKey struct {
		src netip.Addr
		dst netip.AddrPort
	}
	var mu sync.Mutex
	census := map[pairKey]int{}
	portsOf := map[netip.Addr]map[uint16]bool{}
	taken := false
	src := map[netip.Addr]bool{netip.MustParseAddr(sources[0]): true, netip.MustParseAddr(sources[1]): true}
	s := runPlanCtx(t, ctx, p, Options{OnSnapshot: func(s *metrics.Snapshot) {
		mu.Lock()
		defer mu.Unlock()
		if taken || s.Active != n {
			return
		}
		taken = true
		defer stop()
		err := ports.Dump(unix.AF_INET, 1<<ports.StateEstablished, func(k ports.Socket) {
			if !src[k.Local.Addr()] {
				return
			}
			census[pairKey{k.Local.Addr(), k.Remote}]++
			if portsOf[k.Local.Addr()] == nil {
				portsOf[k.Local.Addr()] = map[uint16]bool{}
			}
			portsOf[k.Local.Addr()][k.Local.Port()] = true
		})
		if err != nil {
			t.Error(err)
		}
	}})
	mu.Lock()
	defer mu.Unlock()
	if !taken {
		t.Fatalf("no interval ended with all %d connections open", n)
	}
	if len(s.Ports.Sources) != 2 || len(s.Ports.Destinations) != 4 {
		t.Fatalf("sources %d, destinations %d; want 2 and 4", len(s.Ports.Sources), len(s.Ports.Destinations))
	}
	for _, sr := range s.Ports.Sources {
		if got := len(portsOf[netip.MustParseAddr(sr.Address)]); sr.UniquePorts != got {
			t.Errorf("source %s: %d unique ports, census %d", sr.Address, sr.UniquePorts, got)
		}
	}
	for _, d := range s.Ports.Destinations {
		k := pairKey{netip.MustParseAddr(d.Source), netip.MustParseAddrPort(d.Destination)}
		if d.PeakConcurrent != census[k] || census[k] != n/4 {
			t.Errorf("%s -> %s: peak %d, census %d, want %d", d.Source, d.Destination, d.PeakConcurrent, census[k], n/4)
		}
	}
}

// TestCloseModes: every close mode ends cleanly against the built-in target, which plays its side,
// and TIME_WAIT lands where the mode says: the client for fin and half, the target for server,
// nowhere for rst.
func TestCloseModes(t *testing.T) {
	tests := []struct {
		close          string
		client, target bool // TIME_WAIT expected on that side
	}{
		{"fin", true, false},
		{"half", true, false},
		{"server", false, true},
		{"rst", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.close, func(t *testing.T) {
			if !nstest.Run(t) {
				return
			}
			p := &plan.Plan{Version: 1, Name: "close-" + tt.close,
				Target: plan.Target{Builtin: &plan.Builtin{Mode: "echo", Listeners: 2}},
				// One request: a stop cuts a conversation only between requests, and a cut one is closed
				// by the client, so that with two the share of TIME_WAIT on each side was the
				// machine's speed (151 of 200 on the client in server mode, on a busy machine).
				// Timeouts and graceful stop of minutes: slow is not failed.
				Connection: plan.Connection{Close: tt.close, Send: &plan.Send{Bytes: 32, Count: 1},
					ConnectTimeout: plan.Duration(2 * time.Minute), IOTimeout: plan.Duration(2 * time.Minute)},
				Load: plan.Load{Model: "arrival", Start: 200, Stages: []plan.Stage{{Duration: plan.Duration(time.Second), Target: 200}},
					MaxInFlight: 500, GracefulStop: plan.Duration(2 * time.Minute)},
				Output: plan.Output{Interval: plan.Duration(250 * time.Millisecond)},
			}
			p.Defaults()
			s := runPlan(t, p, Options{})
			if s.Connections.Established < 150 || s.Errors.Count != 0 {
				t.Fatalf("established %d, errors %d %v %v", s.Connections.Established, s.Errors.Count, s.Outcomes, s.Examples)
			}
			// "Some" is most connections; "none" allows a tenth.
			tw := s.Ports.TimeWait
			some := func(n int64) bool { return n > int64(s.Connections.Established)/2 }
			none := func(n int64) bool { return n <= int64(s.Connections.Established)/10 }
			if (tt.client && !some(tw.Peak)) || (!tt.client && !none(tw.Peak)) {
				t.Errorf("client TIME_WAIT peak %d of %d connections, want it on the client: %v", tw.Peak, s.Connections.Established, tt.client)
			}
			if (tt.target && !some(tw.TargetPeak)) || (!tt.target && !none(tw.TargetPeak)) {
				t.Errorf("target TIME_WAIT peak %d of %d connections, want it on the target: %v", tw.TargetPeak, s.Connections.Established, tt.target)
			}
		})
	}
}
