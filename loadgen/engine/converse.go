package engine

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"syscall"
	"time"

	"github.com/portstorm/portstorm/loadgen/metrics"
	"github.com/portstorm/portstorm/loadgen/proto"
)

// compile returns the exchange of s: its own, or random bytes (echoed back when Echo is set).
func (s *Send) compile() (*proto.Exchange, error) {
	if s.Exchange != nil {
		return s.Exchange, nil
	}
	payload := make([]byte, s.Bytes)
	for i := range payload {
		payload[i] = byte(rand.IntN(256))
	}
	spec := proto.Spec{Protocol: proto.Raw, Payload: payload}
	if s.Echo {
		spec.Protocol = proto.Echo
	}
	x, err := proto.Compile(spec)
	if err != nil {
		return nil, fmt.Errorf("engine: %w", err)
	}
	return x, nil
}

// initSend prepares the request side: the exchange, and the pool of readers. A reader (and its
// buffer) is held only while a conversation runs, never by an idle held connection.
func (e *engine) initSend() error {
	if e.cfg.Send == nil {
		return nil
	}
	x, err := e.cfg.Send.compile()
	if err != nil {
		return err
	}
	e.exchange = x
	e.websocket = x.Protocol() == proto.WebSocket
	e.readers.New = func() any { return proto.NewReader() }
	return nil
}

// handshake runs the TLS client handshake on an established connection, under the I/O timeout
// and the hard stop. It returns the TLS connection, or conn itself and the error.
func (e *engine) handshake(conn net.Conn, cfg *tls.Config, sh *metrics.Shard) (net.Conn, error) {
	if err := conn.SetDeadline(time.Now().Add(e.cfg.IOTimeout)); err != nil {
		return conn, err
	}
	tc := tls.Client(conn, cfg)
	t0 := time.Now()
	if err := tc.HandshakeContext(e.hardCtx); err != nil {
		return conn, handshakeError(err)
	}
	sh.Handshaked(time.Since(t0))
	return tc, nil
}

// handshakeError marks a failed handshake. A reset, an end of stream or a timeout keep their
// transport outcome (metrics.Classify looks at them first); anything else (certificate, alert,
// protocol version) is the tls_handshake outcome.
func handshakeError(err error) error {
	var errno syscall.Errno
	if errors.As(err, &errno) || errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, context.Canceled) {
		return err
	}
	return outcomeError{err: err, outcome: metrics.ErrTLSHandshake}
}

// outcomeError keeps a protocol's error message and makes it count as one of the outcomes of
// package metrics, which does not know the protocols.
type outcomeError struct {
	err     error
	outcome error
}

func (e outcomeError) Error() string   { return e.err.Error() }
func (e outcomeError) Unwrap() []error { return []error{e.outcome, e.err} }

// answerError gives a wrong answer its outcome; transport errors pass unchanged.
func answerError(err error) error {
	switch {
	case errors.Is(err, proto.ErrEchoMismatch):
		return outcomeError{err, metrics.ErrEchoMismatch}
	case errors.Is(err, proto.ErrStatus):
		return outcomeError{err, metrics.ErrStatusMismatch}
	case errors.Is(err, proto.ErrReply):
		return outcomeError{err, metrics.ErrReplyMismatch}
	case errors.Is(err, proto.ErrMalformed), errors.Is(err, proto.ErrTooLarge):
		return outcomeError{err, metrics.ErrBadResponse}
	}
	return err
}

// converse writes the requests and checks each answer, one at a time, closed loop: Interval after
// each answer. Rated and pipelined sends talk instead (rate.go).
func (e *engine) converse(conn net.Conn, sh *metrics.Shard, s *slot) error {
	snd := e.cfg.Send
	r := e.readers.Get().(*proto.Reader)
	r.Reset(conn)
	defer func() {
		r.Reset(nil) // the pooled reader must not keep the connection alive
		e.readers.Put(r)
	}()
	for i := range snd.Count {
		if i > 0 {
			// A stop lets the conversation finish (the graceful stop drains it); a hard stop, or a
			// ramp-down that no longer wants the slot, ends it between requests.
			if snd.Interval > 0 {
				if !e.pause(snd.Interval, s) {
					return errCut
				}
			} else if e.hardCtx.Err() != nil || s != nil && !s.wanted() {
				return errCut
			}
		}
		if err := conn.SetDeadline(time.Now().Add(e.cfg.IOTimeout)); err != nil {
			return err
		}
		if e.hardCtx.Err() != nil {
			// The hard stop's past deadline may have been set just before this one replaced it.
			return errCut
		}
		res, err := e.exchange.Do(conn, r)
		first, full := time.Duration(-1), time.Duration(-1)
		if res.FirstByte > 0 {
			first = res.FirstByte
		}
		if res.Full > 0 {
			full = res.Full
		}
		if err != nil {
			err = answerError(err)
			if e.hardCtx.Err() != nil {
				err = errCut
			}
		}
		// A bad answer is one failed request (and, when the connection closes, one failed
		// connection).
		sh.Request(metrics.RequestTiming{FirstByte: first, Service: full, Out: res.Out, In: res.In}, err)
		if err != nil {
			return err
		}
		if res.Closed {
			// The server said it closes after this answer: no further request on this connection.
			return nil
		}
	}
	return nil
}
