package target

import (
	"errors"
	"io"
	"net"
	"os"
	"time"

	"github.com/gobwas/ws"
)

// The websocket mode: an RFC 6455 echo server on github.com/gobwas/ws. Each connection is
// upgraded (any path, the first subprotocol the client offers), then every data frame is written
// back as it came (same opcode, same fragmentation, unmasked), pings are answered with pongs, and
// a close frame is answered with one (its status echoed) before the target closes the
// connection; a connection idle for IdleTimeout gets a close frame of 1001 (going away). An upgrade request that is not one gets 400 Bad Request. Connections are served
// by a goroutine each; a frame is streamed through a pooled buffer of at most MaxFrame bytes at
// a time, held only while the frame is in hand.

// wsUpgrader accepts any path and the first subprotocol offered.
var wsUpgrader = ws.Upgrader{Protocol: func([]byte) bool { return true }}

// serveWebSocket runs one websocket connection; it reports whether a deadline ended it.
func (s *Server) serveWebSocket(c net.Conn) (idle bool) {
	if err := c.SetDeadline(s.deadline()); err != nil {
		return false
	}
	if _, err := wsUpgrader.Upgrade(c); err != nil {
		return errors.Is(err, os.ErrDeadlineExceeded)
	}
	var hb [ws.MaxHeaderSize - 2]byte
	for {
		if err := s.armRead(c, time.Time{}); err != nil {
			return false
		}
		h, err := ws.ReadHeaderBuffer(c, hb[:])
		if err != nil {
			idle := errors.Is(err, os.ErrDeadlineExceeded)
			if idle {
				// Idle for IdleTimeout: 1001, going away, so that the client's closing handshake
				// (whenever it comes) finds the server's close frame.
				s.wsClose(c, ws.StatusGoingAway)
			}
			return idle
		}
		if !h.Masked || h.Rsv != 0 || h.OpCode.IsReserved() ||
			h.OpCode.IsControl() && (!h.Fin || h.Length > 125) {
			// RFC 6455 section 7.4.1: 1002, protocol error.
			s.wsClose(c, ws.StatusProtocolError)
			return false
		}
		if err := c.SetWriteDeadline(s.deadline()); err != nil {
			return false
		}
		switch h.OpCode {
		case ws.OpClose, ws.OpPing, ws.OpPong:
			var p [125]byte
			n := int(h.Length)
			if _, err := io.ReadFull(c, p[:n]); err != nil {
				return errors.Is(err, os.ErrDeadlineExceeded)
			}
			s.bytesIn.Add(uint64(n))
			ws.Cipher(p[:n], h.Mask, 0)
			switch h.OpCode {
			case ws.OpPing:
				if s.wsWrite(c, ws.NewPongFrame(p[:n])) != nil {
					return false
				}
			case ws.OpClose:
				code, _ := ws.ParseCloseFrameData(p[:n])
				if code.Empty() {
					code = ws.StatusNormalClosure
				}
				s.wsClose(c, code)
				return false
			}
			continue
		}
		if err := s.wsEcho(c, h); err != nil {
			return errors.Is(err, os.ErrDeadlineExceeded)
		}
	}
}

// wsEcho writes one data frame back as it comes in, MaxFrame bytes at a time.
func (s *Server) wsEcho(c net.Conn, h ws.Header) error {
	mask := h.Mask
	h.Masked, h.Mask = false, [4]byte{}
	if err := ws.WriteHeader(c, h); err != nil {
		return err
	}
	if h.Length == 0 {
		return nil
	}
	bp := s.frames.Get().(*[]byte)
	defer s.frames.Put(bp)
	buf := *bp
	for off := int64(0); off < h.Length; {
		k := min(int64(len(buf)), h.Length-off)
		n, err := io.ReadFull(c, buf[:k])
		s.bytesIn.Add(uint64(n))
		if err != nil {
			return err
		}
		ws.Cipher(buf[:n], mask, int(off))
		if err := s.send(c, buf[:n]); err != nil {
			return err
		}
		off += int64(n)
	}
	return nil
}

// wsWrite writes one (control) frame.
func (s *Server) wsWrite(c net.Conn, f ws.Frame) error {
	b, err := ws.CompileFrame(f)
	if err != nil {
		return err
	}
	return s.send(c, b)
}

// wsClose answers (or starts) the closing handshake with status code; the caller closes.
func (s *Server) wsClose(c net.Conn, code ws.StatusCode) {
	c.SetWriteDeadline(s.deadline())
	s.wsWrite(c, ws.NewCloseFrame(ws.NewCloseFrameBody(code, "")))
}

// deadline is when an I/O started now must be done: IdleTimeout from now.
func (s *Server) deadline() time.Time { return time.Now().Add(s.idle) }
