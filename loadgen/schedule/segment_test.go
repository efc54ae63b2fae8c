package schedule

import (
	"testing"
	"time"
)

func TestSegmentsAddUpToThePlan(t *testing.T) {
	ramps := []struct {
		name string
		r    Ramp
	}{
		{"ramp up, hold, down", Ramp{Stages: []Stage{{3 * time.Second, 1000}, {2 * time.Second, 1000}, {3 * time.Second, 0}}}},
		{"odd targets", Ramp{Start: 7, Stages: []Stage{{1500 * time.Millisecond, 64001}, {time.Second, 3}}}},
		{"fractional", Ramp{Start: 0.5, Stages: []Stage{{time.Second, 2.5}}}},
	}
	for _, rr := range ramps {
		for _, n := range []int{1, 2, 3, 4, 7, 16} {
			for step := time.Duration(0); step <= rr.r.Total()+time.Second; step += 37 * time.Millisecond {
				sum, lo, hi := 0, 1<<62, -1
				for i := range n {
					c := rr.r.SegmentConcurrency(Segment{i, n}, step)
					sum += c
					lo, hi = min(lo, c), max(hi, c)
				}
				if want := rr.r.Concurrency(step); sum != want {
					t.Fatalf("%s, %d segments, at %v: segments sum to %d, plan %d", rr.name, n, step, sum, want)
				}
				if hi-lo > 1 {
					t.Fatalf("%s, %d segments, at %v: shares from %d to %d differ by more than one", rr.name, n, step, lo, hi)
				}
			}
		}
	}
}

func TestSegmentArrivalsPartitionThePlan(t *testing.T) {
	r := Ramp{Stages: []Stage{{2 * time.Second, 1000}, {time.Second, 300}}}
	var whole []time.Duration
	it := r.Arrivals()
	for off, ok := it.Next(); ok; off, ok = it.Next() {
		whole = append(whole, off)
	}
	for _, n := range []int{1, 2, 3, 5} {
		seen := make(map[time.Duration]int)
		total := 0
		for i := range n {
			sa := r.SegmentArrivals(Segment{i, n})
			prev := time.Duration(-1)
			for off, ok := sa.Next(); ok; off, ok = sa.Next() {
				if off < prev {
					t.Fatalf("segment %d/%d: offsets decrease", i, n)
				}
				prev = off
				seen[off]++
				total++
			}
		}
		if total != len(whole) {
			t.Fatalf("%d segments hold %d arrivals, the plan %d", n, total, len(whole))
		}
		for _, off := range whole {
			if seen[off] == 0 {
				t.Fatalf("%d segments: arrival at %v missing", n, off)
			}
			seen[off]--
		}
	}
}

func TestSegmentNextChange(t *testing.T) {
	r := Ramp{Stages: []Stage{{10 * time.Second, 1000}, {10 * time.Second, 1000}}}
	seg := Segment{1, 4}
	for at := time.Duration(0); at < 10*time.Second; {
		d := r.SegmentNextChange(seg, at, time.Microsecond)
		before := r.SegmentConcurrency(seg, at)
		// Nothing changes strictly before the predicted instant.
		if mid := at + d/2; d > 2*time.Microsecond && r.SegmentConcurrency(seg, mid) != before {
			t.Fatalf("at %v: changed before the predicted %v", at, at+d)
		}
		at += d
		if d <= 0 {
			t.Fatal("no progress")
		}
	}
	if d := r.SegmentNextChange(seg, 12*time.Second, time.Millisecond); d != 8*time.Second {
		t.Fatalf("flat stage: next change in %v, want the stage end (8s)", d)
	}
}

func TestParseSegment(t *testing.T) {
	tests := []struct {
		in   string
		want Segment
		ok   bool
	}{
		{"0/4", Segment{0, 4}, true}, {"3/4", Segment{3, 4}, true}, {"0/1", Segment{0, 1}, true},
		{"4/4", Segment{}, false}, {"-1/4", Segment{}, false}, {"1/0", Segment{}, false},
		{"1", Segment{}, false}, {"a/b", Segment{}, false}, {"", Segment{}, false},
	}
	for _, tt := range tests {
		got, err := ParseSegment(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("ParseSegment(%q) = %v, %v", tt.in, got, err)
		}
	}
}

// TestSegmentSharesFollowThePlan: a share moves only in the plan's direction, so a segment never
// opens a connection while the plan ramps down (nor closes one while it ramps up).
func TestSegmentSharesFollowThePlan(t *testing.T) {
	r := Ramp{Stages: []Stage{{2 * time.Second, 997}, {2 * time.Second, 0}}}
	for _, n := range []int{2, 3, 4, 8} {
		for i := range n {
			seg := Segment{i, n}
			prev := 0
			for at := time.Duration(0); at <= r.Total(); at += time.Millisecond {
				c := r.SegmentConcurrency(seg, at)
				up := at <= 2*time.Second
				if (up && c < prev) || (!up && c > prev) {
					t.Fatalf("segment %v at %v: share went from %d to %d against the plan", seg, at, prev, c)
				}
				prev = c
			}
		}
	}
}

// TestSegmentNextChangeWakeups: a segment's caller wakes about as often as its own share changes,
// not at every change of the whole plan (a worker of 53 woke 53 times for each slot it started).
func TestSegmentNextChangeWakeups(t *testing.T) {
	tests := []struct {
		name  string
		ramp  Ramp
		seg   Segment
		until time.Duration
	}{
		{"rising, 1 of 53", Ramp{Stages: []Stage{{10 * time.Second, 10600}}}, Segment{1, 53}, 10 * time.Second},
		{"rising, 52 of 53", Ramp{Stages: []Stage{{10 * time.Second, 10600}}}, Segment{52, 53}, 10 * time.Second},
		{"falling, 0 of 4", Ramp{Start: 4000, Stages: []Stage{{10 * time.Second, 0}}}, Segment{0, 4}, 10 * time.Second},
		{"falling, 3 of 4", Ramp{Start: 4000, Stages: []Stage{{10 * time.Second, 0}}}, Segment{3, 4}, 10 * time.Second},
		{"whole plan", Ramp{Stages: []Stage{{10 * time.Second, 1000}}}, Segment{}, 10 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wakeups, changes := 0, 0
			for at := time.Duration(0); at < tt.until; {
				d := tt.ramp.SegmentNextChange(tt.seg, at, time.Microsecond)
				before := tt.ramp.SegmentConcurrency(tt.seg, at)
				// Nothing changes strictly before the predicted instant.
				if mid := at + d/2; d > 2*time.Microsecond && tt.ramp.SegmentConcurrency(tt.seg, mid) != before {
					t.Fatalf("at %v: changed before the predicted %v", at, at+d)
				}
				if d <= 0 {
					t.Fatal("no progress")
				}
				at += d
				wakeups++
				if tt.ramp.SegmentConcurrency(tt.seg, at) != before {
					changes++
				}
			}
			if wakeups > changes+3 {
				t.Errorf("%d wake-ups for %d changes of the segment's share", wakeups, changes)
			}
		})
	}
}
