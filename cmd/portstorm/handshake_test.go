//go:build linux

package main

import (
	"io"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/portstorm/portstorm/loadgen/coordinator"
	"github.com/portstorm/portstorm/loadgen/plan"
	"github.com/portstorm/portstorm/loadgen/shard"
	"github.com/portstorm/portstorm/loadgen/spec"
)

// TestWorkerStartFlag: a worker's --start-at is an RFC 3339 instant, "ready" (from stdin), or
// nothing.
func TestWorkerStartFlag(t *testing.T) {
	at := time.Date(2030, 1, 2, 3, 4, 5, 6, time.UTC)
	stdin := strings.NewReader("")
	tests := []struct {
		flag      string
		wantAt    time.Time
		wantStdin bool
		wantErr   bool
	}{
		{"", time.Time{}, false, false},
		{"ready", time.Time{}, true, false},
		{at.Format(time.RFC3339Nano), at, false, false},
		{"2030-01-02T04:04:05.000000006+01:00", at, false, false},
		{"soon", time.Time{}, false, true},
		{"Ready", time.Time{}, false, true},
	}
	e := &env{stdin: stdin}
	for _, tt := range tests {
		o, err := e.workerStart(tt.flag)
		if (err != nil) != tt.wantErr || !o.StartAt.Equal(tt.wantAt) || (o.StartFrom == stdin) != tt.wantStdin {
			t.Errorf("--start-at %q: %+v, %v", tt.flag, o, err)
		}
	}
}

// TestWorkerStartHandshake: a worker started with --start-at ready says so once set up, then
// starts its schedule at the instant it reads from stdin; without a well-formed instant it ends
// at once with an error and nothing measured.
func TestWorkerStartHandshake(t *testing.T) {
	bin := buildPortstorm(t)
	// Nothing listens on port 1: connections are refused, and the worker still runs its schedule.
	p := writePlan(t, `version: 1
name: handshake
target: {addresses: ["127.0.0.1:1"]}
load:
  model: concurrency
  start: 2
  stages: [{duration: 300ms, target: 2}]
  graceful_stop: 1s
output: {interval: 100ms}
`)
	sf := writeWorkerSpec(t, p)
	var start time.Time // the instant the first case sends
	tests := []struct {
		name    string
		answer  func(cmd *exec.Cmd, stdin io.WriteCloser) // after the ready line
		wantOK  bool
		wantErr string
	}{
		{"the start instant", func(_ *exec.Cmd, stdin io.WriteCloser) {
			start = time.Now().Add(20 * time.Millisecond)
			shard.WriteStart(stdin, start)
		}, true, ""},
		{"a malformed line", func(_ *exec.Cmd, stdin io.WriteCloser) { io.WriteString(stdin, "soon\n") }, false, "RFC 3339"},
		{"stdin closed", func(_ *exec.Cmd, stdin io.WriteCloser) { stdin.Close() }, false, "closed before the start"},
		{"SIGTERM", func(cmd *exec.Cmd, _ io.WriteCloser) { cmd.Process.Signal(syscall.SIGTERM) }, false, "stopped while waiting"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := exec.Command(bin, "run", sf, "-q", "--worker", "0/1", "--start-at", "ready")
			stdin, err := cmd.StdinPipe()
			if err != nil {
				t.Fatal(err)
			}
			stdout, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			var stderr strings.Builder
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer stdin.Close()
			var ready, snapshots int
			var done *shard.Done
			var msg string
			err = shard.Read(stdout, func(m shard.Message) error {
				switch {
				case m.Ready:
					if ready++; ready == 1 && snapshots == 0 {
						tt.answer(cmd, stdin)
					}
				case m.Snapshot != nil:
					snapshots++
				case m.Done != nil:
					done = m.Done
				default:
					msg = m.Error
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			werr := cmd.Wait()
			if ready != 1 {
				t.Fatalf("%d ready lines, want 1\n%s", ready, stderr.String())
			}
			if tt.wantOK {
				if werr != nil || done == nil || snapshots == 0 {
					t.Fatalf("exit %v, done %+v, %d snapshots, error %q\n%s", werr, done, snapshots, msg, stderr.String())
				}
				if !done.Start.Equal(start) {
					t.Errorf("segment started at %v, told %v", done.Start, start)
				}
				return
			}
			if cmd.ProcessState.ExitCode() != exitCannotRun || snapshots != 0 || done != nil || !strings.Contains(msg, tt.wantErr) {
				t.Errorf("exit %v, %d snapshots, done %+v, error %q; want exit 3 and an error saying %q\n%s",
					werr, snapshots, done, msg, tt.wantErr, stderr.String())
			}
		})
	}
}

// writeWorkerSpec is the plan file p compiled into the run spec a coordinator hands its worker.
func writeWorkerSpec(t *testing.T, p string) string {
	t.Helper()
	pl, err := plan.LoadFile(p, plan.Overrides{})
	if err != nil {
		t.Fatal(err)
	}
	pl.Defaults()
	s, err := spec.Compile(pl, coordinator.Facts(nil))
	if err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(t.TempDir(), "segment.json")
	if err := s.Write(f); err != nil {
		t.Fatal(err)
	}
	return f
}
