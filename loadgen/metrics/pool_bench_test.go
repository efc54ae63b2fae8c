package metrics

import (
	"encoding/json"
	"testing"
	"time"
)

// BenchmarkIntervalCut is one interval of a storm in one process: connections record a connect
// and a lifetime into the recorder's shards, the collector cuts the interval, and the consumer adds
// it into the run's totals and lets it go.
func BenchmarkIntervalCut(b *testing.B) {
	start := time.Unix(0, 0)
	r := NewRecorder(start, 8)
	total := NewSnapshot()
	b.ReportAllocs()
	for i := range b.N {
		for id := range uint64(64) {
			s := r.Shard(id)
			s.Connected(Timing{Connect: time.Duration(50+id) * time.Microsecond})
			s.Ended(start, time.Millisecond, nil)
		}
		snap := r.Cut(start.Add(time.Duration(i+1)*time.Second), 0)
		if err := total.Add(snap); err != nil {
			b.Fatal(err)
		}
		snap.Release()
	}
}

// BenchmarkIntervalWire is one interval of a worker process as the coordinator sees it: the worker
// cuts and encodes it, the coordinator decodes it and combines it with the other workers'.
func BenchmarkIntervalWire(b *testing.B) {
	start := time.Unix(0, 0)
	r := NewRecorder(start, 8)
	b.ReportAllocs()
	for i := range b.N {
		for id := range uint64(64) {
			s := r.Shard(id)
			s.Connected(Timing{Connect: time.Duration(50+id) * time.Microsecond})
		}
		snap := r.Cut(start.Add(time.Duration(i+1)*time.Second), 0)
		line, err := json.Marshal(snap)
		if err != nil {
			b.Fatal(err)
		}
		snap.Release()
		var got Snapshot
		if err := json.Unmarshal(line, &got); err != nil {
			b.Fatal(err)
		}
		merged := NewSnapshot()
		if err := merged.Combine(&got); err != nil {
			b.Fatal(err)
		}
		got.Release()
		merged.Release()
	}
}
