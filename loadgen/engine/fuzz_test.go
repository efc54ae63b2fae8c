package engine

import (
	"bytes"
	"context"
	"net"
	"testing"
	"time"

	"github.com/portstorm/portstorm/loadgen/metrics"
	"github.com/portstorm/portstorm/loadgen/proto"
)

// FuzzResponseReader feeds the client's echo reader whatever a target might answer: it never
// panics, never reads more than one buffer past what it asked for, and passes only an exact echo.
func FuzzResponseReader(f *testing.F) {
	payload := bytes.Repeat([]byte("0123456789abcdef"), 1)
	f.Add(append(append([]byte{}, payload...), payload...), uint8(2))
	f.Add([]byte("garbage"), uint8(1))
	f.Add([]byte{}, uint8(3))
	f.Add(bytes.Repeat([]byte{0}, 4096), uint8(1))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		f.Fatal(err)
	}
	defer ln.Close()
	f.Fuzz(func(t *testing.T, answer []byte, count uint8) {
		n := int(count%4) + 1
		x, err := proto.Compile(proto.Spec{Protocol: proto.Echo, Payload: payload})
		if err != nil {
			t.Fatal(err)
		}
		e := &engine{
			cfg:      Config{Send: &Send{Exchange: x, Count: n}, IOTimeout: time.Second},
			rec:      metrics.NewRecorder(time.Now(), 1),
			stopping: make(chan struct{}),
		}
		e.hardCtx, e.hardStop = context.WithCancel(context.Background())
		defer e.hardStop()
		if err := e.initSend(); err != nil {
			t.Fatal(err)
		}
		client, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		server, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		go func() {
			// Answer with the fuzzed bytes, then close writing and drain what the client sends.
			defer close(done)
			defer server.Close()
			server.SetDeadline(time.Now().Add(2 * time.Second))
			server.Write(answer)
			server.(*net.TCPConn).CloseWrite()
			buf := make([]byte, 256)
			for {
				if _, err := server.Read(buf); err != nil {
					return
				}
			}
		}()
		sh := e.rec.Shard(0)
		err = e.converse(client, sh, nil)
		client.Close()
		<-done
		s := e.rec.Cut(time.Now(), 0)
		// The reader takes what the socket holds, up to one buffer ahead of the answers it asked for.
		if s.BytesIn > uint64(n*len(payload)+proto.BufferSize) {
			t.Fatalf("read %d bytes for %d requests of %d", s.BytesIn, n, len(payload))
		}
		want := bytes.Repeat(payload, n)
		if err == nil && !bytes.HasPrefix(answer, want) {
			t.Fatalf("accepted %q as the echo of %d requests", answer, n)
		}
		if err != nil && metrics.Classify(err) == metrics.Other {
			t.Fatalf("unclassified error %v", err)
		}
	})
}
