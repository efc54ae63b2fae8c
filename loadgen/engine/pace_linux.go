package engine

import (
	"runtime"
	"time"

	"golang.org/x/sys/unix"
)

// sleep sleeps in the kernel until at, an absolute CLOCK_MONOTONIC deadline (the clock Go's
// monotonic readings come from), so that a signal interrupting it (Go preempts with SIGURG) costs
// no drift: it sleeps again to the same deadline.
func (p *pacer) sleep(at time.Time, _ time.Duration) {
	// The connections the loop just started wait for this P, which a thread sleeping in a system
	// call keeps until sysmon takes it back (20 µs to 10 ms later): let them run first.
	runtime.Gosched()
	d := time.Until(at) // not the caller's d: the yield above took some of it
	if d <= 0 {
		return
	}
	if unix.Prctl(unix.PR_SET_TIMERSLACK, 1, 0, 0, 0) != nil {
		p.fine = false
		return
	}
	if p.at0.IsZero() {
		// time.Now first: the monotonic reading after it is no earlier, so deadlines computed from
		// the pair are late by the gap between the two reads (well under a microsecond), never early.
		var ts unix.Timespec
		now := time.Now()
		if unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts) != nil {
			p.fine = false
			return
		}
		p.at0, p.mono0 = now, ts.Nano()
	}
	before := time.Now()
	deadline := unix.NsecToTimespec(p.mono0 + int64(at.Sub(p.at0)))
	for unix.ClockNanosleep(unix.CLOCK_MONOTONIC, unix.TIMER_ABSTIME, &deadline, nil) == unix.EINTR {
	}
	if time.Since(before) < d/2 {
		p.fine = false
	}
}
