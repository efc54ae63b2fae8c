package engine

import (
	"context"
	"fmt"
	"net"
	"time"

	"github.com/portstorm/portstorm/loadgen/dial"
	"github.com/portstorm/portstorm/loadgen/metrics"
	"github.com/portstorm/portstorm/loadgen/ports"
)

// Held connections. A connection to be kept open for the plan's hold, once its requests are done,
// is parked: no goroutine, no timer, and (closed with FIN or RST) no net.Conn either, only its
// descriptor. Every hold lasts the same connection.hold, so holds end in the order they began:
// the parked connections form one queue, and one reaper goroutine sleeps until the head's hold
// ends. The stop, or a slot's ramp-down, takes a connection out of the middle of the queue.
// Whatever takes it out, a new goroutine closes it and carries on (the slot's next connection,
// or the arrival's end). With tens of thousands held, a goroutine each would cost its stack and
// a timer each its runtime record: several KiB, against about 100 bytes for a parked record.

// held is an established connection between its requests and its close: what finish needs.
type held struct {
	conn      net.Conn  // nil while parked as a bare descriptor
	bare      dial.Bare // the connection then
	dst       uint32    // index in Config.Destinations
	closeMode dial.CloseMode
	port      uint16 // local port (0: not known), read once when the connection opened
	state     uint8  // heldNew, heldQueued or heldTaken; under parkMu
	websocket bool   // upgraded: it ends with the closing handshake
	pc        ports.Conn
	sh        *metrics.Shard
	s         *slot
	t1        time.Time     // established
	ends      time.Duration // since the engine's epoch: when the hold ends
	then      func()        // runs once the connection ended
	prev      *held         // the queue of parked connections
	next      *held
}

// finish closes a connection in its close mode (RST once the hard stop came) and records its end;
// err is what ended its conversation, if anything did.
func (e *engine) finish(h *held, err error) {
	if h.websocket && err == nil && e.hardCtx.Err() == nil {
		err = e.closeWebSocket(h)
	}
	conn, closeMode := h.conn, h.closeMode
	dst := e.cfg.Destinations[h.dst]
	hard := e.hardCtx.Err() != nil
	mode := closeMode
	if hard {
		mode = dial.CloseRST
	}
	var closeErr error
	// A close that is one close(2) (bare, FIN, RST) frees the port at once: the connection is
	// counted out (the observatory's port tables, the open count) before it, so that whatever
	// takes the port next is never counted open beside it. Half and server close wait for the
	// peer's FIN first, the connection still open: they are counted out after (Closed, Ended).
	left := conn == nil || (mode != dial.CloseHalf && mode != dial.CloseServer)
	if left {
		if e.cfg.Ports != nil {
			e.cfg.Ports.Closing(&h.pc)
		}
		h.sh.Leave()
	}
	tc := time.Now()
	switch {
	case conn == nil:
		closeErr = h.bare.Close(mode)
	case mode == dial.CloseHalf || mode == dial.CloseServer:
		// Waiting for the peer's FIN is a wait like any other: the hard stop ends it, resetting
		// the connection under the wait (a deadline set from here could be overwritten by the
		// wait's own, if the stop came just before it began).
		stop := context.AfterFunc(e.hardCtx, func() { dial.Close(conn, dial.CloseRST, time.Time{}) })
		closeErr = dial.Close(conn, mode, time.Now().Add(e.cfg.IOTimeout))
		if !stop() {
			hard = true
		}
	default:
		closeErr = dial.Close(conn, mode, time.Now().Add(e.cfg.IOTimeout))
	}
	if err == nil {
		err = closeErr
	}
	t2 := time.Now()
	if closeStep != nil {
		closeStep(h)
	}
	if e.releaser != nil && h.port != 0 {
		e.releaser.Release(dst, h.port)
	}
	if e.cfg.Ports != nil {
		// The client holds TIME_WAIT when it sent the first FIN: fin and half, unless cut with RST.
		e.cfg.Ports.Closed(h.pc, tc, t2, !hard && (closeMode == dial.CloseFIN || closeMode == dial.CloseHalf))
	}
	if err != nil && e.hardCtx.Err() != nil {
		err = fmt.Errorf("%w: %w", metrics.ErrCanceled, err)
	}
	if left {
		h.sh.Ended(t2, t2.Sub(h.t1), err)
	} else {
		h.sh.Closed(t2, t2.Sub(h.t1), err)
	}
}

// closeStep, set by tests only, runs in finish once close(2) returned and before the end is
// recorded: where a descheduled closing goroutine lets the next connect take the freed port.
var closeStep func(h *held)

// parkStep, set by tests only, runs at each step of park (0: before it queues or publishes h, 1:
// between the two, 2: after both), so that a test can land a ramp-down or a stop in each window.
var parkStep func(step int)

// The states of a held connection, changed under parkMu only.
const (
	heldNew    uint8 = iota // not queued yet
	heldQueued              // in the queue of holds
	heldTaken               // taken out (or never queued): its finish is under way
)

// park queues h for the plan's hold; then runs once it has been closed.
func (e *engine) park(h *held, then func()) {
	h.then = then
	// Closed with FIN or RST, a held connection needs only its descriptor.
	if h.closeMode == dial.CloseFIN || h.closeMode == dial.CloseRST {
		if b, ok := dial.Detach(h.conn); ok {
			h.bare, h.conn = b, nil
		}
	}
	if parkStep != nil {
		parkStep(0)
	}
	// Queued before it is published to its slot: whoever finds h (the slot's ramp-down, the
	// reaper, the stop) finds it in the queue, and takes it out under the same lock.
	e.parkMu.Lock()
	if h.state != heldNew {
		e.parkMu.Unlock()
		return
	}
	h.state = heldQueued
	e.parked.Add(1)
	// Read under the lock, so that the queue stays in the order of ends.
	h.ends = time.Since(e.epoch) + e.cfg.Hold
	h.prev = e.parkTail
	if e.parkTail != nil {
		e.parkTail.next = h
	} else {
		e.parkHead = h
	}
	e.parkTail = h
	first := e.parkHead == h
	e.parkMu.Unlock()
	if parkStep != nil {
		parkStep(1)
	}
	if h.s != nil {
		h.s.held.Store(h)
	}
	if first {
		select {
		case e.parkWake <- struct{}{}:
		default:
		}
	}
	if parkStep != nil {
		parkStep(2)
	}
	// A stop or a ramp-down that came before h was published did not see it.
	if e.cut(h.s) {
		e.unpark(h)
	}
}

// take marks h taken out and unlinks it from the queue; false when it was taken already. The
// caller holds parkMu.
func (e *engine) take(h *held) bool {
	if h.state == heldTaken {
		return false
	}
	if h.state == heldQueued {
		e.parked.Add(-1)
		if h.prev != nil {
			h.prev.next = h.next
		} else {
			e.parkHead = h.next
		}
		if h.next != nil {
			h.next.prev = h.prev
		} else {
			e.parkTail = h.prev
		}
		h.prev, h.next = nil, nil
	}
	h.state = heldTaken
	return true
}

// unpark takes h out of its hold, once, and closes it on a goroutine of its own.
func (e *engine) unpark(h *held) {
	e.parkMu.Lock()
	ok := e.take(h)
	e.parkMu.Unlock()
	if ok {
		e.release(h)
	}
}

// release finishes a connection taken out of its hold, on a goroutine of its own; a WebSocket
// one, whose closing handshake waits for the server, on one of the closers.
func (e *engine) release(h *held) {
	if h.s != nil {
		h.s.held.CompareAndSwap(h, nil)
	}
	if h.websocket {
		e.closeLater(h)
		return
	}
	go func() {
		e.finish(h, nil)
		h.then()
	}()
}

// maxClosers bounds the goroutines that run held WebSocket connections' closing handshakes. A
// ramp-down or a stop releases thousands at once, and each handshake waits for the server's close
// frame (a loaded server takes seconds): a goroutine and a net.Conn each, about 8 KiB, would make
// the generator's peak memory several times its holding one (docs/measurements.md "WebSocket").
// Queued, a connection waiting for its turn costs nothing more than it did parked. A var for
// tests.
var maxClosers = 256

// closingStep, set by tests only, is told the closers running each time one takes a connection.
var closingStep func(closers int)

// closeLater queues h for the closers, starting one if fewer than maxClosers run.
func (e *engine) closeLater(h *held) {
	e.closeMu.Lock()
	e.closing = append(e.closing, h)
	start := e.closers < maxClosers
	if start {
		e.closers++
		e.bg.Add(1)
	}
	e.closeMu.Unlock()
	if start {
		go e.closer()
	}
}

// closer finishes queued connections, oldest first, until none is left; what comes after each
// (the slot's next connection, the arrival's end) carries on on a goroutine of its own.
func (e *engine) closer() {
	defer e.bg.Done()
	for {
		e.closeMu.Lock()
		if len(e.closing) == 0 {
			e.closing = nil
			e.closers--
			e.closeMu.Unlock()
			return
		}
		h := e.closing[0]
		e.closing[0] = nil
		e.closing = e.closing[1:]
		n := e.closers
		e.closeMu.Unlock()
		if closingStep != nil {
			closingStep(n)
		}
		e.finish(h, nil)
		go h.then()
	}
}

// unparkAll ends every hold: the run is stopping.
func (e *engine) unparkAll() {
	e.parkMu.Lock()
	var all []*held
	for h := e.parkHead; h != nil; h = e.parkHead {
		e.take(h)
		all = append(all, h)
	}
	e.parkMu.Unlock()
	for _, h := range all {
		e.release(h)
	}
}

// reap ends the holds as they expire, head of the queue first, until the run stops (the stop
// ends the rest itself). An expired head is taken out under the lock it was found under, so each
// turn either takes one out or sleeps: the reaper cannot spin on a connection already taken.
func (e *engine) reap() {
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		e.parkMu.Lock()
		h := e.parkHead
		var wait time.Duration
		if h != nil {
			if wait = h.ends - time.Since(e.epoch); wait <= 0 {
				e.take(h)
			}
		}
		e.parkMu.Unlock()
		switch {
		case h == nil:
			select {
			case <-e.parkWake:
			case <-e.stopping:
				return
			}
		case wait <= 0:
			e.release(h)
		default:
			t.Reset(wait)
			select {
			case <-t.C:
			case <-e.parkWake:
				// A new head can only end later than the old one, but the old one may have been
				// taken out: look again. (Since Go 1.23 a stopped timer's channel holds nothing.)
				t.Stop()
			case <-e.stopping:
				return
			}
		}
	}
}
