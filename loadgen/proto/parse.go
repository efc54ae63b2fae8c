package proto

import (
	"errors"
	"io"
	"time"
)

// ErrIncomplete is Parse's answer when the bytes given end before the response does: call it
// again, from the same first byte, once more have come.
var ErrIncomplete = errors.New("proto: the response is not complete yet")

// sliceSource hands a Reader the bytes given to Parse, then ErrIncomplete (or io.EOF once the
// server closed).
type sliceSource struct {
	b   []byte
	eof bool
}

func (s *sliceSource) Read(p []byte) (int, error) {
	if len(s.b) == 0 {
		if s.eof {
			return 0, io.EOF
		}
		return 0, ErrIncomplete
	}
	n := copy(p, s.b)
	s.b = s.b[n:]
	return n, nil
}

// Parse reads the response to the oldest request outstanding from data, the bytes received after
// the previous response, for a caller that reads the connection itself (an event loop with
// non-blocking sockets, loadgen/engine's rated loops). eof says the server closed after data; more
// says later requests are outstanding too, so that bytes after this response are theirs. It returns
// the response's length in data (the bytes to drop before the next Parse) with the Result and error
// of Read, or ErrIncomplete when data ends inside the response: nothing is consumed, and the
// caller parses again, from the same start, when more bytes have come (responses that come whole
// in one read, the common case, are parsed once). r is only scratch space: Parse leaves it reset
// to nil. FirstByte and Full count from w0 to now.
func (x *Exchange) Parse(r *Reader, data []byte, eof bool, w0 time.Time, more bool) (Result, int, error) {
	r.slice = sliceSource{b: data, eof: eof} // in r: no allocation per response
	r.Reset(&r.slice)
	defer r.Reset(nil)
	res, err := x.Read(r, w0, func() bool { return more })
	if errors.Is(err, ErrIncomplete) {
		return Result{}, 0, ErrIncomplete
	}
	n := r.consumed()
	if err != nil && res.Full == 0 {
		// The stream is out of step (or the server closed): everything given is spent.
		n = len(data)
	}
	res.In = n
	return res, n, err
}
