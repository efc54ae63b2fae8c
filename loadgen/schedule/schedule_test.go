package schedule

import (
	"math"
	"testing"
	"time"
)

func countArrivals(t testing.TB, r Ramp) int64 {
	it := r.Arrivals()
	prev := time.Duration(-1)
	total := r.Total()
	for {
		off, ok := it.Next()
		if !ok {
			return it.Index()
		}
		if off < prev {
			t.Fatalf("offset %v after %v: offsets must never decrease", off, prev)
		}
		if off < 0 || off >= total {
			t.Fatalf("offset %v outside [0, %v)", off, total)
		}
		prev = off
		if it.Index() > 100_000_000 {
			t.Fatal("runaway iterator")
		}
	}
}

func TestArrivalCounts(t *testing.T) {
	tests := []struct {
		name string
		ramp Ramp
		want float64
		tol  float64
	}{
		{"constant 1000/s for 10s", Ramp{Start: 1000, Stages: []Stage{{10 * time.Second, 1000}}}, 10000, 0},
		{"ramp 0 to 1000/s over 10s", Ramp{Stages: []Stage{{10 * time.Second, 1000}}}, 5000, 0},
		{"ramp down 1000 to 0 over 10s", Ramp{Start: 1000, Stages: []Stage{{10 * time.Second, 0}}}, 5000, 1},
		{"ramp, hold, ramp down", Ramp{Stages: []Stage{{2 * time.Second, 500}, {3 * time.Second, 500}, {time.Second, 0}}}, 500 + 1500 + 250, 1},
		{"fractional rate", Ramp{Start: 0.5, Stages: []Stage{{9 * time.Second, 0.5}}}, 4.5, 1},
		{"zero rate stage", Ramp{Stages: []Stage{{5 * time.Second, 0}, {time.Second, 100}}}, 50, 1},
		{"tiny slope", Ramp{Start: 1000, Stages: []Stage{{10 * time.Second, 1000.001}}}, 10000.005, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := countArrivals(t, tt.ramp)
			if n := tt.ramp.Count(tt.ramp.Total()); math.Abs(n-tt.want) > 1e-6 {
				t.Fatalf("Count(total) = %v, want %v", n, tt.want)
			}
			if math.Abs(float64(got)-math.Ceil(tt.want)) > tt.tol {
				t.Fatalf("%d arrivals, want %v ± %v", got, math.Ceil(tt.want), tt.tol)
			}
		})
	}
}

func TestArrivalOffsetsFollowTheIntegral(t *testing.T) {
	r := Ramp{Stages: []Stage{{10 * time.Second, 1000}}}
	it := r.Arrivals()
	for i := 0; i < 5000; i++ {
		off, _ := it.Next()
		// N(t) = 50 t² on this ramp, so arrival i is at sqrt(i/50) s.
		want := time.Duration(math.Sqrt(float64(i)/50) * float64(time.Second))
		if d := off - want; d < -time.Microsecond || d > time.Microsecond {
			t.Fatalf("arrival %d at %v, want %v", i, off, want)
		}
	}
}

func TestConcurrencyAndStages(t *testing.T) {
	r := Ramp{Stages: []Stage{{10 * time.Second, 1000}, {10 * time.Second, 1000}, {5 * time.Second, 0}}}
	tests := []struct {
		at    time.Duration
		want  int
		stage int
	}{
		{0, 0, 0},
		{time.Second, 100, 0},
		{5 * time.Second, 500, 0},
		{10 * time.Second, 1000, 1},
		{15 * time.Second, 1000, 1},
		{20 * time.Second, 1000, 2},
		{22500 * time.Millisecond, 500, 2},
		{25 * time.Second, 0, 3},
		{time.Hour, 0, 3},
		{-time.Second, 0, 0},
	}
	for _, tt := range tests {
		if got := r.Concurrency(tt.at); got != tt.want {
			t.Errorf("Concurrency(%v) = %d, want %d", tt.at, got, tt.want)
		}
		if got := r.Stage(tt.at); got != tt.stage {
			t.Errorf("Stage(%v) = %d, want %d", tt.at, got, tt.stage)
		}
	}
	if got := r.Boundaries(); len(got) != 3 || got[2] != 25*time.Second {
		t.Errorf("Boundaries = %v", got)
	}
}

func FuzzArrivals(f *testing.F) {
	f.Add(0.0, uint32(1000), 100.0, uint32(2000), 0.0)
	f.Add(1000.0, uint32(10000), 1000.0, uint32(1), 5.0)
	f.Add(0.5, uint32(7), 3000.0, uint32(333), 0.0)
	f.Fuzz(func(t *testing.T, start float64, d1ms uint32, t1 float64, d2ms uint32, t2 float64) {
		for _, v := range []float64{start, t1, t2} {
			if math.IsNaN(v) || v < 0 || v > 5000 {
				t.Skip()
			}
		}
		if d1ms == 0 || d2ms == 0 || d1ms > 20000 || d2ms > 20000 {
			t.Skip()
		}
		r := Ramp{Start: start, Stages: []Stage{
			{time.Duration(d1ms) * time.Millisecond, t1},
			{time.Duration(d2ms) * time.Millisecond, t2},
		}}
		got := float64(countArrivals(t, r))
		// The count is the integral of the rate, within one.
		if want := r.Count(r.Total()); math.Abs(got-want) > 1+1e-6*want {
			t.Fatalf("%v arrivals, integral %v", got, want)
		}
	})
}
