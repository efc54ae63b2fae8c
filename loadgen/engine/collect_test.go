package engine

import (
	"testing"
	"time"

	"github.com/portstorm/portstorm/loadgen/metrics"
)

// TestSnapQueue: snapshots reach the consumer in order and whole; past maxQueued waiting ones,
// those of one stage are added together, so a stuck consumer costs bounded memory and loses no
// count; a snapshot of another stage is never added into one of the stage before.
func TestSnapQueue(t *testing.T) {
	tests := []struct {
		name   string
		stages []int // the stage of each snapshot pushed while the consumer is stuck
	}{
		{"a few", []int{0, 0, 1}},
		{"many of one stage", repeat(0, 500)},
		{"many over three stages", append(append(repeat(0, 200), repeat(1, 200)...), repeat(2, 10)...)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			entered, release := make(chan struct{}), make(chan struct{})
			var got []*metrics.Snapshot
			q := newSnapQueue(func(s *metrics.Snapshot) {
				if len(got) == 0 {
					close(entered)
					<-release
				}
				got = append(got, s)
			})
			start := time.Unix(0, 0)
			rec := metrics.NewRecorder(start, 1)
			for i, st := range tt.stages {
				rec.Shard(0).Attempt()
				q.push(rec.Cut(start.Add(time.Duration(i+1)*time.Microsecond), st))
				if i == 0 {
					<-entered // the consumer holds the first one: the rest wait
				}
			}
			close(release)
			q.close()
			perStage := map[int]uint64{}
			for i, s := range got {
				perStage[s.Stage] += s.Attempted
				if i > 0 && (s.Stage < got[i-1].Stage || s.StartUS != got[i-1].EndUS) {
					t.Errorf("snapshot %d: stage %d [%d,%d) after stage %d ending at %d", i, s.Stage, s.StartUS, s.EndUS, got[i-1].Stage, got[i-1].EndUS)
				}
			}
			want := map[int]uint64{}
			for _, st := range tt.stages {
				want[st]++
			}
			for st, n := range want {
				if perStage[st] != n {
					t.Errorf("stage %d: %d attempts delivered, %d pushed", st, perStage[st], n)
				}
			}
			if len(got) > 1+maxQueued+len(want) {
				t.Errorf("%d snapshots delivered: the queue held more than %d", len(got), maxQueued)
			}
		})
	}
}

func repeat(v, n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = v
	}
	return out
}
