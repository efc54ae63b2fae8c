package target

import (
	"context"
	"errors"
	"io"
	"net"
	"syscall"
	"testing"
	"time"
)

// TestFloodBeyondMaxConns: 200 clients against a cap of 50. The excess is reset at once and
// counted, the target's descriptors stay bounded, and a probe client within the cap is served.
func TestFloodBeyondMaxConns(t *testing.T) {
	guardFDs(t)
	srv, err := Start(context.Background(), Config{Mode: ModeEcho, MaxConns: 50})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() }) // also after a t.Fatal, or goleak blames later tests
	addr := srv.Addrs()[0]
	var held []net.Conn
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	// Fill the cap with connections the target has accepted (an echo proves it), then flood.
	for range 49 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
		echoOnce(t, c)
	}
	peakFDs := len(openFDs(t))
	var rejected int
	for range 150 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			if errors.Is(err, syscall.ECONNRESET) {
				rejected++ // the reset beat connect()'s return
				continue
			}
			t.Fatal(err)
		}
		held = append(held, c)
	}
	// The flood's connections beyond the cap are reset: each read ends in ECONNRESET or EOF.
	for _, c := range held[49:] {
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		_, err := c.Read(make([]byte, 1))
		if errors.Is(err, syscall.ECONNRESET) || errors.Is(err, io.EOF) {
			rejected++
		}
	}
	st := srv.Stats()
	if st.Active > 50 || st.Peak > 50 {
		t.Errorf("active %d, peak %d over the cap of 50", st.Active, st.Peak)
	}
	if st.Rejected < 100 || rejected < 100 {
		t.Errorf("rejected %d by the target, %d seen reset by clients; want about 150", st.Rejected, rejected)
	}
	// The target itself holds at most the cap: the flood's 150 client ends are the test's own.
	if grew := len(openFDs(t)) - peakFDs - (len(held) - 49); grew > 1 {
		t.Errorf("the target's descriptors grew by %d during the flood", grew)
	}
	// Close the flood; a probe within the cap is still served.
	for _, c := range held[49:] {
		c.Close()
	}
	held = held[:49]
	probe := waitServed(t, addr)
	probe.Close()
	srv.Close()
	for _, c := range held {
		c.Close()
	}
	held = nil
}

func echoOnce(t *testing.T, c net.Conn) {
	t.Helper()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(c, make([]byte, 4)); err != nil {
		t.Fatal(err)
	}
}

// waitServed dials until an echo succeeds: the target's count of open connections drops as it
// notices the flood's closes, so the first probes may still be over the cap. Bounded: 200 tries.
func waitServed(t *testing.T, addr string) net.Conn {
	t.Helper()
	for range 200 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(time.Second))
		if _, err := c.Write([]byte("ping")); err == nil {
			if _, err := io.ReadFull(c, make([]byte, 4)); err == nil {
				return c
			}
		}
		c.Close()
	}
	t.Fatal("a probe client within the cap was never served")
	return nil
}
