package proto

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
)

// BufferSize is the size of a Reader's buffer: the longest line the parsers need whole (an HTTP
// status line, framing header or chunk-size line, a RESP type line) and the most read ahead of
// the parser. Longer lines the parsers do not interpret (other HTTP headers, RESP simple strings
// not compared) are skipped whatever their length, within MaxResponse.
const BufferSize = 4096

// errNoConn is what a Reader reset to nil returns.
var errNoConn = errors.New("proto: Reader has no connection (Reset it onto one)")

// errLongLine is a line the parser needs whole that does not fit the buffer.
var errLongLine = fmt.Errorf("%w: a line longer than %d bytes", ErrTooLarge, BufferSize)

// Reader is the read side of one connection: a buffered reader that takes at most MaxResponse
// bytes from the connection per response. Keep Readers in a sync.Pool and hold one only while a
// conversation runs: Reset(conn) before the first exchange, Reset(nil) before putting it back.
type Reader struct {
	br  *bufio.Reader
	src source
	max int // the cap of the current response
	// w is the connection's write side when it has one: websocket answers pings while it reads.
	w io.Writer
}

// source meters the connection: it hands bufio at most left more bytes, then the cap's error,
// so no response makes the Reader take (or buffer) more than MaxResponse.
type source struct {
	r    io.Reader
	left int   // bytes the current response may still take from r
	got  int   // bytes taken from r since the response began
	full error // returned once left is spent
}

func (s *source) Read(p []byte) (int, error) {
	if s.r == nil {
		return 0, errNoConn
	}
	if s.left <= 0 {
		return 0, s.full
	}
	if len(p) > s.left {
		p = p[:s.left]
	}
	n, err := s.r.Read(p)
	s.left -= n
	s.got += n
	return n, err
}

// NewReader returns a Reader with no connection; Reset it onto one.
func NewReader() *Reader {
	r := &Reader{src: source{full: errNoConn}}
	r.br = bufio.NewReaderSize(&r.src, BufferSize)
	return r
}

// Reset makes r read from c, dropping anything buffered from a previous connection. Reset(nil)
// lets go of the connection.
func (r *Reader) Reset(c io.Reader) {
	r.w, _ = c.(io.Writer)
	r.src = source{r: c, full: errNoConn}
	r.br.Reset(&r.src)
}

// begin starts a response of at most max bytes; bytes already buffered count towards it.
func (r *Reader) begin(max int, full error) {
	r.max = max
	r.src.left = max - r.br.Buffered()
	r.src.got = 0
	r.src.full = full
}

// read is the bytes taken from the connection since the response began.
func (r *Reader) read() int { return r.src.got }

// consumed is the bytes of the current response the parser has consumed.
func (r *Reader) consumed() int { return r.max - r.room() }

// room is how many more bytes the current response may take.
func (r *Reader) room() int { return r.src.left + r.br.Buffered() }

// unexpected turns the end of the stream inside a response into io.ErrUnexpectedEOF.
func unexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// line returns the next line, terminator included, when it fits the buffer. The slice is valid
// until the next read.
func (r *Reader) line() ([]byte, error) {
	b, err := r.br.ReadSlice('\n')
	if err == bufio.ErrBufferFull {
		return nil, errLongLine
	}
	if err != nil {
		return nil, unexpected(err)
	}
	return b, nil
}

// skipLine consumes the rest of a line whose first part, prefix, filled the buffer, whatever its
// length (the cap bounds it), and reports whether it ended with CRLF.
func (r *Reader) skipLine(prefix []byte) (crlf bool, err error) {
	last := prefix[len(prefix)-1]
	for {
		b, err := r.br.ReadSlice('\n')
		switch {
		case err == bufio.ErrBufferFull:
			last = b[len(b)-1]
		case err != nil:
			return false, unexpected(err)
		case len(b) >= 2:
			return b[len(b)-2] == '\r', nil
		default:
			return last == '\r', nil
		}
	}
}

// compare consumes n bytes and reports the offset of the first that differs from want, or -1
// when they equal want. Bytes are compared a buffer at a time, never kept.
func (r *Reader) compare(n int, want []byte) (at int, err error) {
	if n > r.room() {
		return -1, r.src.full
	}
	if n != len(want) {
		if _, err := r.br.Discard(n); err != nil {
			return -1, unexpected(err)
		}
		return min(n, len(want)), nil
	}
	at = -1
	for off := 0; off < n; {
		k := min(n-off, BufferSize)
		b, err := r.br.Peek(k)
		if err != nil {
			return -1, unexpected(err)
		}
		if at < 0 && !bytes.Equal(b, want[off:off+k]) {
			for i := range b {
				if b[i] != want[off+i] {
					at = off + i
					break
				}
			}
		}
		r.br.Discard(k)
		off += k
	}
	return at, nil
}
