//go:build linux

package main

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// feedFIFO makes a named pipe at path with a writer waiting on it: when something opens the pipe
// for reading, the writer writes data (less than a pipe's buffer) and closes, so that a reader
// gets data and then end of file instead of waiting for ever; a command that opens the pipe then
// accepts or refuses what it read, and the test sees that rather than hanging. When nothing opened
// the pipe, the cleanup opens it without waiting, which lets the writer end.
func feedFIFO(t *testing.T, path, data string) {
	t.Helper()
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		f, err := os.OpenFile(path, os.O_WRONLY, 0)
		if err != nil {
			done <- err
			return
		}
		_, err = f.Write([]byte(data))
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		done <- err
	}()
	t.Cleanup(func() {
		r, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
		if err != nil {
			t.Errorf("releasing the pipe's writer: %v", err)
			return
		}
		if err := <-done; err != nil {
			t.Errorf("the pipe's writer: %v", err)
		}
		r.Close()
	})
}

const shortPlan = "version: 1\nname: piped\ntarget: {builtin: {}}\nload: {stages: [{duration: 100ms, target: 1}]}\n"

// TestPlanFileNotRegular: a plan path that names a named pipe, a folder or a device is refused
// with exit code 2 before anything is read from it (a named pipe would block the open).
func TestPlanFileNotRegular(t *testing.T) {
	checkFDs(t)
	tests := []struct {
		name string
		path func(t *testing.T) string
		want string
	}{
		{"named pipe", func(t *testing.T) string {
			p := filepath.Join(t.TempDir(), "plan.yaml")
			feedFIFO(t, p, shortPlan)
			return p
		}, "is a named pipe (FIFO); want a regular file"},
		{"folder", func(t *testing.T) string { return t.TempDir() }, "is a folder; want a regular file"},
		{"device", func(*testing.T) string { return "/dev/zero" }, "/dev/zero is a character device"},
	}
	for _, tc := range tests {
		for _, verb := range []string{"validate", "run"} {
			t.Run(tc.name+"/"+verb, func(t *testing.T) {
				path := tc.path(t)
				out := filepath.Join(t.TempDir(), "r")
				args := []string{verb, path}
				if verb == "run" {
					args = append(args, "-q", "--out", out)
				}
				code, _, stderr := runMain(t, nil, args...)
				if code != exitInvalid {
					t.Fatalf("exit %d, want %d\n%s", code, exitInvalid, stderr)
				}
				if !strings.Contains(stderr, path) || !strings.Contains(stderr, tc.want) {
					t.Errorf("stderr lacks the path and %q:\n%s", tc.want, stderr)
				}
				if _, err := os.Stat(out); err == nil {
					t.Error("a results folder was made")
				}
			})
		}
	}
}

// TestInvalidRunMakesNoResults: a plan whose named files the run could not use fails `run` with
// exit code 2 at the key's file:line, and nothing is made under the results folder (output.dir,
// results/ by default, relative to the working directory).
func TestInvalidRunMakesNoResults(t *testing.T) {
	checkFDs(t)
	const tlsPlan = `version: 1
name: invalid
target: {addresses: ["127.0.0.1:1"]}
connection:
  tls:
    ca_file: named
load: {stages: [{duration: 100ms, target: 1}]}
`
	const baselinePlan = `version: 1
name: invalid
target: {builtin: {}}
load: {stages: [{duration: 100ms, target: 1}]}
baseline:
  file: named
`
	tests := []struct {
		name, plan string
		named      func(t *testing.T, path string)
		want       string
	}{
		{"ca_file not PEM", tlsPlan, func(t *testing.T, path string) {
			if err := os.WriteFile(path, []byte("not a certificate\n"), 0o600); err != nil {
				t.Fatal(err)
			}
		}, "plan.yaml:6: connection.tls.ca_file: named is not PEM"},
		{"ca_file a folder", tlsPlan, func(t *testing.T, path string) {
			if err := os.Mkdir(path, 0o700); err != nil {
				t.Fatal(err)
			}
		}, "plan.yaml:6: connection.tls.ca_file: cannot read the CA file: named is a folder"},
		{"ca_file a named pipe", tlsPlan, func(t *testing.T, path string) { feedFIFO(t, path, "not a certificate\n") },
			"plan.yaml:6: connection.tls.ca_file: cannot read the CA file: named is a named pipe (FIFO)"},
		{"baseline a named pipe", baselinePlan, func(t *testing.T, path string) { feedFIFO(t, path, "{}") },
			"plan.yaml:6: baseline.file: cannot read the baseline: named is a named pipe (FIFO)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			t.Chdir(dir)
			tc.named(t, "named")
			if err := os.WriteFile("plan.yaml", []byte(tc.plan), 0o600); err != nil {
				t.Fatal(err)
			}
			code, _, stderr := runMain(t, nil, "run", "plan.yaml", "-q")
			if code != exitInvalid {
				t.Errorf("exit %d, want %d\n%s", code, exitInvalid, stderr)
			}
			if !strings.Contains(stderr, tc.want) {
				t.Errorf("stderr lacks %q:\n%s", tc.want, stderr)
			}
			if _, err := os.Stat(filepath.Join(dir, "results")); !os.IsNotExist(err) {
				t.Errorf("a results folder was made for an invalid plan (stat: %v)", err)
			}
		})
	}
}

// TestValidateReportsEveryProblem: validate reports a plan's type errors, its value errors and its
// threshold errors in one pass, each at its file:line.
func TestValidateReportsEveryProblem(t *testing.T) {
	p := writePlan(t, `version: 1
name: [every]
target: {builtin: {mode: mirror}}
load:
  max_in_flight: many
  stages: [{duration: 1s, target: 1}]
  on_saturation: wait
thresholds: ["connect.p99 < soon"]
`)
	code, _, stderr := runMain(t, nil, "validate", p)
	if code != exitInvalid {
		t.Fatalf("exit %d, want %d\n%s", code, exitInvalid, stderr)
	}
	for _, w := range []string{
		"5 problem(s) in the plan",
		"plan.yaml:2: name: want a string",
		"plan.yaml:5: load.max_in_flight: want an integer",
		"plan.yaml:3: target.builtin.mode: want one of",
		"plan.yaml:7: load.on_saturation: want one of",
		"plan.yaml:8: thresholds[0].expr:",
	} {
		if !strings.Contains(stderr, w) {
			t.Errorf("stderr lacks %q:\n%s", w, stderr)
		}
	}
}
