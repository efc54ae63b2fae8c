package shard

import (
	"fmt"
	"sync"

	"github.com/portstorm/portstorm/loadgen/metrics"
)

// Merger combines the interval snapshots of n concurrent shards into one stream. Shards share their
// start instant and interval, so interval k of every shard covers the same span: the merged interval
// k is released, in order, once every shard has delivered it or has finished. Counters and
// histograms add exactly (a histogram value dropped in a merge is an error); Active adds up; the
// merged PeakActive is the sum of the shards' interval peaks, an upper bound of the true peak.
type Merger struct {
	mu       sync.Mutex
	emit     func(*metrics.Snapshot)
	next     int // next seq to release
	pending  map[int]*entry
	lastSeen []int  // highest seq delivered per shard, -1 before any
	finished []bool // shard will deliver nothing more
}

type entry struct {
	snap *metrics.Snapshot
	from []bool
}

// NewMerger returns a merger of n shards that calls emit with every merged interval, in order,
// from the goroutine that called Add or Finish.
func NewMerger(n int, emit func(*metrics.Snapshot)) *Merger {
	m := &Merger{emit: emit, pending: map[int]*entry{}, lastSeen: make([]int, n), finished: make([]bool, n)}
	for i := range m.lastSeen {
		m.lastSeen[i] = -1
	}
	return m
}

// Add takes shard i's snapshot. Snapshots of one shard must arrive in seq order.
func (m *Merger) Add(i int, s *metrics.Snapshot) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if i < 0 || i >= len(m.finished) {
		return fmt.Errorf("merge: shard %d of %d", i, len(m.finished))
	}
	if m.finished[i] {
		return fmt.Errorf("merge: shard %d sent a snapshot after it finished", i)
	}
	if s.Seq <= m.lastSeen[i] {
		return fmt.Errorf("merge: shard %d sent seq %d after %d", i, s.Seq, m.lastSeen[i])
	}
	m.lastSeen[i] = s.Seq
	if s.Seq < m.next {
		return fmt.Errorf("merge: shard %d sent seq %d, already released", i, s.Seq)
	}
	e := m.pending[s.Seq]
	if e == nil {
		e = &entry{snap: metrics.NewSnapshot(), from: make([]bool, len(m.finished))}
		m.pending[s.Seq] = e
	}
	if err := e.snap.Combine(s); err != nil {
		return err
	}
	e.snap.Seq, e.snap.Stage = s.Seq, max(e.snap.Stage, s.Stage)
	e.from[i] = true
	m.release()
	return nil
}

// Finish marks shard i as done (ended, or died): the merge no longer waits for it.
func (m *Merger) Finish(i int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if i >= 0 && i < len(m.finished) {
		m.finished[i] = true
	}
	m.release()
}

// release emits every interval that all live shards have delivered.
func (m *Merger) release() {
	for {
		ready := len(m.pending) > 0
		for i := range m.finished {
			if !m.finished[i] && m.lastSeen[i] < m.next {
				ready = false
				break
			}
		}
		if !ready {
			return
		}
		e := m.pending[m.next]
		delete(m.pending, m.next)
		m.next++
		if e != nil {
			m.emit(e.snap)
		}
	}
}
