//go:build !linux

package preflight

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/portstorm/portstorm/loadgen/platform"
)

// Census needs Linux's sock_diag: the forecast goes without it.
func Census(lo, hi int, sources []netip.Addr) (listeners, held int, err error) {
	return 0, 0, platform.Unsupported("preflight: the port census (sock_diag)")
}

// CheckSources makes sure every source address belongs to this host by listening on it (port 0,
// closed at once: without IP_BIND_ADDRESS_NO_PORT a bind takes a port either way).
func CheckSources(addrs []netip.Addr) error {
	var errs []error
	for _, a := range addrs {
		a = a.Unmap()
		ln, err := net.ListenTCP("tcp", net.TCPAddrFromAddrPort(netip.AddrPortFrom(a, 0)))
		if err != nil {
			errs = append(errs, fmt.Errorf("source %s: it is not an address of this host? %w", a, err))
			continue
		}
		ln.Close()
	}
	return errors.Join(errs...)
}

// ProbePortRange: the per-socket IP_LOCAL_PORT_RANGE is Linux's.
func ProbePortRange(lo, hi uint16) error {
	return platform.Unsupported("the range strategy (IP_LOCAL_PORT_RANGE)")
}
