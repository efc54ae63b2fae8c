package coordinator

import (
	"testing"
	"time"

	"github.com/portstorm/portstorm/loadgen/metrics"
	"github.com/portstorm/portstorm/loadgen/schedule"
)

// TestProgressAboutRequests: the progress line's figures say a run is about requests once it has
// written more requests than it established connections (keep-alive) or sent rated ones, with
// the interval's requests per second and the request latency's p99: request_intended when rated,
// else rtt. A connection run stays a connection run.
func TestProgressAboutRequests(t *testing.T) {
	interval := func(established, requests uint64, rtt, intended int64) *metrics.Snapshot {
		s := metrics.NewSnapshot()
		s.StartUS, s.EndUS = 0, 500_000
		s.Established, s.Requests = established, requests
		s.Hist[metrics.Connect].RecordValue(150)
		for range requests {
			s.Hist[metrics.RTT].RecordValue(rtt)
			if intended > 0 {
				s.Hist[metrics.RequestIntended].RecordValue(intended)
			}
		}
		return s
	}
	tests := []struct {
		name      string
		intervals []*metrics.Snapshot
		requests  bool
		rated     bool
		perSecond float64
		p99       time.Duration
	}{
		{"one request per connection", []*metrics.Snapshot{interval(100, 100, 300, 0)}, false, false, 200, 300 * time.Microsecond},
		{"keep-alive: nothing opens after the first interval", []*metrics.Snapshot{interval(50, 40, 300, 0), interval(0, 2000, 700, 0)},
			true, false, 4000, 700 * time.Microsecond},
		{"rated", []*metrics.Snapshot{interval(50, 25, 300, 2000)}, true, true, 50, 2 * time.Millisecond},
		{"no requests", []*metrics.Snapshot{interval(10, 0, 0, 0)}, false, false, 0, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got Progress
			c := &collector{ramp: schedule.Ramp{}}
			for _, s := range tc.intervals {
				c.count(s)
				got = c.progress(s)
			}
			p99 := got.RequestP99.Round(time.Microsecond)
			// Histogram buckets keep 3 significant digits.
			if got.Requests != tc.requests || got.Rated != tc.rated || got.RequestsPerSecond != tc.perSecond ||
				p99 < tc.p99 || p99 > tc.p99+tc.p99/500 {
				t.Errorf("requests %v rated %v %v/s p99 %v, want %v %v %v/s %v", got.Requests, got.Rated, got.RequestsPerSecond,
					got.RequestP99, tc.requests, tc.rated, tc.perSecond, tc.p99)
			}
		})
	}
}
