package engine

import (
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// kernelTimer is the pacer's timerfd, made at its first fine wait and registered in Go's poller.
type kernelTimer struct {
	f  *os.File
	rc syscall.RawConn
	fd int
}

func (k *kernelTimer) close() {
	if k.f != nil {
		k.f.Close()
		k.f = nil
	}
}

// sleep waits until at on the timerfd: armed relative to a reading of the
// clock just before (the gap, well under a microsecond, makes the wait late, never early), then
// waited on in Go's poller until it fires. The kernel fires a timerfd without the timer slack
// (50 µs by default) that it may add to a thread's nanosleep or epoll_wait.
func (p *pacer) sleep(at time.Time) {
	if p.k.f == nil {
		fd, err := newTimerfd()
		if err != nil {
			p.fine = false
			return
		}
		f := os.NewFile(uintptr(fd), "timerfd") // non-blocking: registered in Go's poller
		rc, err := f.SyscallConn()
		if err != nil {
			f.Close()
			p.fine = false
			return
		}
		p.k = kernelTimer{f: f, rc: rc, fd: fd}
	}
	before := time.Now()
	d := at.Sub(before) // not the caller's: making the timer took some of it
	if d <= 0 {
		return
	}
	if armTimerfd(p.k.fd, d) != nil {
		p.fine = false
		return
	}
	var expirations [8]byte
	err := p.k.rc.Read(func(fd uintptr) bool {
		_, err := unix.Read(int(fd), expirations[:])
		return err != unix.EAGAIN // EAGAIN: not fired yet, park in the poller
	})
	if err != nil || time.Since(before) < d/2 {
		p.fine = false
	}
}

// newTimerfd makes a non-blocking timerfd on CLOCK_MONOTONIC, the clock of Go's monotonic
// readings (the pacer's and the rated loops' precise wake-ups).
func newTimerfd() (int, error) {
	fd, err := unix.TimerfdCreate(unix.CLOCK_MONOTONIC, unix.TFD_NONBLOCK|unix.TFD_CLOEXEC)
	return fd, os.NewSyscallError("timerfd_create", err)
}

// armTimerfd sets fd to fire once, d from now; at once when d is not positive (a zero value would
// disarm it instead).
func armTimerfd(fd int, d time.Duration) error {
	spec := unix.ItimerSpec{Value: unix.NsecToTimespec(int64(max(d, 1)))}
	return os.NewSyscallError("timerfd_settime", unix.TimerfdSettime(fd, 0, &spec, nil))
}
