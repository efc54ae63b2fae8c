//go:build linux

package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/portstorm/portstorm/loadgen/report"
)

// readmeBlocks returns the README's fenced blocks of a language, in order.
func readmeBlocks(t *testing.T, lang string) []string {
	t.Helper()
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile("(?ms)^```" + lang + "\n(.*?)^```")
	var out []string
	for _, m := range re.FindAllStringSubmatch(string(b), -1) {
		out = append(out, m[1])
	}
	return out
}

// TestReadmeCIExamples: the README's CI jobs are ones a user can paste into their repository:
// they install a released portstorm of this module (not go run ./cmd/portstorm), run the plan
// from the user's repository, and keep junit.xml and report.html; that plan validates, with a
// baseline made as the README says (--calibrate).
func TestReadmeCIExamples(t *testing.T) {
	mod, err := os.ReadFile("../../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	module := strings.TrimPrefix(strings.SplitN(string(mod), "\n", 2)[0], "module ")
	install := regexp.MustCompile(`go install ` + regexp.QuoteMeta(module) + `/cmd/portstorm@v0\.[0-9]+\.[0-9]+\n`)
	var plan string
	jobs := map[string]string{}
	for _, b := range readmeBlocks(t, "yaml") {
		switch {
		case strings.HasPrefix(b, "# loadtest/gate.yaml\n"):
			plan = b
		case strings.HasPrefix(b, "name: capacity\n"):
			jobs["GitHub Actions"] = b
		case strings.HasPrefix(b, "capacity-gate:\n"):
			jobs["GitLab CI"] = b
		}
	}
	if plan == "" || len(jobs) != 2 {
		t.Fatalf("README: the user's plan (found %v) and both CI jobs (found %d) are not where this test looks", plan != "", len(jobs))
	}
	for name, job := range jobs {
		t.Run(name, func(t *testing.T) {
			var v any
			if err := yaml.Unmarshal([]byte(job), &v); err != nil {
				t.Errorf("not YAML: %v", err)
			}
			for _, want := range []string{"portstorm run loadtest/gate.yaml --out results/gate", "results/gate/junit.xml", "results/gate/report.html"} {
				if !strings.Contains(job, want) {
					t.Errorf("lacks %q", want)
				}
			}
			if !install.MatchString(job) {
				t.Errorf("does not install a release with go install %s/cmd/portstorm@v0.x.y", module)
			}
			if strings.Contains(job, "./cmd/portstorm") || strings.Contains(job, "configs/") {
				t.Error("uses portstorm's own repository")
			}
		})
	}
	t.Run("the plan", func(t *testing.T) {
		dir := t.TempDir()
		t.Chdir(dir)
		if err := os.Mkdir("loadtest", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join("loadtest", "gate.yaml"), []byte(plan), 0o644); err != nil {
			t.Fatal(err)
		}
		// Without a baseline, validate names the file; with one lacking a calibration, the command
		// that makes one; with a calibrated one, it is valid.
		steps := []struct {
			baseline *report.Summary
			code     int
			want     string
		}{
			{nil, 2, "baseline.file"},
			{&report.Summary{Schema: report.Schema}, 2, "--calibrate --set baseline=null"},
			{&report.Summary{Schema: report.Schema, Calibration: &report.Calibration{UnitUS: 50, Connections: 1000}}, 0, "valid plan"},
		}
		for _, st := range steps {
			if st.baseline != nil {
				if err := report.WriteSummary("loadtest", st.baseline); err != nil {
					t.Fatal(err)
				}
				if err := os.Rename(filepath.Join("loadtest", "summary.json"), filepath.Join("loadtest", "baseline.json")); err != nil {
					t.Fatal(err)
				}
			}
			code, stdout, stderr := runMain(t, nil, "validate", "loadtest/gate.yaml")
			if code != st.code || !strings.Contains(stdout+stderr, st.want) {
				t.Errorf("validate: exit %d (want %d), output lacks %q:\n%s%s", code, st.code, st.want, stdout, stderr)
			}
		}
	})
}
