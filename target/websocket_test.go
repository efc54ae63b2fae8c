package target

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/url"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/gobwas/ws"
)

// TestWebSocketMode drives the websocket mode with an independent client, coder/websocket: the
// subprotocol offered is selected, text and binary messages (small and larger than MaxFrame) come
// back as sent, a ping is answered, and the closing handshake ends with the client's status.
func TestWebSocketMode(t *testing.T) {
	srv, err := Start(context.Background(), Config{Mode: ModeWebSocket, MaxFrame: 1024})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws://"+srv.Addrs()[0]+"/any/path", &websocket.DialOptions{Subprotocols: []string{"chat"}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	if c.Subprotocol() != "chat" {
		t.Fatalf("subprotocol %q, want chat", c.Subprotocol())
	}
	cases := []struct {
		name string
		typ  websocket.MessageType
		msg  []byte
	}{
		{"text", websocket.MessageText, []byte("hello")},
		{"binary", websocket.MessageBinary, []byte{0, 1, 2, 255}},
		{"larger than MaxFrame", websocket.MessageBinary, bytes.Repeat([]byte("0123456789"), 500)},
		{"empty", websocket.MessageText, nil},
	}
	for _, tc := range cases {
		if err := c.Write(ctx, tc.typ, tc.msg); err != nil {
			t.Fatalf("%s: write: %v", tc.name, err)
		}
		typ, got, err := c.Read(ctx)
		if err != nil || typ != tc.typ || !bytes.Equal(got, tc.msg) {
			t.Fatalf("%s: read %v %v (%d bytes), want %v back", tc.name, err, typ, len(got), tc.typ)
		}
	}
	// A ping is answered while a read runs (coder/websocket reads pongs in Read).
	readDone := make(chan error, 1)
	go func() { _, _, err := c.Read(ctx); readDone <- err }()
	if err := c.Ping(ctx); err != nil {
		t.Fatalf("ping: %v", err)
	}
	if err := c.Close(websocket.StatusNormalClosure, "done"); err != nil {
		t.Fatalf("closing handshake: %v", err)
	}
	if err := <-readDone; websocket.CloseStatus(err) != websocket.StatusNormalClosure {
		t.Fatalf("read after close: %v, want the server's close 1000", err)
	}
}

// TestWebSocketIdleClose: a connection silent for IdleTimeout gets a close frame (1001, going
// away) before the target closes it.
func TestWebSocketIdleClose(t *testing.T) {
	srv, err := Start(context.Background(), Config{Mode: ModeWebSocket, IdleTimeout: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws://"+srv.Addrs()[0]+"/", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	if _, _, err := c.Read(ctx); websocket.CloseStatus(err) != websocket.StatusGoingAway {
		t.Fatalf("read on an idle connection: %v, want the server's close 1001", err)
	}
}

// exerciseWebSocket upgrades c (gobwas/ws's client side), echoes a message larger than MaxFrame
// and than a TLS record, and runs the closing handshake.
func exerciseWebSocket(t *testing.T, c net.Conn) {
	t.Helper()
	if _, _, err := (ws.Dialer{}).Upgrade(c, &url.URL{Scheme: "ws", Host: "t", Path: "/"}); err != nil {
		t.Fatalf("upgrade: %v", err)
	}
	msg := make([]byte, 40<<10)
	for i := range msg {
		msg[i] = byte(i)
	}
	if err := ws.WriteFrame(c, ws.MaskFrame(ws.NewBinaryFrame(msg))); err != nil {
		t.Fatal(err)
	}
	h, err := ws.ReadHeader(c)
	if err != nil || h.OpCode != ws.OpBinary || !h.Fin || h.Length != int64(len(msg)) {
		t.Fatalf("echo header %+v, %v", h, err)
	}
	got := make([]byte, h.Length)
	if _, err := io.ReadFull(c, got); err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("echo: %v, equal %v", err, bytes.Equal(got, msg))
	}
	if err := ws.WriteFrame(c, ws.MaskFrame(ws.NewCloseFrame(ws.NewCloseFrameBody(ws.StatusNormalClosure, "")))); err != nil {
		t.Fatal(err)
	}
	if h, err := ws.ReadHeader(c); err != nil || h.OpCode != ws.OpClose {
		t.Fatalf("closing handshake: %+v, %v", h, err)
	}
}
