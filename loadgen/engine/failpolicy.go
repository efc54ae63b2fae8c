package engine

import (
	"errors"
	"syscall"
	"time"

	"github.com/portstorm/portstorm/loadgen/metrics"
)

// FailPolicy says what a run does when connects to a destination fail at the target's side
// (refused, unreachable, timed out): back off, cap the failures per second, and give up on a
// target that has never accepted one connection. Without it every scheduled connect is made: a
// closed port on loopback answers each SYN with a RST in microseconds, so a dead target drew
// 595,978 refused connects in 15 s at full CPU, and a remote one, with --allow-remote, a SYN
// flood against a host that is down.
//
// The policy is pure: the state goes in with the time, a decision comes out; no clock, no lock.
// The engine keeps one destState per destination and one runState per run (failguard.go).
type FailPolicy struct {
	// BackoffAfter is how many fast failures in a row (refused, unreachable: the kernel's answer,
	// not a timeout) a destination may have before its connects back off.
	BackoffAfter int
	// Backoff is the first pause between connects to a destination backing off; it doubles with
	// every further failure, up to MaxBackoff. While a destination backs off, one connect at a time
	// per pause goes out; the first to succeed ends the backoff.
	Backoff, MaxBackoff time.Duration
	// MaxFailRate caps the failed connects per second to one destination, whatever their kind and
	// however they interleave with successes; 0 is no cap. Up to one second's worth may come at
	// once; beyond, connects wait for the budget (plus those already in flight).
	MaxFailRate float64
	// GiveUpAfter stops the run when nothing was ever established this long after the first
	// failure, or (GiveUpAttempts) after this many failures; 0 leaves that bound out.
	GiveUpAfter    time.Duration
	GiveUpAttempts int
}

// failBurst is how much of MaxFailRate may come at once: one second's worth.
const failBurst = time.Second

// failKind sorts a failed connect by what it says about the target.
type failKind uint8

const (
	// notTarget: the failure says nothing about the target (a local limit, a stop).
	notTarget failKind = iota
	// fastFail: the target's host or network answered no at once: a RST (RFC 9293 section 3.10.7.2:
	// a SYN to a closed port is answered with a RST) or an ICMP unreachable.
	fastFail
	// slowFail: no answer within connect_timeout.
	slowFail
)

// kindOf sorts a connect's error.
func kindOf(err error) failKind {
	switch {
	case errors.Is(err, metrics.ErrCanceled):
		return notTarget
	case errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH),
		errors.Is(err, syscall.EHOSTDOWN), errors.Is(err, syscall.ENETDOWN):
		return fastFail
	case metrics.Classify(err) == metrics.ETIMEDOUT:
		return slowFail
	}
	return notTarget
}

// destState is one destination's state under the policy.
type destState struct {
	streak  int       // fast failures in a row
	next    time.Time // backing off: no connect before
	failTAT time.Time // the failure budget's theoretical arrival time (GCRA): each failure adds 1/rate
}

// admit decides whether a connect to the destination may start at now. It returns 0 when it may
// (the state then holds the connect's place: while backing off, the next waits a whole pause), or
// how long to wait before asking again; a result that ends the backoff comes sooner.
func (p *FailPolicy) admit(s *destState, now time.Time) time.Duration {
	var wait time.Duration
	if p.MaxFailRate > 0 {
		wait = s.failTAT.Add(-failBurst).Sub(now)
	}
	if s.backingOff(p) {
		wait = max(wait, s.next.Sub(now))
	}
	if wait > 0 {
		return wait
	}
	if s.backingOff(p) {
		s.next = now.Add(p.delay(s.streak))
	}
	return 0
}

// backingOff reports whether the destination's connects are paced by the backoff.
func (s *destState) backingOff(p *FailPolicy) bool { return s.streak >= max(p.BackoffAfter, 1) }

// delay is the pause after streak fast failures in a row: Backoff, doubled per failure beyond
// BackoffAfter, at most MaxBackoff.
func (p *FailPolicy) delay(streak int) time.Duration {
	d := p.Backoff
	for i := max(p.BackoffAfter, 1); i < streak && d < p.MaxBackoff; i++ {
		d *= 2
	}
	return min(d, p.MaxBackoff)
}

// failed records a failed connect of the given kind at now.
func (p *FailPolicy) failed(s *destState, k failKind, now time.Time) {
	if k == notTarget {
		return
	}
	if p.MaxFailRate > 0 {
		s.failTAT = later(s.failTAT, now).Add(time.Duration(float64(time.Second) / p.MaxFailRate))
	}
	if k != fastFail {
		return
	}
	s.streak++
	if s.backingOff(p) {
		s.next = later(s.next, now.Add(p.delay(s.streak)))
	}
}

// succeeded records an established connect: the target answers, the backoff ends. The failure
// budget stays as it is: it bounds failures however they interleave with successes.
func (s *destState) succeeded() {
	s.streak, s.next = 0, time.Time{}
}

// calm reports whether, as of now, a connect need not ask: no backoff, and the failure budget not
// spent. It stays true until the next failure, since the budget only grows with time.
func (p *FailPolicy) calm(s *destState, now time.Time) bool {
	return !s.backingOff(p) && (p.MaxFailRate <= 0 || !s.failTAT.Add(-failBurst).After(now))
}

// runState is the run's part of the policy: whether anything was ever established, and the first
// failure.
type runState struct {
	established bool
	failures    int
	first       time.Time // of the first failure at the target's side
}

// giveUp records a failure at the target's side and reports whether the run should stop: nothing
// was ever established and the first failure is GiveUpAfter old, or GiveUpAttempts failures were
// made.
func (p *FailPolicy) giveUp(r *runState, k failKind, now time.Time) bool {
	if k == notTarget || r.established {
		return false
	}
	if r.failures == 0 {
		r.first = now
	}
	r.failures++
	return p.GiveUpAfter > 0 && now.Sub(r.first) >= p.GiveUpAfter ||
		p.GiveUpAttempts > 0 && r.failures >= p.GiveUpAttempts
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// validate checks a policy built in code; the plan's keys are checked with file:line before.
func (p *FailPolicy) validate() error {
	switch {
	case p.BackoffAfter < 1:
		return errors.New("engine: backoff after needs at least 1 failure")
	case p.Backoff <= 0 || p.MaxBackoff < p.Backoff:
		return errors.New("engine: backoff needs 0 < backoff <= max backoff")
	case p.MaxFailRate < 0 || p.GiveUpAfter < 0 || p.GiveUpAttempts < 0:
		return errors.New("engine: negative failure cap or give-up bound")
	}
	return nil
}
