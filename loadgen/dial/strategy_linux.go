package dial

import (
	"os"

	"golang.org/x/sys/unix"
)

// attemptSys is an attempt's state for Linux's system calls, kept to allocate nothing per dial.
type attemptSys struct {
	sa4 unix.SockaddrInet4
	sa6 unix.SockaddrInet6
	// guard times a bare dial's connect out.
	guard connectGuard
}

func (s *attemptSys) init() { s.guard.init() }

// setup sets the strategy's socket options and binds, storing the first failure in a.err.
func (a *attempt) setup(fd uintptr) {
	s := int(fd)
	var bindPort uint16
	switch a.d.o.Strategy {
	case StrategyKernel, StrategyBindNoPort:
		if a.src.IsValid() || a.d.o.Strategy == StrategyBindNoPort {
			if err := unix.SetsockoptInt(s, unix.SOL_IP, unix.IP_BIND_ADDRESS_NO_PORT, 1); err != nil {
				a.err = os.NewSyscallError("setsockopt", err)
				return
			}
		}
		if !a.src.IsValid() {
			return // bind-no-port to the wildcard address is a plain connect
		}
	case StrategyBind:
	case StrategyRange:
		w := a.d.o.Window
		if err := unix.SetsockoptInt(s, unix.SOL_IP, unix.IP_LOCAL_PORT_RANGE, int(uint32(w.Hi)<<16|uint32(w.Lo))); err != nil {
			a.err = os.NewSyscallError("setsockopt", err)
			return
		}
		if !a.src.IsValid() {
			return
		}
		if err := unix.SetsockoptInt(s, unix.SOL_IP, unix.IP_BIND_ADDRESS_NO_PORT, 1); err != nil {
			a.err = os.NewSyscallError("setsockopt", err)
			return
		}
	case StrategyExplicit:
		if err := unix.SetsockoptInt(s, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
			a.err = os.NewSyscallError("setsockopt", err)
			return
		}
		bindPort = a.port
	}
	var err error
	if a.v6 {
		a.sa6 = unix.SockaddrInet6{Port: int(bindPort)}
		if a.src.IsValid() {
			a.sa6.Addr = a.src.As16()
		}
		err = unix.Bind(s, &a.sa6)
	} else {
		a.sa4 = unix.SockaddrInet4{Port: int(bindPort)}
		if a.src.IsValid() {
			a.sa4.Addr = a.src.As4()
		}
		err = unix.Bind(s, &a.sa4)
	}
	if err != nil {
		a.err = os.NewSyscallError("bind", err)
	}
}
