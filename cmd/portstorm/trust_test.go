//go:build linux

package main

import (
	"bytes"
	"context"
	"encoding/xml"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/portstorm/portstorm/loadgen/report"
	"github.com/portstorm/portstorm/target"
)

// junitVerdict reads junit.xml's verdict property.
func junitVerdict(t *testing.T, dir string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, report.JUnitFile))
	if err != nil {
		t.Fatal(err)
	}
	var j report.JUnitSuites
	if err := xml.Unmarshal(b, &j); err != nil {
		t.Fatal(err)
	}
	for _, p := range j.Suites[0].Properties {
		if p.Name == "verdict" {
			return p.Value
		}
	}
	t.Fatal("junit.xml has no verdict property")
	return ""
}

// TestVerdictNeverPassesARunThatDidNot: summary.json and junit.xml say "pass" only with exit 0 and
// something judged; a run that could not be carried out, or whose results are incomplete, says
// "error" (exit 3), and a run nothing judged says "no_thresholds", loudly when most connections
// failed.
func TestVerdictNeverPassesARunThatDidNot(t *testing.T) {
	checkFDs(t)
	srv, err := target.Start(context.Background(), target.Config{Listen: []string{"127.0.0.1:0"}})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	live := srv.Addrs()[0]
	const load = "load: {model: arrival, start: 60, stages: [{duration: 300ms, target: 60}]}\n"
	tests := []struct {
		name     string
		plan     string
		prepare  func(t *testing.T, dir string)
		code     int
		verdict  string
		warning  bool // the loud stderr warning: most connections failed, nothing judged
		missing  []string
		stderrIs string
	}{
		{name: "target unreachable, nothing judged", code: 3, verdict: report.VerdictError, warning: true,
			plan: "target: {addresses: [\"127.0.0.1:1\"]}\n" + load, stderrIs: "target unreachable"},
		{name: "target unreachable, thresholds pass", code: 3, verdict: report.VerdictError,
			plan: "target: {addresses: [\"127.0.0.1:1\"]}\nthresholds: [\"connections.attempted > 0\"]\n" + load, stderrIs: "target unreachable"},
		{name: "clean run, nothing judged", code: 0, verdict: report.VerdictNone,
			plan: fmt.Sprintf("target: {addresses: [%q]}\n", live) + load},
		{name: "clean run, thresholds pass", code: 0, verdict: report.VerdictPass,
			plan: fmt.Sprintf("target: {addresses: [%q]}\nthresholds: [\"errors.rate == 0\"]\n", live) + load},
		{name: "most connections fail, nothing judged", code: 0, verdict: report.VerdictNone, warning: true,
			plan: fmt.Sprintf("target: {addresses: [%q, \"127.0.0.1:1\", \"127.0.0.2:1\"]}\n", live) + load},
		{name: "report.html cannot be written", code: 3, verdict: report.VerdictError,
			plan:    fmt.Sprintf("target: {addresses: [%q]}\nthresholds: [\"errors.rate == 0\"]\n", live) + load,
			prepare: func(t *testing.T, dir string) { mkdir(t, filepath.Join(dir, report.HTMLFile, "x")) },
			missing: []string{report.HTMLFile}, stderrIs: report.HTMLFile},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := writePlan(t, "version: 1\nname: trust\n"+tt.plan)
			dir := filepath.Join(t.TempDir(), "r")
			if tt.prepare != nil {
				tt.prepare(t, dir)
			}
			code, _, stderr := runMain(t, nil, "run", p, "-q", "--out", dir)
			if code != tt.code || !strings.Contains(stderr, tt.stderrIs) {
				t.Fatalf("exit %d, want %d with %q\n%s", code, tt.code, tt.stderrIs, stderr)
			}
			s := readSummary(t, dir)
			checkConservation(t, s)
			if s.Verdict != tt.verdict || junitVerdict(t, dir) != tt.verdict {
				t.Errorf("verdict %q (junit.xml %q), want %q", s.Verdict, junitVerdict(t, dir), tt.verdict)
			}
			if !slices.Equal(s.OutputsIncomplete, tt.missing) {
				t.Errorf("outputs_incomplete %q, want %q", s.OutputsIncomplete, tt.missing)
			}
			if got := strings.Contains(stderr, "WARNING") && strings.Contains(stderr, "no threshold judged the run"); got != tt.warning {
				t.Errorf("loud warning %v, want %v (failed %d of %d)\n%s", got, tt.warning, s.Connections.Failed, s.Connections.Attempted, stderr)
			}
		})
	}
}

func mkdir(t *testing.T, dir string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
}

// TestResultsFolderHoldsOneRun: a second run with the same --out, after the first or during it, is
// refused before it touches a file (exit 3), so the folder never mixes two runs' files.
func TestResultsFolderHoldsOneRun(t *testing.T) {
	checkFDs(t)
	srv, err := target.Start(context.Background(), target.Config{Listen: []string{"127.0.0.1:0"}})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	p := writePlan(t, fmt.Sprintf(`version: 1
name: once
target: {addresses: [%q]}
load: {model: arrival, start: 60, stages: [{duration: 200ms, target: 60}]}
`, srv.Addrs()[0]))
	tests := []struct {
		name    string
		prepare func(t *testing.T, dir string) (release func())
		want    string
	}{
		{"after another run", func(t *testing.T, dir string) func() {
			if code, _, stderr := runMain(t, nil, "run", p, "-q", "--out", dir); code != 0 {
				t.Fatalf("first run: exit %d\n%s", code, stderr)
			}
			return func() {}
		}, "already holds a run's summary.json"},
		{"during another run", func(t *testing.T, dir string) func() {
			release, err := report.ClaimDir(dir)
			if err != nil {
				t.Fatal(err)
			}
			// What a run in progress has written so far.
			if err := os.WriteFile(filepath.Join(dir, report.HLogFile), []byte("#[in progress]\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			return release
		}, "in use by another portstorm run"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "r")
			release := tt.prepare(t, dir)
			defer release()
			before := snapshotDir(t, dir)
			code, _, stderr := runMain(t, nil, "run", p, "-q", "--out", dir)
			if code != 3 || !strings.Contains(stderr, tt.want) {
				t.Fatalf("exit %d, want 3 saying %q\n%s", code, tt.want, stderr)
			}
			if after := snapshotDir(t, dir); !mapsEqual(before, after) {
				t.Errorf("the refused run changed the folder")
			}
		})
	}
}

// snapshotDir is every file of dir and its bytes.
func snapshotDir(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string][]byte{}
	for _, d := range des {
		b, err := os.ReadFile(filepath.Join(dir, d.Name()))
		if err != nil {
			t.Fatal(err)
		}
		m[d.Name()] = b
	}
	return m
}

func mapsEqual(a, b map[string][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || !bytes.Equal(v, w) {
			return false
		}
	}
	return true
}
