//go:build unix

package target

import (
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// rawReads: a connection without TLS is read through syscall.RawConn (see frameReader).
const rawReads = true

func reusePort(fd uintptr) error {
	return unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
}

// read is RawConn.Read's callback: it returns false to wait for readability.
func (r *frameReader) read(fd uintptr) bool {
	took := r.buf == nil
	if took {
		r.buf = r.frames.Get().(*[]byte)
	}
	for {
		n, err := unix.Read(int(fd), (*r.buf)[r.off:])
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN:
			if took {
				// Nothing to read: wait without a frame.
				r.release()
			}
			return false
		case err != nil:
			r.err = os.NewSyscallError("read", err)
			return true
		case n == 0:
			r.err = io.EOF
			return true
		}
		r.n = n
		return true
	}
}
