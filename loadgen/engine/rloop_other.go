//go:build !linux

package engine

import (
	"net"
	"time"
)

// Rated loops run on Linux only (rloop_linux.go): elsewhere every rated conversation runs on the
// goroutine path.

type rloops struct{}

type rconn struct{}

type rloop struct{}

func (e *engine) initLoops() error                { return nil }
func (e *engine) stopLoops()                      {}
func (e *engine) loopConn(*talk, net.Conn) *rconn { return nil }
func (c *rconn) run() (end, error)                { return endNone, nil }
func (c *rconn) given(time.Time, *rloop)          {}
func (e *engine) loopable(net.Conn) bool          { return false }
func (c *rconn) detach(func(end, error))          {}
func (c *rconn) conn(orig net.Conn) net.Conn      { return orig }
