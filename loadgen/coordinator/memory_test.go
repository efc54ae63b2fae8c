package coordinator

import (
	"testing"
	"time"

	"github.com/portstorm/portstorm/loadgen/engine"
	"github.com/portstorm/portstorm/loadgen/memory"
	"github.com/portstorm/portstorm/loadgen/schedule"
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

// TestMemWatchQuiet: a concurrency ramp that never reaches memory.MinConnections takes its base
// sample and no interval samples (each reads /proc/slabinfo); one that does, and any arrival ramp,
// sample every interval.
func TestMemWatchQuiet(t *testing.T) {
	ramp := func(start float64, targets ...float64) schedule.Ramp {
		r := schedule.Ramp{Start: start}
		for _, v := range targets {
			r.Stages = append(r.Stages, schedule.Stage{Duration: time.Second, Target: v})
		}
		return r
	}
	tests := []struct {
		name  string
		model engine.Model
		ramp  schedule.Ramp
		quiet bool
	}{
		{"300 held", engine.Concurrency, ramp(300, 300), true},
		{"a ramp to 999 and down", engine.Concurrency, ramp(0, 999, 10), true},
		{"a ramp to 1000", engine.Concurrency, ramp(0, 500, memory.MinConnections), false},
		{"starting at 5000", engine.Concurrency, ramp(5000, 0), false},
		{"arrivals at 10/s", engine.Arrival, ramp(10, 10), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := memQuiet(tt.model, tt.ramp); got != tt.quiet {
				t.Fatalf("memQuiet = %v, want %v", got, tt.quiet)
			}
			m := newMemWatch(nil, time.Millisecond)
			m.quiet = tt.quiet
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
