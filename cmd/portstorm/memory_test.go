//go:build linux

package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// TestMemoryFlat runs an arrival rate for 60 s and compares the process's resident memory over
// seconds 25-30 with seconds 55-60: with no per-sample storage anywhere it must stay within 6%. (A
// leak of 100 KB a second, injected in main, measured +9.4% and failed.) The first window comes
// after what grows by design has grown (the port observatory's tables, the pools, the heap's
// target: the RSS rises until about 20 s, then stays within ~1 MB). Comparing a 10 s run with a
// 60 s run, as this test did until December 2026, measured that growth too, and failed on it in
// two CI runs (+10.8%, +10.2%; +4.5-8.1% in others). It takes 60 s, so it runs only when
// PORTSTORM_LONG_TESTS=1 (.ci/run sets it).
func TestMemoryFlat(t *testing.T) {
	if os.Getenv("PORTSTORM_LONG_TESTS") != "1" {
		t.Skip("set PORTSTORM_LONG_TESTS=1 to run (60 s)")
	}
	bin := buildPortstorm(t)
	plan := writePlan(t, `version: 1
name: memflat
target: {builtin: {mode: echo, listeners: 4}}
connection: {send: {bytes: 64B, count: 1}, close: rst}
load: {model: arrival, start: 1000, stages: [{duration: 60s, target: 1000}]}
`)
	cmd := exec.Command(bin, "run", plan, "-q", "--out", filepath.Join(t.TempDir(), "r"))
	// A small GC target keeps the heap's sawtooth (garbage waiting for the next cycle, a few MB
	// at 1000 connections/s) from drowning what a leak would add: what stays is live memory.
	cmd.Env = append(os.Environ(), "GOGC=20")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	// The resident memory every 100 ms in each window; the median of a window is what a leak
	// moves, while a peak mostly measures one scheduling burst of in-flight connections.
	windows := []struct{ from, to time.Duration }{{25 * time.Second, 30 * time.Second}, {55 * time.Second, 60 * time.Second}}
	samples := make([][]int64, len(windows))
	start := time.Now()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for done := false; !done; {
		select {
		case err := <-exited:
			if err != nil {
				t.Fatalf("run: %v", err)
			}
			done = true
		case <-tick.C:
			at := time.Since(start)
			for i, w := range windows {
				if at < w.from || at > w.to {
					continue
				}
				b, err := os.ReadFile(fmt.Sprintf("/proc/%d/statm", cmd.Process.Pid))
				if err != nil {
					continue
				}
				var size, resident int64
				fmt.Sscan(string(b), &size, &resident)
				samples[i] = append(samples[i], resident*int64(os.Getpagesize())/1024)
			}
		}
	}
	medians := make([]int64, len(windows))
	for i, s := range samples {
		if len(s) < 10 {
			t.Fatalf("only %d samples in seconds %v-%v", len(s), windows[i].from, windows[i].to)
		}
		slices.Sort(s)
		medians[i] = s[len(s)/2]
	}
	early, late := medians[0], medians[1]
	t.Logf("RSS (median): seconds 25-30 %d KiB, seconds 55-60 %d KiB (%+.1f%%)", early, late, 100*float64(late-early)/float64(early))
	if float64(late) > 1.06*float64(early) {
		t.Errorf("resident memory grew from %d KiB (seconds 25-30) to %d KiB (seconds 55-60): more than 6%%", early, late)
	}
}
