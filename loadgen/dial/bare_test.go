package dial

import (
	"errors"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"
)

// TestBare: a detached connection keeps its socket and local address; it closes with FIN or RST.
func TestBare(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	for _, tt := range []struct {
		mode CloseMode
		want error // what the peer reads once the client closed
	}{
		{CloseFIN, io.EOF},
		{CloseRST, syscall.ECONNRESET},
	} {
		t.Run(tt.mode.String(), func(t *testing.T) {
			c, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			peer, err := ln.Accept()
			if err != nil {
				t.Fatal(err)
			}
			defer peer.Close()
			local := c.LocalAddr().(*net.TCPAddr).AddrPort()
			b, ok := Detach(c)
			if !ok {
				t.Fatal("a TCP connection was not detached")
			}
			if got := b.LocalAddr(); got.Port() != local.Port() || got.Addr().Unmap() != local.Addr().Unmap() {
				t.Errorf("local address %v, want %v", got, local)
			}
			// Detaching sent nothing: the peer's read waits.
			peer.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
			if _, err := peer.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatalf("peer read %v after the detach, want a timeout", err)
			}
			if err := b.Close(tt.mode); err != nil {
				t.Fatal(err)
			}
			peer.SetReadDeadline(time.Now().Add(5 * time.Second))
			if _, err := peer.Read(make([]byte, 1)); !errors.Is(err, tt.want) {
				t.Errorf("peer read %v, want %v", err, tt.want)
			}
		})
	}
	if _, ok := Detach(&net.UnixConn{}); ok {
		t.Error("a Unix connection was detached")
	}
}
