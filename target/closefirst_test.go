package target

import (
	"context"
	"io"
	"net"
	"strconv"
	"syscall"
	"testing"
)

// TestCloseFirst: with CloseFirst the target closes each connection itself (FIN) once it has
// answered CloseAfter bytes, so the client reads the echo and then EOF: the server side of the
// client's "server" close mode.
func TestCloseFirst(t *testing.T) {
	tests := []struct {
		name  string
		mode  Mode
		after int64
		send  []string
		want  string // what the client reads before EOF
	}{
		{"echo, after one request", ModeEcho, 5, []string{"hello"}, "hello"},
		{"echo, after two requests", ModeEcho, 6, []string{"abc", "def"}, "abcdef"},
		{"sink, after the bytes", ModeSink, 4, []string{"abcd"}, ""},
		{"hold, after the bytes", ModeHold, 4, []string{"ab", "cd"}, ""},
		{"right after accept", ModeEcho, 0, nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			guardFDs(t)
			s := start(t, Config{Mode: tt.mode, CloseFirst: true, CloseAfter: tt.after})
			c := dial(t, s.Addrs()[0])
			var got []byte
			for _, m := range tt.send {
				if _, err := c.Write([]byte(m)); err != nil {
					t.Fatal(err)
				}
				if tt.mode == ModeEcho {
					b := make([]byte, len(m))
					if _, err := io.ReadFull(c, b); err != nil {
						t.Fatalf("echo of %q: %v", m, err)
					}
					got = append(got, b...)
				}
			}
			rest, err := io.ReadAll(c) // returns at the target's FIN
			if err != nil {
				t.Fatalf("waiting for the target's FIN: %v", err)
			}
			if got := string(got) + string(rest); got != tt.want {
				t.Errorf("read %q, want %q", got, tt.want)
			}
			waitFor(t, "the target to count the close", func() bool { return s.Stats().Closed == 1 })
		})
	}
}

// TestPortBelowSkipsReusePortGroups: a port another process listens on with SO_REUSEPORT is in
// use, although a listen with SO_REUSEPORT would succeed on it (and share its connections).
func TestPortBelowSkipsReusePortGroups(t *testing.T) {
	guardFDs(t)
	const below = 31000
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		if err := c.Control(func(fd uintptr) { serr = reusePort(fd) }); err != nil {
			return err
		}
		return serr
	}}
	other, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:"+strconv.Itoa(below-1))
	if err != nil {
		t.Skipf("port %d is taken on this host: %v", below-1, err)
	}
	defer other.Close()
	s := start(t, Config{Mode: ModeEcho, PortBelow: below, ReusePort: true, Listen: []string{"127.0.0.1:0"}})
	if _, p, _ := net.SplitHostPort(s.Addrs()[0]); p == strconv.Itoa(below-1) {
		t.Errorf("the target joined another listener's SO_REUSEPORT group on port %s", p)
	}
}

// TestPortBelow: listeners asked for port 0 take the highest free ports below PortBelow, so the
// target stays out of the client's ephemeral range; a taken port is skipped.
func TestPortBelow(t *testing.T) {
	guardFDs(t)
	// Find a free block high in the non-ephemeral ports, and take its top port first.
	const below = 32000
	blocker, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(below-1))
	if err != nil {
		t.Skipf("port %d is taken on this host: %v", below-1, err)
	}
	defer blocker.Close()
	s := start(t, Config{Mode: ModeEcho, PortBelow: below, Listen: []string{"127.0.0.1:0", "127.0.0.1:0"}})
	addrs := s.Addrs()
	for i, a := range addrs[:2] {
		_, p, _ := net.SplitHostPort(a)
		port, _ := strconv.Atoi(p)
		if port >= below || port < below-256 {
			t.Errorf("listener %d on port %d, want below %d", i, port, below)
		}
		if port == below-1 {
			t.Errorf("listener %d took the port already in use", i)
		}
	}
	if addrs[0] == addrs[1] {
		t.Errorf("two listeners on %s", addrs[0])
	}
	c := dial(t, addrs[0])
	if err := ping(c, []byte("x")); err != nil {
		t.Fatal(err)
	}
}
