package dial

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/portstorm/portstorm/internal/sockfd"
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
	fd, ok := sockfd.Dup(tc)
	if !ok {
		return Bare{}, false
	}
	tc.Close()
	return Bare{fd: int32(fd)}, true
}

// LocalAddr is the connection's local address and port, from one getsockname(2) decoded here,
// allocating nothing (x/sys/unix's Getsockname makes a second system call, getsockopt SO_PROTOCOL
// to tell L2TP from TCP, and allocates the address: on a storm's path, one system call in ten).
// The invalid AddrPort when it fails. Kept nowhere, as few connections need it.
func (b Bare) LocalAddr() netip.AddrPort {
	var rsa unix.RawSockaddrAny
	n := uint32(unix.SizeofSockaddrAny)
	if _, _, errno := unix.RawSyscall(unix.SYS_GETSOCKNAME, uintptr(b.fd), uintptr(unsafe.Pointer(&rsa)), uintptr(unsafe.Pointer(&n))); errno != 0 {
		return netip.AddrPort{}
	}
	switch rsa.Addr.Family {
	case unix.AF_INET:
		sa := (*unix.RawSockaddrInet4)(unsafe.Pointer(&rsa))
		return netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), netPort(sa.Port))
	case unix.AF_INET6:
		sa := (*unix.RawSockaddrInet6)(unsafe.Pointer(&rsa))
		return netip.AddrPortFrom(netip.AddrFrom16(sa.Addr), netPort(sa.Port))
	}
	return netip.AddrPort{}
}

// netPort reads a port kept in network byte order.
func netPort(p uint16) uint16 {
	b := (*[2]byte)(unsafe.Pointer(&p))
	return uint16(b[0])<<8 | uint16(b[1])
}

// Close ends the connection with FIN (CloseFIN) or RST (CloseRST: SO_LINGER {1, 0}). The modes
// that wait for the peer (half, server) need a poller and are not held bare.
func (b Bare) Close(mode CloseMode) error {
	fd := int(b.fd)
	// Neither call waits (a close without a lingering timeout queues its FIN or RST and returns):
	// raw calls, without the runtime's system-call bookkeeping (sockfd.CloseNow).
	if mode == CloseRST {
		if err := sockfd.LingerRST(fd); err != nil {
			sockfd.CloseNow(fd)
			return &net.OpError{Op: "close", Net: "tcp", Err: os.NewSyscallError("setsockopt", err)}
		}
	}
	if err := sockfd.CloseNow(fd); err != nil {
		return &net.OpError{Op: "close", Net: "tcp", Err: os.NewSyscallError("close", err)}
	}
	return nil
}

// BareDialer dials connections bare (Ports does, on loopback).
type BareDialer interface {
	DialBare(ctx context.Context, dst Destination) (Bare, error)
	// DialBareLocal is DialBare that also returns the connection's local address when the dial
	// knows it without asking the kernel (a port the explicit strategy picked and bound to a source
	// address), and the invalid AddrPort when only getsockname (Bare.LocalAddr) can tell.
	DialBareLocal(ctx context.Context, dst Destination) (Bare, netip.AddrPort, error)
}

var _ BareDialer = (*Ports)(nil)

// DialBare connects to dst by the strategy, as Dial does, on a blocking socket of its own
// outside Go's poller, and returns the connection bare. On loopback the whole handshake runs
// inside connect() (the SYN-ACK is processed in the same system call), so a blocking connect costs
// one system call where the poller's non-blocking one costs an EINPROGRESS, two epoll_ctl, a
// wake-up, SO_ERROR and the addresses: the difference between a storm at the kernel's pace and
// one at a third of it. For loopback destinations only. The connect timeout is a timer that shuts
// the socket down (connectGuard), which also ends a connect whose ctx is done, within guardTick.
func (d *Ports) DialBare(ctx context.Context, dst Destination) (Bare, error) {
	b, _, err := d.DialBareLocal(ctx, dst)
	return b, err
}

// DialBareLocal is DialBare, and the local address when it is known without a system call: the
// explicit strategy bound the port it picked to the destination's source address (without one,
// the kernel picks the address at connect() time, so only getsockname can tell). The port
// observatory needs every connection's local address; this spares its getsockname on that path.
func (d *Ports) DialBareLocal(ctx context.Context, dst Destination) (Bare, netip.AddrPort, error) {
	if err := ctx.Err(); err != nil {
		return Bare{}, netip.AddrPort{}, err
	}
	if !IsLoopback(dst.AddrPort.Addr()) {
		return Bare{}, netip.AddrPort{}, fmt.Errorf("dial: a bare dial is for loopback destinations, not %s", dst.addr)
	}
	a := d.attempts.Get().(*attempt)
	defer d.attempts.Put(a)
	a.src = dst.Source
	a.v6 = dst.AddrPort.Addr().Is6()
	a.port, a.err = 0, nil
	if d.explicit != nil {
		p, ok := d.explicit.pick(dst)
		if !ok {
			return Bare{}, netip.AddrPort{}, opError(dst, SyscallPicker, syscall.EADDRNOTAVAIL)
		}
		a.port = p
	}
	b, err := a.dialBare(ctx, dst)
	if err != nil {
		if a.port != 0 {
			d.explicit.release(dst, a.port)
		}
		return b, netip.AddrPort{}, err
	}
	var local netip.AddrPort
	if a.port != 0 && a.src.IsValid() {
		// bind(src, port) succeeded and connect() kept both: the address is (src, port).
		local = netip.AddrPortFrom(a.src, a.port)
	}
	return b, local, nil
}

func (a *attempt) dialBare(ctx context.Context, dst Destination) (Bare, error) {
	family := unix.AF_INET
	if a.v6 {
		family = unix.AF_INET6
	}
	fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return Bare{}, opError(dst, "socket", err)
	}
	fail := func(call string, err error) (Bare, error) {
		unix.Close(fd)
		return Bare{}, opError(dst, call, err)
	}
	if a.d.o.Strategy != StrategyKernel || a.src.IsValid() {
		a.setup(uintptr(fd))
		if a.err != nil {
			unix.Close(fd)
			return Bare{}, &net.OpError{Op: "dial", Net: "tcp", Addr: net.TCPAddrFromAddrPort(dst.AddrPort), Err: a.err}
		}
	}
	var sa unix.Sockaddr
	if a.v6 {
		sa = &unix.SockaddrInet6{Port: int(dst.AddrPort.Port()), Addr: dst.AddrPort.Addr().As16()}
	} else {
		sa = &unix.SockaddrInet4{Port: int(dst.AddrPort.Port()), Addr: dst.AddrPort.Addr().Unmap().As4()}
	}
	g := &a.guard
	deadline := time.Now().Add(a.d.o.ConnectTimeout)
	g.arm(ctx, fd, deadline)
	err = unix.Connect(fd, sa)
	if err == unix.EINTR {
		// With no send timeout a signal makes the connect's wait -ERESTARTSYS (sock_intr_errno in
		// include/net/sock.h), and the Go runtime's SA_RESTART handlers have the kernel restart it,
		// still waiting; a handler installed without SA_RESTART returns EINTR, and
		// connect() must not be called again (EALREADY). Wait as a non-blocking connect is waited
		// for: writable, then SO_ERROR.
		err = awaitConnect(fd, deadline)
	}
	if cause := g.disarm(); cause != nil {
		// The guard shut the socket down: the connect failed, or made it just as time ran out.
		unix.Close(fd)
		return Bare{}, &net.OpError{Op: "dial", Net: "tcp", Addr: net.TCPAddrFromAddrPort(dst.AddrPort), Err: cause}
	}
	if err != nil {
		return fail("connect", err)
	}
	return Bare{fd: int32(fd)}, nil
}

// connectGuard ends a blocking connect at its deadline, or soon after its ctx is done. It replaces
// SO_SNDTIMEO, which costs a system call per connection and is slept in jiffies on the kernel's
// timer wheel, whose buckets are coarser the further the timeout (8 jiffies from 64 jiffies on, 64
// from 512 on: at HZ=250 a 5 s connect_timeout ended up to 256 ms late). A timer shuts the socket
// down: shutdown(2) of a socket in SYN_SENT disconnects it and wakes its connect (inet_shutdown),
// which returns at once. One guard per pooled attempt, so arming it allocates nothing; a connect
// that completes at once (loopback) is disarmed before its timer ever runs, and one that waits is
// looked at every guardTick, when ctx is checked (a context.AfterFunc would allocate per connect).
type connectGuard struct {
	mu       sync.Mutex
	t        *time.Timer
	ctx      context.Context
	fd       int
	live     bool  // fd is connecting
	cause    error // why the guard shut fd down: nil until it did
	deadline time.Time
}

// guardTick is how often a waiting connect's ctx is checked: how late a cancelled one ends.
const guardTick = 50 * time.Millisecond

// init makes the guard's timer, stopped.
func (g *connectGuard) init() {
	g.t = time.AfterFunc(time.Hour, g.fire)
	g.t.Stop()
}

func (g *connectGuard) arm(ctx context.Context, fd int, deadline time.Time) {
	g.mu.Lock()
	g.ctx, g.fd, g.live, g.cause, g.deadline = ctx, fd, true, nil, deadline
	g.mu.Unlock()
	g.t.Reset(min(time.Until(deadline), guardTick))
}

// disarm ends the guard's watch over the connect that returned, and reports why it shut the
// socket down, if it did.
func (g *connectGuard) disarm() error {
	g.mu.Lock()
	g.live = false
	g.ctx = nil
	cause := g.cause
	g.mu.Unlock()
	g.t.Stop()
	return cause
}

func (g *connectGuard) fire() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.live {
		return
	}
	if g.cause == nil {
		left := time.Until(g.deadline)
		switch err := g.ctx.Err(); {
		case err != nil:
			g.cause = err
		case left <= 0:
			g.cause = os.NewSyscallError("connect", unix.ETIMEDOUT)
		default:
			// Time left (or a late run of an earlier arming): look again later.
			g.t.Reset(min(left, guardTick))
			return
		}
	}
	unix.Shutdown(g.fd, unix.SHUT_RDWR)
	// The connecting goroutine may not have entered connect() yet (it was descheduled between
	// arming and the call), where a shutdown does nothing: shoot again until disarmed.
	g.t.Reset(time.Millisecond)
}

// awaitConnect waits until fd's connect completes, or deadline; nil when it connected.
func awaitConnect(fd int, deadline time.Time) error {
	pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLOUT}}
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return unix.ETIMEDOUT
		}
		n, err := unix.Poll(pfd, int(left/time.Millisecond)+1)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		if n == 0 {
			continue // timed out: the next turn says so
		}
		soerr, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ERROR)
		if err != nil {
			return err
		}
		if soerr != 0 {
			return unix.Errno(soerr)
		}
		return nil
	}
}

// opError shapes a failed system call as the net package does, so outcomes classify it alike.
func opError(dst Destination, call string, err error) error {
	return &net.OpError{Op: "dial", Net: "tcp", Addr: net.TCPAddrFromAddrPort(dst.AddrPort), Err: os.NewSyscallError(call, err)}
}

// Attach turns b back into a net.Conn on Go's poller, for a held connection that has more to say
// at its close (a WebSocket's closing handshake). On success b's descriptor is closed (the
// net.Conn has its own) and b must not be used after; on failure b is untouched.
func Attach(b Bare) (net.Conn, error) {
	fd, err := unix.Dup(int(b.fd))
	if err != nil {
		return nil, &net.OpError{Op: "attach", Net: "tcp", Err: os.NewSyscallError("dup", err)}
	}
	f := os.NewFile(uintptr(fd), "bare")
	c, err := net.FileConn(f)
	f.Close()
	if err != nil {
		return nil, &net.OpError{Op: "attach", Net: "tcp", Err: err}
	}
	unix.Close(int(b.fd))
	return c, nil
}
