package dial

import (
	"os"
	"syscall"
)

// setupPortable is setup where Linux's socket options are not: it binds the source address (and
// the explicit strategy's port, with SO_REUSEADDR), storing the first failure in a.err. Without
// IP_BIND_ADDRESS_NO_PORT a source address is bound with port 0, which reserves a port per socket
// as the bind strategy does. New refuses bind-no-port and range there. Linux tests run it too.
func (a *attempt) setupPortable(fd uintptr) {
	var bindPort uint16
	if a.d.o.Strategy == StrategyExplicit {
		if err := reuseAddr(fd); err != nil {
			a.err = os.NewSyscallError("setsockopt", err)
			return
		}
		bindPort = a.port
	} else if !a.src.IsValid() {
		return
	}
	var sa syscall.Sockaddr
	if a.v6 {
		sa6 := &syscall.SockaddrInet6{Port: int(bindPort)}
		if a.src.IsValid() {
			sa6.Addr = a.src.As16()
		}
		sa = sa6
	} else {
		sa4 := &syscall.SockaddrInet4{Port: int(bindPort)}
		if a.src.IsValid() {
			sa4.Addr = a.src.As4()
		}
		sa = sa4
	}
	if err := bindAddr(fd, sa); err != nil {
		a.err = os.NewSyscallError("bind", err)
	}
}
