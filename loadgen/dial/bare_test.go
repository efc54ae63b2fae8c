//go:build linux

package dial

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/portstorm/portstorm/internal/loopback"
	"golang.org/x/sys/unix"
)

// TestBare: a detached connection keeps its socket and local address; it closes with FIN or RST.
func TestBare(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	for _, tt := range []struct {
		mode CloseMode
		want error // what the peer reads once the client closed
	}{
		{CloseFIN, io.EOF},
		{CloseRST, syscall.ECONNRESET},
	} {
		t.Run(tt.mode.String(), func(t *testing.T) {
			c, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			peer, err := ln.Accept()
			if err != nil {
				t.Fatal(err)
			}
			defer peer.Close()
			local := c.LocalAddr().(*net.TCPAddr).AddrPort()
			b, ok := Detach(c)
			if !ok {
				t.Fatal("a TCP connection was not detached")
			}
			if got := b.LocalAddr(); got.Port() != local.Port() || got.Addr().Unmap() != local.Addr().Unmap() {
				t.Errorf("local address %v, want %v", got, local)
			}
			// Detaching sent nothing: the peer's read waits.
			peer.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
			if _, err := peer.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatalf("peer read %v after the detach, want a timeout", err)
			}
			if err := b.Close(tt.mode); err != nil {
				t.Fatal(err)
			}
			peer.SetReadDeadline(time.Now().Add(5 * time.Second))
			if _, err := peer.Read(make([]byte, 1)); !errors.Is(err, tt.want) {
				t.Errorf("peer read %v, want %v", err, tt.want)
			}
		})
	}
	if _, ok := Detach(&net.UnixConn{}); ok {
		t.Error("a Unix connection was detached")
	}
}

// TestDialBare: the bare dial connects by the strategy on loopback, fails as Dial does, and
// refuses destinations outside loopback. Where it bound the port itself to a source address
// (explicit), it returns the local address without a getsockname, the same the peer sees.
func TestDialBare(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	open := NewDestination(ln.Addr().(*net.TCPAddr).AddrPort())
	closed := func() Destination { // a port nothing listens on
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		return NewDestination(l.Addr().(*net.TCPAddr).AddrPort())
	}()
	tests := []struct {
		name     string
		o        Options
		dst      Destination
		wantErr  error
		wantPort func(uint16) bool
		// wantKnown: DialBareLocal returns the local address (no getsockname needed)
		wantKnown bool
	}{
		{"kernel", Options{}, open, nil, func(p uint16) bool { return p > 0 }, false},
		{"bind-no-port from 127.0.0.2", Options{Strategy: StrategyBindNoPort}, open.From(netip.MustParseAddr("127.0.0.2")), nil, func(p uint16) bool { return p > 0 }, false},
		// A window below the host's ephemeral range, so that no other socket holds one of its ports.
		{"explicit", Options{Strategy: StrategyExplicit, Window: Window{Lo: 21300, Hi: 21309}}, open, nil, func(p uint16) bool { return p >= 21300 && p <= 21309 }, false},
		{"explicit from 127.0.0.3", Options{Strategy: StrategyExplicit, Window: Window{Lo: 21310, Hi: 21319}}, open.From(netip.MustParseAddr("127.0.0.3")), nil, func(p uint16) bool { return p >= 21310 && p <= 21319 }, true},
		{"range from 127.0.0.2", Options{Strategy: StrategyRange, Window: Window{Lo: 21320, Hi: 21329}}, open.From(netip.MustParseAddr("127.0.0.2")), nil, func(p uint16) bool { return p > 0 }, false},
		{"refused", Options{}, closed, syscall.ECONNREFUSED, nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := New(tt.o)
			if err != nil {
				t.Fatal(err)
			}
			b, known, err := d.DialBareLocal(context.Background(), tt.dst)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			peer, err := ln.Accept()
			if err != nil {
				t.Fatal(err)
			}
			defer peer.Close()
			local := b.LocalAddr()
			if want := peer.RemoteAddr().(*net.TCPAddr).AddrPort(); local.Port() != want.Port() || !tt.wantPort(local.Port()) {
				t.Errorf("local %v, the peer sees %v", local, want)
			}
			if src := tt.dst.Source; src.IsValid() && local.Addr().Unmap() != src {
				t.Errorf("source %v, want %v", local.Addr(), src)
			}
			if known.IsValid() != tt.wantKnown {
				t.Errorf("DialBareLocal returned local %v; want it known: %v", known, tt.wantKnown)
			} else if known.IsValid() && known != local {
				t.Errorf("DialBareLocal returned local %v, getsockname says %v", known, local)
			}
			if err := b.Close(CloseRST); err != nil {
				t.Fatal(err)
			}
			d.Release(tt.dst, local.Port())
		})
	}
	d, _ := New(Options{})
	if _, err := d.DialBare(context.Background(), NewDestination(netip.MustParseAddrPort("192.0.2.1:80"))); err == nil {
		t.Error("a bare dial outside loopback was made")
	}
}

// TestAwaitConnect: the wait a bare dial falls back to when a signal interrupts its connect():
// connected, refused, and out of time.
func TestAwaitConnect(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	refused := func() int { // a port nothing listens on
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		return l.Addr().(*net.TCPAddr).Port
	}()
	for _, tt := range []struct {
		name     string
		port     int
		deadline time.Duration
		want     error
	}{
		{"connected", ln.Addr().(*net.TCPAddr).Port, time.Second, nil},
		{"refused", refused, time.Second, syscall.ECONNREFUSED},
		{"out of time", ln.Addr().(*net.TCPAddr).Port, -time.Second, syscall.ETIMEDOUT},
	} {
		t.Run(tt.name, func(t *testing.T) {
			fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer unix.Close(fd)
			if err := unix.Connect(fd, &unix.SockaddrInet4{Port: tt.port, Addr: [4]byte{127, 0, 0, 1}}); err != nil && err != unix.EINPROGRESS {
				t.Fatal(err)
			}
			if err := awaitConnect(fd, time.Now().Add(tt.deadline)); !errors.Is(err, tt.want) && err != tt.want {
				t.Errorf("awaitConnect: %v, want %v", err, tt.want)
			}
		})
	}
}

// unanswered returns a loopback destination whose SYNs go unanswered: a listener with a backlog of
// 0 whose one queued connection is never accepted. Its accept queue is full, so the kernel drops
// every further SYN (tcp_conn_request: sk_acceptq_is_full, whatever syncookies say), and a
// connect to it waits until its timeout.
func unanswered(t *testing.T) Destination {
	t.Helper()
	dst := NewDestination(loopback.Unaccepted(t))
	filler, err := net.Dial("tcp", dst.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { filler.Close() })
	return dst
}

// TestConnectTimeout: against a target that never answers, a connect ends at its timeout, within
// 20 ms (beyond how late the runtime's own timers run at the moment), on both paths. The bare path waited for SO_SNDTIMEO, which the kernel sleeps in jiffies
// on its timer wheel, whose buckets are coarser the further the timeout (8 jiffies from 64 on, 64
// from 512 on: at HZ=250 a 300 ms timeout ended up to 32 ms late, a 5 s one up to 256 ms late).
// A timeout that passes before connect() is even called (1 ns) must still end it.
func TestConnectTimeout(t *testing.T) {
	checkFDs(t)
	const slack = 20 * time.Millisecond
	dst := unanswered(t)
	ctx := context.Background()
	for _, timeout := range []time.Duration{300 * time.Millisecond, time.Nanosecond} {
		d, err := New(Options{ConnectTimeout: timeout})
		if err != nil {
			t.Fatal(err)
		}
		for _, tt := range []struct {
			name string
			dial func() error
		}{
			{"bare", func() error {
				b, err := d.DialBare(ctx, dst)
				if err == nil {
					b.Close(CloseRST)
				}
				return err
			}},
			{"poller", func() error {
				c, err := d.Dial(ctx, dst)
				if err == nil {
					c.Close()
				}
				return err
			}},
		} {
			t.Run(fmt.Sprint(tt.name, "/", timeout), func(t *testing.T) {
				// Several in a row, each starting at another point of the kernel's timer buckets. Not
				// in parallel: a connect blocked in the kernel keeps its P until sysmon takes it back,
				// and with every P so blocked the timer that ends the bare connect would wait for that.
				// A reference of the test's own, with the connect's timeout, measures how late the
				// machine is right now (on a loaded machine, and under the race detector, tens of
				// ms): a timer wakes an OS thread blocked in a system call, as the connect's timeout
				// does. It runs before each connect, not beside it: two threads blocked in system
				// calls hold both Ps, and the timers wait for sysmon to take one back. On a machine
				// busier than its cores, single wake-ups are late by up to hundreds of ms now and
				// then, on either path and the reference alike; so the median connect is judged: no
				// later than the median reference, and 20 ms more at most. Every connect ends within
				// a second of its timeout.
				var worst time.Duration
				var elapsed, late []time.Duration
				for range 6 {
					late = append(late, max(blockedWake(t, timeout)()-timeout, 0))
					t0 := time.Now()
					err := tt.dial()
					d := time.Since(t0)
					worst = max(worst, d)
					elapsed = append(elapsed, d)
					var ne net.Error
					if !errors.Is(err, syscall.ETIMEDOUT) && !(errors.As(err, &ne) && ne.Timeout()) {
						t.Fatalf("connect: %v, want a timeout", err)
					}
					if d < timeout || d > timeout+time.Second {
						t.Errorf("the connect timed out after %v, want %v (within a second at most)", d, timeout)
					}
				}
				med := func(v []time.Duration) time.Duration {
					v = slices.Clone(v)
					slices.Sort(v)
					return v[len(v)/2]
				}
				if m, ml := med(elapsed), med(late); m > timeout+slack+ml {
					t.Errorf("the median connect timed out after %v, want %v (+%v at most, +%v the machine's median wake-up was late); all: %v, references late by %v",
						m, timeout, slack, ml, elapsed, late)
				}
				t.Logf("slowest timeout: %v", worst)
			})
		}
	}
}

// blockedWake starts a reference: an OS thread blocked in poll(2), woken by a runtime timer due
// after d, as a bare connect is by its timeout. The function it returns waits for the thread to be
// back in Go and returns how long that took from the start: how late the machine delivers a
// timeout to a blocked system call right now is that, less d. Its descriptors are closed when the
// function returns.
func blockedWake(t *testing.T, d time.Duration) func() time.Duration {
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	woke := make(chan time.Duration, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		fds := []unix.PollFd{{Fd: int32(p[0]), Events: unix.POLLIN}}
		for {
			if _, err := unix.Poll(fds, -1); err != unix.EINTR {
				break
			}
		}
		woke <- time.Since(t0)
	}()
	wrote := make(chan struct{})
	time.AfterFunc(d, func() {
		unix.Write(p[1], []byte{0})
		close(wrote)
	})
	return func() time.Duration {
		took := <-woke
		<-wrote
		unix.Close(p[0])
		unix.Close(p[1])
		return took
	}
}

// TestDialBareCancel: a bare connect to a target that never answers ends soon after its ctx is
// cancelled (the second signal), not at its connect timeout.
func TestDialBareCancel(t *testing.T) {
	checkFDs(t)
	dst := unanswered(t)
	const timeout = time.Minute
	d, err := New(Options{ConnectTimeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	time.AfterFunc(100*time.Millisecond, cancel)
	t0 := time.Now()
	b, err := d.DialBare(ctx, dst)
	if err == nil {
		b.Close(CloseRST)
		t.Fatal("connected to a listener whose accept queue is full")
	}
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v, want context.Canceled", err)
	}
	if elapsed := time.Since(t0); elapsed > timeout/2 {
		t.Errorf("the connect ended %v after it began, cancelled after 100ms: it waited for its timeout", elapsed)
	}
}
