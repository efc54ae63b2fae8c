package engine

import (
	"fmt"
	"net"
	"sync/atomic"
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
	port      uint16       // local port (0: not known), read once when the connection opened
	state     atomic.Int32 // 0 parked, 1 taken out (by the reaper, a stop or the slot)
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
	conn, closeMode := h.conn, h.closeMode
	dst := e.cfg.Destinations[h.dst]
	hard := e.hardCtx.Err() != nil
	mode := closeMode
	if hard {
		mode = dial.CloseRST
	}
	var closeErr error
	tc := time.Now()
	if conn == nil {
		closeErr = h.bare.Close(mode)
	} else {
		closeErr = dial.Close(conn, mode, time.Now().Add(e.cfg.IOTimeout))
	}
	if err == nil {
		err = closeErr
	}
	t2 := time.Now()
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
	h.sh.Closed(t2, t2.Sub(h.t1), err)
}

// park queues h for the plan's hold; then runs once it has been closed.
func (e *engine) park(h *held, then func()) {
	h.then = then
	// Closed with FIN or RST, a held connection needs only its descriptor.
	if h.closeMode == dial.CloseFIN || h.closeMode == dial.CloseRST {
		if b, ok := dial.Detach(h.conn); ok {
			h.bare, h.conn = b, nil
		}
	}
	if h.s != nil {
		h.s.held.Store(h)
	}
	e.parkMu.Lock()
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
	if first {
		select {
		case e.parkWake <- struct{}{}:
		default:
		}
	}
	// A stop or a ramp-down that came before h was queued did not see it.
	if e.cut(h.s) {
		e.unpark(h)
	}
}

// unpark takes h out of its hold, once, and closes it on a goroutine of its own.
func (e *engine) unpark(h *held) {
	if !h.state.CompareAndSwap(0, 1) {
		return
	}
	e.parkMu.Lock()
	if h.prev != nil {
		h.prev.next = h.next
	} else if e.parkHead == h {
		e.parkHead = h.next
	}
	if h.next != nil {
		h.next.prev = h.prev
	} else if e.parkTail == h {
		e.parkTail = h.prev
	}
	h.prev, h.next = nil, nil
	e.parkMu.Unlock()
	if h.s != nil {
		h.s.held.CompareAndSwap(h, nil)
	}
	go func() {
		e.finish(h, nil)
		h.then()
	}()
}

// unparkAll ends every hold: the run is stopping.
func (e *engine) unparkAll() {
	e.parkMu.Lock()
	var all []*held
	for h := e.parkHead; h != nil; h = h.next {
		all = append(all, h)
	}
	e.parkMu.Unlock()
	for _, h := range all {
		e.unpark(h)
	}
}

// reap ends the holds as they expire, head of the queue first, until the run stops (the stop
// ends the rest itself).
func (e *engine) reap() {
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		e.parkMu.Lock()
		h := e.parkHead
		var wait time.Duration
		if h != nil {
			wait = h.ends - time.Since(e.epoch)
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
			e.unpark(h)
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
