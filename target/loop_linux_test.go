package target

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestLoopServes: echo and http connections without TLS are served by the epoll loops, with no
// goroutine each; under TLS, or with the loops turned off, they keep a goroutine each.
func TestLoopServes(t *testing.T) {
	serverConf, _ := testTLS(t)
	for _, tc := range []struct {
		name  string
		cfg   Config
		off   bool
		loops bool
	}{
		{"echo", Config{Mode: ModeEcho}, false, true},
		{"http", Config{Mode: ModeHTTP}, false, true},
		{"echo closing first", Config{Mode: ModeEcho, CloseFirst: true, CloseAfter: 10}, false, true},
		{"echo over TLS", Config{Mode: ModeEcho, TLS: serverConf}, false, false},
		{"http over TLS", Config{Mode: ModeHTTP, TLS: serverConf}, false, false},
		{"sink", Config{Mode: ModeSink}, false, false},
		{"echo, loops off", Config{Mode: ModeEcho}, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			defer func(v bool) { noLoop = v }(noLoop)
			noLoop = tc.off
			if s := start(t, tc.cfg); (s.loops != nil) != tc.loops {
				t.Errorf("loops %v, want %v", s.loops != nil, tc.loops)
			}
		})
	}
	t.Run("no goroutine per connection", func(t *testing.T) {
		guardFDs(t)
		s := start(t, Config{Mode: ModeEcho})
		base := runtime.NumGoroutine()
		const n = 300
		conns := make([]*net.TCPConn, n)
		for i := range conns {
			conns[i] = dial(t, s.Addrs()[0])
			if err := ping(conns[i], []byte("0123456789")); err != nil {
				t.Fatal(err)
			}
		}
		if g := runtime.NumGoroutine(); g > base+10 {
			t.Errorf("%d goroutines with %d connections open, %d before", g, n, base)
		}
		for _, c := range conns {
			c.Close()
		}
		waitFor(t, "every close counted", func() bool { return s.Stats().Closed == n })
	})
}

// TestOnGoroutines runs the echo and http tests with the loops off: the path off Linux and under
// TLS, which the other tests no longer take on Linux.
func TestOnGoroutines(t *testing.T) {
	defer func(v bool) { noLoop = v }(noLoop)
	noLoop = true
	for _, tc := range []struct {
		name string
		f    func(*testing.T)
	}{
		{"Echo", TestEcho},
		{"IdleTimeout", TestIdleTimeout},
		{"EchoWriteDeadline", TestEchoWriteDeadline},
		{"CloseFirst", TestCloseFirst},
		{"HTTPKeepAlive", TestHTTPKeepAlive},
		{"HTTPConnection", TestHTTPConnection},
		{"HTTPPipelined", TestHTTPPipelined},
		{"HTTPSplitRequests", TestHTTPSplitRequests},
		{"HTTPRefusals", TestHTTPRefusals},
		{"HTTPExpectContinue", TestHTTPExpectContinue},
		{"HTTPIdleTimeout", TestHTTPIdleTimeout},
		{"HTTPHeaderTimeout", TestHTTPHeaderTimeout},
		{"HTTPIdleConnectionsHoldNoFrame", TestHTTPIdleConnectionsHoldNoFrame},
		{"LoopPartialWrites", TestLoopPartialWrites},
	} {
		t.Run(tc.name, tc.f)
	}
}

// smallBufListener listens on loopback with a small SO_SNDBUF, which accepted sockets inherit: the
// target's writes then fill the socket at once.
func smallBufListener(t *testing.T) net.Listener {
	t.Helper()
	lc := net.ListenConfig{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUF, 8192) })
		if err == nil {
			err = serr
		}
		return err
	}}
	ln, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// TestLoopPartialWrites: with a small send buffer and a client that does not read at first, the
// target's writes come back short (EAGAIN); what the socket did not take is kept and written on
// EPOLLOUT, nothing more is read meanwhile, and once the client reads, every echo and every
// pipelined answer arrives whole and in order.
func TestLoopPartialWrites(t *testing.T) {
	const req = "GET /p HTTP/1.1\r\nHost: t\r\n\r\n"
	for _, tc := range []struct {
		name string
		mode Mode
		send []byte
		want []byte
	}{
		{"echo", ModeEcho, pattern(256 << 10), pattern(256 << 10)},
		{"http pipelined", ModeHTTP, []byte(strings.Repeat(req, 2000)), []byte(strings.Repeat(okResponse, 2000))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			guardFDs(t)
			cfg, err := Config{Mode: tc.mode}.withDefaults()
			if err != nil {
				t.Fatal(err)
			}
			s := newServer(cfg)
			s.run([]net.Listener{smallBufListener(t)})
			t.Cleanup(func() { s.Close() })
			c := dial(t, s.Addrs()[0])
			c.SetReadBuffer(32 << 10) // fixed: no autotuning to megabytes
			var wg sync.WaitGroup
			defer wg.Wait()
			werr := make(chan error, 1)
			wg.Go(func() {
				_, err := c.Write(tc.send)
				werr <- err
			})
			// Nothing is read until a write of the target's has come back short.
			if !noLoop {
				waitFor(t, "a short write", func() bool { return s.stalls.Load() > 0 })
			}
			got := make([]byte, len(tc.want))
			if _, err := io.ReadFull(c, got); err != nil {
				t.Fatalf("read %d bytes back: %v", len(tc.want), err)
			}
			if err := <-werr; err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, tc.want) {
				t.Fatalf("%d bytes back differ from what was sent at %d", len(got), firstDiff(got, tc.want))
			}
			c.Close()
			waitFor(t, "the close counted", func() bool { return s.Stats().Closed == 1 })
			// Counted after each write returns, so only certain once the target has closed.
			if st := s.Stats(); st.BytesIn != uint64(len(tc.send)) || st.BytesOut != uint64(len(tc.want)) {
				t.Errorf("stats %+v, want %d bytes in, %d out", st, len(tc.send), len(tc.want))
			}
		})
	}
}

func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i>>8)
	}
	return b
}

// TestLoopPipelinedEcho: many messages in one write (so several in one read of the target's) come
// back whole and in order, and messages split across writes too.
func TestLoopPipelinedEcho(t *testing.T) {
	guardFDs(t)
	s := start(t, Config{Mode: ModeEcho})
	c := dial(t, s.Addrs()[0])
	var all []byte
	for i := range 200 {
		all = fmt.Appendf(all, "message %03d: %s\n", i, strings.Repeat("x", 48))
	}
	// One write of them all, then one message in three writes, each read by the target before the
	// next is sent.
	parts := [][]byte{all, []byte("spl"), []byte("it mess"), []byte("age\n")}
	var want []byte
	var sent uint64
	for _, p := range parts {
		if _, err := c.Write(p); err != nil {
			t.Fatal(err)
		}
		sent += uint64(len(p))
		want = append(want, p...)
		waitFor(t, "the part read", func() bool { return s.Stats().BytesIn == sent })
	}
	got := make([]byte, len(want))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("echo differs at %d", firstDiff(got, want))
	}
}

// TestLoopHTTPExpired: on the loops, the idle timeout and the header timeout close connections as
// idle, and each connection a deadline ends leaves nothing behind; a keep-alive client that goes
// on sending is never closed.
func TestLoopHTTPExpired(t *testing.T) {
	guardFDs(t)
	const idle = 100 * time.Millisecond
	s := start(t, Config{Mode: ModeHTTP, IdleTimeout: idle, HeaderTimeout: idle})
	silent := dial(t, s.Addrs()[0])
	half := dial(t, s.Addrs()[0])
	if _, err := io.WriteString(half, "GET / HTTP/1.1\r\nHo"); err != nil {
		t.Fatal(err)
	}
	for _, c := range []net.Conn{silent, half} {
		if got, err := io.ReadAll(c); err != nil || len(got) > 0 {
			t.Fatalf("read %q, %v; want the target's close", got, err)
		}
	}
	if st := s.Stats(); st.IdleClosed != 2 || st.Closed != 2 {
		t.Errorf("stats %+v, want two idle closes", st)
	}
	// A client sending requests back to back, for longer than the idle timeout, stays open.
	busy := dial(t, s.Addrs()[0])
	br := bufio.NewReader(busy)
	began := time.Now()
	for n := 0; n < 10000 && time.Since(began) < 3*idle; n++ {
		if _, err := io.WriteString(busy, "GET / HTTP/1.1\r\nHost: t\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		readResponse(t, br, "GET")
	}
	if st := s.Stats(); st.Closed != 2 {
		t.Errorf("stats %+v: the busy connection was closed", st)
	}
}
