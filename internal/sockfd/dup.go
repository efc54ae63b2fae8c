//go:build unix

// Package sockfd duplicates the descriptor behind a Go connection or listener, for the code that
// takes a socket out of the runtime poller: the built-in target's holder and the generator's bare
// held connections; and (Linux) creates the poller-watched epoll sets of the loops that serve many
// sockets from one goroutine.
package sockfd

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// Dup duplicates the descriptor of v (a net.Conn, net.Listener or os.File: any syscall.Conn) and
// reports false, with nothing opened, when v has no descriptor or the duplicate fails (EMFILE). The
// duplicate is close-on-exec, atomically (fcntl(2) F_DUPFD_CLOEXEC), so that a worker or target
// process started meanwhile does not inherit it and keep the socket open.
func Dup(v any) (int, bool) {
	sc, ok := v.(syscall.Conn)
	if !ok {
		return -1, false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return -1, false
	}
	fd := -1
	if err := rc.Control(func(orig uintptr) {
		fd, err = unix.FcntlInt(orig, unix.F_DUPFD_CLOEXEC, 0)
	}); err != nil || fd < 0 {
		return -1, false
	}
	return fd, true
}
