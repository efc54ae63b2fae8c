//go:build unix

package sockfd

import (
	"net"
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

// openFDs counts this process's open descriptors.
func openFDs(t *testing.T) int {
	t.Helper()
	es, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("no /proc/self/fd: %v", err)
	}
	return len(es)
}

func TestDup(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	closed, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	closed.Close()
	pipe, other := net.Pipe()
	defer pipe.Close()
	defer other.Close()

	tests := []struct {
		name string
		v    any
		ok   bool
	}{
		{"TCP connection", c, true},
		{"listener", ln, true},
		{"closed connection", closed, false},
		{"no descriptor (net.Pipe)", pipe, false},
		{"not a connection", 42, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := openFDs(t)
			fd, ok := Dup(tt.v)
			if ok != tt.ok {
				t.Fatalf("Dup = %d, %v; want ok %v", fd, ok, tt.ok)
			}
			if !ok {
				if fd != -1 || openFDs(t) != before {
					t.Fatalf("Dup failed but returned fd %d or left a descriptor open", fd)
				}
				return
			}
			defer unix.Close(fd)
			if flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err != nil || flags&unix.FD_CLOEXEC == 0 {
				t.Errorf("duplicate flags %#x, %v: want close-on-exec", flags, err)
			}
			// The duplicate names the same socket as the original.
			want, err := unix.Getsockname(fd)
			if err != nil {
				t.Fatal(err)
			}
			var addr net.Addr
			switch v := tt.v.(type) {
			case net.Conn:
				addr = v.LocalAddr()
			case net.Listener:
				addr = v.Addr()
			}
			if port := want.(*unix.SockaddrInet4).Port; port != addr.(*net.TCPAddr).Port {
				t.Errorf("duplicate bound to port %d, want %s", port, addr)
			}
			unix.Close(fd)
			if n := openFDs(t); n != before {
				t.Errorf("%d descriptors open after closing the duplicate, want %d", n, before)
			}
		})
	}
}
