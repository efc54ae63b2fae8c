package dial

import "syscall"

func bindAddr(fd uintptr, sa syscall.Sockaddr) error { return syscall.Bind(syscall.Handle(fd), sa) }

func reuseAddr(fd uintptr) error {
	return syscall.SetsockoptInt(syscall.Handle(fd), syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1)
}
