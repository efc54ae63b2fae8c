package proto

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

// httpServer starts a net/http test server on 127.0.0.1 and counts the connections it accepts.
func httpServer(t *testing.T, h http.HandlerFunc) (addr string, conns *atomic.Int32) {
	t.Helper()
	conns = new(atomic.Int32)
	srv := httptest.NewUnstartedServer(h)
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close) // runs after the client connections' cleanups
	return srv.Listener.Addr().String(), conns
}

func TestHTTPAgainstNetHTTP(t *testing.T) {
	big := bytes.Repeat([]byte("x"), 2<<20)
	for _, tc := range []struct {
		name     string
		spec     HTTPSpec
		max      int
		handler  http.HandlerFunc
		requests int
		status   int
		err      error
		closed   bool
		framing  string // a header the response must have carried
	}{
		{
			name: "content-length", requests: 3, status: 200, framing: "Content-Length: 5",
			handler: func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "hello") },
		},
		{
			name: "chunked", requests: 3, status: 200, framing: "Transfer-Encoding: chunked",
			handler: func(w http.ResponseWriter, _ *http.Request) {
				for i := range 4 {
					fmt.Fprintf(w, "part %d;", i)
					w.(http.Flusher).Flush()
				}
			},
		},
		{
			name: "keep-alive with body", requests: 10, status: 201,
			spec: HTTPSpec{Method: "POST", Path: "/items", Body: []byte(`{"a":1}`), ExpectStatus: 201},
			handler: func(w http.ResponseWriter, r *http.Request) {
				b, _ := io.ReadAll(r.Body)
				if string(b) != `{"a":1}` || r.Method != "POST" || r.URL.Path != "/items" {
					w.WriteHeader(400)
					return
				}
				w.WriteHeader(201)
				w.Write(b)
			},
		},
		{
			name: "head", requests: 3, status: 200, spec: HTTPSpec{Method: "HEAD"}, framing: "Content-Length: 1000",
			handler: func(w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("Content-Length", "1000")
				w.Write(make([]byte, 1000)) // dropped by net/http for HEAD
			},
		},
		{
			name: "no content", requests: 3, status: 204, spec: HTTPSpec{ExpectStatus: 204},
			handler: func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(204) },
		},
		{
			name: "interim 100 continue", requests: 2, status: 200, framing: "100 Continue",
			spec: HTTPSpec{Method: "PUT", Body: []byte("abc"), Headers: []Header{{"Expect", "100-continue"}}},
			handler: func(w http.ResponseWriter, r *http.Request) {
				io.Copy(io.Discard, r.Body) // reading the body makes net/http send 100 Continue
				io.WriteString(w, "ok")
			},
		},
		{
			name: "user headers reach the server", requests: 2, status: 200,
			spec: HTTPSpec{Path: "/h", Headers: []Header{{"X-Portstorm", "yes"}}},
			handler: func(w http.ResponseWriter, r *http.Request) {
				if r.Header.Get("X-Portstorm") != "yes" || r.Host != "test.invalid" {
					w.WriteHeader(400)
				}
			},
		},
		{
			name: "expected 404, got 200", requests: 2, status: 200, err: ErrStatus,
			spec:    HTTPSpec{ExpectStatus: 404},
			handler: func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "found") },
		},
		{
			name: "500 when any 2xx", requests: 2, status: 500, err: ErrStatus,
			handler: func(w http.ResponseWriter, _ *http.Request) { http.Error(w, "boom", 500) },
		},
		{
			name: "body over the cap", requests: 1, max: 1 << 20, status: 200, err: ErrTooLarge,
			handler: func(w http.ResponseWriter, _ *http.Request) { w.Write(big) },
		},
		{
			name: "chunked body over the cap", requests: 1, max: 1 << 20, status: 200, err: ErrTooLarge,
			handler: func(w http.ResponseWriter, _ *http.Request) {
				for i := range 4 {
					w.Write(big[i*len(big)/4 : (i+1)*len(big)/4])
					w.(http.Flusher).Flush()
				}
			},
		},
		{
			name: "connection close", requests: 1, status: 200, closed: true, framing: "Connection: close",
			handler: func(w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("Connection", "close")
				io.WriteString(w, "bye")
			},
		},
		{
			name: "request asks to close", requests: 1, status: 200, closed: true,
			spec:    HTTPSpec{Headers: []Header{{"Connection", "close"}}},
			handler: func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "bye") },
		},
		{
			name: "body to EOF", requests: 1, status: 200, closed: true,
			handler: func(w http.ResponseWriter, _ *http.Request) {
				// net/http then neither chunks nor sends a length: the body ends with the stream.
				w.Header().Set("Transfer-Encoding", "identity")
				io.WriteString(w, "until the end")
				w.(http.Flusher).Flush()
				io.WriteString(w, " of the stream")
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr, conns := httpServer(t, tc.handler)
			spec := tc.spec
			spec.Host = "test.invalid"
			x, err := Compile(Spec{Protocol: HTTP, HTTP: spec, MaxResponse: tc.max})
			if err != nil {
				t.Fatal(err)
			}
			c := dial(t, addr)
			c.record = true
			r := NewReader()
			r.Reset(c)
			for i := range tc.requests {
				res, err := x.Do(c, r)
				checkErr(t, err, tc.err)
				if res.Status != tc.status || res.Closed != tc.closed {
					t.Fatalf("request %d: status %d closed %v, want %d %v", i, res.Status, res.Closed, tc.status, tc.closed)
				}
				if res.Out != len(x.request) || res.In == 0 || res.In > c.read || res.FirstByte <= 0 {
					t.Fatalf("request %d: %+v for %d bytes sent, %d read", i, res, len(x.request), c.read)
				}
				if complete := err == nil || errors.Is(err, ErrStatus); complete != (res.Full >= res.FirstByte) {
					t.Fatalf("request %d: Full %v, FirstByte %v after error %v", i, res.Full, res.FirstByte, err)
				}
				if errors.Is(err, ErrTooLarge) && c.read > 1<<20 {
					t.Fatalf("read %d bytes from the connection, more than the 1 MiB cap", c.read)
				}
			}
			if !bytes.Contains(c.seen.Bytes(), []byte(tc.framing)) {
				t.Errorf("the response never carried %q: the test does not test what it says", tc.framing)
			}
			if tc.err == nil || errors.Is(tc.err, ErrStatus) {
				if n := conns.Load(); n != 1 {
					t.Errorf("%d requests took %d connections, want 1", tc.requests, n)
				}
				if c.read != c.seen.Len() || !strings.HasPrefix(c.seen.String(), "HTTP/1.1 ") {
					t.Errorf("read %d bytes: %.40q", c.read, c.seen.String())
				}
			}
		})
	}
}

// The responses of hostile or broken servers, each from a scripted TCP server that writes it and
// closes.
func TestHTTPHostileServers(t *testing.T) {
	long := strings.Repeat("a", 64<<10)
	huge := strings.Repeat("a", 2<<20)
	tenMiB := strings.Repeat("x", 10<<20)
	ok := "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
	for _, tc := range []struct {
		name     string
		response string
		method   string
		max      int
		status   int
		err      error
		closed   bool
	}{
		{name: "baseline", response: ok, status: 200},
		{name: "closed before answering", response: "", err: io.EOF},
		{name: "garbage", response: "hello, world\r\n\r\n", err: ErrMalformed},
		{name: "binary garbage", response: "\x00\xff\x16\x03\x01\x02\x00\r\n", err: ErrMalformed},
		{name: "HTTP/2 status line", response: "HTTP/2 200\r\n\r\n", err: ErrMalformed},
		{name: "four-digit status", response: "HTTP/1.1 2000 OK\r\n\r\n", err: ErrMalformed},
		{name: "status 099", response: "HTTP/1.1 099 Odd\r\n\r\n", err: ErrMalformed},
		{name: "status without reason", response: "HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n", status: 200},
		{name: "bare LF lines", response: "HTTP/1.1 200 OK\nContent-Length: 2\n\nok", status: 200},
		{name: "truncated status line", response: "HTTP/1.1 20", err: io.ErrUnexpectedEOF},
		{name: "truncated headers", response: "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n", err: io.ErrUnexpectedEOF},
		{name: "truncated body", status: 200, response: "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", err: io.ErrUnexpectedEOF},
		{name: "header without colon", response: "HTTP/1.1 200 OK\r\nContent-Length 2\r\n\r\nok", err: ErrMalformed},
		{name: "space before colon", response: "HTTP/1.1 200 OK\r\nContent-Length : 2\r\n\r\nok", err: ErrMalformed},
		{name: "folded header", response: "HTTP/1.1 200 OK\r\nX-A: 1\r\n 2\r\nContent-Length: 2\r\n\r\nok", err: ErrMalformed},
		{name: "header case", response: "HTTP/1.1 200 OK\r\ncOnTeNt-LeNgTh:2\r\n\r\nok", status: 200},
		{name: "same length twice", response: "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2, 2\r\n\r\nok", status: 200},
		{name: "conflicting lengths", response: "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok", err: ErrMalformed},
		{name: "conflicting length list", response: "HTTP/1.1 200 OK\r\nContent-Length: 2, 3\r\n\r\nok", err: ErrMalformed},
		{name: "negative length", response: "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\nok", err: ErrMalformed},
		{name: "empty length", response: "HTTP/1.1 200 OK\r\nContent-Length: \r\n\r\nok", err: ErrMalformed},
		{name: "overflowing length", response: "HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999999\r\n\r\n", err: ErrMalformed},
		{name: "length over the cap fails before the body", status: 200, response: "HTTP/1.1 200 OK\r\nContent-Length: 999999999999\r\n\r\n", err: ErrTooLarge},
		{name: "length and chunked", status: 200, response: "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n", err: ErrMalformed},
		{name: "switching protocols", response: "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n", err: ErrMalformed},
		{name: "interim responses", response: "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n" + ok, status: 200},
		{name: "head ignores the length", response: "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n", method: "HEAD", status: 200},
		{name: "304 has no body", response: "HTTP/1.1 304 Not Modified\r\nContent-Length: 1000\r\n\r\n", status: 304, err: ErrStatus},
		{name: "http/1.0 closes", response: "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", status: 200, closed: true},
		{name: "http/1.0 keep-alive", response: "HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 2\r\n\r\nok", status: 200},
		{name: "connection list with close", response: "HTTP/1.1 200 OK\r\nConnection: x-a, close\r\nContent-Length: 2\r\n\r\nok", status: 200, closed: true},
		{name: "body to EOF", response: "HTTP/1.1 200 OK\r\n\r\nall of it", status: 200, closed: true},
		{name: "other coding to EOF", response: "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nzzz", status: 200, closed: true},
		{name: "chunked", response: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\nA;ext=1\r\n0123456789\r\n0\r\n\r\n", status: 200},
		{name: "chunked with trailers", response: "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, Chunked\r\n\r\n2\r\nok\r\n0\r\nX-Sum: 1\r\nX-Long: " + long + "\r\n\r\n", status: 200},
		{name: "bad chunk size", status: 200, response: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nok\r\n0\r\n\r\n", err: ErrMalformed},
		{name: "negative chunk size", status: 200, response: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n-2\r\nok\r\n0\r\n\r\n", err: ErrMalformed},
		{name: "chunk size with junk", status: 200, response: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2 x\r\nok\r\n0\r\n\r\n", err: ErrMalformed},
		{name: "overflowing chunk size", status: 200, response: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffffffff\r\n", err: ErrMalformed},
		{name: "chunk over the cap", status: 200, response: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n7fffffff\r\n", err: ErrTooLarge},
		{name: "chunk without CRLF", status: 200, response: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nokX\r\n0\r\n\r\n", err: ErrMalformed},
		{name: "chunked after chunked", response: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", err: ErrMalformed},
		{name: "truncated chunks", status: 200, response: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n", err: io.ErrUnexpectedEOF},
		{name: "long header skipped", response: "HTTP/1.1 200 OK\r\nX-Long: " + long + "\r\nContent-Length: 2\r\n\r\nok", status: 200},
		{name: "huge header line", response: "HTTP/1.1 200 OK\r\nX-Huge: " + huge + "\r\n\r\n", max: 1 << 20, err: ErrTooLarge},
		{name: "long framing header", response: "HTTP/1.1 200 OK\r\nContent-Length: " + strings.Repeat("0", 8<<10) + "2\r\n\r\nok", err: ErrTooLarge},
		{name: "long status line", response: "HTTP/1.1 200 " + long + "\r\n\r\n", err: ErrTooLarge},
		{name: "10 MiB body by length, 1 MiB cap", status: 200, response: "HTTP/1.1 200 OK\r\nContent-Length: 10485760\r\n\r\n" + tenMiB, max: 1 << 20, err: ErrTooLarge},
		{name: "10 MiB body to EOF, 1 MiB cap", status: 200, closed: true, response: "HTTP/1.1 200 OK\r\n\r\n" + tenMiB, max: 1 << 20, err: ErrTooLarge},
		{name: "10 MiB of chunks, 1 MiB cap", status: 200, response: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + strings.Repeat("fff\r\n"+tenMiB[:0xfff]+"\r\n", 2560), max: 1 << 20, err: ErrTooLarge},
		{name: "response exactly the cap", response: ok, max: len(ok), status: 200},
		{name: "response one over the cap", status: 200, response: ok, max: len(ok) - 1, err: ErrTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spec := Spec{Protocol: HTTP, HTTP: HTTPSpec{Host: "h", Method: tc.method}, MaxResponse: tc.max}
			res, c, err := exchange(t, spec, scripted(t, []byte(tc.response)))
			checkErr(t, err, tc.err)
			if res.Status != tc.status || res.Closed != tc.closed {
				t.Errorf("status %d closed %v, want %d %v", res.Status, res.Closed, tc.status, tc.closed)
			}
			max := tc.max
			if max == 0 {
				max = DefaultMaxResponse
			}
			if c.read > max || res.In > c.read || res.In > len(tc.response) {
				t.Errorf("In %d, read %d bytes from a %d-byte response with a %d-byte cap", res.In, c.read, len(tc.response), max)
			}
			if tc.err == nil && res.In != len(tc.response) {
				t.Errorf("In %d, want all %d bytes", res.In, len(tc.response))
			}
		})
	}
}

// Bytes that nothing asked for leave the stream out of step with the requests. They are read
// from memory here: over TCP, whether they arrive with the response is up to the network. A
// wrong answer stays the finding, whatever follows it.
func TestBytesAfterResponse(t *testing.T) {
	for _, tc := range []struct {
		name     string
		spec     Spec
		response string
		want     error
	}{
		{"http", Spec{Protocol: HTTP, HTTP: HTTPSpec{Host: "h"}}, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\n", ErrMalformed},
		{"http status", Spec{Protocol: HTTP, HTTP: HTTPSpec{Host: "h"}}, "HTTP/1.1 500 No\r\nContent-Length: 0\r\n\r\n\r\n", ErrStatus},
		{"redis", Spec{Protocol: Redis, Redis: RedisSpec{Command: []string{"PING"}}}, "+PONG\r\n+PONG\r\n", ErrMalformed},
		{"redis mismatch", Spec{Protocol: Redis, Redis: RedisSpec{Command: []string{"PING"}, Expect: "PONG"}}, "-ERR\r\n+PONG\r\n", ErrReply},
		{"echo", Spec{Protocol: Echo, Payload: []byte("ab")}, "abc", ErrMalformed},
		{"raw", Spec{Protocol: Raw, Payload: []byte("ab"), Expect: []byte("ok")}, "ok\n", ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			x, err := Compile(tc.spec)
			if err != nil {
				t.Fatal(err)
			}
			r := NewReader()
			r.Reset(strings.NewReader(tc.response))
			res, err := x.Do(io.Discard, r)
			checkErr(t, err, tc.want)
			if res.In != len(tc.response) || res.FirstByte <= 0 || (res.Full != 0) != (tc.want != ErrMalformed) {
				t.Errorf("%+v", res)
			}
		})
	}
}

func TestReaderReset(t *testing.T) {
	x, err := Compile(Spec{Protocol: HTTP, HTTP: HTTPSpec{Host: "h"}})
	if err != nil {
		t.Fatal(err)
	}
	r := NewReader()
	if _, err := x.Do(io.Discard, r); err == nil {
		t.Fatal("a Reader without a connection read a response")
	}
	r.Reset(strings.NewReader("HTTP/1.1 200 OK\r\n"))
	if _, err := x.Do(io.Discard, r); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatal(err)
	}
	// Whatever the previous connection left buffered is dropped.
	r.Reset(strings.NewReader("HTTP/1.1 204 No Content\r\n\r\n"))
	if res, err := x.Do(io.Discard, r); err != nil || res.Status != 204 {
		t.Fatalf("%+v %v", res, err)
	}
	r.Reset(nil)
	if _, err := x.Do(io.Discard, r); err == nil {
		t.Fatal("a Reader reset to nil read a response")
	}
}

// A failed write is returned as it is, and nothing is read.
func TestWriteError(t *testing.T) {
	x, err := Compile(Spec{Protocol: HTTP, HTTP: HTTPSpec{Host: "h"}})
	if err != nil {
		t.Fatal(err)
	}
	c := dial(t, scripted(t, nil))
	c.Close()
	r := NewReader()
	r.Reset(c)
	res, err := x.Do(c, r)
	if !errors.Is(err, net.ErrClosed) || res.In != 0 || res.FirstByte != 0 {
		t.Fatalf("%+v %v", res, err)
	}
}
