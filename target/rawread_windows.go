package target

import (
	"github.com/portstorm/portstorm/loadgen/platform"
)

// rawReads: on Windows a RawConn read callback cannot read a socket without blocking, so a
// connection without TLS is read with net.Conn.Read, its frame kept for the connection's life.
const rawReads = false

// reusePort: Windows has no SO_REUSEPORT (its SO_REUSEADDR lets another socket steal the port).
func reusePort(uintptr) error { return platform.Unsupported("target: reuse_port") }

// read is never called: rawReads is false.
func (r *frameReader) read(uintptr) bool {
	r.err = platform.Unsupported("target: raw reads")
	return true
}
