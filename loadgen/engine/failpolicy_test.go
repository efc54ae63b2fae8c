package engine

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/portstorm/portstorm/loadgen/metrics"
)

func TestFailKind(t *testing.T) {
	op := func(err error) error {
		return &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", err)}
	}
	tests := []struct {
		err  error
		want failKind
	}{
		{op(syscall.ECONNREFUSED), fastFail},
		{op(syscall.EHOSTUNREACH), fastFail},
		{op(syscall.ENETUNREACH), fastFail},
		{op(syscall.EHOSTDOWN), fastFail},
		{op(syscall.ENETDOWN), fastFail},
		{op(syscall.ETIMEDOUT), slowFail},
		{&net.OpError{Op: "dial", Net: "tcp", Err: os.ErrDeadlineExceeded}, slowFail},
		{fmt.Errorf("dial: %w", context.DeadlineExceeded), slowFail},
		{op(syscall.EADDRNOTAVAIL), notTarget},
		{op(syscall.EADDRINUSE), notTarget},
		{op(syscall.EMFILE), notTarget},
		{metrics.ErrCanceled, notTarget},
		{errors.New("something else"), notTarget},
	}
	for _, tt := range tests {
		if got := kindOf(tt.err); got != tt.want {
			t.Errorf("kindOf(%v) = %d, want %d", tt.err, got, tt.want)
		}
	}
}

func TestFailPolicyDelay(t *testing.T) {
	p := FailPolicy{BackoffAfter: 3, Backoff: 10 * time.Millisecond, MaxBackoff: time.Second}
	tests := []struct {
		streak int
		want   time.Duration
	}{
		{3, 10 * time.Millisecond},
		{4, 20 * time.Millisecond},
		{5, 40 * time.Millisecond},
		{9, 640 * time.Millisecond},
		{10, time.Second}, // 1280 ms, capped
		{1 << 30, time.Second},
	}
	for _, tt := range tests {
		if got := p.delay(tt.streak); got != tt.want {
			t.Errorf("delay(%d) = %v, want %v", tt.streak, got, tt.want)
		}
	}
}

// step is one event of a destination's life under the policy, at a virtual offset.
type step struct {
	at   time.Duration
	op   string        // admit, refused, timeout, local, ok
	want time.Duration // admit's answer
}

func TestFailPolicyScripts(t *testing.T) {
	ms := time.Millisecond
	backoff := FailPolicy{BackoffAfter: 3, Backoff: 10 * ms, MaxBackoff: 40 * ms}
	capped := FailPolicy{BackoffAfter: 3, Backoff: 10 * ms, MaxBackoff: 40 * ms, MaxFailRate: 10}
	tests := []struct {
		name  string
		p     FailPolicy
		steps []step
	}{
		{"below the streak nothing waits", backoff, []step{
			{0, "refused", 0}, {0, "refused", 0}, {0, "admit", 0}, {0, "admit", 0},
		}},
		{"the streak starts the backoff; one connect per pause", backoff, []step{
			{0, "refused", 0}, {0, "refused", 0}, {0, "refused", 0},
			{0, "admit", 10 * ms}, {5 * ms, "admit", 5 * ms},
			{10 * ms, "admit", 0},       // this one goes; it holds the next pause
			{10 * ms, "admit", 10 * ms}, // the next waits its turn
			{20 * ms, "admit", 0},
		}},
		{"each failure doubles the pause, up to the cap", backoff, []step{
			{0, "refused", 0}, {0, "refused", 0}, {0, "refused", 0}, // pause 10ms from 0
			{10 * ms, "admit", 0}, {11 * ms, "refused", 0}, // streak 4: 20ms from 11ms
			{20 * ms, "admit", 11 * ms}, {31 * ms, "admit", 0}, {32 * ms, "refused", 0}, // 40ms from 32ms
			{72 * ms, "admit", 0}, {73 * ms, "refused", 0}, // 80ms capped: 40ms from 73ms
			{100 * ms, "admit", 13 * ms}, {113 * ms, "admit", 0},
		}},
		{"a success ends the backoff", backoff, []step{
			{0, "refused", 0}, {0, "refused", 0}, {0, "refused", 0}, {0, "refused", 0},
			{0, "admit", 20 * ms}, {1 * ms, "ok", 0}, {1 * ms, "admit", 0}, {1 * ms, "admit", 0},
			// and the streak starts again from nothing
			{2 * ms, "refused", 0}, {2 * ms, "refused", 0}, {2 * ms, "admit", 0},
		}},
		{"timeouts and local errors do not back off", backoff, []step{
			{0, "timeout", 0}, {0, "timeout", 0}, {0, "timeout", 0}, {0, "timeout", 0},
			{0, "local", 0}, {0, "local", 0}, {0, "local", 0}, {0, "admit", 0},
		}},
		{"a timeout does not break a streak of refusals", backoff, []step{
			{0, "refused", 0}, {0, "refused", 0}, {0, "timeout", 0}, {0, "refused", 0}, {0, "admit", 10 * ms},
		}},
		{"the failure cap: a second's worth at once, then 1/rate each", capped, []step{
			{0, "timeout", 0}, {0, "timeout", 0}, {0, "timeout", 0}, {0, "timeout", 0}, {0, "timeout", 0},
			{0, "timeout", 0}, {0, "timeout", 0}, {0, "timeout", 0}, {0, "timeout", 0}, {0, "timeout", 0},
			{0, "admit", 0}, // ten failures: exactly the burst
			{0, "timeout", 0}, {0, "admit", 100 * ms}, {60 * ms, "admit", 40 * ms}, {100 * ms, "admit", 0},
		}},
		{"successes do not refill the failure budget", capped, []step{
			{0, "timeout", 0}, {0, "timeout", 0}, {0, "timeout", 0}, {0, "timeout", 0}, {0, "timeout", 0},
			{0, "timeout", 0}, {0, "timeout", 0}, {0, "timeout", 0}, {0, "timeout", 0}, {0, "timeout", 0},
			{0, "timeout", 0}, {1 * ms, "ok", 0}, {1 * ms, "admit", 99 * ms},
		}},
		{"the cap and the backoff: the longer wait", capped, []step{
			{0, "refused", 0}, {0, "refused", 0}, {0, "refused", 0}, {0, "admit", 10 * ms},
			{0, "timeout", 0}, {0, "timeout", 0}, {0, "timeout", 0}, {0, "timeout", 0}, {0, "timeout", 0},
			{0, "timeout", 0}, {0, "timeout", 0}, {0, "timeout", 0}, // 11 failures: 100ms over the burst
			{0, "admit", 100 * ms},
		}},
	}
	start := time.Unix(1_000_000, 0)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var s destState
			for i, st := range tt.steps {
				now := start.Add(st.at)
				switch st.op {
				case "admit":
					if got := tt.p.admit(&s, now); got != st.want {
						t.Fatalf("step %d: admit at %v = %v, want %v (state %+v)", i, st.at, got, st.want, s)
					}
				case "refused":
					tt.p.failed(&s, fastFail, now)
				case "timeout":
					tt.p.failed(&s, slowFail, now)
				case "local":
					tt.p.failed(&s, notTarget, now)
				case "ok":
					s.succeeded()
				default:
					t.Fatalf("step %d: unknown op %q", i, st.op)
				}
				// calm must never let through a connect that admit would hold back.
				if tt.p.calm(&s, now) {
					probe := s
					if w := tt.p.admit(&probe, now); w != 0 {
						t.Fatalf("step %d: calm, but admit says wait %v", i, w)
					}
				}
			}
		})
	}
}

func TestFailPolicyGiveUp(t *testing.T) {
	type ev struct {
		at   time.Duration
		kind failKind // or ok when established
		ok   bool
		want bool
	}
	s := time.Second
	tests := []struct {
		name   string
		p      FailPolicy
		events []ev
	}{
		{"after 2s of failures", FailPolicy{GiveUpAfter: 2 * s}, []ev{
			{0, fastFail, false, false}, {s, fastFail, false, false}, {2*s - 1, slowFail, false, false}, {2 * s, fastFail, false, true},
		}},
		{"the grace counts from the first failure, not the run's start", FailPolicy{GiveUpAfter: 2 * s}, []ev{
			{5 * s, fastFail, false, false}, {6 * s, fastFail, false, false}, {7 * s, fastFail, false, true},
		}},
		{"after N failures", FailPolicy{GiveUpAfter: time.Hour, GiveUpAttempts: 3}, []ev{
			{0, fastFail, false, false}, {0, slowFail, false, false}, {0, fastFail, false, true},
		}},
		{"local errors do not count", FailPolicy{GiveUpAttempts: 2}, []ev{
			{0, notTarget, false, false}, {3 * s, notTarget, false, false}, {3 * s, fastFail, false, false}, {3 * s, fastFail, false, true},
		}},
		{"never once something was established", FailPolicy{GiveUpAfter: 2 * s, GiveUpAttempts: 2}, []ev{
			{0, fastFail, false, false}, {0, 0, true, false}, {3 * s, fastFail, false, false}, {9 * s, fastFail, false, false},
		}},
		{"no bound, no give-up", FailPolicy{}, []ev{
			{0, fastFail, false, false}, {time.Hour, fastFail, false, false},
		}},
	}
	start := time.Unix(1_000_000, 0)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r runState
			for i, e := range tt.events {
				if e.ok {
					r.established = true
					continue
				}
				if got := tt.p.giveUp(&r, e.kind, start.Add(e.at)); got != e.want {
					t.Fatalf("event %d at %v: giveUp = %v, want %v", i, e.at, got, e.want)
				}
			}
		})
	}
}
