package metrics

import (
	"encoding/json"
	"runtime"
	"runtime/debug"
	"testing"
	"time"
)

// TestPooledIntervalsStayApart: the histograms a released snapshot gives back are reused by the
// next intervals, of the recorder and of decoded snapshots, and carry nothing of the interval
// they held before (values, tag, times), whichever shard recorded what.
func TestPooledIntervalsStayApart(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	tests := []struct {
		name   string
		shards int
		// per interval: connect times recorded, each on its own connection id
		intervals [][]time.Duration
	}{
		{"one shard", 1, [][]time.Duration{{10 * time.Microsecond, 20 * time.Microsecond}, {3 * time.Millisecond}, {}, {5 * time.Microsecond}}},
		{"values spread over shards", 4, [][]time.Duration{{1, 2, 3, 4, 5, 6, 7}, {time.Second, 2 * time.Second}, {9 * time.Microsecond}}},
		{"an empty interval between", 3, [][]time.Duration{{}, {time.Millisecond}, {}, {}, {2 * time.Millisecond, 3 * time.Millisecond}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := NewRecorder(t0, tt.shards)
			for i, conns := range tt.intervals {
				want := NewHistogram()
				for id, d := range conns {
					rec.Shard(uint64(id)).Connected(Timing{Connect: d})
					_ = want.RecordValue(max(d.Microseconds(), HistLowest))
				}
				snap := rec.Cut(at(i+1), 0)
				// Through the wire and back, as a worker's interval reaches the coordinator.
				b, err := json.Marshal(snap)
				if err != nil {
					t.Fatal(err)
				}
				var got Snapshot
				if err := json.Unmarshal(b, &got); err != nil {
					t.Fatal(err)
				}
				for name, s := range map[string]*Snapshot{"cut": snap, "decoded": &got} {
					if !s.Hist[Connect].Equals(want) {
						t.Errorf("interval %d, %s: connect holds %d values (max %d), want %d (max %d)", i, name,
							s.Hist[Connect].TotalCount(), s.Hist[Connect].Max(), want.TotalCount(), want.Max())
					}
					for l, h := range s.Hist {
						if Latency(l) != Connect && h.TotalCount() != 0 {
							t.Errorf("interval %d, %s: %s holds %d values, want none", i, name, Latency(l), h.TotalCount())
						}
						if h.Tag() != "" || h.StartTimeMs() != 0 || h.EndTimeMs() != 0 {
							t.Errorf("interval %d, %s: %s kept tag %q [%d, %d] from an earlier interval", i, name, Latency(l), h.Tag(), h.StartTimeMs(), h.EndTimeMs())
						}
					}
				}
				// What an hlog writer does to a snapshot before letting it go.
				for l, h := range snap.Hist {
					h.SetTag(Latency(l).String())
					h.SetStartTimeMs(int64(i))
					h.SetEndTimeMs(int64(i + 1))
				}
				snap.Release()
				got.Release()
				for l, h := range snap.Hist {
					if h != nil {
						t.Errorf("a released snapshot still holds its %s histogram", Latency(l))
					}
				}
			}
		})
	}
}

// TestIntervalsAllocateNoHistograms: with every interval released, cutting, encoding, decoding
// and combining intervals allocate no histograms of their own once the pool holds enough (each is
// ~188 KB; they cost 24 MB per interval of every worker before the pool).
func TestIntervalsAllocateNoHistograms(t *testing.T) {
	if raceDetector {
		t.Skip("sync.Pool drops items on purpose under -race")
	}
	t0 := time.Unix(0, 0)
	rec := NewRecorder(t0, 4)
	total := NewSnapshot()
	cycle := func(i int) {
		for id := range uint64(16) {
			s := rec.Shard(id)
			s.Connected(Timing{Connect: time.Duration(10+id) * time.Microsecond})
			s.Ended(t0, time.Millisecond, nil)
		}
		snap := rec.Cut(t0.Add(time.Duration(i+1)*time.Second), 0)
		if err := total.Add(snap); err != nil {
			t.Fatal(err)
		}
		snap.Release()
	}
	const rounds = 50
	for i := range 5 { // fill the pool
		cycle(i)
	}
	// A collection empties the pool (sync.Pool keeps its items through one only): none runs while
	// the rounds are measured. Without the pool they allocate ~100 MB, which fits.
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for i := range rounds {
		cycle(5 + i)
	}
	runtime.ReadMemStats(&after)
	// 23,552 buckets of 8 bytes. Each round used to allocate NumLatencies of them; allow one for
	// every ten rounds (the pool's own bookkeeping takes a few hundred KB).
	const histBytes = 23552 * 8
	if got, limit := after.TotalAlloc-before.TotalAlloc, uint64(rounds/10*histBytes); got > limit {
		t.Errorf("%d intervals allocated %d KB, more than %d histograms' %d KB: the pool is not in use",
			rounds, got>>10, rounds/10, limit>>10)
	}
	if got := total.Hist[Connect].TotalCount(); got != int64((rounds+5)*16) {
		t.Errorf("the totals hold %d connects, want %d", got, (rounds+5)*16)
	}
}
