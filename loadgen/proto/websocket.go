package proto

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/url"
	"os"
	"strings"
	"sync"
	"syscall"

	"github.com/gobwas/ws"
)

// WebSocketSpec is the opening handshake and the messages of the websocket protocol (RFC 6455).
// The handshake and the frame headers are github.com/gobwas/ws's: it allocates no goroutine and
// keeps no buffer per connection, so an upgraded connection held idle costs what a plain TCP one
// does (docs/measurements.md "WebSocket").
type WebSocketSpec struct {
	// Path is the request target of the upgrade request; "" means "/". It must start with "/" and
	// be percent-encoded; a query is allowed.
	Path string
	// Host is the Host header value; required.
	Host string
	// Headers are extra upgrade request headers. Host, Upgrade, Connection and Sec-WebSocket-*
	// are set by the handshake and refused here.
	Headers []Header
	// Subprotocol, when set, is offered in Sec-WebSocket-Protocol, and the server must select it:
	// a server that selects none fails the upgrade (ErrReply).
	Subprotocol string
	// Binary sends binary messages; false sends text ones (the payload must then be UTF-8).
	Binary bool
	// Echo says Expect is the payload sent: a difference is ErrEchoMismatch, not ErrReply.
	Echo bool
}

// wsExchange is the compiled websocket part of an Exchange.
type wsExchange struct {
	dialer ws.Dialer
	url    *url.URL
	sub    string
	op     ws.OpCode
	echo   bool
	hdr    int // bytes of the frame header in the request; its mask is the last 4
	frames sync.Pool
}

// maxControlPayload is the most a control frame carries (RFC 6455 section 5.5).
const maxControlPayload = 125

// upgradeBuffer is the size of the opening handshake's read and write buffers.
const upgradeBuffer = 512

func (x *Exchange) compileWebSocket(s Spec, bad func(string, ...any)) {
	w := s.WebSocket
	path := w.Path
	if path == "" {
		path = "/"
	}
	if !strings.HasPrefix(path, "/") {
		bad("WebSocket.Path %q: must start with \"/\"", path)
	}
	if i := strings.IndexFunc(path, func(c rune) bool { return c <= ' ' || c >= 0x7f }); i >= 0 {
		bad("WebSocket.Path %q: byte %d is a space, control or non-ASCII byte; percent-encode it", path, i)
	}
	if w.Host == "" {
		bad("WebSocket.Host is required (the target's host:port)")
	} else if strings.IndexFunc(w.Host, func(c rune) bool { return c <= ' ' || c >= 0x7f }) >= 0 {
		bad("WebSocket.Host %q: no space, control or non-ASCII byte", w.Host)
	}
	if w.Subprotocol != "" && !isToken(w.Subprotocol) {
		bad("WebSocket.Subprotocol %q: want a token (letters, digits and !#$%%&'*+-.^_`|~)", w.Subprotocol)
	}
	var hdr strings.Builder
	for i, hd := range w.Headers {
		switch name := strings.ToLower(hd.Name); {
		case !isToken(hd.Name):
			bad("WebSocket.Headers[%d] name %q: want a token (letters, digits and !#$%%&'*+-.^_`|~)", i, hd.Name)
		case name == "host":
			bad("WebSocket.Headers[%d] %s: set WebSocket.Host instead", i, hd.Name)
		case name == "upgrade", name == "connection", strings.HasPrefix(name, "sec-websocket-"):
			bad("WebSocket.Headers[%d] %s: the opening handshake sets it (a subprotocol is WebSocket.Subprotocol)", i, hd.Name)
		}
		if j := strings.IndexFunc(hd.Value, func(c rune) bool { return c < ' ' && c != '\t' || c == 0x7f }); j >= 0 {
			bad("WebSocket.Headers[%d] %s value %q: byte %d is a control character (CR, LF, NUL...)", i, hd.Name, hd.Value, j)
		}
		hdr.WriteString(hd.Name + ": " + hd.Value + "\r\n")
	}
	if len(s.Payload) == 0 {
		bad("websocket needs a non-empty Payload (the message sent)")
	}
	if len(s.Expect) > x.max {
		bad("Expect of %d bytes is longer than MaxResponse (%d)", len(s.Expect), x.max)
	}
	if w.Echo && string(s.Expect) != string(s.Payload) {
		bad("WebSocket.Echo: Expect must be the Payload")
	}
	u, err := url.ParseRequestURI(path)
	if err != nil {
		bad("WebSocket.Path %q: %v", path, err)
		u = &url.URL{Path: "/"}
	}
	u.Scheme, u.Host = "ws", w.Host
	e := &wsExchange{url: u, sub: w.Subprotocol, op: ws.OpText, echo: w.Echo}
	if w.Binary {
		e.op = ws.OpBinary
	}
	// The upgrade's buffers (pooled by gobwas/ws, held while a connection waits for its 101)
	// are small: a request and a response head are a few hundred bytes, and longer lines are
	// still read whole (gobwas/ws's readLine joins them).
	e.dialer = ws.Dialer{Host: w.Host, ReadBufferSize: upgradeBuffer, WriteBufferSize: upgradeBuffer}
	if w.Subprotocol != "" {
		e.dialer.Protocols = []string{w.Subprotocol}
	}
	if hdr.Len() > 0 {
		e.dialer.Header = ws.HandshakeHeaderString(hdr.String())
	}
	// The request is the frame with a zero mask and the payload in clear: write masks a copy.
	h := ws.Header{Fin: true, OpCode: e.op, Masked: true, Length: int64(len(s.Payload))}
	e.hdr = ws.HeaderSize(h)
	req := make([]byte, 0, e.hdr+len(s.Payload))
	buf := &sliceWriter{b: req}
	if err := ws.WriteHeader(buf, h); err != nil {
		bad("WebSocket frame header: %v", err)
	}
	x.request = append(buf.b, s.Payload...)
	x.expect = clone(s.Expect)
	e.frames.New = func() any { b := make([]byte, len(x.request)); return &b }
	x.ws = e
}

// sliceWriter appends what is written to b.
type sliceWriter struct{ b []byte }

func (w *sliceWriter) Write(p []byte) (int, error) { w.b = append(w.b, p...); return len(p), nil }

// newMask is a frame's masking key (RFC 6455 section 5.3: a new one for every frame, not
// predictable by the network; math/rand/v2's generator is ChaCha8 seeded from the system).
func newMask() (m [4]byte) {
	v := rand.Uint32()
	m[0], m[1], m[2], m[3] = byte(v), byte(v>>8), byte(v>>16), byte(v>>24)
	return m
}

// write writes one message: the request frame masked with a new key, in one write.
func (e *wsExchange) write(w io.Writer, request []byte) (int, error) {
	bp := e.frames.Get().(*[]byte)
	defer e.frames.Put(bp)
	b := *bp
	copy(b, request)
	m := newMask()
	copy(b[e.hdr-4:e.hdr], m[:])
	ws.Cipher(b[e.hdr:], m, 0)
	return w.Write(b)
}

// Upgrade runs the client's opening handshake on conn (RFC 6455 section 4.1): the upgrade request
// of the Spec and the check of the server's 101 response, its Sec-WebSocket-Accept and, when a
// subprotocol was asked for, the server's choice of it. It returns any bytes the server sent after
// its response (the first frames): the connection's reader must see them before the connection's.
// A status other than 101 is ErrStatus (naming it), a response that breaks the handshake
// ErrMalformed, a subprotocol not selected ErrReply; errors of conn come back unchanged. Like Do,
// it never sets deadlines.
func (x *Exchange) Upgrade(conn io.ReadWriter) (pending []byte, err error) {
	e := x.ws
	if e == nil {
		return nil, fmt.Errorf("%w: Upgrade on a %s exchange", ErrSpec, x.protocol)
	}
	br, hs, err := e.dialer.Upgrade(conn, e.url)
	if br != nil {
		if err == nil {
			pending, _ = br.Peek(br.Buffered())
			pending = clone(pending)
		}
		ws.PutReader(br)
	}
	var status ws.StatusError
	switch {
	case err == nil:
	case errors.As(err, &status):
		return nil, fmt.Errorf("%w: websocket upgrade refused: status %d, want 101 Switching Protocols", ErrStatus, int(status))
	case transportError(err):
		return nil, err
	case errors.Is(err, ws.ErrHandshakeBadSubProtocol):
		return nil, fmt.Errorf("%w: websocket upgrade: the server selected a subprotocol other than %q", ErrReply, e.sub)
	default:
		return nil, fmt.Errorf("%w: websocket upgrade: %v", ErrMalformed, err)
	}
	if e.sub != "" && hs.Protocol != e.sub {
		return nil, fmt.Errorf("%w: websocket upgrade: the server selected no subprotocol, want %q", ErrReply, e.sub)
	}
	return pending, nil
}

// transportError reports whether err comes from the connection rather than from what the server
// said: the end of the stream, a deadline, a system call's error.
func transportError(err error) bool {
	var errno syscall.Errno
	var ne net.Error
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, os.ErrDeadlineExceeded) ||
		errors.As(err, &errno) || errors.As(err, &ne) || errors.Is(err, net.ErrClosed)
}

// ErrWebSocketClosed is wrapped (with io.EOF, so that the connection ends as EOF) when the server
// sends a close frame where an answer was expected.
var ErrWebSocketClosed = errors.New("websocket closed by the server")

// readMessage reads one message and compares it with want, answering pings and skipping pongs on
// the way. A message of the other kind (text, binary) or other bytes is the verdict; frames that
// break RFC 6455 (a masked server frame, reserved bits or opcodes, a continuation out of place, a
// fragmented or long control frame) are ErrMalformed.
func (e *wsExchange) readMessage(r *Reader, want []byte) (verdict, err error) {
	kind := ErrReply
	if e.echo {
		kind = ErrEchoMismatch
	}
	off := 0
	started := false
	var hb [ws.MaxHeaderSize - 2]byte
	for {
		h, err := ws.ReadHeaderBuffer(r.br, hb[:])
		if err != nil {
			return nil, unexpected(wsReadError(err))
		}
		if err := checkHeader(h); err != nil {
			return nil, err
		}
		if h.OpCode.IsControl() {
			if err := e.control(r, h); err != nil {
				return nil, err
			}
			continue
		}
		switch {
		case !started && h.OpCode == ws.OpContinuation:
			return nil, fmt.Errorf("%w: websocket continuation frame with no message begun", ErrMalformed)
		case started && h.OpCode != ws.OpContinuation:
			return nil, fmt.Errorf("%w: websocket %s frame inside a fragmented message", ErrMalformed, opName(h.OpCode))
		case !started && h.OpCode != e.op && verdict == nil:
			verdict = fmt.Errorf("%w: a %s message, want %s", kind, opName(h.OpCode), opName(e.op))
		}
		started = true
		if h.Length > int64(r.room()) {
			return nil, r.src.full
		}
		n := int(h.Length)
		rest := len(want) - off
		if n > rest {
			if _, err := r.br.Discard(n); err != nil {
				return nil, unexpected(err)
			}
			if verdict == nil {
				verdict = fmt.Errorf("%w: a message longer than the %d bytes expected", kind, len(want))
			}
		} else {
			at, err := r.compare(n, want[off:off+n])
			if err != nil {
				return nil, err
			}
			if at >= 0 && verdict == nil {
				verdict = fmt.Errorf("%w: byte %d of %d differs", kind, off+at, len(want))
			}
		}
		off += n
		if h.Fin {
			if off < len(want) && verdict == nil {
				verdict = fmt.Errorf("%w: a message of %d bytes, want %d", kind, off, len(want))
			}
			return verdict, nil
		}
	}
}

// checkHeader refuses what RFC 6455 section 5 forbids a server's frame: a mask, reserved bits (no
// extension is negotiated), reserved opcodes, fragmented or long control frames.
func checkHeader(h ws.Header) error {
	switch {
	case h.Masked:
		return fmt.Errorf("%w: a masked websocket frame from the server", ErrMalformed)
	case h.Rsv != 0:
		return fmt.Errorf("%w: websocket frame with reserved bits %03b set", ErrMalformed, h.Rsv)
	case h.OpCode.IsReserved():
		return fmt.Errorf("%w: websocket frame with reserved opcode %#x", ErrMalformed, byte(h.OpCode))
	case h.OpCode.IsControl() && (!h.Fin || h.Length > maxControlPayload):
		return fmt.Errorf("%w: websocket %s frame fragmented or longer than 125 bytes", ErrMalformed, opName(h.OpCode))
	}
	return nil
}

// control handles a control frame read in place of an answer: a ping is answered with a pong of
// its payload, a pong skipped, a close ends the exchange (ErrWebSocketClosed).
func (e *wsExchange) control(r *Reader, h ws.Header) error {
	n := int(h.Length)
	if n > r.room() {
		return r.src.full
	}
	p, err := r.br.Peek(n)
	if err != nil {
		return unexpected(err)
	}
	switch h.OpCode {
	case ws.OpPing:
		if r.w != nil {
			if _, err := writeControl(r.w, ws.OpPong, p); err != nil {
				return err
			}
		}
	case ws.OpClose:
		code, reason := ws.ParseCloseFrameData(p)
		r.br.Discard(n)
		return fmt.Errorf("%w (status %d %q): %w", ErrWebSocketClosed, code, reason, io.EOF)
	}
	r.br.Discard(n)
	return nil
}

// writeControl writes one masked control frame of payload p (at most 125 bytes) in one write.
func writeControl(w io.Writer, op ws.OpCode, p []byte) (int, error) {
	var b [2 + 4 + maxControlPayload]byte
	m := newMask()
	b[0] = 0x80 | byte(op)
	b[1] = 0x80 | byte(len(p))
	copy(b[2:6], m[:])
	n := copy(b[6:], p)
	ws.Cipher(b[6:6+n], m, 0)
	return w.Write(b[:6+n])
}

// wsReadError is the error of a frame header that could not be read: gobwas/ws's length errors
// are ErrMalformed, the connection's pass unchanged.
func wsReadError(err error) error {
	switch {
	case errors.Is(err, ws.ErrHeaderLengthMSB), errors.Is(err, ws.ErrHeaderLengthUnexpected):
		return fmt.Errorf("%w: websocket frame header: %v", ErrMalformed, err)
	}
	return err
}

func opName(op ws.OpCode) string {
	switch op {
	case ws.OpText:
		return "text"
	case ws.OpBinary:
		return "binary"
	case ws.OpContinuation:
		return "continuation"
	case ws.OpPing:
		return "ping"
	case ws.OpPong:
		return "pong"
	case ws.OpClose:
		return "close"
	}
	return fmt.Sprintf("opcode %#x", byte(op))
}

// CloseHandshake runs the client's side of the closing handshake (RFC 6455 sections 5.5.1 and
// 7.1.2) on a connection whose conversation is over: it writes a close frame (1000, normal
// closure), then reads conn, skipping messages and answering pings, until the server's close
// frame. A server that ends the stream without one is io.EOF. Messages are discarded as they
// come, whatever their size (with expect: none, every echo of the conversation is still unread):
// the caller's deadline bounds the wait, not a byte count. It reads conn directly, a frame header and at most 125 bytes at a time, with
// no buffer of its own: when a ramp-down closes thousands of held connections at once, thousands
// wait here. The caller bounds it with deadlines, then closes the TCP connection.
func (x *Exchange) CloseHandshake(conn io.ReadWriter) error {
	if x.ws == nil {
		return fmt.Errorf("%w: CloseHandshake on a %s exchange", ErrSpec, x.protocol)
	}
	var body [2]byte
	ws.PutCloseFrameBody(body[:], ws.StatusNormalClosure, "")
	if _, err := writeControl(conn, ws.OpClose, body[:]); err != nil {
		return err
	}
	var hb [ws.MaxHeaderSize - 2]byte
	var p [maxControlPayload]byte
	for {
		h, err := ws.ReadHeaderBuffer(conn, hb[:])
		if err != nil {
			return wsReadError(err)
		}
		if err := checkHeader(h); err != nil {
			return err
		}
		if !h.OpCode.IsControl() {
			if _, err := io.CopyN(io.Discard, conn, h.Length); err != nil {
				return unexpected(err)
			}
			continue
		}
		n := int(h.Length)
		if _, err := io.ReadFull(conn, p[:n]); err != nil {
			return unexpected(err)
		}
		switch h.OpCode {
		case ws.OpPing:
			if _, err := writeControl(conn, ws.OpPong, p[:n]); err != nil {
				return err
			}
		case ws.OpClose:
			return nil
		}
	}
}

// PendingConn is a connection whose first bytes were read ahead (by Upgrade): Read returns them
// first.
type PendingConn struct {
	net.Conn
	Pending []byte
}

func (c *PendingConn) Read(p []byte) (int, error) {
	if len(c.Pending) > 0 {
		n := copy(p, c.Pending)
		c.Pending = c.Pending[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}
