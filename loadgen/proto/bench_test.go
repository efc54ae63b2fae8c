package proto

import (
	"errors"
	"io"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/portstorm/portstorm/internal/loopback"
)

// replayer is an in-memory connection that answers every write with the same response.
type replayer struct {
	response []byte
	off      int
}

func (c *replayer) Write(p []byte) (int, error) { c.off = 0; return len(p), nil }

func (c *replayer) Read(p []byte) (int, error) {
	if c.off == len(c.response) {
		return 0, io.EOF
	}
	n := copy(p, c.response[c.off:])
	c.off += n
	return n, nil
}

var (
	httpContentLength = "HTTP/1.1 200 OK\r\nDate: Mon, 27 Jul 2026 12:28:53 GMT\r\nContent-Type: text/plain\r\n" +
		"Content-Length: 512\r\n\r\n" + strings.Repeat("b", 512)
	httpChunked = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n" +
		"100\r\n" + strings.Repeat("b", 256) + "\r\n100;x=y\r\n" + strings.Repeat("c", 256) + "\r\n0\r\n\r\n"
	redisBulk = "$1024\r\n" + strings.Repeat("v", 1024) + "\r\n"
)

// The exchanges of the hot path allocate nothing: a load generator must not measure its own GC.
func TestExchangeAllocatesNothing(t *testing.T) {
	for _, tc := range []struct {
		name     string
		spec     Spec
		response string
	}{
		{"http content-length", Spec{Protocol: HTTP, HTTP: HTTPSpec{Host: "h"}}, httpContentLength},
		{"http chunked", Spec{Protocol: HTTP, HTTP: HTTPSpec{Host: "h"}}, httpChunked},
		{"http status mismatch", Spec{Protocol: HTTP, HTTP: HTTPSpec{Host: "h", ExpectStatus: 200}}, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"},
		{"redis pong", Spec{Protocol: Redis, Redis: RedisSpec{Command: []string{"PING"}, Expect: "PONG"}}, "+PONG\r\n"},
		{"redis bulk", Spec{Protocol: Redis, Redis: RedisSpec{Command: []string{"GET", "k"}, Expect: strings.Repeat("v", 1024)}}, redisBulk},
		{"redis map", Spec{Protocol: Redis, Redis: RedisSpec{Command: []string{"HGETALL", "k"}}}, "%2\r\n+a\r\n:1\r\n+b\r\n*2\r\n_\r\n#t\r\n"},
		{"echo", Spec{Protocol: Echo, Payload: []byte(strings.Repeat("e", 10000))}, strings.Repeat("e", 10000)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			x, err := Compile(tc.spec)
			if err != nil {
				t.Fatal(err)
			}
			c := &replayer{response: []byte(tc.response)}
			r := NewReader()
			r.Reset(c)
			allocs := testing.AllocsPerRun(100, func() {
				if res, err := x.Do(c, r); err != nil || res.In != len(tc.response) {
					t.Fatalf("%+v %v", res, err)
				}
			})
			if allocs != 0 {
				t.Errorf("%v allocations per exchange, want 0", allocs)
			}
		})
	}
}

// A hostile length fails on its own text: nothing is sized from it.
func TestHostileLengthsAllocateLittle(t *testing.T) {
	for _, tc := range []struct {
		name     string
		spec     Spec
		response string
	}{
		{"bulk", Spec{Protocol: Redis, Redis: RedisSpec{Command: []string{"GET", "k"}}}, "$999999999999\r\n"},
		{"array", Spec{Protocol: Redis, Redis: RedisSpec{Command: []string{"GET", "k"}}}, "*999999999999\r\n"},
		{"content-length", Spec{Protocol: HTTP, HTTP: HTTPSpec{Host: "h"}}, "HTTP/1.1 200 OK\r\nContent-Length: 999999999999\r\n\r\n"},
		{"chunk", Spec{Protocol: HTTP, HTTP: HTTPSpec{Host: "h"}}, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffff\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			x, err := Compile(tc.spec)
			if err != nil {
				t.Fatal(err)
			}
			c := &replayer{response: []byte(tc.response)}
			r := NewReader()
			r.Reset(c)
			const runs = 100
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			for range runs {
				if _, err := x.Do(c, r); !errors.Is(err, ErrTooLarge) {
					t.Fatal(err)
				}
			}
			runtime.ReadMemStats(&after)
			if perRun := (after.TotalAlloc - before.TotalAlloc) / runs; perRun > 1<<10 {
				t.Errorf("%d bytes allocated per exchange", perRun)
			}
		})
	}
}

// answer serves one connection as a keep-alive server would: it reads each request, known to be
// len(request) bytes, and writes response, with buffers of its own so that it allocates nothing.
func answer(request int, response []byte) func(net.Conn) {
	return func(c net.Conn) {
		req := make([]byte, request)
		for {
			if _, err := io.ReadFull(c, req); err != nil {
				return
			}
			if _, err := c.Write(response); err != nil {
				return
			}
		}
	}
}

func benchmarkExchange(b *testing.B, spec Spec, response string) {
	x, err := Compile(spec)
	if err != nil {
		b.Fatal(err)
	}
	c := dial(b, loopback.Serve(b, answer(len(x.request), []byte(response))))
	c.SetDeadline(time.Time{}) // a long -benchtime must not hit the test deadline
	r := NewReader()
	r.Reset(c.Conn)
	b.SetBytes(int64(len(x.request) + len(response)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := x.Do(c.Conn, r); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkHTTPExchange is one keep-alive request over loopback TCP per op.
func BenchmarkHTTPExchange(b *testing.B) {
	spec := Spec{Protocol: HTTP, HTTP: HTTPSpec{Host: "127.0.0.1", Path: "/bench", Headers: []Header{{"Accept", "*/*"}}}}
	b.Run("content-length", func(b *testing.B) { benchmarkExchange(b, spec, httpContentLength) })
	b.Run("chunked", func(b *testing.B) { benchmarkExchange(b, spec, httpChunked) })
}

// BenchmarkRedisExchange is one command over loopback TCP per op.
func BenchmarkRedisExchange(b *testing.B) {
	b.Run("PING", func(b *testing.B) {
		benchmarkExchange(b, Spec{Protocol: Redis, Redis: RedisSpec{Command: []string{"PING"}, Expect: "PONG"}}, "+PONG\r\n")
	})
	b.Run("GET 1KiB", func(b *testing.B) {
		benchmarkExchange(b, Spec{Protocol: Redis, Redis: RedisSpec{Command: []string{"GET", "k"}, Expect: strings.Repeat("v", 1024)}}, redisBulk)
	})
}
