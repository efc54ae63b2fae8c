//go:build linux

package dial

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/portstorm/portstorm/loadgen/isolate/nstest"
)

func TestParseStrategy(t *testing.T) {
	for i := range numStrategies {
		s, err := ParseStrategy(i.String())
		if err != nil || s != i {
			t.Errorf("ParseStrategy(%q) = %v, %v", i.String(), s, err)
		}
	}
	if _, err := ParseStrategy("random"); err == nil {
		t.Error("ParseStrategy(random) accepted")
	}
	if got := Strategy(200).String(); got != "invalid" {
		t.Errorf("Strategy(200) = %q", got)
	}
}

func TestNewRefusesMissingWindow(t *testing.T) {
	for _, s := range []Strategy{StrategyRange, StrategyExplicit} {
		if _, err := New(Options{Strategy: s}); err == nil {
			t.Errorf("%s without a window accepted", s)
		}
	}
	if _, err := New(Options{Strategy: numStrategies}); err == nil {
		t.Error("an unknown strategy accepted")
	}
}

func TestSyscall(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"connect", &net.OpError{Op: "dial", Err: &os.SyscallError{Syscall: "connect", Err: syscall.EADDRNOTAVAIL}}, "connect"},
		{"bind", &net.OpError{Op: "dial", Err: &os.SyscallError{Syscall: "bind", Err: syscall.EADDRINUSE}}, "bind"},
		{"none", errors.New("plain"), ""},
		{"nil", nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Syscall(tt.err); got != tt.want {
				t.Errorf("Syscall = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestPicker: the explicit strategy hands out each port of the window once per destination at a
// time, shares port numbers across destinations, skips the destination's own port, and says when
// the window is full.
func TestPicker(t *testing.T) {
	src := netip.MustParseAddr("127.0.0.2")
	a := NewDestination(netip.MustParseAddrPort("127.0.0.1:7001")).From(src)
	b := NewDestination(netip.MustParseAddrPort("127.0.0.1:7002")).From(src)
	self := NewDestination(netip.MustParseAddrPort("127.0.0.2:40001")).From(src)
	p := newPicker(Window{Lo: 40000, Hi: 40002})
	pick := func(d Destination) int {
		port, ok := p.pick(d)
		if !ok {
			return -1
		}
		return int(port)
	}
	steps := []struct {
		name string
		got  func() int
		want int
	}{
		{"a first", func() int { return pick(a) }, 40000},
		{"a second", func() int { return pick(a) }, 40001},
		{"b shares the first", func() int { return pick(b) }, 40000},
		{"a third", func() int { return pick(a) }, 40002},
		{"a full", func() int { return pick(a) }, -1},
		{"a released 40001 comes back", func() int { p.release(a, 40001); return pick(a) }, 40001},
		{"release outside the window is ignored", func() int { p.release(a, 9); return pick(a) }, -1},
		{"double release counts once", func() int { p.release(b, 40000); p.release(b, 40000); return pick(b) }, 40001},
		{"the destination's own port is skipped", func() int { return pick(self) }, 40000},
		{"then the next", func() int { return pick(self) }, 40002},
		{"and it is never handed out", func() int { p.release(self, 40001); return pick(self) }, -1},
	}
	for _, s := range steps {
		if got := s.got(); got != s.want {
			t.Errorf("%s: got %d, want %d", s.name, got, s.want)
		}
	}
}

// TestPickerLargeWindow walks a window wider than one bitmap word, wrapping around.
func TestPickerLargeWindow(t *testing.T) {
	d := NewDestination(netip.MustParseAddrPort("127.0.0.1:7001"))
	p := newPicker(Window{Lo: 1024, Hi: 1024 + 199})
	seen := map[uint16]bool{}
	for i := range 200 {
		port, ok := p.pick(d)
		if !ok || seen[port] {
			t.Fatalf("pick %d: %d, %v (seen %v)", i, port, ok, seen[port])
		}
		seen[port] = true
	}
	if _, ok := p.pick(d); ok {
		t.Fatal("a full window handed out a port")
	}
	p.release(d, 1024+150)
	if port, ok := p.pick(d); !ok || port != 1024+150 {
		t.Errorf("after a release: %d, %v; want 1174", port, ok)
	}
}

// TestStrategiesShareOrNot: on a one-port window, kernel-chosen strategies and explicit use the
// same local port toward two destinations at once; bind cannot. Failures name their system call.
func TestStrategiesShareOrNot(t *testing.T) {
	tests := []struct {
		name     string
		o        Options
		src      string
		sysctl   string // ip_local_port_range in the test's namespace
		secondB  string // "" when the second destination gets the same port; else the syscall of the failure
		thirdErr string // the syscall of the failure when the first destination asks again
	}{
		{"range", Options{Strategy: StrategyRange, Window: Window{40000, 40000}}, "127.0.0.1", "", "", "connect"},
		{"bind-no-port", Options{Strategy: StrategyBindNoPort}, "127.0.0.1", "40000 40000", "", "connect"},
		{"kernel", Options{Strategy: StrategyKernel}, "", "40000 40000", "", "connect"},
		{"explicit", Options{Strategy: StrategyExplicit, Window: Window{40000, 40000}}, "127.0.0.1", "", "", SyscallPicker},
		{"bind", Options{Strategy: StrategyBind}, "127.0.0.1", "40000 40000", "bind", "bind"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !nstest.Run(t) {
				return
			}
			checkFDs(t)
			if tt.sysctl != "" {
				nstest.Sysctl(t, "ip_local_port_range", tt.sysctl)
			}
			_, a := listen(t, "tcp", "127.0.0.1:7001")
			_, b := listen(t, "tcp", "127.0.0.1:7002")
			if tt.src != "" {
				a, b = a.From(netip.MustParseAddr(tt.src)), b.From(netip.MustParseAddr(tt.src))
			}
			tt.o.ConnectTimeout = time.Second
			d, err := New(tt.o)
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			c1, err := d.Dial(ctx, a)
			if err != nil {
				t.Fatal(err)
			}
			defer c1.Close()
			port := c1.LocalAddr().(*net.TCPAddr).Port
			if port != 40000 {
				t.Errorf("first connection from port %d, want 40000", port)
			}
			c2, err := d.Dial(ctx, b)
			switch {
			case tt.secondB == "" && err != nil:
				t.Fatalf("second destination: %v", err)
			case tt.secondB == "":
				defer c2.Close()
				if p2 := c2.LocalAddr().(*net.TCPAddr).Port; p2 != port {
					t.Errorf("second destination from port %d, want the shared %d", p2, port)
				}
			case err == nil:
				c2.Close()
				t.Fatalf("second destination connected; want a failure from %s", tt.secondB)
			case Syscall(err) != tt.secondB:
				t.Errorf("second destination: %v from %q, want from %s", err, Syscall(err), tt.secondB)
			}
			c3, err := d.Dial(ctx, a)
			if err == nil {
				c3.Close()
				t.Fatal("a second connection to the first destination on a one-port window")
			}
			if Syscall(err) != tt.thirdErr || !(errors.Is(err, syscall.EADDRNOTAVAIL) || errors.Is(err, syscall.EADDRINUSE)) {
				t.Errorf("third: %v from %q, want EADDRNOTAVAIL or EADDRINUSE from %s", err, Syscall(err), tt.thirdErr)
			}
			if tt.o.Strategy == StrategyExplicit {
				// RST: the listener never accepts, so a FIN would leave the 4-tuple in FIN_WAIT2.
				d.Release(a, c1.LocalAddr().(*net.TCPAddr).AddrPort().Port())
				Close(c1, CloseRST, time.Time{})
				c4, err := d.Dial(ctx, a)
				if err != nil {
					t.Fatalf("after the release: %v", err)
				}
				c4.Close()
			}
		})
	}
}
