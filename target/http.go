package target

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"time"
)

// The http mode is just enough HTTP/1.1 (RFC 9112) for HTTP load plans to run without an external
// server. Every request gets the same response, built once by Start; the parser reads only what
// framing and connection management need: Content-Length, Transfer-Encoding, Connection, Host and
// Expect. Bodies are read and discarded; chunked ones are refused (501), so that the target never
// has to decode a stream to find where the next request starts.
//
// The response has no Date field, although RFC 9110 section 6.6.1 asks an origin server with a
// clock for one: a date would make the response differ every second, and no load client reads it.

const (
	// maxHTTPHead caps a request head: empty lines before it, request line, fields and the blank
	// line. A longer head gets 431 (RFC 6585 section 5); 8 KiB is the usual limit (nginx, Apache).
	maxHTTPHead = 8 << 10
	// maxHTTPBody caps Content-Length; a larger one gets 413 (RFC 9110 section 15.5.14) before any
	// of the body is read.
	maxHTTPBody = 1 << 20
	// minHTTPFrame is the smallest frame in http mode: an incomplete head (under maxHTTPHead) is
	// kept at the frame's start, and the next read needs room after it.
	minHTTPFrame = 2 * maxHTTPHead
	// httpLinger and httpLingerBytes bound the reading after the target half-closes (lingerClose).
	httpLinger      = 500 * time.Millisecond
	httpLingerBytes = 1 << 20
)

// httpBody is the content of every answer with Config.HTTPStatus.
const httpBody = "portstorm\n"

// request is what the target acts on in a request head.
type request struct {
	size      int   // bytes of the head, blank line included: where the body, or the next request, starts
	bodyLen   int64 // Content-Length, 0 without one
	head      bool  // HEAD: the answer has no content
	http10    bool  // HTTP/1.0
	keepAlive bool  // the connection stays open after the answer
	expect100 bool  // "Expect: 100-continue" on an HTTP/1.1 request with a body
}

// parseRequest parses the request head at the start of b. It returns a request with size > 0 and
// status 0 when the head is complete and acceptable; size 0 and status 0 while it is incomplete and
// could still be; and otherwise the status to refuse it with, after which the connection closes:
// 400 malformed, 413 body too large, 431 head too large, 501 transfer coding, 505 HTTP version.
//
// A refusal stays a refusal however many bytes follow, and a complete head is decided by its own
// bytes, so pipelined requests are parsed one at a time from the same buffer. It never allocates.
// A head that stays incomplete is parsed again from its start after every read: cheap, because
// heads are capped at 8 KiB and scanned with bytes.IndexByte.
func parseRequest(b []byte) (req request, status int) {
	// RFC 9112 section 2.2: a server SHOULD ignore empty lines before the request line (some
	// clients send a CRLF after a body). A CR at the end may be the start of one.
	start := 0
	for start < len(b) {
		if b[start] == '\n' {
			start++
		} else if b[start] == '\r' && start+1 < len(b) && b[start+1] == '\n' {
			start += 2
		} else {
			break
		}
	}
	rest := b[start:]
	lineEnd := bytes.IndexByte(rest, '\n')
	if lineEnd < 0 {
		// Refuse what cannot become a request line now (a TLS ClientHello, binary garbage) rather
		// than after 8 KiB or the idle timeout.
		if !methodPrefix(rest) {
			return req, 400
		}
		if len(b) >= maxHTTPHead {
			return req, 431
		}
		return req, 0
	}
	if status := req.parseRequestLine(trimCR(rest[:lineEnd])); status != 0 {
		return req, status
	}
	end := headEnd(b, start+lineEnd+1)
	if end < 0 {
		if len(b) >= maxHTTPHead {
			return req, 431
		}
		return req, 0
	}
	if end > maxHTTPHead {
		return req, 431
	}

	var f fields
	for pos := start + lineEnd + 1; ; {
		nl := pos + bytes.IndexByte(b[pos:end], '\n')
		line := trimCR(b[pos:nl])
		pos = nl + 1
		if len(line) == 0 {
			break // the blank line: pos == end
		}
		if status := f.parse(line); status != 0 {
			return req, status
		}
	}
	switch {
	case f.transferEncoding && (req.http10 || f.hasLength):
		// RFC 9112 section 6.1: an HTTP/1.0 request with Transfer-Encoding has faulty framing;
		// section 6.3: Transfer-Encoding with Content-Length "ought to be handled as an error"
		// (request smuggling).
		return req, 400
	case f.transferEncoding:
		// RFC 9112 section 6.1: a transfer coding the server does not implement gets 501; this
		// server implements none, chunked included.
		return req, 501
	case f.hosts > 1, f.hosts == 0 && !req.http10:
		// RFC 9112 section 3.2: 400 for an HTTP/1.1 request without Host, or any with two.
		return req, 400
	case f.length > maxHTTPBody:
		return req, 413
	}
	req.size = end
	req.bodyLen = f.length
	if req.http10 {
		// RFC 9112 section 9.3: HTTP/1.0 connections close unless the client asked otherwise.
		req.keepAlive = f.keepAlive && !f.close
	} else {
		req.keepAlive = !f.close
		// RFC 9110 section 10.1.1: an HTTP/1.0 client's 100-continue is ignored.
		req.expect100 = f.expect100 && f.length > 0
	}
	return req, 0
}

// parseRequestLine parses "METHOD SP request-target SP HTTP/1.x" (RFC 9112 section 3), strictly:
// single spaces, a token for the method, no controls or spaces in the target.
func (req *request) parseRequestLine(line []byte) (status int) {
	sp := bytes.IndexByte(line, ' ')
	if sp <= 0 || !isToken(line[:sp]) {
		return 400
	}
	req.head = string(line[:sp]) == "HEAD"
	rest := line[sp+1:]
	sp = bytes.IndexByte(rest, ' ')
	if sp <= 0 {
		return 400
	}
	for _, c := range rest[:sp] {
		if c <= ' ' || c == 0x7f {
			return 400
		}
	}
	v := rest[sp+1:]
	if len(v) != len("HTTP/1.1") || string(v[:5]) != "HTTP/" || !isDigit(v[5]) || v[6] != '.' || !isDigit(v[7]) {
		return 400
	}
	if v[5] != '1' {
		return 505
	}
	// RFC 9110 section 6.2: a 1.x minor version above 1 is answered as 1.1.
	req.http10 = v[7] == '0'
	return 0
}

// fields collects the header fields the target acts on.
type fields struct {
	length           int64 // Content-Length, saturated at maxHTTPBody+1
	hasLength        bool
	transferEncoding bool
	hosts            int
	close, keepAlive bool // Connection options
	expect100        bool
}

// parse takes one field line (RFC 9112 section 5), without its line end.
func (f *fields) parse(line []byte) (status int) {
	if line[0] == ' ' || line[0] == '\t' {
		// Obsolete line folding: RFC 9112 section 5.2 lets a server reject it with 400.
		return 400
	}
	colon := bytes.IndexByte(line, ':')
	// No whitespace between name and colon (RFC 9112 section 5.1): a space fails isToken.
	if colon <= 0 || !isToken(line[:colon]) {
		return 400
	}
	name, value := line[:colon], bytes.Trim(line[colon+1:], ows)
	for _, c := range value {
		if c < ' ' && c != '\t' || c == 0x7f {
			return 400 // RFC 9110 section 5.5: CR, LF and NUL are never valid in a field value
		}
	}
	switch {
	case equalFoldASCII(name, "content-length"):
		n, ok := parseLength(value)
		// RFC 9110 section 8.6: differing values are unrecoverable framing errors.
		if !ok || f.hasLength && n != f.length {
			return 400
		}
		f.length, f.hasLength = n, true
	case equalFoldASCII(name, "transfer-encoding"):
		f.transferEncoding = true
	case equalFoldASCII(name, "host"):
		f.hosts++
	case equalFoldASCII(name, "connection"):
		// A comma-separated list of options (RFC 9110 section 7.6.1), possibly over several lines.
		for len(value) > 0 {
			opt := value
			if i := bytes.IndexByte(value, ','); i >= 0 {
				opt, value = value[:i], value[i+1:]
			} else {
				value = nil
			}
			opt = bytes.Trim(opt, ows)
			f.close = f.close || equalFoldASCII(opt, "close")
			f.keepAlive = f.keepAlive || equalFoldASCII(opt, "keep-alive")
		}
	case equalFoldASCII(name, "expect"):
		f.expect100 = equalFoldASCII(value, "100-continue")
	}
	return 0
}

// parseLength parses a Content-Length value: digits only, saturating above maxHTTPBody.
func parseLength(v []byte) (int64, bool) {
	if len(v) == 0 {
		return 0, false
	}
	var n int64
	for _, c := range v {
		if !isDigit(c) {
			return 0, false
		}
		if n <= maxHTTPBody {
			n = n*10 + int64(c-'0')
		}
	}
	return min(n, maxHTTPBody+1), true
}

// headEnd returns the index just past the first empty line that starts at or after from (a line
// start), or -1 if there is none yet.
func headEnd(b []byte, from int) int {
	for from < len(b) {
		if b[from] == '\n' {
			return from + 1
		}
		if b[from] == '\r' && from+1 < len(b) && b[from+1] == '\n' {
			return from + 2
		}
		nl := bytes.IndexByte(b[from:], '\n')
		if nl < 0 {
			return -1
		}
		from += nl + 1
	}
	return -1
}

// methodPrefix reports whether b, the start of a request line without its end, can still become
// one: token characters, then a space or nothing; or a lone CR, which may be the start of a CRLF.
func methodPrefix(b []byte) bool {
	for i, c := range b {
		if !tokenChar[c] {
			return c == ' ' && i > 0 || c == '\r' && i == len(b)-1
		}
	}
	return true
}

// trimCR drops the CR of a CRLF line end; RFC 9112 section 2.2 lets a recipient take a bare LF as
// a line end too. A CR anywhere else fails the checks on what it is part of.
func trimCR(b []byte) []byte {
	if len(b) > 0 && b[len(b)-1] == '\r' {
		return b[:len(b)-1]
	}
	return b
}

// equalFoldASCII is bytes.EqualFold for an ASCII lower-case s, without converting s to []byte.
func equalFoldASCII(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func isToken(b []byte) bool {
	for _, c := range b {
		if !tokenChar[c] {
			return false
		}
	}
	return len(b) > 0
}

// tokenChar holds the tchar set of RFC 9110 section 5.6.2: methods and field names.
var tokenChar = func() (t [256]bool) {
	for c := range 256 {
		t[c] = 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
	}
	for _, c := range []byte("!#$%&'*+-.^_`|~") {
		t[c] = true
	}
	return t
}()

// Connection handling of an answer: the index of its first dimension in httpResponses.
const (
	connKeepAlive   = iota // HTTP/1.1 default: no Connection field needed
	connKeepAlive10        // an HTTP/1.0 client that asked for keep-alive gets it confirmed (RFC 9112 appendix C.2.2)
	connClose              // the target closes after the answer
	connVariants
)

// httpResponses holds an answer in every variant: by connection handling, then without (0) and with
// (1) HEAD, which has the same fields but no content (RFC 9110 section 9.3.2).
type httpResponses [connVariants][2][]byte

// buildResponses builds the answers with status and httpBody, and for a status without content
// (RFC 9110 sections 6.4.1, 15.3.5, 15.3.6, 15.4.5) the fields that status allows.
func buildResponses(status int) httpResponses {
	var rs httpResponses
	for conn := range connVariants {
		for head := range 2 {
			rs[conn][head] = buildResponse(status, httpBody, conn, head == 1)
		}
	}
	return rs
}

func buildResponse(status int, body string, conn int, head bool) []byte {
	b := fmt.Appendf(nil, "HTTP/1.1 %d %s\r\n", status, http.StatusText(status))
	switch status {
	case http.StatusNoContent, http.StatusNotModified:
		// No Content-Length: 204 must not have one, and one on 304 must match a 200's.
		body = ""
	case http.StatusResetContent:
		body = ""
		b = append(b, "Content-Length: 0\r\n"...)
	default:
		b = fmt.Appendf(b, "Content-Type: text/plain\r\nContent-Length: %d\r\n", len(body))
	}
	switch conn {
	case connKeepAlive10:
		b = append(b, "Connection: keep-alive\r\n"...)
	case connClose:
		b = append(b, "Connection: close\r\n"...)
	}
	b = append(b, "\r\n"...)
	if !head {
		b = append(b, body...)
	}
	return b
}

// refusals holds the answer for each status parseRequest refuses with, by HEAD as in httpResponses;
// each closes the connection.
var refusals = func() map[int][2][]byte {
	m := make(map[int][2][]byte)
	for _, status := range []int{400, 413, 431, 501, 505} {
		body := http.StatusText(status) + "\n"
		m[status] = [2][]byte{buildResponse(status, body, connClose, false), buildResponse(status, body, connClose, true)}
	}
	return m
}()

// continue100 is the interim answer to "Expect: 100-continue" (RFC 9110 section 10.1.1).
var continue100 = []byte("HTTP/1.1 100 Continue\r\n\r\n")

// serveHTTP answers requests on c until the peer closes, a refusal, a "Connection: close", an error
// or a deadline. It reports whether a deadline ended it.
//
// Pipelined requests are parsed from the same frame and answered in order, one write each. Between
// requests the frame goes back to the pool (without TLS), so an idle keep-alive connection holds
// none; only an incomplete head, kept at the frame's start, holds it.
func (s *Server) serveHTTP(c net.Conn, r *frameReader) (idle bool) {
	var (
		have    int     // bytes kept at the frame's start: an incomplete head
		req     request // the request being read
		body    int64   // bytes of req's body still to discard before answering it
		pending bool    // req is parsed and not yet answered
		seen    int64   // bytes read, for CloseFirst
		// headBy is the header deadline of the head being read (zero between heads): set when its
		// first bytes arrive, it does not move with later reads, so a head dripped a byte at a time
		// ends there (Config.HeaderTimeout).
		headBy time.Time
	)
	for {
		if have == 0 {
			r.idle()
		}
		if err := s.armRead(c, headBy); err != nil {
			return false
		}
		n, err := r.fill(have)
		if err != nil {
			return errors.Is(err, os.ErrDeadlineExceeded)
		}
		s.bytesIn.Add(uint64(n))
		seen += int64(n)
		buf := (*r.buf)[:have+n]
		pos := 0
		for {
			if !pending {
				if pos == len(buf) {
					break
				}
				var status int
				if req, status = parseRequest(buf[pos:]); status != 0 {
					return s.refuse(c, r, status, req.head)
				}
				if req.size == 0 {
					if headBy.IsZero() {
						headBy = time.Now().Add(s.headerWait)
					}
					break // incomplete: keep it and read on
				}
				headBy = time.Time{}
				pos += req.size
				body, pending = req.bodyLen, true
				// The client waits for this only if none of the body has been sent yet.
				if req.expect100 && pos == len(buf) {
					if err := s.send(c, continue100); err != nil {
						return errors.Is(err, os.ErrDeadlineExceeded)
					}
				}
			}
			k := min(body, int64(len(buf)-pos))
			pos += int(k)
			body -= k
			if body > 0 {
				break
			}
			pending = false
			if done, idle := s.answer(c, r, req, seen); done {
				return idle
			}
		}
		have = len(buf) - pos
		if pos > 0 && have > 0 {
			copy(*r.buf, buf[pos:])
		}
	}
}

// answer writes the configured response to req, and closes if req or CloseFirst says so. It reports
// whether the connection is done, and whether a deadline ended it.
func (s *Server) answer(c net.Conn, r *frameReader, req request, seen int64) (done, idle bool) {
	conn := connKeepAlive
	switch {
	case !req.keepAlive || s.closeFirst && seen >= s.closeAfter:
		conn = connClose
	case req.http10:
		conn = connKeepAlive10
	}
	// Counted before the write: a client that has its answer finds it counted.
	s.requests.Add(1)
	if err := s.send(c, s.responses[conn][boolIndex(req.head)]); err != nil {
		return true, errors.Is(err, os.ErrDeadlineExceeded)
	}
	if conn == connClose {
		s.lingerClose(c, r)
		return true, false
	}
	return false, false
}

// refuse answers with status and closes.
func (s *Server) refuse(c net.Conn, r *frameReader, status int, head bool) (idle bool) {
	s.badRequests.Add(1)
	if err := s.send(c, refusals[status][boolIndex(head)]); err != nil {
		return errors.Is(err, os.ErrDeadlineExceeded)
	}
	s.lingerClose(c, r)
	return false
}

// lingerClose half-closes c after a last answer and reads, discarding, until the client closes too,
// for at most httpLinger and httpLingerBytes; the caller then closes. RFC 9112 section 9.6: closing
// with unread data (a pipelined request, the rest of a refused head or body) makes the kernel send
// RST, which can destroy the answer in the client's receive buffer before it is read.
func (s *Server) lingerClose(c net.Conn, r *frameReader) {
	raw := c
	if tc, ok := c.(*tls.Conn); ok {
		tc.CloseWrite() // close_notify
		raw = tc.NetConn()
	}
	if cw, ok := raw.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite() // FIN
	}
	if err := c.SetReadDeadline(time.Now().Add(min(s.idle, httpLinger))); err != nil {
		return
	}
	for drained := 0; drained < httpLingerBytes; {
		n, err := r.fill(0)
		if err != nil {
			return
		}
		s.bytesIn.Add(uint64(n))
		drained += n
		r.idle()
	}
}

func boolIndex(b bool) int {
	if b {
		return 1
	}
	return 0
}

// ows is the optional whitespace around HTTP field values and list elements (RFC 9110 section
// 5.6.3): spaces and tabs.
const ows = " \t"
