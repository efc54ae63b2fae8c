//go:build linux

package main

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	hdr "github.com/HdrHistogram/hdrhistogram-go"
)

// hlogIntervals reads latency.hlog with hdrhistogram-go's own log reader and counts its interval
// histograms (one per latency per interval). A read error (a torn line) fails the test.
func hlogIntervals(t *testing.T, path string) int {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r := hdr.NewHistogramLogReader(f)
	n := 0
	for {
		h, err := r.NextIntervalHistogram()
		if err != nil {
			t.Fatalf("reading %s after %d histograms: %v", path, n, err)
		}
		if h == nil {
			return n
		}
		n++
	}
}

// TestSIGKILLKeepsTheIntervalLog: a run killed outright loses at most the interval in progress:
// latency.hlog holds every interval written before the kill and reads back cleanly.
func TestSIGKILLKeepsTheIntervalLog(t *testing.T) {
	bin := buildPortstorm(t)
	p := writePlan(t, `version: 1
name: sigkill
target: {builtin: {mode: echo}}
connection: {send: {bytes: 16B, count: 1000, interval: 20ms}}
load: {model: concurrency, start: 20, stages: [{duration: 5m, target: 20}]}
output: {interval: 100ms}
`)
	dir := filepath.Join(t.TempDir(), "r")
	cmd := exec.Command(bin, "run", p, "--out", dir)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	sc := bufio.NewScanner(stdout)
	if !sc.Scan() { // the first interval is cut
		t.Fatal("no progress line")
	}
	ended := make(chan struct{})
	go func() {
		for sc.Scan() {
		}
		close(ended)
	}()
	log := filepath.Join(dir, "latency.hlog")
	// Wait until at least 10 intervals (5 latencies each) are on disk, bounded by the 5-minute
	// run, not a clock: a busy machine writes them later, not fewer.
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	var lines int
	for lines < 50 {
		select {
		case <-tick.C:
		case <-ended:
			t.Fatalf("the run ended with only %d interval lines", lines)
		}
		b, _ := os.ReadFile(log)
		lines = 0
		for _, l := range strings.Split(string(b), "\n") {
			if l != "" && !strings.HasPrefix(l, "#") && !strings.HasPrefix(l, "\"") {
				lines++
			}
		}
	}
	cmd.Process.Signal(syscall.SIGKILL)
	<-ended
	cmd.Wait()
	if got := hlogIntervals(t, log); got < lines {
		t.Fatalf("latency.hlog holds %d interval histograms after SIGKILL, %d were written before it", got, lines)
	}
}
