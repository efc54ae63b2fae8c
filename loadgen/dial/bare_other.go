//go:build !linux

package dial

import (
	"context"
	"net"
	"net/netip"

	"github.com/portstorm/portstorm/loadgen/platform"
)

// Bare is a connection kept as its descriptor alone, outside Go's poller: Linux only. Here no
// dialer implements BareDialer and Detach declines, so none is ever made and every connection
// goes through the poller.
type Bare struct{}

// Detach declines: connections stay on the poller.
func Detach(net.Conn) (Bare, bool) { return Bare{}, false }

// LocalAddr is the invalid AddrPort: there is no bare connection here.
func (Bare) LocalAddr() netip.AddrPort { return netip.AddrPort{} }

// Close reports that bare connections need Linux.
func (Bare) Close(CloseMode) error { return platform.Unsupported("dial: a bare connection") }

// BareDialer dials connections bare; nothing implements it here.
type BareDialer interface {
	DialBare(ctx context.Context, dst Destination) (Bare, error)
	DialBareLocal(ctx context.Context, dst Destination) (Bare, netip.AddrPort, error)
}

// Attach reports that bare connections need Linux.
func Attach(Bare) (net.Conn, error) { return nil, platform.Unsupported("dial: a bare connection") }
