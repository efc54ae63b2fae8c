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

// TestMemoryFlat runs the same arrival rate for 10 s and for 60 s in separate processes and compares
// their resident memory late in each run: with no per-sample storage anywhere it must stay within 10%. It takes
// 70 s, so it runs only when PORTSTORM_LONG_TESTS=1 (.ci/run sets it).
func TestMemoryFlat(t *testing.T) {
	if os.Getenv("PORTSTORM_LONG_TESTS") != "1" {
		t.Skip("set PORTSTORM_LONG_TESTS=1 to run (70 s)")
	}
	bin := buildPortstorm(t)
	plan := writePlan(t, `version: 1
name: memflat
target: {builtin: {mode: echo, listeners: 4}}
connection: {send: {bytes: 64B, count: 1}, close: rst}
load: {model: arrival, start: 1000, stages: [{duration: 10s, target: 1000}]}
`)
	// lateRSS runs the plan for d and returns the median resident memory over its last 5 s, sampled
	// every 100 ms: the median of the late samples is what a leak moves, while the peak mostly
	// measures one scheduling burst of in-flight connections.
	lateRSS := func(d time.Duration) int64 {
		cmd := exec.Command(bin, "run", plan, "-q", "--out", filepath.Join(t.TempDir(), "r"),
			"--set", fmt.Sprintf("load.stages=[{duration: %s, target: 1000}]", d))
		// A small GC target keeps the heap's sawtooth (garbage waiting for the next cycle, a few MB
		// at 1000 connections/s) from drowning what a leak would add: what stays is live memory.
		cmd.Env = append(os.Environ(), "GOGC=20")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		start := time.Now()
		var samples []int64
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case err := <-exited:
				if err != nil {
					t.Fatalf("%v run: %v", d, err)
				}
				if len(samples) < 10 {
					t.Fatalf("%v run: only %d late samples", d, len(samples))
				}
				slices.Sort(samples)
				return samples[len(samples)/2]
			case <-tick.C:
				if time.Since(start) < d-5*time.Second || time.Since(start) > d {
					continue
				}
				b, err := os.ReadFile(fmt.Sprintf("/proc/%d/statm", cmd.Process.Pid))
				if err != nil {
					continue
				}
				var size, resident int64
				fmt.Sscan(string(b), &size, &resident)
				samples = append(samples, resident*int64(os.Getpagesize())/1024)
			}
		}
	}
	short, long := lateRSS(10*time.Second), lateRSS(60*time.Second)
	t.Logf("RSS over the last 5 s (median): 10 s run %d KiB, 60 s run %d KiB (%+.1f%%)", short, long, 100*float64(long-short)/float64(short))
	if float64(long) > 1.10*float64(short) {
		t.Errorf("resident memory grew from %d KiB (10 s run) to %d KiB (60 s run): more than 10%%", short, long)
	}
}
