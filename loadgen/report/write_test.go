package report

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"maps"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/portstorm/portstorm/loadgen/memory"
	"github.com/portstorm/portstorm/loadgen/metrics"
	"github.com/portstorm/portstorm/loadgen/ports"
	"github.com/portstorm/portstorm/loadgen/preflight"
	"github.com/portstorm/portstorm/target"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/ from the current output")

// fixedSummary is a finished run with every part filled in and fixed times, so that its text and
// JSON forms are stable.
func fixedSummary(t *testing.T) *Summary {
	t.Helper()
	lat := map[string]LatencySummary{}
	// Each histogram's values are its own multiple of 100µs, kept when histograms are added.
	mult := map[string]int64{"connect": 1, "connect_intended": 2, "schedule_lag": 3, "rtt": 4, "lifetime": 5,
		"first_byte": 6, "tls_handshake": 7, "slot_wait": 8}
	for _, name := range latencyNames {
		h := metrics.NewHistogram()
		for v := int64(1); v <= 1000; v++ {
			h.RecordValue(v * 100 * mult[name])
		}
		enc, err := metrics.EncodeHistogram(h)
		if err != nil {
			t.Fatal(err)
		}
		lat[name] = LatencySummary{Count: h.TotalCount(), Min: h.Min(), Mean: h.Mean(), P50: h.ValueAtQuantile(50),
			P90: h.ValueAtQuantile(90), P99: h.ValueAtQuantile(99), P999: h.ValueAtQuantile(99.9), Max: h.Max(), HDR: enc}
	}
	outcomes := map[string]uint64{}
	for _, n := range outcomeNames {
		outcomes[n] = 0
	}
	outcomes["ok"], outcomes["ECONNREFUSED"], outcomes["EOF"], outcomes["EADDRNOTAVAIL"] = 1990, 4, 2, 1
	reqOutcomes := map[string]uint64{}
	for _, n := range outcomeNames {
		reqOutcomes[n] = 0
	}
	reqOutcomes["ok"], reqOutcomes["ECONNRESET"], reqOutcomes["EOF"], reqOutcomes["echo_mismatch"] = 1986, 3, 2, 1
	p := fixturePlan()
	p.Name = "quickstart"
	return &Summary{
		Schema: Schema, Name: "quickstart",
		StartedAt: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC), EndedAt: time.Date(2025, 3, 1, 12, 0, 20, 500_000_000, time.UTC),
		DurationUS: 20_500_000, Interrupted: true, Verdict: "fail", Plan: p,
		Host: preflight.Host{Hostname: "ci", Kernel: "Linux 6.8.0", Cores: 4, FDSoft: 20000, FDHard: 20000,
			PortRange: preflight.PortRange{Lo: 32768, Hi: 60999}, TWReuse: 2, TWReuseDelay: 1000, MaxTWBuckets: 262144, Somaxconn: 4096},
		Segments: 2,
		Connections: Connections{Attempted: 2000, Established: 1992, Failed: 5, Dropped: 3, Closed: 1992,
			PeakConcurrent: 1000, PerSecond: 97.17},
		Outcomes: outcomes,
		First: map[string]First{
			"ECONNREFUSED":  {AtS: 12.5, Concurrency: 998},
			"EOF":           {AtS: 3.25, Concurrency: 120},
			"EADDRNOTAVAIL": {AtS: 19.75, Concurrency: 1000},
		},
		// Several outcomes, so that the text's order is seen not to depend on map iteration.
		Examples: map[string][]string{
			"ECONNREFUSED":  {"dial tcp 127.0.0.1:9: connect: connection refused"},
			"EOF":           {"EOF", "EOF"},
			"EADDRNOTAVAIL": {"dial tcp 127.0.0.1:9: connect: cannot assign requested address"},
		},
		Errors: ErrorRate{Count: 7, Rate: 7.0 / 1997},
		Bytes:  Bytes{Out: 127488, In: 127488},
		// Rated requests that fell 5% short, with failures of several outcomes.
		Requests: &Requests{Written: 1992, Offered: 2097, Errors: 6, ErrorRate: 6.0 / 1992, PerSecond: 97.17,
			OfferedPerSecond: 102.29, Shortfall: 1 - 1992.0/2097, Rated: true,
			Outcomes: reqOutcomes},
		Latency: lat,
		Stages: []Stage{{Index: 0, StartS: 0, EndS: 20.5, Connections: Connections{Attempted: 2000},
			Outcomes: map[string]uint64{"ok": 1990}, Latency: map[string]LatencySummary{"connect": lat["connect"]}}},
		Thresholds: []ThresholdResult{
			{Expr: "connect.p99 < 5ms", Observed: "9.90ms", Pass: false},
			{Expr: "errors.rate < 1%", Observed: "0.35%", Pass: true},
		},
		Warnings: []string{"schedule_lag p99 is 1.50ms (over 250µs, 4× this machine's pacing floor of 40µs, at least 250µs): the generator, not the target, fell behind its schedule for part of the run"},
		Target:   &target.Stats{Accepted: 1992, Peak: 1000, Closed: 1992, BytesIn: 127488, BytesOut: 127488},
		Pacing:   &Pacing{FloorP99US: 40, LagWarnUS: 250},
	}
}

// unreachableSummary is a run that gave up on a closed port: 12 refused connects, 50 withdrawn
// from their backoff by the stop.
func unreachableSummary(t *testing.T) *Summary {
	s := fixedSummary(t)
	s.Interrupted, s.Verdict, s.Segments, s.DurationUS = false, "fail", 1, 2_010_000
	for k := range s.Outcomes {
		s.Outcomes[k] = 0
	}
	s.Outcomes["ECONNREFUSED"] = 12
	s.Connections = Connections{Attempted: 62, Failed: 12, Dropped: 50}
	s.First = map[string]First{"ECONNREFUSED": {AtS: 0.01}}
	s.Examples = map[string][]string{"ECONNREFUSED": {"dial tcp 127.0.0.1:9: connect: connection refused"}}
	s.Errors, s.Latency, s.Thresholds, s.Warnings, s.Target, s.Stages = ErrorRate{Count: 12, Rate: 1}, map[string]LatencySummary{}, nil, nil, nil, nil
	s.Requests = &Requests{Outcomes: allOutcomes(nil)}
	s.Unreachable = &Unreachable{AtS: 2.01, FirstAtS: 0.01, Failed: 12, Destination: "127.0.0.1:9", Outcome: "ECONNREFUSED",
		Error: "dial tcp 127.0.0.1:9: connect: connection refused"}
	return s
}

// keysOf decodes a JSON object and returns its keys, sorted.
func keysOf(t *testing.T, what string, raw json.RawMessage) []string {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("%s: %v in %s", what, err, raw)
	}
	return slices.Sorted(maps.Keys(m))
}

func object(t *testing.T, raw json.RawMessage) map[string]json.RawMessage {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("%v in %s", err, raw)
	}
	return m
}

func sorted(s ...string) []string { return slices.Sorted(slices.Values(s)) }

// TestSummaryJSONContract pins the key names of summary.json: they are what users' CI scripts parse,
// and v1 may only add to them.
func TestSummaryJSONContract(t *testing.T) {
	required := []string{"schema", "name", "started_at", "ended_at", "duration_us", "interrupted", "aborted",
		"verdict", "plan", "host", "segments", "connections", "outcomes", "first", "errors", "bytes", "latency",
		"stages", "ports", "thresholds"}
	tests := []struct {
		name    string
		summary func(t *testing.T) *Summary
		top     []string
		// raw values of top-level keys that must be exactly these
		literal map[string]string
	}{
		{
			name:    "a full summary",
			summary: fixedSummary,
			top:     sorted(append(slices.Clone(required), "examples", "warnings", "target", "pacing", "requests")...),
			literal: map[string]string{"ports": "null", "schema": `"portstorm/summary/v1"`, "started_at": `"2025-03-01T12:00:00Z"`},
		},
		{
			name:    "an empty summary still has every required key",
			summary: func(*testing.T) *Summary { return &Summary{Schema: Schema} },
			top:     sorted(required...),
			literal: map[string]string{"thresholds": "[]", "stages": "[]", "ports": "null", "first": "{}", "latency": "{}"},
		},
		{
			name:    "a run that gave up on an unreachable target",
			summary: unreachableSummary,
			top:     sorted(append(slices.Clone(required), "examples", "unreachable", "pacing", "requests")...),
			literal: map[string]string{"unreachable": `{"at_s":2.01,"first_at_s":0.01,"failed":12,"destination":"127.0.0.1:9","outcome":"ECONNREFUSED","error":"dial tcp 127.0.0.1:9: connect: connection refused"}`},
		},
		{
			name: "a built summary",
			summary: func(t *testing.T) *Summary {
				total, stages := recordRun(t)
				s, err := Build(Input{Plan: fixturePlan(), Start: t0, End: at(3 * time.Second), Total: total, Stages: stages,
					PacingFloor: 40 * time.Microsecond})
				if err != nil {
					t.Fatal(err)
				}
				return s
			},
			top:     sorted(append(slices.Clone(required), "examples", "warnings", "pacing", "requests")...),
			literal: map[string]string{"thresholds": "[]", "ports": "null", "verdict": `"no_thresholds"`},
		},
		{
			name:    "a capacity search (portstorm search): the answer's probe and the search",
			summary: func(t *testing.T) *Summary { s := fixedSummary(t); s.Search = searchFixture(); return s },
			top:     sorted(append(slices.Clone(required), "examples", "warnings", "target", "pacing", "requests", "search")...),
		},
		{
			name: "a run with a calibration, compared with its baseline normalized by it",
			summary: func(t *testing.T) *Summary {
				s := fixedSummary(t)
				s.Calibration = &Calibration{UnitUS: 61.25, ConnectP50US: 40.5, EchoP50US: 20.25, Connections: 1000, DurationUS: 70_000}
				scale, base, cur, norm := 2.0, 100.0, 210.0, 105.0
				s.Baseline = &BaselineResult{File: "b.json", Name: "b", StartedAt: "2025-03-01T11:00:00Z", MaxRegression: 0.1, Pass: true,
					Normalize: "calibration", Scale: &scale, Checks: []BaselineCheck{{Metric: "connect.p50", Base: "100µs",
						New: "210µs (105µs normalized)", BaseValue: &base, NewValue: &cur, NewNormalized: &norm, Delta: "+5%", Tolerance: "+10%", Pass: true}}}
				return s
			},
			top:     sorted(append(slices.Clone(required), "examples", "warnings", "target", "pacing", "requests", "calibration", "baseline")...),
			literal: map[string]string{"calibration": `{"unit_us":61.25,"connect_p50_us":40.5,"echo_p50_us":20.25,"connections":1000,"duration_us":70000}`},
		},
		{
			name:    "a run that held connections: the memory they took",
			summary: func(t *testing.T) *Summary { s := fixedSummary(t); s.Memory = memoryFixture(); return s },
			top:     sorted(append(slices.Clone(required), "examples", "warnings", "target", "pacing", "requests", "memory")...),
			literal: map[string]string{"memory": `{"at_s":279,"connections":1000000,"kernel":{"slab_bytes":9126805504,"per_connection":9126,` +
				`"caches":[{"name":"TCP","objects":2000000,"object_size":2368,"bytes":4844158976,"per_connection":4844.158976}]},` +
				`"generator":{"processes":54,"base_rss":925511680,"rss":1925511680,"per_connection":1000},` +
				`"target":{"processes":53,"base_rss":808083456,"rss":861564928,"per_connection":53}}`},
		},
		{
			name: "a run whose report.html could not be written",
			summary: func(t *testing.T) *Summary {
				s := fixedSummary(t)
				s.Verdict, s.OutputsIncomplete = VerdictError, []string{HTMLFile}
				return s
			},
			top:     sorted(append(slices.Clone(required), "examples", "warnings", "target", "outputs_incomplete", "pacing", "requests")...),
			literal: map[string]string{"verdict": `"error"`, "outputs_incomplete": `["report.html"]`},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := tc.summary(t)
			b, err := json.Marshal(s)
			if err != nil {
				t.Fatal(err)
			}
			top := object(t, b)
			if got := keysOf(t, "summary", b); !slices.Equal(got, tc.top) {
				t.Errorf("top-level keys\n got %q\nwant %q", got, tc.top)
			}
			for k, want := range tc.literal {
				if got := string(top[k]); got != want {
					t.Errorf("%s = %s, want %s", k, got, want)
				}
			}

			if raw, ok := top["pacing"]; ok {
				if got := keysOf(t, "pacing", raw); !slices.Equal(got, sorted("floor_p99_us", "lag_warn_us")) {
					t.Errorf("pacing keys %q, want [floor_p99_us lag_warn_us]", got)
				}
			}

			if raw, ok := top["baseline"]; ok {
				want := sorted("file", "name", "started_at", "max_regression", "pass", "checks", "normalize", "scale")
				if got := keysOf(t, "baseline", raw); !slices.Equal(got, want) {
					t.Errorf("baseline keys\n got %q\nwant %q", got, want)
				}
				var checks []json.RawMessage
				if err := json.Unmarshal(object(t, raw)["checks"], &checks); err != nil {
					t.Fatal(err)
				}
				for _, c := range checks {
					want := sorted("metric", "base", "new", "base_value", "new_value", "new_normalized", "delta", "tolerance", "pass")
					if got := keysOf(t, "baseline.checks[]", c); !slices.Equal(got, want) {
						t.Errorf("baseline.checks[] keys\n got %q\nwant %q", got, want)
					}
				}
			}

			wantConns := sorted("attempted", "established", "failed", "dropped", "closed", "peak_concurrent", "per_second")
			if got := keysOf(t, "connections", top["connections"]); !slices.Equal(got, wantConns) {
				t.Errorf("connections keys\n got %q\nwant %q", got, wantConns)
			}
			if got := keysOf(t, "outcomes", top["outcomes"]); !slices.Equal(got, sorted(outcomeNames...)) {
				t.Errorf("outcomes keys\n got %q\nwant %q", got, sorted(outcomeNames...))
			}
			if got := keysOf(t, "errors", top["errors"]); !slices.Equal(got, sorted("count", "rate")) {
				t.Errorf("errors keys %q", got)
			}
			if got := keysOf(t, "bytes", top["bytes"]); !slices.Equal(got, sorted("out", "in")) {
				t.Errorf("bytes keys %q", got)
			}
			if raw, ok := top["requests"]; ok {
				checkRequestsKeys(t, "requests", raw)
			}

			wantLat := sorted("count", "min", "mean", "p50", "p90", "p99", "p999", "max", "hdr")
			for name, raw := range object(t, top["latency"]) {
				if !slices.Contains(latencyNames, name) {
					t.Errorf("latency.%s is not one of %q", name, latencyNames)
				}
				if got := keysOf(t, "latency."+name, raw); !slices.Equal(got, wantLat) {
					t.Errorf("latency.%s keys\n got %q\nwant %q", name, got, wantLat)
				}
			}
			for name, raw := range object(t, top["first"]) {
				if !slices.Contains(outcomeNames, name) {
					t.Errorf("first.%s is not an outcome", name)
				}
				if got := keysOf(t, "first."+name, raw); !slices.Equal(got, sorted("at_s", "concurrency")) {
					t.Errorf("first.%s keys %q, want [at_s concurrency]", name, got)
				}
			}
			var thresholds []json.RawMessage
			if err := json.Unmarshal(top["thresholds"], &thresholds); err != nil || thresholds == nil {
				t.Errorf("thresholds = %s, want an array (%v)", top["thresholds"], err)
			}
			for i, raw := range thresholds {
				// Required keys; the optional ones (metric, condition, abort_on_fail...) may be added.
				got := keysOf(t, "thresholds[]", raw)
				for _, k := range []string{"expr", "observed", "pass"} {
					if !slices.Contains(got, k) {
						t.Errorf("thresholds[%d] keys %q lack %q", i, got, k)
					}
				}
			}
			var stages []json.RawMessage
			if err := json.Unmarshal(top["stages"], &stages); err != nil || stages == nil {
				t.Errorf("stages = %s, want an array (%v)", top["stages"], err)
			}
			for i, raw := range stages {
				want := sorted("index", "start_s", "end_s", "connections", "outcomes", "latency")
				// A built summary's stages hold their requests; a hand-built one's may not.
				if raw, ok := object(t, raw)["requests"]; ok {
					want = sorted(append(want, "requests")...)
					checkRequestsKeys(t, fmt.Sprintf("stages[%d].requests", i), raw)
				}
				if got := keysOf(t, "stages[]", raw); !slices.Equal(got, want) {
					t.Errorf("stages[%d] keys\n got %q\nwant %q", i, got, want)
				}
			}
		})
	}
}

// checkRequestsKeys pins the keys of a requests object (the run's or a stage's), and that its
// outcomes hold every outcome name.
func checkRequestsKeys(t *testing.T, what string, raw json.RawMessage) {
	t.Helper()
	want := sorted("written", "offered", "outcomes", "errors", "error_rate", "per_second", "offered_per_second", "shortfall", "rated")
	if got := keysOf(t, what, raw); !slices.Equal(got, want) {
		t.Errorf("%s keys\n got %q\nwant %q", what, got, want)
	}
	if got := keysOf(t, what+".outcomes", object(t, raw)["outcomes"]); !slices.Equal(got, sorted(outcomeNames...)) {
		t.Errorf("%s.outcomes keys\n got %q\nwant %q", what, got, sorted(outcomeNames...))
	}
}

// TestVerdictValues pins the verdicts CI scripts compare summary.json's "verdict" with.
func TestVerdictValues(t *testing.T) {
	got := []string{VerdictPass, VerdictFail, VerdictNone, VerdictError}
	if want := []string{"pass", "fail", "no_thresholds", "error"}; !slices.Equal(got, want) {
		t.Fatalf("verdicts %q, want %q", got, want)
	}
}

func TestSummaryJSONThresholdsNeverNull(t *testing.T) {
	// A summary read back from a file written by hand, or assembled by a merge, may hold nil slices.
	s := fixedSummary(t)
	s.Thresholds, s.Stages, s.Outcomes, s.First = nil, nil, map[string]uint64{"ok": 3}, nil
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	top := object(t, b)
	for k, want := range map[string]string{"thresholds": "[]", "stages": "[]", "first": "{}"} {
		if got := string(top[k]); got != want {
			t.Errorf("%s = %s, want %s", k, got, want)
		}
	}
	var outs map[string]uint64
	if err := json.Unmarshal(top["outcomes"], &outs); err != nil {
		t.Fatal(err)
	}
	if len(outs) != len(outcomeNames) || outs["ok"] != 3 {
		t.Errorf("outcomes = %v, want every name, ok 3", outs)
	}
	if s.Thresholds != nil || len(s.Outcomes) != 1 {
		t.Error("MarshalJSON changed the summary it wrote")
	}
}

func TestWriteTextGolden(t *testing.T) {
	tests := []struct {
		name    string
		golden  string
		summary func(t *testing.T) *Summary
		dir     string
	}{
		{name: "failed interrupted run with errors", golden: "text_full.golden", summary: fixedSummary,
			dir: "results/quickstart-20250301T120000Z"},
		{
			name: "clean run", golden: "text_clean.golden", dir: "",
			summary: func(t *testing.T) *Summary {
				s := fixedSummary(t)
				s.Interrupted, s.Verdict, s.Segments = false, "pass", 1
				for k := range s.Outcomes {
					s.Outcomes[k] = 0
				}
				s.Outcomes["ok"] = 2000
				s.First, s.Examples, s.Errors, s.Thresholds, s.Warnings = nil, nil, ErrorRate{}, nil, nil
				delete(s.Latency, "schedule_lag")
				// Unrated requests, none failed: no offered figures.
				s.Requests = &Requests{Written: 2000, Offered: 2000, PerSecond: 97.56, OfferedPerSecond: 97.56,
					Outcomes: allOutcomes(map[string]uint64{"ok": 2000})}
				return s
			},
		},
		{
			name: "a million held: memory per connection", golden: "text_memory.golden", dir: "",
			summary: func(t *testing.T) *Summary {
				s := fixedSummary(t)
				s.Interrupted, s.Verdict, s.Segments, s.Warnings = false, "pass", 53, nil
				s.Memory = memoryFixture()
				s.Memory.Kernel.Caches = append(s.Memory.Kernel.Caches,
					memory.CacheGrowth{Name: "sock_inode_cache", Objects: 2000000, ObjSize: 832, Bytes: 1704984576, PerConnection: 1704.984576},
					memory.CacheGrowth{Name: "filp", Objects: 2000000, ObjSize: 192, Bytes: 385875968, PerConnection: 385.875968})
				return s
			},
		},
		{name: "gave up on an unreachable target", golden: "text_unreachable.golden", summary: unreachableSummary, dir: "results/nginx-20250301T120000Z"},
		{
			name: "unjudged run, most connections failed", golden: "text_unjudged.golden", dir: "",
			summary: func(t *testing.T) *Summary {
				s := fixedSummary(t)
				s.Interrupted, s.Verdict, s.Segments, s.Thresholds, s.Warnings = false, VerdictNone, 1, nil, nil
				s.Connections = Connections{Attempted: 2000, Established: 400, Failed: 1600, Closed: 400, PeakConcurrent: 90, PerSecond: 19.5}
				Settle(s)
				return s
			},
		},
		{
			name: "report.html not written", golden: "text_incomplete.golden", dir: "results/x",
			summary: func(t *testing.T) *Summary {
				s := fixedSummary(t)
				s.Interrupted, s.Verdict, s.Segments, s.Warnings = false, VerdictFail, 1, nil
				s.OutputsIncomplete = []string{HTMLFile}
				Settle(s)
				return s
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			WriteText(&buf, tc.summary(t), tc.dir)
			path := filepath.Join("testdata", tc.golden)
			if *update {
				if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if !bytes.Equal(buf.Bytes(), want) {
				t.Errorf("WriteText differs from %s (go test -update rewrites it)\n got:\n%s\nwant:\n%s", path, buf.Bytes(), want)
			}
			// Twice more: the same summary prints the same text every time.
			for range 2 {
				var again bytes.Buffer
				WriteText(&again, tc.summary(t), tc.dir)
				if !bytes.Equal(again.Bytes(), buf.Bytes()) {
					t.Fatalf("WriteText is not deterministic:\n%s\nthen\n%s", buf.Bytes(), again.Bytes())
				}
			}
		})
	}
}

// entries lists a folder's file names.
func entries(t *testing.T, dir string) []string {
	t.Helper()
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, d := range des {
		names = append(names, d.Name())
	}
	return names
}

func TestSummaryRoundTrip(t *testing.T) {
	tests := []struct {
		name    string
		summary func(t *testing.T) *Summary
	}{
		{name: "fixed summary", summary: fixedSummary},
		{name: "built summary", summary: func(t *testing.T) *Summary {
			total, stages := recordRun(t)
			s, err := Build(Input{Plan: fixturePlan(), Start: t0, End: at(3 * time.Second), Total: total, Stages: stages})
			if err != nil {
				t.Fatal(err)
			}
			return s
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			want := tc.summary(t)
			if err := WriteSummary(dir, want); err != nil {
				t.Fatal(err)
			}
			if got := entries(t, dir); !slices.Equal(got, []string{"summary.json"}) {
				t.Errorf("folder holds %q, want only summary.json", got)
			}
			got, err := ReadSummary(filepath.Join(dir, "summary.json"))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				gb, _ := json.MarshalIndent(got, "", " ")
				wb, _ := json.MarshalIndent(want, "", " ")
				t.Errorf("read back a different summary\n got %s\nwant %s", gb, wb)
			}
		})
	}
}

func TestReadSummaryRefuses(t *testing.T) {
	tests := []struct {
		name    string
		content string // "" with missing: no file at all
		missing bool
		wantIs  error
	}{
		{name: "wrong schema", content: `{"schema": "portstorm/summary/v0", "name": "x"}`},
		{name: "no schema", content: `{"name": "x"}`},
		{name: "another tool's JSON", content: `{"schema": "vegeta/report", "latencies": {}}`},
		{name: "garbage", content: "not json at all\x00\xff"},
		{name: "truncated", content: `{"schema": "portstorm/summary/v1", "name": "x", "connect`},
		{name: "empty file", content: ""},
		{name: "JSON null", content: "null"},
		{name: "an array", content: `[{"schema": "portstorm/summary/v1"}]`},
		{name: "wrong type for a field", content: `{"schema": "portstorm/summary/v1", "connections": {"attempted": "many"}}`},
		{name: "missing file", missing: true, wantIs: fs.ErrNotExist},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "summary.json")
			if !tc.missing {
				if err := os.WriteFile(path, []byte(tc.content), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			s, err := ReadSummary(path)
			if err == nil {
				t.Fatalf("ReadSummary accepted it: %+v", s)
			}
			if s != nil {
				t.Errorf("ReadSummary returned a summary with its error")
			}
			if !strings.Contains(err.Error(), path) {
				t.Errorf("error %q does not name the file", err)
			}
			if tc.wantIs != nil && !errors.Is(err, tc.wantIs) {
				t.Errorf("error %v does not wrap %v", err, tc.wantIs)
			}
		})
	}
}

func TestReadSummaryAcceptsAddedFields(t *testing.T) {
	// v1 only ever adds fields: a reader from an older build must still read a newer v1 file.
	path := filepath.Join(t.TempDir(), "summary.json")
	content := `{"schema": "portstorm/summary/v1", "name": "x", "added_later": {"a": 1}, "connections": {"attempted": 3, "new_counter": 1}}`
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := ReadSummary(path)
	if err != nil {
		t.Fatal(err)
	}
	if s.Name != "x" || s.Connections.Attempted != 3 {
		t.Errorf("read %+v", s)
	}
}

func TestWriteFileAtomic(t *testing.T) {
	tests := []struct {
		name     string
		existing []byte // written to the path first; nil: none
		dirAt    bool   // the path is an existing folder
		missing  bool   // the path's folder does not exist
		wantErr  bool
	}{
		{name: "creates a new file"},
		{name: "replaces a longer file whole", existing: bytes.Repeat([]byte("old content "), 1000)},
		{name: "replaces a shorter file whole", existing: []byte("x")},
		{name: "missing folder", missing: true, wantErr: true},
		{name: "path is a folder", dirAt: true, wantErr: true},
	}
	data := []byte(`{"schema": "portstorm/summary/v1"}` + "\n")
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "summary.json")
			var want []string
			switch {
			case tc.missing:
				path = filepath.Join(dir, "no", "such", "folder", "summary.json")
			case tc.dirAt:
				if err := os.Mkdir(path, 0o755); err != nil {
					t.Fatal(err)
				}
				want = []string{"summary.json"}
			default:
				want = []string{"summary.json"}
			}
			if tc.existing != nil {
				if err := os.WriteFile(path, tc.existing, 0o600); err != nil {
					t.Fatal(err)
				}
			}

			err := WriteFileAtomic(path, data)
			if got := entries(t, dir); !slices.Equal(got, want) {
				t.Errorf("folder holds %q afterwards, want %q: temp files or folders left behind", got, want)
			}
			if tc.wantErr {
				if err == nil {
					t.Fatal("WriteFileAtomic succeeded, want an error")
				}
				if !strings.Contains(err.Error(), path) {
					t.Errorf("error %q does not name %s", err, path)
				}
				if tc.missing && !errors.Is(err, fs.ErrNotExist) {
					t.Errorf("error %v does not wrap fs.ErrNotExist", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, data) {
				t.Errorf("file holds %q, want %q", got, data)
			}
			if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o644 {
				t.Errorf("mode %v (%v), want 0644", fi.Mode(), err)
			}
		})
	}
}

func TestWriteTimeline(t *testing.T) {
	total, stages := recordRun(t)
	full := TimelineRow{EndS: 4.125, Stage: 3, Active: -1, PeakActive: 7, Attempted: 11, Established: 13, Failed: 17,
		Dropped: 19, Closed: 23, ConnectP50: 29, ConnectP99: 31, ConnectMax: 37, IntendedP99: 41, RTTP99: 43,
		SlotWaitP99: 47, LagP99: 53, IntervalS: 0.5, Requests: 59, RequestsOffered: 61, RequestErrors: 67,
		RequestIntendedP99: 71, RequestLagP99: 73, WindowWaitP99: 79}
	for i := range full.Outcomes {
		full.Outcomes[i] = uint64(100 + i)
	}
	wantHead := []string{"t_s", "stage", "active", "peak_active", "attempted", "established", "failed", "dropped", "closed",
		"outcome_ok", "outcome_EADDRNOTAVAIL", "outcome_EADDRINUSE", "outcome_ECONNREFUSED", "outcome_ETIMEDOUT",
		"outcome_ECONNRESET", "outcome_EMFILE", "outcome_EOF", "outcome_echo_mismatch", "outcome_status_mismatch",
		"outcome_reply_mismatch", "outcome_bad_response", "outcome_tls_handshake", "outcome_canceled",
		"outcome_ENETUNREACH", "outcome_EHOSTUNREACH", "outcome_ENETDOWN", "outcome_other",
		"connect_p50_us", "connect_p99_us", "connect_max_us", "connect_intended_p99_us", "rtt_p99_us",
		"slot_wait_p99_us", "schedule_lag_p99_us",
		// Appended at the end, so that the columns above keep their positions.
		"requests_offered_per_s", "requests_per_s", "request_errors", "request_intended_p99_us", "request_lag_p99_us", "window_wait_p99_us"}

	tests := []struct {
		name string
		rows []TimelineRow
	}{
		{name: "no intervals", rows: nil},
		{name: "recorded intervals", rows: []TimelineRow{Row(stages[0]), Row(stages[2]), Row(total)}},
		{name: "every field distinct", rows: []TimelineRow{full}},
		{name: "zero snapshot", rows: []TimelineRow{Row(&metrics.Snapshot{})}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := WriteTimeline(dir, tc.rows); err != nil {
				t.Fatal(err)
			}
			if got := entries(t, dir); !slices.Equal(got, []string{"timeline.csv"}) {
				t.Errorf("folder holds %q, want only timeline.csv", got)
			}
			f, err := os.Open(filepath.Join(dir, "timeline.csv"))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			recs, err := csv.NewReader(f).ReadAll()
			if err != nil {
				t.Fatal(err)
			}
			if len(recs) != len(tc.rows)+1 {
				t.Fatalf("%d records, want a header and %d rows", len(recs), len(tc.rows))
			}
			if !slices.Equal(recs[0], wantHead) {
				t.Errorf("header\n got %q\nwant %q", recs[0], wantHead)
			}
			for i, rec := range recs[1:] {
				got, offered, written := parseRow(t, rec)
				want := tc.rows[i]
				// The request counts are written as rates over the interval.
				wantOffered, wantWritten := 0.0, 0.0
				if want.IntervalS > 0 {
					wantOffered, wantWritten = float64(want.RequestsOffered)/want.IntervalS, float64(want.Requests)/want.IntervalS
				}
				if math.Abs(offered-wantOffered) > 0.001 || math.Abs(written-wantWritten) > 0.001 {
					t.Errorf("row %d: requests offered %v/s written %v/s, want %v/s and %v/s", i, offered, written, wantOffered, wantWritten)
				}
				want.IntervalS, want.Requests, want.RequestsOffered = 0, 0, 0
				if got != want {
					t.Errorf("row %d reads back as\n%+v\nwant\n%+v", i, got, want)
				}
			}
		})
	}
}

// parseRow reads a timeline.csv record back into a TimelineRow, and the requests offered and
// written per second (the row's IntervalS, Requests and RequestsOffered stay 0).
func parseRow(t *testing.T, rec []string) (r TimelineRow, offered, written float64) {
	t.Helper()
	next := func() string {
		if len(rec) == 0 {
			t.Fatal("record too short")
		}
		v := rec[0]
		rec = rec[1:]
		return v
	}
	i := func() int64 {
		v, err := strconv.ParseInt(next(), 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	u := func() uint64 {
		v, err := strconv.ParseUint(next(), 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	f := func() float64 {
		v, err := strconv.ParseFloat(next(), 64)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	var err error
	if r.EndS, err = strconv.ParseFloat(next(), 64); err != nil {
		t.Fatal(err)
	}
	r.Stage = int(i())
	r.Active, r.PeakActive = i(), i()
	r.Attempted, r.Established, r.Failed, r.Dropped, r.Closed = u(), u(), u(), u(), u()
	for o := range r.Outcomes {
		r.Outcomes[o] = u()
	}
	r.ConnectP50, r.ConnectP99, r.ConnectMax, r.IntendedP99, r.RTTP99 = i(), i(), i(), i(), i()
	r.SlotWaitP99, r.LagP99 = i(), i()
	offered, written = f(), f()
	r.RequestErrors = u()
	r.RequestIntendedP99, r.RequestLagP99, r.WindowWaitP99 = i(), i(), i()
	if len(rec) != 0 {
		t.Errorf("%d fields left over: %q", len(rec), rec)
	}
	return r, offered, written
}

// memoryFixture is summary.json's memory of a million connections held.
func memoryFixture() *memory.Report {
	return &memory.Report{AtS: 279, Connections: 1000000,
		Kernel: &memory.Kernel{SlabBytes: 9126805504, PerConnection: 9126, Caches: []memory.CacheGrowth{
			{Name: "TCP", Objects: 2000000, ObjSize: 2368, Bytes: 4844158976, PerConnection: 4844.158976}}},
		Generator: &memory.Process{Processes: 54, BaseRSS: 925511680, RSS: 1925511680, PerConnection: 1000},
		Target:    &memory.Process{Processes: 53, BaseRSS: 808083456, RSS: 861564928, PerConnection: 53}}
}

// TestSummaryJSONPortsContract pins the keys of ports.time_wait, which CI gates read, and
// host.conntrack.
func TestSummaryJSONPortsContract(t *testing.T) {
	s := fixedSummary(t)
	s.Ports = &ports.Report{TimeWait: ports.TimeWait{Peak: 3, OthersPeak: 5}}
	s.Host.Conntrack = preflight.ConntrackInactive
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	pr := object(t, object(t, b)["ports"])
	want := sorted("peak", "last", "target_peak", "others_peak", "samples", "skipped", "sample_max_us")
	if got := keysOf(t, "ports.time_wait", pr["time_wait"]); !slices.Equal(got, want) {
		t.Errorf("ports.time_wait keys\n got %q\nwant %q", got, want)
	}
	if got := string(object(t, pr["time_wait"])["others_peak"]); got != "5" {
		t.Errorf("ports.time_wait.others_peak = %s, want 5", got)
	}
	if got := string(object(t, object(t, b)["host"])["conntrack"]); got != `"inactive"` {
		t.Errorf("host.conntrack = %s, want \"inactive\"", got)
	}
	// The host's whole-machine limits the forecast reads (fs.file-max, MemAvailable).
	host := object(t, object(t, b)["host"])
	for _, k := range []string{"file_max", "file_nr", "mem_available"} {
		if _, ok := host[k]; !ok {
			t.Errorf("host.%s missing", k)
		}
	}
}
