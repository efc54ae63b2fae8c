package sockfd

import (
	"errors"
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestNowCalls: the raw calls behave as the runtime's: accept4 on an empty queue and read on an
// empty socket say EAGAIN, a read gets what the peer wrote and 0 at its FIN, LingerRST then CloseNow
// resets the peer, and nothing is left open.
func TestNowCalls(t *testing.T) {
	before := openFDs(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	rc, err := ln.(*net.TCPListener).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	accept := func() (fd int, errno unix.Errno) {
		if err := rc.Control(func(lfd uintptr) { fd, errno = Accept4Now(lfd) }); err != nil {
			t.Fatal(err)
		}
		return fd, errno
	}
	if _, errno := accept(); errno != unix.EAGAIN {
		t.Fatalf("accept on an empty queue: %v, want EAGAIN", errno)
	}
	tests := []struct {
		name  string
		peer  func(c *net.TCPConn) // what the client does before the server reads
		wantN int
		want  error // ReadNow's error: nil (with wantN bytes), EAGAIN
		rst   bool  // the server then resets: the client must see ECONNRESET
	}{
		{"empty", func(*net.TCPConn) {}, 0, unix.EAGAIN, true},
		{"data", func(c *net.TCPConn) { c.Write([]byte("hello")) }, 5, nil, false},
		{"fin", func(c *net.TCPConn) { c.CloseWrite() }, 0, nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := net.DialTCP("tcp", nil, ln.Addr().(*net.TCPAddr))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			tt.peer(c)
			var fd int
			for { // the handshake is done when DialTCP returns; poll only for the queue's visibility
				var errno unix.Errno
				if fd, errno = accept(); errno == 0 {
					break
				} else if errno != unix.EAGAIN {
					t.Fatal(errno)
				}
				pollIn(t, rc)
			}
			if tt.wantN > 0 || tt.want == nil {
				waitReadable(t, fd)
			}
			var buf [16]byte
			n, err := ReadNow(fd, buf[:])
			if !errors.Is(err, tt.want) || (err == nil && n != tt.wantN) {
				t.Fatalf("ReadNow = %d, %v; want %d, %v", n, err, tt.wantN, tt.want)
			}
			if tt.rst {
				if err := LingerRST(fd); err != nil {
					t.Fatal(err)
				}
			}
			if err := CloseNow(fd); err != nil {
				t.Fatal(err)
			}
			if tt.rst {
				c.SetReadDeadline(time.Now().Add(time.Minute))
				if _, err := c.Read(buf[:]); !errors.Is(err, syscall.ECONNRESET) {
					t.Fatalf("client read after LingerRST and CloseNow: %v, want ECONNRESET", err)
				}
			} else if _, err := c.Read(buf[:]); err != io.EOF && !errors.Is(err, syscall.ECONNRESET) {
				t.Fatalf("client read after CloseNow: %v, want the server's close", err)
			}
		})
	}
	if err := CloseNow(-1); err != unix.EBADF {
		t.Fatalf("CloseNow(-1) = %v, want EBADF", err)
	}
	ln.Close()
	if n := openFDs(t); n != before {
		t.Fatalf("%d descriptors open, %d before", n, before)
	}
}

// pollIn waits until the listener has a connection queued.
func pollIn(t *testing.T, rc syscall.RawConn) {
	t.Helper()
	rc.Control(func(lfd uintptr) {
		unix.Poll([]unix.PollFd{{Fd: int32(lfd), Events: unix.POLLIN}}, -1)
	})
}

// waitReadable waits until fd has data or its peer's FIN.
func waitReadable(t *testing.T, fd int) {
	t.Helper()
	if _, err := unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}, -1); err != nil {
		t.Fatal(err)
	}
}
