package engine

import (
	"testing"
	"testing/synctest"
	"time"

	"github.com/portstorm/portstorm/loadgen/schedule"
)

// TestSegmentsAddUp: the same plan run as 4 segments gives, added up, exactly the whole plan's
// arrivals (arrival model) and peak concurrency (concurrency model) (virtual time, so every segment runs the plan's exact schedule).
func TestSegmentsAddUp(t *testing.T) {
	tests := []struct {
		name  string
		model Model
		ramp  schedule.Ramp
		hold  time.Duration
	}{
		{"arrival", Arrival, schedule.Ramp{Stages: []schedule.Stage{{Duration: 2 * time.Second, Target: 999}, {Duration: time.Second, Target: 0}}}, 0},
		{"concurrency", Concurrency, schedule.Ramp{Stages: []schedule.Stage{{Duration: time.Second, Target: 403}, {Duration: time.Second, Target: 403}, {Duration: time.Second, Target: 0}}}, 300 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			run := func(seg schedule.Segment) (attempted uint64, peak int64) {
				synctest.Test(t, func(t *testing.T) {
					res := runSim(t, Config{Model: tt.model, Ramp: tt.ramp, Dialer: &simDialer{}, MaxInFlight: 10000,
						Hold: tt.hold, Segment: seg})
					attempted, peak = res.Total.Attempted, res.Total.PeakActive
				})
				return
			}
			whole, wholePeak := run(schedule.Segment{})
			var sum uint64
			var peaks int64
			for i := range 4 {
				a, p := run(schedule.Segment{Index: i, Count: 4})
				sum += a
				peaks += p
			}
			// Arrivals are split one by one, so they add up exactly; under concurrency it is the number
			// open at every instant that adds up (replacements start at each slot's own times).
			if tt.model == Arrival && sum != whole {
				t.Errorf("segments attempted %d, the whole plan %d", sum, whole)
			}
			if tt.model == Concurrency && peaks != wholePeak {
				t.Errorf("segments peak at %d together, the whole plan at %d", peaks, wholePeak)
			}
		})
	}
}
