package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/portstorm/portstorm/loadgen/report"
)

// TestKeepAliveRequestsEverywhere: a keep-alive HTTP run against the built-in http target shows
// its requests per second in the progress line, summary.json (with the stage's), the text summary,
// timeline.csv, report.html, and a requests.per_second threshold judges it; latency.p99 judges rtt.
func TestKeepAliveRequestsEverywhere(t *testing.T) {
	checkFDs(t)
	p := writePlan(t, `version: 1
name: keepalive
target: {builtin: {mode: http}}
connection:
  send: {protocol: http, count: 200, http: {path: /, status: 200}}
  close: fin
load:
  model: concurrency
  stages: [{duration: 600ms, target: 4}]
output: {interval: 200ms}
thresholds:
  - "requests.per_second > 1/s"
  - "requests.error_rate == 0"
  - "latency.p99 < 1m"
`)
	dir := filepath.Join(t.TempDir(), "r")
	code, stdout, stderr := runMain(t, nil, "run", p, "--out", dir)
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
	}
	s := readSummary(t, dir)
	r := s.Requests
	if r == nil || r.Written <= s.Connections.Established || r.Offered != r.Written || r.PerSecond <= 0 || r.Errors != 0 || r.Rated {
		t.Fatalf("requests %+v, %d established", r, s.Connections.Established)
	}
	// (The drain after the last stage is the run's, not the stage's.)
	if len(s.Stages) != 1 || s.Stages[0].Requests == nil || s.Stages[0].Requests.Written == 0 || s.Stages[0].Requests.Written > r.Written {
		t.Errorf("stage requests %+v of %d", s.Stages[0].Requests, r.Written)
	}
	if got := s.Thresholds[2].Metric; got != "rtt.p99" {
		t.Errorf("latency.p99 judged %s, want rtt.p99", got)
	}
	for _, want := range []string{"  requests ", "/s  errors 0  rtt p99 ", "  requests     written "} {
		if !strings.Contains(stdout, want) {
			t.Errorf("stdout lacks %q:\n%s", want, stdout)
		}
	}
	f, err := os.Open(filepath.Join(dir, report.TimelineFile))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tl, err := report.ReadTimeline(f)
	if err != nil {
		t.Fatal(err)
	}
	perS, ok := tl.Column("requests_per_s")
	var most float64
	for _, v := range perS {
		most = max(most, v)
	}
	if !ok || most <= 0 {
		t.Errorf("timeline requests_per_s %v", perS)
	}
	page, err := os.ReadFile(filepath.Join(dir, report.HTMLFile))
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{report.ChartRequests, report.ChartRequestLatency} {
		if !strings.Contains(string(page), `id="`+id+`"`) {
			t.Errorf("report.html has no %s", id)
		}
	}
}
