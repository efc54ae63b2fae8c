//go:build linux

package main

import (
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestSignalsAtRandomMoments interrupts a run 20 times at random moments, from before the run starts
// to the middle of its drain, with one or two signals: every time the exit code is 130, and the
// results are complete, marked interrupted, with counts conserved, unless the signal came before the
// run began (then there are none).
func TestSignalsAtRandomMoments(t *testing.T) {
	checkFDs(t)
	p := writePlan(t, `version: 1
name: signals
target: {builtin: {mode: echo, listeners: 2}}
connection: {send: {bytes: 32B, count: 3, interval: 10ms}, hold: 50ms, io_timeout: 1m, connect_timeout: 1m}
load:
  model: arrival
  start: 300
  stages: [{duration: 5s, target: 300}]
  graceful_stop: 1m
output: {interval: 100ms}
`)
	// Timeouts and graceful stop of a minute: on a busy machine the drain after one signal is slow,
	// and must still cut nothing.
	seed := time.Now().UnixNano()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(uint64(seed), 0))
	for i := range 20 {
		delay := time.Duration(rng.Int64N(int64(700 * time.Millisecond)))
		sigs := []os.Signal{syscall.SIGINT, syscall.SIGTERM}
		first := sigs[rng.IntN(2)]
		second := rng.IntN(3) == 0
		dir := filepath.Join(t.TempDir(), "r")
		sig := make(chan os.Signal, 2)
		var out, errb syncBuffer
		done := make(chan int)
		go func() { done <- Main([]string{"run", p, "-q", "--out", dir}, nil, &out, &errb, sig) }()
		timer := time.AfterFunc(delay, func() {
			sig <- first
			if second {
				sig <- syscall.SIGINT
			}
		})
		code := <-done
		timer.Stop()
		if code != 130 {
			t.Fatalf("run %d (signal %v after %v, second %v): exit %d\n%s", i, first, delay, second, code, errb.String())
		}
		if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
			// The signal came before the run began: nothing measured, nothing written.
			if !strings.Contains(errb.String(), "interrupted before the run began") {
				t.Fatalf("run %d: no results folder, and stderr does not say why:\n%s", i, errb.String())
			}
			continue
		}
		s := readSummary(t, dir)
		if !s.Interrupted {
			t.Fatalf("run %d: not marked interrupted", i)
		}
		checkConservation(t, s)
		if _, err := os.Stat(filepath.Join(dir, "timeline.csv")); err != nil {
			t.Fatalf("run %d: %v", i, err)
		}
		if !second && s.Outcomes["canceled"] != 0 {
			t.Errorf("run %d: a single signal cut %d connections; they should drain", i, s.Outcomes["canceled"])
		}
		if t.Failed() {
			t.Fatalf("run %d (signal %v after %v, second %v) failed", i, first, delay, second)
		}
	}
}

// TestSignalBeforeTheRun: a signal caught before the run begins (here, before Main even looked at
// its arguments) ends the command at once with 130: no connection, no results folder.
func TestSignalBeforeTheRun(t *testing.T) {
	checkFDs(t)
	p := writePlan(t, `version: 1
name: early
target: {builtin: {mode: echo}}
load: {model: arrival, start: 50, stages: [{duration: 10s, target: 50}]}
`)
	tests := []struct {
		name string
		sigs []os.Signal
	}{
		{"SIGINT", []os.Signal{syscall.SIGINT}},
		{"SIGTERM", []os.Signal{syscall.SIGTERM}},
		{"two signals", []os.Signal{syscall.SIGTERM, syscall.SIGINT}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sig := make(chan os.Signal, len(tt.sigs))
			for _, s := range tt.sigs {
				sig <- s
			}
			dir := filepath.Join(t.TempDir(), "r")
			code, stdout, stderr := runMain(t, sig, "run", p, "-q", "--out", dir)
			if code != 130 || !strings.Contains(stderr, "interrupted before the run began") {
				t.Fatalf("exit %d, want 130 saying so\n%s\n%s", code, stdout, stderr)
			}
			if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("results folder: %v; want none", err)
			}
		})
	}
}
