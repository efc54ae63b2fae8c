package proto

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
)

// framing is what the response headers say about the body (RFC 9112 §6) and the connection.
type framing struct {
	length    int64 // Content-Length, -1 when absent
	te        bool  // Transfer-Encoding present
	chunked   bool  // its final coding is chunked
	close     bool  // Connection: close
	keepAlive bool  // Connection: keep-alive (HTTP/1.0)
}

// readHTTP reads one response: interim 1xx responses, the final status line, the headers and the
// body, discarded as it arrives. verdict is ErrStatus for a complete response with another
// status than expected; err is anything that leaves the stream out of step.
func (x *Exchange) readHTTP(r *Reader, res *Result) (verdict, err error) {
	var status, minor int
	var f framing
	for {
		status, minor, err = r.statusLine()
		if err != nil {
			return nil, err
		}
		if err = r.headers(&f); err != nil {
			return nil, err
		}
		if status == 101 {
			return nil, fmt.Errorf("%w: 101 Switching Protocols to a request that asked for no upgrade", ErrMalformed)
		}
		if status >= 200 {
			break
		}
		// RFC 9110 §15.2: a client parses and ignores the interim responses before the final one.
	}
	res.Status = status
	if f.te && f.length >= 0 {
		// RFC 9112 §6.3: both framings at once "ought to be handled as an error" (smuggling).
		return nil, fmt.Errorf("%w: both Transfer-Encoding and Content-Length", ErrMalformed)
	}
	res.Closed = f.close || minor == 0 && !f.keepAlive || x.closeAfter
	switch {
	case x.head || status == 204 || status == 304:
		// RFC 9112 §6.3 rule 1: no body whatever the headers say.
	case f.chunked:
		err = r.chunked()
	case f.te:
		// RFC 9112 §6.3 rule 4: another final coding is delimited by the end of the stream.
		res.Closed = true
		err = r.untilEOF()
	case f.length >= 0:
		if f.length > int64(r.room()) {
			return nil, fmt.Errorf("%w: Content-Length %d after %d bytes of headers, MaxResponse %d",
				ErrTooLarge, f.length, r.consumed(), r.max)
		}
		if _, err = r.br.Discard(int(f.length)); err != nil {
			err = unexpected(err)
		}
	default:
		res.Closed = true
		err = r.untilEOF()
	}
	if err != nil {
		return nil, err
	}
	switch {
	case x.expectStatus == 0 && (status < 200 || status > 299):
		return fmt.Errorf("%w: status %d, want 2xx", ErrStatus, status), nil
	case x.expectStatus != 0 && status != x.expectStatus:
		return fmt.Errorf("%w: status %d, want %d", ErrStatus, status, x.expectStatus), nil
	}
	return nil, nil
}

// trimEOL drops the line terminator: CRLF, or a bare LF (RFC 9112 §2.2 lets a recipient accept it).
func trimEOL(b []byte) []byte {
	b = b[:len(b)-1]
	if len(b) > 0 && b[len(b)-1] == '\r' {
		b = b[:len(b)-1]
	}
	return b
}

// statusLine parses "HTTP/1.x NNN reason" (RFC 9112 §4); the reason may be absent.
func (r *Reader) statusLine() (status, minor int, err error) {
	b, err := r.line()
	if err != nil {
		return 0, 0, err
	}
	b = trimEOL(b)
	if len(b) < 12 || !bytes.HasPrefix(b, []byte("HTTP/1.")) || !isDigit(b[7]) || b[8] != ' ' ||
		!isDigit(b[9]) || !isDigit(b[10]) || !isDigit(b[11]) || len(b) > 12 && b[12] != ' ' {
		return 0, 0, fmt.Errorf("%w: status line %q", ErrMalformed, clip(b))
	}
	status = int(b[9]-'0')*100 + int(b[10]-'0')*10 + int(b[11]-'0')
	if status < 100 {
		return 0, 0, fmt.Errorf("%w: status line %q", ErrMalformed, clip(b))
	}
	return status, int(b[7] - '0'), nil
}

// headers reads the header section up to its empty line into f. Only the framing headers are
// interpreted; the others are checked for shape and skipped, whatever their length.
func (r *Reader) headers(f *framing) error {
	*f = framing{length: -1}
	for {
		b, err := r.br.ReadSlice('\n')
		long := err == bufio.ErrBufferFull
		if err != nil && !long {
			return unexpected(err)
		}
		if !long {
			b = trimEOL(b)
			if len(b) == 0 {
				return nil
			}
		}
		if b[0] == ' ' || b[0] == '\t' {
			// RFC 9112 §5.2: obsolete line folding may be rejected.
			return fmt.Errorf("%w: folded header line", ErrMalformed)
		}
		colon := bytes.IndexByte(b, ':')
		if colon < 0 && long {
			return errLongLine
		}
		if colon <= 0 || !isTokenBytes(b[:colon]) {
			// Includes whitespace before the colon, which RFC 9112 §5.1 requires rejecting.
			return fmt.Errorf("%w: header line %q", ErrMalformed, clip(b))
		}
		name := b[:colon]
		framingHeader := equalFold(name, "content-length") || equalFold(name, "transfer-encoding") ||
			equalFold(name, "connection")
		if long {
			if framingHeader {
				return errLongLine
			}
			if _, err := r.skipLine(b); err != nil {
				return err
			}
			continue
		}
		if framingHeader {
			if err := f.add(name, bytes.Trim(b[colon+1:], ows)); err != nil {
				return err
			}
		}
	}
}

// add records one framing header.
func (f *framing) add(name, value []byte) error {
	switch {
	case equalFold(name, "content-length"):
		// RFC 9110 §8.6: a list of identical values may stand for one; differing ones are an error.
		if len(value) == 0 {
			return fmt.Errorf("%w: empty Content-Length", ErrMalformed)
		}
		for len(value) > 0 {
			var elem []byte
			elem, value = nextElem(value)
			n, ok := parseDecimal(elem)
			if !ok {
				return fmt.Errorf("%w: Content-Length %q", ErrMalformed, clip(elem))
			}
			if f.length >= 0 && n != f.length {
				return fmt.Errorf("%w: Content-Length %d and %d", ErrMalformed, f.length, n)
			}
			f.length = n
		}
	case equalFold(name, "transfer-encoding"):
		for len(value) > 0 {
			var coding []byte
			coding, value = nextElem(value)
			if len(coding) == 0 {
				continue
			}
			if f.chunked {
				// RFC 9112 §6.1: chunked is applied once, and last.
				return fmt.Errorf("%w: Transfer-Encoding with a coding after chunked", ErrMalformed)
			}
			f.te = true
			f.chunked = equalFold(coding, "chunked")
		}
	default: // connection
		for len(value) > 0 {
			var opt []byte
			opt, value = nextElem(value)
			f.close = f.close || equalFold(opt, "close")
			f.keepAlive = f.keepAlive || equalFold(opt, "keep-alive")
		}
	}
	return nil
}

// nextElem splits the first element off a comma-separated list, trimming its whitespace.
func nextElem(v []byte) (elem, rest []byte) {
	if i := bytes.IndexByte(v, ','); i >= 0 {
		return bytes.Trim(v[:i], ows), v[i+1:]
	}
	return bytes.Trim(v, ows), nil
}

// chunked discards a chunked body (RFC 9112 §7.1) and its trailer section.
func (r *Reader) chunked() error {
	for {
		b, err := r.line()
		if err != nil {
			return err
		}
		size, err := chunkSize(trimEOL(b))
		if err != nil {
			return err
		}
		if size == 0 {
			break
		}
		if size > int64(r.room()) {
			return fmt.Errorf("%w: chunk of %d bytes after %d, MaxResponse %d",
				ErrTooLarge, size, r.consumed(), r.max)
		}
		if _, err := r.br.Discard(int(size)); err != nil {
			return unexpected(err)
		}
		if b, err = r.line(); err != nil {
			return err
		}
		if len(trimEOL(b)) != 0 {
			return fmt.Errorf("%w: chunk data not followed by CRLF", ErrMalformed)
		}
	}
	var trailers framing
	return r.headers(&trailers)
}

// chunkSize parses "hex [BWS ; ext...]".
func chunkSize(b []byte) (int64, error) {
	var n uint64
	i := 0
	for ; i < len(b); i++ {
		d, ok := hexDigit(b[i])
		if !ok {
			break
		}
		if n>>59 != 0 {
			return 0, fmt.Errorf("%w: chunk size %q overflows", ErrMalformed, clip(b))
		}
		n = n<<4 | uint64(d)
	}
	rest := bytes.Trim(b[i:], ows)
	if i == 0 || len(rest) > 0 && rest[0] != ';' {
		return 0, fmt.Errorf("%w: chunk size %q", ErrMalformed, clip(b))
	}
	return int64(n), nil
}

// untilEOF discards a body delimited by the end of the stream.
func (r *Reader) untilEOF() error {
	for {
		if _, err := r.br.Peek(1); err != nil {
			if err == io.EOF {
				return nil
			}
			return err
		}
		r.br.Discard(r.br.Buffered())
	}
}

// parseDecimal parses a non-negative decimal of at most 18 digits (no sign, no overflow).
func parseDecimal(b []byte) (int64, bool) {
	if len(b) == 0 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		if !isDigit(c) || n > (1<<62)/10 {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func hexDigit(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

func isTokenBytes(b []byte) bool {
	for _, c := range b {
		if !tchar[c] {
			return false
		}
	}
	return len(b) > 0
}

// equalFold compares b with the lower-case ASCII lower, ignoring ASCII case.
func equalFold(b []byte, lower string) bool {
	if len(b) != len(lower) {
		return false
	}
	for i := range b {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}

// clip shortens what an error message quotes from a response.
func clip(b []byte) []byte {
	if len(b) > 64 {
		return b[:64]
	}
	return b
}

// ows is the optional whitespace around HTTP field values and list elements (RFC 9110 section
// 5.6.3): spaces and tabs.
const ows = " \t"
