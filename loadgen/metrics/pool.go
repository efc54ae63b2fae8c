package metrics

import (
	"sync"

	hdr "github.com/HdrHistogram/hdrhistogram-go"
)

// Every interval snapshot carries NumLatencies histograms of ~188 KB each (23,552 buckets of
// int64 at portstorm's bounds). Allocated afresh for every interval, they made the collector, and
// the coordinator decoding its workers' snapshots, allocate megabytes per interval, which the
// garbage collector then had to walk and free while connections were being opened. A pool of
// empty histograms keeps them in use instead: a snapshot's owner gives them back with Release.
var histPool = sync.Pool{New: func() any { return NewHistogram() }}

// pooledHistogram returns an empty histogram with portstorm's bounds from the pool.
func pooledHistogram() *hdr.Histogram { return histPool.Get().(*hdr.Histogram) }

// recycle empties h and puts it in the pool. Histograms of other bounds are left to the collector.
func recycle(h *hdr.Histogram) {
	if h == nil || !hasBounds(h) {
		return
	}
	if h.TotalCount() != 0 {
		h.Reset()
	} else {
		// Reset walks all 23,552 buckets; an empty histogram needs only its metadata cleared.
		h.SetTag("")
		h.SetStartTimeMs(0)
		h.SetEndTimeMs(0)
	}
	histPool.Put(h)
}

// Release gives s's histograms back to the pool its interval snapshots are taken from, and leaves
// s empty of histograms (they read as empty, as the zero Snapshot's). Only the snapshot's last
// owner may call it, once nothing else reads its histograms: the engine's OnSnapshot consumer
// after it has added the interval into its totals and written it out. A snapshot never released
// costs only an allocation, as before the pool.
func (s *Snapshot) Release() {
	for l, h := range s.Hist {
		recycle(h)
		s.Hist[l] = nil
	}
}
