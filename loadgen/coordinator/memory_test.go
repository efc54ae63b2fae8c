package coordinator

import (
	"testing"
	"time"

	"github.com/portstorm/portstorm/loadgen/engine"
	"github.com/portstorm/portstorm/loadgen/memory"
	"github.com/portstorm/portstorm/loadgen/plan"
	"github.com/portstorm/portstorm/loadgen/spec"
)

// TestMemWatchPlateau: a snapshot keeps the memory sample taken nearest its own end, however late
// it reaches the collector (53 workers' snapshots came 17 s late to the coordinator of a million
// connections, and a sample taken on arrival measured the ramp-down). A snapshot with no sample
// near its end keeps none.
func TestMemWatchPlateau(t *testing.T) {
	t0 := time.Date(2026, 12, 7, 5, 0, 0, 0, time.UTC)
	m := &memWatch{interval: time.Second, based: true}
	m.plateau.Base = memory.Sample{At: t0, Slab: 0}
	// Interval samples 1..30 s, each with the slab at its second: the sample's identity.
	for i := 1; i <= 30; i++ {
		m.ring = append(m.ring, memory.Sample{At: t0.Add(time.Duration(i)*time.Second + 3*time.Millisecond), Slab: int64(i)})
	}
	sec := func(s int) int64 { return int64(s) * 1e6 }
	tests := []struct {
		active   int64
		endUS    int64
		wantSlab int64 // the kept sample's second after this snapshot
	}{
		{500, sec(1), -1},     // under memory.MinConnections: nothing kept
		{5000, sec(5), 5},     // the ramp
		{10000, sec(10), 10},  // the plateau reached
		{10000, sec(20), 20},  // its last interval: the later of equals
		{9000, sec(25), 20},   // the ramp-down: not kept
		{10000, sec(40), 20},  // no sample near 40 s (the ring's last is 30 s)
		{12000, 10400000, 10}, // more held, at 10.4 s: the sample nearest, 10 s
	}
	for i, tt := range tests {
		m.observe(tt.active, tt.endUS)
		got := int64(-1)
		if m.plateau.Peak.At != (time.Time{}) {
			got = m.plateau.Peak.Slab
		}
		if got != tt.wantSlab {
			t.Errorf("after snapshot %d (%d at %d µs): kept the sample of %d s, want %d s", i, tt.active, tt.endUS, got, tt.wantSlab)
		}
	}
	if p := m.plateau.Peak; p.Active != 12000 {
		t.Errorf("kept %+v, want 12000 held", p)
	}
}

// TestMemWatchQuiet: a concurrency plan whose ramp never reaches memory.MinConnections takes its
// base sample and no interval samples (each reads /proc/slabinfo); one that does, and any arrival
// plan, sample every interval. The peak is the plan's, as the run compiles it (spec.Demand).
func TestMemWatchQuiet(t *testing.T) {
	load := func(model string, start float64, targets ...float64) *plan.Plan {
		p := &plan.Plan{Load: plan.Load{Model: model, Start: start}}
		for _, v := range targets {
			p.Load.Stages = append(p.Load.Stages, plan.Stage{Duration: plan.Duration(time.Second), Target: v})
		}
		return p
	}
	tests := []struct {
		name  string
		plan  *plan.Plan
		quiet bool
	}{
		{"300 held", load("concurrency", 300, 300), true},
		{"a ramp to 999 and down", load("concurrency", 0, 999, 10), true},
		{"a ramp to 1000", load("concurrency", 0, 500, memory.MinConnections), false},
		{"starting at 5000", load("concurrency", 5000, 0), false},
		{"arrivals at 10/s", load("arrival", 10, 10), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			model := engine.Concurrency
			if tt.plan.Load.Model == "arrival" {
				model = engine.Arrival
			}
			peak, _ := spec.Demand(tt.plan)
			quiet := memQuiet(model, peak)
			if quiet != tt.quiet {
				t.Fatalf("memQuiet = %v (peak %d), want %v", quiet, peak, tt.quiet)
			}
			m := newMemWatch(nil, time.Millisecond, quiet)
			m.base(nil)
			m.mu.Lock()
			started := m.stop != nil
			m.mu.Unlock()
			m.close()
			if started == tt.quiet {
				t.Errorf("interval samples started %v, want %v", started, !tt.quiet)
			}
			if !m.based {
				t.Error("no base sample")
			}
		})
	}
}
