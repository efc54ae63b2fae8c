package proto

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/portstorm/portstorm/internal/loopback"
)

// wsSpec is a text echo of "hello" to host.
func wsSpec(host string) Spec {
	return Spec{Protocol: WebSocket, Payload: []byte("hello"), Expect: []byte("hello"),
		WebSocket: WebSocketSpec{Host: host, Path: "/chat?x=1", Echo: true}}
}

// wsServe runs the server side of the opening handshake with gobwas/ws's Upgrader (selecting the
// subprotocol offered when sub is true), then after on the upgraded connection.
func wsServe(t *testing.T, sub bool, after func(c net.Conn)) string {
	return loopback.Serve(t, func(c net.Conn) {
		u := ws.Upgrader{Protocol: func([]byte) bool { return sub }}
		if _, err := u.Upgrade(c); err != nil {
			return
		}
		after(c)
		io.Copy(io.Discard, c)
	})
}

// readClient reads one frame from the client, unmasked.
func readClient(c net.Conn) (ws.Frame, error) {
	var f ws.Frame
	h, err := ws.ReadHeader(c)
	if err != nil {
		return f, err
	}
	if !h.Masked || h.Length > 1<<16 {
		return f, errors.New("client frame not masked, or too long")
	}
	f.Header, f.Payload = h, make([]byte, h.Length)
	if _, err := io.ReadFull(c, f.Payload); err != nil {
		return f, err
	}
	return ws.UnmaskFrameInPlace(f), nil
}

func TestWebSocketMessages(t *testing.T) {
	flip := func(p []byte) []byte { q := bytes.Clone(p); q[len(q)-1] ^= 1; return q }
	cases := []struct {
		name  string
		spec  func(*Spec)
		serve func(t *testing.T, c net.Conn, got ws.Frame) // answers the client's message got
		want  error
	}{
		{"echo", nil, func(t *testing.T, c net.Conn, got ws.Frame) {
			ws.WriteFrame(c, ws.NewTextFrame(got.Payload))
		}, nil},
		{"wrong echo", nil, func(t *testing.T, c net.Conn, got ws.Frame) {
			ws.WriteFrame(c, ws.NewTextFrame(flip(got.Payload)))
		}, ErrEchoMismatch},
		{"binary for text", nil, func(t *testing.T, c net.Conn, got ws.Frame) {
			ws.WriteFrame(c, ws.NewBinaryFrame(got.Payload))
		}, ErrEchoMismatch},
		{"shorter", nil, func(t *testing.T, c net.Conn, got ws.Frame) {
			ws.WriteFrame(c, ws.NewTextFrame(got.Payload[:2]))
		}, ErrEchoMismatch},
		{"longer", nil, func(t *testing.T, c net.Conn, got ws.Frame) {
			ws.WriteFrame(c, ws.NewTextFrame(append(bytes.Clone(got.Payload), '!')))
		}, ErrEchoMismatch},
		{"fragmented echo", nil, func(t *testing.T, c net.Conn, got ws.Frame) {
			ws.WriteFrame(c, ws.NewFrame(ws.OpText, false, got.Payload[:2]))
			ws.WriteFrame(c, ws.NewFrame(ws.OpContinuation, true, got.Payload[2:]))
		}, nil},
		{"ping answered before the echo", nil, func(t *testing.T, c net.Conn, got ws.Frame) {
			ws.WriteFrame(c, ws.NewPingFrame([]byte("p1")))
			ws.WriteFrame(c, ws.NewTextFrame(got.Payload))
			pong, err := readClient(c)
			if err != nil || pong.Header.OpCode != ws.OpPong || string(pong.Payload) != "p1" {
				t.Errorf("after a ping: %v %+v %q, want a pong of p1", err, pong.Header, pong.Payload)
			}
		}, nil},
		{"pong skipped", nil, func(t *testing.T, c net.Conn, got ws.Frame) {
			ws.WriteFrame(c, ws.NewPongFrame(nil))
			ws.WriteFrame(c, ws.NewTextFrame(got.Payload))
		}, nil},
		{"reply", func(s *Spec) {
			s.Expect, s.WebSocket.Echo, s.WebSocket.Binary = []byte("world"), false, true
		}, func(t *testing.T, c net.Conn, got ws.Frame) {
			if got.Header.OpCode != ws.OpBinary {
				t.Errorf("opcode %v, want binary", got.Header.OpCode)
			}
			ws.WriteFrame(c, ws.NewBinaryFrame([]byte("world")))
		}, nil},
		{"wrong reply", func(s *Spec) { s.Expect, s.WebSocket.Echo = []byte("world"), false },
			func(t *testing.T, c net.Conn, got ws.Frame) { ws.WriteFrame(c, ws.NewTextFrame([]byte("worle"))) }, ErrReply},
		{"masked server frame", nil, func(t *testing.T, c net.Conn, got ws.Frame) {
			ws.WriteFrame(c, ws.MaskFrame(ws.NewTextFrame(got.Payload)))
		}, ErrMalformed},
		{"reserved bits", nil, func(t *testing.T, c net.Conn, got ws.Frame) {
			f := ws.NewTextFrame(got.Payload)
			f.Header.Rsv = 4
			ws.WriteFrame(c, f)
		}, ErrMalformed},
		{"continuation first", nil, func(t *testing.T, c net.Conn, got ws.Frame) {
			ws.WriteFrame(c, ws.NewFrame(ws.OpContinuation, true, got.Payload))
		}, ErrMalformed},
		{"close instead of the echo", nil, func(t *testing.T, c net.Conn, got ws.Frame) {
			ws.WriteFrame(c, ws.NewCloseFrame(ws.NewCloseFrameBody(ws.StatusGoingAway, "bye")))
		}, io.EOF},
		{"too large", func(s *Spec) { s.MaxResponse = 8 }, func(t *testing.T, c net.Conn, got ws.Frame) {
			ws.WriteFrame(c, ws.NewTextFrame(bytes.Repeat([]byte("x"), 100)))
		}, ErrTooLarge},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			addr := wsServe(t, false, func(c net.Conn) {
				got, err := readClient(c)
				if err != nil {
					t.Errorf("server read: %v", err)
					return
				}
				tc.serve(t, c, got)
			})
			spec := wsSpec(addr)
			if tc.spec != nil {
				tc.spec(&spec)
			}
			x, err := Compile(spec)
			if err != nil {
				t.Fatal(err)
			}
			c := dial(t, addr)
			if pending, err := x.Upgrade(c); err != nil || len(pending) != 0 {
				t.Fatalf("upgrade: %v, %d bytes pending", err, len(pending))
			}
			r := NewReader()
			r.Reset(c)
			res, err := x.Do(c, r)
			checkErr(t, err, tc.want)
			if err == nil && (res.Full <= 0 || res.Out != len(x.request)) {
				t.Fatalf("result %+v", res)
			}
			c.Close()
		})
	}
}

func TestWebSocketUpgrade(t *testing.T) {
	resp := func(s string) func(c net.Conn) {
		return func(c net.Conn) {
			br := bufio.NewReader(c)
			for {
				l, err := br.ReadString('\n')
				if err != nil || l == "\r\n" {
					break
				}
			}
			io.WriteString(c, s)
		}
	}
	cases := []struct {
		name   string
		sub    string
		server func(t *testing.T) string
		want   error
		text   string
	}{
		{"upgraded", "", func(t *testing.T) string { return wsServe(t, false, func(net.Conn) {}) }, nil, ""},
		{"subprotocol selected", "chat", func(t *testing.T) string { return wsServe(t, true, func(net.Conn) {}) }, nil, ""},
		{"subprotocol not selected", "chat", func(t *testing.T) string { return wsServe(t, false, func(net.Conn) {}) }, ErrReply, "selected no subprotocol"},
		{"refused 400", "", func(t *testing.T) string {
			return loopback.Serve(t, resp("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n"))
		}, ErrStatus, "status 400"},
		{"plain 200, no 101", "", func(t *testing.T) string {
			return loopback.Serve(t, resp("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi"))
		}, ErrStatus, "status 200"},
		{"101 without accept", "", func(t *testing.T) string {
			return loopback.Serve(t, resp("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"))
		}, ErrMalformed, "websocket upgrade"},
		{"not http", "", func(t *testing.T) string { return loopback.Serve(t, resp("+OK\r\n")) }, ErrMalformed, "websocket upgrade"},
		// The server reads the request, then closes without answering: a close with the request
		// unread would be a reset (ECONNRESET, not EOF), depending on which side ran first.
		{"closed", "", func(t *testing.T) string { return loopback.Serve(t, resp("")) }, io.EOF, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			addr := tc.server(t)
			spec := wsSpec(addr)
			spec.WebSocket.Subprotocol = tc.sub
			x, err := Compile(spec)
			if err != nil {
				t.Fatal(err)
			}
			c := dial(t, addr)
			_, err = x.Upgrade(c)
			checkErr(t, err, tc.want)
			if err != nil && !strings.Contains(err.Error(), tc.text) {
				t.Fatalf("error %q, want it to say %q", err, tc.text)
			}
			c.Close()
		})
	}
}

// TestWebSocketPending: frames the server sends right behind its 101 are read, not lost.
func TestWebSocketPending(t *testing.T) {
	addr := loopback.Serve(t, func(c net.Conn) {
		u := ws.Upgrader{}
		// The upgrade response and a first message in one write: gobwas's Upgrader writes the
		// response itself, so the message is queued on a wrapper that flushes both at once.
		bw := &bufConn{Conn: c}
		if _, err := u.Upgrade(bw); err != nil {
			return
		}
		ws.WriteFrame(&bw.buf, ws.NewTextFrame([]byte("hello")))
		c.Write(bw.buf.Bytes())
		io.Copy(io.Discard, c)
	})
	x, err := Compile(wsSpec(addr))
	if err != nil {
		t.Fatal(err)
	}
	c := dial(t, addr)
	pending, err := x.Upgrade(c)
	if err != nil {
		t.Fatal(err)
	}
	r := NewReader()
	pc := &PendingConn{Conn: c, Pending: pending}
	r.Reset(pc)
	// The server's unasked message is read as the answer: the point is that it is not lost.
	if _, err := x.Read(r, time.Now(), nil); err != nil {
		t.Fatalf("read after the upgrade (%d bytes pending): %v", len(pending), err)
	}
}

// bufConn keeps what is written, sent later in one write.
type bufConn struct {
	net.Conn
	buf bytes.Buffer
}

func (c *bufConn) Write(p []byte) (int, error) { return c.buf.Write(p) }

func TestWebSocketCloseHandshake(t *testing.T) {
	cases := []struct {
		name  string
		serve func(c net.Conn)
		want  error
	}{
		{"answered", func(c net.Conn) {
			f, err := readClient(c)
			if err == nil && f.Header.OpCode == ws.OpClose {
				ws.WriteFrame(c, ws.NewTextFrame([]byte("late message")))
				ws.WriteFrame(c, ws.NewPingFrame(nil))
				ws.WriteFrame(c, ws.NewCloseFrame(f.Payload))
			}
		}, nil},
		{"closed without a close frame", func(c net.Conn) { readClient(c) }, io.EOF},
		{"more unread messages than MaxResponse", func(c net.Conn) {
			f, err := readClient(c)
			if err == nil && f.Header.OpCode == ws.OpClose {
				big := bytes.Repeat([]byte("x"), 64<<10)
				for range 20 { // 1.25 MiB, above the default MaxResponse
					ws.WriteFrame(c, ws.NewBinaryFrame(big))
				}
				ws.WriteFrame(c, ws.NewCloseFrame(f.Payload))
			}
		}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			addr := loopback.Serve(t, func(c net.Conn) {
				if _, err := (ws.Upgrader{}).Upgrade(c); err != nil {
					return
				}
				tc.serve(c)
			})
			x, err := Compile(wsSpec(addr))
			if err != nil {
				t.Fatal(err)
			}
			c := dial(t, addr)
			if _, err := x.Upgrade(c); err != nil {
				t.Fatal(err)
			}
			checkErr(t, x.CloseHandshake(c), tc.want)
			c.Close()
		})
	}
}

func TestWebSocketCompile(t *testing.T) {
	cases := []struct {
		name string
		edit func(*Spec)
		want string
	}{
		{"ok", func(*Spec) {}, ""},
		{"no host", func(s *Spec) { s.WebSocket.Host = "" }, "Host is required"},
		{"relative path", func(s *Spec) { s.WebSocket.Path = "chat" }, "must start with"},
		{"space in path", func(s *Spec) { s.WebSocket.Path = "/a b" }, "percent-encode"},
		{"bad subprotocol", func(s *Spec) { s.WebSocket.Subprotocol = "a b" }, "Subprotocol"},
		{"handshake header", func(s *Spec) { s.WebSocket.Headers = []Header{{"Sec-WebSocket-Key", "x"}} }, "handshake sets it"},
		{"host header", func(s *Spec) { s.WebSocket.Headers = []Header{{"Host", "x"}} }, "WebSocket.Host instead"},
		{"header with CRLF", func(s *Spec) { s.WebSocket.Headers = []Header{{"Origin", "a\r\nb"}} }, "control character"},
		{"empty payload", func(s *Spec) { s.Payload, s.Expect = nil, nil; s.WebSocket.Echo = false }, "non-empty Payload"},
		{"echo of another", func(s *Spec) { s.Expect = []byte("other") }, "Expect must be the Payload"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := wsSpec("127.0.0.1:1")
			tc.edit(&s)
			_, err := Compile(s)
			switch {
			case tc.want == "" && err != nil:
				t.Fatal(err)
			case tc.want != "" && (err == nil || !errors.Is(err, ErrSpec) || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("error %v, want ErrSpec saying %q", err, tc.want)
			}
		})
	}
}

// FuzzWebSocketRead: whatever a server sends in place of a message, reading it returns (a
// verdict or an error), never panics, and takes no more than MaxResponse.
func FuzzWebSocketRead(f *testing.F) {
	for _, fr := range []ws.Frame{ws.NewTextFrame([]byte("hello")), ws.NewPingFrame([]byte("x")),
		ws.NewCloseFrame(ws.NewCloseFrameBody(1000, "")), ws.NewFrame(ws.OpText, false, []byte("he"))} {
		b, _ := ws.CompileFrame(fr)
		f.Add(b)
	}
	f.Add([]byte{0x81, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, in []byte) {
		s := wsSpec("h")
		s.MaxResponse = 64
		x, err := Compile(s)
		if err != nil {
			t.Fatal(err)
		}
		r := NewReader()
		src := &meterReader{r: bytes.NewReader(in)}
		r.Reset(src)
		x.Read(r, time.Now(), nil)
		if src.n > 64 {
			t.Fatalf("took %d bytes, MaxResponse 64", src.n)
		}
		x.CloseHandshake(struct {
			io.Reader
			io.Writer
		}{bytes.NewReader(in), io.Discard})
	})
}

type meterReader struct {
	r io.Reader
	n int
}

func (m *meterReader) Read(p []byte) (int, error) {
	n, err := m.r.Read(p)
	m.n += n
	return n, err
}
