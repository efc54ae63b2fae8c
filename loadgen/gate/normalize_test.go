package gate

import (
	"slices"
	"strings"
	"testing"

	"github.com/portstorm/portstorm/loadgen/report"
)

// host is a fixture run on a host of the given speed: every latency times slow (connect, rtt,
// request_intended), with the calibration unit slow times 40 µs, and the achieved rate over slow
// (the run lasted slow times as long: a closed loop).
func host(t *testing.T, slow float64, f fixture) *report.Summary {
	t.Helper()
	g := f
	g.connect = scaled(f.connect, slow)
	g.stage1Extra = scaled(f.stage1Extra, slow)
	g.reqRTT = int64(float64(f.reqRTT) * slow)
	s := g.build(t)
	if s.Requests != nil {
		s.Requests.PerSecond /= slow
	}
	s.Connections.PerSecond /= slow
	s.Calibration = &report.Calibration{UnitUS: 40 * slow, ConnectP50US: 25 * slow, EchoP50US: 15 * slow, Connections: 1000}
	return s
}

func scaled(v []int64, k float64) []int64 {
	out := make([]int64, len(v))
	for i, x := range v {
		out[i] = int64(float64(x) * k)
	}
	return out
}

// TestCompareNormalized: a baseline made on another host compares by the calibration: a run on a
// host twice as slow, whose absolute latencies are twice the baseline's, passes normalized (and
// fails as measured); a true regression fails either way, also one a faster host would hide.
func TestCompareNormalized(t *testing.T) {
	reqs := fixture{connect: []int64{100, 200, 300, 400, 500}, reqs: 1000, reqRTT: 300}
	base := host(t, 1, reqs)
	regressed := reqs
	regressed.reqRTT = 450 // rtt 1.5x the baseline's on the same host
	moreConns := reqs
	moreConns.connect = append(slices.Clone(reqs.connect), 500)
	noCal := host(t, 2, reqs)
	noCal.Calibration = nil
	allLat := []string{"connect.p50", "connect.p90", "connect.p99", "rtt.p50", "rtt.p90", "rtt.p99"}
	tests := []struct {
		name      string
		cur       *report.Summary
		normalize string
		failing   []string
		scale     float64
		err       string
	}{
		{"same host, normalized", base, NormalizeCalibration, nil, 1, ""},
		{"a host twice as slow, normalized: passes", host(t, 2, reqs), NormalizeCalibration, nil, 2, ""},
		{"a host twice as slow, as measured: fails", host(t, 2, reqs), "", append(slices.Clone(allLat), "requests.per_second"), 0, ""},
		{"a host twice as fast, normalized: passes", host(t, 0.5, reqs), NormalizeCalibration, nil, 0.5, ""},
		{"a true regression on a host twice as slow fails", host(t, 2, regressed), NormalizeCalibration,
			[]string{"rtt.p50", "rtt.p90", "rtt.p99"}, 2, ""},
		{"a regression a host twice as fast hides as measured fails normalized", host(t, 0.5, fixture{connect: reqs.connect, reqs: 1000, reqRTT: 600}),
			NormalizeCalibration, []string{"rtt.p50", "rtt.p90", "rtt.p99"}, 0.5, ""},
		{"counts stay exact", host(t, 2, moreConns), NormalizeCalibration, []string{"connections.attempted", "connections.established"}, 2, ""},
		{"no calibration in the new result", noCal, NormalizeCalibration, nil, 0, "the new result holds no calibration"},
		{"an unknown normalization", base, "speed", nil, 0, `want calibration`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			names := append(slices.Clone(allLat), "requests.per_second", "connections.attempted", "connections.established")
			res, err := Compare(base, tt.cur, CompareOptions{MaxRegression: 0.1, Metrics: names, Normalize: tt.normalize})
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var failing []string
			for _, c := range res.Checks {
				if !c.Pass {
					failing = append(failing, c.Metric)
				}
				// A normalized check keeps the figure as measured and shows the one compared.
				normalized := tt.normalize != "" && c.Metric != "connections.attempted" && c.Metric != "connections.established"
				if normalized != (c.NewNormalized != nil) || (normalized && !strings.HasSuffix(c.New, " normalized)")) {
					t.Errorf("%s: new %q, new_normalized %v", c.Metric, c.New, c.NewNormalized)
				}
			}
			if strings.Join(failing, ",") != strings.Join(tt.failing, ",") || res.Pass != (len(tt.failing) == 0) {
				t.Errorf("failing %v (pass %v), want %v\n%+v", failing, res.Pass, tt.failing, res.Checks)
			}
			if tt.scale == 0 {
				if res.Scale != nil || res.Normalize != "" {
					t.Errorf("scale %v, normalize %q without normalizing", res.Scale, res.Normalize)
				}
				return
			}
			if res.Scale == nil || *res.Scale != tt.scale || res.Normalize != "calibration" {
				t.Errorf("scale %v normalize %q, want %v", res.Scale, res.Normalize, tt.scale)
			}
			if !strings.Contains(strings.Join(res.Notes, "\n"), "normalized by calibration") {
				t.Errorf("notes %q", res.Notes)
			}
		})
	}
}
