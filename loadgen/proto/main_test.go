package proto

import (
	"bytes"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/portstorm/portstorm/internal/loopback"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// ioTimeout bounds every test connection, as the engine's deadlines bound real ones.
const ioTimeout = 10 * time.Second

// meteredConn counts and optionally records the bytes the Reader takes from the connection.
type meteredConn struct {
	net.Conn
	read   int
	record bool
	seen   bytes.Buffer
}

func (c *meteredConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.read += n
	if c.record {
		c.seen.Write(p[:n])
	}
	return n, err
}

// dial connects to addr with the test deadline set and closes the connection when the test ends.
func dial(t testing.TB, addr string) *meteredConn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.SetDeadline(time.Now().Add(ioTimeout)); err != nil {
		t.Fatal(err)
	}
	return &meteredConn{Conn: c}
}

// scripted is a server that answers whatever it is sent with fixed bytes, then closes its side
// (FIN) and drains the client until it closes, so that the close never turns into a reset.
func scripted(t testing.TB, response []byte) string {
	return loopback.Serve(t, func(c net.Conn) {
		if _, err := c.Write(response); err != nil {
			return
		}
		c.(*net.TCPConn).CloseWrite()
		io.Copy(io.Discard, c)
	})
}

// echoServer sends back every byte it receives, passed through mangle.
func echoServer(t testing.TB, mangle func([]byte)) string {
	return loopback.Serve(t, func(c net.Conn) {
		buf := make([]byte, 32<<10)
		for {
			n, err := c.Read(buf)
			if n > 0 {
				mangle(buf[:n])
				if _, werr := c.Write(buf[:n]); werr != nil {
					return
				}
			}
			if err != nil {
				return
			}
		}
	})
}

// exchange runs one exchange of spec on a fresh connection to addr.
func exchange(t testing.TB, spec Spec, addr string) (Result, *meteredConn, error) {
	t.Helper()
	x, err := Compile(spec)
	if err != nil {
		t.Fatal(err)
	}
	c := dial(t, addr)
	r := NewReader()
	r.Reset(c)
	res, err := x.Do(c, r)
	return res, c, err
}

// checkErr fails unless err is want (nil for success), telling them apart with errors.Is.
func checkErr(t testing.TB, err, want error) {
	t.Helper()
	switch {
	case want == nil && err != nil:
		t.Fatalf("error %v, want none", err)
	case want != nil && !errors.Is(err, want):
		t.Fatalf("error %v, want %v", err, want)
	}
}
