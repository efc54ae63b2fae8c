package engine

import (
	"context"
	"fmt"
	"net"
	"time"

	"github.com/portstorm/portstorm/loadgen/dial"
	"github.com/portstorm/portstorm/loadgen/proto"
)

// WebSocket connections (docs/measurements.md "WebSocket"): upgraded right after connect (and the
// TLS handshake), under the I/O timeout and the hard stop, then they talk or converse like any
// other; held idle, they are parked like any other (bare, without a net.Conn, when they close
// with FIN or RST); at their end they run the closing handshake before the TCP close.

// upgrade runs the opening handshake on conn. It returns the connection to talk on (conn, or conn
// with the bytes the server sent after its response in front), or conn and the error: a refused
// upgrade (a status other than 101) counts as status_mismatch, a broken one as bad_response, a
// subprotocol not selected as reply_mismatch.
func (e *engine) upgrade(conn net.Conn) (net.Conn, error) {
	if err := conn.SetDeadline(time.Now().Add(e.cfg.IOTimeout)); err != nil {
		return conn, err
	}
	stop := context.AfterFunc(e.hardCtx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	pending, err := e.exchange.Upgrade(conn)
	stop()
	if err != nil {
		if e.hardCtx.Err() != nil {
			return conn, errCut
		}
		return conn, answerError(err)
	}
	if len(pending) > 0 {
		return &proto.PendingConn{Conn: conn, Pending: pending}, nil
	}
	return conn, nil
}

// closeWebSocket runs the closing handshake of h, whose conversation ended well, under the I/O
// timeout and the hard stop. A connection parked bare gets a net.Conn back for it.
func (e *engine) closeWebSocket(h *held) error {
	if h.conn == nil {
		c, err := dial.Attach(h.bare)
		if err != nil {
			// The descriptor is still h.bare's: finish closes it without the handshake.
			return fmt.Errorf("websocket close: %w", err)
		}
		h.conn = c
	}
	conn := h.conn
	if err := conn.SetDeadline(time.Now().Add(e.cfg.IOTimeout)); err != nil {
		return err
	}
	stop := context.AfterFunc(e.hardCtx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if err := e.exchange.CloseHandshake(conn); err != nil {
		return answerError(fmt.Errorf("websocket close: %w", err))
	}
	return nil
}
