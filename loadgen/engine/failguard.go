package engine

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/portstorm/portstorm/loadgen/dial"
)

// Unreachable is why a run gave up: nothing was ever established, and the failures at the
// target's side went on past FailPolicy's grace.
type Unreachable struct {
	// First is when the first connect failed, At when the run gave up.
	First, At time.Time
	// Failures is how many connects had failed at the target's side by then.
	Failures int
	// Destination is where the first failure went, Err what it was.
	Destination string
	Err         error
}

func (u *Unreachable) Error() string {
	return fmt.Sprintf("target unreachable: nothing established %s after the first failed connect (%d failed); first error: %v",
		u.At.Sub(u.First).Round(time.Millisecond), u.Failures, u.Err)
}

func (u *Unreachable) Unwrap() error { return u.Err }

// failGuard applies a FailPolicy to a running engine: one state per destination behind its own
// lock, so destinations do not wait on each other, and flags read without a lock, so that while
// the target answers a connect costs two atomic loads more.
type failGuard struct {
	p    FailPolicy
	dsts []guardDest

	everEstablished atomic.Bool
	mu              sync.Mutex // run, unreachable
	run             runState
	unreachable     *Unreachable
	firstErr        error
	firstDst        string
	stop            chan struct{} // closed when the run gives up
}

type guardDest struct {
	mu sync.Mutex
	s  destState
	// calm: a connect need not ask (FailPolicy.calm); dirty: a success has a streak or backoff to
	// end.
	calm, dirty atomic.Bool
	// revived is closed, and replaced, when a success ends a backoff: the connects waiting it out
	// go at once instead of at their turn.
	revived chan struct{}
	_       [64]byte // keep neighbouring destinations' locks off one cache line
}

func newFailGuard(p FailPolicy, n int) *failGuard {
	g := &failGuard{p: p, dsts: make([]guardDest, n), stop: make(chan struct{})}
	for i := range g.dsts {
		g.dsts[i].calm.Store(true)
		g.dsts[i].revived = make(chan struct{})
	}
	return g
}

// stopped is closed when the run gives up; nil (never) without a guard.
func (g *failGuard) stopped() <-chan struct{} {
	if g == nil {
		return nil
	}
	return g.stop
}

// admit waits until a connect to destination di may start, and reports true; false when stopping
// closed first, or slot s (concurrency model; nil for an arrival) is no longer wanted: the connect
// is not made.
func (g *failGuard) admit(di uint64, stopping <-chan struct{}, s *slot) bool {
	if g == nil {
		return true
	}
	d := &g.dsts[di]
	if d.calm.Load() {
		return true
	}
	var wake chan struct{}
	if s != nil {
		wake = s.wake
	}
	var t *time.Timer
	defer func() {
		if t != nil {
			t.Stop()
		}
	}()
	for {
		d.mu.Lock()
		now := time.Now()
		wait := g.p.admit(&d.s, now)
		if wait <= 0 {
			d.calm.Store(g.p.calm(&d.s, now))
			d.mu.Unlock()
			return true
		}
		revived := d.revived
		d.mu.Unlock()
		if t == nil {
			t = time.NewTimer(wait)
		} else {
			t.Reset(wait)
		}
		select {
		case <-t.C:
		case <-revived:
		case <-stopping:
			return false
		case <-wake:
			if !s.wanted() {
				return false
			}
		}
	}
}

// established records an established connect to destination di.
func (g *failGuard) established(di uint64) {
	if g == nil {
		return
	}
	if !g.everEstablished.Load() {
		g.mu.Lock()
		g.run.established = true
		g.mu.Unlock()
		g.everEstablished.Store(true)
	}
	d := &g.dsts[di]
	if !d.dirty.Load() {
		return
	}
	d.mu.Lock()
	if d.s.backingOff(&g.p) {
		close(d.revived)
		d.revived = make(chan struct{})
	}
	d.s.succeeded()
	d.dirty.Store(false)
	d.calm.Store(g.p.calm(&d.s, time.Now()))
	d.mu.Unlock()
}

// failed records a failed connect to destination di (err as recorded: a stop's cut is
// metrics.ErrCanceled), and gives the run up when the policy says so.
func (g *failGuard) failed(di uint64, dst dial.Destination, err error, at time.Time) {
	if g == nil {
		return
	}
	k := kindOf(err)
	if k == notTarget {
		return
	}
	d := &g.dsts[di]
	d.mu.Lock()
	g.p.failed(&d.s, k, at)
	d.dirty.Store(d.s.streak > 0)
	d.calm.Store(g.p.calm(&d.s, at))
	d.mu.Unlock()
	if g.everEstablished.Load() {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.run.established || g.unreachable != nil {
		return
	}
	if g.firstErr == nil {
		g.firstErr, g.firstDst = err, dst.String()
	}
	if g.p.giveUp(&g.run, k, at) {
		g.unreachable = &Unreachable{First: g.run.first, At: at, Failures: g.run.failures, Destination: g.firstDst, Err: g.firstErr}
		close(g.stop)
	}
}

// gaveUp is why the run gave up, or nil.
func (g *failGuard) gaveUp() *Unreachable {
	if g == nil {
		return nil
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.unreachable
}
