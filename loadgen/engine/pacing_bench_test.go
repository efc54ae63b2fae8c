//go:build linux

package engine

import (
	"context"
	"fmt"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/portstorm/portstorm/loadgen/metrics"
	"github.com/portstorm/portstorm/loadgen/schedule"
)

// BenchmarkArrivalPacing runs the arrival schedule at a constant rate against a dialer that
// connects at once, so that schedule_lag is the pacer's own lateness (plus starting the
// connection's goroutine), and reports its p50 and p99 and the process's CPU time per arrival:
// precise pacing must not turn a slow schedule into a busy loop. Run it with -benchtime=1x; each
// iteration is one whole run.
func BenchmarkArrivalPacing(b *testing.B) {
	for _, tt := range []struct {
		rate float64
		dur  time.Duration
	}{{50, 4 * time.Second}, {1000, 2 * time.Second}, {10000, time.Second}} {
		b.Run(fmt.Sprintf("%.0f/s", tt.rate), func(b *testing.B) {
			ramp := schedule.Ramp{Start: tt.rate, Stages: []schedule.Stage{{Duration: tt.dur, Target: tt.rate}}}
			lag := metrics.NewHistogram()
			var arrivals int64
			var cpu time.Duration
			for b.Loop() {
				before := cpuTime(b)
				res, err := Run(context.Background(), Config{Model: Arrival, Ramp: ramp, Destinations: simDst,
					Dialer: &simDialer{}, MaxInFlight: 1000})
				if err != nil {
					b.Fatal(err)
				}
				cpu += cpuTime(b) - before
				lag.Merge(res.Total.Hist[metrics.ScheduleLag])
				arrivals += int64(res.Total.Attempted)
			}
			b.ReportMetric(float64(lag.ValueAtQuantile(50)), "lag-p50-µs")
			b.ReportMetric(float64(lag.ValueAtQuantile(99)), "lag-p99-µs")
			b.ReportMetric(float64(cpu.Microseconds())/float64(arrivals), "cpu-µs/arrival")
		})
	}
}

// cpuTime is the process's user and system CPU time so far.
func cpuTime(b *testing.B) time.Duration {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkPacer measures the pacer alone: the lateness of waits for instants gap apart, with the
// kernel's last stretch (fine) and with a Go timer alone (timer, how the arrival loop waited
// before), side by side under the same machine load, and the CPU time per wait. b.N waits.
func BenchmarkPacer(b *testing.B) {
	for _, gap := range []time.Duration{20 * time.Millisecond, time.Millisecond, 100 * time.Microsecond} {
		for _, fine := range []bool{false, true} {
			name := map[bool]string{false: "timer", true: "fine"}[fine]
			b.Run(fmt.Sprintf("gap=%v/%s", gap, name), func(b *testing.B) {
				p := newPacer()
				defer p.close()
				p.fine = fine
				late := metrics.NewHistogram()
				before := cpuTime(b)
				at := time.Now()
				for b.Loop() {
					at = at.Add(gap)
					p.until(at, nil)
					_ = late.RecordValue(max(time.Since(at).Microseconds(), metrics.HistLowest))
				}
				cpu := cpuTime(b) - before
				b.ReportMetric(float64(late.ValueAtQuantile(50)), "late-p50-µs")
				b.ReportMetric(float64(late.ValueAtQuantile(99)), "late-p99-µs")
				b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/wait")
			})
		}
	}
}
