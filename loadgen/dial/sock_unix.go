//go:build unix

package dial

import "syscall"

func bindAddr(fd uintptr, sa syscall.Sockaddr) error { return syscall.Bind(int(fd), sa) }

func reuseAddr(fd uintptr) error {
	return syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1)
}
