//go:build !linux

package target

import (
	"net"

	"github.com/portstorm/portstorm/loadgen/platform"
)

// holder is the epoll holder of sink and hold connections, which needs Linux: newHolder fails
// here, so those connections are served by a goroutine each, as in the other modes.
type holder struct{}

func newHolder(*Server) (*holder, error) {
	return nil, platform.Unsupported("target: the epoll holder")
}

// The methods below are never called: a Server's holder is nil here.

func (*holder) run()                        {}
func (*holder) stop()                       {}
func (*holder) add(net.Conn) bool           { return false }
func (*Server) acceptRaw(net.Listener) bool { return false }

// loops are the epoll loops of echo and http connections, which need Linux: newLoops fails here,
// so those connections are served by a goroutine each.
type loops struct{}

func newLoops(*Server, int) (*loops, error) {
	return nil, platform.Unsupported("target: the epoll loops")
}

func (*loops) start(*Server) {}
func (*loops) stop()         {}
