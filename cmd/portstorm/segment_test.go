//go:build linux

package main

import (
	"bytes"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/portstorm/portstorm/loadgen/schedule"
)

func TestSegmentFlags(t *testing.T) {
	tests := []struct {
		name    string
		f       segmentFlags
		env     []string
		want    schedule.Segment
		wantErr bool
	}{
		{"i/N", segmentFlags{segment: "2/4"}, nil, schedule.Segment{Index: 2, Count: 4}, false},
		{"i with count", segmentFlags{segment: "1", count: 3}, nil, schedule.Segment{Index: 1, Count: 3}, false},
		{"index from the Job", segmentFlags{count: 3}, []string{"JOB_COMPLETION_INDEX=2"}, schedule.Segment{Index: 2, Count: 3}, false},
		{"count without an index", segmentFlags{count: 3}, nil, schedule.Segment{}, true},
		{"N twice", segmentFlags{segment: "1/3", count: 3}, nil, schedule.Segment{}, true},
		{"index past N", segmentFlags{segment: "4/4"}, nil, schedule.Segment{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.f.parse(tt.env)
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Fatalf("parse = %v, %v; want %v (error %v)", got, err, tt.want, tt.wantErr)
			}
		})
	}
}

// TestMergeRefusesNonShards: merge exits 2 on folders that are not shard results, writing nothing.
func TestMergeRefusesNonShards(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "merged")
	var stdout, stderr bytes.Buffer
	if code := Main([]string{"merge", dir, "--out", out}, nil, &stdout, &stderr, nil); code != exitInvalid {
		t.Fatalf("exit %d, want %d\n%s", code, exitInvalid, stderr.String())
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Fatalf("merged folder written: %v", err)
	}
}

// TestMergeWaitEndsOnASignal: merge --wait, waiting for segments still running, ends at once on a
// signal (130) without writing the merged folder.
func TestMergeWaitEndsOnASignal(t *testing.T) {
	dir := t.TempDir() // no shard.json: the segment is still running
	out := filepath.Join(t.TempDir(), "merged")
	sig := make(chan os.Signal, 1)
	sig <- syscall.SIGTERM
	code, _, stderr := runMain(t, sig, "merge", dir, "--out", out, "--wait", "1h")
	if code != exitInterrupted {
		t.Fatalf("exit %d, want %d\n%s", code, exitInterrupted, stderr)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Fatalf("merged folder written: %v", err)
	}
}
