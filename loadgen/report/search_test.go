package report

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"
)

func ptr(v float64) *float64 { return &v }

// searchFixture is the search section of a search that converged at 4,000/s.
func searchFixture() *Search {
	probe := func(i int, level float64, confirm bool, outcome string, p99 float64, f *SearchFailure) SearchProbe {
		return SearchProbe{Index: i, Level: level, Confirm: confirm, DurationS: 10, StartedAt: t0.Add(time.Duration(i) * 12 * time.Second),
			Outcome: outcome, Dir: "probes/0" + string(rune('0'+i)), Verdict: map[bool]string{true: VerdictPass, false: VerdictFail}[outcome == "held"],
			Values: []*float64{ptr(p99), ptr(0)}, Failure: f, Stage: &Stage{Outcomes: map[string]uint64{"ok": 10}}, TimeWait: 0}
	}
	fail := &SearchFailure{Kind: FailThreshold, Message: `threshold "latency.p99 < 10ms" failed (observed 25ms)`,
		Threshold: "latency.p99 < 10ms", Metric: "connect_intended.p99", Observed: "25ms", Outcomes: map[string]uint64{"ETIMEDOUT": 3}}
	return &Search{Dimension: "arrival_rate", Unit: "connections/s", Min: 1000, Max: 64000, Growth: 2, Tolerance: 0.05,
		Require: ptr(3000), Status: "converged", Held: ptr(4000), Confirmed: true, Failed: ptr(4190), Within: ptr(0.0475), Pass: true,
		Failure: fail, AnswerProbe: 4, StartedAt: t0, DurationS: 60,
		Thresholds: []SearchThreshold{{Expr: "latency.p99 < 10ms", Metric: "connect_intended.p99", Kind: "time", Limit: 10000},
			{Expr: "errors.rate < 0.1%", Metric: "errors.rate", Kind: "ratio", Limit: 0.001}},
		Probes: []SearchProbe{probe(1, 2000, false, "held", 800, nil), probe(2, 8000, false, "failed", 25000, fail),
			probe(3, 4190, false, "failed", 12000, fail), probe(4, 4000, true, "held", 3000, nil)}}
}

// TestSearchJSONContract pins summary.json's search object (docs/results.md): its keys, those of
// a probe and of a failure, and null (never absent) for a missing held, failed, within or require.
func TestSearchJSONContract(t *testing.T) {
	b, err := json.Marshal(searchFixture())
	if err != nil {
		t.Fatal(err)
	}
	want := sorted("dimension", "unit", "min", "max", "growth", "tolerance", "require", "status", "held", "confirmed", "failed",
		"within", "pass", "failure", "answer_probe", "started_at", "duration_s", "thresholds", "probes")
	if got := keysOf(t, "search", b); !slices.Equal(got, want) {
		t.Errorf("search keys\n got %q\nwant %q", got, want)
	}
	top := object(t, b)
	var probes []json.RawMessage
	if err := json.Unmarshal(top["probes"], &probes); err != nil || len(probes) != 4 {
		t.Fatalf("probes: %s (%v)", top["probes"], err)
	}
	wantProbe := sorted("index", "level", "confirm", "duration_s", "started_at", "outcome", "dir", "verdict", "values", "stage", "time_wait")
	if got := keysOf(t, "probes[0]", probes[0]); !slices.Equal(got, wantProbe) {
		t.Errorf("probe keys\n got %q\nwant %q", got, wantProbe)
	}
	if got := keysOf(t, "probes[1]", probes[1]); !slices.Equal(got, sorted(append(slices.Clone(wantProbe), "failure")...)) {
		t.Errorf("failed probe keys %q", got)
	}
	wantFail := sorted("kind", "message", "threshold", "metric", "observed", "outcomes")
	if got := keysOf(t, "failure", top["failure"]); !slices.Equal(got, wantFail) {
		t.Errorf("failure keys\n got %q\nwant %q", got, wantFail)
	}
	var th []json.RawMessage
	json.Unmarshal(top["thresholds"], &th)
	if got := keysOf(t, "thresholds[0]", th[0]); !slices.Equal(got, sorted("expr", "metric", "kind", "limit")) {
		t.Errorf("threshold keys %q", got)
	}
	// A search where nothing held and nothing was required: nulls, not absent keys.
	none := &Search{Dimension: "concurrency", Unit: "connections", Status: "min_failed", Probes: []SearchProbe{}}
	b, _ = json.Marshal(none)
	top = object(t, b)
	for _, k := range []string{"held", "failed", "within", "require", "failure"} {
		if string(top[k]) != "null" {
			t.Errorf("%s = %s, want null", k, top[k])
		}
	}
	// The kinds of failure and the statuses CI scripts branch on.
	if got := []string{FailThreshold, FailPorts, FailFDs, FailHostLimit, FailUnreachable}; !slices.Equal(got,
		[]string{"threshold", "ports", "fds", "host_limit", "unreachable"}) {
		t.Errorf("failure kinds %q", got)
	}
}

func TestSearchText(t *testing.T) {
	var b bytes.Buffer
	WriteSearchText(&b, searchFixture())
	out := b.String()
	for _, want := range []string{
		"search arrival_rate: converged after 4 probe(s), 60.0s",
		"      2  8,000 connections/s       10.00 s  failed             threshold \"latency.p99 < 10ms\" failed (observed 25ms)",
		"      4  4,000 connections/s       10.00 s  held (confirm)\n",
		"answer       4,000 connections/s holds; 4,190 connections/s fails: threshold \"latency.p99 < 10ms\" failed (observed 25ms) (known within 4.8%, tolerance 5.0%)",
		"require      3,000 connections/s: pass",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in:\n%s", want, out)
		}
	}
}

// TestSearchChart: report.html of a search draws one probe chart per threshold, first.
func TestSearchChart(t *testing.T) {
	s := fixedSummary(t)
	s.Search = searchFixture()
	ids := ChartIDs(s, &ChartData{})
	if len(ids) < 2 || ids[0] != ChartSearch+"0" || ids[1] != ChartSearch+"1" {
		t.Fatalf("charts %q, want the search's first", ids)
	}
	var b bytes.Buffer
	if err := RenderHTML(&b, s, &ChartData{}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Capacity search: latency.p99 &lt; 10ms", `"diamond"`, "held", "failed"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("report.html lacks %q", want)
		}
	}
	s.Search = nil
	for _, id := range ChartIDs(s, &ChartData{}) {
		if strings.HasPrefix(id, ChartSearch) {
			t.Errorf("a run's report has a search chart %s", id)
		}
	}
}
