package engine

import (
	"time"

	"github.com/portstorm/portstorm/loadgen/metrics"
)

// coarseSlack is how long before an arrival's intended time the pacer stops waiting on a Go timer
// and waits the rest on a kernel timer (pace_linux.go). Go timers wake late by up to a millisecond on an idle machine:
// when every P is idle the runtime waits for the next timer in epoll_wait, whose timeout is whole
// milliseconds, so a sub-millisecond wait is rounded up to 1 ms (runtime/netpoll_epoll.go). Paced
// that way, schedule_lag p50 was ~0.6 ms at any rate.
const coarseSlack = 2 * time.Millisecond

// pacer waits for the arrival loop's intended times: a Go timer (which a stop interrupts) for all
// but the last coarseSlack, then a kernel timer (Linux: a timerfd, pace_linux.go) that the
// goroutine waits on in Go's poller, which the kernel's hrtimers fire to within microseconds. The
// goroutine parks while it waits, so the thread and its P run other goroutines meanwhile (a sleep
// in a system call held the P until sysmon took it back, 20 µs to 10 ms later, and on 2 cores the
// rated loops waited for it). A timer costs no CPU while it waits, so a slow schedule stays cheap
// (no spinning); a fast one makes two system calls per wait.
type pacer struct {
	t *time.Timer
	// fine is false when the kernel timer cannot be used (it could not be made, or the clock
	// time.Now reads did not move while the goroutine waited: the virtual clock of a
	// testing/synctest bubble), after which the pacer waits on the Go timer alone.
	fine bool
	k    kernelTimer
	// also, when not nil, ends a wait as stop does.
	also <-chan struct{}
}

// newPacer returns a pacer; close releases its timer.
func newPacer() *pacer {
	p := &pacer{t: time.NewTimer(time.Hour), fine: true}
	p.t.Stop()
	return p
}

func (p *pacer) close() {
	p.t.Stop()
	p.k.close()
}

// until waits until at. It returns false when stop (or also) closed first; a stop is noticed while the
// timer runs and before every wait (a schedule whose gaps are all under coarseSlack never waits
// on the timer), not during the kernel's last coarseSlack.
func (p *pacer) until(at time.Time, stop <-chan struct{}) bool {
	for {
		select {
		case <-stop:
			return false
		case <-p.also:
			return false
		default:
		}
		d := time.Until(at)
		switch {
		case d <= 0:
			return true
		case p.fine && d <= coarseSlack:
			p.sleep(at)
		default:
			if p.fine {
				d -= coarseSlack
			}
			p.t.Reset(d)
			select {
			case <-p.t.C:
			case <-stop:
				return false
			case <-p.also:
				return false
			}
		}
	}
}

// Calibration of what this machine's pacing can do: calibrationArrivals arrivals,
// calibrationGap apart (about 25 ms in all), through the same pacer and goroutine start as a
// run's arrivals, against nothing.
const (
	calibrationArrivals = 100
	calibrationGap      = 250 * time.Microsecond
)

// PacingFloor measures the p99 of the lateness of arrivals paced with nothing else to do: the
// schedule_lag this machine shows at rest, below which no run can go. Judging a run's schedule_lag
// against it, rather than against a fixed figure, tells a generator that fell behind from a
// machine whose timers are coarse.
func PacingFloor() time.Duration {
	p := newPacer()
	defer p.close()
	h := metrics.NewHistogram()
	late := make(chan time.Duration)
	for range calibrationArrivals {
		at := time.Now().Add(calibrationGap)
		p.until(at, nil)
		go func(at time.Time) { late <- time.Since(at) }(at)
		_ = h.RecordValue(max((<-late).Microseconds(), metrics.HistLowest))
	}
	return time.Duration(h.ValueAtQuantile(99)) * time.Microsecond
}
