//go:build linux

package engine

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"sync/atomic"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"golang.org/x/sys/unix"

	"github.com/portstorm/portstorm/loadgen/dial"
	"github.com/portstorm/portstorm/loadgen/metrics"
	"github.com/portstorm/portstorm/loadgen/schedule"
)

// refusingDialer refuses every connect, each after rtt of virtual time (the RST's way back), until
// aliveAfter has passed since start (never, when zero); then it connects.
type refusingDialer struct {
	start      time.Time
	aliveAfter time.Duration
	rtt        time.Duration
	refused    atomic.Int64
	connected  atomic.Int64
}

func (d *refusingDialer) Dial(ctx context.Context, dst dial.Destination) (net.Conn, error) {
	if d.aliveAfter > 0 && time.Since(d.start) >= d.aliveAfter {
		d.connected.Add(1)
		return simConn{}, nil
	}
	time.Sleep(d.rtt)
	d.refused.Add(1)
	return nil, &net.OpError{Op: "dial", Net: "tcp", Addr: net.TCPAddrFromAddrPort(dst.AddrPort), Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
}

// testFailPolicy is the plan's default policy (plan.Defaults).
var testFailPolicy = FailPolicy{BackoffAfter: 3, Backoff: 10 * time.Millisecond, MaxBackoff: time.Second,
	MaxFailRate: 1000, GiveUpAfter: 2 * time.Second, GiveUpAttempts: 1000}

// TestDeadTargetGivesUp: against a target that refuses everything, connects back off and the run
// gives up about give_up_after past the first refusal, having made a few dozen connects, not one
// every millisecond per slot; every attempt is still accounted for.
func TestDeadTargetGivesUp(t *testing.T) {
	const seconds = 10
	tests := []struct {
		name string
		cfg  Config
		// maxDials bounds the connects made: the first wave (every slot, or the arrivals before
		// the third refusal) and about one per pause after.
		maxDials int64
	}{
		{"concurrency", Config{Model: Concurrency, Ramp: schedule.Ramp{Start: 50, Stages: []schedule.Stage{{Duration: seconds * time.Second, Target: 50}}}}, 50 + 10},
		{"arrival", Config{Model: Arrival, MaxInFlight: 200, Ramp: schedule.Ramp{Start: 1000, Stages: []schedule.Stage{{Duration: seconds * time.Second, Target: 1000}}}}, 3 + 15},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				d := &refusingDialer{start: time.Now(), rtt: time.Millisecond}
				cfg := tt.cfg
				cfg.Dialer = d
				p := testFailPolicy
				cfg.OnConnectFailure = &p
				res := runSim(t, cfg)
				tot := res.Total
				t.Logf("dials %d, attempted %d, failed %d, dropped %d, run %v", d.refused.Load(), tot.Attempted, tot.Failed, tot.Dropped, res.End.Sub(res.Start))
				u := res.Unreachable
				if u == nil {
					t.Fatalf("the run did not give up: %d refused connects in %v", d.refused.Load(), res.End.Sub(res.Start))
				}
				if !errors.Is(u, syscall.ECONNREFUSED) || u.Destination != simDst[0].String() {
					t.Errorf("gave up with %v at %s, want ECONNREFUSED at %s", u.Err, u.Destination, simDst[0])
				}
				if g := u.At.Sub(u.First); g < p.GiveUpAfter || g > p.GiveUpAfter+p.MaxBackoff+d.rtt {
					t.Errorf("gave up %v after the first refusal, want %v to %v", g, p.GiveUpAfter, p.GiveUpAfter+p.MaxBackoff)
				}
				if n := d.refused.Load(); n > tt.maxDials {
					t.Errorf("%d connects to a dead target, want at most %d", n, tt.maxDials)
				}
				if uint64(d.refused.Load()) != tot.Failed || tot.Outcomes[metrics.ECONNREFUSED] != tot.Failed {
					t.Errorf("%d refused connects, %d failed, outcomes %v", d.refused.Load(), tot.Failed, tot.Outcomes)
				}
				if res.Interrupted || res.End.Sub(res.Start) > p.GiveUpAfter+p.MaxBackoff+time.Second {
					t.Errorf("interrupted %v, run %v: want it over soon after giving up", res.Interrupted, res.End.Sub(res.Start))
				}
			})
		})
	}
}

// TestDeadTargetMeasured: without a policy (a plan that measures refusals), every scheduled
// connect is made to the end of the schedule.
func TestDeadTargetMeasured(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d := &refusingDialer{start: time.Now(), rtt: time.Millisecond}
		res := runSim(t, Config{Model: Concurrency, Dialer: d,
			Ramp: schedule.Ramp{Start: 5, Stages: []schedule.Stage{{Duration: 2 * time.Second, Target: 5}}}})
		if res.Unreachable != nil {
			t.Fatalf("gave up without a policy: %v", res.Unreachable)
		}
		if got := res.End.Sub(res.Start); got < 2*time.Second {
			t.Errorf("run %v, want the whole 2 s schedule", got)
		}
		// 5 slots, one refusal per millisecond each.
		if n := d.refused.Load(); n < 5*1990 {
			t.Errorf("%d refused connects, want every one of about 10,000", n)
		}
	})
}

// TestTargetRevivesUnderBackoff: a target that starts listening 1 s into the run is reached at the
// next probe; the backoff ends, every slot connects, and the run does not give up.
func TestTargetRevivesUnderBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d := &refusingDialer{start: time.Now(), rtt: time.Millisecond, aliveAfter: time.Second}
		p := testFailPolicy
		var firstOpen int64 = -1
		res := runSim(t, Config{Model: Concurrency, Dialer: d, Hold: 500 * time.Millisecond, OnConnectFailure: &p,
			Ramp:     schedule.Ramp{Start: 20, Stages: []schedule.Stage{{Duration: 4 * time.Second, Target: 20}}},
			Interval: 100 * time.Millisecond,
			OnSnapshot: func(s *metrics.Snapshot) {
				if firstOpen < 0 && s.Established > 0 {
					firstOpen = s.EndUS
				}
			}})
		tot := res.Total
		if res.Unreachable != nil {
			t.Fatalf("gave up on a target that came alive: %v", res.Unreachable)
		}
		// The first wave's refusals push the pause to its cap: the probe after 1 s finds it.
		if firstOpen < 0 || time.Duration(firstOpen)*time.Microsecond > time.Second+p.MaxBackoff+100*time.Millisecond {
			t.Errorf("first connection established in the interval ending at %d µs, want by %v", firstOpen, time.Second+p.MaxBackoff)
		}
		if tot.PeakActive != 20 {
			t.Errorf("peak %d, want all 20 slots connected once the backoff ended", tot.PeakActive)
		}
		// The 20 slots held ~0.5 s each for the ~2 s left: the backoff stays off after it ends.
		if n := d.connected.Load(); n < 20*3 {
			t.Errorf("%d connects after the target came alive, want every slot reconnecting", n)
		}
		if n := d.refused.Load(); n > 20+5 {
			t.Errorf("%d refused connects, want the first wave and a few probes", n)
		}
	})
}

// TestClosedPortGivesUp: the real thing on loopback: a port nobody listens on answers every
// connect with a RST; the run gives up with ECONNREFUSED long before its schedule ends, having made
// a bounded number of connects, whether they dial bare or through the poller. The port is held by
// a socket bound without SO_REUSEADDR that never listens: no other test can take it meanwhile,
// and connect's own port choice skips it (no connect reaches itself).
func TestClosedPortGivesUp(t *testing.T) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	addr := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(sa.(*unix.SockaddrInet4).Port))
	dst := []dial.Destination{dial.NewDestination(addr)}
	tests := []struct {
		name string
		send *Send
	}{{"bare", nil}, {"poller", &Send{Bytes: 16, Count: 1}}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := FailPolicy{BackoffAfter: 3, Backoff: time.Millisecond, MaxBackoff: 20 * time.Millisecond,
				MaxFailRate: 1000, GiveUpAfter: 200 * time.Millisecond, GiveUpAttempts: 1000}
			cfg := Config{Model: Concurrency, Destinations: dst, Dialer: dial.NewKernel(dial.Options{}), Send: tt.send,
				Ramp:             schedule.Ramp{Start: 20, Stages: []schedule.Stage{{Duration: time.Minute, Target: 20}}},
				OnConnectFailure: &p, Interval: 100 * time.Millisecond}
			res, err := Run(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			tot := res.Total
			checkTotals(t, tot)
			if res.Unreachable == nil || !errors.Is(res.Unreachable, syscall.ECONNREFUSED) {
				t.Fatalf("unreachable %v, want ECONNREFUSED (outcomes %v)", res.Unreachable, tot.Outcomes)
			}
			// Without the policy this plan makes tens of thousands of connects a second until the
			// minute is over. With it: the first wave, then one per pause of at most 20 ms until
			// 200 ms after the first refusal, at most 1000 (the attempts bound).
			if tot.Failed > 20+200 || res.End.Sub(res.Start) >= time.Minute {
				t.Errorf("%d refused connects over %v", tot.Failed, res.End.Sub(res.Start))
			}
		})
	}
}

// flakyDialer refuses every other connect, so that refusals never come in a row: no backoff, only
// the failure cap holds them back. Each connect takes rtt of virtual time.
type flakyDialer struct {
	n, refused atomic.Int64
	rtt        time.Duration
}

func (d *flakyDialer) Dial(ctx context.Context, dst dial.Destination) (net.Conn, error) {
	time.Sleep(d.rtt)
	if d.n.Add(1)%2 == 0 {
		return simConn{}, nil
	}
	d.refused.Add(1)
	return nil, &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
}

// TestFailuresCapped: a destination that refuses half its connects, never twice in a row, sees at
// most max_fail_rate refusals a second (plus one second's burst and those in flight), and the run
// goes on to its end.
func TestFailuresCapped(t *testing.T) {
	tests := []struct {
		name string
		rate float64
		// max refusals over the 2 s run
		max int64
	}{
		{"no cap", 0, 1 << 62},
		{"1000/s", 1000, 1000*(2+1) + 10},
		{"100/s", 100, 100*(2+1) + 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				d := &flakyDialer{rtt: time.Millisecond}
				p := testFailPolicy
				p.MaxFailRate = tt.rate
				res := runSim(t, Config{Model: Concurrency, Dialer: d, OnConnectFailure: &p,
					Ramp: schedule.Ramp{Start: 10, Stages: []schedule.Stage{{Duration: 2 * time.Second, Target: 10}}}})
				n := d.refused.Load()
				t.Logf("%d refused, %d established", n, res.Total.Established)
				if res.Unreachable != nil || res.End.Sub(res.Start) < 2*time.Second {
					t.Fatalf("gave up (%v) or ended early (%v) on a target that accepts half", res.Unreachable, res.End.Sub(res.Start))
				}
				if n > tt.max {
					t.Errorf("%d refusals in 2 s, want at most %d", n, tt.max)
				}
				// Without a cap: 10 slots, a connect a millisecond each, half refused.
				if tt.rate == 0 && n < 9000 {
					t.Errorf("%d refusals without a cap, want about 10,000", n)
				}
			})
		})
	}
}

// lastDialDialer refuses every connect and notes when the last one started.
type lastDialDialer struct {
	refusingDialer
	last atomic.Int64 // ns since start
}

func (d *lastDialDialer) Dial(ctx context.Context, dst dial.Destination) (net.Conn, error) {
	d.last.Store(int64(time.Since(d.start)))
	return d.refusingDialer.Dial(ctx, dst)
}

// TestRampDownEndsBackoffWaits: slots that wait out a dead destination's backoff when the ramp no
// longer wants them make no connect after the ramp-down.
func TestRampDownEndsBackoffWaits(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d := &lastDialDialer{refusingDialer: refusingDialer{start: time.Now(), rtt: time.Millisecond}}
		p := testFailPolicy
		p.GiveUpAfter, p.GiveUpAttempts = 0, 0 // keep running: only the ramp ends the waits
		res := runSim(t, Config{Model: Concurrency, Dialer: d, OnConnectFailure: &p,
			Ramp: schedule.Ramp{Start: 20, Stages: []schedule.Stage{
				{Duration: 1500 * time.Millisecond, Target: 20}, {Duration: time.Nanosecond, Target: 0}, {Duration: 3 * time.Second, Target: 0}}}})
		if last := time.Duration(d.last.Load()); last > 1500*time.Millisecond+time.Millisecond {
			t.Errorf("a connect started at %v, after the ramp-down at 1.5s", last)
		}
		if res.Total.Dropped == 0 {
			t.Errorf("no connect withdrawn at the ramp-down: %+v", res.Total.Counts)
		}
	})
}
