//go:build linux

package dial

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/portstorm/portstorm/internal/loopback"
)

// listen opens a loopback listener on an ephemeral port, closed when the test ends.
func listen(t testing.TB, network, addr string) (net.Listener, Destination) {
	t.Helper()
	ln, err := net.Listen(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln, NewDestination(ln.Addr().(*net.TCPAddr).AddrPort())
}

// closedPort returns a loopback destination nothing listens on: the port of a listener just closed.
func closedPort(t *testing.T) Destination {
	t.Helper()
	ln, dst := listen(t, "tcp", "127.0.0.1:0")
	ln.Close()
	return dst
}

// fullBacklog returns a loopback destination whose listener never accepts and whose accept queue
// is full: Linux drops further SYNs (tcp_conn_request: sk_acceptq_is_full), so a connect to it
// hangs until its timeout or context ends.
func fullBacklog(t *testing.T) Destination {
	t.Helper()
	dst := NewDestination(loopback.Unaccepted(t))
	// A backlog of 0 still queues one connection; that one fills the queue.
	c, err := NewKernel(Options{}).Dial(context.Background(), dst)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return dst
}

// errTimeout stands for a connect timeout: net.Dialer enforces Timeout with a context deadline, so
// the error wraps context.DeadlineExceeded when the context's timer wins and os.ErrDeadlineExceeded
// when the poller's does. Either is a net.Error whose Timeout() is true, and metrics.Classify maps
// both to ETIMEDOUT.
var errTimeout = errors.New("any connect timeout")

// isWant is errors.Is, with errTimeout matching either form of a timeout.
func isWant(err, want error) bool {
	if want == errTimeout {
		var ne net.Error
		return errors.As(err, &ne) && ne.Timeout() &&
			(errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, context.DeadlineExceeded))
	}
	return errors.Is(err, want)
}

func TestKernelDial(t *testing.T) {
	tests := []struct {
		name    string
		dst     func(t *testing.T) Destination
		ctx     func(t *testing.T) context.Context
		opts    Options
		wantIs  error
		maxWait time.Duration // 0: no bound checked
	}{
		{
			name: "connects to an IPv4 loopback listener",
			dst: func(t *testing.T) Destination {
				_, d := listen(t, "tcp", "127.0.0.1:0")
				return d
			},
		},
		{
			name: "connects to an IPv6 loopback listener",
			dst: func(t *testing.T) Destination {
				ln, err := net.Listen("tcp", "[::1]:0")
				if err != nil {
					t.Skipf("no IPv6 loopback: %v", err)
				}
				t.Cleanup(func() { ln.Close() })
				return NewDestination(ln.Addr().(*net.TCPAddr).AddrPort())
			},
		},
		{name: "closed port is ECONNREFUSED", dst: closedPort, wantIs: syscall.ECONNREFUSED},
		{
			name: "cancelled context returns at once",
			dst: func(t *testing.T) Destination {
				_, d := listen(t, "tcp", "127.0.0.1:0")
				return d
			},
			ctx: func(t *testing.T) context.Context {
				ctx, cancel := context.WithCancel(context.Background())
				cancel()
				return ctx
			},
			wantIs:  context.Canceled,
			maxWait: time.Second,
		},
		{
			// Without the cancel this connect would hang for the full 30 s connect timeout.
			name: "context cancelled during a hanging connect",
			dst:  fullBacklog,
			ctx: func(t *testing.T) context.Context {
				ctx, cancel := context.WithCancel(context.Background())
				t.Cleanup(cancel)
				// A timer, not a sleep: whether it fires before or during connect(), Dial must return.
				time.AfterFunc(20*time.Millisecond, cancel)
				return ctx
			},
			opts:    Options{ConnectTimeout: 30 * time.Second},
			wantIs:  context.Canceled,
			maxWait: 5 * time.Second,
		},
		{
			name:    "connect timeout bounds a hanging connect",
			dst:     fullBacklog,
			opts:    Options{ConnectTimeout: 50 * time.Millisecond},
			wantIs:  errTimeout,
			maxWait: 5 * time.Second,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			checkFDs(t)
			dst := tc.dst(t)
			ctx := context.Background()
			if tc.ctx != nil {
				ctx = tc.ctx(t)
			}
			start := time.Now()
			c, err := NewKernel(tc.opts).Dial(ctx, dst)
			took := time.Since(start)
			if tc.maxWait > 0 && took > tc.maxWait {
				t.Errorf("Dial took %v, want under %v", took, tc.maxWait)
			}
			if tc.wantIs != nil {
				if err == nil {
					c.Close()
					t.Fatalf("Dial(%v) connected, want an error wrapping %v", dst, tc.wantIs)
				}
				if !isWant(err, tc.wantIs) {
					t.Fatalf("Dial(%v) error %v does not wrap %v", dst, err, tc.wantIs)
				}
				if c != nil {
					t.Errorf("Dial returned a connection (%T) with its error", c)
				}
				return
			}
			if err != nil {
				t.Fatalf("Dial(%v): %v", dst, err)
			}
			defer c.Close()
			if got := c.RemoteAddr().(*net.TCPAddr).AddrPort(); got != dst.AddrPort {
				t.Errorf("connected to %v, want %v", got, dst.AddrPort)
			}
		})
	}
}

// closePair connects a client to a loopback server connection and runs serve on the server side
// in a goroutine. The returned channel yields what serve reported, once it has returned.
func closePair(t *testing.T, serve func(srv net.Conn) error) (net.Conn, <-chan error) {
	t.Helper()
	ln, dst := listen(t, "tcp", "127.0.0.1:0")
	c, err := NewKernel(Options{}).Dial(context.Background(), dst)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := ln.Accept()
	if err != nil {
		c.Close()
		t.Fatal(err)
	}
	ln.Close()
	done := make(chan error, 1)
	go func() {
		err := serve(srv)
		srv.Close() // before reporting, so that the test's descriptor count sees it closed
		done <- err
	}()
	return c, done
}

// wantRead returns a server that reads once, checks the read ended with want, then closes.
func wantRead(want error) func(net.Conn) error {
	return func(srv net.Conn) error {
		srv.SetReadDeadline(time.Now().Add(10 * time.Second))
		n, err := srv.Read(make([]byte, 64))
		if !errors.Is(err, want) {
			return fmt.Errorf("server read %d bytes, err %v; want %v", n, err, want)
		}
		return nil
	}
}

func TestClose(t *testing.T) {
	tests := []struct {
		name     string
		mode     CloseMode
		deadline time.Duration
		// serve is the server side; release, when the test closes it, lets a server that holds
		// its end open finish.
		serve  func(srv net.Conn, release <-chan struct{}) error
		wantIs error // nil: Close must return nil
		// maxWait bounds how long Close may take.
		maxWait time.Duration
	}{
		{
			name: "fin: the server reads EOF", mode: CloseFIN, deadline: 5 * time.Second,
			serve: func(srv net.Conn, _ <-chan struct{}) error { return wantRead(io.EOF)(srv) },
		},
		{
			name: "rst: the server read fails with ECONNRESET", mode: CloseRST, deadline: 5 * time.Second,
			serve: func(srv net.Conn, _ <-chan struct{}) error { return wantRead(syscall.ECONNRESET)(srv) },
		},
		{
			name: "half: the server reads EOF, then closes", mode: CloseHalf, deadline: 5 * time.Second,
			serve: func(srv net.Conn, _ <-chan struct{}) error { return wantRead(io.EOF)(srv) },
		},
		{
			name: "half: the server never closes", mode: CloseHalf, deadline: 50 * time.Millisecond,
			serve: func(srv net.Conn, release <-chan struct{}) error {
				if err := wantRead(io.EOF)(srv); err != nil {
					return err
				}
				<-release
				return nil
			},
			wantIs: os.ErrDeadlineExceeded, maxWait: 5 * time.Second,
		},
		{
			name: "half: the server answers with data, then closes", mode: CloseHalf, deadline: 5 * time.Second,
			serve: func(srv net.Conn, _ <-chan struct{}) error {
				if err := wantRead(io.EOF)(srv); err != nil {
					return err
				}
				_, err := srv.Write([]byte("late answer"))
				return err
			},
			wantIs: errPeerSentData,
		},
		{
			name: "server: the server closes first", mode: CloseServer, deadline: 5 * time.Second,
			serve: func(srv net.Conn, _ <-chan struct{}) error { return nil },
		},
		{
			name: "server: the server sends data, then closes", mode: CloseServer, deadline: 5 * time.Second,
			serve: func(srv net.Conn, _ <-chan struct{}) error {
				_, err := srv.Write([]byte("unexpected"))
				return err
			},
			wantIs: errPeerSentData,
		},
		{
			name: "server: the server streams more than the drain bound", mode: CloseServer, deadline: 10 * time.Second,
			serve: func(srv net.Conn, release <-chan struct{}) error {
				buf := make([]byte, 64<<10)
				for range 16 { // 1 MiB, twice the client's drain bound
					if _, err := srv.Write(buf); err != nil {
						return nil // the client closed mid-stream, as it should
					}
				}
				<-release
				return nil
			},
			wantIs: errPeerSentData,
		},
		{
			name: "server: the server never closes", mode: CloseServer, deadline: 50 * time.Millisecond,
			serve: func(srv net.Conn, release <-chan struct{}) error {
				<-release
				return nil
			},
			wantIs: os.ErrDeadlineExceeded, maxWait: 5 * time.Second,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			checkFDs(t)
			release := make(chan struct{})
			c, served := closePair(t, func(srv net.Conn) error { return tc.serve(srv, release) })
			defer func() {
				close(release)
				if err := <-served; err != nil {
					t.Error(err)
				}
			}()

			start := time.Now()
			err := Close(c, tc.mode, start.Add(tc.deadline))
			took := time.Since(start)
			switch {
			case tc.wantIs == nil && err != nil:
				t.Errorf("Close(%v) = %v, want nil", tc.mode, err)
			case tc.wantIs != nil && !errors.Is(err, tc.wantIs):
				t.Errorf("Close(%v) = %v, want an error wrapping %v", tc.mode, err, tc.wantIs)
			}
			if tc.maxWait > 0 && took > tc.maxWait {
				t.Errorf("Close(%v) took %v, want under %v", tc.mode, took, tc.maxWait)
			}
			if took < tc.deadline && errors.Is(tc.wantIs, os.ErrDeadlineExceeded) {
				t.Errorf("Close(%v) returned after %v, before its %v deadline", tc.mode, took, tc.deadline)
			}
			// Whatever the outcome, the client's socket is closed.
			if _, err := c.Read(make([]byte, 1)); !errors.Is(err, net.ErrClosed) {
				t.Errorf("read after Close: %v, want net.ErrClosed", err)
			}
		})
	}
}

func TestCloseMode(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    CloseMode
		wantErr bool
	}{
		{name: "fin", in: "fin", want: CloseFIN},
		{name: "rst", in: "rst", want: CloseRST},
		{name: "half", in: "half", want: CloseHalf},
		{name: "server", in: "server", want: CloseServer},
		{name: "unknown name", in: "linger", wantErr: true},
		{name: "names are lower case", in: "FIN", wantErr: true},
		{name: "empty", in: "", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseCloseMode(tc.in)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("ParseCloseMode(%q) = %v, want an error", tc.in, got)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseCloseMode(%q): %v", tc.in, err)
			}
			if got != tc.want {
				t.Errorf("ParseCloseMode(%q) = %d, want %d", tc.in, got, tc.want)
			}
			if got.String() != tc.in {
				t.Errorf("ParseCloseMode(%q).String() = %q: does not round-trip", tc.in, got.String())
			}
		})
	}
}

func TestCloseModeStringOutOfRange(t *testing.T) {
	if got, want := CloseMode(9).String(), "CloseMode(9)"; got != want {
		t.Errorf("CloseMode(9).String() = %q, want %q", got, want)
	}
}

// BenchmarkDialClose is the per-connection cost of the kernel dialer: connect() and an RST close
// against a loopback listener that closes what it accepts. RST keeps the run free of client-side
// TIME_WAIT, so b.N connections do not use up the port range.
func BenchmarkDialClose(b *testing.B) {
	ln, dst := listen(b, "tcp", "127.0.0.1:0")
	accepted := make(chan struct{})
	go func() {
		defer close(accepted)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	k := NewKernel(Options{})
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		c, err := k.Dial(ctx, dst)
		if err != nil {
			b.Fatal(err)
		}
		if err := Close(c, CloseRST, time.Time{}); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	ln.Close()
	<-accepted
}

// BenchmarkDialBareClose is the same on the bare path: a blocking connect() outside the poller,
// and an RST close of the descriptor.
func BenchmarkDialBareClose(b *testing.B) {
	ln, dst := listen(b, "tcp", "127.0.0.1:0")
	accepted := make(chan struct{})
	go func() {
		defer close(accepted)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	k := NewKernel(Options{})
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		c, err := k.DialBare(ctx, dst)
		if err != nil {
			b.Fatal(err)
		}
		if err := c.Close(CloseRST); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	ln.Close()
	<-accepted
}

// TestClientHoldsTimeWait: the side that sends the first FIN holds TIME_WAIT.
func TestClientHoldsTimeWait(t *testing.T) {
	for _, tt := range []struct {
		mode CloseMode
		want bool
	}{{CloseFIN, true}, {CloseHalf, true}, {CloseRST, false}, {CloseServer, false}} {
		if got := tt.mode.ClientHoldsTimeWait(); got != tt.want {
			t.Errorf("%s: ClientHoldsTimeWait %v, want %v", tt.mode, got, tt.want)
		}
	}
}
