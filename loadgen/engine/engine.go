// Package engine runs one shard of a plan: it paces connections by the load model, runs each
// connection's lifecycle with a deadline on every step, and stops gracefully.
package engine

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/ratelimit"

	"github.com/portstorm/portstorm/loadgen/dial"
	"github.com/portstorm/portstorm/loadgen/metrics"
	"github.com/portstorm/portstorm/loadgen/ports"
	"github.com/portstorm/portstorm/loadgen/proto"
	"github.com/portstorm/portstorm/loadgen/schedule"
)

// Model is the load model (schedule.Model, where it lives with the ramp it reads).
type Model = schedule.Model

const (
	// Concurrency keeps Ramp.Concurrency(t) connections alive, replacing each one that ends.
	Concurrency = schedule.Concurrency
	// Arrival starts connections at the intended times of Ramp.Arrivals.
	Arrival = schedule.Arrival
)

// Send describes the requests of one connection.
type Send struct {
	// Count is the requests of each connection; with Unlimited, a rated connection sends until its
	// Hold (then the time it sends, not a wait after), its slot or the run ends.
	Count     int
	Unlimited bool
	Interval  time.Duration
	// Rate paces each connection's requests, per second, from its start (open loop); TotalRate
	// paces the requests of all the shard's connections together (requests per second over time;
	// a segment sends its exact share). Neither: closed loop, Interval after each answer.
	Rate      float64
	TotalRate *schedule.Ramp
	// Pipeline is the requests that may be outstanding on one connection (0 and 1: one at a time).
	Pipeline int
	// Exchange is one request and the check of its answer (raw, echo, HTTP, Redis). When nil,
	// requests are Bytes of random data, read back and compared when Echo is set.
	Exchange *proto.Exchange
	Bytes    int
	Echo     bool
}

// Config is one shard's work. The zero value of optional fields means: no requests, no hold,
// FIN close, no connect-rate cap, 1 s interval.
type Config struct {
	Model        Model
	Ramp         schedule.Ramp
	Destinations []dial.Destination
	Dialer       dial.Dialer

	IOTimeout time.Duration // every read and write; default 5 s
	Send      *Send
	Hold      time.Duration
	Close     dial.CloseMode

	// MaxInFlight caps open connections under the arrival model; Drop says what happens to an
	// arrival with no free slot (dropped and counted, or queued and started late).
	MaxInFlight int
	Drop        bool
	// MaxConnectRate caps new connections per second under the concurrency model; 0 is unlimited,
	// otherwise from MinConnectRate to MaxConnectRate. It caps the whole plan: a segment of a split
	// plan connects at most at MaxConnectRate / Segment.Count.
	MaxConnectRate float64

	// GracefulStop is how long in-flight connections may finish after the schedule ends or ctx is
	// cancelled, before they are cut (counted as canceled). Default 5 s.
	GracefulStop time.Duration
	// Abort, when closed, cuts in-flight connections at once (a second signal).
	Abort <-chan struct{}

	// Interval is the snapshot interval (default 1 s); snapshots are also cut at stage boundaries.
	Interval time.Duration
	// OnSnapshot receives every interval snapshot, in order, from one goroutine. The snapshot is
	// its own: it may keep it, or, once done with it, Release its histograms to the pool the next
	// intervals' come from.
	OnSnapshot func(*metrics.Snapshot)
	// Segment is the part of the plan this shard runs (the zero value: all of it). Splits are
	// exact: the segments' concurrency and arrivals add up to the plan's (schedule.Segment).
	Segment schedule.Segment
	// Start is when the schedule's time zero is; zero means now. A later Start waits for it.
	Start time.Time
	// TLS, when set, holds the TLS client configuration of each destination (same order): every
	// connection runs a handshake after connect, timed as the tls_handshake latency.
	TLS []*tls.Config
	// Ports, when set, is told every connection's local port (from conn.LocalAddr(), no system
	// call; for a bare connection the dialer's own when it bound it, else one getsockname), its
	// close, and every connect failure: the port observatory.
	Ports *ports.Observatory
	// OnConnectFailure, when set, backs off from destinations that refuse or cannot be reached,
	// caps their failures per second and gives up on a target that never accepted a connection
	// (Result.Unreachable); nil makes every scheduled connect, however many fail.
	OnConnectFailure *FailPolicy
}

// The connect rates a Config accepts: one connection per 1000 s (the limiter's finest step), to
// ten million per second (more than one process opens).
const (
	MinConnectRate = 0.001
	MaxConnectRate = 10_000_000
)

// stopClock is the rate limiter's clock: its sleep, the limiter's wait for a connection's turn,
// ends when the run stops (the plan's end, a signal, an abort), however far the turn is.
type stopClock struct{ stop <-chan struct{} }

func (stopClock) Now() time.Time { return time.Now() }

func (c stopClock) Sleep(d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-c.stop:
	}
}

// Result says how the run ended.
type Result struct {
	Start, End time.Time
	// Interrupted is true when ctx was cancelled before the schedule ended.
	Interrupted bool
	// Aborted is true when in-flight connections had to be cut (Abort, or the graceful stop expired).
	Aborted bool
	// Total is every snapshot added up.
	Total *metrics.Snapshot
	// Unreachable, when set, is why the run gave up before its schedule ended (OnConnectFailure).
	Unreachable *Unreachable
}

func (c *Config) validate() error {
	switch {
	case len(c.Destinations) == 0:
		return errors.New("engine: no destinations")
	case c.Dialer == nil:
		return errors.New("engine: no dialer")
	case len(c.Ramp.Stages) == 0:
		return errors.New("engine: no stages")
	case c.Model == Arrival && c.MaxInFlight < 1:
		return errors.New("engine: arrival model needs MaxInFlight >= 1")
	case c.Send != nil && (c.Send.Count < 1 && !c.Send.Unlimited || c.Send.Exchange == nil && c.Send.Bytes < 1):
		return errors.New("engine: send needs count >= 1 (or unlimited), and an exchange or bytes >= 1")
	case c.Send != nil && c.Send.Unlimited && !c.Send.rated():
		return errors.New("engine: an unlimited send needs a rate")
	case c.Send != nil && (c.Send.Rate < 0 || c.Send.Pipeline < 0 || c.Send.Rate > 0 && c.Send.TotalRate != nil):
		return errors.New("engine: send wants a rate >= 0, a pipeline >= 0, and not both a rate and a total rate")
	case len(c.TLS) > 0 && len(c.TLS) != len(c.Destinations):
		return errors.New("engine: TLS needs one configuration per destination")
	case c.MaxConnectRate != 0 && !(c.MaxConnectRate >= MinConnectRate && c.MaxConnectRate <= MaxConnectRate):
		return fmt.Errorf("engine: connect rate %v per second, want %v to %v (or 0: unlimited)", c.MaxConnectRate, MinConnectRate, MaxConnectRate)
	case c.OnConnectFailure != nil:
		return c.OnConnectFailure.validate()
	}
	return nil
}

type engine struct {
	cfg  Config
	rec  *metrics.Recorder
	next atomic.Uint64

	stopping chan struct{} // closed: start nothing new, end holds
	stopAt   atomic.Int64  // when stopping closed, in ns since the epoch (rate.go)

	parkMu             sync.Mutex
	parkHead, parkTail *held         // connections held idle, in the order their holds end
	parkWake           chan struct{} // tells the reaper the list has a new head
	parked             atomic.Int64  // connections in the queue of holds
	closeMu            sync.Mutex
	closing            []*held        // WebSocket connections released, waiting for a closer (hold.go)
	closers            int            // closers running
	epoch              time.Time      // the hold ends' time zero
	bg                 sync.WaitGroup // housekeeping goroutines (see plateauStarts)
	hardCtx            context.Context
	hardStop           context.CancelFunc

	// bareDialer, when set, dials connections that only connect, hold and close (no requests, no
	// TLS, FIN or RST close) outside Go's poller; bareSlots bounds how many such blocking connects
	// run at once, each taking an OS thread while it waits (a target dropping SYNs would otherwise
	// have every in-flight connect pin one).
	bareDialer dial.BareDialer
	bareSlots  chan struct{}
	// ramp dials new slots' first connections on a few goroutines (see rampPool); nil: a
	// goroutine per slot.
	ramp *rampPool
	// releaser is the dialer when it tracks the local ports it hands out (explicit strategy): told
	// each closed connection's port. Asserted once here, not per connection.
	releaser dial.Releaser
	// guard applies OnConnectFailure (nil without it).
	guard *failGuard

	exchange *proto.Exchange
	readers  sync.Pool
	// websocket: every connection is upgraded after connect (and TLS), and closes with the
	// closing handshake (websocket.go).
	websocket bool
	dispatch  dispatcher // total rate: the connections in the round
	pump      pump       // total rate: the times handed out (dispatchRequests)
	loops     *rloops    // rated conversations on plain sockets (rloop_linux.go); nil: none
	limiter   ratelimit.Limiter
	wg        sync.WaitGroup
}

// Run runs the shard until its schedule ends or ctx is cancelled, then drains, and returns the
// total. Snapshots reach cfg.OnSnapshot as they are cut, the last one after every connection ended.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if cfg.IOTimeout <= 0 {
		cfg.IOTimeout = 5 * time.Second
	}
	if cfg.GracefulStop <= 0 {
		cfg.GracefulStop = 5 * time.Second
	}
	if cfg.Interval <= 0 {
		cfg.Interval = time.Second
	}
	if !cfg.Start.IsZero() {
		t := time.NewTimer(time.Until(cfg.Start))
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("engine: cancelled before the start at %s", cfg.Start.Format(time.RFC3339))
		case <-cfg.Abort:
			t.Stop()
			return nil, fmt.Errorf("engine: aborted before the start at %s", cfg.Start.Format(time.RFC3339))
		}
	}
	start := time.Now()
	if !cfg.Start.IsZero() {
		// Shards that share a start share their schedule and interval boundaries, even if one got
		// here late: its overdue arrivals start at once and their lateness shows in schedule_lag.
		start = cfg.Start
	}
	e := &engine{
		cfg:      cfg,
		rec:      metrics.NewRecorder(start, 4*runtime.GOMAXPROCS(0)),
		stopping: make(chan struct{}),
		parkWake: make(chan struct{}, 1),
		epoch:    time.Now(),
	}
	e.releaser, _ = cfg.Dialer.(dial.Releaser)
	if cfg.OnConnectFailure != nil {
		e.guard = newFailGuard(*cfg.OnConnectFailure, len(cfg.Destinations))
	}
	e.hardCtx, e.hardStop = context.WithCancel(context.Background())
	defer e.hardStop()
	if cfg.Ports != nil {
		cfg.Ports.Begin(start)
	}
	if err := e.initSend(); err != nil {
		return nil, err
	}
	if err := e.initLoops(); err != nil {
		return nil, err
	}
	defer e.stopLoops()
	if e.initBare() {
		// A blocking connect keeps its P while it is in the kernel, and the kernel sometimes sleeps
		// there (the socket's or the listener's lock); the core then idles until sysmon takes the P
		// back, 20 µs or more later. One P more than before keeps the cores busy: storm, RST close,
		// 113k -> 128k conn/s at 171% -> 190% CPU on 2 cores (bench/run storm). Restored at the end.
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(runtime.GOMAXPROCS(0) + 1))
	}
	if cfg.Model == Concurrency && cfg.MaxConnectRate > 0 {
		// ratelimit wants an integer rate per period: express fractional rates per 1000 s (validate
		// bounds the rate, so this fits). Its Take cannot be cancelled, but its wait is the clock's
		// Sleep: stopClock's ends on the stop. The cap is the whole plan's: a segment takes its share.
		r := int(cfg.MaxConnectRate*1000/float64(max(cfg.Segment.Count, 1)) + 0.5)
		e.limiter = ratelimit.New(max(r, 1), ratelimit.Per(1000*time.Second), ratelimit.WithSlack(0),
			ratelimit.WithClock(stopClock{e.stopping}))
	}
	e.initRamp()

	res := &Result{Start: start, Total: metrics.NewSnapshot()}
	total := res.Total
	var totalErr error
	emit := func(s *metrics.Snapshot) {
		s.Segment = cfg.Segment.String()
		if err := total.Add(s); err != nil && totalErr == nil {
			totalErr = err
		}
		if cfg.OnSnapshot != nil {
			cfg.OnSnapshot(s)
		}
	}

	collectorDone := make(chan struct{})
	finalCut := make(chan struct{})
	go func() {
		defer close(collectorDone)
		e.collect(start, emit, finalCut)
	}()

	reaperDone := make(chan struct{})
	go func() {
		defer close(reaperDone)
		e.reap()
	}()

	dispatchDone := make(chan struct{})
	go func() {
		defer close(dispatchDone)
		if cfg.Send != nil && cfg.Send.TotalRate != nil {
			e.dispatchRequests(start)
		}
	}()

	scheduleDone := make(chan struct{})
	go func() {
		defer close(scheduleDone)
		if cfg.Model == Arrival {
			e.arrivals(start)
		} else {
			e.concurrency(start)
		}
	}()

	select {
	case <-scheduleDone:
	case <-ctx.Done():
		res.Interrupted = true
	case <-cfg.Abort:
		res.Interrupted = true
	case <-e.guard.stopped():
	}
	e.stopAt.Store(int64(time.Since(e.epoch)))
	close(e.stopping)
	e.unparkAll()
	<-scheduleDone
	<-dispatchDone
	<-reaperDone

	drained := make(chan struct{})
	go func() { e.wg.Wait(); close(drained) }()
	grace := time.NewTimer(cfg.GracefulStop)
	select {
	case <-drained:
	case <-grace.C:
		res.Aborted = true
	case <-cfg.Abort:
		res.Aborted = true
	}
	grace.Stop()
	e.hardStop()
	<-drained

	close(finalCut)
	<-collectorDone
	e.bg.Wait()
	res.End = time.Now()
	res.Unreachable = e.guard.gaveUp()
	return res, totalErr
}

// initBare picks the bare path for connections that only connect, hold and close, and reports
// whether it did.
func (e *engine) initBare() bool {
	bd, ok := e.cfg.Dialer.(dial.BareDialer)
	if !ok || e.cfg.Send != nil || e.cfg.TLS != nil || (e.cfg.Close != dial.CloseFIN && e.cfg.Close != dial.CloseRST) {
		return false
	}
	e.bareDialer = bd
	// 64 per P: a ramp that wants thousands at once (hold 60,000) finds a slot for nearly every
	// connect, which on loopback returns in microseconds; at 8 per P most of them fell back to the
	// poller and 60,000 took 1.18-1.38 s to hold instead of 0.87-1.07 s (bench/run hold). Against a
	// target that drops SYNs, at most this many threads wait out connect_timeout.
	e.bareSlots = make(chan struct{}, 64*runtime.GOMAXPROCS(0))
	return true
}

// takeBareSlot reserves one of the blocking connects, without waiting: when all are taken (connects
// are slow: the target is dropping SYNs), the connection goes through the poller instead.
func (e *engine) takeBareSlot() bool {
	select {
	case e.bareSlots <- struct{}{}:
		return true
	default:
		return false
	}
}

// plateauStarts reports whether the stage beginning at boundary b keeps the concurrency of held
// connections flat: the moment after a ramp when holding begins.
func (e *engine) plateauStarts(b time.Duration, bounds []time.Duration) bool {
	if e.cfg.Model != Concurrency || e.cfg.Hold <= 0 {
		return false
	}
	stages := e.cfg.Ramp.Stages
	for i, end := range bounds {
		if end == b && i+1 < len(stages) {
			return stages[i+1].Target == stages[i].Target && stages[i].Target > 0
		}
	}
	return false
}

// freeOSStep, set by tests only, is told each time collect gives memory back (at cut next).
var freeOSStep func(next time.Duration)

// collect cuts a snapshot every interval and at every stage boundary, then a last one on finalCut.
// The cuts never wait for emit: a consumer that falls behind (a busy machine, a slow OnSnapshot)
// gets them late, from a queue, but each holds what happened in its own interval. (Cutting only as
// fast as the consumer took snapshots put a whole run into the interval the consumer was stuck on:
// every stage's figures in stage 0.)
func (e *engine) collect(start time.Time, emit func(*metrics.Snapshot), finalCut <-chan struct{}) {
	q := newSnapQueue(emit)
	defer q.close()
	emit = q.push
	bounds := e.cfg.Ramp.Boundaries()
	last := time.Duration(0)
	t := time.NewTimer(0)
	defer t.Stop()
	var next time.Duration
	freeOS := func() {
		if freeOSStep != nil {
			freeOSStep(next)
		}
		e.bg.Add(1)
		go func() {
			defer e.bg.Done()
			// Two collections: the first moves the pools' buffers (readers, the WebSocket
			// upgrade's) to their victim caches, the second (FreeOSMemory's) frees them, and
			// their memory goes back to the system with the rest.
			runtime.GC()
			debug.FreeOSMemory()
		}()
	}
	// settling: a plateau began while some of its connections were still talking (a WebSocket
	// upgrade, an echo awaited): their garbage comes after the plateau's first collection.
	settling := false
	for {
		next = e.nextCut(last, bounds)
		t.Reset(time.Until(start.Add(next)))
		select {
		case <-t.C:
			emit(e.rec.Cut(start.Add(next), e.cfg.Ramp.Stage(last)))
			switch {
			case e.plateauStarts(next, bounds):
				// Connections are held through a plateau: the ramp's dial garbage would otherwise
				// stay resident until the next collection, which nothing triggers while nothing
				// allocates. Collect it now and give its memory back; but not while connections
				// still send at a rate: the collection (a stop of the world, the mark's work, then
				// the scavenger giving every free page back) lands at the start of the plateau's
				// measurement, amid requests due every few microseconds (at 30,000 requests/s the
				// rated loop stalled for ~60 ms, docs/measurements.md "The interval cut"). It comes
				// once every open connection is parked (settling), if ever.
				settling = e.parked.Load() < e.rec.Active()
				if !settling || e.cfg.Send == nil || !e.cfg.Send.rated() {
					freeOS()
				}
			case settling && e.cfg.Ramp.Stage(next) != e.cfg.Ramp.Stage(last):
				settling = false
			case settling && e.parked.Load() >= e.rec.Active():
				// Every open connection is parked now: collect the rest of the ramp's garbage.
				freeOS()
				settling = false
			}
			last = next
		case <-finalCut:
			now := time.Now()
			// A collector that fell behind (a busy machine, a slow OnSnapshot) still owes the cuts
			// whose time has passed; select picks at random between the timer and finalCut, so
			// without these a stage that ran could end up with no snapshot of its own.
			for !start.Add(next).After(now) {
				emit(e.rec.Cut(start.Add(next), e.cfg.Ramp.Stage(last)))
				last = next
				next = e.nextCut(last, bounds)
			}
			emit(e.rec.Cut(now, e.cfg.Ramp.Stage(last)))
			return
		}
	}
}

// snapQueue hands cut snapshots to a consumer in order, on a goroutine of its own, so that a slow
// consumer never delays a cut. Past maxQueued waiting snapshots, a new one is added into the last
// waiting one of the same stage (the timeline loses resolution, the stages and the totals nothing),
// so memory stays bounded however far behind the consumer is.
type snapQueue struct {
	mu      sync.Mutex
	waiting []*metrics.Snapshot
	closed  bool
	wake    chan struct{}
	done    chan struct{}
}

const maxQueued = 64

func newSnapQueue(emit func(*metrics.Snapshot)) *snapQueue {
	q := &snapQueue{wake: make(chan struct{}, 1), done: make(chan struct{})}
	go func() {
		defer close(q.done)
		for {
			q.mu.Lock()
			next, closed := q.waiting, q.closed
			q.waiting = nil
			q.mu.Unlock()
			for _, s := range next {
				emit(s)
			}
			if len(next) == 0 {
				if closed {
					return
				}
				<-q.wake
			}
		}
	}()
	return q
}

func (q *snapQueue) push(s *metrics.Snapshot) {
	q.mu.Lock()
	if n := len(q.waiting); n >= maxQueued && q.waiting[n-1].Stage == s.Stage && q.waiting[n-1].Add(s) == nil {
		q.mu.Unlock()
		return
	}
	q.waiting = append(q.waiting, s)
	q.mu.Unlock()
	q.signal()
}

func (q *snapQueue) signal() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// close waits until the consumer has taken every snapshot pushed.
func (q *snapQueue) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	q.signal()
	<-q.done
}

// nextCut is the time of the cut after last: one interval later, or the stage boundary before that.
func (e *engine) nextCut(last time.Duration, bounds []time.Duration) time.Duration {
	next := last + e.cfg.Interval
	for _, b := range bounds {
		if b > last && b < next {
			return b
		}
	}
	return next
}

// concurrency runs the concurrency model: slot i holds a connection while i < target.
func (e *engine) concurrency(start time.Time) {
	var slots []*slot
	var target atomic.Int64
	t := time.NewTimer(0)
	defer t.Stop()
	<-t.C
	total := e.cfg.Ramp.Total()
	for {
		elapsed := time.Since(start)
		c := e.cfg.Ramp.SegmentConcurrency(e.cfg.Segment, elapsed)
		if elapsed >= total {
			return
		}
		old := int(target.Swap(int64(c)))
		for i := min(old, c); i < max(old, c); i++ {
			if i < len(slots) {
				e.poke(slots[i])
			}
		}
		for len(slots) < c {
			s := &slot{id: len(slots), wake: make(chan struct{}, 1), target: &target}
			slots = append(slots, s)
			e.wg.Add(1)
			e.startSlot(s)
		}
		t.Reset(min(e.cfg.Ramp.SegmentNextChange(e.cfg.Segment, elapsed, 100*time.Microsecond), max(total-elapsed, 0)))
		select {
		case <-t.C:
		case <-e.stopping:
			return
		}
	}
}

type slot struct {
	id     int
	wake   chan struct{}
	target *atomic.Int64
	held   atomic.Pointer[held] // the slot's connection while it is parked
	sent   atomic.Bool          // a connection of the slot has begun sending (see holdFor)
}

// poke tells slot s its target changed: its goroutine wakes, or its parked connection is ended
// when the slot is no longer wanted.
func (e *engine) poke(s *slot) {
	select {
	case s.wake <- struct{}{}:
	default:
	}
	if h := s.held.Load(); h != nil && !s.wanted() {
		e.unpark(h)
	}
}

func (s *slot) wanted() bool { return int64(s.id) < s.target.Load() }

// runSlot keeps slot s's connection alive while the slot is wanted. The slot's goroutine ends
// while its connection is parked; the goroutine that takes it out of its hold carries on.
func (e *engine) runSlot(s *slot) {
	for {
		if !s.wanted() {
			select {
			case <-s.wake:
				continue
			case <-e.stopping:
				e.wg.Done()
				return
			}
		}
		select {
		case <-e.stopping:
			e.wg.Done()
			return
		default:
		}
		if e.limiter != nil {
			e.limiter.Take()
			// The wait may have outlasted the schedule: start nothing once stopping.
			select {
			case <-e.stopping:
				e.wg.Done()
				return
			default:
			}
			if !s.wanted() {
				continue // a ramp-down came during the wait
			}
		}
		id := e.next.Add(1)
		sh := e.rec.Shard(id)
		sh.Attempt()
		// The slot's count in e.wg passes to a detached conversation, or to a parked connection,
		// then to the goroutine that finishes it and carries on here.
		next := func(h *held) {
			if h != nil {
				e.park(h, func() { e.runSlot(s) })
				return
			}
			e.runSlot(s)
		}
		h, detached := e.connectionThen(id, sh, time.Time{}, 0, s, next)
		if detached {
			return
		}
		if h != nil {
			next(h)
			return
		}
	}
}

// arrivals runs the arrival model: every arrival starts at its intended time from the schedule,
// never from when a goroutine got around to it, so lateness shows instead of disappearing
// (coordinated omission). It shows in two places, to blame the right side: slot_wait is the time
// the loop was held back waiting for a free max_in_flight slot (the target was slow to finish
// connections, or the window is too small), schedule_lag the rest (the generator was late).
func (e *engine) arrivals(start time.Time) {
	sem := make(chan struct{}, e.cfg.MaxInFlight)
	it := e.cfg.Ramp.SegmentArrivals(e.cfg.Segment)
	p := newPacer()
	defer p.close()
	// freed is when the loop last got a slot it had to wait for. An arrival intended before then
	// was held back by the wait (its own or an earlier arrival's, the loop being sequential) until
	// then; only what came after is the generator's.
	var freed time.Time
	for {
		off, ok := it.Next()
		if !ok {
			return
		}
		intended := start.Add(off)
		if !p.until(intended, e.stopping) {
			return
		}
		id := e.next.Add(1)
		sh := e.rec.Shard(id)
		select {
		case sem <- struct{}{}:
		default:
			if e.cfg.Drop {
				sh.Drop()
				continue
			}
			select {
			case sem <- struct{}{}:
				freed = time.Now()
			case <-e.stopping:
				return
			}
		}
		wait := max(freed.Sub(intended), 0)
		sh.Attempt()
		e.wg.Add(1)
		go func() {
			done := func() {
				<-sem
				e.wg.Done()
			}
			next := func(h *held) {
				if h != nil {
					e.park(h, done)
					return
				}
				done()
			}
			if h, detached := e.connectionThen(id, sh, intended, wait, nil, next); !detached {
				next(h)
			}
		}()
	}
}

// connection runs one lifecycle: connect, requests, hold, close. Every step has a deadline. When
// the connection is to be held idle, it returns it unfinished, for the caller to park (held
// connections have no goroutine); otherwise it returns nil, the connection ended and recorded.
// An arrival has its intended start, of which it waited slotWait for a free slot.
func (e *engine) connection(id uint64, sh *metrics.Shard, intended time.Time, slotWait time.Duration, s *slot) *held {
	h, _ := e.connectionThen(id, sh, intended, slotWait, s, nil)
	return h
}

// connectionThen is connection, except that with after set, a conversation a rated loop runs is
// detached (docs/architecture.md "Rated loops"): it returns (nil, true) at once, and after runs,
// on a goroutine of its own, with what connection would have returned, once the conversation
// ended.
func (e *engine) connectionThen(id uint64, sh *metrics.Shard, intended time.Time, slotWait time.Duration, s *slot, after func(*held)) (*held, bool) {
	di := id % uint64(len(e.cfg.Destinations))
	dst := e.cfg.Destinations[di]
	if !e.guard.admit(di, e.stopping, s) {
		// A stop (or a ramp-down) came while the connect waited out its destination's backoff:
		// never made.
		sh.Withdraw()
		return nil, false
	}
	t0 := time.Now()
	timing := metrics.Timing{Intended: !intended.IsZero()}
	if timing.Intended {
		timing.SlotWait = slotWait
		timing.Lag = t0.Sub(intended) - slotWait
	}
	// A bare connection (conn nil) has nothing to say and nothing to hand-shake: bareDialer is
	// set only then.
	var conn net.Conn
	var bare dial.Bare
	var local netip.AddrPort // known without a system call, when the dialer knows it
	var err error
	if e.bareDialer != nil && dial.IsLoopback(dst.AddrPort.Addr()) && e.takeBareSlot() {
		bare, local, err = e.bareDialer.DialBareLocal(e.hardCtx, dst)
		<-e.bareSlots
	} else {
		conn, err = e.cfg.Dialer.Dial(e.hardCtx, dst)
	}
	t1 := time.Now()
	timing.Connect = t1.Sub(t0)
	if err != nil {
		if e.hardCtx.Err() != nil {
			err = metrics.ErrCanceled
		}
		e.guard.failed(di, dst, err, t1)
		if e.cfg.Ports != nil {
			e.cfg.Ports.Failed(dst, err, t1)
		}
		sh.ConnectFailed(t1, timing, err)
		return nil, false
	}
	e.guard.established(di)
	var pc ports.Conn
	if (e.releaser != nil || e.cfg.Ports != nil) && !local.IsValid() {
		if conn == nil {
			local = bare.LocalAddr()
		} else if ta, ok := conn.LocalAddr().(*net.TCPAddr); ok {
			local = ta.AddrPort()
		}
	}
	if e.cfg.Ports != nil {
		pc = e.cfg.Ports.Opened(dst, local, t0, timing.Connect)
	}
	sh.Connected(timing)

	if e.cfg.TLS != nil {
		conn, err = e.handshake(conn, e.cfg.TLS[di], sh)
	}
	upgraded := false
	if err == nil && e.websocket {
		conn, err = e.upgrade(conn)
		upgraded = err == nil
	}
	// ended is what follows the conversation: the hold, or the close.
	ended := func(err error) *held {
		h := &held{conn: conn, bare: bare, dst: uint32(di), port: local.Port(), pc: pc, sh: sh, s: s, t1: t1, closeMode: e.cfg.Close,
			websocket: upgraded}
		if err == errCut {
			// The conversation ended early, so a target that closes after the last answer (the
			// server side of close: server) will not: the client closes instead of waiting for
			// its FIN.
			if h.closeMode == dial.CloseServer {
				h.closeMode = dial.CloseFIN
			}
		} else if err == nil && e.cfg.Hold > 0 && !e.cfg.Send.unlimited() && !e.cut(s) {
			return h
		}
		e.finish(h, err)
		return nil
	}
	if err == nil && e.cfg.Send != nil && after != nil && e.cfg.Send.windowed() &&
		e.talkDetached(conn, sh, s, func(c net.Conn, err error) {
			conn = c // (a rated loop hands its socket back as a new net.Conn)
			after(ended(err))
		}) {
		return nil, true
	}
	if err == nil && e.cfg.Send != nil {
		c := conn
		stop := context.AfterFunc(e.hardCtx, func() { c.SetDeadline(time.Unix(1, 0)) })
		if e.cfg.Send.windowed() {
			conn, err = e.talk(conn, sh, s)
		} else {
			err = e.converse(conn, sh, s)
		}
		stop()
	}
	return ended(err), false
}

// errCut is converse's report that the hard stop (or a slot no longer wanted) ended the
// conversation cleanly between requests, before its last one: the connection counts as canceled,
// as ok means every request was answered.
var errCut = fmt.Errorf("%w: the conversation was cut short between its requests", metrics.ErrCanceled)

// cut reports, without waiting, whether the run is stopping or the slot is no longer wanted.
func (e *engine) cut(s *slot) bool {
	select {
	case <-e.stopping:
		return true
	default:
	}
	return s != nil && !s.wanted()
}

// pause waits d between two requests, or less when the hard stop comes or the slot is no longer
// wanted. It returns false when the wait was cut short.
func (e *engine) pause(d time.Duration, s *slot) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	var wake chan struct{}
	if s != nil {
		wake = s.wake
	}
	for {
		select {
		case <-t.C:
			return true
		case <-e.hardCtx.Done():
			return false
		case <-wake:
			if !s.wanted() {
				return false
			}
		}
	}
}
