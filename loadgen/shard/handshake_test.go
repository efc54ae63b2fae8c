//go:build linux

package shard

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/portstorm/portstorm/loadgen/metrics"
)

// handshakeWorker plays the fake workers of Timing.Handshake; false for other behaviours.
// "ready" says ready, reads its start from stdin (a SIGTERM ends that wait), sends 1 snapshot and
// done; "ready-deaf" does the
// same but ignores SIGTERM, so only EOF on stdin ends its wait; "ready-twice" says ready twice;
// "exit-unready" exits 5 before being ready; "junk" writes junk before being ready; "stuck" ignores
// SIGTERM and is never ready. Ready workers print "ready T" and "start T" to stderr.
func handshakeWorker(behaviour string, i int, w *Writer) bool {
	switch behaviour {
	case "ready-deaf", "stuck", "ready-hang":
		signal.Ignore(syscall.SIGTERM)
	}
	switch behaviour {
	case "ready", "ready-deaf", "ready-twice":
		fmt.Fprintf(os.Stderr, "ready %s\n", time.Now().Format(time.RFC3339Nano))
		w.Ready()
		if behaviour == "ready-twice" {
			w.Ready()
		}
		// As a real worker: a SIGTERM before the start ends the wait (and the process); one after
		// it is the graceful stop, and this segment's one snapshot is its whole work, so it finishes.
		ctx := context.Background()
		if behaviour == "ready" {
			term := make(chan os.Signal, 1)
			signal.Notify(term, syscall.SIGTERM)
			var cancel context.CancelFunc
			ctx, cancel = context.WithCancel(ctx)
			go func() { <-term; cancel() }()
		}
		start, err := ReadStart(ctx, os.Stdin)
		if err != nil {
			w.Fail(err)
			os.Exit(3)
		}
		fmt.Fprintf(os.Stderr, "start %s\n", start.Format(time.RFC3339Nano))
		w.Snapshot(snap(0, 10+i, int64(i)))
		w.Done(Done{Ending: Ending{Start: start, End: time.Now()}})
	case "ready-hang":
		w.Ready()
		if _, err := ReadStart(context.Background(), os.Stdin); err != nil {
			w.Fail(err)
			os.Exit(3)
		}
		w.Snapshot(snap(0, 5, 1))
		select {} // never ends: only the deadline's SIGKILL stops it
	case "exit-unready":
		os.Exit(5)
	case "junk":
		fmt.Println("this is not json")
	case "stuck":
		select {} // only SIGKILL ends it
	default:
		return false
	}
	return true
}

// stderrTimes collects the instants fake workers printed after word ("ready" or "start").
func stderrTimes(t *testing.T, stderr, word string) []time.Time {
	t.Helper()
	var out []time.Time
	for _, line := range strings.Split(stderr, "\n") {
		_, rest, ok := strings.Cut(line, "] "+word+" ")
		if !ok {
			continue
		}
		at, err := time.Parse(time.RFC3339Nano, rest)
		if err != nil {
			t.Fatalf("stderr line %q: %v", line, err)
		}
		out = append(out, at)
	}
	return out
}

func TestHandshake(t *testing.T) {
	tests := []struct {
		name        string
		workers     []string
		readyWithin time.Duration
		cancel      bool // ctx cancelled before Run
		started     int  // workers that got a start line, all the same
		established uint64
		failed      string // the one failed worker's label and what its failure says; "" for none
		failedSays  string
	}{
		{"ready workers get one start", []string{"ready", "ready", "ready"}, 0, false, 3, 10 + 11 + 12, "", ""},
		{"a worker dying before ready: SIGTERM ends the waiting one",
			[]string{"ready", "exit-unready"}, 0, false, 0, 0, "segment 1/2", "exit status 5"},
		{"a worker dying before ready: EOF on stdin ends the deaf one",
			[]string{"ready-deaf", "exit-unready"}, 0, false, 0, 0, "segment 1/2", "exit status 5"},
		{"junk before ready is a failure", []string{"ready-deaf", "junk"}, 0, false, 0, 0, "segment 1/2", "worker protocol"},
		// The failure stops the run (SIGTERM to the others): the first worker ignores it, so that
		// its snapshot is there however late a busy machine lets it write it.
		{"ready twice is a failure, the start goes on", []string{"ready-deaf", "ready-twice"}, 0, false, 2, 10, "segment 1/2", "unexpected ready"},
		{"never ready is bounded", []string{"ready-deaf", "stuck"}, 3 * time.Second, false, 0, 0, "segment 1/2", "not ready within 3s"},
		{"cancelled before the start: no failures", []string{"ready", "ready-deaf"}, 0, true, 0, 0, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if tt.cancel {
				cancel()
			}
			readyWithin := tt.readyWithin
			if readyWithin == 0 {
				readyWithin = time.Minute // a prompt end below is not the bound's doing
			}
			var stderr bytes.Buffer
			called := time.Now()
			var readyPids [][]int // Timing.Ready's calls
			res, err := Run(ctx, nil, specs(t, tt.workers...), func(*metrics.Snapshot) {}, &stderr,
				Timing{Handshake: true, ReadyWithin: readyWithin, RunFor: time.Minute,
					Ready: func(pids []int) { readyPids = append(readyPids, pids) }})
			if err != nil {
				t.Fatal(err)
			}
			if d := time.Since(called); d > readyWithin+10*time.Second || (tt.readyWithin == 0 && d > 10*time.Second) {
				t.Errorf("Run took %v", d)
			}
			starts := stderrTimes(t, stderr.String(), "start")
			if len(starts) != tt.started {
				t.Fatalf("%d workers started, want %d\n%s", len(starts), tt.started, stderr.String())
			}
			for _, s := range starts {
				if !s.Equal(starts[0]) {
					t.Errorf("start instants differ: %v", starts)
				}
			}
			if len(starts) > 0 {
				for _, r := range stderrTimes(t, stderr.String(), "ready") {
					if !starts[0].After(r) {
						t.Errorf("start %v not after a ready at %v", starts[0], r)
					}
				}
				if tt.failed == "" && !res.Start.Equal(starts[0]) {
					t.Errorf("result start %v, the workers' %v", res.Start, starts[0])
				}
			}
			// Ready is called once, with every worker's process id, when a start is sent; never
			// when none is.
			switch {
			case tt.started == 0 && len(readyPids) != 0:
				t.Errorf("Ready called %v without a start", readyPids)
			case tt.started > 0 && len(readyPids) != 1:
				t.Errorf("Ready called %d times, want once", len(readyPids))
			case tt.started > 0:
				seen := map[int]bool{}
				for _, pid := range readyPids[0] {
					if pid <= 0 || seen[pid] {
						t.Errorf("Ready's pids %v", readyPids[0])
					}
					seen[pid] = true
				}
				if len(seen) != len(tt.workers) {
					t.Errorf("Ready's pids %v, want %d", readyPids[0], len(tt.workers))
				}
			}
			if res.Total.Established != tt.established {
				t.Errorf("established %d, want %d", res.Total.Established, tt.established)
			}
			switch {
			case tt.failed == "" && len(res.Failures) != 0:
				t.Errorf("failures %v, want none", res.Failures)
			case tt.failed != "" && (len(res.Failures) != 1 || res.Failures[0].Worker != tt.failed ||
				!strings.Contains(res.Failures[0].String(), tt.failedSays)):
				t.Errorf("failures %v, want %s: ...%s...\n%s", res.Failures, tt.failed, tt.failedSays, stderr.String())
			}
			if res.Interrupted != tt.cancel {
				t.Errorf("interrupted %v", res.Interrupted)
			}
		})
	}
}

func TestReadStart(t *testing.T) {
	at := time.Date(2030, 1, 2, 3, 4, 5, 123456789, time.UTC)
	var line bytes.Buffer
	if err := WriteStart(&line, at); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		in   string
		want time.Time // zero: an error
	}{
		{"WriteStart's line", line.String(), at},
		{"no newline before EOF", "2030-01-02T03:04:05.123456789Z", at},
		{"an offset", "2030-01-02T04:04:05.123456789+01:00\n", at},
		{"EOF", "", time.Time{}},
		{"empty line", "\n", time.Time{}},
		{"not a time", "now\n", time.Time{}},
		{"no zone", "2030-01-02T03:04:05\n", time.Time{}},
		{"an endless line", strings.Repeat("2", 1000), time.Time{}},
	}
	for _, tt := range tests {
		got, err := ReadStart(context.Background(), strings.NewReader(tt.in))
		switch {
		case tt.want.IsZero() && err == nil:
			t.Errorf("%s: accepted as %v", tt.name, got)
		case !tt.want.IsZero() && (err != nil || !got.Equal(tt.want)):
			t.Errorf("%s: %v, %v; want %v", tt.name, got, err, tt.want)
		}
	}

	// A cancelled wait ends at once; the read behind it ends when its input does.
	r, w := io.Pipe()
	defer w.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := ReadStart(ctx, r); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
}
