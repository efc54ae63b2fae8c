package coordinator

import (
	"os"
	"sync"
	"time"

	"github.com/portstorm/portstorm/loadgen/memory"
)

// memWatch samples the memory of the kernel and of the run's processes (loadgen/memory): once
// before the first connection (base, when the generator's processes are set up), then at every
// interval that holds as many connections as the most so far, so that the plateau's last sample is
// kept. summary.json's `memory` is the difference (docs/results.md).
type memWatch struct {
	reader *memory.Reader
	// tgt are the built-in target's own processes (none when it runs in the generator's).
	tgt []int

	mu      sync.Mutex // guards gen, plateau, based
	gen     []int      // the generator's processes: this one and its workers
	plateau memory.Plateau
	based   bool
}

// newMemWatch watches the run's memory; tgt is the built-in target (nil: none, or not run here).
func newMemWatch(tgt *builtin) *memWatch {
	m := &memWatch{reader: memory.NewReader()}
	if tgt != nil && tgt.procs != nil {
		for _, p := range tgt.procs.procs {
			m.tgt = append(m.tgt, p.cmd.Process.Pid)
		}
	}
	return m
}

// base takes the sample before the first connection; workers are the worker processes' ids.
func (m *memWatch) base(workers []int) {
	if m == nil {
		return
	}
	gen := append([]int{os.Getpid()}, workers...)
	s := m.reader.Read(0, gen, m.tgt)
	m.mu.Lock()
	defer m.mu.Unlock()
	m.gen, m.plateau.Base, m.based = gen, s, true
}

// observe samples when active connections are at least the most seen so far.
func (m *memWatch) observe(active int64) {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.based || active < memory.MinConnections || !m.plateau.Want(active) {
		return
	}
	m.plateau.Offer(m.reader.Read(active, m.gen, m.tgt))
}

// report is summary.json's `memory`, nil when none was measured.
func (m *memWatch) report(start time.Time) *memory.Report {
	if m == nil {
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.plateau.Report(start)
}
