package engine

import (
	"fmt"
	"math"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/portstorm/portstorm/loadgen/metrics"
	"github.com/portstorm/portstorm/loadgen/proto"
	"github.com/portstorm/portstorm/loadgen/schedule"
)

// Requests at a rate (docs/measurements.md "Requests at a rate"). A rated conversation is open
// loop: each request has an intended send time computed in closed form, and its latency counts
// from then (request_intended), however late the generator (request_lag) or the pipelining
// window (window_wait) let it go. Per connection (Send.Rate), request i is intended at the
// conversation's start + i/rate; with a total rate, one dispatcher per shard hands the run's
// intended times round-robin to the connections sending at that moment.

// rated reports whether the requests are paced by a rate.
func (s *Send) rated() bool { return s.Rate > 0 || s.TotalRate != nil }

// unlimited reports whether the connection sends until its hold ends: its hold is then spent
// sending, and it is not held idle after. Safe on a nil Send.
func (s *Send) unlimited() bool { return s != nil && s.Unlimited }

// windowed reports whether a conversation runs as a talk (rated, or pipelined) rather than the
// closed loop of converse.
func (s *Send) windowed() bool { return s.rated() || s.Pipeline > 1 }

// end is why a talk stops writing.
type end uint8

const (
	endNone   end = iota
	endCount      // every request of the count was written
	endHold       // the sending period (hold) of an unlimited connection is over
	endStop       // the run stops: no new request; those outstanding are answered
	endCut        // the hard stop, or the slot is no longer wanted
	endReader     // the answers' side failed, or the server closes
)

// pending is a request written and not yet answered.
type pending struct {
	at              time.Time // intended (zero: unrated)
	windowWait, lag time.Duration
	w0              time.Time // write started
	out             int
}

// talk is one windowed conversation.
type talk struct {
	e     *engine
	conn  net.Conn
	sh    *metrics.Shard
	s     *slot
	x     *proto.Exchange
	snd   *Send
	rated bool

	start   time.Time // the conversation's start: request i of a per-connection rate is due at start + i/rate
	holdEnd time.Time // an unlimited connection's end of sending (zero: none)
	next    int64     // requests taken so far
	box     *mailbox  // total rate: this connection's intended times
	timer   *time.Timer
	// busy is when the window held the writer back: full while it had a request to write.
	busy busyLog

	// Pipelined (window > 1): the reader goroutine's side.
	slots      chan struct{} // a place in the window per request outstanding
	inflight   chan pending
	sent       atomic.Int64 // requests whose write began
	readerDone chan struct{}
	readErr    error
}

// due returns when the next request was intended (zero when unrated: now) once its time has
// come, or why the conversation stops writing.
func (t *talk) due() (time.Time, end) {
	if !t.snd.Unlimited && t.next >= int64(t.snd.Count) {
		return time.Time{}, endCount
	}
	if !t.rated {
		// Closed loop: a stop lets the conversation finish (the graceful stop drains it); the hard
		// stop, a ramp-down, or a failed reader end it.
		if e := t.cut(false); e != endNone {
			return time.Time{}, e
		}
		return time.Time{}, endNone
	}
	for {
		if talkStep != nil {
			talkStep()
		}
		// A stop ends an unlimited conversation; one of a count finishes it, paced, within the
		// graceful stop, as a closed-loop one does.
		if e := t.cut(t.snd.Unlimited); e != endNone {
			return time.Time{}, e
		}
		now := time.Now()
		if !t.holdEnd.IsZero() && !now.Before(t.holdEnd) {
			return time.Time{}, endHold
		}
		var at time.Time
		var wake <-chan struct{}
		if t.box != nil {
			a, next, ok := t.box.popDue(now, t.e.stopTime())
			if ok {
				return a, endNone
			}
			at, wake = next, t.box.wake
		} else {
			at = t.intended(t.next)
			if !at.After(now) {
				if !t.holdEnd.IsZero() && !at.Before(t.holdEnd) {
					return time.Time{}, endHold
				}
				return at, endNone
			}
		}
		until := at
		if !t.holdEnd.IsZero() && (until.IsZero() || t.holdEnd.Before(until)) {
			until = t.holdEnd
		}
		if e := t.sleep(until, wake); e != endNone {
			return time.Time{}, e
		}
	}
}

// intended is request i's intended send time under a per-connection rate, in closed form (no
// drift accumulates from one request to the next).
func (t *talk) intended(i int64) time.Time {
	return t.start.Add(time.Duration(float64(i) / t.snd.Rate * float64(time.Second)))
}

// talkStep, set by tests only, runs each time a rated conversation looks for its next request:
// a test stalls the generator there.
var talkStep func()

// cut reports, without waiting, what ends the conversation now: the hard stop, a ramp-down, a
// failed reader, and with stop the run's stop.
func (t *talk) cut(stop bool) end {
	select {
	case <-t.e.hardCtx.Done():
		return endCut
	case <-t.readerDone:
		return endReader
	default:
	}
	if t.s != nil && !t.s.wanted() {
		return endCut
	}
	if stop {
		select {
		case <-t.e.stopping:
			return endStop
		default:
		}
	}
	return endNone
}

// sleep waits until until (zero: no deadline) or wake, or what ends the conversation.
func (t *talk) sleep(until time.Time, wake <-chan struct{}) end {
	var tc <-chan time.Time
	if !until.IsZero() {
		if t.timer == nil {
			t.timer = time.NewTimer(time.Until(until))
		} else {
			t.timer.Reset(time.Until(until))
		}
		tc = t.timer.C
		defer t.timer.Stop()
	}
	var slotWake chan struct{}
	if t.s != nil {
		slotWake = t.s.wake
	}
	var stopping <-chan struct{}
	if t.snd.Unlimited {
		stopping = t.e.stopping
	}
	for {
		select {
		case <-tc:
			return endNone
		case <-wake:
			return endNone
		case <-t.e.hardCtx.Done():
			return endCut
		case <-stopping:
			return endStop
		case <-t.readerDone:
			return endReader
		case <-slotWake:
			if !t.s.wanted() {
				return endCut
			}
		}
	}
}

// record records one request and returns its error with its outcome.
func (t *talk) record(p pending, res proto.Result, err error) error {
	if err != nil {
		err = answerError(err)
		if t.e.hardCtx.Err() != nil {
			err = errCut
		}
	}
	first, full := time.Duration(-1), time.Duration(-1)
	if res.FirstByte > 0 {
		first = res.FirstByte
	}
	if res.Full > 0 {
		full = res.Full
	}
	t.sh.Request(metrics.RequestTiming{Intended: !p.at.IsZero(), WindowWait: p.windowWait, Lag: p.lag,
		FirstByte: first, Service: full, Out: p.out, In: res.In}, err)
	return err
}

// errUnanswered is the outcome of a request written and never answered because its connection
// ended first (another request failed, the server closed, or the hard stop).
var errUnanswered = fmt.Errorf("%w: written and never answered, its connection ended first", metrics.ErrCanceled)

// talk runs a windowed conversation (rated or pipelined) on conn and returns what ended it: nil
// when it ended as it should (its count, its hold, a stop or a ramp-down for an unlimited one);
// and the connection's net.Conn from then on (a rated loop hands its socket back as a new one).
func (e *engine) talk(conn net.Conn, sh *metrics.Shard, s *slot) (net.Conn, error) {
	t := e.newTalk(conn, sh, s)
	var rc *rconn
	if t.rated {
		rc = e.loopConn(t, conn) // a rated loop's when it can (rloop_linux.go)
	}
	if t.snd.TotalRate != nil {
		t.box = e.dispatch.join(rc)
		defer e.dispatch.leave(t.box)
	}
	var why end
	var err error
	if rc != nil {
		why, err = rc.run()
		conn = rc.conn(conn)
	} else if t.snd.Pipeline > 1 && t.x.Reads() {
		why, err = t.pipelined()
	} else {
		why, err = t.oneByOne()
	}
	return conn, t.result(why, err)
}

// talkDetached hands the conversation on conn to a rated loop, when one can run it, and reports
// whether it did: the calling goroutine is then free to end, and then runs, on a goroutine of its
// own, once the conversation ended, with what talk would have returned. A connection that sends
// at a rate so costs no goroutine while it sends (docs/architecture.md "Rated loops").
func (e *engine) talkDetached(conn net.Conn, sh *metrics.Shard, s *slot, then func(net.Conn, error)) bool {
	if !e.cfg.Send.rated() || !e.loopable(conn) {
		return false
	}
	t := e.newTalk(conn, sh, s)
	rc := e.loopConn(t, conn)
	if rc == nil {
		return false
	}
	if t.snd.TotalRate != nil {
		t.box = e.dispatch.join(rc)
	}
	rc.detach(func(why end, err error) {
		if t.box != nil {
			e.dispatch.leave(t.box)
		}
		then(rc.conn(conn), t.result(why, err))
	})
	return true
}

func (e *engine) newTalk(conn net.Conn, sh *metrics.Shard, s *slot) *talk {
	snd := e.cfg.Send
	t := &talk{e: e, conn: conn, sh: sh, s: s, x: e.exchange, snd: snd, rated: snd.rated(), start: time.Now()}
	if snd.Unlimited && e.cfg.Hold > 0 {
		t.holdEnd = t.start.Add(e.holdFor(s))
	}
	return t
}

// result is what the conversation returns, having ended for why with err: nil when it ended as it
// should (its count, its hold, a stop or a ramp-down for an unlimited one).
func (t *talk) result(why end, err error) error {
	if t.rated && t.box == nil {
		t.offerUnsent()
	}
	switch {
	case err != nil:
		return err
	case why == endCut && t.e.hardCtx.Err() != nil:
		return errCut
	case why == endCount, why == endReader, t.snd.Unlimited:
		return nil
	}
	return errCut // stopped before its count
}

// holdFor is how long slot s's connection sends before it closes and the slot opens the next: its
// hold, except for the slot's first connection to send, which sends for a part of it, 1 - frac(k x
// 0.618...) for the slot's place k among all the segments' slots (docs/measurements.md "Requests at
// a rate"). Slots opened together (load.start) would otherwise end their holds together, and
// reconnect together, every hold: a pile-up in which, for a moment, no connection is sending. The
// golden ratio's multiples spread the first ends evenly over one hold for any number of slots,
// slot 0's at the full hold; after them, each slot ends a hold after its last end.
func (e *engine) holdFor(s *slot) time.Duration {
	if s == nil || s.sent.Swap(true) {
		return e.cfg.Hold
	}
	k := s.id*max(e.cfg.Segment.Count, 1) + e.cfg.Segment.Index
	_, frac := math.Modf(float64(k) * (math.Sqrt(5) - 1) / 2)
	return max(time.Duration(float64(e.cfg.Hold)*(1-frac)), time.Millisecond)
}

// offerUnsent counts the requests of a per-connection rate whose intended time came but which
// were never written (the connection ended first): offered, not sent.
func (t *talk) offerUnsent() {
	end := time.Now() // exclusive: a request due at the very end was not due yet
	if !t.holdEnd.IsZero() && t.holdEnd.Before(end) {
		end = t.holdEnd
	}
	if t.snd.Unlimited {
		// Nothing is due after the stop, though its answers may have been awaited past it.
		select {
		case <-t.e.stopping:
			if stop := t.e.epoch.Add(time.Duration(t.e.stopAt.Load())); stop.Before(end) {
				end = stop
			}
		default:
		}
	}
	// n = requests intended before end: closed form, then corrected to agree with intended.
	n := max(int64(end.Sub(t.start).Seconds()*t.snd.Rate), 0)
	for n > 0 && !t.intended(n-1).Before(end) {
		n--
	}
	for t.intended(n).Before(end) {
		n++
	}
	if !t.snd.Unlimited {
		n = min(n, int64(t.snd.Count))
	}
	if n > t.next {
		t.sh.Offer(uint64(n - t.next))
	}
}

// handBack returns a total rate's request, taken by due and not written because the connection is
// leaving, to the dispatcher: another connection sends it (docs/measurements.md "Requests at a
// rate"). A per-connection rate's is counted offered and unsent by offerUnsent.
func (t *talk) handBack(at time.Time) {
	if t.box != nil && !at.IsZero() {
		t.box.handBack(at)
	}
}

// take stamps the request due at at as written now: its wait for the window and its lag.
func (t *talk) take(at time.Time) pending {
	w0 := time.Now()
	p := pending{at: at, w0: w0}
	if !at.IsZero() {
		late := w0.Sub(at)
		p.windowWait = min(t.busy.since(at), late)
		p.lag = late - p.windowWait
	}
	t.next++
	if t.rated && t.box == nil {
		t.sh.Offer(1)
	}
	return p
}

// oneByOne is the conversation with one request outstanding at most: write, read the answer,
// next. A request due while the answer was awaited waited for the window until it came.
func (t *talk) oneByOne() (end, error) {
	e := t.e
	for {
		at, why := t.due()
		if why != endNone {
			return why, nil
		}
		if err := t.conn.SetDeadline(time.Now().Add(e.cfg.IOTimeout)); err != nil {
			t.handBack(at)
			return endNone, err
		}
		if e.hardCtx.Err() != nil {
			// The hard stop's past deadline may have been set just before this one replaced it.
			t.handBack(at)
			return endCut, nil
		}
		p := t.take(at)
		n, err := t.x.Write(t.conn)
		p.out = n
		if err != nil || !t.x.Reads() {
			if err != nil {
				return endNone, t.record(p, proto.Result{}, err)
			}
			t.record(p, proto.Result{}, nil)
			continue
		}
		// A reader only while an answer is awaited: an idle rated connection holds no buffer.
		r := e.readers.Get().(*proto.Reader)
		r.Reset(t.conn)
		res, err := t.x.Read(r, p.w0, nil)
		r.Reset(nil)
		e.readers.Put(r)
		// One at a time, the window is full from the write until the answer.
		t.busy.add(p.w0, time.Now())
		if err := t.record(p, res, err); err != nil {
			return endNone, err
		}
		if res.Closed {
			return endReader, nil
		}
	}
}

// pipelined is the conversation with up to Pipeline requests outstanding: this goroutine writes
// each request when it is due and the window has room, a reader goroutine reads the answers in
// order and frees the window.
func (t *talk) pipelined() (end, error) {
	e := t.e
	w := t.snd.Pipeline
	t.slots = make(chan struct{}, w)
	t.inflight = make(chan pending, w)
	t.readerDone = make(chan struct{})
	go t.reader()
	why, err := t.writer()
	close(t.inflight)
	<-t.readerDone
	// Written and never answered: the reader stopped first.
	for p := range t.inflight {
		t.sh.Request(metrics.RequestTiming{Intended: !p.at.IsZero(), WindowWait: p.windowWait, Lag: p.lag,
			FirstByte: -1, Service: -1, Out: p.out}, errUnanswered)
	}
	if t.readErr != nil {
		err = t.readErr // the first failure
	}
	if err == nil && e.hardCtx.Err() != nil && why != endCount {
		return endCut, nil
	}
	return why, err
}

// writer writes the requests as they come due and the window has room.
func (t *talk) writer() (end, error) {
	e := t.e
	for {
		at, why := t.due()
		if why != endNone {
			return why, nil
		}
		select {
		case t.slots <- struct{}{}:
		default:
			var stopping <-chan struct{}
			if t.snd.Unlimited {
				stopping = e.stopping
			}
			blocked := time.Now()
			select {
			case t.slots <- struct{}{}:
				t.busy.add(blocked, time.Now())
			case <-t.readerDone:
				t.handBack(at)
				return endReader, nil
			case <-e.hardCtx.Done():
				t.handBack(at)
				return endCut, nil
			case <-stopping:
				t.handBack(at)
				return endStop, nil
			}
		}
		if err := t.conn.SetWriteDeadline(time.Now().Add(e.cfg.IOTimeout)); err != nil {
			<-t.slots
			t.handBack(at)
			return endNone, err
		}
		// The hard stop's, or a failed reader's, past deadline may have been set just before this
		// one replaced it.
		if why := t.cut(false); why != endNone {
			<-t.slots
			t.handBack(at)
			return why, nil
		}
		p := t.take(at)
		t.sent.Add(1)
		n, err := t.x.Write(t.conn)
		p.out = n
		if err != nil {
			<-t.slots
			select {
			case <-t.readerDone:
				// The reader failed first and cut the write: its error is the connection's.
				t.sh.Request(metrics.RequestTiming{Intended: !p.at.IsZero(), WindowWait: p.windowWait, Lag: p.lag,
					FirstByte: -1, Service: -1, Out: p.out}, errUnanswered)
				return endReader, nil
			default:
			}
			return endNone, t.record(p, proto.Result{}, err)
		}
		t.inflight <- p // never blocks: the window bounds it
	}
}

// reader reads the answers in order, frees their places in the window and records them.
func (t *talk) reader() {
	defer func() {
		close(t.readerDone)
		if t.readErr != nil {
			// A write blocked behind the failure (a server that stopped reading) ends now; the
			// writer, finding readerDone closed, knows why.
			t.conn.SetWriteDeadline(time.Unix(1, 0))
		}
	}()
	e := t.e
	r := e.readers.Get().(*proto.Reader)
	r.Reset(t.conn)
	defer func() {
		r.Reset(nil)
		e.readers.Put(r)
	}()
	var done int64
	// Asked once a response is read: a request written since may have its answer buffered already
	// (its count went up before its write began).
	more := func() bool { return t.sent.Load() > done }
	for p := range t.inflight {
		if err := t.conn.SetReadDeadline(p.w0.Add(e.cfg.IOTimeout)); err != nil {
			t.readErr = t.record(p, proto.Result{}, err)
			return
		}
		if e.hardCtx.Err() != nil {
			t.readErr = t.record(p, proto.Result{}, errCut)
			return
		}
		done++
		res, err := t.x.Read(r, p.w0, more)
		<-t.slots
		if err := t.record(p, res, err); err != nil {
			t.readErr = err
			return
		}
		if res.Closed {
			return // the server closes after this answer: the writer stops
		}
	}
}

// busyLog is the times the window held a conversation's writer back, as far back as the oldest
// request not yet written: a request's window_wait is the part of intended -> write during which
// the window was full, the rest (request_lag) is the generator's. Requests due during a target's
// stall all waited for the window, the ones queued behind the stalled one too; requests due
// while the generator itself stalled did not (docs/measurements.md).
type busyLog struct {
	iv    []busyInterval
	total time.Duration // all the busy time so far
}

type busyInterval struct {
	from, to time.Time
	before   time.Duration // busy time before this interval
}

func (b *busyLog) add(from, to time.Time) {
	if d := to.Sub(from); d > 0 {
		b.iv = append(b.iv, busyInterval{from, to, b.total})
		b.total += d
	}
}

// since is the busy time after at. Times asked for never decrease (requests are written in the
// order of their intended times), so intervals over before at are dropped.
func (b *busyLog) since(at time.Time) time.Duration {
	i := 0
	for i < len(b.iv) && !b.iv[i].to.After(at) {
		i++
	}
	if i > 0 {
		b.iv = b.iv[:copy(b.iv, b.iv[i:])]
	}
	if len(b.iv) == 0 {
		return 0
	}
	first := b.iv[0]
	return b.total - first.before - min(max(at.Sub(first.from), 0), first.to.Sub(first.from))
}

// dispatcher hands a total rate's intended request times round-robin to the connections sending
// at that moment (docs/measurements.md "Requests at a rate").
type dispatcher struct {
	mu    sync.Mutex
	boxes []*mailbox
	rr    int
}

// mailbox holds the intended times given to one connection and not yet taken.
type mailbox struct {
	mu   sync.Mutex
	q    []time.Time
	head int
	gone bool // left the round: times given now go back to the dispatcher
	wake chan struct{}
	rc   *rconn // the connection's rated loop, told instead of wake (nil: none)
	at   int    // index in dispatcher.boxes, under dispatcher.mu
}

// join puts a connection in the round: rc is its rated loop's, nil when its goroutine runs it.
func (d *dispatcher) join(rc *rconn) *mailbox {
	b := &mailbox{rc: rc}
	if rc == nil {
		b.wake = make(chan struct{}, 1)
	}
	d.mu.Lock()
	b.at = len(d.boxes)
	d.boxes = append(d.boxes, b)
	d.mu.Unlock()
	return b
}

// leave takes b out of the round. The times still in it (due, not yet written: the connection's
// hold or slot ended, or it failed) go to the connections still sending, late, their latency
// still counted from their intended time; with none left they stay offered and unsent.
func (d *dispatcher) leave(b *mailbox) {
	d.mu.Lock()
	last := d.boxes[len(d.boxes)-1]
	d.boxes[b.at], last.at = last, b.at
	d.boxes[len(d.boxes)-1] = nil
	d.boxes = d.boxes[:len(d.boxes)-1]
	d.mu.Unlock()
	b.mu.Lock()
	left := b.q[b.head:]
	b.q, b.head, b.gone = nil, 0, true
	b.mu.Unlock()
	for _, at := range left {
		if !d.give(at) {
			return
		}
	}
}

// giveStep, set by tests only, runs between a time's mailbox being picked and the time being put
// in it: a test makes the connection leave there.
var giveStep func(*mailbox)

// put puts at in b, and reports false when b has left the round (picked by give or giveAll just
// before its connection left): the caller gives at to another. by is the rated loop that calls it
// (the one stepping the pump), nil from any other goroutine.
func (b *mailbox) put(at time.Time, by *rloop) bool {
	if giveStep != nil {
		giveStep(b)
	}
	b.mu.Lock()
	if b.gone {
		b.mu.Unlock()
		return false
	}
	// In order of intended time: a time handed back by a connection leaving may be earlier than
	// the times handed ahead to this one (popDue looks at the head only).
	i := len(b.q)
	for i > b.head && b.q[i-1].After(at) {
		i--
	}
	b.q = slices.Insert(b.q, i, at)
	b.mu.Unlock()
	if b.rc != nil {
		b.rc.given(at, by)
		return true
	}
	select {
	case b.wake <- struct{}{}:
	default:
	}
	return true
}

// handBack returns at, taken from b and not written (the connection is leaving), to the front of
// b's queue: leave then gives it to a connection still sending.
func (b *mailbox) handBack(at time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.gone {
		return // not reached: a connection hands back before it leaves
	}
	if b.head > 0 {
		b.head--
		b.q[b.head] = at
		return
	}
	b.q = append(b.q, time.Time{})
	copy(b.q[1:], b.q)
	b.q[0] = at
}

// give hands at to the next connection in the round; false when none is sending.
func (d *dispatcher) give(at time.Time) bool {
	d.mu.Lock()
	if len(d.boxes) == 0 {
		d.mu.Unlock()
		return false
	}
	d.rr++
	if d.rr >= len(d.boxes) {
		d.rr = 0
	}
	b := d.boxes[d.rr]
	d.mu.Unlock()
	if !b.put(at, nil) {
		return d.give(at) // b left after it was picked: the next one
	}
	return true
}

// popDue takes the earliest time in b once it came (not after now) and, when stop is not zero
// (the run stops), only when it is before stop: times handed ahead and due after the stop are
// never sent. Otherwise next is the earliest time, when it can still come due (zero: none).
func (b *mailbox) popDue(now, stop time.Time) (at, next time.Time, ok bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.head == len(b.q) {
		return time.Time{}, time.Time{}, false
	}
	h := b.q[b.head]
	if !stop.IsZero() && !h.Before(stop) {
		return time.Time{}, time.Time{}, false
	}
	if h.After(now) {
		return time.Time{}, h, false
	}
	b.advance()
	return h, time.Time{}, true
}

// advance drops the head. The times taken are reclaimed when the queue empties and, since times
// handed ahead keep it from emptying for a whole run, when they are half of it: otherwise it
// would grow by every time ever given.
func (b *mailbox) advance() {
	b.head++
	switch {
	case b.head == len(b.q):
		b.q, b.head = b.q[:0], 0
	case b.head >= 32 && 2*b.head >= len(b.q):
		b.q, b.head = b.q[:copy(b.q, b.q[b.head:])], 0
	}
}

// stopTime is when the run stopped (zero: it has not). Stored before stopping closes, and read
// once the conversation found the time it would write due: a time due before it was read is
// before the stop, or equal to it.
func (e *engine) stopTime() time.Time {
	if s := e.stopAt.Load(); s != 0 {
		return e.epoch.Add(time.Duration(s))
	}
	return time.Time{}
}

// dispatchRequests runs a total rate: every request of the shard's segment of the rate ramp is
// handed to a sending connection up to dispatchAhead before its intended time, and offered once
// that time came, until the ramp or the run ends. It works in batches (pump.step): once awake it
// hands out every request due within dispatchAhead, and sleeps until half of that window is used
// (docs/measurements.md "Requests at a rate"). A connection keeps the times handed to it and
// writes each when it is due: a rated loop sleeps until the earliest of its connections' times
// (rloop_linux.go), so a request costs no wake-up of one thread by another when the loop is awake
// or asleep until its next time. (Handed out only once due, every request was a dispatcher
// wake-up, then a loop wake-up, each waiting for a core: request_intended p99 was 20x the C
// reference's at 30,000 requests/s.) A time handed ahead is never sent after the stop
// (mailbox.popDue), and is offered only if it came before the stop.
//
// This goroutine steps the pump until a rated loop takes it over (pump.takeOver, when the loops
// start): the loop then steps it as part of its own work, when it is awake anyway or at the
// pump's time, and this goroutine only waits for the stop. Stepped here, the pump woke a thread
// 500 times a second besides the loop's, each a chance to take the core the target needed
// (docs/measurements.md "The loop's thread"). The stop is done here in either case, under the
// pump's lock, before Run waits for the connections.
func (e *engine) dispatchRequests(start time.Time) {
	pm := &e.pump
	p := newPacer()
	defer p.close()
	p.also = pm.init(e, start)
	for {
		pm.mu.Lock()
		if pm.byLoop {
			pm.mu.Unlock()
			break
		}
		if pumpStep != nil {
			pumpStep(false)
		}
		wake := pm.step(time.Now(), nil)
		done := pm.done
		pm.mu.Unlock()
		if done {
			return
		}
		if !p.until(wake, e.stopping) {
			break // the stop, or a loop took the pump over
		}
	}
	<-e.stopping
	pm.mu.Lock()
	pm.stop()
	pm.mu.Unlock()
}

// pumpStep, set by tests only, runs before each step of a total rate's pump: byLoop says whether
// a rated loop steps it (false: the dispatcher's goroutine).
var pumpStep func(byLoop bool)

// pump is a total rate's dispatch between its steps. One goroutine at a time steps it, under mu:
// the dispatcher's goroutine, or the rated loop that took it over.
type pump struct {
	mu    sync.Mutex
	e     *engine
	start time.Time
	it    *schedule.SegmentedArrivals
	held  time.Time // the next time, taken from it and not handed out yet (has)
	has   bool
	ended bool // it has no time left
	done  bool // every time is handed out and offered, or the run stopped
	k     uint64
	batch []time.Time
	picks []*mailbox
	ahead []time.Time // handed out, not offered yet, in order
	// byLoop: a rated loop steps the pump (false: the dispatcher's goroutine); taken (takenChan)
	// is closed when it took the pump over.
	byLoop bool
	taken  chan struct{}
}

// takenChan is taken, made by whichever comes first of the dispatcher's goroutine and the loop
// taking the pump over. Under mu.
func (pm *pump) takenChan() chan struct{} {
	if pm.taken == nil {
		pm.taken = make(chan struct{})
	}
	return pm.taken
}

// init sets the pump up; it returns taken.
func (pm *pump) init(e *engine, start time.Time) <-chan struct{} {
	pm.mu.Lock()
	defer pm.mu.Unlock()
	pm.e, pm.start, pm.it = e, start, e.cfg.Send.TotalRate.SegmentArrivals(e.cfg.Segment)
	return pm.takenChan()
}

// takeOver makes the calling rated loop step the pump from now on (stepFor), and reports whether
// it did: false when the pump was taken over already, or is done.
func (pm *pump) takeOver() bool {
	pm.mu.Lock()
	defer pm.mu.Unlock()
	if pm.byLoop || pm.done {
		return false
	}
	pm.byLoop = true
	close(pm.takenChan())
	return true
}

// stepFor is loop l's step of the pump at now: the time of its next step (zero: none, the pump is
// done).
func (pm *pump) stepFor(now time.Time, l *rloop) time.Time {
	pm.mu.Lock()
	defer pm.mu.Unlock()
	if pm.e == nil && !pm.done {
		// Not set up yet: the dispatcher's goroutine has not started. It steps the pump at once;
		// the loop looks again half a batch later.
		return now.Add(dispatchAhead / 2)
	}
	if pumpStep != nil {
		pumpStep(true)
	}
	return pm.step(now, l)
}

// step hands out every time due within dispatchAhead of now, and offers those that came; it
// returns when to step again (zero once the pump is done). by is the rated loop stepping it (nil:
// the dispatcher's goroutine).
func (pm *pump) step(now time.Time, by *rloop) time.Time {
	if pm.done {
		return time.Time{}
	}
	for !pm.ended {
		if !pm.has {
			off, ok := pm.it.Next()
			if !ok {
				pm.ended = true
				break
			}
			pm.held, pm.has = pm.start.Add(off), true
		}
		if pm.held.After(now.Add(dispatchAhead)) {
			pm.flush(by)
			pm.offer(now.Add(1))
			// Every request due within the window is handed out: step again when half of it is used.
			return pm.held.Add(-dispatchAhead / 2)
		}
		if len(pm.batch) == maxDispatchBatch {
			pm.flush(by)
			pm.offer(now.Add(1))
		}
		pm.batch = append(pm.batch, pm.held)
		pm.has = false
	}
	// The ramp ended: the last times are offered when they come, unless the run stops first.
	pm.flush(by)
	pm.offer(now.Add(1))
	if len(pm.ahead) > 0 {
		return pm.ahead[len(pm.ahead)-1]
	}
	pm.done = true
	return time.Time{}
}

// stop ends the pump at the run's stop: the times handed out and due before it are offered
// (each connection keeps those due after it unsent).
func (pm *pump) stop() {
	if pm.done {
		return
	}
	pm.flush(nil)
	pm.offer(pm.e.stopTime())
	pm.done = true
}

// offer counts the times handed out that came before until (exclusive), and never one at or
// after the run's stop.
func (pm *pump) offer(until time.Time) {
	if s := pm.e.stopTime(); !s.IsZero() && s.Before(until) {
		until = s
	}
	n := 0
	for n < len(pm.ahead) && pm.ahead[n].Before(until) {
		n++
	}
	if n > 0 {
		pm.k++
		pm.e.rec.Shard(pm.k).Offer(uint64(n))
		pm.ahead = pm.ahead[:copy(pm.ahead, pm.ahead[n:])]
	}
}

// flush hands the batch out; by is the rated loop stepping the pump (nil: the dispatcher's goroutine).
func (pm *pump) flush(by *rloop) {
	if len(pm.batch) == 0 {
		return
	}
	pm.picks = pm.e.dispatch.giveAll(pm.batch, pm.picks, by)
	pm.ahead = append(pm.ahead, pm.batch...)
	pm.batch = pm.batch[:0]
}

// dispatchAhead is how long before its intended time a total rate's request is handed to a
// connection.
const dispatchAhead = 4 * time.Millisecond

// maxDispatchBatch bounds the requests the dispatcher hands out at once (a dispatcher far behind
// its schedule would otherwise gather them all before any is given).
const maxDispatchBatch = 256

// giveAll hands the times of ats, in order, to the connections next in the round, taking the
// round's lock once; picks is scratch space, returned for reuse. With no connection sending, the
// times are given to none (offered, not sent). by is the rated loop stepping the pump (nil: the
// dispatcher's goroutine).
func (d *dispatcher) giveAll(ats []time.Time, picks []*mailbox, by *rloop) []*mailbox {
	picks = picks[:0]
	d.mu.Lock()
	if n := len(d.boxes); n > 0 {
		for range ats {
			d.rr++
			if d.rr >= n {
				d.rr = 0
			}
			picks = append(picks, d.boxes[d.rr])
		}
	}
	d.mu.Unlock()
	for i, b := range picks {
		if !b.put(ats[i], by) {
			// b left between its pick and now, after it gave back what it held: this time goes to
			// a connection still sending (with none, it stays offered and unsent, as in leave).
			d.give(ats[i])
		}
	}
	clear(picks) // hold no connection's mailbox past its end
	return picks
}
