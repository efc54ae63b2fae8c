//go:build linux

package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/portstorm/portstorm/loadgen/report"
)

// TestBaselineNormalized: run --calibrate keeps the host's reference in summary.json; compare
// --normalize calibration passes a result from a host twice as slow (every latency and the unit
// doubled) that fails as measured, and fails a true regression there; a plan's baseline with
// normalize: calibration calibrates its run and compares by it.
func TestBaselineNormalized(t *testing.T) {
	checkFDs(t)
	tmp := t.TempDir()
	base := filepath.Join(tmp, "base")
	if code, stdout, stderr := runMain(t, nil, "run", tinyPlan(t, "norm", ""), "-q", "--calibrate", "--out", base); code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
	}
	cal := readSummary(t, base).Calibration
	if cal == nil || cal.UnitUS <= 0 || cal.Connections != 1000 {
		t.Fatalf("calibration %+v", cal)
	}
	// on is the base result as a host k times as slow would measure it, its p50s r times longer.
	on := func(name string, k, r float64) string {
		dir := filepath.Join(tmp, name)
		copyResult(t, base, dir)
		editSummary(t, dir, func(s *report.Summary) {
			s.Calibration.UnitUS *= k
			for _, n := range []string{"connect", "connect_intended"} {
				l := s.Latency[n]
				l.P50 = int64(float64(l.P50) * r)
				s.Latency[n] = l
			}
		})
		return dir
	}
	slow := on("slow", 2, 2)
	regressed := on("regressed", 2, 3)
	plain := filepath.Join(tmp, "plain")
	copyResult(t, base, plain)
	editSummary(t, plain, func(s *report.Summary) { s.Calibration = nil })
	p50s := []string{"--metric", "connect.p50", "--metric", "connect_intended.p50", "--max-regression", "10%"}
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"twice as slow, as measured: fails", append([]string{base, slow}, p50s...), 1, "+100%"},
		{"twice as slow, normalized: passes", append([]string{base, slow, "--normalize", "calibration"}, p50s...), 0, "normalized by calibration"},
		{"a true regression there: fails", append([]string{base, regressed, "--normalize", "calibration"}, p50s...), 1, "+50%"},
		{"no calibration in the new result", []string{base, plain, "--normalize", "calibration"}, 2, "holds no calibration"},
		{"an unknown normalization", []string{base, slow, "--normalize", "speed"}, 2, "--normalize"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runMain(t, nil, append([]string{"compare"}, tt.args...)...)
			if code != tt.code || !strings.Contains(stdout+stderr, tt.want) {
				t.Errorf("exit %d (want %d), output lacks %q?\n%s\n%s", code, tt.code, tt.want, stdout, stderr)
			}
		})
	}

	// The plan's own baseline: this run calibrates and compares normalized (counts exactly).
	p := tinyPlan(t, "norm", `baseline:
  file: `+filepath.Join(base, "summary.json")+`
  normalize: calibration
  max_regression: 10000%
  metrics: [connections.attempted, connect.p50]
`)
	dir := filepath.Join(tmp, "r")
	code, stdout, stderr := runMain(t, nil, "run", p, "-q", "--out", dir)
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
	}
	if !strings.Contains(stdout, "normalized by calibration: scale ") || !strings.Contains(stdout, " normalized) (") {
		t.Errorf("the verdict table does not say it normalized:\n%s", stdout)
	}
	s := readSummary(t, dir)
	if s.Calibration == nil || s.Baseline == nil || s.Baseline.Normalize != "calibration" || s.Baseline.Scale == nil ||
		len(s.Baseline.Checks) != 2 || s.Baseline.Checks[1].NewNormalized == nil || s.Baseline.Checks[0].NewNormalized != nil {
		t.Errorf("calibration %+v baseline %+v", s.Calibration, s.Baseline)
	}
	// A baseline without a calibration is a plan error, naming the fix.
	p = tinyPlan(t, "norm", "baseline: {file: "+filepath.Join(plain, "summary.json")+", normalize: calibration}\n")
	if code, _, stderr := runMain(t, nil, "validate", p); code != 2 || !strings.Contains(stderr, "baseline.normalize: the baseline") ||
		!strings.Contains(stderr, "--calibrate --set baseline=null") {
		t.Errorf("validate: exit %d\n%s", code, stderr)
	}
	// A segment keeps no calibration: --calibrate with --segment is refused.
	if code, _, stderr := runMain(t, nil, "run", tinyPlan(t, "norm", ""), "--segment", "0/2", "--calibrate", "--out", filepath.Join(tmp, "seg")); code != 2 ||
		!strings.Contains(stderr, "--calibrate") {
		t.Errorf("segment: exit %d\n%s", code, stderr)
	}
}
