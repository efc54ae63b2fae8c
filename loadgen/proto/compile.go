package proto

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Compile validates s and builds its request bytes, once per run rather than per connection or
// request. It reports every problem of s at once (errors.Join), each wrapping ErrSpec and naming
// the field and what would be accepted.
func Compile(s Spec) (*Exchange, error) {
	var problems []error
	bad := func(format string, args ...any) {
		problems = append(problems, fmt.Errorf("%w: "+format, append([]any{ErrSpec}, args...)...))
	}
	x := &Exchange{protocol: s.Protocol, max: s.MaxResponse}
	switch {
	case s.MaxResponse < 0:
		bad("MaxResponse %d: want 0 (the default, %d) or more", s.MaxResponse, DefaultMaxResponse)
	case s.MaxResponse == 0:
		x.max = DefaultMaxResponse
	}
	x.tooLarge = fmt.Errorf("%w: more than MaxResponse (%d bytes)", ErrTooLarge, x.max)

	switch s.Protocol {
	case Raw:
		if len(s.Payload) == 0 && len(s.Expect) == 0 {
			bad("raw needs a Payload to write, an Expect to read, or both")
		}
		if len(s.Expect) > x.max {
			bad("Expect of %d bytes is longer than MaxResponse (%d)", len(s.Expect), x.max)
		}
		x.request = clone(s.Payload)
		x.expect = clone(s.Expect)
	case Echo:
		if len(s.Payload) == 0 {
			bad("echo needs a non-empty Payload")
		}
		if len(s.Payload) > x.max {
			bad("Payload of %d bytes is longer than MaxResponse (%d): the echo would be cut", len(s.Payload), x.max)
		}
		x.request = clone(s.Payload)
		x.expect = x.request
	case HTTP:
		x.compileHTTP(s.HTTP, bad)
	case Redis:
		x.compileRedis(s.Redis, bad)
	case WebSocket:
		x.compileWebSocket(s, bad)
	default:
		bad("Protocol %q: want %q, %q, %q, %q or %q", s.Protocol, Raw, Echo, HTTP, Redis, WebSocket)
	}
	if len(problems) > 0 {
		return nil, errors.Join(problems...)
	}
	return x, nil
}

func clone(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return append([]byte(nil), b...)
}

func (x *Exchange) compileHTTP(h HTTPSpec, bad func(string, ...any)) {
	method, path := h.Method, h.Path
	if method == "" {
		method = "GET"
	}
	if path == "" {
		path = "/"
	}
	switch {
	case !isToken(method):
		bad("HTTP.Method %q: want a token such as GET or POST", method)
	case method == "CONNECT":
		bad("HTTP.Method CONNECT: a tunnel is not a request/response exchange")
	}
	if !strings.HasPrefix(path, "/") {
		bad("HTTP.Path %q: must start with \"/\"", path)
	}
	if i := strings.IndexFunc(path, func(c rune) bool { return c <= ' ' || c >= 0x7f }); i >= 0 {
		bad("HTTP.Path %q: byte %d is a space, control or non-ASCII byte; percent-encode it", path, i)
	}
	if h.Host == "" {
		bad("HTTP.Host is required (the target's host:port)")
	} else if strings.IndexFunc(h.Host, func(c rune) bool { return c <= ' ' || c >= 0x7f }) >= 0 {
		bad("HTTP.Host %q: no space, control or non-ASCII byte", h.Host)
	}
	if h.ExpectStatus != 0 && (h.ExpectStatus < 200 || h.ExpectStatus > 999) {
		bad("HTTP.ExpectStatus %d: want 0 (any 2xx) or a final status, 200 to 999", h.ExpectStatus)
	}
	for i, hd := range h.Headers {
		switch {
		case !isToken(hd.Name):
			bad("HTTP.Headers[%d] name %q: want a token (letters, digits and !#$%%&'*+-.^_`|~)", i, hd.Name)
		case strings.EqualFold(hd.Name, "Host"):
			bad("HTTP.Headers[%d] %s: set HTTP.Host instead", i, hd.Name)
		case strings.EqualFold(hd.Name, "Content-Length"), strings.EqualFold(hd.Name, "Transfer-Encoding"):
			bad("HTTP.Headers[%d] %s: the body's framing is set from HTTP.Body", i, hd.Name)
		}
		if j := strings.IndexFunc(hd.Value, func(c rune) bool { return c < ' ' && c != '\t' || c == 0x7f }); j >= 0 {
			bad("HTTP.Headers[%d] %s value %q: byte %d is a control character (CR, LF, NUL...)", i, hd.Name, hd.Value, j)
		}
		if strings.EqualFold(hd.Name, "Connection") && hasToken(hd.Value, "close") {
			x.closeAfter = true
		}
	}
	x.head = method == "HEAD"
	x.expectStatus = h.ExpectStatus

	b := make([]byte, 0, 64+len(method)+len(path)+len(h.Host)+len(h.Body))
	b = append(b, method...)
	b = append(b, ' ')
	b = append(b, path...)
	b = append(b, " HTTP/1.1\r\nHost: "...)
	b = append(b, h.Host...)
	b = append(b, "\r\n"...)
	for _, hd := range h.Headers {
		b = append(b, hd.Name...)
		b = append(b, ": "...)
		b = append(b, hd.Value...)
		b = append(b, "\r\n"...)
	}
	if len(h.Body) > 0 || method == "POST" || method == "PUT" || method == "PATCH" {
		b = append(b, "Content-Length: "...)
		b = strconv.AppendInt(b, int64(len(h.Body)), 10)
		b = append(b, "\r\n"...)
	}
	b = append(b, "\r\n"...)
	x.request = append(b, h.Body...)
}

func (x *Exchange) compileRedis(rs RedisSpec, bad func(string, ...any)) {
	if len(rs.Command) == 0 || rs.Command[0] == "" {
		bad("Redis.Command %q: want a command name and its arguments, e.g. [PING]", rs.Command)
	}
	b := make([]byte, 0, 16*(len(rs.Command)+1))
	b = append(b, '*')
	b = strconv.AppendInt(b, int64(len(rs.Command)), 10)
	b = append(b, "\r\n"...)
	for _, arg := range rs.Command {
		b = append(b, '$')
		b = strconv.AppendInt(b, int64(len(arg)), 10)
		b = append(b, "\r\n"...)
		b = append(b, arg...)
		b = append(b, "\r\n"...)
	}
	x.request = b
	if rs.Expect != "" {
		x.redisExpect = []byte(rs.Expect)
		if n, err := strconv.ParseInt(rs.Expect, 10, 64); err == nil {
			x.redisExpectInt, x.redisIsInt = n, true
		}
	}
}

// isToken reports whether s is an RFC 9110 token (a method or a field name).
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !tchar[s[i]] {
			return false
		}
	}
	return true
}

// hasToken reports whether the comma-separated list v holds tok, compared case-insensitively.
func hasToken(v, tok string) bool {
	for part := range strings.SplitSeq(v, ",") {
		if strings.EqualFold(strings.TrimSpace(part), tok) {
			return true
		}
	}
	return false
}

// tchar is the token alphabet of RFC 9110 §5.6.2.
var tchar = func() (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
		t[c-'a'+'A'] = true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] = true
	}
	return t
}()
