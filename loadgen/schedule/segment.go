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
//   - concurrency: segment i keeps ⌊v·(i+1)/n⌋ − ⌊v·i/n⌋ connections when the plan keeps ⌊v⌋; the
//     sum over i telescopes to ⌊v⌋ at every instant, and the split differs by at most one between
//     segments;
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

// bounds are the segment's share of the plan as the fractions [lo, hi) of the whole.
func (s Segment) bounds() (lo, hi float64) {
	if s.Whole() {
		return 0, 1
	}
	return float64(s.Index) / float64(s.Count), float64(s.Index+1) / float64(s.Count)
}

// SegmentConcurrency is the segment's share of Concurrency(elapsed).
func (r Ramp) SegmentConcurrency(seg Segment, elapsed time.Duration) int {
	if seg.Whole() {
		return r.Concurrency(elapsed)
	}
	if elapsed < 0 {
		elapsed = 0
	}
	v := r.Value(elapsed)
	lo, hi := seg.bounds()
	return floorShare(v, hi) - floorShare(v, lo)
}

// floorShare is ⌊v·f⌋ computed so that f = 1 gives exactly Concurrency's ⌊v⌋ (same epsilon).
func floorShare(v, f float64) int {
	if f == 1 {
		return int(math.Floor(v + 1e-9))
	}
	return int(math.Floor(v*f + 1e-9))
}

// SegmentNextChange is how long after elapsed the segment's concurrency can next change: the next
// time v·lo or v·hi crosses an integer on the current linear stage, or the stage's end. It is never
// less than minStep, so a steep ramp cannot spin its caller.
func (r Ramp) SegmentNextChange(seg Segment, elapsed, minStep time.Duration) time.Duration {
	var t0 time.Duration
	from := r.Start
	lo, hi := seg.bounds()
	for _, s := range r.Stages {
		end := t0 + s.Duration
		if elapsed < end {
			if s.Target == from {
				return max(end-elapsed, minStep)
			}
			slope := (s.Target - from) / s.Duration.Seconds()
			v := r.Value(elapsed)
			best := end - elapsed
			for _, f := range []float64{lo, hi} {
				if f == 0 {
					continue
				}
				// ⌊v·f⌋ changes when v·f reaches the next integer up (rising) or falls below the
				// current one (falling).
				k := math.Floor(v*f + 1e-9)
				if slope > 0 {
					k++
				}
				dt := time.Duration((k/f - v) / slope * float64(time.Second))
				if dt > 0 && dt < best {
					best = dt
				}
			}
			return max(best, minStep)
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
