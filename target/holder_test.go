//go:build linux

package target

import (
	"io"
	"net"
	"runtime"
	"testing"
	"time"
)

// TestHolder: sink and hold connections are kept without a goroutine each; what clients send is
// read and counted, a client's close is noticed, and Close ends every connection still held.
func TestHolder(t *testing.T) {
	for _, mode := range []Mode{ModeSink, ModeHold} {
		t.Run(string(mode), func(t *testing.T) {
			guardFDs(t)
			s := start(t, Config{Mode: mode})
			if s.holder == nil {
				t.Fatal("no holder for a plain sink or hold target")
			}
			base := runtime.NumGoroutine()
			const n = 300
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
			// A goroutine per connection would add n; allow the runtime a few of its own.
			if g := runtime.NumGoroutine(); g > base+10 {
				t.Errorf("%d goroutines with %d connections held, %d before", g, n, base)
			}
			// Half the clients close: the holder notices and counts them.
			for _, c := range conns[:n/2] {
				c.Close()
			}
			waitFor(t, "the closed half counted", func() bool { return s.Stats().Closed == n/2 })
			// Close ends the other half: each client reads the end of the stream.
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
	}
}

// TestHolderNotUsed: modes with work of their own, TLS and close-first keep a goroutine each.
func TestHolderNotUsed(t *testing.T) {
	cert, key, err := SelfSigned([]string{"127.0.0.1"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	tc, err := TLSConfig(cert, key)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		cfg  Config
	}{
		{"echo", Config{Mode: ModeEcho}},
		{"http", Config{Mode: ModeHTTP}},
		{"sink over TLS", Config{Mode: ModeSink, TLS: tc}},
		{"hold, closing first", Config{Mode: ModeHold, CloseFirst: true, CloseAfter: 4}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if s := start(t, tt.cfg); s.holder != nil {
				t.Errorf("a holder for %+v", tt.cfg)
			}
		})
	}
}

// TestHolderStorm: connections that clients close (FIN or RST) as soon as they are connected,
// as a connection storm does, are accepted in bursts by the raw accept loop, seen closed by the
// early read and counted exactly; none is left open, no descriptor is left behind.
func TestHolderStorm(t *testing.T) {
	for _, tt := range []struct {
		name string
		rst  bool
	}{{"fin", false}, {"rst", true}} {
		t.Run(tt.name, func(t *testing.T) {
			guardFDs(t)
			s := start(t, Config{Mode: ModeSink, Listen: []string{"127.0.0.1:0", "127.0.0.1:0"}})
			const n = 2000
			var d net.Dialer
			for i := range n {
				c, err := d.Dial("tcp", s.Addrs()[i%2])
				if err != nil {
					t.Fatalf("dial %d: %v", i, err)
				}
				if tt.rst {
					c.(*net.TCPConn).SetLinger(0)
				}
				c.Close()
			}
			waitFor(t, "every connection accepted and closed", func() bool {
				st := s.Stats()
				return st.Accepted == n && st.Closed == n
			})
			if st := s.Stats(); st.Active != 0 || st.AcceptErrors != 0 || st.IdleClosed != 0 {
				t.Errorf("stats %+v, want none active, no accept errors, none idle", st)
			}
		})
	}
}
