package engine

import (
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/portstorm/portstorm/loadgen/metrics"
	"github.com/portstorm/portstorm/loadgen/proto"
)

// Rated loops (docs/architecture.md "Rated loops"). A rated conversation on a plain TCP socket
// (no TLS) is run by one of a few epoll loops instead of goroutines of its own: the loop writes
// each request when it is due (a per-connection rate's intended times, or the total rate's from
// the dispatcher) and the window has room, reads every socket that has something to read, parses
// the answers from the bytes received (proto.Exchange.Parse) and records them. Where the goroutine
// path costs a goroutine wake-up, a parked read (a read system call that finds nothing, the
// poller, a second read) and a deadline per request, a loop does one epoll_wait for every
// connection that has something to read and one read per connection. The connection's goroutine
// waits for the conversation's end, untouched meanwhile. The goroutine path (rate.go) keeps TLS and
// every connection that is not a *net.TCPConn.
//
// A loop waits in the kernel, in epoll_pwait2 with a nanosecond timeout until its next wake time,
// as the reference client does (bench/reference/rate.c), and other goroutines wake it by writing an
// eventfd in its set (kick). Its sockets and its set are in no other epoll set: a socket is handed
// over as a duplicate descriptor and its net.Conn closed (Go's poller forgets it), and handed back
// as a new net.Conn when the conversation ends. A socket also registered in Go's poller woke a
// runtime thread for every answer; a set parked in Go's poller cost a timerfd_settime per wake-up
// and the poller's own epoll_pwait: 38 µs of CPU per request at 30,000/s against 27 µs this way
// (docs/measurements.md "Rated loops in the kernel"). A loop blocked in the kernel keeps its P, so
// the engine adds one P per loop while they run. Each connection's wake time (its next intended
// request, its hold's end, its oldest request's I/O deadline) is kept in a heap; the stop, the
// hard stop and ramp-downs are looked for every loopSweep.

// loopSweep is how often a loop looks at every connection for the stop, the hard stop and
// ramp-downs (none of which wakes it).
const loopSweep = 10 * time.Millisecond

// useLoops, false in tests only, keeps every rated conversation on the goroutine path.
var useLoops = true

type rloops struct {
	once    sync.Once
	err     error
	started atomic.Bool
	ls      []*rloop
	next    atomic.Uint32
	wg      sync.WaitGroup
}

type rloop struct {
	e    *engine
	sh   *metrics.Shard // where its conversations' requests are recorded
	epfd int            // the loop's epoll set, in no other set (Go's poller does not know it)
	efd  int            // an eventfd in the set: a kick writes it while the loop waits
	// tfd, a timerfd in the set, times the wait when the kernel has no epoll_pwait2 (before
	// Linux 5.11): armed at the next wake time, then epoll_wait without a timeout.
	tfd      int
	armed    time.Time   // when tfd fires next (zero: not armed)
	noPwait2 bool        // epoll_pwait2 said ENOSYS
	kicked   atomic.Bool // a wake-up is pending: kicks coalesce
	waiting  atomic.Bool // the loop is in (or about to enter) its wait in the kernel
	quit     atomic.Bool

	mu    sync.Mutex
	inbox []*rconn // new connections, and connections given times by the dispatcher
	spare []*rconn

	// The loop goroutine's alone.
	conns     map[int32]*rconn
	heap      []*rconn // by wake
	buf       []byte   // every read lands here first
	r         *proto.Reader
	evs       []unix.EpollEvent
	nextSweep time.Time
	// target is the ramp's concurrency target, which the slots of the loop's connections share
	// (nil: no connection with a slot yet), and lastTarget its value at the last sweep.
	target     *atomic.Int64
	lastTarget int64
	stopSeen   bool
	// pumps: the loop steps the total rate's pump (engine.pump; the first loop, once it took it
	// over), next at pumpAt.
	pumps  bool
	pumpAt time.Time
}

// rconn is a conversation run by a loop.
type rconn struct {
	t    *talk
	l    *rloop
	fd   int
	done chan struct{}
	then func(end, error) // detached: runs once the conversation ended, instead of done
	why  end
	err  error

	own     bool        // fd is the loop's duplicate of the socket's, the net.Conn closed (see loopConn)
	back    net.Conn    // the socket handed back, once the conversation ended (own only)
	queued  atomic.Bool // in the loop's inbox
	added   bool
	over    bool
	hi      int       // index in the loop's heap, -1 when not in it
	wake    time.Time // the heap's key
	boxNext time.Time // total rate: the earliest time handed ahead, not yet due (zero: none)
	window  int
	ending  end       // no more writes: the answers outstanding are awaited, then it ends
	out     []pending // written, not answered, oldest first
	in      []byte    // bytes received and not yet parsed
	first   time.Time // when the first byte of the oldest outstanding answer came
	full    time.Time // the window is full since (zero: it is not)
	rest    []byte    // the part of the last request the socket has not taken yet
	restAt  time.Time // since when
	eof     bool      // the server closed its side
	readErr error     // a read failed with nothing outstanding: the next request's error
}

// initLoops prepares the rated loops when the conversations are rated and without TLS; they start
// with the first connection a loop can run (a dialer of connections in memory never starts them).
func (e *engine) initLoops() error {
	if !useLoops || e.cfg.Send == nil || !e.cfg.Send.rated() || e.cfg.TLS != nil || e.websocket {
		// (websocket: the reader answers pings while it reads, which Parse cannot)
		return nil
	}
	e.loops = &rloops{}
	return nil
}

// startLoops starts the loops, once.
func (ls *rloops) start(e *engine) error {
	ls.once.Do(func() { ls.err = ls.startOnce(e) })
	return ls.err
}

func (ls *rloops) startOnce(e *engine) error {
	for i := range loopCount(runtime.GOMAXPROCS(0)) {
		l, err := newRLoop(e, e.rec.Shard(uint64(i)))
		if err != nil {
			ls.close()
			ls.ls = nil
			return fmt.Errorf("engine: rated loop: %w", err)
		}
		ls.ls = append(ls.ls, l)
	}
	addProcs(len(ls.ls))
	if e.cfg.Send.TotalRate != nil {
		// The first loop hands out the total rate's times from now on, instead of a goroutine
		// that woke a thread of its own for it (dispatchRequests).
		ls.ls[0].pumps = e.pump.takeOver()
	}
	for _, l := range ls.ls {
		ls.wg.Add(1)
		go func() {
			defer ls.wg.Done()
			// The loop keeps one thread of its own for the run, named loopThreadName (top -H,
			// /proc/PID/task/*/comm), and makes its system calls without telling Go's scheduler
			// (rawRead, rawWrite, epoll_pwait2 in epollUntil): it holds its P while it waits, as
			// it would with the entersyscall the scheduler was told of otherwise, but the runtime's
			// monitor thread (sysmon) no longer takes that P back every 10 ms. Taken back, the P
			// went to another thread and the loop came back from its wait without one; and after
			// each take the monitor polled every 20 µs for a while: 2,500 wake-ups a second at
			// 30,000 requests/s, each on a core the target may need (docs/measurements.md "The
			// loop's thread"). The thread gets its name back before it goes back to Go's pool.
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			defer nameThread(loopThreadName)()
			l.run()
		}()
	}
	ls.started.Store(true)
	if loopStarted != nil {
		loopStarted()
	}
	return nil
}

// loopCount is how many rated loops a run has with procs Ps: one per two, at most 4. Each loop is
// one thread's work; on 2 cores one loop measured best, the other core left to the kernel's share of
// each request (its receive path runs in the writer's system call) and to the rest of the process:
// two loops cost 30-32 µs of CPU per request at 30,000/s against 27 µs (docs/measurements.md).
func loopCount(procs int) int { return max(1, min(procs/2, 4)) }

// procsMu serialises addProcs: engines in one process (tests) add and take back their Ps in any order.
var procsMu sync.Mutex

// addProcs adds n Ps (n < 0 takes them back): a loop waiting in the kernel keeps its P, and the
// rest of the process needs its own. Without them, the run's other goroutines (the dispatcher, the
// collector) waited until sysmon took a loop's P back, and a loop coming back from its wait waited
// for a P in turn.
func addProcs(n int) {
	procsMu.Lock()
	defer procsMu.Unlock()
	runtime.GOMAXPROCS(max(runtime.GOMAXPROCS(0)+n, 1))
}

// readied, set by tests only, runs when a connection is queued for its loop.
var readied func()

// loopStarted, set by tests only, runs when a run's loops start.
var loopStarted func()

// stopLoops ends the loops once every connection has ended.
func (e *engine) stopLoops() {
	if e.loops == nil {
		return
	}
	e.loops.once.Do(func() {}) // none starts after this
	if !e.loops.started.Load() {
		return
	}
	for _, l := range e.loops.ls {
		l.quit.Store(true)
		l.kick()
	}
	e.loops.wg.Wait()
	e.loops.close()
	addProcs(-len(e.loops.ls))
}

func (ls *rloops) close() {
	for _, l := range ls.ls {
		unix.Close(l.epfd)
		unix.Close(l.efd)
		unix.Close(l.tfd)
	}
}

func newRLoop(e *engine, sh *metrics.Shard) (*rloop, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, os.NewSyscallError("epoll_create1", err)
	}
	tfd, err := newTimerfd()
	if err != nil {
		unix.Close(epfd)
		return nil, err
	}
	efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		unix.Close(tfd)
		unix.Close(epfd)
		return nil, os.NewSyscallError("eventfd", err)
	}
	// Edge-triggered: every expiry and every kick is one event, and neither descriptor is read
	// (arming the timer again is all it needs; an eventfd's counter does not fill in 2^64 kicks).
	for _, fd := range []int{tfd, efd} {
		ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLET, Fd: int32(fd)}
		if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
			unix.Close(efd)
			unix.Close(tfd)
			unix.Close(epfd)
			return nil, os.NewSyscallError("epoll_ctl", err)
		}
	}
	return &rloop{e: e, sh: sh, epfd: epfd, efd: efd, tfd: tfd, conns: make(map[int32]*rconn),
		buf: make([]byte, 64<<10), r: proto.NewReader(), evs: make([]unix.EpollEvent, 256)}, nil
}

// arm sets the loop's timer to fire at next (at once when next has passed), unless it is set
// to fire then already (before Linux 5.11 only: see epollUntil).
func (l *rloop) arm(next, now time.Time) error {
	if next.Equal(l.armed) {
		return nil
	}
	if err := armTimerfd(l.tfd, next.Sub(now)); err != nil {
		l.armed = time.Time{} // not expected (the descriptor and the value are valid)
		return err
	}
	l.armed = next
	return nil
}

// loopable reports whether a loop can run a conversation on conn.
func (e *engine) loopable(conn net.Conn) bool {
	_, ok := conn.(*net.TCPConn)
	return ok && e.loops != nil && !e.websocket
}

// loopConn is conn's descriptor when a loop can run its conversation (a plain TCP socket), and the
// loop; nil when it cannot.
func (e *engine) loopConn(t *talk, conn net.Conn) *rconn {
	if e.loops == nil {
		return nil
	}
	tc, ok := conn.(*net.TCPConn)
	if !ok || e.loops.start(e) != nil {
		return nil // (a loop that cannot start leaves the goroutine path to every conversation)
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return nil
	}
	// The loop takes a duplicate of the socket's descriptor and the net.Conn is closed: Go's poller
	// forgets the socket, which stays open through the duplicate (a socket the poller also
	// watches woke a runtime thread for every answer). When no duplicate can be made (the process
	// is at its open-files limit), the loop runs the net.Conn's own descriptor, and the poller
	// keeps watching it.
	fd, dup := -1, -1
	if rc.Control(func(f uintptr) {
		fd = int(f)
		if d, err := unix.FcntlInt(f, unix.F_DUPFD_CLOEXEC, 0); err == nil {
			dup = d
		}
	}) != nil || fd < 0 {
		return nil
	}
	own := dup >= 0
	if own {
		fd = dup
		tc.Close()
	}
	l := e.loops.ls[int(e.loops.next.Add(1))%len(e.loops.ls)]
	// The conversation's requests are recorded in the loop's shard: one recorder shard per loop, so
	// that an interval's cut takes each of its histograms whole instead of merging one per shard
	// the loop's connections are spread over (~4 ms of CPU at each cut at 30,000 requests/s, on
	// the cores the loop and the server need).
	t.sh = l.sh
	return &rconn{t: t, l: l, fd: fd, own: own, done: make(chan struct{}), hi: -1, window: max(t.snd.Pipeline, 1)}
}

// conn is the connection's net.Conn once the conversation ended: the one its socket was handed
// back as (see loopConn), or orig, the caller's, when the loop ran orig's own descriptor.
func (c *rconn) conn(orig net.Conn) net.Conn {
	if c.back != nil {
		return c.back
	}
	return orig
}

// handBack makes the loop's descriptor a net.Conn again, for the hold or the close that follow the
// conversation (net.FileConn duplicates it), and closes the loop's.
func (c *rconn) handBack() (net.Conn, error) {
	f := os.NewFile(uintptr(c.fd), "tcp")
	defer f.Close()
	return net.FileConn(f)
}

// run hands the conversation to its loop and waits for its end. The caller then goes on with the
// connection's net.Conn (conn): closes it, or holds it, as after any conversation.
func (c *rconn) run() (end, error) {
	c.l.ready(c)
	<-c.done
	return c.why, c.err
}

// given tells c's loop that the pump gave c a time, at. Called by the loop itself (by, stepping
// the pump), it sets c's wake time if at is earlier, where any other caller queues c for its loop
// and wakes it: the loop's own connections cost no inbox, no kick and no service for a time
// handed ahead.
func (c *rconn) given(at time.Time, by *rloop) {
	l := c.l
	if by != l {
		l.ready(c)
		return
	}
	if !c.added || c.over || c.ending != endNone || c.queued.Load() {
		return // new, or queued already: its service finds the time; or it writes no more
	}
	if c.hi >= 0 && !at.Before(c.wake) {
		return // it wakes before then anyway
	}
	if c.boxNext.IsZero() || at.Before(c.boxNext) {
		c.boxNext = at
	}
	c.schedule()
}

// detach hands the conversation to its loop and returns at once: then runs, on a goroutine of its
// own, once it ended.
func (c *rconn) detach(then func(end, error)) {
	c.then = then
	c.l.ready(c)
}

// ready queues c for its loop (new, or given times by the dispatcher) and wakes the loop.
func (l *rloop) ready(c *rconn) {
	if readied != nil {
		readied()
	}
	if c.queued.CompareAndSwap(false, true) {
		l.mu.Lock()
		l.inbox = append(l.inbox, c)
		l.mu.Unlock()
	}
	l.kick()
}

// kick wakes the loop. Kicks coalesce until the loop takes its inbox, and only a loop waiting in
// the kernel costs a system call (an eventfd write). The loop says it waits, then looks at kicked
// before it waits; a kick sets kicked, then looks at waiting: one of the two sees the other, so no
// kick is lost (one that sees a wait just ending makes the next wait return at once).
func (l *rloop) kick() {
	if l.kicked.CompareAndSwap(false, true) && l.waiting.Load() {
		one := [8]byte{1} // the eventfd's counter: 1, in the machine's (little-endian) order
		unix.Write(l.efd, one[:])
	}
}

func (l *rloop) run() {
	defer func() {
		// Not reached with connections left (the engine stops its loops once every connection
		// ended), but a loop never leaves one waiting.
		for _, c := range l.conns {
			c.finish(endCut, nil)
		}
	}()
	for {
		now := time.Now()
		if l.pumps && !now.Before(l.pumpAt) {
			// Before the inbox: the times it hands to this loop's connections are in it.
			l.pumpAt = l.e.pump.stepFor(now, l)
			l.pumps = !l.pumpAt.IsZero()
		}
		if l.kicked.Swap(false) {
			l.takeInbox(now)
		}
		l.timers(now)
		if l.quit.Load() && len(l.conns) == 0 {
			l.mu.Lock()
			empty := len(l.inbox) == 0
			l.mu.Unlock()
			if empty {
				return
			}
		}
		next := l.nextSweep
		if len(l.heap) > 0 && l.heap[0].wake.Before(next) {
			next = l.heap[0].wake
		}
		if l.pumps && l.pumpAt.Before(next) {
			next = l.pumpAt
		}
		if !now.Before(l.armed) {
			l.armed = time.Time{} // it fired
		}
		if err := l.wait(next); err != nil {
			return // not expected: the set is closed only once the loops ended
		}
	}
}

// wait waits in the kernel until next, an event in the set or a kick, then handles the events.
func (l *rloop) wait(next time.Time) error {
	l.waiting.Store(true)
	if l.kicked.Load() {
		l.waiting.Store(false)
		return nil // the inbox first
	}
	n, err := l.epollUntil(next)
	l.waiting.Store(false)
	if err != nil {
		return err
	}
	l.events(l.evs[:n])
	return nil
}

// epollUntil waits on the set until next at the latest: epoll_pwait2's nanosecond timeout, or
// before Linux 5.11 the set's timerfd armed at next. Zero events when a signal (Go's preemption)
// ended the wait early: the loop looks at its times again.
func (l *rloop) epollUntil(next time.Time) (int, error) {
	now := time.Now()
	d := max(next.Sub(now), 0)
	if !l.noPwait2 {
		ts := unix.NsecToTimespec(int64(d))
		// Raw: Go's scheduler is not told of the wait (see startOnce). A signal (Go's
		// preemption, a stop of the world for the garbage collector) ends it early with EINTR,
		// so the loop stops for them as promptly as in a wait the scheduler knew of.
		n, _, errno := unix.RawSyscall6(unix.SYS_EPOLL_PWAIT2, uintptr(l.epfd), uintptr(unsafe.Pointer(&l.evs[0])),
			uintptr(len(l.evs)), uintptr(unsafe.Pointer(&ts)), 0, 0)
		switch errno {
		case 0:
			return int(n), nil
		case unix.EINTR:
			return 0, nil
		case unix.ENOSYS:
			l.noPwait2 = true
		default:
			return 0, os.NewSyscallError("epoll_pwait2", errno)
		}
	}
	timeout := -1 // the timerfd ends it
	if d == 0 {
		timeout = 0
	} else if l.arm(next, now) != nil {
		timeout = int((d + time.Millisecond - 1) / time.Millisecond)
	}
	n, err := unix.EpollWait(l.epfd, l.evs, timeout)
	if err == unix.EINTR {
		return 0, nil
	}
	return n, os.NewSyscallError("epoll_wait", err)
}

// events handles one harvest.
func (l *rloop) events(evs []unix.EpollEvent) {
	now := time.Now()
	for _, ev := range evs {
		c := l.conns[ev.Fd]
		if c == nil || c.over {
			continue
		}
		if ev.Events&(unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
			c.read(now, ev.Events&(unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0)
		}
		if !c.over && len(c.rest) > 0 && ev.Events&(unix.EPOLLOUT|unix.EPOLLERR|unix.EPOLLHUP) != 0 {
			c.flush(now)
		}
		if !c.over {
			c.service(now)
		}
	}
}

func (l *rloop) takeInbox(now time.Time) {
	l.mu.Lock()
	in := l.inbox
	l.inbox = l.spare[:0]
	l.mu.Unlock()
	for i, c := range in {
		in[i] = nil
		c.queued.Store(false)
		if c.over {
			continue
		}
		if !c.added {
			c.added = true
			ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLOUT | unix.EPOLLRDHUP | unix.EPOLLET, Fd: int32(c.fd)}
			if err := unix.EpollCtl(l.epfd, unix.EPOLL_CTL_ADD, c.fd, &ev); err != nil {
				c.finish(endNone, os.NewSyscallError("epoll_ctl", err))
				continue
			}
			l.conns[int32(c.fd)] = c
			if s := c.t.s; s != nil && l.target == nil {
				// Every slot of a run shares the ramp's target (engine.concurrency).
				l.target, l.lastTarget = s.target, s.target.Load()
			}
		}
		c.service(now)
	}
	l.spare = in[:0]
}

// timers serves the connections whose wake time came, and every loopSweep all of them.
func (l *rloop) timers(now time.Time) {
	for len(l.heap) > 0 && !l.heap[0].wake.After(now) {
		// Served in place: its service sets its next wake time (heapSet, one sift) or ends it
		// (finish takes it out), where taking it out first cost a sift more.
		l.heap[0].service(now)
	}
	if now.Before(l.nextSweep) {
		return
	}
	l.nextSweep = now.Add(loopSweep)
	all := l.e.hardCtx.Err() != nil
	if !l.stopSeen {
		select {
		case <-l.e.stopping:
			l.stopSeen, all = true, true
		default:
		}
	}
	// A slot is no longer wanted only when the ramp's target falls below its id: with the target
	// as it was at the last sweep (or higher), no connection needs a look. Looking at every one
	// each sweep was most of the loop's CPU with 10,000 connections (three pointers followed per
	// connection, 100 times a second: 40% of the process in perf, request_lag p99 10-20 ms at
	// 10,000 msg/s; docs/measurements.md "Rated loops in the kernel").
	lower := false
	if l.target != nil {
		tg := l.target.Load()
		lower, l.lastTarget = tg < l.lastTarget, tg
	}
	if !all && !lower {
		return
	}
	for _, c := range l.conns {
		if sweepVisit != nil {
			sweepVisit()
		}
		if !c.over && (all || c.t.s != nil && !c.t.s.wanted()) {
			c.service(now)
		}
	}
}

// sweepVisit, set by tests only, runs for each connection a sweep looks at.
var sweepVisit func()

// service does what is due on c: its end, its writes, its I/O deadline; then sets its wake time.
func (c *rconn) service(now time.Time) {
	t := c.t
	e := t.e
	if e.hardCtx.Err() != nil {
		c.finish(endCut, nil)
		return
	}
	if len(c.out) > 0 && !now.Before(c.out[0].w0.Add(e.cfg.IOTimeout)) {
		c.fail(0, proto.Result{}, timeoutError("read"))
		return
	}
	if len(c.rest) > 0 && !now.Before(c.restAt.Add(e.cfg.IOTimeout)) {
		c.fail(-1, proto.Result{}, timeoutError("write"))
		return
	}
	if c.ending == endNone {
		c.ending = c.cutNow(now)
	}
	c.boxNext = time.Time{}
	for c.ending == endNone && len(c.rest) == 0 && (len(c.out) < c.window || !t.x.Reads()) {
		at, ok := c.due(now)
		if !ok {
			break
		}
		if c.write(t.take(at), now) {
			return
		}
	}
	if c.ending != endNone && len(c.out) == 0 && len(c.rest) == 0 {
		c.finish(c.ending, nil)
		return
	}
	c.schedule()
}

// cutNow is what ends c's writing now, as talk.due and talk.cut decide it on the goroutine path.
func (c *rconn) cutNow(now time.Time) end {
	t := c.t
	if !t.snd.Unlimited && t.next >= int64(t.snd.Count) {
		return endCount
	}
	if t.s != nil && !t.s.wanted() {
		return endCut
	}
	if t.snd.Unlimited {
		select {
		case <-t.e.stopping:
			return endStop
		default:
		}
	}
	if !t.holdEnd.IsZero() && !now.Before(t.holdEnd) {
		return endHold
	}
	return endNone
}

// due returns the next request's intended time once it came.
func (c *rconn) due(now time.Time) (time.Time, bool) {
	t := c.t
	if !t.snd.Unlimited && t.next >= int64(t.snd.Count) {
		c.ending = endCount
		return time.Time{}, false
	}
	if t.box != nil {
		at, next, ok := t.box.popDue(now, t.e.stopTime())
		c.boxNext = next
		return at, ok
	}
	at := t.intended(t.next)
	if at.After(now) {
		return time.Time{}, false
	}
	if !t.holdEnd.IsZero() && !at.Before(t.holdEnd) {
		c.ending = endHold
		return time.Time{}, false
	}
	return at, true
}

// write writes request p; true when the conversation ended.
func (c *rconn) write(p pending, now time.Time) bool {
	t := c.t
	if c.readErr != nil {
		t.record(p, proto.Result{}, c.readErr)
		c.finish(endNone, c.readErr)
		return true
	}
	req := t.x.Request()
	n, err := writeFD(c.fd, req)
	if err != nil {
		err = &net.OpError{Op: "write", Net: "tcp", Err: os.NewSyscallError("write", err)}
		c.out = append(c.out, p)
		c.fail(len(c.out)-1, proto.Result{}, err)
		return true
	}
	p.out = len(req)
	if n < len(req) {
		c.rest, c.restAt = req[n:], now
	}
	if !t.x.Reads() {
		t.record(p, proto.Result{}, nil)
		return false
	}
	c.out = append(c.out, p)
	if len(c.out) == c.window {
		c.full = p.w0
	}
	if c.eof {
		c.parse(time.Now())
		return c.over
	}
	return false
}

// flush writes the rest of a request the socket did not take whole.
func (c *rconn) flush(now time.Time) {
	n, err := writeFD(c.fd, c.rest)
	if err != nil {
		c.fail(len(c.out)-1, proto.Result{}, &net.OpError{Op: "write", Net: "tcp", Err: os.NewSyscallError("write", err)})
		return
	}
	c.rest = c.rest[n:]
	if len(c.rest) == 0 {
		c.rest = nil
	} else {
		c.restAt = now
	}
}

// writeFD writes b to the non-blocking descriptor fd: the bytes the socket took (none when it is
// full).
func writeFD(fd int, b []byte) (int, error) {
	for {
		n, err := rawWrite(fd, b)
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN:
			return 0, nil
		case err != nil:
			return 0, err
		}
		return n, nil
	}
}

// read reads everything the socket has and parses the answers it completes.
//
// A read shorter than the buffer took everything the socket had when it was made: bytes that
// come after it are a new edge, a new event. So it is the last, unless the event said the server
// closed or the socket failed (closing is then in the socket before the bytes are read, with no
// edge of its own to come): then reads go on to the end or EAGAIN. This spares the read that
// finds nothing (EAGAIN) after each answer, a third of a request's system calls.
func (c *rconn) read(now time.Time, closing bool) {
	l := c.l
	for !c.eof {
		n, err := rawRead(c.fd, l.buf)
		if err == unix.EINTR {
			continue
		}
		if err == unix.EAGAIN {
			break
		}
		if err != nil {
			err = &net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", err)}
			if len(c.out) == 0 {
				c.readErr = err
				return
			}
			c.fail(0, proto.Result{}, err)
			return
		}
		if n == 0 {
			c.eof = true
			break
		}
		if len(c.out) > 0 && c.first.IsZero() {
			c.first = now
		}
		if len(c.in) == 0 {
			// The common case: the answers are parsed where they were read, without a copy.
			c.parseFrom(l.buf[:n], now)
		} else {
			c.in = append(c.in, l.buf[:n]...)
			c.parse(now)
		}
		if c.over {
			return
		}
		if n < len(l.buf) && !closing {
			return
		}
	}
	if c.eof {
		c.parse(now)
	}
}

// parse records every answer c.in completes.
func (c *rconn) parse(now time.Time) { c.parseFrom(c.in, now) }

// parseFrom records every answer data (c.in, or the bytes just read when c.in is empty)
// completes, and keeps the rest in c.in.
func (c *rconn) parseFrom(data []byte, now time.Time) {
	t := c.t
	for len(c.out) > 0 {
		p := c.out[0]
		res, n, err := t.x.Parse(c.l.r, data, c.eof, p.w0, len(c.out) > 1)
		if errors.Is(err, proto.ErrIncomplete) {
			break
		}
		if res.FirstByte > 0 && !c.first.IsZero() {
			res.FirstByte = max(c.first.Sub(p.w0), 1)
		}
		data = data[n:]
		c.first = time.Time{}
		if len(data) > 0 {
			c.first = now
		}
		c.out = c.out[:copy(c.out, c.out[1:])]
		if !c.full.IsZero() {
			t.busy.add(c.full, now)
			c.full = time.Time{}
		}
		if err := t.record(p, res, err); err != nil {
			c.finishErr(err)
			return
		}
		if res.Closed {
			c.finish(endReader, nil)
			return
		}
	}
	if len(c.out) == 0 && len(data) > 0 {
		// Bytes no request asked for: the stream is out of step with the requests.
		c.finishErr(answerError(fmt.Errorf("%w: %d bytes when no answer was awaited", proto.ErrMalformed, len(data))))
		return
	}
	if len(c.out) == 0 && c.eof {
		// The server closed with every answer in: the next request would find it closed.
		c.readErr = &net.OpError{Op: "write", Net: "tcp", Err: os.NewSyscallError("write", unix.EPIPE)}
	}
	if len(data) == 0 {
		c.in = c.in[:0]
		if cap(c.in) > 4<<10 {
			c.in = nil // an idle connection holds no large buffer
		}
		return
	}
	// copy, not append: data may be c.in's own tail
	if cap(c.in) < len(data) {
		c.in = make([]byte, len(data), max(len(data), 2*cap(c.in)))
	} else {
		c.in = c.in[:len(data)]
	}
	copy(c.in, data)
}

// fail ends the conversation with err as request i's outcome (i < 0: none's).
func (c *rconn) fail(i int, res proto.Result, err error) {
	if i >= 0 && i < len(c.out) {
		p := c.out[i]
		c.out = append(c.out[:i], c.out[i+1:]...)
		err = c.t.record(p, res, err)
	}
	c.finishErr(err)
}

func (c *rconn) finishErr(err error) { c.finish(endNone, err) }

// finish ends the conversation: the requests still outstanding were written and never answered
// (the first one cut by the hard stop when it came).
func (c *rconn) finish(why end, err error) {
	if c.over {
		return
	}
	c.over = true
	t := c.t
	l := c.l
	if c.added {
		unix.EpollCtl(l.epfd, unix.EPOLL_CTL_DEL, c.fd, nil)
		delete(l.conns, int32(c.fd))
	}
	if c.hi >= 0 {
		l.heapRemove(c)
	}
	if why == endCut && err == nil && len(c.out) > 0 && t.e.hardCtx.Err() != nil {
		err = t.record(c.out[0], proto.Result{}, errCut)
		c.out = c.out[1:]
	}
	for _, p := range c.out {
		t.sh.Request(metrics.RequestTiming{Intended: !p.at.IsZero(), WindowWait: p.windowWait, Lag: p.lag,
			FirstByte: -1, Service: -1, Out: p.out}, errUnanswered)
	}
	if err == nil && why == endCut && t.e.hardCtx.Err() != nil && len(c.out) > 0 {
		err = errCut
	}
	c.out, c.in, c.rest = nil, nil, nil
	if c.own {
		back, herr := c.handBack()
		if herr != nil && err == nil {
			// Not expected short of the open-files limit. The socket is closed then, by handBack.
			err = fmt.Errorf("engine: rated loop: handing the socket back: %w", herr)
		}
		c.back = back
	}
	c.why, c.err = why, err
	if c.then != nil {
		go c.then(why, err)
		return
	}
	close(c.done)
}

// schedule sets c's wake time: its next intended request, its hold's end, its I/O deadline.
func (c *rconn) schedule() {
	t := c.t
	var w time.Time
	earlier := func(x time.Time) {
		if !x.IsZero() && (w.IsZero() || x.Before(w)) {
			w = x
		}
	}
	if c.ending == endNone {
		if len(c.rest) == 0 && (len(c.out) < c.window || !t.x.Reads()) {
			if t.box == nil {
				earlier(t.intended(t.next))
			} else {
				earlier(c.boxNext) // a time handed ahead by the dispatcher
			}
		}
		earlier(t.holdEnd)
	}
	if len(c.out) > 0 {
		earlier(c.out[0].w0.Add(t.e.cfg.IOTimeout))
	}
	if len(c.rest) > 0 {
		earlier(c.restAt.Add(t.e.cfg.IOTimeout))
	}
	c.l.heapSet(c, w)
}

// heapSet sets c's wake time to w, and takes it out of the heap when w is zero.
func (l *rloop) heapSet(c *rconn, w time.Time) {
	switch {
	case w.IsZero():
		if c.hi >= 0 {
			l.heapRemove(c)
		}
	case c.hi >= 0:
		// In place: one sift, where taking it out and putting it back cost two or three.
		later := w.After(c.wake)
		c.wake = w
		if later {
			l.heapDown(c.hi)
		} else {
			l.heapUp(c.hi)
		}
	default:
		c.wake = w
		c.hi = len(l.heap)
		l.heap = append(l.heap, c)
		l.heapUp(c.hi)
	}
}

func timeoutError(op string) error {
	return &net.OpError{Op: op, Net: "tcp", Err: os.ErrDeadlineExceeded}
}

// The heap of wake times.

func (l *rloop) heapLess(i, j int) bool { return l.heap[i].wake.Before(l.heap[j].wake) }

func (l *rloop) heapSwap(i, j int) {
	h := l.heap
	h[i], h[j] = h[j], h[i]
	h[i].hi, h[j].hi = i, j
}

func (l *rloop) heapUp(i int) {
	for i > 0 {
		p := (i - 1) / 2
		if !l.heapLess(i, p) {
			return
		}
		l.heapSwap(i, p)
		i = p
	}
}

func (l *rloop) heapDown(i int) {
	n := len(l.heap)
	for {
		m := i
		if a := 2*i + 1; a < n && l.heapLess(a, m) {
			m = a
		}
		if b := 2*i + 2; b < n && l.heapLess(b, m) {
			m = b
		}
		if m == i {
			return
		}
		l.heapSwap(i, m)
		i = m
	}
}

func (l *rloop) heapRemove(c *rconn) {
	i := c.hi
	last := len(l.heap) - 1
	if i != last {
		l.heapSwap(i, last)
	}
	l.heap[last] = nil
	l.heap = l.heap[:last]
	c.hi = -1
	if i < last {
		l.heapDown(i)
		l.heapUp(i)
	}
}

// loopThreadName names a rated loop's thread (at most 15 bytes: the kernel's limit).
const loopThreadName = "portstorm-loop"

// loopsOnMainThread counts the loops that ran on the process's main thread, which nameThread
// leaves unnamed (for tests).
var loopsOnMainThread atomic.Int32

// nameThread names the calling thread, locked to its goroutine, and returns what gives it its
// name back. The main thread keeps its name: it is the process's, which ps and top show. A failure
// only leaves the name as it was.
func nameThread(name string) (restore func()) {
	if unix.Gettid() == unix.Getpid() {
		loopsOnMainThread.Add(1)
		return func() {}
	}
	var old [16]byte // the kernel's names are 16 bytes with their NUL
	if unix.Prctl(unix.PR_GET_NAME, uintptr(unsafe.Pointer(&old[0])), 0, 0, 0) != nil {
		return func() {}
	}
	b := append([]byte(name), 0)
	unix.Prctl(unix.PR_SET_NAME, uintptr(unsafe.Pointer(&b[0])), 0, 0, 0)
	return func() { unix.Prctl(unix.PR_SET_NAME, uintptr(unsafe.Pointer(&old[0])), 0, 0, 0) }
}

// rawRead and rawWrite are read(2) and write(2) on a non-blocking socket, made without telling Go's
// scheduler (a rated loop's; see startOnce): they never block.
func rawRead(fd int, b []byte) (int, error)  { return rawIO(unix.SYS_READ, fd, b) }
func rawWrite(fd int, b []byte) (int, error) { return rawIO(unix.SYS_WRITE, fd, b) }

func rawIO(trap uintptr, fd int, b []byte) (int, error) {
	var p unsafe.Pointer
	if len(b) > 0 {
		p = unsafe.Pointer(&b[0])
	}
	n, _, errno := unix.RawSyscall(trap, uintptr(fd), uintptr(p), uintptr(len(b)))
	if errno != 0 {
		return 0, errno
	}
	return int(n), nil
}
