package report

import (
	"encoding/xml"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// block puts a non-empty folder where a result file goes: renaming the file over it fails
// (EISDIR), as writing it would on a full disk, even for root.
func block(t *testing.T, dir, name string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(dir, name, "x"), 0o755); err != nil {
		t.Fatal(err)
	}
}

// TestWriteResultsVerdictLast: whichever result file cannot be written, no file left in the folder
// says "pass": summary.json and junit.xml, written last, say "error" and name the missing file, and
// report.html, written before them, is rewritten with that verdict.
func TestWriteResultsVerdictLast(t *testing.T) {
	tests := []struct {
		fail string // the result file that cannot be written; "" none
	}{{""}, {TimelineFile}, {HTMLFile}, {JUnitFile}, {SummaryFile}}
	for _, tt := range tests {
		t.Run("fail "+tt.fail, func(t *testing.T) {
			dir := t.TempDir()
			s := fixedSummary(t)
			s.Verdict, s.Interrupted = VerdictPass, false
			s.Thresholds = []ThresholdResult{{Expr: "errors.rate < 1%", Observed: "0.3%", Pass: true}}
			if tt.fail != "" {
				block(t, dir, tt.fail)
			}
			hlog, err := CreateHLog(dir, s.StartedAt)
			if err != nil {
				t.Fatal(err)
			}
			err = WriteResults(dir, s, []TimelineRow{{EndS: 1}}, hlog)
			want := VerdictPass
			if tt.fail != "" {
				want = VerdictError
				if err == nil || !strings.Contains(err.Error(), tt.fail) {
					t.Fatalf("error %v, want one naming %s", err, tt.fail)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			// The first file named is the one that failed (report.html, drawn from timeline.csv, may follow it).
			if s.Verdict != want || (tt.fail != "" && (len(s.OutputsIncomplete) == 0 || s.OutputsIncomplete[0] != tt.fail)) {
				t.Fatalf("verdict %q, outputs_incomplete %q", s.Verdict, s.OutputsIncomplete)
			}
			if tt.fail != SummaryFile {
				got, err := ReadSummary(filepath.Join(dir, SummaryFile))
				if err != nil {
					t.Fatal(err)
				}
				if got.Verdict != want || !slices.Equal(got.OutputsIncomplete, s.OutputsIncomplete) {
					t.Errorf("summary.json: verdict %q, outputs_incomplete %q", got.Verdict, got.OutputsIncomplete)
				}
			}
			if tt.fail != JUnitFile {
				b, err := os.ReadFile(filepath.Join(dir, JUnitFile))
				if err != nil {
					t.Fatal(err)
				}
				var j JUnitSuites
				if err := xml.Unmarshal(b, &j); err != nil {
					t.Fatal(err)
				}
				suite := j.Suites[0]
				if v := suite.Properties[0]; v.Name != "verdict" || v.Value != want {
					t.Errorf("junit.xml verdict property %+v, want %s", v, want)
				}
				run := suite.Cases[0].Failure
				if (tt.fail != "") != (run != nil && run.Type == "incomplete" && strings.Contains(run.Message, tt.fail)) {
					t.Errorf("junit.xml run case failure %+v", run)
				}
			}
			if !slices.Contains(s.OutputsIncomplete, HTMLFile) {
				b, err := os.ReadFile(filepath.Join(dir, HTMLFile))
				if err != nil {
					t.Fatal(err)
				}
				if !strings.Contains(string(b), `id="verdict">`+strings.ToUpper(want)+`<`) {
					t.Errorf("report.html does not show verdict %s", want)
				}
			}
		})
	}
}

// TestCreateFreshReplacesLinks: a link left where latency.hlog goes is replaced, never written
// through: the file it points to keeps its bytes.
func TestCreateFreshReplacesLinks(t *testing.T) {
	tests := []struct {
		name string
		link func(outside, path string) error
	}{
		{"nothing there", nil},
		{"symlink", os.Symlink},
		{"hard link", os.Link},
		{"dangling symlink", func(outside, path string) error { return os.Symlink(outside+".missing", path) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			outside := filepath.Join(t.TempDir(), "precious")
			const keep = "not a latency log\n"
			if err := os.WriteFile(outside, []byte(keep), 0o600); err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			path := filepath.Join(dir, HLogFile)
			if tt.link != nil {
				if err := tt.link(outside, path); err != nil {
					t.Fatal(err)
				}
			}
			l, err := CreateHLog(dir, fixedSummary(t).StartedAt)
			if err != nil {
				t.Fatal(err)
			}
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			if b, _ := os.ReadFile(outside); string(b) != keep {
				t.Errorf("the file outside the folder was written through the link: %q", b)
			}
			if _, err := os.Stat(outside + ".missing"); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("a file was created at the dangling link's target: %v", err)
			}
			fi, err := os.Lstat(path)
			if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm() != 0o644 {
				t.Fatalf("%s: %v %v, want a regular 0644 file", HLogFile, fi.Mode(), err)
			}
			if b, _ := os.ReadFile(path); !strings.HasPrefix(string(b), "#[Histogram log format version") {
				t.Errorf("%s holds %q", HLogFile, b)
			}
			if names := entries(t, dir); !slices.Equal(names, []string{HLogFile}) {
				t.Errorf("folder holds %q: temporary files left", names)
			}
		})
	}
}

// TestClaimDir: a results folder is refused while another run holds it and once a run has left its
// summary.json there; leftovers of a run killed before its summary do not block it.
func TestClaimDir(t *testing.T) {
	tests := []struct {
		name    string
		prepare func(t *testing.T, dir string) (cleanup func())
		want    string // part of the error; "" for a claim
	}{
		{"new folder", func(*testing.T, string) func() { return func() {} }, ""},
		{"leftovers of a killed run", func(t *testing.T, dir string) func() {
			write(t, dir, HLogFile, "#[Histogram log format version 1.3]\n")
			write(t, dir, HTMLFile, "<html>")
			return func() {}
		}, ""},
		{"another run's summary.json", func(t *testing.T, dir string) func() {
			write(t, dir, SummaryFile, `{"verdict": "pass"}`)
			return func() {}
		}, "already holds a run's summary.json"},
		{"a symlink named summary.json", func(t *testing.T, dir string) func() {
			if err := os.Symlink("/nonexistent", filepath.Join(dir, SummaryFile)); err != nil {
				t.Fatal(err)
			}
			return func() {}
		}, "already holds"},
		{"a run in progress", func(t *testing.T, dir string) func() {
			release, err := ClaimDir(dir)
			if err != nil {
				t.Fatal(err)
			}
			return release
		}, "in use by another portstorm run"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "r")
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			other := tt.prepare(t, dir)
			before := entries(t, dir)
			release, err := ClaimDir(dir)
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				release()
			} else if err == nil || !errors.Is(err, ErrFolderTaken) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want ErrFolderTaken saying %q", err, tt.want)
			}
			if after := entries(t, dir); !slices.Equal(before, after) {
				t.Errorf("claiming changed the folder: %q -> %q", before, after)
			}
			other()
			// Released (or never held by another run), the folder is free again.
			if tt.want == "in use by another portstorm run" {
				release, err := ClaimDir(dir)
				if err != nil {
					t.Fatalf("after the other run ended: %v", err)
				}
				release()
			}
		})
	}
}

func write(t *testing.T, dir, name, body string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestSettle: "pass" is left only to a run that was judged and can be trusted.
func TestSettle(t *testing.T) {
	judged := []ThresholdResult{{Expr: "connections.established > 0", Observed: "1", Pass: true}}
	tests := []struct {
		name       string
		verdict    string
		thresholds []ThresholdResult
		conns      Connections
		workers    []WorkerFailure
		want       string
		warn       string
	}{
		{"judged and passed", VerdictPass, judged, Connections{Attempted: 10, Established: 10}, nil, VerdictPass, ""},
		{"judged and failed", VerdictFail, judged, Connections{Attempted: 10, Established: 10}, nil, VerdictFail, ""},
		{"nothing judged", VerdictNone, nil, Connections{Attempted: 10, Established: 10}, nil, VerdictNone, ""},
		{"nothing judged, half failed", VerdictNone, nil, Connections{Attempted: 10, Established: 5, Failed: 5}, nil, VerdictNone, ""},
		{"nothing judged, most failed", VerdictNone, nil, Connections{Attempted: 10, Established: 4, Failed: 6}, nil,
			VerdictNone, "6 of 10 connection attempts failed (60.0%) and no threshold judged the run"},
		{"thresholds passed, target unreachable", VerdictPass, judged, Connections{Attempted: 10, Failed: 10}, nil,
			VerdictError, "target unreachable: none of 10 connection attempts succeeded"},
		{"nothing judged, target unreachable", VerdictNone, nil, Connections{Attempted: 10, Failed: 10}, nil,
			VerdictError, "no threshold judged the run"},
		{"a worker failed", VerdictPass, judged, Connections{Attempted: 10, Established: 10},
			[]WorkerFailure{{Worker: "worker 1/2", Status: "killed"}}, VerdictError, "1 worker process(es) failed"},
		{"nothing attempted", VerdictNone, nil, Connections{}, nil, VerdictNone, ""},
		// A dead target's backoff leaves attempts dropped at the stop, not failed: they count.
		{"nothing judged, most failed or dropped", VerdictNone, nil, Connections{Attempted: 18, Established: 0, Failed: 8, Dropped: 10}, nil,
			VerdictError, "18 of 18 connection attempts failed or were dropped (10 dropped) (100.0%) and no threshold judged the run"},
		{"nothing judged, some dropped", VerdictNone, nil, Connections{Attempted: 10, Established: 6, Failed: 2, Dropped: 2}, nil, VerdictNone, ""},
	}
	withTargets := []struct {
		name    string
		targets []TargetFailure
		unreach *Unreachable
		warn    string
	}{
		{"a target process failed", []TargetFailure{{Target: "target process 2/2", Status: "signal: killed"}}, nil, "1 built-in target process(es) failed"},
		{"gave up on an unreachable target", nil, &Unreachable{Failed: 3, Destination: "127.0.0.1:9", Outcome: "ECONNREFUSED", Error: "refused"}, "target unreachable"},
	}
	for _, tt := range withTargets {
		t.Run(tt.name, func(t *testing.T) {
			s := &Summary{Verdict: VerdictPass, Thresholds: judged, Connections: Connections{Attempted: 10, Established: 10},
				TargetFailures: tt.targets, Unreachable: tt.unreach}
			Settle(s)
			if s.Verdict != VerdictError || !strings.Contains(strings.Join(s.Warnings, "\n"), tt.warn) {
				t.Errorf("verdict %q, warnings %q; want error naming %q", s.Verdict, s.Warnings, tt.warn)
			}
		})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &Summary{Verdict: tt.verdict, Thresholds: tt.thresholds, Connections: tt.conns, WorkerFailures: tt.workers}
			Settle(s)
			if s.Verdict != tt.want {
				t.Errorf("verdict %q, want %q", s.Verdict, tt.want)
			}
			all := strings.Join(s.Warnings, "\n")
			if tt.warn == "" && len(s.Warnings) > 0 || !strings.Contains(all, tt.warn) {
				t.Errorf("warnings %q, want %q", s.Warnings, tt.warn)
			}
		})
	}
}
