package preflight

import (
	"errors"
	"fmt"
	"net/netip"

	"golang.org/x/sys/unix"

	"github.com/portstorm/portstorm/loadgen/ports"
)

// Census counts, with one sock_diag dump per address family, the listening sockets whose port lies
// in lo..hi (connect() skips such a port for every destination) and the other sockets on the source
// addresses (any address when sources is empty) holding a port there.
func Census(lo, hi int, sources []netip.Addr) (listeners, held int, err error) {
	src := make(map[netip.Addr]bool, len(sources))
	for _, a := range sources {
		src[a] = true
	}
	lports := map[uint16]bool{}
	hports := map[netip.AddrPort]bool{}
	fn := func(s ports.Socket) {
		p := int(s.Local.Port())
		if p < lo || p > hi {
			return
		}
		if s.State == ports.StateListen {
			lports[s.Local.Port()] = true
			return
		}
		if len(src) == 0 || src[s.Local.Addr()] {
			hports[s.Local] = true
		}
	}
	err = errors.Join(ports.Dump(ports.FamilyV4, ports.AllStates, fn), ports.Dump(ports.FamilyV6, ports.AllStates, fn))
	return len(lports), len(hports), err
}

// CheckSources makes sure every source address belongs to this host: it binds each one (with
// IP_BIND_ADDRESS_NO_PORT, so no port is taken) and reports the ones the kernel refuses.
func CheckSources(addrs []netip.Addr) error {
	var errs []error
	for _, a := range addrs {
		a = a.Unmap()
		var fam int
		var sa unix.Sockaddr
		if a.Is4() {
			fam, sa = unix.AF_INET, &unix.SockaddrInet4{Addr: a.As4()}
		} else {
			fam, sa = unix.AF_INET6, &unix.SockaddrInet6{Addr: a.As16()}
		}
		fd, err := unix.Socket(fam, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			errs = append(errs, fmt.Errorf("source %s: socket: %w", a, err))
			continue
		}
		_ = unix.SetsockoptInt(fd, unix.SOL_IP, unix.IP_BIND_ADDRESS_NO_PORT, 1)
		if err := unix.Bind(fd, sa); err != nil {
			if errors.Is(err, unix.EADDRNOTAVAIL) {
				err = fmt.Errorf("%w: it is not an address of this host (all of 127.0.0.0/8 is; others must be assigned to an interface)", err)
			}
			errs = append(errs, fmt.Errorf("source %s: bind: %w", a, err))
		}
		unix.Close(fd)
	}
	return errors.Join(errs...)
}

// ProbePortRange checks that this kernel takes the per-socket IP_LOCAL_PORT_RANGE (Linux 6.3+), so
// that the range strategy fails before the run rather than on every connect.
func ProbePortRange(lo, hi uint16) error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if err := unix.SetsockoptInt(fd, unix.SOL_IP, unix.IP_LOCAL_PORT_RANGE, int(uint32(hi)<<16|uint32(lo))); err != nil {
		return fmt.Errorf("the range strategy needs IP_LOCAL_PORT_RANGE (Linux 6.3 or later): setsockopt: %w; "+
			"want source.ports.strategy: explicit with the same range, or bind-no-port on a narrowed ip_local_port_range (isolate: true, netns.port_range)", err)
	}
	return nil
}
