// Package schedule is portstorm's pure load model: k6-style linear stages turned into a target
// concurrency or into the intended start time of every arrival. It has no clock: callers pass elapsed time.
package schedule

import (
	"math"
	"time"
)

// Stage ramps the target linearly from the previous stage's target (or Ramp.Start) to Target.
type Stage struct {
	Duration time.Duration
	Target   float64
}

// Ramp is a piecewise-linear target over time: concurrent connections for the concurrency model,
// connections per second for the arrival model.
type Ramp struct {
	Start  float64
	Stages []Stage
}

// Total is the length of the whole ramp.
func (r Ramp) Total() time.Duration {
	var t time.Duration
	for _, s := range r.Stages {
		t += s.Duration
	}
	return t
}

// Boundaries returns the end offset of every stage, in order.
func (r Ramp) Boundaries() []time.Duration {
	out := make([]time.Duration, len(r.Stages))
	var t time.Duration
	for i, s := range r.Stages {
		t += s.Duration
		out[i] = t
	}
	return out
}

// Stage returns the index of the stage running at elapsed; len(Stages) once the ramp has ended.
func (r Ramp) Stage(elapsed time.Duration) int {
	var t time.Duration
	for i, s := range r.Stages {
		t += s.Duration
		if elapsed < t {
			return i
		}
	}
	return len(r.Stages)
}

// Value is the target at elapsed: linear interpolation inside a stage, the last target after the end.
func (r Ramp) Value(elapsed time.Duration) float64 {
	from := r.Start
	var t time.Duration
	for _, s := range r.Stages {
		if elapsed < t+s.Duration {
			x := float64(elapsed-t) / float64(s.Duration)
			return from + (s.Target-from)*x
		}
		t += s.Duration
		from = s.Target
	}
	return from
}

// Concurrency is the number of connections the concurrency model keeps open at elapsed: the ramp's
// value rounded down (a tiny epsilon absorbs float error so that 999.9999999 counts as 1000).
func (r Ramp) Concurrency(elapsed time.Duration) int {
	if elapsed < 0 {
		elapsed = 0
	}
	return int(math.Floor(r.Value(elapsed) + 1e-9))
}

// Count is the number of arrivals the arrival model intends by elapsed: the area under the rate
// curve, ∫₀ᵗ rate(u) du, with rate in connections per second.
func (r Ramp) Count(elapsed time.Duration) float64 {
	from := r.Start
	var t time.Duration
	var n float64
	for _, s := range r.Stages {
		if elapsed <= t {
			break
		}
		d := s.Duration
		if elapsed < t+d {
			x := (elapsed - t).Seconds()
			slope := (s.Target - from) / d.Seconds()
			return n + from*x + slope*x*x/2
		}
		n += (from + s.Target) / 2 * d.Seconds()
		t += d
		from = s.Target
	}
	return n
}

// Arrivals returns an iterator over the intended start offsets of the arrival model.
func (r Ramp) Arrivals() *Arrivals {
	return &Arrivals{ramp: r, from: r.Start}
}

// Arrivals yields, in order, the intended start offset of every arrival of a Ramp.
//
// Arrival i (from 0) is intended at the t where the cumulative count N(t) = ∫₀ᵗ rate(u) du equals i,
// so a constant 1000/s for 10 s yields arrivals at 0, 1 ms, ..., 9.999 s: exactly 10000, and any ramp
// yields ⌈N(total)⌉ arrivals. Within a stage that starts at T with cumulative count C, starting rate a
// and slope m = (b−a)/D, N(T+x) = C + a·x + m·x²/2. Solving C + a·x + m·x²/2 = i for x with
// r = i − C gives x = (−a + √(a² + 2·m·r)) / m, rewritten as x = 2r / (a + √(a² + 2·m·r)), which is
// exact for m = 0 and free of cancellation when m is small (the form k6's ramping-arrival-rate
// executor derives in cal()). Offsets never decrease.
type Arrivals struct {
	ramp  Ramp
	next  int64         // index of the next arrival
	stage int           // stage holding the next arrival
	t0    time.Duration // start of that stage
	c0    float64       // cumulative count at t0
	from  float64       // rate at t0
}

// Next returns the intended offset of the next arrival, or ok=false once the ramp is over.
func (a *Arrivals) Next() (offset time.Duration, ok bool) {
	i := float64(a.next)
	for a.stage < len(a.ramp.Stages) {
		s := a.ramp.Stages[a.stage]
		d := s.Duration.Seconds()
		area := (a.from + s.Target) / 2 * d
		if i < a.c0+area {
			r := i - a.c0
			var x float64
			if r > 0 {
				slope := (s.Target - a.from) / d
				disc := a.from*a.from + 2*slope*r
				if disc < 0 {
					disc = 0
				}
				x = 2 * r / (a.from + math.Sqrt(disc))
			}
			off := a.t0 + time.Duration(x*float64(time.Second))
			if end := a.t0 + s.Duration; off >= end {
				// Float rounding can put the last arrival of a stage on its end; keep it inside.
				off = end - 1
			}
			a.next++
			return off, true
		}
		a.c0 += area
		a.t0 += s.Duration
		a.from = s.Target
		a.stage++
	}
	return 0, false
}

// Index is the number of arrivals already returned by Next.
func (a *Arrivals) Index() int64 { return a.next }
