//go:build linux

package main

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/portstorm/portstorm/loadgen/report"
)

// searchPlan is a small search of the built-in echo target: probes of 400 ms at 10 to 40
// connections/s. The threshold on connections.established makes the capacity exact whatever the
// machine: a probe of 400 ms at rate r opens 0.4 r connections (the arrival schedule is exact), so
// "connections.established <= 8" holds up to 20/s and fails above.
func searchPlan(t *testing.T, extra string) string {
	return writePlan(t, `version: 1
name: cli-search
target: {builtin: {mode: echo}}
connection: {send: {bytes: 16B, count: 1}}
load: {model: arrival}
thresholds: ["connections.established <= 8"]
output: {interval: 100ms}
search:
  min: 10
  max: 40
  probe: 400ms
  confirm: 400ms
  settle: 10ms
  tolerance: 10%
  max_probes: 10
`+extra)
}

// edit replaces old with new in the plan file at path, which it returns.
func edit(t *testing.T, path, old, new string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil || !strings.Contains(string(b), old) {
		t.Fatalf("%s: no %q to replace (%v)", path, old, err)
	}
	if err := os.WriteFile(path, []byte(strings.Replace(string(b), old, new, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestSearchExitCodes runs portstorm search to each of its exit codes.
func TestSearchExitCodes(t *testing.T) {
	checkFDs(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close() // a port nothing listens on: the target is unreachable
	tests := []struct {
		name   string
		plan   string
		cmd    string
		args   []string // instead of --out DIR
		code   int
		stderr string
		status string // search.status in summary.json ("" when none is written)
		held   float64
	}{
		{name: "found", plan: searchPlan(t, "  require: 15\n"), code: 0, status: "converged", held: 20},
		{name: "require not reached", plan: searchPlan(t, "  require: 30\n"), code: 1,
			stderr: "search.require not reached: 20 connections/s holds", status: "converged", held: 20},
		{name: "no level holds", plan: searchPlan(t, "  min: 25\n"), code: 1,
			stderr: `no level held: 25 connections/s fails: threshold "connections.established <= 8" failed`, status: "min_failed"},
		{name: "unreachable", plan: edit(t, searchPlan(t, ""), "target: {builtin: {mode: echo}}",
			fmt.Sprintf("target: {addresses: [%q]}", closed)), code: 3, stderr: "the search could not be carried out", status: "error"},
		{name: "run refuses a search plan", plan: searchPlan(t, ""), cmd: "run", code: 2, stderr: "run it with portstorm search"},
		{name: "k8s refuses a search plan", plan: searchPlan(t, ""), cmd: "k8s", args: []string{"--parallelism", "2"}, code: 2,
			stderr: "a search runs on one machine"},
		{name: "search refuses a plan without search", plan: writePlan(t, `version: 1
target: {builtin: {mode: echo}}
load: {stages: [{duration: 1s, target: 1}]}
`), code: 2, stderr: "has no search: section"},
		{name: "an invalid search", plan: searchPlan(t, "  max: 5\n"), code: 2, stderr: "search.max: want at least search.min (10), got 5"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// A key given twice is a plan error: the extra lines replace the plan's own.
			b, _ := os.ReadFile(tt.plan)
			lines := strings.Split(string(b), "\n")
			seen := map[string]int{}
			for i, l := range lines {
				if k, _, ok := strings.Cut(strings.TrimSpace(l), ":"); ok && strings.HasPrefix(l, "  ") {
					if j, dup := seen[k]; dup {
						lines[j] = ""
					}
					seen[k] = i
				}
			}
			os.WriteFile(tt.plan, []byte(strings.Join(lines, "\n")), 0o644)
			cmd := tt.cmd
			if cmd == "" {
				cmd = "search"
			}
			dir := filepath.Join(t.TempDir(), "out")
			args := tt.args
			if args == nil {
				args = []string{"--out", dir}
			}
			code, stdout, stderr := runMain(t, nil, append([]string{cmd, tt.plan}, args...)...)
			if code != tt.code {
				t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tt.code, stdout, stderr)
			}
			if !strings.Contains(stderr, tt.stderr) {
				t.Errorf("stderr lacks %q:\n%s", tt.stderr, stderr)
			}
			if tt.status == "" {
				if _, err := os.Stat(dir); err == nil {
					t.Errorf("a results folder was written")
				}
				return
			}
			s := readSummary(t, dir)
			sr := s.Search
			if sr == nil || sr.Status != tt.status {
				t.Fatalf("search %+v, want status %s", sr, tt.status)
			}
			if tt.held > 0 && (sr.Held == nil || *sr.Held != tt.held || !sr.Confirmed) {
				t.Errorf("held %v (confirmed %v), want %v", sr.Held, sr.Confirmed, tt.held)
			}
			wantVerdict := map[int]string{0: report.VerdictPass, 1: report.VerdictFail, 3: report.VerdictError}[tt.code]
			if s.Verdict != wantVerdict || sr.Pass != (tt.code == 0) {
				t.Errorf("verdict %s pass %v, want %s", s.Verdict, sr.Pass, wantVerdict)
			}
			if !strings.Contains(stdout, "search arrival_rate: "+tt.status) {
				t.Errorf("stdout lacks the search table:\n%s", stdout)
			}
			for _, p := range sr.Probes {
				if p.Dir != "" {
					if _, err := os.Stat(filepath.Join(dir, p.Dir, "summary.json")); err != nil {
						t.Errorf("probe %d: %v", p.Index, err)
					}
				}
			}
			for _, f := range []string{"report.html", "junit.xml"} {
				if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
					t.Errorf("%s: %v", f, err)
				}
			}
		})
	}
}

// TestSearchInterrupted: SIGINT during a search ends the probe under way and the search, writes the
// results so far marked interrupted, and exits 130.
func TestSearchInterrupted(t *testing.T) {
	checkFDs(t)
	// Every level holds; the first probe lasts a minute, and the signal comes once it is under way.
	p := edit(t, edit(t, edit(t, searchPlan(t, ""), "probe: 400ms", "probe: 1m"), "confirm: 400ms", "confirm: 1m"),
		`["connections.established <= 8"]`, `["errors.rate < 50%"]`)
	dir := filepath.Join(t.TempDir(), "out")
	sig := make(chan os.Signal, 1)
	out := &syncBuffer{}
	errb := &syncBuffer{want: "probe 1 under way", seen: make(chan struct{})}
	done := make(chan int)
	go func() { done <- Main([]string{"search", p, "--out", dir}, nil, out, errb, sig) }()
	select {
	case <-errb.seen:
		sig <- syscall.SIGINT
	case code := <-done:
		t.Fatalf("search ended (exit %d) before its first probe was under way:\n%s", code, errb.String())
	}
	if code := <-done; code != 130 {
		t.Fatalf("exit %d, want 130\n%s", code, errb.String())
	}
	s := readSummary(t, dir)
	if !s.Interrupted || s.Search == nil || s.Search.Status != "interrupted" || len(s.Search.Probes) != 1 {
		t.Fatalf("interrupted %v, search %+v", s.Interrupted, s.Search)
	}
	if p := s.Search.Probes[0]; p.Outcome != "interrupted" || p.Dir == "" || s.Search.AnswerProbe != 1 {
		t.Errorf("the probe under way: %+v (answer probe %d)", p, s.Search.AnswerProbe)
	}
	ps := readSummary(t, filepath.Join(dir, s.Search.Probes[0].Dir))
	if !ps.Interrupted {
		t.Errorf("the interrupted probe's own summary is not marked interrupted")
	}
}
