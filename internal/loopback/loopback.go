//go:build linux

// Package loopback gives tests loopback ports in a known, held state: one nothing listens on, and
// one whose listener never accepts. Each is held by a socket of the test's own until it ends, so
// no other socket on the machine can take the port meanwhile.
package loopback

import (
	"net/netip"
	"testing"

	"golang.org/x/sys/unix"
)

// ClosedPort is a 127.0.0.1 port nobody listens on: a socket bound without SO_REUSEADDR and never
// listening. Every connect to it is answered with a RST, and connect's own port choice skips it
// (a port with a bind bucket), so no connect can reach itself there.
func ClosedPort(t testing.TB) netip.AddrPort { return held(t, false) }

// Unaccepted is a 127.0.0.1 port whose listener (backlog 0) never accepts: once its accept queue
// is full (a backlog of 0 still queues one connection), Linux drops further SYNs
// (tcp_conn_request: sk_acceptq_is_full), so a connect waits out retransmits until its timeout.
func Unaccepted(t testing.TB) netip.AddrPort { return held(t, true) }

func held(t testing.TB, listen bool) netip.AddrPort {
	t.Helper()
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if listen {
		if err := unix.Listen(fd, 0); err != nil {
			t.Fatal(err)
		}
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), uint16(sa.(*unix.SockaddrInet4).Port))
}
