package proto

import (
	"errors"
	"strings"
	"testing"
)

func TestCompileRejects(t *testing.T) {
	for _, tc := range []struct {
		name string
		spec Spec
		want string // a word the message must hold, naming the field
	}{
		{"unknown protocol", Spec{Protocol: "ftp"}, "Protocol"},
		{"empty protocol", Spec{}, "Protocol"},
		{"echo without payload", Spec{Protocol: Echo}, "Payload"},
		{"echo longer than the cap", Spec{Protocol: Echo, Payload: make([]byte, 10), MaxResponse: 9}, "MaxResponse"},
		{"raw with nothing to do", Spec{Protocol: Raw}, "raw"},
		{"raw expect longer than the cap", Spec{Protocol: Raw, Expect: make([]byte, 10), MaxResponse: 9}, "MaxResponse"},
		{"negative cap", Spec{Protocol: Raw, Payload: []byte("x"), MaxResponse: -1}, "MaxResponse"},
		{"empty redis command", Spec{Protocol: Redis}, "Redis.Command"},
		{"empty redis command name", Spec{Protocol: Redis, Redis: RedisSpec{Command: []string{""}}}, "Redis.Command"},
		{"path without slash", Spec{Protocol: HTTP, HTTP: HTTPSpec{Host: "h", Path: "index.html"}}, "HTTP.Path"},
		{"path with space", Spec{Protocol: HTTP, HTTP: HTTPSpec{Host: "h", Path: "/a b"}}, "HTTP.Path"},
		{"path with CRLF", Spec{Protocol: HTTP, HTTP: HTTPSpec{Host: "h", Path: "/\r\nX: y"}}, "HTTP.Path"},
		{"no host", Spec{Protocol: HTTP}, "HTTP.Host"},
		{"host with CRLF", Spec{Protocol: HTTP, HTTP: HTTPSpec{Host: "h\r\nX: y"}}, "HTTP.Host"},
		{"method not a token", Spec{Protocol: HTTP, HTTP: HTTPSpec{Host: "h", Method: "GE T"}}, "HTTP.Method"},
		{"connect", Spec{Protocol: HTTP, HTTP: HTTPSpec{Host: "h", Method: "CONNECT"}}, "HTTP.Method"},
		{"interim status expected", Spec{Protocol: HTTP, HTTP: HTTPSpec{Host: "h", ExpectStatus: 100}}, "HTTP.ExpectStatus"},
		{"header value with CRLF", Spec{Protocol: HTTP, HTTP: HTTPSpec{Host: "h", Headers: []Header{{"X-A", "1\r\nX-B: 2"}}}}, "HTTP.Headers[0]"},
		{"header value with LF", Spec{Protocol: HTTP, HTTP: HTTPSpec{Host: "h", Headers: []Header{{"X-A", "1\n"}}}}, "HTTP.Headers[0]"},
		{"header value with NUL", Spec{Protocol: HTTP, HTTP: HTTPSpec{Host: "h", Headers: []Header{{"X-A", "1\x00"}}}}, "HTTP.Headers[0]"},
		{"header name with colon", Spec{Protocol: HTTP, HTTP: HTTPSpec{Host: "h", Headers: []Header{{"X:A", "1"}}}}, "HTTP.Headers[0]"},
		{"header name with space", Spec{Protocol: HTTP, HTTP: HTTPSpec{Host: "h", Headers: []Header{{"X A", "1"}}}}, "HTTP.Headers[0]"},
		{"empty header name", Spec{Protocol: HTTP, HTTP: HTTPSpec{Host: "h", Headers: []Header{{"", "1"}}}}, "HTTP.Headers[0]"},
		{"host header", Spec{Protocol: HTTP, HTTP: HTTPSpec{Host: "h", Headers: []Header{{"host", "g"}}}}, "HTTP.Host"},
		{"framing header", Spec{Protocol: HTTP, HTTP: HTTPSpec{Host: "h", Headers: []Header{{"Transfer-Encoding", "chunked"}}}}, "HTTP.Body"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			x, err := Compile(tc.spec)
			if x != nil || !errors.Is(err, ErrSpec) {
				t.Fatalf("Compile = %v, %v; want nil, ErrSpec", x, err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("message %q does not name %s", err, tc.want)
			}
		})
	}
}

func TestCompileReportsEveryProblem(t *testing.T) {
	_, err := Compile(Spec{Protocol: HTTP, MaxResponse: -1, HTTP: HTTPSpec{Path: "x", Headers: []Header{{"A", "\n"}}}})
	for _, field := range []string{"MaxResponse", "HTTP.Path", "HTTP.Host", "HTTP.Headers[0]"} {
		if err == nil || !strings.Contains(err.Error(), field) {
			t.Errorf("error %v does not report %s", err, field)
		}
	}
}

func TestCompileRequest(t *testing.T) {
	for _, tc := range []struct {
		name string
		spec Spec
		want string
	}{
		{"http defaults", Spec{Protocol: HTTP, HTTP: HTTPSpec{Host: "example.com:80"}},
			"GET / HTTP/1.1\r\nHost: example.com:80\r\n\r\n"},
		{"http headers and body", Spec{Protocol: HTTP, HTTP: HTTPSpec{Method: "PUT", Path: "/k?v=1", Host: "h",
			Headers: []Header{{"X-Trace", "a b"}, {"Accept", "*/*"}}, Body: []byte("data")}},
			"PUT /k?v=1 HTTP/1.1\r\nHost: h\r\nX-Trace: a b\r\nAccept: */*\r\nContent-Length: 4\r\n\r\ndata"},
		{"http empty post", Spec{Protocol: HTTP, HTTP: HTTPSpec{Method: "POST", Host: "h"}},
			"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n"},
		{"redis", Spec{Protocol: Redis, Redis: RedisSpec{Command: []string{"SET", "k", ""}}},
			"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n"},
		{"raw", Spec{Protocol: Raw, Payload: []byte("ping\n")}, "ping\n"},
		{"raw read only", Spec{Protocol: Raw, Expect: []byte("220 ")}, ""},
		{"echo", Spec{Protocol: Echo, Payload: []byte{0, 1, 2}}, "\x00\x01\x02"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			x, err := Compile(tc.spec)
			if err != nil {
				t.Fatal(err)
			}
			if got := string(x.request); got != tc.want {
				t.Errorf("request %q, want %q", got, tc.want)
			}
			if x.Protocol() != tc.spec.Protocol {
				t.Errorf("Protocol() = %q", x.Protocol())
			}
		})
	}
}

func TestCompileCopiesSpec(t *testing.T) {
	payload := []byte("abc")
	x, err := Compile(Spec{Protocol: Echo, Payload: payload})
	if err != nil {
		t.Fatal(err)
	}
	payload[0] = 'X'
	if string(x.request) != "abc" || string(x.expect) != "abc" {
		t.Errorf("the exchange shares the caller's payload: %q %q", x.request, x.expect)
	}
}
