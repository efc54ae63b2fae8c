package proto

import (
	"errors"
	"io"
	"testing"
	"time"
)

// TestParseIncremental: Parse gives, for every prefix of a stream of responses, either
// ErrIncomplete (consuming nothing) or the same verdict Read gives on the whole stream, with the
// response's exact length; pipelined responses parse one after the other; the end of the stream
// is io.EOF before a response and io.ErrUnexpectedEOF inside one.
func TestParseIncremental(t *testing.T) {
	resp200 := "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"
	chunked := "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
	tests := []struct {
		name    string
		spec    Spec
		stream  string
		lens    []int // each response's length, in order
		wantErr error // of the last response (nil: all fine)
	}{
		{"echo", Spec{Protocol: Echo, Payload: []byte("0123456789")}, "0123456789", []int{10}, nil},
		{"echo pipelined", Spec{Protocol: Echo, Payload: []byte("abc")}, "abcabcabc", []int{3, 3, 3}, nil},
		{"echo mismatch", Spec{Protocol: Echo, Payload: []byte("abc")}, "abd", []int{3}, ErrEchoMismatch},
		{"raw expect", Spec{Protocol: Raw, Payload: []byte("x"), Expect: []byte("ok\n")}, "ok\n", []int{3}, nil},
		{"http", Spec{Protocol: HTTP, HTTP: HTTPSpec{Method: "GET", Path: "/", Host: "h"}}, resp200 + chunked,
			[]int{len(resp200), len(chunked)}, nil},
		{"redis", Spec{Protocol: Redis, Redis: RedisSpec{Command: []string{"PING"}}}, "+PONG\r\n$3\r\nabc\r\n", []int{7, 9}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			x, err := Compile(tt.spec)
			if err != nil {
				t.Fatal(err)
			}
			r := NewReader()
			w0 := time.Now()
			data := []byte(tt.stream)
			for i, n := range tt.lens {
				more := i < len(tt.lens)-1
				// every prefix shorter than the response is incomplete
				for k := 0; k < n; k++ {
					if _, c, err := x.Parse(r, data[:k], false, w0, more); !errors.Is(err, ErrIncomplete) || c != 0 {
						t.Fatalf("response %d, %d of %d bytes: consumed %d, %v; want ErrIncomplete", i, k, n, c, err)
					}
				}
				res, c, err := x.Parse(r, data, false, w0, more)
				if want := tt.wantErr; i < len(tt.lens)-1 {
					want = nil
					if err != nil {
						t.Fatalf("response %d: %v", i, err)
					}
				} else if !errors.Is(err, want) && (want != nil || err != nil) {
					t.Fatalf("response %d: %v, want %v", i, err, want)
				}
				if c != n || res.In != n || res.Full <= 0 {
					t.Fatalf("response %d: consumed %d (in %d, full %v), want %d", i, c, res.In, res.Full, n)
				}
				data = data[c:]
			}
			if len(data) != 0 {
				t.Fatalf("%d bytes left", len(data))
			}
			if _, _, err := x.Parse(r, nil, true, w0, false); err != io.EOF {
				t.Fatalf("closed before a response: %v, want io.EOF", err)
			}
			if _, _, err := x.Parse(r, []byte(tt.stream[:1]), true, w0, false); err != io.ErrUnexpectedEOF && tt.lens[0] > 1 {
				t.Fatalf("closed inside a response: %v, want io.ErrUnexpectedEOF", err)
			}
			if _, _, err := x.Parse(r, []byte(tt.stream[:tt.lens[0]]+"zz"), false, w0, false); !errors.Is(err, ErrMalformed) && tt.wantErr == nil {
				t.Fatalf("bytes after the response, none asked for: %v, want ErrMalformed", err)
			}
		})
	}
}
