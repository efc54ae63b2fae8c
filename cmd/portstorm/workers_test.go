//go:build linux

package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	buildOnce sync.Once
	builtDir  string
	builtBin  string
	buildErr  error
)

// buildPortstorm builds the binary once per test run: worker and target processes are started
// from it, and some tests run it as a whole process.
func buildPortstorm(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		if builtDir, buildErr = os.MkdirTemp("", "portstorm-test-"); buildErr != nil {
			return
		}
		builtBin = filepath.Join(builtDir, "portstorm")
		if out, err := exec.Command("go", "build", "-o", builtBin, ".").CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("%v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatalf("build: %v", buildErr)
	}
	return builtBin
}

// TestScale64k holds 64,000 concurrent connections to the built-in target: worker processes and
// target processes, four source addresses, a private network namespace. It needs root (or user
// namespaces) and takes about 30 s, so it runs when PORTSTORM_LONG_TESTS=1 (.ci/run sets it).
func TestScale64k(t *testing.T) {
	if os.Getenv("PORTSTORM_LONG_TESTS") != "1" {
		t.Skip("set PORTSTORM_LONG_TESTS=1 to run (30 s)")
	}
	bin := buildPortstorm(t)
	dir := filepath.Join(t.TempDir(), "r")
	out, err := exec.Command(bin, "run", "../../configs/64k.yaml", "-q", "--out", dir).CombinedOutput()
	if err != nil {
		t.Fatalf("64k run: %v\n%s", err, out)
	}
	s := readSummary(t, dir)
	checkConservation(t, s)
	c := s.Connections
	if c.PeakConcurrent < 64000 || c.Failed != 0 || s.Errors.Count != 0 {
		t.Fatalf("peak %d, failed %d, errors %d (%v)\n%s", c.PeakConcurrent, c.Failed, s.Errors.Count, s.Examples, out)
	}
	if s.Segments < 4 || s.Target == nil || s.Target.Processes < 4 || s.Target.Accepted != c.Established {
		t.Fatalf("segments %d, target %+v, established %d: 64k needs 4 generator and 4 target processes here", s.Segments, s.Target, c.Established)
	}
	// Ports belong to the host: each worker's report stays apart, on its own source address.
	if len(s.PortsByHost) != s.Segments {
		t.Fatalf("%d port reports for %d workers", len(s.PortsByHost), s.Segments)
	}
	seen := map[string]bool{}
	for _, hp := range s.PortsByHost {
		for _, src := range hp.Ports.Sources {
			if seen[src.Address] {
				t.Errorf("source address %s used by two workers", src.Address)
			}
			seen[src.Address] = true
		}
	}
	t.Logf("64k: %d established, connect p99 %d µs, %.1f s", c.Established, s.Latency["connect"].P99, float64(s.DurationUS)/1e6)
}

// childPIDs lists the direct children of pid.
func childPIDs(pid int) []int {
	var out []int
	tasks, _ := filepath.Glob("/proc/" + strconv.Itoa(pid) + "/task/*/children")
	for _, f := range tasks {
		b, _ := os.ReadFile(f)
		for _, w := range strings.Fields(string(b)) {
			if n, err := strconv.Atoi(w); err == nil {
				out = append(out, n)
			}
		}
	}
	return out
}

// signalMidRun runs plan p, waits for a progress line holding ready (an event: every process is
// running its part, e.g. "active 40 "), sends sig to the first child process whose command line
// holds match, and waits for the run to end. It returns the exit code, stderr, the results folder
// and the victim's pid. No clock: the plans last minutes, and the caller checks from the summary
// that the run ended long before its plan did.
func signalMidRun(t *testing.T, p, ready, match string, sig syscall.Signal) (code int, stderr, dir string, victim int) {
	t.Helper()
	bin := buildPortstorm(t)
	dir = filepath.Join(t.TempDir(), "r")
	cmd := exec.Command(bin, "run", p, "--out", dir)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var errb strings.Builder
	cmd.Stderr = &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(stdout)
	for {
		if !sc.Scan() {
			cmd.Wait()
			t.Fatalf("no progress line with %q\n%s", ready, errb.String())
		}
		if strings.Contains(sc.Text(), ready) {
			break
		}
	}
	for _, child := range childPIDs(cmd.Process.Pid) {
		if b, _ := os.ReadFile("/proc/" + strconv.Itoa(child) + "/cmdline"); strings.Contains(string(b), match) {
			victim = child
			break
		}
	}
	if victim == 0 {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("no child process with %q in its command line", match)
	}
	syscall.Kill(victim, sig)
	for sc.Scan() {
	}
	cmd.Wait()
	return cmd.ProcessState.ExitCode(), errb.String(), dir, victim
}

// TestWorkerKilledMidRun: a worker process that ends mid-run, killed outright or stopped by a
// SIGTERM the coordinator did not send (which it takes as a graceful stop and reports as a normal
// interrupted segment), is reported (which, when, how); the other worker is stopped, the run ends
// with exit 3, and the other worker's measurements are kept.
func TestWorkerKilledMidRun(t *testing.T) {
	p := writePlan(t, `version: 1
name: killed-worker
target: {builtin: {mode: echo, listeners: 2, processes: 1}}
connection: {send: {bytes: 16B, count: 1000, interval: 50ms}}
load:
  model: concurrency
  workers: 2
  start: 40
  stages: [{duration: 5m, target: 40}]
  graceful_stop: 2s
output: {interval: 200ms}
`)
	for _, tt := range []struct {
		sig    syscall.Signal
		status string
	}{
		{syscall.SIGKILL, "killed"},
		{syscall.SIGTERM, "without being asked"},
	} {
		t.Run(tt.sig.String(), func(t *testing.T) {
			code, stderr, dir, victim := signalMidRun(t, p, "active 40 ", "--worker", tt.sig)
			if code != 3 {
				t.Fatalf("exit %d, want 3\n%s", code, stderr)
			}
			s := readSummary(t, dir)
			if d := time.Duration(s.DurationUS) * time.Microsecond; d >= 5*time.Minute {
				t.Errorf("the run lasted %v, its whole plan: a dead worker did not end it", d)
			}
			if len(s.WorkerFailures) != 1 || s.WorkerFailures[0].PID != victim || !strings.Contains(s.WorkerFailures[0].Status, tt.status) {
				t.Fatalf("worker failures %+v, want the pid %d, %q", s.WorkerFailures, victim, tt.status)
			}
			if s.Connections.Established < 20 {
				t.Errorf("established %d: the surviving worker's measurements are lost", s.Connections.Established)
			}
			if s.Outcomes["other"] != 0 {
				t.Errorf("other %d", s.Outcomes["other"])
			}
			if !strings.Contains(stderr, strconv.Itoa(victim)) {
				t.Errorf("stderr does not name the dead worker:\n%s", stderr)
			}
		})
	}
}

// TestTargetProcessKilledMidRun: a built-in target process that ends mid-run, killed or stopped
// from outside, cuts its connections and loses its counters: the run is stopped, the process is
// listed in target_failures, and the run ends with exit 3 with what was measured until then.
func TestTargetProcessKilledMidRun(t *testing.T) {
	p := writePlan(t, `version: 1
name: killed-target
target: {builtin: {mode: echo, processes: 2}}
connection: {send: {bytes: 16B, count: 1000, interval: 50ms}}
load:
  model: concurrency
  start: 20
  stages: [{duration: 5m, target: 20}]
  graceful_stop: 2s
output: {interval: 200ms}
`)
	for _, tt := range []struct {
		sig    syscall.Signal
		status string
	}{
		{syscall.SIGKILL, "killed"},
		// A target process stopped from outside ends cleanly, printing its counters: still not the
		// run's doing.
		{syscall.SIGTERM, "before it was asked"},
	} {
		t.Run(tt.sig.String(), func(t *testing.T) {
			code, stderr, dir, victim := signalMidRun(t, p, "active 20 ", "target", tt.sig)
			if code != 3 {
				t.Fatalf("exit %d, want 3\n%s", code, stderr)
			}
			s := readSummary(t, dir)
			if d := time.Duration(s.DurationUS) * time.Microsecond; d >= 5*time.Minute {
				t.Errorf("the run lasted %v, its whole plan: a dead target process did not end it", d)
			}
			if len(s.TargetFailures) != 1 || s.TargetFailures[0].PID != victim || !strings.Contains(s.TargetFailures[0].Status, tt.status) {
				t.Fatalf("target failures %+v, want the pid %d, %q", s.TargetFailures, victim, tt.status)
			}
			if f := s.TargetFailures[0]; f.Target != "target process 1/2" && f.Target != "target process 2/2" || f.AtS <= 0 {
				t.Errorf("target failure %+v: which and when", f)
			}
			if s.Connections.Established < 20 || s.Target == nil || s.Target.Accepted == 0 {
				t.Errorf("established %d, target %+v: the measurements are lost", s.Connections.Established, s.Target)
			}
			if !strings.Contains(stderr, strconv.Itoa(victim)) {
				t.Errorf("stderr does not name the dead target process:\n%s", stderr)
			}
		})
	}
}

// TestProcessesSpeakTLSAndHTTP: with worker processes and target processes, HTTP over TLS still
// works end to end: every target process serves the run's one certificate, and every worker trusts
// it (and sends the same Host).
func TestProcessesSpeakTLSAndHTTP(t *testing.T) {
	bin := buildPortstorm(t)
	dir := filepath.Join(t.TempDir(), "r")
	out, err := exec.Command(bin, "run", "../../configs/http.yaml", "-q", "--out", dir,
		"--set", "target.builtin.tls=true", "--set", "target.builtin.processes=2", "--set", "load.workers=2",
		"--set", "load.stages=[{duration: 1s, target: 40}]").CombinedOutput()
	if err != nil {
		t.Fatalf("run: %v\n%s", err, out)
	}
	s := readSummary(t, dir)
	checkConservation(t, s)
	c := s.Connections
	if c.Established == 0 || c.Failed != 0 || s.Outcomes["ok"] != c.Established || s.Workers != 2 {
		t.Fatalf("connections %+v, outcomes %v (examples %v), workers %d\n%s", c, s.Outcomes, s.Examples, s.Workers, out)
	}
	if tg := s.Target; tg == nil || tg.Processes != 2 || tg.TLSHandshakes != c.Established || tg.TLSFailed != 0 ||
		tg.Requests != uint64(s.Latency["rtt"].Count) {
		t.Errorf("target %+v; %d connections, %d answers timed", tg, c.Established, s.Latency["rtt"].Count)
	}
	if h := s.Latency["tls_handshake"]; h.Count != int64(c.Established) {
		t.Errorf("tls_handshake %+v for %d connections", h, c.Established)
	}
}
