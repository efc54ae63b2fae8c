//go:build unix

package report

import (
	"os"

	"golang.org/x/sys/unix"
)

// errLocked: another process holds the folder's lock.
var errLocked = unix.EWOULDBLOCK

// lockDir takes flock(2) on the open folder d, which closing d drops (unlock has nothing to do).
func lockDir(d *os.File) (unlock func(), err error) {
	if err := unix.Flock(int(d.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		return nil, err
	}
	return func() {}, nil
}
