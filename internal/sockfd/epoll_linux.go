package sockfd

import (
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// PolledEpoll creates an epoll set that Go's own poller watches, for the loops that serve many
// sockets from one goroutine (the built-in target's loops, the generator's rated loops). The set is
// non-blocking, so that os.NewFile registers it in the poller: an epoll set is readable while one of
// its descriptors is ready, and a loop parks in rc.Read, with its next timer as the file's read
// deadline, instead of holding a thread in epoll_wait. Closing f closes epfd.
func PolledEpoll() (epfd int, f *os.File, rc syscall.RawConn, err error) {
	epfd, err = unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return -1, nil, nil, err
	}
	if err = unix.SetNonblock(epfd, true); err != nil {
		unix.Close(epfd)
		return -1, nil, nil, err
	}
	f = os.NewFile(uintptr(epfd), "epoll")
	if rc, err = f.SyscallConn(); err != nil {
		f.Close()
		return -1, nil, nil, err
	}
	return epfd, f, rc, nil
}
