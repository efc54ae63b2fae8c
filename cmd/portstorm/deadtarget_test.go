//go:build linux

package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/portstorm/portstorm/internal/loopback"
)

// TestDeadTargetExits3: configs/nginx.yaml's shape (200 keep-alive HTTP connections) pointed at a
// closed port, for a minute. The run backs off, gives up about 2 s after the first refusal
// (connection.on_connect_failure's defaults) and exits 3 with the first error on stderr and in
// summary.json; whatever it measured is written. In one process and in two worker processes (a
// worker that gives up stops the others). Before, the same plan made every connect it could for
// the whole minute: 107,312 refusals in 15 s of configs/nginx.yaml.
func TestDeadTargetExits3(t *testing.T) {
	checkFDs(t)
	const schedule = time.Minute
	tests := []struct {
		name    string
		workers int
		segment bool // a distributed segment's run (--segment 0/1)
	}{{"one process", 1, false}, {"two worker processes", 2, false}, {"a distributed segment", 1, true}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr := loopback.ClosedPort(t).String()
			p := writePlan(t, fmt.Sprintf(`version: 1
name: dead
target: {addresses: [%q]}
connection:
  send: {protocol: http, count: 10}
load:
  model: concurrency
  start: 200
  stages: [{duration: %s, target: 200}]
  workers: %d
`, addr, schedule, tt.workers))
			dir := filepath.Join(t.TempDir(), "r")
			var code int
			var stderr string
			switch {
			case tt.segment:
				code, _, stderr = runMain(t, nil, "run", p, "-q", "--out", dir, "--segment", "0/1")
			case tt.workers == 1:
				code, _, stderr = runMain(t, nil, "run", p, "-q", "--out", dir)
			default:
				cmd := exec.Command(buildPortstorm(t), "run", p, "-q", "--out", dir)
				var errb strings.Builder
				cmd.Stderr = &errb
				err := cmd.Run()
				stderr = errb.String()
				if ee, ok := err.(*exec.ExitError); ok {
					code = ee.ExitCode()
				} else if err != nil {
					t.Fatal(err)
				}
			}
			if code != 3 {
				t.Fatalf("exit %d, want 3\n%s", code, stderr)
			}
			for _, want := range []string{"target unreachable: nothing established", "connect: connection refused", " written"} {
				if !strings.Contains(stderr, want) {
					t.Errorf("stderr lacks %q:\n%s", want, stderr)
				}
			}
			s := readSummary(t, dir)
			checkConservation(t, s)
			u := s.Unreachable
			if u == nil {
				t.Fatalf("summary.json has no unreachable; outcomes %v", s.Outcomes)
			}
			if u.Outcome != "ECONNREFUSED" || u.Destination != addr || !strings.Contains(u.Error, "connection refused") {
				t.Errorf("unreachable %+v, want ECONNREFUSED at %s", u, addr)
			}
			if s.Interrupted {
				t.Error("a give-up is not an interruption")
			}
			for file, want := range map[string]string{"junit.xml": `type="unreachable"`, "report.html": "gave up at"} {
				b, err := os.ReadFile(filepath.Join(dir, file))
				if err != nil || !strings.Contains(string(b), want) || !strings.Contains(string(b), "connection refused") && file == "junit.xml" {
					t.Errorf("%s lacks %q and the first error (%v)", file, want, err)
				}
			}
			// The schedule was a minute: the run ended about give_up_after past the first refusal.
			if d := time.Duration(s.DurationUS) * time.Microsecond; d >= schedule/2 {
				t.Errorf("run lasted %v of a %v schedule", d, schedule)
			}
			// Each process: the first wave of 200, then about one connect per pause.
			if max := uint64(tt.workers * (200 + 50)); s.Connections.Failed > max {
				t.Errorf("%d refused connects, want at most %d", s.Connections.Failed, max)
			}
		})
	}
}
