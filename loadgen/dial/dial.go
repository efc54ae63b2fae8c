// Package dial creates portstorm's client sockets: destinations and the loopback guard, the
// dialer with its connect timeout, and the close modes (fin, rst, half, server).
package dial

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"time"
)

// Destination is a resolved target address, its string form computed once rather than per dial,
// and the source address to connect from.
type Destination struct {
	AddrPort netip.AddrPort
	// Source is the local address to bind; the zero Addr leaves the choice to the kernel.
	Source netip.Addr
	addr   string
}

// NewDestination returns the destination for a resolved address.
func NewDestination(ap netip.AddrPort) Destination {
	return Destination{AddrPort: ap, addr: ap.String()}
}

// From returns d dialled from the source address src.
func (d Destination) From(src netip.Addr) Destination {
	d.Source = src.Unmap()
	return d
}

func (d Destination) String() string { return d.addr }

// Dialer opens connections. It is what the engine calls once per connection; tests substitute their own.
type Dialer interface {
	Dial(ctx context.Context, dst Destination) (net.Conn, error)
}

// NewKernel returns the dialer of the kernel strategy: a plain connect(), the kernel picks the
// port (and the address, unless the destination names a source).
func NewKernel(o Options) *Ports {
	o.Strategy = StrategyKernel
	d, _ := New(o) // the kernel strategy needs no window: New cannot fail
	return d
}

// CloseMode is how the client ends a connection.
type CloseMode uint8

const (
	// CloseFIN is a plain close(): FIN, and the client holds TIME_WAIT.
	CloseFIN CloseMode = iota
	// CloseRST sets SO_LINGER {1, 0} before close(): RST, no TIME_WAIT.
	CloseRST
	// CloseHalf shuts down writing, waits for the peer's FIN, then closes.
	CloseHalf
	// CloseServer waits for the peer to close first, then closes: the server holds TIME_WAIT.
	CloseServer
)

var closeNames = []string{"fin", "rst", "half", "server"}

func (m CloseMode) String() string {
	if int(m) < len(closeNames) {
		return closeNames[m]
	}
	return "CloseMode(" + strconv.Itoa(int(m)) + ")"
}

// ClientHoldsTimeWait says whether the client's side ends in TIME_WAIT: it sends the first FIN
// under fin and half (RFC 793 section 3.5: the side that closes first holds TIME_WAIT); rst
// leaves none, and under server the peer closes first.
func (m CloseMode) ClientHoldsTimeWait() bool { return m == CloseFIN || m == CloseHalf }

// ParseCloseMode reads a plan's close mode.
func ParseCloseMode(s string) (CloseMode, error) {
	for i, n := range closeNames {
		if n == s {
			return CloseMode(i), nil
		}
	}
	return 0, fmt.Errorf("close mode %q: want one of fin, rst, half, server", s)
}

// Close ends c in the given mode. For half and server it waits for the peer's FIN until deadline
// (a zero deadline waits without limit); the returned error says why the close was not clean: the
// read deadline passed (os.ErrDeadlineExceeded), the peer sent data, or the peer reset. The
// connection is closed in every case.
func Close(c net.Conn, mode CloseMode, deadline time.Time) error {
	switch mode {
	case CloseRST:
		// A TLS connection is reset underneath: no close_notify, which could wait on a peer that
		// does not read.
		if u, ok := c.(interface{ NetConn() net.Conn }); ok {
			c = u.NetConn()
		}
		if l, ok := c.(interface{ SetLinger(int) error }); ok {
			if err := l.SetLinger(0); err != nil {
				c.Close()
				return err
			}
		}
	case CloseHalf:
		if cw, ok := c.(interface{ CloseWrite() error }); ok {
			if err := cw.CloseWrite(); err != nil {
				c.Close()
				return err
			}
		}
		if err := awaitFIN(c, deadline); err != nil {
			c.Close()
			return err
		}
	case CloseServer:
		if err := awaitFIN(c, deadline); err != nil {
			c.Close()
			return err
		}
	}
	return c.Close()
}

// errPeerSentData is returned when the peer answers with data while we wait for its FIN.
var errPeerSentData = errors.New("peer sent data while the client waited for its FIN")

// awaitFIN reads until the peer closes. Data arriving instead is drained (bounded) and reported.
func awaitFIN(c net.Conn, deadline time.Time) error {
	if err := c.SetReadDeadline(deadline); err != nil {
		return err
	}
	var buf [512]byte
	var extra int
	for range 1024 { // at most 512 KiB drained; a peer that streams forever is not closing
		n, err := c.Read(buf[:])
		extra += n
		if errors.Is(err, io.EOF) {
			if extra > 0 {
				return errPeerSentData
			}
			return nil
		}
		if err != nil {
			return err
		}
	}
	return errPeerSentData
}

// ErrRemote is returned for a destination outside loopback without both opt-ins.
var ErrRemote = errors.New("destination outside loopback")

// IsLoopback reports whether a is on the loopback network (127.0.0.0/8 or ::1, also IPv4-mapped).
func IsLoopback(a netip.Addr) bool { return a.Unmap().IsLoopback() }

// Resolver looks host names up; net.DefaultResolver fits, tests substitute their own.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// Resolve turns "host:port" strings into destinations, looking each name up exactly once (however
// many ports it appears with) and pinning the first address, so that what is checked is what is
// dialled. Unless allowRemote is set, any address outside loopback is refused before a single
// connection is attempted.
func Resolve(ctx context.Context, r Resolver, addrs []string, allowRemote bool) ([]Destination, error) {
	out := make([]Destination, 0, len(addrs))
	pinned := map[string]netip.Addr{}
	for _, a := range addrs {
		host, portStr, err := net.SplitHostPort(a)
		if err != nil {
			return nil, fmt.Errorf("target %q: %w", a, err)
		}
		port, err := strconv.ParseUint(portStr, 10, 16)
		if err != nil || port == 0 {
			return nil, fmt.Errorf("target %q: port must be a number from 1 to 65535", a)
		}
		if host == "" {
			// net.Dial reads an empty host as "this machine"; a load test names its target.
			return nil, fmt.Errorf("target %q: host is empty; name it, as in 127.0.0.1%s", a, a)
		}
		ip, err := netip.ParseAddr(host)
		if err != nil {
			var ok bool
			if ip, ok = pinned[host]; !ok {
				if r == nil {
					r = net.DefaultResolver
				}
				ips, lerr := r.LookupNetIP(ctx, "ip", host)
				if lerr != nil {
					return nil, fmt.Errorf("target %q: %w", a, lerr)
				}
				if len(ips) == 0 {
					return nil, fmt.Errorf("target %q: name has no addresses", a)
				}
				ip = ips[0]
				pinned[host] = ip
			}
		}
		if !ip.IsValid() {
			return nil, fmt.Errorf("target %q: the resolver answered an invalid address", a)
		}
		ip = ip.Unmap()
		if !allowRemote && !IsLoopback(ip) {
			return nil, fmt.Errorf("target %q (%s): %w; it needs target.allow_remote: true in the plan and the --allow-remote flag", a, ip, ErrRemote)
		}
		out = append(out, NewDestination(netip.AddrPortFrom(ip, uint16(port))))
	}
	return out, nil
}
