//go:build linux

package main

import (
	"bufio"
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	hdr "github.com/HdrHistogram/hdrhistogram-go"

	"github.com/portstorm/portstorm/loadgen/report"
)

// gatePlan is a sub-second arrival plan against the built-in echo target (165 connections), with
// the given thresholds section. Its timeouts and graceful stop are minutes, not the defaults'
// seconds: on a busy machine connections are slow, not failed, so that whether a threshold passes
// does not depend on the machine's speed. (TestValidateThresholds counts on the line numbers.)
func gatePlan(t *testing.T, name, thresholds string) string {
	t.Helper()
	return writePlan(t, `version: 1
name: `+name+`
target: {builtin: {mode: echo}}
connection: {send: {bytes: 32B, count: 1}, close: rst, connect_timeout: 2m, io_timeout: 2m}
load:
  model: arrival
  graceful_stop: 2m
  stages: [{duration: 300ms, target: 300},
           {duration: 400ms, target: 300}]
output: {interval: 100ms}
`+thresholds)
}

func readJUnit(t *testing.T, dir string) *report.JUnitSuites {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "junit.xml"))
	if err != nil {
		t.Fatal(err)
	}
	var j report.JUnitSuites
	if err := xml.Unmarshal(b, &j); err != nil {
		t.Fatalf("junit.xml does not parse: %v\n%s", err, b)
	}
	return &j
}

func TestGatePlans(t *testing.T) {
	checkFDs(t)
	tests := []struct {
		name       string
		thresholds string
		code       int
		failing    map[string]string // failing threshold -> its observed value (a prefix)
	}{
		// What passes and fails here holds on any machine: a connect slower than connect_timeout
		// (2m) fails instead of being measured, the plan has 165 arrivals and stage 1 is cut
		// whatever the collector's lag; latencies themselves are for benchmarks.
		{"passing gate", `thresholds:
  - "connect.p99 < 2m"
  - "errors.rate < 1%"
  - "connections.established >= 100"
  - "stage[1].errors.count == 0"
  - "ports.exhaustion == none"
  - "outcomes.ECONNREFUSED == 0"
`, 0, nil},
		{"failing gate", `thresholds:
  - "connect.p99 < 2m"
  - "connections.established >= 1_000_000"
  - "connect.min > 2m"
`, 1, map[string]string{
			"connections.established >= 1_000_000": "", // observed: the established count, checked below
			"connect.min > 2m":                     "",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "r")
			code, stdout, stderr := runMain(t, nil, "run", gatePlan(t, "gate", tt.thresholds), "-q", "--out", dir)
			if code != tt.code {
				t.Fatalf("exit %d, want %d\n%s\n%s", code, tt.code, stdout, stderr)
			}
			s := readSummary(t, dir)
			checkConservation(t, s)
			if want := map[int]string{0: "pass", 1: "fail"}[tt.code]; s.Verdict != want {
				t.Errorf("verdict %s, want %s", s.Verdict, want)
			}
			// The verdict table: metric, condition, observed, result.
			if !regexp.MustCompile(`(?m)^    metric +condition +observed +result$`).MatchString(stdout) {
				t.Errorf("no verdict table on stdout:\n%s", stdout)
			}
			j := readJUnit(t, dir)
			if len(j.Suites) != 1 || j.Suites[0].Tests != len(s.Thresholds)+1 || j.Failures != len(tt.failing) {
				t.Fatalf("junit: %d suite(s), tests %d, failures %d; thresholds %d, failing %d",
					len(j.Suites), j.Suites[0].Tests, j.Failures, len(s.Thresholds), len(tt.failing))
			}
			established := strconv.FormatUint(s.Connections.Established, 10)
			for _, tc := range j.Suites[0].Cases {
				if !strings.HasSuffix(tc.ClassName, ".thresholds") {
					continue
				}
				_, shouldFail := tt.failing[tc.Name]
				if (tc.Failure != nil) != shouldFail {
					t.Errorf("test case %q: failure %+v, want failing %v", tc.Name, tc.Failure, shouldFail)
					continue
				}
				if tc.Failure == nil {
					continue
				}
				if !strings.Contains(tc.Failure.Message, tc.Name) || !strings.Contains(tc.Failure.Message, "observed") {
					t.Errorf("failure message %q lacks the threshold or its observed value", tc.Failure.Message)
				}
				if strings.HasPrefix(tc.Name, "connections.established") && !strings.Contains(tc.Failure.Message, "observed "+established) {
					t.Errorf("failure message %q lacks the observed %s", tc.Failure.Message, established)
				}
				if !strings.Contains(stderr, tc.Name) {
					t.Errorf("stderr does not name the failed threshold %q:\n%s", tc.Name, stderr)
				}
			}
			for _, f := range []string{"report.html", "latency.hlog", "timeline.csv"} {
				if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
					t.Error(err)
				}
			}
		})
	}
}

// TestAbortOnFail: an abort_on_fail threshold failing from its delay on stops a 5-minute run. What
// it checks holds at any machine speed: the stop is judged on snapshot times (virtual: the interval
// grid), and a run that is not stopped lasts at least its stages and makes every arrival, since
// arrivals wait for their times, so a slow machine only makes an unstopped run longer.
func TestAbortOnFail(t *testing.T) {
	checkFDs(t)
	const (
		delay   = 400 * time.Millisecond
		planned = 5 * time.Minute
		rate    = 50
	)
	// The abort threshold fails from the tenth connection on (200 ms at 50/s on an idle machine),
	// and waits for its delay. Timeouts of minutes: slow connections are not errors here.
	p := writePlan(t, `version: 1
name: abort
target: {builtin: {mode: echo}}
connection: {send: {bytes: 32B, count: 1}, close: rst, connect_timeout: 2m, io_timeout: 2m}
load:
  model: arrival
  start: 50
  graceful_stop: 2m
  stages: [{duration: 5m, target: 50}]
output: {interval: 100ms}
thresholds:
  - "connect.p99 < 2m"
  - {expr: "connections.established < 10", abort_on_fail: true, delay: 400ms}
`)
	dir := filepath.Join(t.TempDir(), "r")
	code, stdout, stderr := runMain(t, nil, "run", p, "-q", "--out", dir)
	if code != 1 {
		t.Fatalf("exit %d, want 1\n%s\n%s", code, stdout, stderr)
	}
	s := readSummary(t, dir)
	checkConservation(t, s)
	if s.Stopped == nil || s.Stopped.Threshold != "connections.established < 10" || s.Interrupted {
		t.Fatalf("stopped %+v interrupted %v", s.Stopped, s.Interrupted)
	}
	at := time.Duration(math.Round(s.Stopped.AtS*1e6)) * time.Microsecond
	if at < delay {
		t.Errorf("stopped at %s, before the delay %s", at, delay)
	}
	if at%(100*time.Millisecond) != 0 {
		t.Errorf("stopped at %s, not at an interval's end", at)
	}
	d := time.Duration(s.DurationUS) * time.Microsecond
	t.Logf("stopped at %s, run over (drained, results written) at %s", at, d)
	if d >= planned {
		t.Errorf("the run lasted %s, the whole plan", d)
	}
	if c := s.Connections; c.Attempted+c.Dropped >= uint64(rate*planned/time.Second) {
		t.Errorf("%d arrivals (attempted %d, dropped %d): the whole plan's", c.Attempted+c.Dropped, c.Attempted, c.Dropped)
	}
	if s.Thresholds[1].Pass || !s.Thresholds[1].StoppedRun || !s.Thresholds[0].Pass {
		t.Errorf("thresholds %+v", s.Thresholds)
	}
	if !strings.Contains(stderr, "stopped at") || !strings.Contains(stdout, "stopped      at") {
		t.Errorf("the stop is not reported:\n%s\n%s", stdout, stderr)
	}
	var run *report.JUnitCase
	for _, tc := range readJUnit(t, dir).Suites[0].Cases {
		if tc.Name == "run completed" {
			run = &tc
		}
	}
	if run == nil || run.Failure == nil || run.Failure.Type != "stopped" {
		t.Errorf("junit run case %+v", run)
	}
}

func TestLatencyLogReadsBack(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "r")
	if code, stdout, stderr := runMain(t, nil, "run", gatePlan(t, "hlog", ""), "-q", "--out", dir); code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
	}
	s := readSummary(t, dir)
	f, err := os.Open(filepath.Join(dir, "latency.hlog"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// hdrhistogram-go's own reader, as other HdrHistogram tools would read the file.
	r := hdr.NewHistogramLogReader(f)
	counts := map[string]int64{}
	intervals := 0
	for {
		h, err := r.NextIntervalHistogram()
		if err != nil {
			t.Fatal(err)
		}
		if h == nil {
			break
		}
		intervals++
		counts[h.Tag()] += h.TotalCount()
		if h.EndTimeMs() < h.StartTimeMs() || h.StartTimeMs() < s.StartedAt.UnixMilli()-1000 {
			t.Errorf("interval %s [%d, %d] ms, run started at %d", h.Tag(), h.StartTimeMs(), h.EndTimeMs(), s.StartedAt.UnixMilli())
		}
	}
	if intervals < 5 {
		t.Errorf("only %d intervals in the log", intervals)
	}
	for name, ls := range s.Latency {
		if counts[name] != ls.Count {
			t.Errorf("%s: the log holds %d values, summary.json %d", name, counts[name], ls.Count)
		}
	}
	if counts["connect"] == 0 || counts["connect_intended"] == 0 {
		t.Errorf("counts %v", counts)
	}
}

// copyResult copies a results folder's files.
func copyResult(t *testing.T, from, to string) {
	t.Helper()
	if err := os.MkdirAll(to, 0o755); err != nil {
		t.Fatal(err)
	}
	ents, err := os.ReadDir(from)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(from, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(to, e.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// editSummary rewrites a summary.json through fn.
func editSummary(t *testing.T, dir string, fn func(*report.Summary)) {
	t.Helper()
	s := readSummary(t, dir)
	fn(s)
	if err := report.WriteSummary(dir, s); err != nil {
		t.Fatal(err)
	}
}

func TestCompareCommand(t *testing.T) {
	tmp := t.TempDir()
	base := filepath.Join(tmp, "base")
	if code, stdout, stderr := runMain(t, nil, "run", gatePlan(t, "cmp", ""), "-q", "--out", base); code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
	}
	same := filepath.Join(tmp, "same")
	copyResult(t, base, same)
	doubled := filepath.Join(tmp, "doubled")
	copyResult(t, base, doubled)
	editSummary(t, doubled, func(s *report.Summary) {
		l := s.Latency["connect"]
		l.P99 *= 2
		s.Latency["connect"] = l
	})
	moreConns := filepath.Join(tmp, "more")
	copyResult(t, base, moreConns)
	editSummary(t, moreConns, func(s *report.Summary) {
		s.Connections.Attempted++
		s.Connections.Established++
	})
	notJSON := filepath.Join(tmp, "bad.json")
	os.WriteFile(notJSON, []byte("{"), 0o644)

	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"identical results pass", []string{base, same}, 0, "compare: PASS: 0 of"},
		{"identical by summary.json path", []string{filepath.Join(base, "summary.json"), filepath.Join(same, "summary.json")}, 0, "PASS"},
		{"connect p99 doubled fails at 10%", []string{base, doubled, "--max-regression", "10%", "--metric", "connect.p99"}, 1, "+100%"},
		{"connect p99 doubled passes at 150%", []string{base, doubled, "--max-regression", "150%", "--metric", "connect.p99"}, 0, "PASS"},
		{"doubled p99 fails the declared set", []string{base, doubled}, 1, "connect.p99"},
		{"differing counts fail", []string{base, moreConns, "--max-regression", "1000%"}, 1, "connections.attempted"},
		{"unknown metric", []string{base, same, "--metric", "conect.p99"}, 2, `did you mean "connect.p99"`},
		{"bad tolerance", []string{base, same, "--max-regression", "ten"}, 2, "--max-regression"},
		{"missing baseline", []string{filepath.Join(tmp, "nope"), same}, 2, "baseline"},
		{"corrupt result", []string{base, notJSON}, 2, "bad.json"},
		{"one argument", []string{base}, 2, "takes 2 argument"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runMain(t, nil, append([]string{"compare"}, tt.args...)...)
			if code != tt.code {
				t.Fatalf("exit %d, want %d\n%s\n%s", code, tt.code, stdout, stderr)
			}
			if !strings.Contains(stdout+stderr, tt.want) {
				t.Errorf("output lacks %q:\n%s\n%s", tt.want, stdout, stderr)
			}
		})
	}
}

func TestBaselineInPlan(t *testing.T) {
	tmp := t.TempDir()
	base := filepath.Join(tmp, "base")
	if code, stdout, stderr := runMain(t, nil, "run", gatePlan(t, "bl", ""), "-q", "--out", base); code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
	}
	// The same plan against its own result passes on counts; a baseline with other counts fails.
	fewer := filepath.Join(tmp, "fewer")
	copyResult(t, base, fewer)
	editSummary(t, fewer, func(s *report.Summary) { s.Connections.Attempted -= 5; s.Connections.Established -= 5 })
	tests := []struct {
		name, baseline string
		code           int
	}{
		{"same counts pass", filepath.Join(base, "summary.json"), 0},
		{"other counts fail", filepath.Join(fewer, "summary.json"), 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := gatePlan(t, "bl", `baseline:
  file: `+tt.baseline+`
  max_regression: 10000%
  metrics: [connections.attempted, connections.established, errors.count, connections.failed]
`)
			dir := filepath.Join(t.TempDir(), "r")
			code, stdout, stderr := runMain(t, nil, "run", p, "-q", "--out", dir)
			if code != tt.code {
				t.Fatalf("exit %d, want %d\n%s\n%s", code, tt.code, stdout, stderr)
			}
			s := readSummary(t, dir)
			if s.Baseline == nil || len(s.Baseline.Checks) != 4 || s.Baseline.Pass != (tt.code == 0) {
				t.Fatalf("baseline %+v", s.Baseline)
			}
			if !strings.Contains(stdout, "baseline connections.attempted") {
				t.Errorf("no baseline rows in the verdict table:\n%s", stdout)
			}
			j := readJUnit(t, dir)
			n := 0
			for _, tc := range j.Suites[0].Cases {
				if strings.HasSuffix(tc.ClassName, ".baseline") {
					n++
				}
			}
			if n != 4 {
				t.Errorf("%d baseline test cases, want 4", n)
			}
		})
	}
}

func TestReportCommand(t *testing.T) {
	tmp := t.TempDir()
	src := filepath.Join(tmp, "run")
	if code, stdout, stderr := runMain(t, nil, "run", gatePlan(t, "rep", `thresholds: ["connections.established > 1_000_000"]`), "-q", "--out", src); code != 1 {
		t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
	}
	// Only what a saved result keeps: summary.json, timeline.csv and latency.hlog.
	dir := filepath.Join(tmp, "saved")
	copyResult(t, src, dir)
	os.Remove(filepath.Join(dir, "report.html"))
	os.Remove(filepath.Join(dir, "junit.xml"))
	code, stdout, stderr := runMain(t, nil, "report", dir)
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
	}
	if !strings.Contains(stdout, "portstorm rep: fail") || !strings.Contains(stdout, "connections.established") {
		t.Errorf("no text summary:\n%s", stdout)
	}
	if j := readJUnit(t, dir); j.Failures != 1 {
		t.Errorf("junit failures %d", j.Failures)
	}
	orig, _ := os.ReadFile(filepath.Join(src, "report.html"))
	again, err := os.ReadFile(filepath.Join(dir, "report.html"))
	if err != nil {
		t.Fatal(err)
	}
	if string(orig) != string(again) {
		t.Error("report.html re-rendered from the saved result differs from the run's")
	}
	// junit.xml, the verdict CI reads, is written after report.html: a report that fails leaves it
	// as it was (here: none).
	t.Run("report.html cannot be written", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "saved")
		copyResult(t, src, dir)
		os.Remove(filepath.Join(dir, "junit.xml"))
		os.Remove(filepath.Join(dir, "report.html"))
		if err := os.MkdirAll(filepath.Join(dir, "report.html", "x"), 0o755); err != nil {
			t.Fatal(err)
		}
		code, _, stderr := runMain(t, nil, "report", dir)
		if code != 3 || !strings.Contains(stderr, "report.html") {
			t.Fatalf("exit %d, want 3 naming report.html\n%s", code, stderr)
		}
		if _, err := os.Stat(filepath.Join(dir, "junit.xml")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("junit.xml written although report.html failed: %v", err)
		}
	})
	for _, bad := range []struct{ name, dir, want string }{
		{"missing folder", filepath.Join(tmp, "nope"), "no such file"},
		{"not a result", tmp, "summary.json"},
	} {
		t.Run(bad.name, func(t *testing.T) {
			code, _, stderr := runMain(t, nil, "report", bad.dir)
			if code != 2 || !strings.Contains(stderr, bad.want) {
				t.Errorf("exit %d, stderr %s", code, stderr)
			}
		})
	}
}

func TestValidateThresholds(t *testing.T) {
	p := gatePlan(t, "bad", `thresholds:
  - "connect.p99 < 5ms"
  - "conect.p99 < 5ms"
  - {expr: "errors.rate < 5", abort_on_fail: true}
  - "stage[2].connect.p99 < 2ms"
  - "connect.p99 < 5"
`)
	for _, verb := range []string{"validate", "run"} {
		t.Run(verb, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "r")
			code, _, stderr := runMain(t, nil, verb, p, "--out", out)
			if verb == "validate" {
				code, _, stderr = runMain(t, nil, verb, p)
			}
			if code != 2 {
				t.Fatalf("exit %d\n%s", code, stderr)
			}
			for _, want := range []string{
				"plan.yaml:13: thresholds[1].expr: unknown metric \"conect.p99\" (did you mean \"connect.p99\"?)",
				"plan.yaml:14: thresholds[2].expr: errors.rate is a share between 0 and 1; did you mean 5%?",
				"plan.yaml:15: thresholds[3].expr: \"stage[2].connect.p99\": the plan has 2 stage(s)",
				"plan.yaml:16: thresholds[4].expr: connect.p99 is a time; write the limit with a unit",
			} {
				if !strings.Contains(stderr, want) {
					t.Errorf("stderr lacks %q:\n%s", want, stderr)
				}
			}
			if _, err := os.Stat(out); err == nil {
				t.Error("a results folder was created for an invalid plan")
			}
		})
	}
}

func TestCIGateConfig(t *testing.T) {
	if testing.Short() {
		t.Skip("the CI gate runs 6 s")
	}
	checkFDs(t)
	dir := filepath.Join(t.TempDir(), "r")
	// The example's latency limits hold on a quiet machine (.ci/run runs it so, as a CI job would);
	// under -race, beside other packages' tests, latency is not the example's, so this run keeps
	// the counts: the committed baseline must match them exactly.
	code, stdout, stderr := runMain(t, nil, "run", "../../configs/ci-gate.yaml", "-q", "--out", dir,
		"--set", "baseline.file=../../results/baseline/ci-gate.json",
		"--set", "baseline.metrics=[connections.attempted, connections.established, connections.failed, errors.count]",
		"--set", `thresholds=["errors.rate == 0", "connections.established >= 4990"]`,
		// The example's timeouts are for a quiet runner; on a busy machine a slow connection is
		// not a failed one, and the counts must still match the baseline.
		"--set", "connection.connect_timeout=2m", "--set", "connection.io_timeout=2m", "--set", "load.graceful_stop=2m")
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
	}
	s := readSummary(t, dir)
	if s.Baseline == nil || !s.Baseline.Pass || len(s.Thresholds) == 0 {
		t.Errorf("baseline %+v thresholds %+v", s.Baseline, s.Thresholds)
	}
}

// TestMetricsEndpoint scrapes a run's live metrics until its counter moves, then stops the run
// with a signal: the run lasts as long as the test needs, however slow the machine.
func TestMetricsEndpoint(t *testing.T) {
	checkFDs(t)
	p := writePlan(t, `version: 1
name: live
target: {builtin: {mode: echo}}
connection: {send: {bytes: 32B, count: 1}, close: rst, connect_timeout: 2m, io_timeout: 2m}
load:
  model: arrival
  start: 50
  graceful_stop: 2m
  stages: [{duration: 10m, target: 50}]
output: {interval: 100ms}
`)
	dir := filepath.Join(t.TempDir(), "r")
	var out syncBuffer
	errb := &syncBuffer{want: "/metrics\n", seen: make(chan struct{})}
	done := make(chan int, 1)
	sig := make(chan os.Signal, 1)
	go func() {
		done <- Main([]string{"run", p, "-q", "--out", dir, "--metrics-listen", "127.0.0.1:0"}, nil, &out, errb, sig)
	}()
	select {
	case <-errb.seen:
	case code := <-done:
		t.Fatalf("the run ended (exit %d) before serving metrics:\n%s", code, errb.String())
	}
	url := regexp.MustCompile(`http://\S+/metrics`).FindString(errb.String())
	client := &http.Client{Timeout: time.Minute}
	scrape := func() (map[string]float64, error) {
		resp, err := client.Get(url)
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		m := map[string]float64{}
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			line := sc.Text()
			if strings.HasPrefix(line, "#") {
				continue
			}
			name, val, ok := strings.Cut(line, " ")
			if !ok {
				continue
			}
			if v, err := strconv.ParseFloat(val, 64); err == nil {
				m[name] = v
			}
		}
		return m, sc.Err()
	}
	const attempted = `portstorm_connections_attempted_total{plan="live"}`
	first, err := scrape()
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{attempted, `portstorm_connections_active{plan="live"}`,
		`portstorm_outcomes_total{outcome="ok",plan="live"}`, `portstorm_latency_seconds_count{latency="connect",plan="live"}`,
		`portstorm_latency_seconds_bucket{latency="connect",plan="live",le="0.001"}`} {
		if _, ok := first[name]; !ok {
			t.Errorf("metric %s missing", name)
		}
	}
	// The run cuts a snapshot every 100 ms; poll until the counter has moved (bounded by the
	// 10-minute plan: a run that ends first fails the test).
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for moved := false; !moved; {
		select {
		case <-tick.C:
			m, err := scrape()
			if err != nil {
				t.Fatal(err)
			}
			moved = m[attempted] > first[attempted]
		case code := <-done:
			t.Fatalf("the run ended (exit %d) with %s still at %v:\n%s", code, attempted, first[attempted], errb.String())
		}
	}
	sig <- syscall.SIGINT
	if code := <-done; code != 130 {
		t.Fatalf("exit %d, want 130 (interrupted)\n%s", code, errb.String())
	}
	if resp, err := client.Get(url); err == nil {
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		t.Error("the metrics endpoint still answers after the run")
	}
	client.CloseIdleConnections()
}

func TestMetricsListenGuard(t *testing.T) {
	p := gatePlan(t, "guard", "")
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"all interfaces", []string{"--metrics-listen", ":9464"}, "loopback unless --metrics-allow-remote"},
		{"a remote address", []string{"--metrics-listen", "192.0.2.1:9464"}, "loopback unless --metrics-allow-remote"},
		{"no port", []string{"--metrics-listen", "127.0.0.1"}, "want host:port"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "r")
			code, _, stderr := runMain(t, nil, append([]string{"run", p, "-q", "--out", out}, tt.args...)...)
			if code != 2 || !strings.Contains(stderr, tt.want) {
				t.Errorf("exit %d, stderr %s", code, stderr)
			}
			if _, err := os.Stat(out); err == nil {
				t.Error("the run started")
			}
		})
	}
}

// TestSummaryAdditions checks the fields added to summary.json for the gate.
func TestSummaryAdditions(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "r")
	code, _, stderr := runMain(t, nil, "run", gatePlan(t, "add", `thresholds: ["connect.p99 < 2m"]`), "-q", "--out", dir)
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	b, _ := os.ReadFile(filepath.Join(dir, "summary.json"))
	var raw struct {
		Thresholds []map[string]any `json:"thresholds"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		t.Fatal(err)
	}
	if len(raw.Thresholds) != 1 {
		t.Fatalf("thresholds %v", raw.Thresholds)
	}
	for _, k := range []string{"expr", "observed", "pass", "metric", "condition"} {
		if _, ok := raw.Thresholds[0][k]; !ok {
			t.Errorf("thresholds[0] lacks %q", k)
		}
	}
}
