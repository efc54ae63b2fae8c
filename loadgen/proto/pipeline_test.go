package proto

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

// TestPipelinedReads: several requests written ahead, their responses read one by one from one
// stream, whether they come together in one read or split anywhere, byte by byte. Bytes after the
// last response are refused once nothing more is outstanding, never while more is.
func TestPipelinedReads(t *testing.T) {
	echo := Spec{Protocol: Echo, Payload: []byte("hello")}
	tests := []struct {
		name string
		spec Spec
		// resp is one response; n of them are sent back to back.
		resp string
		n    int
	}{
		{"echo", echo, "hello", 4},
		{"raw reply", Spec{Protocol: Raw, Payload: []byte("ping\n"), Expect: []byte("pong\n")}, "pong\n", 3},
		{"http content-length", Spec{Protocol: HTTP, HTTP: HTTPSpec{Host: "h"}}, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", 5},
		{"http chunked", Spec{Protocol: HTTP, HTTP: HTTPSpec{Host: "h"}}, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n", 3},
		{"http head", Spec{Protocol: HTTP, HTTP: HTTPSpec{Host: "h", Method: "HEAD"}}, "HTTP/1.1 200 OK\r\nContent-Length: 20\r\n\r\n", 3},
		{"redis", Spec{Protocol: Redis, Redis: RedisSpec{Command: []string{"PING"}, Expect: "PONG"}}, "+PONG\r\n", 6},
		{"redis bulk", Spec{Protocol: Redis, Redis: RedisSpec{Command: []string{"GET", "k"}, Expect: "value"}}, "$5\r\nvalue\r\n", 4},
	}
	for _, tt := range tests {
		for _, split := range []string{"whole", "byte by byte", "half"} {
			t.Run(tt.name+"/"+split, func(t *testing.T) {
				x, err := Compile(tt.spec)
				if err != nil {
					t.Fatal(err)
				}
				stream := strings.Repeat(tt.resp, tt.n)
				var src io.Reader = strings.NewReader(stream)
				switch split {
				case "byte by byte":
					src = iotest.OneByteReader(src)
				case "half":
					src = iotest.HalfReader(src)
				}
				r := NewReader()
				r.Reset(src)
				var out bytes.Buffer
				w0 := time.Now()
				for range tt.n {
					if _, err := x.Write(&out); err != nil {
						t.Fatal(err)
					}
				}
				if out.Len() != tt.n*len(x.request) {
					t.Fatalf("wrote %d bytes for %d requests of %d", out.Len(), tt.n, len(x.request))
				}
				in := 0
				for i := range tt.n {
					res, err := x.Read(r, w0, func() bool { return i < tt.n-1 })
					if err != nil {
						t.Fatalf("response %d of %d: %v", i+1, tt.n, err)
					}
					if res.Full <= 0 || res.FirstByte <= 0 {
						t.Fatalf("response %d: %+v", i+1, res)
					}
					in += res.In
				}
				if in != len(stream) {
					t.Fatalf("In adds up to %d, the stream has %d bytes", in, len(stream))
				}
				if _, err := x.Read(r, w0, nil); !errors.Is(err, io.EOF) {
					t.Fatalf("after the last response: %v, want io.EOF", err)
				}
			})
		}
	}
}

// TestPipelinedExtraBytes: a complete response followed by bytes is ErrMalformed when nothing
// else is outstanding, and the start of the next response when something is.
func TestPipelinedExtraBytes(t *testing.T) {
	x, err := Compile(Spec{Protocol: Redis, Redis: RedisSpec{Command: []string{"PING"}}})
	if err != nil {
		t.Fatal(err)
	}
	for _, more := range []bool{false, true} {
		r := NewReader()
		r.Reset(strings.NewReader("+PONG\r\n+PO"))
		_, err := x.Read(r, time.Now(), func() bool { return more })
		if got := errors.Is(err, ErrMalformed); got == more {
			t.Fatalf("more=%v: %v", more, err)
		}
		if more {
			if _, err := x.Read(r, time.Now(), nil); !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Fatalf("the cut second response: %v, want io.ErrUnexpectedEOF", err)
			}
		}
	}
}
