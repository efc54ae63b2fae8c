//go:build linux

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

// TestTotalRateStopsAtAbort: a run at a total rate whose intended requests are under 2 ms apart
// (1,000/s) and that an abort_on_fail threshold stops early offers no requests after the stop. The
// dispatcher's pacer never waited on its timer at such gaps, so it missed the stop and offered the
// rest of the stage (2,000 requests for 2 s) to connections that had all ended: a shortfall of
// about half. Bounded: one run of at most 2 s at 1,000 requests/s.
func TestTotalRateStopsAtAbort(t *testing.T) {
	checkFDs(t)
	p := writePlan(t, `version: 1
name: abort
target: {builtin: {mode: echo}}
connection: {send: {bytes: 16B, count: unlimited, total_rate: 1000}, close: rst}
load: {model: concurrency, start: 4, stages: [{duration: 2s, target: 4}], graceful_stop: 1s}
output: {interval: 200ms}
thresholds: [{expr: "requests.count < 100", abort_on_fail: true}]
`)
	dir := filepath.Join(t.TempDir(), "r")
	code, stdout, stderr := runMain(t, nil, "run", p, "--out", dir)
	if code != 1 {
		t.Fatalf("exit %d, want 1 (the threshold failed)\n%s\n%s", code, stdout, stderr)
	}
	s := readSummary(t, dir)
	if s.Stopped == nil {
		t.Fatalf("not stopped by the threshold:\n%s", stdout)
	}
	// Offered until the stop (and not past it by more than the run's drain): well under the
	// stage's 2,000.
	r := s.Requests
	limit := uint64(1000 * (s.Stopped.AtS + 0.5))
	if r == nil || r.Offered > limit {
		t.Fatalf("offered %+v after a stop at %.2fs; want at most %d", r, s.Stopped.AtS, limit)
	}
}
