// Package search finds the capacity of a target along one load dimension (docs/search.md): the
// highest level at which the plan's thresholds hold. The algorithm here is pure: it decides which
// level to probe next from the outcomes so far and a clock, and a Prober carries the probes out
// (coordinator.Search runs each as a portstorm run). It imports nothing of portstorm's. It grows the level geometrically from Min while probes
// hold, bisects between the highest level that held and the lowest that failed until they are
// within Tolerance of each other, then confirms the answer with one longer probe; a confirmation
// that fails moves the answer down and the bisection goes on. It is bounded by MaxProbes (the
// confirming probe included: one is always kept for it) and MaxTime.
package search

import (
	"context"
	"math"
	"slices"
	"time"
)

// Config bounds and shapes a search.
type Config struct {
	// Min and Max bound the levels tried; the first probe is at Min.
	Min, Max float64
	// Growth multiplies the level after a probe that held (above 1).
	Growth float64
	// Tolerance is how close the highest level that held and the lowest that failed must be, as
	// a share of the first: (failed - held) / held <= Tolerance.
	Tolerance float64
	// Whole levels are whole numbers (concurrent connections).
	Whole bool
	// Probe and Confirm are the lengths of a probe and of the confirming probe; Settle is the
	// pause before every probe but the first. They are what the time budget is planned with.
	Probe, Confirm, Settle time.Duration
	// MaxProbes bounds the probes (the confirming ones included); MaxTime the search's time,
	// measured by the clock Run is given: a probe that would end past it is not started.
	MaxProbes int
	MaxTime   time.Duration
}

// Probe is one probe the search asks for.
type Probe struct {
	// Index counts probes from 1.
	Index int
	Level float64
	// Confirm marks the longer probe that confirms an answer.
	Confirm  bool
	Duration time.Duration
	// Settle is the pause the prober keeps before it starts (0 for the first probe).
	Settle time.Duration
}

// Outcome is how a probe ended.
type Outcome uint8

const (
	// Held: the probe ran its course and every threshold held.
	Held Outcome = iota
	// Failed: a threshold failed, or the client ran out of ports or descriptors at the level.
	Failed
	// Interrupted: the search was stopped (a signal) during the probe.
	Interrupted
	// Broken: the probe could not be carried out (the target could not start or was unreachable,
	// a worker died, a result could not be written): the search cannot go on.
	Broken
)

func (o Outcome) String() string {
	return [...]string{"held", "failed", "interrupted", "error"}[o]
}

// Prober carries out probes. Probe returns when the probe's connections have all ended.
type Prober interface {
	Probe(ctx context.Context, p Probe) Outcome
}

// ProberFunc is a Prober as a function.
type ProberFunc func(ctx context.Context, p Probe) Outcome

// Probe calls f.
func (f ProberFunc) Probe(ctx context.Context, p Probe) Outcome { return f(ctx, p) }

// Status is how a search ended.
type Status string

// The statuses of a search (summary.json's search.status).
const (
	// Converged: the highest level that held and the lowest that failed are within the tolerance,
	// and the answer held its confirming probe.
	Converged Status = "converged"
	// MaxHeld: even the highest level allowed held (the capacity is at least Max).
	MaxHeld Status = "max_held"
	// MinFailed: no level held, not even Min (or Min failed its confirming probe).
	MinFailed Status = "min_failed"
	// MaxProbes and MaxTime: the budget ran out before the answer was known within the tolerance.
	MaxProbes Status = "max_probes"
	MaxTime   Status = "max_time"
	// Stopped: a signal stopped the search.
	Stopped Status = "interrupted"
	// Error: a probe could not be carried out.
	Error Status = "error"
)

// Step is a probe and how it ended.
type Step struct {
	Probe
	Outcome Outcome
}

// Answer is what a search found.
type Answer struct {
	Status Status
	// Held is the highest level that held (HasHeld), Failed the lowest that failed above it
	// (HasFailed).
	Held, Failed       float64
	HasHeld, HasFailed bool
	// Confirmed says Held also held its confirming probe.
	Confirmed bool
	Steps     []Step
}

// Within is how close the answer is known: (Failed - Held) / Held, or -1 when one is missing.
func (a *Answer) Within() float64 {
	if !a.HasHeld || !a.HasFailed || a.Held <= 0 {
		return -1
	}
	return (a.Failed - a.Held) / a.Held
}

// Find searches with prober; clock gives the time since the search began (a fake in tests).
func Find(ctx context.Context, c Config, prober Prober, clock func() time.Duration) *Answer {
	s := &state{c: c, prober: prober, clock: clock, a: &Answer{}}
	s.run(ctx)
	return s.a
}

type state struct {
	c      Config
	prober Prober
	clock  func() time.Duration
	a      *Answer
	// lo, hi are the bracket: the highest level that held, the lowest that failed.
	lo, hi       float64
	hasLo, hasHi bool
	// limit is the status a budget stop gave, "" while the budget lasts.
	limit Status
	// overhead is the most a probe took beyond its settle and length so far.
	overhead time.Duration
}

// probe runs one probe and records it; ok is false when the search must end (interrupted, broken).
func (s *state) probe(ctx context.Context, level float64, confirm bool) (Outcome, bool) {
	if ctx.Err() != nil {
		s.a.Status = Stopped
		return Interrupted, false
	}
	p := Probe{Index: len(s.a.Steps) + 1, Level: level, Confirm: confirm, Duration: s.c.Probe}
	if confirm {
		p.Duration = s.c.Confirm
	}
	if len(s.a.Steps) > 0 {
		p.Settle = s.c.Settle
	}
	began := s.clock()
	out := s.prober.Probe(ctx, p)
	// What a probe takes beyond its settle and length (setting up, draining) is planned with too.
	s.overhead = max(s.overhead, s.clock()-began-p.Settle-p.Duration)
	if ctx.Err() != nil && out != Broken {
		out = Interrupted
	}
	s.a.Steps = append(s.a.Steps, Step{Probe: p, Outcome: out})
	switch out {
	case Interrupted:
		s.a.Status = Stopped
		return out, false
	case Broken:
		s.a.Status = Error
		return out, false
	}
	return out, true
}

// room says whether the budget leaves room for a probe (and, for one that is not the
// confirmation, for the confirmation after it); when it does not, it sets the budget's status.
func (s *state) room(confirm bool) bool {
	n, d := 1, s.c.Confirm+s.overhead
	if !confirm {
		n, d = 2, s.c.Probe+s.c.Settle+s.c.Confirm+2*s.overhead
	}
	if len(s.a.Steps) > 0 {
		d += s.c.Settle
	}
	switch {
	case len(s.a.Steps)+n > s.c.MaxProbes:
		s.limit = MaxProbes
	case s.c.MaxTime > 0 && s.clock()+d > s.c.MaxTime:
		s.limit = MaxTime
	default:
		return true
	}
	return false
}

func (s *state) run(ctx context.Context) {
	defer s.finish()
	if !s.grow(ctx) {
		return
	}
	for {
		if !s.hasLo {
			if s.hasHi {
				s.a.Status = MinFailed
			}
			return // else the budget allowed no probe: finish gives its status
		}
		if s.limit == "" && !s.bisect(ctx) {
			return
		}
		// Confirm the answer with the longer probe.
		if !s.room(true) {
			s.a.Status = s.limit
			return
		}
		level := s.lo
		out, ok := s.probe(ctx, level, true)
		if !ok {
			return
		}
		if out == Held {
			s.a.Confirmed = true
			switch {
			case s.limit != "":
				s.a.Status = s.limit
			case !s.hasHi:
				s.a.Status = MaxHeld
			default:
				s.a.Status = Converged
			}
			return
		}
		// The answer failed the longer probe: it is the lowest level known to fail now, and the
		// answer is the highest level below it that held.
		s.hi, s.hasHi = level, true
		s.hasLo = false
		for _, st := range s.a.Steps {
			if st.Outcome == Held && !st.Confirm && st.Level < s.hi && (!s.hasLo || st.Level > s.lo) {
				s.lo, s.hasLo = st.Level, true
			}
		}
	}
}

// grow probes from Min upwards, Growth times the level after each probe that held, until one
// fails or Max holds. It returns false when the search must end.
func (s *state) grow(ctx context.Context) bool {
	level := s.c.Min
	for {
		if !s.room(false) {
			return true
		}
		out, ok := s.probe(ctx, level, false)
		if !ok {
			return false
		}
		if out == Failed {
			s.hi, s.hasHi = level, true
			return true
		}
		s.lo, s.hasLo = level, true
		if level >= s.c.Max {
			return true
		}
		next := level * s.c.Growth
		if s.c.Whole {
			next = math.Ceil(next)
		}
		level = min(next, s.c.Max)
	}
}

// bisect narrows the bracket until it is within the tolerance (or the levels' resolution), the
// budget runs out, or the search must end (false).
func (s *state) bisect(ctx context.Context) bool {
	for s.hasLo && s.hasHi && !s.close() {
		mid, ok := s.mid()
		if !ok {
			return true
		}
		if !s.room(false) {
			return true
		}
		out, ok := s.probe(ctx, mid, false)
		if !ok {
			return false
		}
		if out == Held {
			s.lo = mid
		} else {
			s.hi = mid
		}
	}
	return true
}

// close says the bracket is within the tolerance.
func (s *state) close() bool {
	return s.hi-s.lo <= s.c.Tolerance*s.lo || s.c.Whole && s.hi-s.lo <= 1
}

// mid is the next level between lo and hi: their geometric mean (the bracket is a ratio, as the
// tolerance is), rounded to a whole number or to three significant digits when that stays inside.
func (s *state) mid() (float64, bool) {
	m := math.Sqrt(s.lo * s.hi)
	r := roundSig(m, 3)
	if s.c.Whole {
		r = math.Round(m)
	}
	if r > s.lo && r < s.hi {
		return r, true
	}
	if !s.c.Whole && m > s.lo && m < s.hi {
		return m, true
	}
	return 0, false
}

func roundSig(x float64, digits int) float64 {
	if x == 0 {
		return 0
	}
	scale := math.Pow(10, float64(digits)-math.Ceil(math.Log10(math.Abs(x))))
	return math.Round(x*scale) / scale
}

func (s *state) finish() {
	a := s.a
	a.Held, a.HasHeld = s.lo, s.hasLo
	// Failed is the lowest level that failed above the answer (a short probe's failure above
	// the bracket may be noise; the bracket's is what the search settled on).
	a.Failed, a.HasFailed = s.hi, s.hasHi
	if a.Status == "" {
		a.Status = s.limit
	}
}

// Levels lists the levels probed, in order (for people and tests).
func (a *Answer) Levels() []float64 {
	out := make([]float64, 0, len(a.Steps))
	for _, st := range a.Steps {
		out = append(out, st.Level)
	}
	return slices.Clip(out)
}
