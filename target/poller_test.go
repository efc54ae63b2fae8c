package target

import (
	"io"
	"runtime"
	"testing"
	"time"
)

// TestSinkHoldOnPoller: sink and hold connections served without the epoll holder, a goroutine
// each on Go's poller, as they are off Linux: what clients send is read and counted, a client's
// close is noticed, a silent client is closed at the idle timeout, and Close ends the rest.
func TestSinkHoldOnPoller(t *testing.T) {
	defer func() { noHolder = false }()
	for _, mode := range []Mode{ModeSink, ModeHold} {
		t.Run(string(mode), func(t *testing.T) {
			noHolder = true
			guardFDs(t)
			s := start(t, Config{Mode: mode})
			if s.holder != nil {
				t.Fatal("a holder, with the holder turned off")
			}
			base := runtime.NumGoroutine()
			const n = 40
			conns := make([]io.ReadWriteCloser, n)
			for i := range conns {
				c := dial(t, s.Addrs()[0])
				if _, err := c.Write([]byte("0123456789")); err != nil {
					t.Fatal(err)
				}
				conns[i] = c
			}
			waitFor(t, "every byte read", func() bool { return s.Stats().BytesIn == 10*n })
			if st := s.Stats(); st.Active != n || st.Accepted != n {
				t.Fatalf("stats %+v, want %d accepted and active", st, n)
			}
			// The path taken: a goroutine per connection (the holder's path adds a few in all; a
			// goroutine of an earlier test may end meanwhile, so base is not subtracted exactly).
			if g := runtime.NumGoroutine(); g < base+n-5 {
				t.Errorf("%d goroutines with %d connections held, %d before: not one each", g, n, base)
			}
			for _, c := range conns[:n/2] {
				c.Close()
			}
			waitFor(t, "the closed half counted", func() bool { return s.Stats().Closed == n/2 })
			s.Close()
			for _, c := range conns[n/2:] {
				c.(interface{ SetReadDeadline(time.Time) error }).SetReadDeadline(time.Now().Add(waitLimit))
				if _, err := io.ReadAll(c); err != nil {
					t.Errorf("client read %v, want the end of the stream", err)
				}
				c.Close()
			}
			if st := s.Stats(); st.Closed != n || st.Active != 0 || st.IdleClosed != 0 {
				t.Errorf("stats %+v, want all %d closed, none idle", st, n)
			}
		})
		t.Run(string(mode)+"/idle", func(t *testing.T) {
			noHolder = true
			guardFDs(t)
			s := start(t, Config{Mode: mode, IdleTimeout: 20 * time.Millisecond})
			c := dial(t, s.Addrs()[0])
			defer c.Close()
			// The client never sends nor closes: only the idle timeout ends this read.
			c.SetReadDeadline(time.Now().Add(waitLimit))
			if _, err := io.ReadAll(c); err != nil {
				t.Fatalf("client read %v, want the end of the stream", err)
			}
			waitFor(t, "the idle close counted", func() bool { return s.Stats().IdleClosed == 1 })
		})
	}
}
