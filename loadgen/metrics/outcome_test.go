package metrics

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"
)

// opErr is an error shaped like the ones the net package returns for a failed system call.
func opErr(op, call string, errno syscall.Errno) error {
	return &net.OpError{Op: op, Net: "tcp", Err: os.NewSyscallError(call, errno)}
}

func TestClassify(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want Outcome
	}{
		{"nil is ok", nil, OK},
		{"ECONNREFUSED on connect", opErr("dial", "connect", syscall.ECONNREFUSED), ECONNREFUSED},
		{"EADDRNOTAVAIL on connect", opErr("dial", "connect", syscall.EADDRNOTAVAIL), EADDRNOTAVAIL},
		{"EADDRINUSE on connect", opErr("dial", "connect", syscall.EADDRINUSE), EADDRINUSE},
		{"EADDRINUSE on bind", opErr("bind", "bind", syscall.EADDRINUSE), EADDRINUSE},
		{"ETIMEDOUT on connect", opErr("dial", "connect", syscall.ETIMEDOUT), ETIMEDOUT},
		{"ECONNRESET on read", opErr("read", "read", syscall.ECONNRESET), ECONNRESET},
		{"EPIPE on write is a reset", opErr("write", "write", syscall.EPIPE), ECONNRESET},
		{"ECONNABORTED on read is a reset", opErr("read", "read", syscall.ECONNABORTED), ECONNRESET},
		{"EMFILE on socket", opErr("dial", "socket", syscall.EMFILE), EMFILE},
		{"ENFILE on socket counts as EMFILE", opErr("dial", "socket", syscall.ENFILE), EMFILE},
		{"read deadline", &net.OpError{Op: "read", Net: "tcp", Err: os.ErrDeadlineExceeded}, ETIMEDOUT},
		{"context deadline", context.DeadlineExceeded, ETIMEDOUT},
		{"EOF", io.EOF, EOF},
		{"unexpected EOF", io.ErrUnexpectedEOF, EOF},
		{"echo mismatch", ErrEchoMismatch, EchoMismatch},
		{"HTTP status", fmt.Errorf("%w: status 200, want 404", ErrStatusMismatch), StatusMismatch},
		{"Redis reply", fmt.Errorf("%w: -ERR unknown command", ErrReplyMismatch), ReplyMismatch},
		{"malformed response", fmt.Errorf("%w: bad status line", ErrBadResponse), BadResponse},
		{"TLS certificate", fmt.Errorf("%w: x509: certificate signed by unknown authority", ErrTLSHandshake), TLSFailed},
		{"reset during the TLS handshake keeps its transport outcome",
			fmt.Errorf("%w: %w", ErrTLSHandshake, opErr("read", "read", syscall.ECONNRESET)), ECONNRESET},
		{"timeout during the TLS handshake", fmt.Errorf("%w: %w", ErrTLSHandshake, os.ErrDeadlineExceeded), ETIMEDOUT},
		{"hard stop", ErrCanceled, Canceled},
		{"context canceled", context.Canceled, Canceled},
		{"unrelated error", errors.New("something else"), Other},
		{"ENETUNREACH on connect: no route", opErr("dial", "connect", syscall.ENETUNREACH), ENETUNREACH},
		{"ENETUNREACH on write: ICMP net unreachable", opErr("write", "write", syscall.ENETUNREACH), ENETUNREACH},
		{"EHOSTUNREACH on connect", opErr("dial", "connect", syscall.EHOSTUNREACH), EHOSTUNREACH},
		{"EHOSTDOWN on connect: ICMP host unknown", opErr("dial", "connect", syscall.EHOSTDOWN), EHOSTUNREACH},
		{"EHOSTUNREACH as a bare errno", syscall.EHOSTUNREACH, EHOSTUNREACH},
		{"ENETDOWN on connect", opErr("dial", "connect", syscall.ENETDOWN), ENETDOWN},
		{"ENETDOWN in a syscall error", os.NewSyscallError("sendmsg", syscall.ENETDOWN), ENETDOWN},
		{"unlisted errno", opErr("dial", "connect", syscall.EPROTO), Other},
	}
	// The same errors wrapped once more, as callers add context with %w.
	for _, tt := range tests[1:] {
		tests = append(tests, struct {
			name string
			err  error
			want Outcome
		}{tt.name + ", wrapped", fmt.Errorf("connection 42 to 10.0.0.1:7: %w", tt.err), tt.want})
	}
	covered := map[Outcome]bool{}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Classify(tt.err); got != tt.want {
				t.Errorf("Classify(%#v) = %v, want %v", tt.err, got, tt.want)
			}
		})
		covered[tt.want] = true
	}
	for o := range NumOutcomes {
		if !covered[o] {
			t.Errorf("no case classifies as %v", o)
		}
	}
}

// TestClassifyReal classifies the errors the kernel and the net package really return.
func TestClassifyReal(t *testing.T) {
	tests := []struct {
		name string
		err  func(t *testing.T) error
		want Outcome
	}{
		{"dial a closed loopback port", func(t *testing.T) error {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			addr := ln.Addr().String()
			ln.Close()
			c, err := net.Dial("tcp", addr)
			if err == nil {
				c.Close()
			}
			return err
		}, ECONNREFUSED},
		{"dial past its deadline", func(t *testing.T) error {
			addr := serve(t, func(net.Conn) {})
			d := net.Dialer{Deadline: time.Now().Add(-time.Second)}
			c, err := d.Dial("tcp", addr)
			if err == nil {
				c.Close()
			}
			return err
		}, ETIMEDOUT},
		{"dial with a canceled context", func(t *testing.T) error {
			addr := serve(t, func(net.Conn) {})
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			var d net.Dialer
			c, err := d.DialContext(ctx, "tcp", addr)
			if err == nil {
				c.Close()
			}
			return err
		}, Canceled},
		{"read past the read deadline", func(t *testing.T) error {
			return readFrom(t, serve(t, func(c net.Conn) { _, _ = c.Read(make([]byte, 1)) }), time.Now().Add(10*time.Millisecond))
		}, ETIMEDOUT},
		{"read from a peer that closed", func(t *testing.T) error {
			return readFrom(t, serve(t, func(net.Conn) {}), time.Time{})
		}, EOF},
		{"read from a peer that reset", func(t *testing.T) error {
			return readFrom(t, serve(t, func(c net.Conn) {
				// SO_LINGER 0: close sends RST instead of FIN (tcp(7)).
				_ = c.(*net.TCPConn).SetLinger(0)
			}), time.Time{})
		}, ECONNRESET},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.err(t)
			if got := Classify(err); got != tt.want {
				t.Errorf("Classify(%v) = %v, want %v", err, got, tt.want)
			}
		})
	}
}

// serve listens on a loopback port, hands the first accepted connection to handle and closes it
// after; the listener and its goroutine are gone when the test ends.
func serve(t *testing.T, handle func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		handle(c)
	})
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	return ln.Addr().String()
}

// readFrom connects to addr and returns the error of a read, under deadline if it is set. A peer
// that resets at once may do so before connect() returns, so the dial's error is returned too.
func readFrom(t *testing.T, addr string, deadline time.Time) error {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.SetReadDeadline(deadline); err != nil {
		t.Fatal(err)
	}
	_, err = c.Read(make([]byte, 1))
	return err
}

func TestOutcomeNames(t *testing.T) {
	for o := range NumOutcomes {
		t.Run(o.String(), func(t *testing.T) {
			got, ok := ParseOutcome(o.String())
			if !ok || got != o {
				t.Errorf("ParseOutcome(%q) = %v, %v; want %v, true", o.String(), got, ok, o)
			}
		})
	}
	for _, s := range []string{"", "invalid", "OK", "econnrefused", "EMFILE/ENFILE"} {
		if o, ok := ParseOutcome(s); ok {
			t.Errorf("ParseOutcome(%q) = %v, true; want refused", s, o)
		}
	}
	if s := NumOutcomes.String(); s != "invalid" {
		t.Errorf("NumOutcomes.String() = %q, want invalid", s)
	}
}

func TestLatencyNames(t *testing.T) {
	for l := range NumLatencies {
		t.Run(l.String(), func(t *testing.T) {
			got, ok := parseLatency(l.String())
			if !ok || got != l {
				t.Errorf("parseLatency(%q) = %v, %v; want %v, true", l.String(), got, ok, l)
			}
		})
	}
	if s := NumLatencies.String(); s != "invalid" {
		t.Errorf("NumLatencies.String() = %q, want invalid", s)
	}
}
