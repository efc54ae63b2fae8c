package target

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// okResponse is the answer to a keep-alive HTTP/1.1 GET with the default status.
const okResponse = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 10\r\n\r\nportstorm\n"

// httpClient returns a client with a transport of its own, whose idle connections the test closes.
// A nil tlsConf means plain HTTP.
func httpClient(tb testing.TB, tlsConf *tls.Config) *http.Client {
	tb.Helper()
	tr := &http.Transport{TLSClientConfig: tlsConf, DisableCompression: true, MaxIdleConnsPerHost: 1}
	tb.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: waitLimit}
}

// result is what a test wants to know of one request made with net/http.
type result struct {
	status int
	body   string
	length int64 // the Content-Length field, -1 when absent
	reused bool  // sent on a connection that had served a request before
}

// do sends a request with client and reads the whole answer.
func do(tb testing.TB, client *http.Client, method, url string, body io.Reader) result {
	tb.Helper()
	var res result
	trace := &httptrace.ClientTrace{GotConn: func(info httptrace.GotConnInfo) { res.reused = info.Reused }}
	req, err := http.NewRequestWithContext(httptrace.WithClientTrace(tb.Context(), trace), method, url, body)
	if err != nil {
		tb.Fatal(err)
	}
	resp, err := client.Do(req)
	if err != nil {
		tb.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatalf("%s %s: reading the body: %v", method, url, err)
	}
	res.status, res.body, res.length = resp.StatusCode, string(b), -1
	if v := resp.Header.Get("Content-Length"); v != "" {
		fmt.Sscan(v, &res.length)
	}
	return res
}

// readResponse reads one answer to a request with method from br, with its body.
func readResponse(tb testing.TB, br *bufio.Reader, method string) (*http.Response, string) {
	tb.Helper()
	resp, err := http.ReadResponse(br, &http.Request{Method: method})
	if err != nil {
		tb.Fatalf("reading the answer to %s: %v", method, err)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatalf("reading the body of the answer to %s: %v", method, err)
	}
	resp.Body.Close()
	return resp, string(b)
}

// expectEOF reads br to its end and fails if anything was left before the server's close.
func expectEOF(tb testing.TB, br *bufio.Reader) {
	tb.Helper()
	rest, err := io.ReadAll(br)
	if err != nil || len(rest) > 0 {
		tb.Fatalf("after the last answer: read %q, %v; want EOF", rest, err)
	}
}

func TestHTTPKeepAlive(t *testing.T) {
	guardFDs(t)
	s := start(t, Config{Mode: ModeHTTP})
	client := httpClient(t, nil)
	url := "http://" + s.Addrs()[0] + "/anything?q=1"
	for i := range 5 {
		got := do(t, client, "GET", url, nil)
		if got.status != 200 || got.body != httpBody || got.length != int64(len(httpBody)) {
			t.Fatalf("request %d: %+v, want 200 %q", i, got, httpBody)
		}
		if got.reused != (i > 0) {
			t.Errorf("request %d: reused %v, want %v", i, got.reused, i > 0)
		}
	}
	if st := s.Stats(); st.Accepted != 1 || st.Requests != 5 || st.BadRequests != 0 {
		t.Errorf("stats %+v, want 5 requests on 1 connection", st)
	}
}

// TestHTTPStatus: every status in range is answered as configured; those without content keep the
// connection usable, which proves their framing (no Content-Length on 204 and 304).
func TestHTTPStatus(t *testing.T) {
	for _, tc := range []struct {
		status int
		body   string
		length int64
	}{
		{200, httpBody, 10},
		{201, httpBody, 10},
		{204, "", -1},
		{205, "", 0},
		{304, "", -1},
		{404, httpBody, 10},
		{503, httpBody, 10},
		{599, httpBody, 10}, // no reason phrase
	} {
		t.Run(fmt.Sprint(tc.status), func(t *testing.T) {
			guardFDs(t)
			s := start(t, Config{Mode: ModeHTTP, HTTPStatus: tc.status})
			client := httpClient(t, nil)
			for i, method := range []string{"GET", "HEAD", "GET"} {
				got := do(t, client, method, "http://"+s.Addrs()[0]+"/", nil)
				body := tc.body
				if method == "HEAD" {
					body = ""
				}
				if got.status != tc.status || got.body != body || got.length != tc.length {
					t.Errorf("%s: %+v, want %d %q with length %d", method, got, tc.status, body, tc.length)
				}
				if got.reused != (i > 0) {
					t.Errorf("%s (request %d): reused %v", method, i, got.reused)
				}
			}
		})
	}
}

func TestHTTPBodies(t *testing.T) {
	for _, size := range []int{1, 100 << 10, maxHTTPBody} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			guardFDs(t)
			s := start(t, Config{Mode: ModeHTTP, MaxFrame: 4096})
			client := httpClient(t, nil)
			url := "http://" + s.Addrs()[0] + "/upload"
			for i := range 2 {
				got := do(t, client, "POST", url, bytes.NewReader(make([]byte, size)))
				if got.status != 200 || got.body != httpBody || got.reused != (i > 0) {
					t.Fatalf("POST %d of %d bytes: %+v", i, size, got)
				}
			}
			if st := s.Stats(); st.Requests != 2 || st.BytesIn < 2*uint64(size) {
				t.Errorf("stats %+v, want 2 requests and at least %d bytes in", st, 2*size)
			}
		})
	}
}

// TestHTTPConnection: who closes after an answer, by HTTP version and Connection field.
func TestHTTPConnection(t *testing.T) {
	for _, tc := range []struct {
		name    string
		request string
		field   string // the answer's Connection field
		closes  bool
	}{
		{"1.1 keeps alive", "GET / HTTP/1.1\r\nHost: t\r\n\r\n", "", false},
		{"1.1 close", "GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", "close", true},
		{"1.1 close among options", "GET / HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\nconnection: TE,  CLOSE \r\n\r\n", "close", true},
		{"1.0 closes", "GET / HTTP/1.0\r\n\r\n", "close", true},
		{"1.0 keep-alive", "GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", "keep-alive", false},
		{"1.0 keep-alive and close", "GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n", "close", true},
		{"1.2 is 1.1", "GET / HTTP/1.2\r\nHost: t\r\n\r\n", "", false},
		{"bare LF lines", "GET / HTTP/1.1\nHost: t\n\n", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			guardFDs(t)
			s := start(t, Config{Mode: ModeHTTP})
			c := dial(t, s.Addrs()[0])
			br := bufio.NewReader(c)
			for i := range 2 {
				if _, err := io.WriteString(c, tc.request); err != nil {
					t.Fatal(err)
				}
				resp, body := readResponse(t, br, "GET")
				// net/http moves "Connection: close" into resp.Close.
				field := resp.Header.Get("Connection")
				if resp.Close {
					field = "close"
				}
				if resp.StatusCode != 200 || body != httpBody || field != tc.field {
					t.Fatalf("answer %d: %d %q, Connection %q; want 200 %q, Connection %q",
						i, resp.StatusCode, body, field, httpBody, tc.field)
				}
				if tc.closes {
					expectEOF(t, br)
					c.Close() // the target lingers until the client closes too
					break
				}
			}
			want := uint64(2)
			if tc.closes {
				want = 1
				waitFor(t, "the target to close", func() bool { return s.Stats().Closed == 1 })
			}
			if st := s.Stats(); st.Requests != want {
				t.Errorf("stats %+v, want %d requests", st, want)
			}
		})
	}
}

// TestHTTPPipelined writes several requests in one write and wants the answers in order: the HEAD
// answer, without content, and the last, with "Connection: close", show the order.
func TestHTTPPipelined(t *testing.T) {
	guardFDs(t)
	s := start(t, Config{Mode: ModeHTTP})
	c := dial(t, s.Addrs()[0])
	requests := []struct{ method, raw string }{
		{"GET", "GET /1 HTTP/1.1\r\nHost: t\r\n\r\n"},
		{"HEAD", "HEAD /2 HTTP/1.1\r\nHost: t\r\n\r\n"},
		{"POST", "POST /3 HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello"},
		{"GET", "\r\nGET /4 HTTP/1.1\r\nHost: t\r\n\r\n"}, // an empty line before a request is ignored
		{"GET", "GET /5 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"},
	}
	var all string
	for _, r := range requests {
		all += r.raw
	}
	if _, err := io.WriteString(c, all); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	var out int
	for i, r := range requests {
		resp, body := readResponse(t, br, r.method)
		want := httpBody
		if r.method == "HEAD" {
			want = ""
		}
		last := i == len(requests)-1
		if resp.StatusCode != 200 || body != want || resp.Close != last {
			t.Fatalf("answer %d to %s: %d %q, close %v; want 200 %q, close %v", i, r.method, resp.StatusCode, body, resp.Close, want, last)
		}
		out += len(okResponse) - len(httpBody) + len(want)
		if last {
			out += len("Connection: close\r\n")
		}
	}
	expectEOF(t, br)
	c.Close() // the target lingers until the client closes too
	waitFor(t, "the target to close", func() bool { return s.Stats().Closed == 1 })
	st := s.Stats()
	if st.Requests != uint64(len(requests)) || st.BytesIn != uint64(len(all)) || st.BytesOut != uint64(out) {
		t.Errorf("stats %+v, want %d requests, %d bytes in, %d out", st, len(requests), len(all), out)
	}
}

// TestHTTPSplitRequests delivers requests in two parts, the second written only once the target
// has read the first, so that every part boundary is a read boundary too.
func TestHTTPSplitRequests(t *testing.T) {
	const req = "POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\n\r\nbody"
	for _, tc := range []struct {
		name  string
		split int
	}{
		{"in the method", 2},
		{"in the request line", 10},
		{"in a field", strings.Index(req, "Length")},
		{"between CR and LF", strings.Index(req, "\r\n\r\n") + 3},
		{"after the head", strings.Index(req, "body")},
		{"in the body", len(req) - 1},
		{"after the first request", len(req)},
		{"in the second request", len(req) + 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			guardFDs(t)
			s := start(t, Config{Mode: ModeHTTP})
			c := dial(t, s.Addrs()[0])
			two := req + req
			var sent uint64
			for _, part := range []string{two[:tc.split], two[tc.split:]} {
				if _, err := io.WriteString(c, part); err != nil {
					t.Fatal(err)
				}
				sent += uint64(len(part))
				waitFor(t, "the target to read the part", func() bool { return s.Stats().BytesIn == sent })
			}
			br := bufio.NewReader(c)
			for i := range 2 {
				if resp, body := readResponse(t, br, "POST"); resp.StatusCode != 200 || body != httpBody {
					t.Fatalf("answer %d: %d %q", i, resp.StatusCode, body)
				}
			}
			if st := s.Stats(); st.Requests != 2 || st.BadRequests != 0 {
				t.Errorf("stats %+v, want 2 requests", st)
			}
		})
	}
}

// TestHTTPRefusals: each refused request gets its status with "Connection: close", then the
// target's close; at once, not after IdleTimeout (longer than the test's own deadline here).
func TestHTTPRefusals(t *testing.T) {
	clientHello := "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" // a TLS client's first bytes
	for _, tc := range []struct {
		name    string
		method  string
		request string
		status  int
	}{
		{"head over 8 KiB", "GET", "GET / HTTP/1.1\r\nHost: t\r\nX-Big: " + strings.Repeat("a", maxHTTPHead) + "\r\n\r\n", 431},
		{"unterminated head at 8 KiB", "GET", "GET / HTTP/1.1\r\nHost: t\r\nX-Big: " + strings.Repeat("a", maxHTTPHead), 431},
		{"body over 1 MiB", "POST", "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 1048577\r\n\r\n", 413},
		{"HEAD with a body over 1 MiB", "HEAD", "HEAD / HTTP/1.1\r\nHost: t\r\nContent-Length: 99999999999999999999999\r\n\r\n", 413},
		{"chunked", "POST", "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", 501},
		{"gzip coding", "POST", "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip\r\n\r\n", 501},
		{"coding and length", "POST", "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n", 400},
		{"coding on 1.0", "POST", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400},
		{"no Host", "GET", "GET / HTTP/1.1\r\n\r\n", 400},
		{"two Hosts", "GET", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400},
		{"bad length", "POST", "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 12a\r\n\r\n", 400},
		{"negative length", "POST", "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: -1\r\n\r\n", 400},
		{"conflicting lengths", "POST", "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 400},
		{"folded field", "GET", "GET / HTTP/1.1\r\nHost: t\r\nX-A: 1\r\n 2\r\n\r\n", 400},
		{"space before colon", "GET", "GET / HTTP/1.1\r\nHost : t\r\n\r\n", 400},
		{"NUL in a value", "GET", "GET / HTTP/1.1\r\nHost: t\x00\r\n\r\n", 400},
		{"HTTP/0.9", "GET", "GET /\r\n\r\n", 400},
		{"two spaces", "GET", "GET  / HTTP/1.1\r\nHost: t\r\n\r\n", 400},
		{"lower-case version", "GET", "GET / http/1.1\r\nHost: t\r\n\r\n", 400},
		{"TLS ClientHello", "GET", clientHello, 400},
		{"HTTP/2 preface", "PRI", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505},
		{"after a good request", "GET", "GET / HTTP/1.1\r\nHost: t\r\n\r\nGET / HTTP/1.1\r\n\r\n", 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			guardFDs(t)
			s := start(t, Config{Mode: ModeHTTP, IdleTimeout: 4 * waitLimit})
			c := dial(t, s.Addrs()[0])
			if _, err := io.WriteString(c, tc.request); err != nil {
				t.Fatal(err)
			}
			br := bufio.NewReader(c)
			var requests uint64
			if strings.HasPrefix(tc.name, "after") {
				readResponse(t, br, tc.method)
				requests = 1
			}
			resp, body := readResponse(t, br, tc.method)
			want := http.StatusText(tc.status) + "\n"
			if tc.method == "HEAD" {
				want = ""
			}
			if resp.StatusCode != tc.status || body != want || !resp.Close {
				t.Errorf("answer %d %q, close %v; want %d %q and close", resp.StatusCode, body, resp.Close, tc.status, want)
			}
			expectEOF(t, br)
			c.Close()
			waitFor(t, "the target to close", func() bool { return s.Stats().Closed == 1 })
			if st := s.Stats(); st.BadRequests != 1 || st.Requests != requests || st.IdleClosed != 0 {
				t.Errorf("stats %+v, want 1 bad request, %d requests", st, requests)
			}
		})
	}
}

func TestHTTPExpectContinue(t *testing.T) {
	guardFDs(t)
	s := start(t, Config{Mode: ModeHTTP})
	c := dial(t, s.Addrs()[0])
	br := bufio.NewReader(c)
	if _, err := io.WriteString(c, "PUT / HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	if resp, _ := readResponse(t, br, "PUT"); resp.StatusCode != 100 {
		t.Fatalf("first answer %d, want 100 before the body is sent", resp.StatusCode)
	}
	if _, err := io.WriteString(c, "hello"); err != nil {
		t.Fatal(err)
	}
	if resp, body := readResponse(t, br, "PUT"); resp.StatusCode != 200 || body != httpBody {
		t.Fatalf("final answer %d %q", resp.StatusCode, body)
	}
	// With the body in the same write there is nothing to wait for, and no 100.
	if _, err := io.WriteString(c, "PUT / HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\nhello"); err != nil {
		t.Fatal(err)
	}
	if resp, _ := readResponse(t, br, "PUT"); resp.StatusCode != 200 {
		t.Fatalf("answer %d, want 200 alone", resp.StatusCode)
	}
}

func TestHTTPIdleTimeout(t *testing.T) {
	// Long enough that the target reads the request before its deadline on a loaded machine.
	const idle = 200 * time.Millisecond
	for _, tc := range []struct {
		name, send string
		answers    int
	}{
		{"silent", "", 0},
		{"between requests", "GET / HTTP/1.1\r\nHost: t\r\n\r\n", 1},
		{"in a head", "GET / HTTP/1.1\r\nHo", 0},
		{"in a body", "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			guardFDs(t)
			s := start(t, Config{Mode: ModeHTTP, IdleTimeout: idle})
			c := dial(t, s.Addrs()[0])
			if _, err := io.WriteString(c, tc.send); err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(c) // only the idle deadline ends this
			if err != nil {
				t.Fatalf("waiting for the idle close: %v", err)
			}
			if want := strings.Repeat(okResponse, tc.answers); string(got) != want {
				t.Errorf("read %q, want %q", got, want)
			}
			if st := s.Stats(); st.IdleClosed != 1 || st.Requests != uint64(tc.answers) {
				t.Errorf("stats %+v, want one idle close", st)
			}
		})
	}
}

// TestHTTPHeaderTimeout: a request head whose bytes trickle in, each read well within IdleTimeout,
// is closed without an answer once HeaderTimeout has passed since its first byte (slowloris); the
// deadline starts again with every head, so a keep-alive connection's earlier requests do not
// count against the next one.
func TestHTTPHeaderTimeout(t *testing.T) {
	// Far above a loaded machine's delay before the target reads the first byte, far below the
	// client's own deadline (waitLimit), which is all that would end the drip without the fix.
	const headerTimeout = 200 * time.Millisecond
	for _, tc := range []struct {
		name, before string // before: complete requests sent ahead of the dripped head
		answers      int
	}{
		{"first head", "", 0},
		{"head after a keep-alive answer", "GET / HTTP/1.1\r\nHost: t\r\n\r\n", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			guardFDs(t)
			s := start(t, Config{Mode: ModeHTTP, IdleTimeout: time.Minute, HeaderTimeout: headerTimeout})
			c := dial(t, s.Addrs()[0])
			br := bufio.NewReader(c)
			if _, err := io.WriteString(c, tc.before); err != nil {
				t.Fatal(err)
			}
			for range tc.answers {
				readResponse(t, br, "GET")
			}
			began := time.Now()
			if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: t\r\nX-Drip: "); err != nil {
				t.Fatal(err)
			}
			// The drip: one byte every 10 ms, never the blank line, until the target closes (a write
			// fails) or the test ends; 4000 bytes keep the head under the 8 KiB cap (431) for 40 s.
			stop := make(chan struct{})
			var wg sync.WaitGroup
			wg.Go(func() {
				tick := time.NewTicker(10 * time.Millisecond)
				defer tick.Stop()
				for range 4000 {
					select {
					case <-stop:
						return
					case <-tick.C:
					}
					if _, err := c.Write([]byte("a")); err != nil {
						return
					}
				}
			})
			defer wg.Wait()
			defer close(stop)
			// The target's close ends this (a reset when a dripped byte came in after its last read:
			// closing with unread data sends RST); without it, only the client's deadline would.
			rest, err := io.ReadAll(br)
			if err != nil && !errors.Is(err, syscall.ECONNRESET) {
				t.Fatalf("the dripped head was not closed: %v after %v (read %q)", err, time.Since(began), rest)
			}
			if len(rest) > 0 {
				t.Errorf("read %q after the answers; want a close without an answer", rest)
			}
			if took := time.Since(began); took < headerTimeout {
				t.Errorf("closed after %v, before the header deadline %v", took, headerTimeout)
			}
			if st := s.Stats(); st.IdleClosed != 1 || st.Requests != uint64(tc.answers) {
				t.Errorf("stats %+v, want one deadline close and %d request(s)", st, tc.answers)
			}
		})
	}
}

// TestHTTPCloseFirst: the target answers the request during which it read CloseAfter bytes with
// "Connection: close", and closes.
func TestHTTPCloseFirst(t *testing.T) {
	const req = "GET / HTTP/1.1\r\nHost: t\r\n\r\n"
	for _, tc := range []struct {
		after   int64
		answers int
	}{
		{1, 1},
		{int64(len(req)), 1},
		{int64(len(req)) + 1, 2},
	} {
		t.Run(fmt.Sprint(tc.after), func(t *testing.T) {
			guardFDs(t)
			s := start(t, Config{Mode: ModeHTTP, CloseFirst: true, CloseAfter: tc.after})
			c := dial(t, s.Addrs()[0])
			br := bufio.NewReader(c)
			for i := range tc.answers {
				if _, err := io.WriteString(c, req); err != nil {
					t.Fatal(err)
				}
				last := i == tc.answers-1
				if resp, _ := readResponse(t, br, "GET"); resp.Close != last {
					t.Fatalf("answer %d: close %v, want %v", i, resp.Close, last)
				}
			}
			expectEOF(t, br)
		})
	}
}

// TestHTTPIdleConnectionsHoldNoFrame: without TLS a keep-alive connection waiting for its next
// request, or for more of a body, holds no frame; one waiting for the rest of a head holds the one
// the head is in. Under TLS each connection holds one (see frameReader).
func TestHTTPIdleConnectionsHoldNoFrame(t *testing.T) {
	serverConf, roots := testTLS(t)
	for _, tc := range []struct {
		name  string
		tls   bool
		conns int64
		send  string
		held  int64 // frames held per connection
	}{
		{"between requests", false, 100, "GET / HTTP/1.1\r\nHost: t\r\n\r\n", 0},
		{"in a head", false, 100, "GET / HTTP/1.1\r\nHo", 1},
		{"in a body", false, 100, "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 9\r\n\r\nabc", 0},
		{"under TLS", true, 20, "GET / HTTP/1.1\r\nHost: t\r\n\r\n", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			guardFDs(t)
			cfg, err := Config{Mode: ModeHTTP, TLS: serverConf}.withDefaults()
			if err != nil {
				t.Fatal(err)
			}
			if !tc.tls {
				cfg.TLS = nil
			}
			s := newServer(cfg)
			lent := &countingPool{framePool: s.frames}
			s.frames = lent
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			s.run([]net.Listener{ln})
			t.Cleanup(func() { s.Close() })
			var sent uint64
			for range tc.conns {
				var c net.Conn
				if tc.tls {
					if c, err = tlsDial(t, s.Addrs()[0], "localhost", roots); err != nil {
						t.Fatal(err)
					}
				} else {
					c = dial(t, s.Addrs()[0])
				}
				if _, err := io.WriteString(c, tc.send); err != nil {
					t.Fatal(err)
				}
				sent += uint64(len(tc.send))
			}
			waitFor(t, "the target to read every request", func() bool { return s.Stats().BytesIn == sent })
			want := tc.conns * tc.held
			waitFor(t, fmt.Sprintf("%d frames held", want), func() bool { return lent.out.Load() == want })
		})
	}
}

// countingPool counts the frames lent out and not yet given back.
type countingPool struct {
	framePool
	out atomic.Int64
}

func (p *countingPool) Get() any {
	p.out.Add(1)
	return p.framePool.Get()
}

func (p *countingPool) Put(x any) {
	p.out.Add(-1)
	p.framePool.Put(x)
}

func TestParseRequest(t *testing.T) {
	const whole = -1 // the head is the whole input
	for _, tc := range []struct {
		name   string
		in     string
		want   request
		status int
	}{
		{"GET", "GET / HTTP/1.1\r\nHost: t\r\n\r\n", request{size: whole, keepAlive: true}, 0},
		{"next request follows", "GET / HTTP/1.1\r\nHost: t\r\n\r\nGET", request{size: 27, keepAlive: true}, 0},
		{"HEAD", "HEAD / HTTP/1.1\r\nHost: t\r\n\r\n", request{size: whole, head: true, keepAlive: true}, 0},
		{"head is case-sensitive", "head / HTTP/1.1\r\nHost: t\r\n\r\n", request{size: whole, keepAlive: true}, 0},
		{"body", "POST / HTTP/1.1\r\nHost: t\r\ncontent-LENGTH:  007 \r\n\r\n", request{size: whole, bodyLen: 7, keepAlive: true}, 0},
		{"same length twice", "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n", request{size: whole, bodyLen: 1, keepAlive: true}, 0},
		{"body at the cap", "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 1048576\r\n\r\n", request{size: whole, bodyLen: maxHTTPBody, keepAlive: true}, 0},
		{"expect", "PUT / HTTP/1.1\r\nHost: t\r\nExpect: 100-Continue\r\nContent-Length: 1\r\n\r\n", request{size: whole, bodyLen: 1, keepAlive: true, expect100: true}, 0},
		{"expect without body", "PUT / HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\n\r\n", request{size: whole, keepAlive: true}, 0},
		{"expect on 1.0", "PUT / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n", request{size: whole, bodyLen: 1, http10: true}, 0},
		{"1.0", "GET / HTTP/1.0\r\n\r\n", request{size: whole, http10: true}, 0},
		{"1.0 keep-alive", "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", request{size: whole, http10: true, keepAlive: true}, 0},
		{"close", "GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", request{size: whole}, 0},
		{"leading empty lines", "\r\n\n\r\nGET / HTTP/1.1\r\nHost: t\r\n\r\n", request{size: whole, keepAlive: true}, 0},
		{"bare LF", "GET / HTTP/1.1\nHost: t\n\n", request{size: whole, keepAlive: true}, 0},
		{"empty value, tabs", "GET / HTTP/1.1\r\nHost: t\r\nX:\t\t\r\n\r\n", request{size: whole, keepAlive: true}, 0},
		{"obs-text in a value", "GET / HTTP/1.1\r\nHost: t\r\nX: \xe9t\xe9\r\n\r\n", request{size: whole, keepAlive: true}, 0},
		{"absolute target", "GET http://t/x?y HTTP/1.1\r\nHost: t\r\n\r\n", request{size: whole, keepAlive: true}, 0},

		{"empty", "", request{}, 0},
		{"lone CR", "\r", request{}, 0},
		{"partial method", "GE", request{}, 0},
		{"partial line", "GET /x HT", request{}, 0},
		{"partial head", "GET / HTTP/1.1\r\nHost: t\r\n\r", request{}, 0},

		{"garbage first byte", "\x16\x03\x01", request{}, 400},
		{"control in method", "GE\x00T", request{}, 400},
		{"empty method", " / HTTP/1.1\r\n", request{}, 400},
		{"CR inside a line", "GET / HTTP/1.1\r\nHost: t\rX: y\r\n\r\n", request{}, 400},
		{"CR in the target", "GET /\r/ HTTP/1.1\r\n", request{}, 400},
		{"no version", "GET /\r\n", request{}, 400},
		{"three parts and more", "GET / HTTP/1.1 x\r\n", request{}, 400},
		{"field without colon", "GET / HTTP/1.1\r\nHost: t\r\nX\r\n\r\n", request{}, 400},
		{"empty field name", "GET / HTTP/1.1\r\nHost: t\r\n: x\r\n\r\n", request{}, 400},
		{"length with plus", "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: +1\r\n\r\n", request{}, 400},
		{"empty length", "POST / HTTP/1.1\r\nHost: t\r\nContent-Length:\r\n\r\n", request{}, 400},
		{"length list", "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 1, 1\r\n\r\n", request{}, 400},
		{"HTTP/1", "GET / HTTP/1\r\n", request{}, 400},
		{"HTTP/3.0", "GET / HTTP/3.0\r\n", request{}, 505},
		{"HTTP/0.9 version", "GET / HTTP/0.9\r\n", request{}, 505},
		{"body over the cap", "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 1048577\r\n\r\n", request{}, 413},
		{"chunked", "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n", request{}, 501},
		{"long line", "GET /" + strings.Repeat("a", maxHTTPHead), request{}, 431},
		{"long head", "GET / HTTP/1.1\r\nHost: t\r\nX: " + strings.Repeat("a", maxHTTPHead) + "\r\n\r\n", request{}, 431},
		{"empty lines only", strings.Repeat("\r\n", maxHTTPHead/2), request{}, 431},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.want.size == whole {
				tc.want.size = len(tc.in)
			}
			got, status := parseRequest([]byte(tc.in))
			if status != tc.status || status == 0 && got != tc.want {
				t.Errorf("parseRequest(%q) = %+v, %d; want %+v, %d", tc.in, got, status, tc.want, tc.status)
			}
			checkParsed(t, []byte(tc.in), got, status)
		})
	}
}

// TestHeadAtTheCap: a head of exactly maxHTTPHead bytes is accepted, one more is refused.
func TestHeadAtTheCap(t *testing.T) {
	head := func(size int) []byte {
		const fixed = "GET / HTTP/1.1\r\nHost: t\r\nX: \r\n\r\n"
		return []byte("GET / HTTP/1.1\r\nHost: t\r\nX: " + strings.Repeat("a", size-len(fixed)) + "\r\n\r\n")
	}
	if req, status := parseRequest(head(maxHTTPHead)); status != 0 || req.size != maxHTTPHead {
		t.Errorf("head of %d bytes: %+v, %d; want it accepted", maxHTTPHead, req, status)
	}
	if _, status := parseRequest(head(maxHTTPHead + 1)); status != 431 {
		t.Errorf("head of %d bytes: status %d, want 431", maxHTTPHead+1, status)
	}
}

func TestParseRequestAllocs(t *testing.T) {
	b := []byte("POST /a?b=c HTTP/1.1\r\nHost: localhost\r\nUser-Agent: portstorm\r\nConnection: keep-alive, Upgrade\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\nhello")
	if n := testing.AllocsPerRun(100, func() { parseRequest(b) }); n != 0 {
		t.Errorf("parseRequest allocates %v times per request", n)
	}
}

// checkParsed checks parseRequest's contract on one input b and its result: the fuzz target's
// invariants.
func checkParsed(t *testing.T, b []byte, req request, status int) {
	t.Helper()
	switch status {
	case 0, 400, 413, 431, 501, 505:
	default:
		t.Fatalf("status %d, not one parseRequest refuses with", status)
	}
	if status != 0 {
		// A refusal stays a refusal whatever follows.
		for _, tail := range [][]byte{[]byte("\r\n\r\n"), b, []byte("GET / HTTP/1.1\r\nHost: t\r\n\r\n")} {
			if _, st := parseRequest(append(b[:len(b):len(b)], tail...)); st == 0 {
				t.Fatalf("%q refused with %d, but accepted (or incomplete) with %q after it", b, status, tail)
			}
		}
		return
	}
	if req.size == 0 {
		if len(b) >= maxHTTPHead {
			t.Fatalf("%d bytes without a complete head, and no 431", len(b))
		}
		return
	}
	if req.size > len(b) || req.size > maxHTTPHead || b[req.size-1] != '\n' {
		t.Fatalf("head size %d of %d bytes: past the input, past the cap or not at a line end", req.size, len(b))
	}
	if req.bodyLen < 0 || req.bodyLen > maxHTTPBody {
		t.Fatalf("body length %d outside [0, %d]", req.bodyLen, maxHTTPBody)
	}
	if req.expect100 && (req.http10 || req.bodyLen == 0) {
		t.Fatalf("100-continue expected on %+v", req)
	}
	// The head alone decides: without what follows it, and with anything else after it.
	head := b[:req.size:req.size]
	for _, in := range [][]byte{head, append(head, "\x00garbage"...), append(head, head...)} {
		if got, st := parseRequest(in); st != 0 || got != req {
			t.Fatalf("head %q parsed alone or followed by others: %+v, %d; want %+v", head, got, st, req)
		}
	}
	// Every proper prefix of an accepted head is incomplete, never refused.
	for _, k := range []int{0, 1, req.size / 2, req.size - 2, req.size - 1} {
		if k < 0 || k >= req.size {
			continue
		}
		if got, st := parseRequest(head[:k]); st != 0 || got.size != 0 {
			t.Fatalf("prefix %q of accepted head %q: %+v, %d; want incomplete", head[:k], head, got, st)
		}
	}
}

// FuzzHTTPRequest checks parseRequest's contract (checkParsed) on arbitrary input: it never
// panics, consumes no more than it was given, decides a head by its own bytes and never takes
// back a refusal.
func FuzzHTTPRequest(f *testing.F) {
	for _, s := range []string{
		"GET / HTTP/1.1\r\nHost: t\r\n\r\n",
		"HEAD /x HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\nabcGET / HTTP/1.1\r\nHost: t\r\n\r\n",
		"\r\n\nGET / HTTP/1.1\nHost: t\n\n",
		"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n",
		"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		req, status := parseRequest(b)
		checkParsed(t, b, req, status)
	})
}

// BenchmarkHTTPKeepAlive is one request and its answer on a keep-alive connection, allocations
// included (the client's are none), with and without TLS, one at a time and 16 pipelined.
func BenchmarkHTTPKeepAlive(b *testing.B) {
	const req = "GET /bench HTTP/1.1\r\nHost: localhost\r\nUser-Agent: portstorm\r\n\r\n"
	for _, tc := range []struct {
		name     string
		tls      bool
		pipeline int
	}{
		{"plain", false, 1},
		{"plain-pipelined16", false, 16},
		{"tls", true, 1},
	} {
		b.Run(tc.name, func(b *testing.B) {
			cfg := Config{Mode: ModeHTTP}
			var c net.Conn
			if tc.tls {
				serverConf, roots := testTLS(b)
				cfg.TLS = serverConf
				s := start(b, cfg)
				tconn, err := tls.Dial("tcp", s.Addrs()[0], &tls.Config{RootCAs: roots, ServerName: "localhost"})
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() { tconn.Close() })
				c = tconn
			} else {
				c = dial(b, start(b, cfg).Addrs()[0])
			}
			c.SetDeadline(time.Time{})
			out := []byte(strings.Repeat(req, tc.pipeline))
			in := make([]byte, tc.pipeline*len(okResponse))
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i += tc.pipeline {
				if _, err := c.Write(out); err != nil {
					b.Fatal(err)
				}
				if _, err := io.ReadFull(c, in); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
		})
	}
}

func BenchmarkParseRequest(b *testing.B) {
	in := []byte("GET /bench HTTP/1.1\r\nHost: localhost\r\nUser-Agent: portstorm\r\nAccept: */*\r\n\r\n")
	b.SetBytes(int64(len(in)))
	b.ReportAllocs()
	for b.Loop() {
		parseRequest(in)
	}
}
