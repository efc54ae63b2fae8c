package ports

import "testing"

// TestSockstatTimeWait: the tw count of sockstat's TCP line, as kernels write it, and nothing
// from anything else.
func TestSockstatTimeWait(t *testing.T) {
	for _, tt := range []struct {
		name string
		in   string
		n    int64
		ok   bool
	}{
		{"none", "sockets: used 7\nTCP: inuse 1 orphan 0 tw 0 alloc 1 mem 359\nUDP: inuse 0 mem 0\n", 0, true},
		{"some", "sockets: used 70\nTCP: inuse 61 orphan 2 tw 12345 alloc 63 mem 9\n", 12345, true},
		{"no newline at the end", "TCP: inuse 1 orphan 0 tw 3 alloc 1 mem 3", 3, true},
		{"no tw", "TCP: inuse 1 orphan 0 alloc 1 mem 359\n", 0, false},
		{"tw without a value", "TCP: inuse 1 orphan 0 tw\n", 0, false},
		{"not a number", "TCP: inuse 1 orphan 0 tw x alloc 1\n", 0, false},
		{"negative", "TCP: inuse 1 orphan 0 tw -1 alloc 1\n", 0, false},
		{"IPv6's file", "TCP6: inuse 3\nUDP6: inuse 0\n", 0, false},
		{"empty", "", 0, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			n, ok := sockstatTimeWait([]byte(tt.in))
			if n != tt.n || ok != tt.ok {
				t.Errorf("got %d %v, want %d %v", n, ok, tt.n, tt.ok)
			}
		})
	}
}

// FuzzSockstatTimeWait: any file is read without a panic, and a count read is never negative.
func FuzzSockstatTimeWait(f *testing.F) {
	f.Add([]byte("sockets: used 7\nTCP: inuse 1 orphan 0 tw 0 alloc 1 mem 359\n"))
	f.Add([]byte("TCP: tw"))
	f.Add([]byte("TCP: inuse 1 tw 99999999999999999999999\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if n, ok := sockstatTimeWait(b); ok && n < 0 {
			t.Fatalf("count %d", n)
		}
	})
}
