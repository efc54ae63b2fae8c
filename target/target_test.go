package target

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	// The runtime opens its poller's descriptors on first network use; do that now so the first
	// fd baseline taken by a test does not count them as leaked later.
	if ln, err := net.Listen("tcp", "127.0.0.1:0"); err == nil {
		ln.Close()
	}
	goleak.VerifyTestMain(m)
}

// waitLimit bounds every wait and every client I/O in these tests.
const waitLimit = 5 * time.Second

// start starts a server that the test closes (and checks) when it ends.
func start(tb testing.TB, cfg Config) *Server {
	tb.Helper()
	s, err := Start(context.Background(), cfg)
	if err != nil {
		tb.Fatalf("Start(%+v): %v", cfg, err)
	}
	tb.Cleanup(func() {
		if err := s.Close(); err != nil {
			tb.Errorf("Close: %v", err)
		}
	})
	return s
}

// dial connects to addr with a deadline on all of the connection's I/O; the test closes it.
func dial(tb testing.TB, addr string) *net.TCPConn {
	tb.Helper()
	d := net.Dialer{Timeout: waitLimit}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		tb.Fatalf("dial %s: %v", addr, err)
	}
	tc := c.(*net.TCPConn)
	tc.SetDeadline(time.Now().Add(waitLimit))
	tb.Cleanup(func() { tc.Close() })
	return tc
}

// echoAll sends data, half-closes, and returns everything read until the server closes.
func echoAll(tb testing.TB, c *net.TCPConn, data []byte) []byte {
	tb.Helper()
	// Write and read at once: a large echo would otherwise fill both directions' buffers and stall.
	werr := make(chan error, 1)
	go func() {
		_, err := c.Write(data)
		if err == nil {
			err = c.CloseWrite()
		}
		werr <- err
	}()
	got, rerr := io.ReadAll(c)
	if err := <-werr; err != nil {
		tb.Fatalf("write %d bytes: %v", len(data), err)
	}
	if rerr != nil {
		tb.Fatalf("read echo of %d bytes: %v (got %d)", len(data), rerr, len(got))
	}
	return got
}

// ping sends msg and reads the echo back, leaving the connection open.
func ping(c net.Conn, msg []byte) error {
	if _, err := c.Write(msg); err != nil {
		return err
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil {
		return err
	}
	if !bytes.Equal(got, msg) {
		return fmt.Errorf("echo %q, want %q", got, msg)
	}
	return nil
}

// waitFor polls cond until it holds, failing the test after waitLimit.
func waitFor(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(waitLimit)
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out after %v waiting for %s", waitLimit, what)
		}
		<-tick.C
	}
}

// openFDs lists the process's open descriptors and what they point to.
func openFDs(tb testing.TB) []string {
	tb.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		tb.Fatalf("list fds: %v", err)
	}
	fds := make([]string, 0, len(ents))
	for _, e := range ents {
		link, _ := os.Readlink("/proc/self/fd/" + e.Name())
		fds = append(fds, e.Name()+"->"+link)
	}
	return fds
}

// guardFDs checks, after every other cleanup of the test has run (servers and clients closed),
// that the process holds exactly as many descriptors as when guardFDs was called.
func guardFDs(tb testing.TB) {
	tb.Helper()
	before := openFDs(tb)
	tb.Cleanup(func() {
		if after := openFDs(tb); len(after) != len(before) {
			tb.Errorf("open fds: %d before, %d after\nbefore: %v\nafter:  %v", len(before), len(after), before, after)
		}
	})
}

func TestParseMode(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    Mode
		wantErr bool
	}{
		{in: "echo", want: ModeEcho},
		{in: "sink", want: ModeSink},
		{in: "hold", want: ModeHold},
		{in: "close", want: ModeClose},
		{in: "rst", want: ModeRST},
		{in: "http", want: ModeHTTP},
		{in: "", wantErr: true},
		{in: "ECHO", wantErr: true},
		{in: " echo", wantErr: true},
		{in: "fin", wantErr: true},
		{in: "HTTP", wantErr: true},
		{in: "https", wantErr: true},
		{in: "echo,sink", wantErr: true},
	} {
		t.Run(fmt.Sprintf("%q", tc.in), func(t *testing.T) {
			got, err := ParseMode(tc.in)
			if !tc.wantErr {
				if err != nil || got != tc.want {
					t.Fatalf("ParseMode(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
				}
				return
			}
			if !errors.Is(err, ErrUnknownMode) {
				t.Fatalf("ParseMode(%q) error = %v; want ErrUnknownMode", tc.in, err)
			}
			for _, m := range Modes() {
				if !strings.Contains(err.Error(), string(m)) {
					t.Errorf("error %q does not name valid mode %q", err, m)
				}
			}
		})
	}
}

func TestModes(t *testing.T) {
	got := Modes()
	want := []Mode{ModeEcho, ModeSink, ModeHold, ModeClose, ModeRST, ModeHTTP, ModeWebSocket}
	if !slices.Equal(got, want) {
		t.Fatalf("Modes() = %v, want %v", got, want)
	}
	got[0] = "changed"
	if Modes()[0] != ModeEcho {
		t.Fatal("Modes() shares its slice with callers")
	}
}

func TestIsLoopbackHost(t *testing.T) {
	for _, tc := range []struct {
		host string
		want bool
	}{
		{"127.0.0.1", true},
		{"127.0.0.2", true},
		{"127.255.255.254", true},
		{"::1", true},
		{"::ffff:127.0.0.1", true},
		{"::1%lo", true},
		{"localhost", true},
		{"LocalHost", true},
		{"", false},
		{"0.0.0.0", false},
		{"::", false},
		{"10.1.2.3", false},
		{"128.0.0.1", false},
		{"126.255.255.255", false},
		{"::2", false},
		{"example.com", false},
		{"localhost.example.com", false},
	} {
		if got := IsLoopbackHost(tc.host); got != tc.want {
			t.Errorf("IsLoopbackHost(%q) = %v, want %v", tc.host, got, tc.want)
		}
	}
}

func TestStartRefusesBadConfig(t *testing.T) {
	for _, tc := range []struct {
		name   string
		cfg    Config
		want   error  // matched with errors.Is when set; nil for errors with no identity to match
		naming string // the error must mention this
	}{
		{name: "unknown mode", cfg: Config{Mode: "ftp"}, want: ErrUnknownMode, naming: "ftp"},
		{name: "negative idle timeout", cfg: Config{IdleTimeout: -time.Second}, naming: "IdleTimeout"},
		{name: "negative max frame", cfg: Config{MaxFrame: -1}, naming: "MaxFrame"},
		{name: "max frame above 16 MiB", cfg: Config{MaxFrame: MaxFrameLimit + 1}, naming: "MaxFrame 16777217"},
		{name: "negative header timeout", cfg: Config{HeaderTimeout: -time.Second}, naming: "HeaderTimeout"},
		{name: "HTTP status below 200", cfg: Config{Mode: ModeHTTP, HTTPStatus: 199}, naming: "HTTPStatus 199"},
		{name: "HTTP status above 599", cfg: Config{Mode: ModeHTTP, HTTPStatus: 600}, naming: "HTTPStatus 600"},
		{name: "negative HTTP status", cfg: Config{HTTPStatus: -1}, naming: "HTTPStatus -1"},
		{name: "TLS without certificate", cfg: Config{TLS: &tls.Config{}}, naming: "TLS config has no certificate"},
		{name: "link-local IPv6", cfg: Config{Listen: []string{"[fe80::1%lo]:0"}}, want: ErrNotLoopback, naming: "fe80::1%lo"},
		{name: "no port", cfg: Config{Listen: []string{"127.0.0.1"}}, naming: `"127.0.0.1"`},
		{name: "empty address", cfg: Config{Listen: []string{""}}, naming: `""`},
		{name: "any IPv4", cfg: Config{Listen: []string{"0.0.0.0:0"}}, want: ErrNotLoopback, naming: "0.0.0.0:0"},
		{name: "private address", cfg: Config{Listen: []string{"10.1.2.3:0"}}, want: ErrNotLoopback, naming: "10.1.2.3:0"},
		{name: "empty host", cfg: Config{Listen: []string{":0"}}, want: ErrNotLoopback, naming: `":0"`},
		{name: "any IPv6", cfg: Config{Listen: []string{"[::]:0"}}, want: ErrNotLoopback, naming: "[::]:0"},
		{name: "host name", cfg: Config{Listen: []string{"example.com:0"}}, want: ErrNotLoopback, naming: "example.com:0"},
		{
			name:   "remote after loopback",
			cfg:    Config{Listen: []string{"127.0.0.1:0", "10.1.2.3:0"}},
			want:   ErrNotLoopback,
			naming: "10.1.2.3:0",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			guardFDs(t)
			s, err := Start(context.Background(), tc.cfg)
			if err == nil {
				s.Close()
				t.Fatalf("Start(%+v) succeeded, want an error", tc.cfg)
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Errorf("Start error = %v, want %v", err, tc.want)
			}
			if !strings.Contains(err.Error(), tc.naming) {
				t.Errorf("Start error %q does not name %s", err, tc.naming)
			}
		})
	}
}

func TestStartCancelledContext(t *testing.T) {
	guardFDs(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if s, err := Start(ctx, Config{}); !errors.Is(err, context.Canceled) {
		if s != nil {
			s.Close()
		}
		t.Fatalf("Start with a cancelled context: %v, want context.Canceled", err)
	}
}

func TestListenErrorClosesOpenedListeners(t *testing.T) {
	guardFDs(t)
	busy := start(t, Config{}).Addrs()[0]
	_, err := Start(context.Background(), Config{Listen: []string{"127.0.0.1:0", busy}})
	if !errors.Is(err, syscall.EADDRINUSE) {
		t.Fatalf("Start on a busy address: %v, want EADDRINUSE", err)
	}
	if !strings.Contains(err.Error(), busy) {
		t.Errorf("error %q does not name %s", err, busy)
	}
	// guardFDs finds the first, successful listener if Start left it open.
}

func TestDefaults(t *testing.T) {
	guardFDs(t)
	s := start(t, Config{})
	if s.Mode() != ModeEcho {
		t.Errorf("Mode() = %q, want %q", s.Mode(), ModeEcho)
	}
	if s.idle != DefaultIdleTimeout || s.maxFrame != DefaultMaxFrame || s.headerWait != DefaultHeaderTimeout {
		t.Errorf("idle %v, max frame %d, header timeout %v; want %v, %d, %v", s.idle, s.maxFrame, s.headerWait,
			DefaultIdleTimeout, DefaultMaxFrame, DefaultHeaderTimeout)
	}
	addrs := s.Addrs()
	if len(addrs) != 1 {
		t.Fatalf("Addrs() = %v, want one address", addrs)
	}
	host, port, err := net.SplitHostPort(addrs[0])
	if err != nil || host != "127.0.0.1" || port == "0" {
		t.Errorf("Addrs()[0] = %q, want 127.0.0.1 and a real port", addrs[0])
	}
}

func TestEcho(t *testing.T) {
	const maxFrame = 1024
	for _, tc := range []struct {
		name string
		size int
	}{
		{"empty", 0},
		{"one byte", 1},
		{"below frame", maxFrame - 1},
		{"one frame", maxFrame},
		{"frame plus one", maxFrame + 1},
		{"several frames", 4*maxFrame + 7},
		{"1 MiB", 1 << 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			guardFDs(t)
			s := start(t, Config{Mode: ModeEcho, MaxFrame: maxFrame})
			data := make([]byte, tc.size)
			for i := range data {
				data[i] = byte(i*7 + i>>8)
			}
			got := echoAll(t, dial(t, s.Addrs()[0]), data)
			if !bytes.Equal(got, data) {
				t.Fatalf("echo of %d bytes came back as %d bytes, first difference at %d", len(data), len(got), firstDiff(got, data))
			}
			// The server counts before it closes, and the client has seen that close.
			st := s.Stats()
			if st.BytesIn != uint64(tc.size) || st.BytesOut != uint64(tc.size) {
				t.Errorf("BytesIn %d, BytesOut %d; want %d each", st.BytesIn, st.BytesOut, tc.size)
			}
			if st.Accepted != 1 || st.Closed != 1 || st.Active != 0 || st.IdleClosed != 0 {
				t.Errorf("stats %+v, want one connection accepted and closed by the client", st)
			}
		})
	}
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

func TestSinkAndHoldDiscard(t *testing.T) {
	for _, tc := range []struct {
		mode Mode
		size int
	}{
		{ModeSink, 0},
		{ModeSink, 1},
		{ModeSink, 3<<20 + 5},
		{ModeHold, 1},
		{ModeHold, 100 << 10},
	} {
		t.Run(fmt.Sprintf("%s/%d", tc.mode, tc.size), func(t *testing.T) {
			guardFDs(t)
			s := start(t, Config{Mode: tc.mode, MaxFrame: 4096})
			got := echoAll(t, dial(t, s.Addrs()[0]), make([]byte, tc.size))
			if len(got) != 0 {
				t.Errorf("%s wrote %d bytes back, want none", tc.mode, len(got))
			}
			st := s.Stats()
			if st.BytesIn != uint64(tc.size) || st.BytesOut != 0 {
				t.Errorf("BytesIn %d, BytesOut %d; want %d, 0", st.BytesIn, st.BytesOut, tc.size)
			}
			if st.Accepted != 1 || st.Closed != 1 || st.Active != 0 {
				t.Errorf("stats %+v, want one connection accepted and closed", st)
			}
		})
	}
}

func TestHoldKeepsConnectionOpen(t *testing.T) {
	guardFDs(t)
	s := start(t, Config{Mode: ModeHold})
	c := dial(t, s.Addrs()[0])
	if _, err := c.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	// Once the server has read the bytes the connection is being held, not closed.
	waitFor(t, "the server to read 5 bytes", func() bool { return s.Stats().BytesIn == 5 })
	if st := s.Stats(); st.Active != 1 || st.Closed != 0 {
		t.Fatalf("stats %+v while the client is connected, want Active 1, Closed 0", st)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	// A close moves Active down, then Closed up: wait for the last of the two.
	waitFor(t, "the close to be counted", func() bool { return s.Stats().Closed == 1 })
	if st := s.Stats(); st.Active != 0 || st.IdleClosed != 0 || st.Peak != 1 {
		t.Errorf("stats %+v after the client closed, want Closed 1, IdleClosed 0, Peak 1", st)
	}
}

func TestCloseAndRSTModes(t *testing.T) {
	for _, tc := range []struct {
		mode Mode
		want error
	}{
		{ModeClose, io.EOF},
		{ModeRST, syscall.ECONNRESET},
	} {
		t.Run(string(tc.mode), func(t *testing.T) {
			guardFDs(t)
			s := start(t, Config{Mode: tc.mode})
			for i := range 3 {
				// Go's connect is non-blocking and reads SO_ERROR once the socket is writable;
				// an RST that lands before that fails the dial itself rather than the read.
				var n int
				c, err := net.DialTimeout("tcp", s.Addrs()[0], waitLimit)
				if err == nil {
					c.SetDeadline(time.Now().Add(waitLimit))
					n, err = c.Read(make([]byte, 1))
					c.Close()
				}
				if n != 0 || !errors.Is(err, tc.want) {
					t.Fatalf("connection %d: read = %d, %v; want 0, %v", i, n, err, tc.want)
				}
			}
			st := s.Stats()
			if st.Accepted != 3 || st.Closed != 3 || st.Active != 0 || st.Peak != 1 || st.BytesOut != 0 {
				t.Errorf("stats %+v, want 3 accepted and closed one at a time", st)
			}
		})
	}
}

func TestMultipleListeners(t *testing.T) {
	guardFDs(t)
	listen := []string{"127.0.0.1:0", "127.0.0.2:0", "localhost:0"}
	s := start(t, Config{Listen: listen})
	addrs := s.Addrs()
	if len(addrs) != len(listen) {
		t.Fatalf("Addrs() = %v, want %d addresses", addrs, len(listen))
	}
	if host, _, _ := net.SplitHostPort(addrs[1]); host != "127.0.0.2" {
		t.Errorf("Addrs()[1] = %q, want host 127.0.0.2 (Listen order)", addrs[1])
	}
	for _, addr := range addrs {
		if err := ping(dial(t, addr), []byte("ping "+addr)); err != nil {
			t.Errorf("listener %s: %v", addr, err)
		}
	}
	if st := s.Stats(); st.Accepted != uint64(len(listen)) || st.Active != int64(len(listen)) {
		t.Errorf("stats %+v, want %d accepted and active", st, len(listen))
	}
}

func TestIdleTimeout(t *testing.T) {
	const idle = 50 * time.Millisecond
	for _, tc := range []struct {
		name  string
		mode  Mode
		first []byte // sent (and echoed, in echo mode) before going silent
	}{
		{"echo silent", ModeEcho, nil},
		{"echo after a round trip", ModeEcho, []byte("hi")},
		{"sink silent", ModeSink, nil},
		{"sink after data", ModeSink, []byte("data")},
		{"hold silent", ModeHold, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			guardFDs(t)
			s := start(t, Config{Mode: tc.mode, IdleTimeout: idle})
			began := time.Now()
			c := dial(t, s.Addrs()[0])
			if len(tc.first) > 0 {
				if _, err := c.Write(tc.first); err != nil {
					t.Fatal(err)
				}
			}
			// The client never closes: only the server's idle deadline can end this read.
			got, err := io.ReadAll(c)
			if err != nil {
				t.Fatalf("waiting for the idle close: %v", err)
			}
			if tc.mode == ModeEcho && !bytes.Equal(got, tc.first) {
				t.Errorf("echo %q, want %q", got, tc.first)
			}
			if elapsed := time.Since(began); elapsed < idle {
				t.Errorf("closed after %v, before the idle timeout of %v", elapsed, idle)
			}
			if st := s.Stats(); st.IdleClosed != 1 || st.Closed != 1 || st.Active != 0 {
				t.Errorf("stats %+v, want one connection closed as idle", st)
			}
		})
	}
}

func TestEchoWriteDeadline(t *testing.T) {
	guardFDs(t)
	s := start(t, Config{Mode: ModeEcho, IdleTimeout: 100 * time.Millisecond})
	c := dial(t, s.Addrs()[0])
	// The client writes and never reads, so the echo fills both directions' buffers and the
	// server's write blocks until its deadline closes the connection.
	chunk := make([]byte, 1<<20)
	var err error
	for range 512 {
		if _, err = c.Write(chunk); err != nil {
			break
		}
	}
	if !errors.Is(err, syscall.ECONNRESET) && !errors.Is(err, syscall.EPIPE) {
		t.Fatalf("client write ended with %v, want the server's close (ECONNRESET or EPIPE)", err)
	}
	waitFor(t, "the server to close the connection", func() bool { return s.Stats().Closed == 1 })
	if st := s.Stats(); st.IdleClosed != 1 || st.BytesOut == 0 {
		t.Errorf("stats %+v, want IdleClosed 1 after some echo", st)
	}
}

func TestCountersWithConcurrentClients(t *testing.T) {
	const n = 50
	guardFDs(t)
	s := start(t, Config{})
	addr := s.Addrs()[0]
	msg := []byte("counted")
	conns := make([]net.Conn, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			d := net.Dialer{Timeout: waitLimit}
			c, err := d.Dial("tcp", addr)
			if err != nil {
				errs[i] = err
				return
			}
			conns[i] = c
			c.SetDeadline(time.Now().Add(waitLimit))
			// A round trip proves the server has accepted and is serving this connection.
			errs[i] = ping(c, msg)
		})
	}
	wg.Wait()
	t.Cleanup(func() {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
	})
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.Accepted != n || st.Active != n || st.Peak != n || st.Closed != 0 {
		t.Fatalf("stats %+v with %d clients connected", st, n)
	}
	for _, c := range conns {
		c.Close()
	}
	waitFor(t, "every connection to close", func() bool { return s.Stats().Closed == n })
	want := Stats{
		Accepted: n, Active: 0, Peak: n, Closed: n,
		BytesIn: n * uint64(len(msg)), BytesOut: n * uint64(len(msg)),
	}
	if st := s.Stats(); st != want {
		t.Errorf("stats %+v, want %+v", st, want)
	}
}

func TestCloseWithOpenConnections(t *testing.T) {
	const n = 20
	for _, mode := range []Mode{ModeEcho, ModeSink, ModeHold} {
		t.Run(string(mode), func(t *testing.T) {
			guardFDs(t)
			s := start(t, Config{Mode: mode})
			addr := s.Addrs()[0]
			conns := make([]*net.TCPConn, n)
			for i := range conns {
				conns[i] = dial(t, addr)
				if _, err := conns[i].Write([]byte{'x'}); err != nil {
					t.Fatal(err)
				}
			}
			// In echo mode one more client writes without ever reading, pinning a server
			// goroutine in Write: Close must not wait for its deadline.
			stuck := dial(t, addr)
			stuckDone := make(chan error, 1)
			go func() {
				// Sink and hold drain it instead; either way the dial deadline bounds the loop.
				chunk := make([]byte, 1<<20)
				for range 1 << 16 {
					if _, err := stuck.Write(chunk); err != nil {
						stuckDone <- err
						return
					}
				}
				stuckDone <- errors.New("wrote 64 GiB without the server closing")
			}()
			waitFor(t, "all clients to be served", func() bool {
				st := s.Stats()
				return st.Active == n+1 && st.BytesIn > n
			})

			began := time.Now()
			if err := s.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			// Waiting for a connection would mean waiting for its deadline, the idle timeout (60 s):
			// half of it is a bound a busy machine does not reach and a waiting Close does.
			if elapsed := time.Since(began); elapsed >= DefaultIdleTimeout/2 {
				t.Errorf("Close took %v with connections open (idle timeout %v)", elapsed, DefaultIdleTimeout)
			}
			if err := s.Close(); err != nil {
				t.Errorf("second Close: %v", err)
			}
			if err := <-stuckDone; !errors.Is(err, syscall.ECONNRESET) && !errors.Is(err, syscall.EPIPE) {
				t.Errorf("non-reading client: %v, want the server's close", err)
			}
			goleak.VerifyNone(t)

			for i, c := range conns {
				if _, err := io.ReadAll(c); err != nil && !errors.Is(err, syscall.ECONNRESET) {
					t.Errorf("client %d after Close: %v, want EOF or reset", i, err)
				}
			}
			if st := s.Stats(); st.Active != 0 || st.Closed != st.Accepted || st.Accepted != n+1 {
				t.Errorf("stats after Close %+v, want every accepted connection closed", st)
			}
			if _, err := net.DialTimeout("tcp", addr, waitLimit); !errors.Is(err, syscall.ECONNREFUSED) {
				t.Errorf("dial after Close: %v, want ECONNREFUSED", err)
			}
		})
	}
}

func TestContextCancelClosesServer(t *testing.T) {
	guardFDs(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s, err := Start(ctx, Config{Mode: ModeHold})
	if err != nil {
		t.Fatal(err)
	}
	c := dial(t, s.Addrs()[0])
	if _, err := c.Write([]byte{1}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the server to read", func() bool { return s.Stats().BytesIn == 1 })
	cancel()
	if _, err := io.ReadAll(c); err != nil {
		t.Fatalf("held connection after cancel: %v, want EOF", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close after cancel: %v", err)
	}
}

func TestNextBackoff(t *testing.T) {
	ms := time.Millisecond
	for _, tc := range []struct{ in, want time.Duration }{
		{0, 5 * ms},
		{5 * ms, 10 * ms},
		{320 * ms, 640 * ms},
		{640 * ms, time.Second},
		{time.Second, time.Second},
	} {
		if got := nextBackoff(tc.in); got != tc.want {
			t.Errorf("nextBackoff(%v) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

// scriptedListener fails Accept with the script's errors in turn; a nil entry, and everything after
// the script, accepts for real.
type scriptedListener struct {
	net.Listener
	script []error // touched only by the accept loop's goroutine
}

func (l *scriptedListener) Accept() (net.Conn, error) {
	if len(l.script) > 0 {
		err := l.script[0]
		l.script = l.script[1:]
		if err != nil {
			return nil, err
		}
	}
	return l.Listener.Accept()
}

func TestAcceptBacksOffOnErrors(t *testing.T) {
	guardFDs(t)
	cfg, err := Config{}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	s := newServer(cfg)
	var mu sync.Mutex
	var pauses []time.Duration
	s.pause = func(d time.Duration) bool {
		mu.Lock()
		defer mu.Unlock()
		pauses = append(pauses, d)
		return true
	}
	acceptErr := func(errno syscall.Errno) error {
		return &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", errno)}
	}
	var script []error
	for range 9 {
		script = append(script, acceptErr(syscall.EMFILE))
	}
	script = append(script, nil, acceptErr(syscall.ENFILE), acceptErr(syscall.ENFILE))

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.run([]net.Listener{&scriptedListener{Listener: ln, script: script}})
	t.Cleanup(func() { s.Close() })

	// Each round trip needs the accept loop past its share of the script: nine failures before
	// the first connection, two more before the second.
	for i := range 2 {
		if err := ping(dial(t, s.Addrs()[0]), []byte("after errors")); err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
	}
	ms := time.Millisecond
	want := []time.Duration{5 * ms, 10 * ms, 20 * ms, 40 * ms, 80 * ms, 160 * ms, 320 * ms, 640 * ms, time.Second, 5 * ms, 10 * ms}
	mu.Lock()
	got := slices.Clone(pauses)
	mu.Unlock()
	if !slices.Equal(got, want) {
		t.Errorf("back-offs %v, want %v (doubling from 5ms to 1s, reset by a success)", got, want)
	}
	if st := s.Stats(); st.AcceptErrors != 11 || st.Accepted != 2 {
		t.Errorf("stats %+v, want 11 accept errors and 2 accepted", st)
	}
}

func TestBackoffSleepEndsOnClose(t *testing.T) {
	cfg, err := Config{}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	s := newServer(cfg)
	if !s.sleep(time.Microsecond) {
		t.Fatal("sleep on an open server returned false")
	}
	woke := make(chan bool, 1)
	go func() { woke <- s.sleep(time.Hour) }()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case ok := <-woke:
		if ok {
			t.Error("sleep returned true after Close")
		}
	case <-time.After(waitLimit):
		t.Fatal("an accept back-off outlived Close")
	}
}

// FuzzEcho sends arbitrary bytes through one echo server and wants exactly them back. A small
// MaxFrame makes most inputs span several reads and writes.
func FuzzEcho(f *testing.F) {
	s := start(f, Config{Mode: ModeEcho, MaxFrame: 512, IdleTimeout: 10 * time.Second})
	addr := s.Addrs()[0]

	f.Add([]byte{})
	f.Add([]byte{0})
	f.Add([]byte("hello\n"))
	f.Add([]byte("GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"))
	all := make([]byte, 256)
	for i := range all {
		all[i] = byte(i)
	}
	f.Add(all)
	for _, n := range []int{511, 512, 513, 4096 + 3} {
		f.Add(bytes.Repeat([]byte{0xA5, 0x00, 0xFF}, n)[:n])
	}

	f.Fuzz(func(t *testing.T, data []byte) {
		c := dial(t, addr)
		got := echoAll(t, c, data)
		if !bytes.Equal(got, data) {
			t.Fatalf("sent %d bytes, got %d back, first difference at %d", len(data), len(got), firstDiff(got, data))
		}
	})
}

// BenchmarkAcceptClose measures connect and close against the target, counting the target's own
// work (the wait for it to close every connection) and its allocations. Clients close with RST so
// that a long run does not fill the port range with TIME_WAIT.
func BenchmarkAcceptClose(b *testing.B) {
	for _, mode := range []Mode{ModeRST, ModeClose, ModeSink} {
		b.Run(string(mode), func(b *testing.B) {
			s := start(b, Config{Mode: mode})
			addr := s.Addrs()[0]
			var d net.Dialer
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				c, err := d.Dial("tcp", addr)
				if err != nil {
					// The target's RST can beat the dial (see TestCloseAndRSTModes).
					if mode == ModeRST && errors.Is(err, syscall.ECONNRESET) {
						continue
					}
					b.Fatal(err)
				}
				c.(*net.TCPConn).SetLinger(0)
				c.Close()
			}
			waitFor(b, "the target to close every connection", func() bool { return s.Stats().Closed == uint64(b.N) })
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "conns/s")
		})
	}
}

// BenchmarkEchoRoundTrip shows the per-read cost of the echo path, allocations included.
func BenchmarkEchoRoundTrip(b *testing.B) {
	s := start(b, Config{Mode: ModeEcho})
	c := dial(b, s.Addrs()[0])
	c.SetDeadline(time.Time{})
	msg := make([]byte, 64)
	got := make([]byte, len(msg))
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if _, err := c.Write(msg); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(c, got); err != nil {
			b.Fatal(err)
		}
	}
}

// TestStatsJSON: Stats is summary.json's "target" object and the last line of `portstorm target
// --json`; its keys are the summary's (Active, AcceptErrors and BadRequests stay out), and Add
// counts the processes it sums.
func TestStatsJSON(t *testing.T) {
	tests := []struct {
		name string
		sum  []Stats
		want string
	}{
		{name: "one server", sum: nil,
			want: `{"accepted":5,"peak":3,"closed":4,"bytes_in":10,"bytes_out":9,"idle_closed":1}`},
		{name: "every field", sum: nil,
			want: `{"accepted":5,"peak":3,"closed":4,"bytes_in":10,"bytes_out":9,"idle_closed":1,"rejected":2,"requests":7,"tls_handshakes":5,"tls_failed":1}`},
		{name: "two processes added up", sum: []Stats{{Accepted: 2, Peak: 1}, {Accepted: 3, Peak: 2}},
			want: `{"accepted":5,"peak":3,"closed":0,"bytes_in":0,"bytes_out":0,"idle_closed":0,"processes":2}`},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := Stats{Accepted: 5, Active: 1, Peak: 3, Closed: 4, BytesIn: 10, BytesOut: 9, IdleClosed: 1, AcceptErrors: 6, BadRequests: 8}
			if i == 1 {
				st.Rejected, st.Requests, st.TLSHandshakes, st.TLSFailed = 2, 7, 5, 1
			}
			if tt.sum != nil {
				st = Stats{}
				for _, o := range tt.sum {
					st.Add(o)
				}
			}
			b, err := json.Marshal(Message{Stats: &st})
			if err != nil {
				t.Fatal(err)
			}
			if got := string(b); got != `{"stats":`+tt.want+`}` {
				t.Errorf("got  %s\nwant {\"stats\":%s}", got, tt.want)
			}
			var back Message
			if err := json.Unmarshal(b, &back); err != nil || back.Stats == nil || back.Stats.Accepted != st.Accepted || back.Stats.Processes != st.Processes {
				t.Errorf("read back %+v, %v; want %+v", back.Stats, err, st)
			}
		})
	}
}
