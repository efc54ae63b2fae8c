// Package metrics holds portstorm's recorders: sharded HdrHistograms, counters by outcome and the
// interval snapshots that shards exchange and merge, whether goroutines, processes or pods.
package metrics

import (
	"context"
	"errors"
	"io"
	"os"
	"syscall"
)

// Outcome is the fixed taxonomy every connection ends in. Failures are told apart with errors.Is on
// the error's shape, never by its text, so the set cannot grow with the messages the kernel returns.
type Outcome uint8

// The outcomes, in the order of summary.json's contract (docs/results.md). Canceled was added for
// connections cut short by a hard stop (a second signal or an expired graceful stop); the routing
// errnos after it for what a real network returns (before them they fell to Other), placed last
// but for Other so that the older timeline columns keep their order.
const (
	OK Outcome = iota
	EADDRNOTAVAIL
	EADDRINUSE
	ECONNREFUSED
	ETIMEDOUT
	ECONNRESET
	EMFILE
	EOF
	EchoMismatch
	StatusMismatch
	ReplyMismatch
	BadResponse
	TLSFailed
	Canceled
	ENETUNREACH
	EHOSTUNREACH
	ENETDOWN
	Other
	NumOutcomes
)

var outcomeNames = [NumOutcomes]string{
	OK:            "ok",
	EADDRNOTAVAIL: "EADDRNOTAVAIL",
	EADDRINUSE:    "EADDRINUSE",
	ECONNREFUSED:  "ECONNREFUSED",
	ETIMEDOUT:     "ETIMEDOUT",
	ECONNRESET:    "ECONNRESET",
	EMFILE:        "EMFILE",
	EOF:           "EOF",
	EchoMismatch:  "echo_mismatch",
	// A real server answered, but not as the plan expects: an HTTP status, a Redis or raw reply,
	// or a response that does not parse (or exceeds connection.send.max_response).
	StatusMismatch: "status_mismatch",
	ReplyMismatch:  "reply_mismatch",
	BadResponse:    "bad_response",
	// The TLS handshake failed for a TLS reason (certificate, alert, protocol); a reset or a
	// timeout during the handshake keeps its transport outcome.
	TLSFailed: "tls_handshake",
	Canceled:  "canceled",
	// No route to the destination's network (connect(2) gets it from the routing lookup, or from
	// an ICMP net unreachable: icmp_err_convert in net/ipv4/icmp.c).
	ENETUNREACH: "ENETUNREACH",
	// The destination's network is reachable but the host is not: neighbour resolution failed,
	// or an ICMP host unreachable, host unknown (EHOSTDOWN) or administratively filtered came back.
	EHOSTUNREACH: "EHOSTUNREACH",
	// The local interface the route goes through is down.
	ENETDOWN: "ENETDOWN",
	Other:    "other",
}

func (o Outcome) String() string {
	if o < NumOutcomes {
		return outcomeNames[o]
	}
	return "invalid"
}

// ParseOutcome is the inverse of String.
func ParseOutcome(s string) (Outcome, bool) {
	for i, n := range outcomeNames {
		if n == s {
			return Outcome(i), true
		}
	}
	return 0, false
}

// ErrEchoMismatch is returned when the bytes read back differ from the bytes written.
var ErrEchoMismatch = errors.New("echo mismatch")

// The response outcomes: the engine wraps the protocol's errors in these, so that the taxonomy
// does not depend on the protocols' package.
var (
	ErrStatusMismatch = errors.New("status mismatch")
	ErrReplyMismatch  = errors.New("reply mismatch")
	ErrBadResponse    = errors.New("bad response")
	ErrTLSHandshake   = errors.New("tls handshake")
)

// ErrCanceled marks work cut short by a hard stop.
var ErrCanceled = errors.New("canceled by stop")

// Classify maps an error to its outcome. A nil error is OK.
func Classify(err error) Outcome {
	switch {
	case err == nil:
		return OK
	case errors.Is(err, ErrCanceled), errors.Is(err, context.Canceled):
		return Canceled
	case errors.Is(err, ErrEchoMismatch):
		return EchoMismatch
	case errors.Is(err, ErrStatusMismatch):
		return StatusMismatch
	case errors.Is(err, ErrReplyMismatch):
		return ReplyMismatch
	case errors.Is(err, ErrBadResponse):
		return BadResponse
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		return EADDRNOTAVAIL
	case errors.Is(err, syscall.EADDRINUSE):
		return EADDRINUSE
	case errors.Is(err, syscall.ECONNREFUSED):
		return ECONNREFUSED
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE), errors.Is(err, syscall.ECONNABORTED):
		// A write into a connection the peer reset surfaces as EPIPE; both are the peer resetting.
		return ECONNRESET
	case errors.Is(err, syscall.ETIMEDOUT), errors.Is(err, os.ErrDeadlineExceeded),
		errors.Is(err, context.DeadlineExceeded):
		return ETIMEDOUT
	case errors.Is(err, syscall.EMFILE), errors.Is(err, syscall.ENFILE):
		return EMFILE
	case errors.Is(err, syscall.ENETUNREACH):
		return ENETUNREACH
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.EHOSTDOWN):
		return EHOSTUNREACH
	case errors.Is(err, syscall.ENETDOWN):
		return ENETDOWN
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return EOF
	case errors.Is(err, ErrTLSHandshake):
		return TLSFailed
	}
	return Other
}
