package coordinator

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/portstorm/portstorm/loadgen/dial"
	"github.com/portstorm/portstorm/loadgen/isolate/nstest"
	"github.com/portstorm/portstorm/loadgen/plan"
	"github.com/portstorm/portstorm/loadgen/preflight"
	"github.com/portstorm/portstorm/loadgen/spec"
)

// TestForecastAgreesWithRun: portstorm doctor's forecast (Forecast) and run's preflight (the
// layout, then setup with the built-in target's listeners) judge a plan alike, workers: auto
// included: doctor must not forecast one process where run lays out several. In a private
// namespace, so that the census both take sees the same sockets.
func TestForecastAgreesWithRun(t *testing.T) {
	if !nstest.Run(t) {
		return
	}
	h := preflight.Host{Cores: 2, FDSoft: 20000, FDHard: 20000, PortRange: preflight.PortRange{Lo: 32768, Hi: 60999},
		TWReuse: 2, TWReuseDelay: 1000, MaxTWBuckets: 262144, Somaxconn: 4096, Syncookies: 1,
		ConntrackMax: -1, ConntrackCount: -1, Conntrack: preflight.ConntrackNotLoaded}
	hold := func(peak float64, workers plan.Count) *plan.Plan {
		p := &plan.Plan{Version: 1, Name: "hold",
			Target:     plan.Target{Builtin: &plan.Builtin{Mode: "hold", Listeners: 8}},
			Connection: plan.Connection{Hold: plan.Duration(time.Minute), Close: "rst"},
			Load:       plan.Load{Workers: workers, Stages: []plan.Stage{{Duration: plan.Duration(time.Minute), Target: peak}}},
		}
		p.Defaults()
		return p
	}
	for _, tt := range []struct {
		name    string
		p       *plan.Plan
		workers int
		refuse  bool
	}{
		{"auto, one process", hold(5000, 0), 1, false},
		{"auto, several processes", hold(100000, 0), 6, false},
		{"two workers set, too few", hold(100000, 2), 2, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s, err := spec.Compile(tt.p, spec.Facts{Host: h})
			if err != nil {
				t.Fatal(err)
			}
			doctor, why, err := Forecast(s)
			if err != nil {
				t.Fatal(err)
			}
			if want := fmt.Sprintf("%d worker process(es)", tt.workers); !strings.Contains(why, want) {
				t.Errorf("doctor's layout %q, want %q", why, want)
			}
			pr := newPortRun(s)
			if l := s.Layout; l.Workers != tt.workers {
				t.Fatalf("run lays out %d workers, want %d", l.Workers, tt.workers)
			}
			var dsts []dial.Destination
			for i := range 8 {
				dsts = append(dsts, dial.NewDestination(netip.MustParseAddrPort(fmt.Sprintf("127.0.0.1:%d", 7000+i))))
			}
			_, err = pr.setup(dsts, nil)
			run := pr.forecast
			if run == nil {
				t.Fatalf("run made no forecast: %v", err)
			}
			if (err != nil) != tt.refuse || run.Refuse != tt.refuse || doctor.Refuse != tt.refuse {
				t.Errorf("run refuses: %v (%v), doctor refuses: %v; want %v", run.Refuse, err, doctor.Refuse, tt.refuse)
			}
			if len(doctor.Limits) != len(run.Limits) {
				t.Fatalf("doctor's limits %+v\nrun's %+v", doctor.Limits, run.Limits)
			}
			for i, d := range doctor.Limits {
				r := run.Limits[i]
				if d.Name != r.Name || d.Max != r.Max || d.Demand != r.Demand || d.Stops != r.Stops {
					t.Errorf("limit %d: doctor %+v\nrun %+v", i, d, r)
				}
				if d.Name == "open files" && d.Why != r.Why {
					t.Errorf("open files: doctor %q, run %q", d.Why, r.Why)
				}
			}
		})
	}
}
