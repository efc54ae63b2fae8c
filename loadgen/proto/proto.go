// Package proto speaks the request/response protocols of an established connection (raw, echo,
// HTTP/1.1, Redis RESP, WebSocket) and times each exchange to its first and its last response byte.
package proto

import (
	"errors"
	"fmt"
	"io"
	"time"
)

// Protocol names what a connection speaks after connect.
type Protocol string

// The protocols.
const (
	// Raw writes Payload and, when Expect is set, reads exactly len(Expect) bytes back.
	Raw Protocol = "raw"
	// Echo writes Payload and reads the same bytes back.
	Echo Protocol = "echo"
	// HTTP writes one HTTP/1.1 keep-alive request and reads its response.
	HTTP Protocol = "http"
	// Redis writes one RESP command and reads its reply (RESP2 or RESP3).
	Redis Protocol = "redis"
	// WebSocket writes Payload as one masked WebSocket message (after Upgrade) and, when Expect
	// is set, reads one message back and compares it (websocket.go).
	WebSocket Protocol = "websocket"
)

// DefaultMaxResponse is the cap on one response when Spec.MaxResponse is 0.
const DefaultMaxResponse = 1 << 20

// The outcomes of a response that is not the one expected. Do returns them wrapped with the
// detail ("status 200, want 404"); tell them apart with errors.Is.
var (
	// ErrEchoMismatch: the echo differs from the bytes written.
	ErrEchoMismatch = errors.New("echo mismatch")
	// ErrStatus: the HTTP status is not the one expected.
	ErrStatus = errors.New("unexpected status")
	// ErrReply: a Redis error reply, a Redis reply other than RedisSpec.Expect, or a raw reply
	// other than Spec.Expect.
	ErrReply = errors.New("unexpected reply")
	// ErrMalformed: the response does not parse, or bytes follow a complete response.
	ErrMalformed = errors.New("malformed response")
	// ErrTooLarge: the response exceeds MaxResponse, or a line it needs whole exceeds BufferSize.
	ErrTooLarge = errors.New("response too large")
	// ErrSpec: Compile rejected the Spec.
	ErrSpec = errors.New("invalid protocol spec")
)

// Header is one extra HTTP request header.
type Header struct{ Name, Value string }

// HTTPSpec is the HTTP/1.1 request of the http protocol.
type HTTPSpec struct {
	// Method is the request method; "" means GET. CONNECT is refused (a tunnel is no exchange).
	// The response to HEAD has no body whatever its headers say.
	Method string
	// Path is the request target; "" means "/". It must start with "/" and be percent-encoded
	// (no space, control or non-ASCII byte).
	Path string
	// Host is the Host header value; required.
	Host string
	// Headers are extra request headers. Host, Content-Length and Transfer-Encoding are set by
	// the package and refused here; "Connection: close" makes every Result Closed.
	Headers []Header
	// Body is the request body. Content-Length is sent when it is non-empty, or when the method
	// is POST, PUT or PATCH.
	Body []byte
	// ExpectStatus is the exact status expected; 0 means any 2xx.
	ExpectStatus int
}

// RedisSpec is the command of the redis protocol.
type RedisSpec struct {
	// Command is the command and its arguments, sent as a RESP array of bulk strings.
	Command []string
	// Expect is the reply value expected, as text: the content of a simple, bulk or verbatim
	// string (verbatim without its "txt:" prefix), an integer in decimal (compared as a number),
	// or the text of a double, big number or boolean ("t", "f"). "" accepts any reply that is not
	// an error. A null or aggregate reply never equals a non-empty Expect, nor does a simple
	// string longer than BufferSize (simple strings are status words; long values are bulk).
	Expect string
}

// Spec describes the exchange a connection runs per request. Fields of the other protocols are
// ignored.
type Spec struct {
	Protocol Protocol
	// Payload is the bytes written per request by raw and echo.
	Payload []byte
	// Expect, for raw and websocket: when non-empty, exactly len(Expect) bytes are read back (for
	// websocket, one message) and compared; when empty, the request is written and nothing is
	// read.
	Expect    []byte
	HTTP      HTTPSpec
	Redis     RedisSpec
	WebSocket WebSocketSpec
	// MaxResponse caps the bytes read for one response, headers included; 0 means
	// DefaultMaxResponse. The Reader never takes more than this from the connection per response:
	// a response that needs more is ErrTooLarge, and so is an HTTP body delimited by the end of
	// the stream that reaches the cap (telling whether more follows would mean reading past it).
	MaxResponse int
}

// Result is the measure of one exchange.
type Result struct {
	// FirstByte is the time from the start of the request write to the first response byte; 0
	// when nothing was read.
	FirstByte time.Duration
	// Full is the time from the start of the request write to the last response byte; 0 when
	// nothing was read or the response was not read to its end (any error but ErrStatus,
	// ErrReply and ErrEchoMismatch).
	Full time.Duration
	// Out and In are the bytes written to and read from the connection for this request; In
	// counts what the Reader took, which on error may be more than the parser consumed.
	Out, In int
	// Status is the HTTP status (0 for the other protocols).
	Status int
	// Closed means the server closes after this response (HTTP "Connection: close", an HTTP/1.0
	// response without keep-alive, a body delimited by the end of the stream, or a request sent
	// with "Connection: close"): send no more requests on this connection.
	Closed bool
}

// Exchange is a compiled Spec: the request bytes built once per run and the check of the
// response. It is immutable and safe for concurrent use by any number of connections.
type Exchange struct {
	protocol Protocol
	request  []byte
	max      int
	tooLarge error // the ErrTooLarge the Reader returns at the cap, built once

	// raw and echo: the bytes read back and compared.
	expect []byte

	// http
	head         bool // the response has no body
	closeAfter   bool // the request asked the server to close
	expectStatus int

	// redis
	redisExpect    []byte
	redisExpectInt int64
	redisIsInt     bool // redisExpect is a decimal integer

	ws *wsExchange // websocket
}

// Protocol returns the protocol the exchange speaks.
func (x *Exchange) Protocol() Protocol { return x.protocol }

// Do writes one request on w and reads its response through r, which must have been Reset onto
// the same connection. It never sets deadlines and never sleeps: the caller bounds it with the
// connection's deadlines. Errors from w and r's connection are returned unchanged (io.EOF when
// the server closed before any response byte, io.ErrUnexpectedEOF when it closed mid-response);
// the others are the package's sentinels, wrapped. After any error but ErrStatus, ErrReply and
// ErrEchoMismatch the connection is out of step with the server and must be closed.
//
// Do is Write then Read with nothing else outstanding; a pipelining caller calls the two itself.
func (x *Exchange) Do(w io.Writer, r *Reader) (Result, error) {
	w0 := time.Now()
	n, err := x.Write(w)
	if err != nil || !x.Reads() {
		return Result{Out: n}, err
	}
	res, err := x.Read(r, w0, nil)
	res.Out = n
	return res, err
}

// Reads reports whether a request has an answer to read: false for raw without Expect, whose
// requests are written only.
func (x *Exchange) Reads() bool {
	return x.protocol != Raw && x.protocol != WebSocket || len(x.expect) > 0
}

// Write writes one request on w and returns the bytes written. Requests may be written ahead of
// their answers (pipelining): HTTP/1.1, RESP and raw all answer in order.
func (x *Exchange) Write(w io.Writer) (int, error) {
	if x.ws != nil {
		return x.ws.write(w, x.request)
	}
	if len(x.request) == 0 {
		return 0, nil
	}
	return w.Write(x.request)
}

// Read reads the response to the oldest request not yet answered, whose write started at w0
// (FirstByte and Full count from it; a response already buffered counts as arriving now). more,
// asked once the response is read, says later requests are outstanding too, so that bytes after
// this response are theirs; when it says no (or is nil), bytes after a complete response are
// ErrMalformed: nothing was asked for them. Result.Out is left 0: Write reports it. Errors are
// as Do's.
func (x *Exchange) Read(r *Reader, w0 time.Time, more func() bool) (Result, error) {
	var res Result
	r.begin(x.max, x.tooLarge)
	if _, err := r.br.Peek(1); err != nil {
		res.In = r.read()
		return res, err
	}
	res.FirstByte = max(time.Since(w0), 1)

	var verdict, err error
	switch x.protocol {
	case HTTP:
		verdict, err = x.readHTTP(r, &res)
	case Redis:
		verdict, err = x.readRESP(r)
	case Echo:
		if at, e := r.compare(len(x.expect), x.expect); e != nil {
			err = e
		} else if at >= 0 {
			verdict = fmt.Errorf("%w: byte %d of %d differs", ErrEchoMismatch, at, len(x.expect))
		}
	case Raw:
		if at, e := r.compare(len(x.expect), x.expect); e != nil {
			err = e
		} else if at >= 0 {
			verdict = fmt.Errorf("%w: byte %d of %d differs from Expect", ErrReply, at, len(x.expect))
		}
	case WebSocket:
		verdict, err = x.ws.readMessage(r, x.expect)
	}
	res.In = r.read()
	if err != nil {
		return res, err
	}
	if verdict != nil {
		// A wrong answer is the finding, whatever follows it.
		res.Full = max(time.Since(w0), 1)
		return res, verdict
	}
	if n := r.br.Buffered(); n > 0 && (more == nil || !more()) {
		// Nothing was asked for these bytes: the stream is out of step with the requests.
		return res, fmt.Errorf("%w: %d bytes after a complete response", ErrMalformed, n)
	}
	res.Full = max(time.Since(w0), 1)
	return res, verdict
}
