package report

import (
	"os"
	"path/filepath"
	"syscall"
)

// errLocked: another process holds the folder's lock file open (ERROR_SHARING_VIOLATION).
var errLocked error = syscall.Errno(32)

// fileFlagDeleteOnClose has Windows delete the lock file when its last handle closes, however the
// process ends: like flock(2), nothing is left behind.
const fileFlagDeleteOnClose = 0x04000000

// lockDir opens a lock file in the folder d without sharing: a folder cannot be locked itself.
func lockDir(d *os.File) (unlock func(), err error) {
	name, err := syscall.UTF16PtrFromString(filepath.Join(d.Name(), ".portstorm.lock"))
	if err != nil {
		return nil, err
	}
	h, err := syscall.CreateFile(name, syscall.GENERIC_READ|syscall.GENERIC_WRITE, 0, nil,
		syscall.OPEN_ALWAYS, syscall.FILE_ATTRIBUTE_HIDDEN|fileFlagDeleteOnClose, 0)
	if err != nil {
		return nil, err
	}
	return func() { syscall.CloseHandle(h) }, nil
}
