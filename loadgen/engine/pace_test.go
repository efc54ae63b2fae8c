package engine

import (
	"runtime"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

// TestPacerNeverEarly: whatever the gap (inside and past the kernel's last stretch), the pacer
// returns at or after the instant asked for, never before: an arrival started early would record
// a negative lateness.
func TestPacerNeverEarly(t *testing.T) {
	p := newPacer()
	defer p.close()
	for _, gap := range []time.Duration{0, time.Microsecond, 50 * time.Microsecond, 300 * time.Microsecond,
		coarseSlack - time.Microsecond, coarseSlack + time.Microsecond, 3 * time.Millisecond} {
		at := time.Now().Add(gap)
		if !p.until(at, nil) {
			t.Fatalf("gap %v: until returned false without a stop", gap)
		}
		if now := time.Now(); now.Before(at) {
			t.Errorf("gap %v: returned %v early", gap, at.Sub(now))
		}
	}
	if !p.fine {
		t.Error("the kernel sleep was given up on a real clock")
	}
}

// TestPacerStop: a stop ends a long wait at once, and says so.
func TestPacerStop(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPacer()
		defer p.close()
		stop := make(chan struct{})
		time.AfterFunc(time.Second, func() { close(stop) })
		start := time.Now()
		if p.until(start.Add(time.Hour), stop) {
			t.Fatal("until reported the instant reached after a stop")
		}
		if d := time.Since(start); d != time.Second {
			t.Errorf("stopped after %v, want 1s", d)
		}
	})
}

// TestPacerStoppedShortWait: a stop that came before a wait shorter than coarseSlack (or one
// already due) is noticed too. A schedule whose gaps are all under it (a total request rate above
// 500/s) otherwise never waited on the timer, never saw the stop, and went on offering requests to
// its end after an abort_on_fail stop.
func TestPacerStoppedShortWait(t *testing.T) {
	p := newPacer()
	defer p.close()
	stop := make(chan struct{})
	close(stop)
	for _, gap := range []time.Duration{-time.Millisecond, 0, 100 * time.Microsecond, coarseSlack - time.Microsecond} {
		if p.until(time.Now().Add(gap), stop) {
			t.Errorf("gap %v: until reported the instant reached after a stop", gap)
		}
	}
}

// TestPacerVirtualTime: in a synctest bubble the kernel sleep does not move the clock time.Now
// reads; the pacer notices and waits on timers alone, so every wait ends exactly on time.
func TestPacerVirtualTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPacer()
		defer p.close()
		for _, gap := range []time.Duration{time.Millisecond, 10 * time.Millisecond, 100 * time.Microsecond} {
			at := time.Now().Add(gap)
			p.until(at, nil)
			if now := time.Now(); !now.Equal(at) {
				t.Errorf("gap %v: woke %v off in virtual time", gap, now.Sub(at))
			}
		}
		if p.fine {
			t.Error("the kernel sleep is still used in virtual time")
		}
	})
}

// TestPacerParksInPoller: in its last stretch before an instant the pacer's goroutine waits parked
// in Go's poller ("IO wait"), not in a system call that keeps its thread's P: other goroutines
// (a rated loop with answers to read) run meanwhile. The stacks of every goroutine are sampled
// while the pacer waits, until one shows it parked (at most 200 waits).
func TestPacerParksInPoller(t *testing.T) {
	p := newPacer()
	defer p.close()
	ids := make(chan string, 1)
	done := make(chan struct{})
	seen := make(chan bool, 1)
	go func() {
		id := <-ids
		buf := make([]byte, 1<<20)
		for {
			select {
			case <-done:
				seen <- false
				return
			default:
			}
			n := runtime.Stack(buf, true)
			for g := range strings.SplitSeq(string(buf[:n]), "\n\n") {
				if strings.HasPrefix(g, "goroutine "+id+" [IO wait") {
					seen <- true
					return
				}
			}
		}
	}()
	ids <- goroutineID()
	parked := false
	for range 200 {
		p.until(time.Now().Add(coarseSlack-100*time.Microsecond), nil)
		select {
		case parked = <-seen:
		default:
			continue
		}
		break
	}
	close(done)
	if !parked {
		parked = <-seen
	}
	if !parked {
		t.Error("the pacer's goroutine was never seen parked in the poller while it waited")
	}
	if !p.fine {
		t.Error("the kernel timer was given up on a real clock")
	}
}

// goroutineID is the calling goroutine's number, as runtime.Stack prints it.
func goroutineID() string {
	var b [64]byte
	f := strings.Fields(string(b[:runtime.Stack(b[:], false)]))
	return f[1]
}
