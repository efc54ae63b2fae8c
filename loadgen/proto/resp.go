package proto

import (
	"bufio"
	"bytes"
	"fmt"
)

// MaxDepth is how deeply RESP aggregates may nest in a reply; deeper is ErrMalformed.
const MaxDepth = 32

// minElement is the size of the shortest RESP value ("_\r\n"): an aggregate of n elements needs
// at least 3n more bytes, so a count beyond what MaxResponse leaves fails before any is read.
const minElement = 3

// readRESP reads one reply in RESP2 or RESP3 (https://redis.io/docs/latest/develop/reference/protocol-spec/)
// without keeping it: aggregates are walked with a counter per open level rather than recursion,
// strings are discarded or compared a buffer at a time. Only the top-level value is checked:
// an error reply ("-", "!") or a value other than RedisSpec.Expect is the verdict ErrReply.
// Attributes ("|") annotate the value after them and are not values themselves; a push (">") is
// taken as the reply. Streamed RESP3 strings and aggregates ("$?", "*?") are ErrMalformed.
func (x *Exchange) readRESP(r *Reader) (verdict, err error) {
	var (
		open  [MaxDepth]int64 // elements still to read in each open aggregate
		attrs uint64          // bit d: open[d] is an attribute map
		depth int
	)
next:
	for {
		top := depth == 0
		b, err := r.br.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			// Only simple strings and errors may be long; they are not interpreted unless on top.
			switch {
			case b[0] != '+' && b[0] != '-':
				return nil, errLongLine
			case top && b[0] == '-':
				verdict = fmt.Errorf("%w: error reply %q (clipped)", ErrReply, clip(b[1:]))
			case top && x.redisExpect != nil:
				verdict = fmt.Errorf("%w: simple string of more than %d bytes, want %q", ErrReply, BufferSize, clip(x.redisExpect))
			}
			crlf, err := r.skipLine(b)
			if err != nil {
				return nil, err
			}
			if !crlf {
				return nil, fmt.Errorf("%w: RESP line not ended by CRLF", ErrMalformed)
			}
		} else {
			if err != nil {
				return nil, unexpected(err)
			}
			if len(b) < 3 || b[len(b)-2] != '\r' {
				return nil, fmt.Errorf("%w: RESP line %q", ErrMalformed, clip(b))
			}
			typ, body := b[0], b[1:len(b)-2]
			switch typ {
			case '+':
				if top {
					verdict = x.checkText("simple string", body)
				}
			case '-':
				if top {
					verdict = fmt.Errorf("%w: error reply %q", ErrReply, clip(body))
				}
			case ':':
				n, ok := parseInteger(body)
				if !ok {
					return nil, fmt.Errorf("%w: integer %q", ErrMalformed, clip(body))
				}
				if top && x.redisExpect != nil && (!x.redisIsInt || n != x.redisExpectInt) {
					verdict = fmt.Errorf("%w: integer %d, want %q", ErrReply, n, clip(x.redisExpect))
				}
			case '_':
				if len(body) != 0 {
					return nil, fmt.Errorf("%w: null %q", ErrMalformed, clip(body))
				}
				if top {
					verdict = x.checkNull()
				}
			case '#':
				if len(body) != 1 || body[0] != 't' && body[0] != 'f' {
					return nil, fmt.Errorf("%w: boolean %q", ErrMalformed, clip(body))
				}
				if top {
					verdict = x.checkText("boolean", body)
				}
			case ',':
				if len(body) == 0 {
					return nil, fmt.Errorf("%w: empty double", ErrMalformed)
				}
				if top {
					verdict = x.checkText("double", body)
				}
			case '(':
				if !isBigNumber(body) {
					return nil, fmt.Errorf("%w: big number %q", ErrMalformed, clip(body))
				}
				if top {
					verdict = x.checkText("big number", body)
				}
			case '$', '=', '!':
				n, err := parseLength(typ, body)
				if err != nil {
					return nil, err
				}
				if n < 0 {
					if top {
						verdict = x.checkNull()
					}
					break
				}
				if n+2 > int64(r.room()) {
					return nil, fmt.Errorf("%w: string of %d bytes after %d, MaxResponse %d",
						ErrTooLarge, n, r.consumed(), r.max)
				}
				v, err := x.blob(r, typ, int(n), top)
				if err != nil {
					return nil, err
				}
				if top {
					verdict = v
				}
			case '*', '~', '%', '>', '|':
				n, err := parseLength(typ, body)
				if err != nil {
					return nil, err
				}
				if n < 0 {
					if top {
						verdict = x.checkNull()
					}
					break
				}
				per := int64(1)
				if typ == '%' || typ == '|' {
					per = 2 // key and value
				}
				if n > int64(r.room())/(minElement*per) {
					return nil, fmt.Errorf("%w: aggregate of %d elements after %d bytes, MaxResponse %d",
						ErrTooLarge, n*per, r.consumed(), r.max)
				}
				n *= per
				if top && typ != '|' && x.redisExpect != nil {
					verdict = fmt.Errorf("%w: aggregate reply %q, want %q", ErrReply, clip(b[:len(b)-2]), clip(x.redisExpect))
				}
				if n == 0 {
					if typ == '|' {
						continue next // an empty attribute: the value is still to come
					}
					break
				}
				if depth == MaxDepth {
					return nil, fmt.Errorf("%w: aggregates nested deeper than %d", ErrMalformed, MaxDepth)
				}
				open[depth] = n
				if typ == '|' {
					attrs |= 1 << depth
				}
				depth++
				continue next
			default:
				return nil, fmt.Errorf("%w: RESP type byte %q", ErrMalformed, typ)
			}
		}
		// A value is complete: it is one element of the innermost open aggregate, and may be the
		// last, completing that aggregate in turn.
		for depth > 0 {
			open[depth-1]--
			if open[depth-1] > 0 {
				continue next
			}
			depth--
			if attrs&(1<<depth) != 0 {
				// An attribute annotates the value after it and is no element itself.
				attrs &^= 1 << depth
				continue next
			}
		}
		return verdict, nil
	}
}

// blob consumes the n bytes and CRLF of a bulk string ("$"), verbatim string ("=") or blob error
// ("!"), checking them when on top.
func (x *Exchange) blob(r *Reader, typ byte, n int, top bool) (verdict, err error) {
	switch {
	case top && typ == '!':
		b, err := r.br.Peek(min(n, 64))
		if err != nil {
			return nil, unexpected(err)
		}
		verdict = fmt.Errorf("%w: error reply %q", ErrReply, b)
		if _, err := r.br.Discard(n); err != nil {
			return nil, unexpected(err)
		}
	case top && typ == '=' && x.redisExpect != nil:
		// The first four bytes are the format, e.g. "txt:".
		if n < 4 {
			return nil, fmt.Errorf("%w: verbatim string of %d bytes, shorter than its format", ErrMalformed, n)
		}
		if _, err := r.br.Discard(4); err != nil {
			return nil, unexpected(err)
		}
		n -= 4
		fallthrough
	case top && typ == '$' && x.redisExpect != nil:
		at, err := r.compare(n, x.redisExpect)
		if err != nil {
			return nil, err
		}
		switch {
		case at < 0:
		case n != len(x.redisExpect):
			verdict = fmt.Errorf("%w: string of %d bytes, want %q", ErrReply, n, clip(x.redisExpect))
		default:
			verdict = fmt.Errorf("%w: string differs at byte %d from %q", ErrReply, at, clip(x.redisExpect))
		}
	default:
		if _, err := r.br.Discard(n); err != nil {
			return nil, unexpected(err)
		}
	}
	b, err := r.br.Peek(2)
	if err != nil {
		return nil, unexpected(err)
	}
	if b[0] != '\r' || b[1] != '\n' {
		return nil, fmt.Errorf("%w: string of %d bytes not followed by CRLF", ErrMalformed, n)
	}
	r.br.Discard(2)
	return verdict, nil
}

// checkText compares a top-level textual value with the expected one.
func (x *Exchange) checkText(kind string, got []byte) error {
	if x.redisExpect == nil || bytes.Equal(got, x.redisExpect) {
		return nil
	}
	return fmt.Errorf("%w: %s %q, want %q", ErrReply, kind, clip(got), clip(x.redisExpect))
}

func (x *Exchange) checkNull() error {
	if x.redisExpect == nil {
		return nil
	}
	return fmt.Errorf("%w: null reply, want %q", ErrReply, clip(x.redisExpect))
}

// parseLength parses the length of a string or the count of an aggregate; -1 is the RESP2 null,
// allowed for bulk strings and arrays only.
func parseLength(typ byte, b []byte) (int64, error) {
	if len(b) == 2 && b[0] == '-' && b[1] == '1' && (typ == '$' || typ == '*') {
		return -1, nil
	}
	n, ok := parseDecimal(b)
	if !ok {
		return 0, fmt.Errorf("%w: %q length %q", ErrMalformed, typ, clip(b))
	}
	return n, nil
}

// parseInteger parses a signed 64-bit decimal.
func parseInteger(b []byte) (int64, bool) {
	neg := false
	if len(b) > 0 && (b[0] == '-' || b[0] == '+') {
		neg = b[0] == '-'
		b = b[1:]
	}
	if len(b) == 0 {
		return 0, false
	}
	limit := uint64(1<<63 - 1)
	if neg {
		limit = 1 << 63
	}
	var n uint64
	for _, c := range b {
		if !isDigit(c) {
			return 0, false
		}
		d := uint64(c - '0')
		if n > (limit-d)/10 {
			return 0, false
		}
		n = n*10 + d
	}
	if neg {
		return -int64(n), true
	}
	return int64(n), true
}

// isBigNumber reports whether b is a signed decimal, of any length.
func isBigNumber(b []byte) bool {
	if len(b) > 0 && (b[0] == '-' || b[0] == '+') {
		b = b[1:]
	}
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if !isDigit(c) {
			return false
		}
	}
	return true
}
