package engine

import (
	"sync"
	"time"
)

// rampPool dials the first connection of the concurrency model's new slots on a bounded set of
// goroutines, instead of a goroutine for every slot: a ramp that wants 60,000 connections at once
// (bench/run hold) started 60,000 goroutines, each growing its stack to dial, and most of them,
// finding every blocking connect taken, dialled through Go's poller instead (a profile of a
// worker's ramp: goroutine creation and stack growth ~10% of its CPU, the poller's dials ~19%).
// On the bare path a loopback connect completes inside connect() (dial.DialBare), so a few
// goroutines dialling one after another keep the cores as busy as a goroutine per slot did, and
// every connect of the ramp stays a blocking one: socket, connect, nothing more, where a
// non-blocking connect in an epoll loop would add EINPROGRESS, two epoll_ctl and SO_ERROR. A slot
// whose first connection is held parks it, as runSlot does, and its goroutine is only started
// when the hold ends; one whose connection ended or failed carries on in a goroutine of its own.
//
// A connect that waits (a target dropping SYNs, a destination's backoff) would hold a pool
// goroutine for its whole wait, and the ramp behind it. A watchdog looks every rampSlow: when no
// connect of the pool has returned since its last look while slots are still queued, it turns the
// pool off, and every slot not yet dialled gets its own goroutine, as before the pool.
type rampPool struct {
	e   *engine
	max int // goroutines at most

	mu       sync.Mutex
	queue    []*slot
	head     int
	workers  int
	off      bool
	dialled  uint64      // first connections the pool has made (returned from connect)
	seen     uint64      // dialled at the watchdog's last look
	watchdog *time.Timer // armed while slots are queued
}

// rampSlow is how long the pool may go without a connect returning before it hands the ramp back
// to a goroutine per slot: a dropped SYN is sent again after 1 s (the kernel's TCP_TIMEOUT_INIT),
// so a pool none of whose connects returned for that long is waiting for retransmits, or for its
// destinations' backoff. A loopback connect takes microseconds, but on a loaded machine (2 cores,
// load 14) one waits for its thread to run, or for the listener's lock, up to a quarter of a
// second: those must not turn the pool off.
const rampSlow = time.Second

// initRamp starts the pool for the concurrency model on the bare path; without a connect rate cap
// (whose wait, like a slow connect, belongs to each slot).
func (e *engine) initRamp() {
	if e.cfg.Model != Concurrency || e.bareDialer == nil || e.limiter != nil {
		return
	}
	r := &rampPool{e: e, max: max(cap(e.bareSlots)/2, 1)}
	r.watchdog = time.AfterFunc(time.Hour, r.watch)
	r.watchdog.Stop()
	e.ramp = r
}

// watch is the watchdog (see rampPool).
func (r *rampPool) watch() {
	r.mu.Lock()
	if r.off || r.head == len(r.queue) {
		r.mu.Unlock()
		return
	}
	if r.dialled != r.seen {
		r.seen = r.dialled
		r.watchdog.Reset(rampSlow)
		r.mu.Unlock()
		return
	}
	r.off = true
	left := r.queue[r.head:]
	r.queue, r.head = nil, 0
	r.mu.Unlock()
	for _, s := range left {
		go r.e.runSlot(s)
	}
}

// startSlot runs new slot s: through the pool when there is one, else on a goroutine of its own.
// The caller has counted s in e.wg.
func (e *engine) startSlot(s *slot) {
	r := e.ramp
	if r == nil {
		go e.runSlot(s)
		return
	}
	r.mu.Lock()
	if r.off {
		r.mu.Unlock()
		go e.runSlot(s)
		return
	}
	if r.head == len(r.queue) {
		r.seen = r.dialled
		r.watchdog.Reset(rampSlow)
	}
	r.queue = append(r.queue, s)
	start := r.workers < r.max
	if start {
		r.workers++
	}
	r.mu.Unlock()
	if start {
		e.bg.Add(1)
		go e.rampWorker(r)
	}
}

// rampWorker dials queued slots until the queue is empty.
func (e *engine) rampWorker(r *rampPool) {
	defer e.bg.Done()
	for {
		r.mu.Lock()
		if r.head == len(r.queue) {
			r.queue, r.head = nil, 0 // the ramp's queue goes with it
			r.watchdog.Stop()
			r.workers--
			r.mu.Unlock()
			return
		}
		s := r.queue[r.head]
		r.queue[r.head] = nil
		r.head++
		off := r.off
		r.mu.Unlock()
		if off || !e.firstConnection(r, s) {
			go e.runSlot(s)
		}
	}
}

// firstConnection is runSlot's first turn for slot s, on a pool goroutine: it reports true when
// the connection was parked (the slot's count in e.wg went with it), false when the slot is to
// carry on in runSlot (not wanted now, stopping, or its connection already over).
func (e *engine) firstConnection(r *rampPool, s *slot) bool {
	if !s.wanted() {
		return false
	}
	select {
	case <-e.stopping:
		return false
	default:
	}
	id := e.next.Add(1)
	sh := e.rec.Shard(id)
	sh.Attempt()
	h := e.connection(id, sh, time.Time{}, 0, s)
	r.mu.Lock()
	r.dialled++
	r.mu.Unlock()
	if h == nil {
		return false
	}
	e.park(h, func() { e.runSlot(s) })
	return true
}
