package coordinator

import (
	"os"
	"sync"
	"time"

	"github.com/portstorm/portstorm/loadgen/engine"
	"github.com/portstorm/portstorm/loadgen/memory"
)

// memRing is how many interval samples memWatch keeps: a snapshot that reaches the collector
// later than this many intervals after it was cut finds none of its time.
const memRing = 120

// memWatch samples the memory of the kernel and of the run's processes (loadgen/memory): once
// before the first connection (base, when the generator's processes are set up), then every
// interval on a clock of its own. A snapshot that holds as many connections as the most so far
// keeps the sample taken nearest its end, so that the plateau's last interval is the one kept.
// Sampling apart from the snapshots matters at scale: 53 workers' snapshots reached the
// coordinator of a million connections up to 17 s late, and a sample taken on arrival measured a
// ramp-down well under way. summary.json's `memory` is the difference (docs/results.md).
type memWatch struct {
	reader   *memory.Reader
	interval time.Duration
	// tgt are the built-in target's own processes (none when it runs in the generator's).
	tgt []int

	mu      sync.Mutex // guards the fields below
	gen     []int      // the generator's processes: this one and its workers
	plateau memory.Plateau
	based   bool
	// quiet: no sample after the base one, for a run that never holds memory.MinConnections (the
	// report would have no plateau; memQuiet). A sample reads /proc/slabinfo, whose walk of the
	// kernel's caches took ~2.5 ms an interval on a core the target may need (docs/measurements.md
	// "The dispatcher on the loop, and the interval's samples").
	quiet bool
	ring  []memory.Sample // the last memRing interval samples, oldest first
	stop  chan struct{}
	done  chan struct{}
}

// newMemWatch watches the run's memory every interval, or only before the first connection when
// quiet; tgt is the built-in target (nil: none).
func newMemWatch(tgt *builtin, interval time.Duration, quiet bool) *memWatch {
	m := &memWatch{reader: memory.NewReader(), interval: interval, quiet: quiet}
	if tgt != nil && tgt.procs != nil {
		for _, p := range tgt.procs.procs {
			m.tgt = append(m.tgt, p.cmd.Process.Pid)
		}
	}
	return m
}

// memQuiet reports whether a run's memory needs no interval samples: a concurrency run whose peak
// (spec.Demand's: its ramp's highest target) is under memory.MinConnections has no plateau to
// report. (Under the arrival model the peak is an estimate, short of the connections a slow target
// keeps open: such a run is sampled.)
func memQuiet(model engine.Model, peak int64) bool {
	return model == engine.Concurrency && peak < memory.MinConnections
}

// base takes the sample before the first connection, then starts the interval samples; workers
// are the worker processes' ids.
func (m *memWatch) base(workers []int) {
	if m == nil {
		return
	}
	gen := append([]int{os.Getpid()}, workers...)
	s := m.reader.Read(0, gen, m.tgt)
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.based {
		return
	}
	m.gen, m.plateau.Base, m.based = gen, s, true
	if m.quiet {
		return
	}
	m.stop, m.done = make(chan struct{}), make(chan struct{})
	go m.sample(m.stop, m.done)
}

// sample reads a sample every interval into the ring until stop is closed.
func (m *memWatch) sample(stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	tick := time.NewTicker(m.interval)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		s := m.reader.Read(0, m.gen, m.tgt) // gen is set before this goroutine starts, and kept
		m.mu.Lock()
		if len(m.ring) == memRing {
			m.ring = append(m.ring[:0], m.ring[1:]...)
		}
		m.ring = append(m.ring, s)
		m.mu.Unlock()
	}
}

// observe is a snapshot ending endUS after the run's start with active connections: when they
// are at least the most seen so far, the sample taken nearest its end (within half an interval)
// is the plateau's.
func (m *memWatch) observe(active, endUS int64) {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.based || active < memory.MinConnections || !m.plateau.Want(active) {
		return
	}
	end := m.plateau.Base.At.Add(time.Duration(endUS) * time.Microsecond)
	best, bestD := -1, m.interval/2
	for i, s := range m.ring {
		if d := s.At.Sub(end).Abs(); d <= bestD {
			best, bestD = i, d
		}
	}
	if best < 0 {
		return
	}
	s := m.ring[best]
	s.Active = active
	m.plateau.Offer(s)
}

// close stops the interval samples (safe to call more than once, and on nil).
func (m *memWatch) close() {
	if m == nil {
		return
	}
	m.mu.Lock()
	stop, done := m.stop, m.done
	m.stop = nil
	m.mu.Unlock()
	if stop != nil {
		close(stop)
		<-done
	}
}

// report stops the samples and returns summary.json's `memory`, nil when none was measured.
func (m *memWatch) report(start time.Time) *memory.Report {
	if m == nil {
		return nil
	}
	m.close()
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.plateau.Report(start)
}
