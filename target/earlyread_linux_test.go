//go:build linux

package target

import (
	"io"
	"os"
	"strconv"
	"strings"
	"testing"
)

// readCalls is this process's read system calls so far (/proc/self/io's syscr).
func readCalls(t *testing.T) int {
	t.Helper()
	b, err := os.ReadFile("/proc/self/io")
	if err != nil {
		t.Skipf("no I/O accounting: %v", err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "syscr: "); ok {
			n, err := strconv.Atoi(v)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Skip("no syscr in /proc/self/io")
	return 0
}

// TestEarlyRead: sink and hold targets read each connection once right after accept (a client
// already gone is closed there), unless told the clients hold their connections (ClientsHold):
// then accepting n silent connections makes no read at all. What a holding client sends is still
// read and counted.
func TestEarlyRead(t *testing.T) {
	const n = 200
	tests := []struct {
		name      string
		cfg       Config
		wantReads bool // at least one read per connection
	}{
		{"sink", Config{Mode: ModeSink}, true},
		{"hold", Config{Mode: ModeHold}, true},
		{"sink, clients hold", Config{Mode: ModeSink, ClientsHold: true}, false},
		{"hold, clients hold", Config{Mode: ModeHold, ClientsHold: true}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			guardFDs(t)
			s := start(t, tt.cfg)
			if s.holder == nil {
				t.Fatal("no holder for a plain sink or hold target")
			}
			conns := make([]io.ReadWriteCloser, n)
			before := readCalls(t)
			for i := range conns {
				conns[i] = dial(t, s.Addrs()[0])
			}
			waitFor(t, "every connection accepted", func() bool { return s.Stats().Accepted == n })
			reads := readCalls(t) - before
			if tt.wantReads && reads < n {
				t.Errorf("%d reads for %d connections accepted, want one each", reads, n)
			}
			// Nothing else in the process reads meanwhile but the odd runtime file; a read per
			// connection would be n.
			if !tt.wantReads && reads >= n/10 {
				t.Errorf("%d reads for %d silent connections held, want none", reads, n)
			}
			for _, c := range conns {
				if _, err := c.Write([]byte("0123456789")); err != nil {
					t.Fatal(err)
				}
			}
			waitFor(t, "every byte read", func() bool { return s.Stats().BytesIn == 10*n })
			for _, c := range conns {
				c.Close()
			}
			waitFor(t, "every connection closed", func() bool { return s.Stats().Closed == n })
		})
	}
}
