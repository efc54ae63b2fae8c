package schedule

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Segment is part Index of Count (0-based, like JOB_COMPLETION_INDEX) of a plan split across worker
// processes or machines. The zero value and any Count <= 1 mean the whole plan.
//
// Splits are exact, so the segments of a plan always add up to the plan:
//   - concurrency: when the plan keeps c = ⌊v⌋ connections, segment i keeps ⌊(c+i)/n⌋. By Hermite's
//     identity the shares add up to c at every instant; each share differs from the others by at
//     most one, and rises and falls only with c (a share never opens a connection while the plan
//     is ramping down);
//   - arrival: arrival k of the plan belongs to segment k mod n, at the plan's own intended time, so
//     segments interleave in time and their union is exactly the plan's arrivals.
type Segment struct {
	Index int
	Count int
}

// Whole reports whether the segment is the whole plan.
func (s Segment) Whole() bool { return s.Count <= 1 }

func (s Segment) String() string {
	if s.Whole() {
		return ""
	}
	return fmt.Sprintf("%d/%d", s.Index, s.Count)
}

// ParseSegment reads "i/N" with 0 <= i < N <= 100000.
func ParseSegment(s string) (Segment, error) {
	is, ns, ok := strings.Cut(s, "/")
	i, err1 := strconv.Atoi(is)
	n, err2 := strconv.Atoi(ns)
	if !ok || err1 != nil || err2 != nil || n < 1 || n > 100000 || i < 0 || i >= n {
		return Segment{}, fmt.Errorf("segment %q: want i/N with 0 <= i < N (0-based, as JOB_COMPLETION_INDEX), e.g. 0/4", s)
	}
	return Segment{Index: i, Count: n}, nil
}

// SegmentConcurrency is the segment's share of Concurrency(elapsed).
func (r Ramp) SegmentConcurrency(seg Segment, elapsed time.Duration) int {
	c := r.Concurrency(elapsed)
	if seg.Whole() {
		return c
	}
	return (c + seg.Index) / seg.Count
}

// SegmentNextChange is how long after elapsed the segment's concurrency can next change: when the
// plan's ⌊v⌋ next reaches a value at which the segment's share changes on the current linear stage,
// or the stage's end. It is never less than minStep, so a steep ramp cannot spin its caller.
func (r Ramp) SegmentNextChange(seg Segment, elapsed, minStep time.Duration) time.Duration {
	var t0 time.Duration
	from := r.Start
	for _, s := range r.Stages {
		end := t0 + s.Duration
		if elapsed < end {
			if s.Target == from {
				return max(end-elapsed, minStep)
			}
			slope := (s.Target - from) / s.Duration.Seconds()
			v := r.Value(elapsed)
			// ⌊v⌋ changes when v reaches ⌊v⌋+1 (rising) or drops below ⌊v⌋ (falling); segment i
			// of n keeps ⌊(c+i)/n⌋, which changes only when c reaches the next multiple of n less
			// i (rising) or drops below the last (falling): n times less often. Waking at every
			// change of the whole plan's ⌊v⌋ made each of a million-connection run's 53 workers
			// wake 4,000 times a second to start 75 slots (212,000 timer wake-ups a second on 2
			// cores, most of the machine's time).
			k := math.Floor(v + 1e-9)
			if !seg.Whole() {
				n, i := float64(seg.Count), float64(seg.Index)
				k = n*math.Floor((k+i)/n) - i // the least c with this segment's share
				if slope > 0 {
					k += n - 1 // the next rise comes at k+n, reached from k+n-1 below
				}
			}
			if slope > 0 {
				k++
			} else {
				k -= 1e-6 // below k by more than Concurrency's tolerance, so that ⌊v⌋ has changed
			}
			// Rounded up: a wake-up a nanosecond early finds nothing changed and comes again.
			dt := time.Duration(math.Ceil((k - v) / slope * float64(time.Second)))
			if dt > end-elapsed {
				dt = end - elapsed
			}
			return max(dt, minStep) // dt <= 0: the change is due now (v a rounding below it)
		}
		t0 = end
		from = s.Target
	}
	return minStep
}

// SegmentArrivals iterates over the arrivals that belong to the segment: every Count-th arrival of
// the plan, starting at Index, at the plan's own intended offsets.
func (r Ramp) SegmentArrivals(seg Segment) *SegmentedArrivals {
	return &SegmentedArrivals{all: r.Arrivals(), seg: seg}
}

// SegmentedArrivals yields one segment's share of a ramp's arrivals.
type SegmentedArrivals struct {
	all *Arrivals
	seg Segment
}

// Next returns the intended offset of the segment's next arrival, or ok=false at the end.
func (a *SegmentedArrivals) Next() (time.Duration, bool) {
	for {
		k := a.all.Index()
		off, ok := a.all.Next()
		if !ok {
			return 0, false
		}
		if a.seg.Whole() || int(k%int64(a.seg.Count)) == a.seg.Index {
			return off, true
		}
	}
}
