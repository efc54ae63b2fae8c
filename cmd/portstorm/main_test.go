//go:build linux

package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"go.uber.org/goleak"

	"github.com/portstorm/portstorm/loadgen/report"
)

func TestMain(m *testing.M) {
	code := m.Run()
	if builtDir != "" {
		os.RemoveAll(builtDir)
	}
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintf(os.Stderr, "goleak: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}

// openFDs counts this process's open file descriptors.
func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// checkFDs fails the test if descriptors opened during it are still open at its end.
func checkFDs(t *testing.T) {
	t.Helper()
	before := openFDs(t)
	t.Cleanup(func() {
		if after := openFDs(t); after > before {
			t.Errorf("open fds %d after the test, %d before: descriptors leaked", after, before)
		}
	})
}

// syncBuffer is an io.Writer safe for the progress goroutine and the test; it signals when a line
// containing want appears.
type syncBuffer struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	want string
	seen chan struct{}
	once sync.Once
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n, err := b.buf.Write(p)
	if b.want != "" && strings.Contains(b.buf.String(), b.want) {
		b.once.Do(func() { close(b.seen) })
	}
	return n, err
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func runMain(t *testing.T, sig chan os.Signal, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb syncBuffer
	if sig == nil {
		sig = make(chan os.Signal)
	}
	code = Main(args, nil, &out, &errb, sig)
	return code, out.String(), errb.String()
}

func readSummary(t *testing.T, dir string) *report.Summary {
	t.Helper()
	s, err := report.ReadSummary(filepath.Join(dir, "summary.json"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// checkConservation asserts the counting invariants every result must hold.
func checkConservation(t *testing.T, s *report.Summary) {
	t.Helper()
	c := s.Connections
	if c.Attempted != c.Established+c.Failed+c.Dropped {
		t.Errorf("attempted %d != established %d + failed %d + dropped %d", c.Attempted, c.Established, c.Failed, c.Dropped)
	}
	if c.Closed != c.Established {
		t.Errorf("closed %d != established %d after the run", c.Closed, c.Established)
	}
	var outcomes uint64
	for _, n := range s.Outcomes {
		outcomes += n
	}
	if outcomes != c.Failed+c.Closed {
		t.Errorf("outcomes add up to %d, want failed+closed %d", outcomes, c.Failed+c.Closed)
	}
	if got := uint64(s.Latency["connect"].Count); got != c.Established {
		t.Errorf("connect histogram count %d, established %d", got, c.Established)
	}
	if got := uint64(s.Latency["lifetime"].Count); got != c.Closed {
		t.Errorf("lifetime histogram count %d, closed %d", got, c.Closed)
	}
	if s.Outcomes["other"] != 0 {
		t.Errorf("outcomes.other = %d (examples %v): every failure must be classified", s.Outcomes["other"], s.Examples["other"])
	}
}

func TestQuickstart(t *testing.T) {
	if testing.Short() {
		t.Skip("the quickstart runs 20 s")
	}
	checkFDs(t)
	dir := filepath.Join(t.TempDir(), "qs")
	code, stdout, stderr := runMain(t, nil, "run", "../../configs/quickstart.yaml", "--out", dir)
	if code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	s := readSummary(t, dir)
	checkConservation(t, s)
	c := s.Connections
	if c.PeakConcurrent < 1000 {
		t.Errorf("peak_concurrent %d, want 1000", c.PeakConcurrent)
	}
	if c.Failed != 0 || s.Errors.Count != 0 {
		t.Errorf("failed %d, errors %d (%v)", c.Failed, s.Errors.Count, s.Examples)
	}
	// One echo per connection: the rtt histogram holds one value per established connection.
	if got := uint64(s.Latency["rtt"].Count); got != c.Established {
		t.Errorf("rtt count %d, want %d", got, c.Established)
	}
	if s.Latency["connect_intended"].Count != 0 {
		t.Errorf("connect_intended recorded under the concurrency model")
	}
	if len(s.Stages) != 3 || s.Stages[1].Connections.PeakConcurrent < 1000 {
		t.Errorf("stages %+v", s.Stages)
	}
	if s.Target == nil || s.Target.Accepted != c.Established {
		t.Errorf("target stats %+v, established %d", s.Target, c.Established)
	}
	if s.Verdict != report.VerdictNone || s.Interrupted {
		t.Errorf("verdict %s interrupted %v", s.Verdict, s.Interrupted)
	}
	if !strings.Contains(stdout, "portstorm quickstart: no_thresholds") {
		t.Errorf("no summary table on stdout:\n%s", stdout)
	}
	if _, err := os.Stat(filepath.Join(dir, "timeline.csv")); err != nil {
		t.Error(err)
	}
}

// TestBadPlans runs every bad plan of the plan package's table through the CLI: exit 2, the file
// name, the line and the key in the message, and nothing run (no results folder).
func TestBadPlans(t *testing.T) {
	f, err := os.Open("../../loadgen/plan/testdata/bad/cases.tsv")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Scan() // header
	n := 0
	for sc.Scan() {
		cols := strings.Split(sc.Text(), "\t")
		if len(cols) != 3 {
			t.Fatalf("bad row %q", sc.Text())
		}
		file, line, key := cols[0], cols[1], cols[2]
		n++
		t.Run(file, func(t *testing.T) {
			path := filepath.Join("../../loadgen/plan/testdata/bad", file)
			for _, verb := range []string{"validate", "run"} {
				out := filepath.Join(t.TempDir(), "r")
				args := []string{verb, path}
				if verb == "run" {
					args = append(args, "--out", out)
				}
				code, _, stderr := runMain(t, nil, args...)
				if code != 2 {
					t.Fatalf("%s: exit %d, want 2\n%s", verb, code, stderr)
				}
				if want := file + ":" + line + ":"; !strings.Contains(stderr, want) {
					t.Errorf("%s: message lacks %q:\n%s", verb, want, stderr)
				}
				if key != "-" && !strings.Contains(stderr, key) {
					t.Errorf("%s: message lacks the key %q:\n%s", verb, key, stderr)
				}
				if _, err := os.Stat(out); err == nil {
					t.Errorf("%s: a results folder was created for an invalid plan", verb)
				}
			}
		})
	}
	if n < 12 {
		t.Fatalf("only %d bad plans", n)
	}
}

func writePlan(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "plan.yaml")
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestInterrupt(t *testing.T) {
	checkFDs(t)
	p := writePlan(t, `version: 1
name: interrupt
target: {builtin: {mode: echo}}
connection: {send: {bytes: 16B, count: 100, interval: 20ms}, hold: 1m}
load:
  model: concurrency
  start: 50
  stages: [{duration: 1m, target: 50}]
  graceful_stop: 40s
output: {interval: 100ms}
`)
	// The connections' last requests take ~2 s after the signal; the graceful stop leaves them 40 s
	// (the default 5 s ran out at a load average of 7, and 50 requests counted canceled).
	dir := filepath.Join(t.TempDir(), "r")
	sig := make(chan os.Signal, 1)
	out := &syncBuffer{want: "active 50", seen: make(chan struct{})}
	var errb syncBuffer
	done := make(chan int)
	go func() { done <- Main([]string{"run", p, "--out", dir}, nil, out, &errb, sig) }()
	var code int
	select {
	case <-out.seen: // 50 connections are open and exchanging requests
		sig <- syscall.SIGINT
		code = <-done
	case code = <-done:
		t.Fatalf("the run ended (exit %d) before 50 connections were open:\n%s", code, out.String())
	}
	if code != 130 {
		t.Fatalf("exit %d, want 130\n%s\n%s", code, out.String(), errb.String())
	}
	s := readSummary(t, dir)
	if !s.Interrupted {
		t.Error("summary not marked interrupted")
	}
	checkConservation(t, s)
	if s.Connections.Established < 50 {
		t.Errorf("established %d", s.Connections.Established)
	}
	if s.Errors.Count != 0 {
		t.Errorf("a graceful stop caused errors: %v %v", s.Outcomes, s.Examples)
	}
	if s.DurationUS > 55_000_000 {
		t.Errorf("run lasted %d µs after the interrupt", s.DurationUS)
	}
}

func TestExitCodes(t *testing.T) {
	checkFDs(t)
	unreachable := writePlan(t, `version: 1
name: refused
target: {addresses: ["127.0.0.1:1"]}
load: {model: arrival, stages: [{duration: 300ms, target: 100}]}
`)
	remote := writePlan(t, `version: 1
name: remote
target: {addresses: ["192.0.2.1:80"]}
load: {model: arrival, stages: [{duration: 300ms, target: 100}]}
`)
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no arguments", []string{"run"}, 2, "takes 1 argument"},
		{"unknown flag", []string{"run", "--bogus", "x"}, 2, "unknown flag"},
		{"missing plan file", []string{"validate", "/nonexistent/plan.yaml"}, 2, "/nonexistent/plan.yaml"},
		{"bad --set", []string{"validate", "../../configs/quickstart.yaml", "--set", "load.modle=arrival"}, 2, "load.modle"},
		{"valid plan", []string{"validate", "../../configs/arrival.yaml"}, 0, ""},
		{"target refuses connections", []string{"run", unreachable, "-q", "--out", "OUT"}, 3, "target unreachable"},
		{"remote target without opt-in", []string{"run", remote, "-q", "--out", "OUT"}, 2, "outside loopback"},
		{"version", []string{"version"}, 0, ""},
		{"unknown command", []string{"frobnicate"}, 2, "unknown command"},
		{"bad target mode", []string{"target", "--mode", "mirror"}, 2, "mirror"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for i, a := range tt.args {
				if a == "OUT" {
					tt.args[i] = filepath.Join(t.TempDir(), "r")
				}
			}
			code, _, stderr := runMain(t, nil, tt.args...)
			if code != tt.code {
				t.Fatalf("exit %d, want %d\n%s", code, tt.code, stderr)
			}
			if !strings.Contains(stderr, tt.want) {
				t.Errorf("stderr lacks %q:\n%s", tt.want, stderr)
			}
		})
	}
}

func TestUnreachableResultsAreComplete(t *testing.T) {
	p := writePlan(t, `version: 1
name: refused
target: {addresses: ["127.0.0.1:1"]}
load: {model: arrival, stages: [{duration: 200ms, target: 100}]}
`)
	dir := filepath.Join(t.TempDir(), "r")
	if code, _, stderr := runMain(t, nil, "run", p, "-q", "--out", dir); code != 3 {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	s := readSummary(t, dir)
	checkConservation(t, s)
	// Every connect made was refused; the rest waited out the backoff until the schedule ended
	// (dropped: never made).
	if c := s.Connections; s.Outcomes["ECONNREFUSED"] != c.Failed || c.Failed == 0 || c.Failed+c.Dropped != c.Attempted {
		t.Errorf("outcomes %v for %d attempts (failed %d, dropped %d)", s.Outcomes, c.Attempted, c.Failed, c.Dropped)
	}
	if _, ok := s.First["ECONNREFUSED"]; !ok {
		t.Error("no first occurrence for ECONNREFUSED")
	}
	var raw map[string]any
	b, _ := os.ReadFile(filepath.Join(dir, "summary.json"))
	if err := json.Unmarshal(b, &raw); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"schema", "name", "started_at", "ended_at", "interrupted", "verdict", "plan", "host",
		"segments", "connections", "outcomes", "first", "latency", "ports", "thresholds"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("summary.json lacks %q", k)
		}
	}
}

// TestIdleTimeoutWarning: a run whose built-in target closes held connections for their silence
// says so with the idle timeout the plan compiled to (not the default).
func TestIdleTimeoutWarning(t *testing.T) {
	checkFDs(t)
	p := writePlan(t, `version: 1
name: idle
target: {builtin: {mode: hold, idle_timeout: 100ms}}
connection: {hold: 2s}
load: {model: concurrency, start: 3, stages: [{duration: 1s, target: 3}]}
`)
	dir := filepath.Join(t.TempDir(), "r")
	var out, errb bytes.Buffer
	Main([]string{"run", p, "-q", "--out", dir}, nil, &out, &errb, nil)
	s := readSummary(t, dir)
	var got string
	for _, w := range s.Warnings {
		if strings.Contains(w, "built-in target closed") {
			got = w
		}
	}
	if !strings.Contains(got, "idle_timeout (100ms)") {
		t.Errorf("warnings %q: want the target's closes named with its 100ms idle_timeout\n%s", s.Warnings, errb.String())
	}
}
