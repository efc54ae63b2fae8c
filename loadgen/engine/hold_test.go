package engine

import (
	"context"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/portstorm/portstorm/loadgen/metrics"
)

// newParkEngine is an engine with what parking needs and nothing running: the test drives it.
func newParkEngine(cfg Config) *engine {
	if cfg.Destinations == nil {
		cfg.Destinations = simDst
	}
	e := &engine{
		cfg:      cfg,
		rec:      metrics.NewRecorder(time.Now(), 1),
		stopping: make(chan struct{}),
		parkWake: make(chan struct{}, 1),
		epoch:    time.Now(),
	}
	e.hardCtx, e.hardStop = context.WithCancel(context.Background())
	return e
}

// TestParkRace lands a ramp-down (the slot's target drops and it is poked) and a stop at every
// step of park. Whatever the step, the connection is finished exactly once, nothing is left in
// the queue of holds, and the reaper sleeps instead of taking the finished connection out again
// and again (which spun a core and kept the run from ending).
func TestParkRace(t *testing.T) {
	const hold = time.Second
	for _, tt := range []struct {
		name string
		step int
		stop bool // a stop instead of a ramp-down
	}{
		{"ramp-down before park", 0, false},
		{"ramp-down between queueing and publishing", 1, false},
		{"ramp-down after park queued", 2, false},
		{"stop before park", 0, true},
		{"stop between queueing and publishing", 1, true},
		{"stop after park queued", 2, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				e := newParkEngine(Config{Dialer: &simDialer{}, Hold: hold})
				defer e.hardStop()
				reaped := make(chan struct{})
				go func() { defer close(reaped); e.reap() }()
				stopped := false
				defer func() {
					if !stopped {
						close(e.stopping)
					}
					<-reaped
				}()
				var target atomic.Int64
				target.Store(1)
				s := &slot{wake: make(chan struct{}, 1), target: &target}
				sh := e.rec.Shard(1)
				sh.Attempt()
				h := e.connection(1, sh, time.Time{}, 0, s)
				if h == nil {
					t.Fatal("the connection was not returned for its hold")
				}
				parkStep = func(step int) {
					if step != tt.step {
						return
					}
					if tt.stop {
						close(e.stopping)
						stopped = true
						e.unparkAll()
						return
					}
					target.Store(0)
					e.poke(s)
				}
				defer func() { parkStep = nil }()
				var ends atomic.Int32
				e.park(h, func() { ends.Add(1) })
				synctest.Wait()
				if n := ends.Load(); n != 1 {
					t.Fatalf("the connection ended %d times, want once", n)
				}
				e.parkMu.Lock()
				head, tail := e.parkHead, e.parkTail
				e.parkMu.Unlock()
				if head != nil || tail != nil {
					t.Fatalf("a finished connection is still queued for its hold (head %p, tail %p)", head, tail)
				}
				// Past the hold's end: the reaper has nothing to do, and does nothing.
				time.Sleep(2 * hold)
				synctest.Wait()
				if n := ends.Load(); n != 1 {
					t.Fatalf("the connection ended %d times, want once", n)
				}
				tot := e.rec.Cut(time.Now(), 0)
				if tot.Closed != 1 || tot.Outcomes[metrics.OK] != 1 {
					t.Fatalf("closed %d, outcomes %v", tot.Closed, tot.Outcomes)
				}
			})
		})
	}
}
