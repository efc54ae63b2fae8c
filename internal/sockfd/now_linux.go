package sockfd

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// The calls below never wait, so they are made as raw system calls: without the runtime's
// entersyscall/exitsyscall around them, which costs a few hundred nanoseconds a call and, on a
// storm's path where a thread makes five or six calls a connection, lets sysmon take the thread's
// P away and hand it to another thread (a futex wake-up and a context switch) while the call runs
// (docs/measurements.md, "Connection storms"). Only for calls that cannot block: a raw call that
// blocked would keep its P, and every goroutine queued on it, for as long as it waits.

// CloseNow closes fd. A socket closes without waiting unless it lingers with a timeout
// (SO_LINGER {1, N > 0}), which nothing that calls this sets: a FIN or a RST is queued and close
// returns.
func CloseNow(fd int) error {
	if _, _, e := unix.RawSyscall(unix.SYS_CLOSE, uintptr(fd), 0, 0); e != 0 {
		return e
	}
	return nil
}

// ReadNow reads from fd, which must be non-blocking (O_NONBLOCK): EAGAIN when nothing waits.
func ReadNow(fd int, p []byte) (int, error) {
	var ptr unsafe.Pointer
	if len(p) > 0 {
		ptr = unsafe.Pointer(&p[0])
	}
	n, _, e := unix.RawSyscall(unix.SYS_READ, uintptr(fd), uintptr(ptr), uintptr(len(p)))
	if e != 0 {
		return -1, e
	}
	return int(n), nil
}

// LingerRST sets SO_LINGER {1, 0} on fd: its close then sends a RST and leaves no TIME_WAIT.
func LingerRST(fd int) error {
	l := unix.Linger{Onoff: 1, Linger: 0}
	if _, _, e := unix.RawSyscall6(unix.SYS_SETSOCKOPT, uintptr(fd), unix.SOL_SOCKET, unix.SO_LINGER,
		uintptr(unsafe.Pointer(&l)), unsafe.Sizeof(l), 0); e != 0 {
		return e
	}
	return nil
}

// Accept4Now takes one connection off the non-blocking listener lfd, itself non-blocking and
// close-on-exec: EAGAIN when none waits.
func Accept4Now(lfd uintptr) (int, unix.Errno) {
	fd, _, e := unix.RawSyscall6(unix.SYS_ACCEPT4, lfd, 0, 0, unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0, 0)
	return int(fd), e
}
