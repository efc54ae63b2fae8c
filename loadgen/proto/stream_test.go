package proto

import (
	"bytes"
	"io"
	"testing"
)

func TestRawAndEcho(t *testing.T) {
	payload := bytes.Repeat([]byte("0123456789abcdef"), 1000) // longer than the buffer
	keep := func([]byte) {}
	flipLast := func(b []byte) {
		if len(b) > 0 && b[len(b)-1] == 'f' {
			b[len(b)-1] = 'F'
		}
	}
	for _, tc := range []struct {
		name     string
		spec     Spec
		server   func(testing.TB) string
		requests int
		in       int
		err      error
	}{
		{name: "echo", spec: Spec{Protocol: Echo, Payload: payload}, server: func(t testing.TB) string { return echoServer(t, keep) },
			requests: 5, in: len(payload)},
		{name: "echo one byte", spec: Spec{Protocol: Echo, Payload: []byte{0}}, server: func(t testing.TB) string { return echoServer(t, keep) },
			requests: 5, in: 1},
		{name: "echo mismatch", spec: Spec{Protocol: Echo, Payload: payload}, server: func(t testing.TB) string { return echoServer(t, flipLast) },
			requests: 1, in: len(payload), err: ErrEchoMismatch},
		{name: "echo closed", spec: Spec{Protocol: Echo, Payload: payload}, server: func(t testing.TB) string { return scripted(t, nil) },
			requests: 1, err: io.EOF},
		{name: "echo cut short", spec: Spec{Protocol: Echo, Payload: payload}, server: func(t testing.TB) string { return scripted(t, payload[:100]) },
			requests: 1, in: 100, err: io.ErrUnexpectedEOF},
		{name: "raw write only", spec: Spec{Protocol: Raw, Payload: payload}, server: func(t testing.TB) string { return echoServer(t, keep) },
			requests: 1},
		{name: "raw reply", spec: Spec{Protocol: Raw, Payload: []byte("HELO\n"), Expect: []byte("250 ok\n")},
			server: func(t testing.TB) string { return scripted(t, []byte("250 ok\n")) }, requests: 1, in: 7},
		{name: "raw reply round trips", spec: Spec{Protocol: Raw, Payload: []byte("x"), Expect: []byte("x")},
			server: func(t testing.TB) string { return echoServer(t, keep) }, requests: 5, in: 1},
		{name: "raw banner, nothing written", spec: Spec{Protocol: Raw, Expect: []byte("SSH-2.0")},
			server: func(t testing.TB) string { return scripted(t, []byte("SSH-2.0")) }, requests: 1, in: 7},
		{name: "raw reply mismatch", spec: Spec{Protocol: Raw, Payload: []byte("HELO\n"), Expect: []byte("250 ok\n")},
			server: func(t testing.TB) string { return scripted(t, []byte("554 no\n")) }, requests: 1, in: 7, err: ErrReply},
	} {
		t.Run(tc.name, func(t *testing.T) {
			x, err := Compile(tc.spec)
			if err != nil {
				t.Fatal(err)
			}
			c := dial(t, tc.server(t))
			r := NewReader()
			r.Reset(c)
			for i := range tc.requests {
				res, err := x.Do(c, r)
				checkErr(t, err, tc.err)
				if res.Out != len(tc.spec.Payload) || res.In != tc.in || res.Status != 0 || res.Closed {
					t.Fatalf("request %d: %+v, want Out %d In %d", i, res, len(tc.spec.Payload), tc.in)
				}
				if (res.FirstByte > 0) != (tc.in > 0) {
					t.Fatalf("request %d: FirstByte %v", i, res.FirstByte)
				}
			}
		})
	}
}
