package dial

import (
	"net"
	"net/netip"
	"os"

	"golang.org/x/sys/unix"
)

// Bare is an established connection kept as its descriptor alone, outside Go's runtime poller:
// no net.Conn, netFD, poller descriptor or addresses on the heap. A connection held idle (the
// plan's hold) needs nothing else until it is closed, and with tens of thousands held those
// objects are most of what a held connection costs the generator.
type Bare struct{ fd int32 }

// Detach turns c into a Bare connection: its descriptor is duplicated and c closed (the socket
// stays open through the duplicate, so nothing is sent). It reports false, with c untouched, for
// a connection that is not plain TCP.
func Detach(c net.Conn) (Bare, bool) {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return Bare{}, false
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return Bare{}, false
	}
	fd := -1
	if err := rc.Control(func(orig uintptr) {
		fd, err = unix.FcntlInt(orig, unix.F_DUPFD_CLOEXEC, 0)
	}); err != nil || fd < 0 {
		return Bare{}, false
	}
	tc.Close()
	return Bare{fd: int32(fd)}, true
}

// LocalAddr is the connection's local address and port, from getsockname (the invalid AddrPort
// when that fails): kept nowhere, as few connections need it.
func (b Bare) LocalAddr() netip.AddrPort {
	sa, err := unix.Getsockname(int(b.fd))
	if err != nil {
		return netip.AddrPort{}
	}
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		return netip.AddrPortFrom(netip.AddrFrom4(a.Addr), uint16(a.Port))
	case *unix.SockaddrInet6:
		return netip.AddrPortFrom(netip.AddrFrom16(a.Addr), uint16(a.Port))
	}
	return netip.AddrPort{}
}

// Close ends the connection with FIN (CloseFIN) or RST (CloseRST: SO_LINGER {1, 0}). The modes
// that wait for the peer (half, server) need a poller and are not held bare.
func (b Bare) Close(mode CloseMode) error {
	fd := int(b.fd)
	if mode == CloseRST {
		if err := unix.SetsockoptLinger(fd, unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1, Linger: 0}); err != nil {
			unix.Close(fd)
			return &net.OpError{Op: "close", Net: "tcp", Err: os.NewSyscallError("setsockopt", err)}
		}
	}
	if err := unix.Close(fd); err != nil {
		return &net.OpError{Op: "close", Net: "tcp", Err: os.NewSyscallError("close", err)}
	}
	return nil
}
