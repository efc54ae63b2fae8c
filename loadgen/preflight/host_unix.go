//go:build unix

package preflight

import "golang.org/x/sys/unix"

// readKernel reads the kernel's name and release, and the descriptor limit.
func readKernel(h *Host) {
	var u unix.Utsname
	if unix.Uname(&u) == nil {
		h.Kernel = unix.ByteSliceToString(u.Sysname[:]) + " " + unix.ByteSliceToString(u.Release[:])
	}
	var rl unix.Rlimit
	if unix.Getrlimit(unix.RLIMIT_NOFILE, &rl) == nil {
		h.FDSoft, h.FDHard = int64(rl.Cur), int64(rl.Max)
	}
}
