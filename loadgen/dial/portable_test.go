package dial

import (
	"context"
	"net"
	"net/netip"
	"testing"
)

// portableDialer returns a dialer whose attempts set sockets up as on systems other than Linux.
func portableDialer(t *testing.T, o Options) *Ports {
	t.Helper()
	d, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	prev := d.attempts.New
	d.attempts.New = func() any {
		a := prev().(*attempt)
		a.ctl = a.setupPortable
		return a
	}
	return d
}

// TestSetupPortable: the socket set-up of other systems, run here. A source address is bound (the
// kernel strategy binds it with port 0 there), and the explicit strategy binds its pick with
// SO_REUSEADDR, so one port serves two destinations at once.
func TestSetupPortable(t *testing.T) {
	var dsts []Destination
	for range 2 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				defer c.Close()
			}
		}()
		dsts = append(dsts, NewDestination(netip.MustParseAddrPort(ln.Addr().String())))
	}
	src := netip.MustParseAddr("127.0.0.2")
	// Below the ephemeral range (32768 on), where other programs' connections take no port.
	w := Window{Lo: 21000, Hi: 21009}
	for _, tt := range []struct {
		name     string
		o        Options
		src      netip.Addr
		window   bool // the local port lies in w
		samePort bool // both destinations get the same local port
	}{
		{"kernel, no source", Options{Strategy: StrategyKernel}, netip.Addr{}, false, false},
		{"kernel, source", Options{Strategy: StrategyKernel}, src, false, false},
		{"bind, source", Options{Strategy: StrategyBind}, src, false, false},
		{"explicit", Options{Strategy: StrategyExplicit, Window: w}, netip.Addr{}, true, true},
		{"explicit, source", Options{Strategy: StrategyExplicit, Window: w}, src, true, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			d := portableDialer(t, tt.o)
			var ports []uint16
			for _, dst := range dsts {
				c, err := d.Dial(context.Background(), dst.From(tt.src))
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				local := c.LocalAddr().(*net.TCPAddr).AddrPort()
				if tt.src.IsValid() && local.Addr() != tt.src {
					t.Errorf("local address %s, want %s", local.Addr(), tt.src)
				}
				if tt.window && !w.Contains(local.Port()) {
					t.Errorf("local port %d outside %d-%d", local.Port(), w.Lo, w.Hi)
				}
				ports = append(ports, local.Port())
			}
			// Without a source or a window the kernel may pick the same port for both: not checked.
			if same := ports[0] == ports[1]; (tt.src.IsValid() || tt.window) && same != tt.samePort {
				t.Errorf("local ports %v: same %v, want %v", ports, same, tt.samePort)
			}
		})
	}
}
