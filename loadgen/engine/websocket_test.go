//go:build linux

package engine

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/gobwas/ws"

	"github.com/portstorm/portstorm/internal/fdcheck"
	"github.com/portstorm/portstorm/loadgen/dial"
	"github.com/portstorm/portstorm/loadgen/metrics"
	"github.com/portstorm/portstorm/loadgen/proto"
	"github.com/portstorm/portstorm/loadgen/schedule"
	"github.com/portstorm/portstorm/target"
)

// coderEcho is an independent WebSocket server: github.com/coder/websocket's echo, selecting the
// subprotocol "echo", recording how each connection's closing handshake ended.
type coderEcho struct {
	srv    *http.Server
	wg     sync.WaitGroup
	mu     sync.Mutex
	closes map[websocket.StatusCode]int
	subs   map[string]int
	// ended receives a value as each connection's handler records how it ended (dropped when full):
	// the client's closing handshake is over before the server's handler has counted it.
	ended chan struct{}
}

func startCoderEcho(t *testing.T) (*coderEcho, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e := &coderEcho{closes: map[websocket.StatusCode]int{}, subs: map[string]int{}, ended: make(chan struct{}, 1024)}
	e.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, &websocket.AcceptOptions{Subprotocols: []string{"echo"}})
		if err != nil {
			return
		}
		defer c.CloseNow()
		e.mu.Lock()
		e.subs[c.Subprotocol()]++
		e.mu.Unlock()
		for {
			typ, msg, err := c.Read(context.Background())
			if err != nil {
				e.mu.Lock()
				e.closes[websocket.CloseStatus(err)]++
				e.mu.Unlock()
				select {
				case e.ended <- struct{}{}:
				default:
				}
				return
			}
			if err := c.Write(context.Background(), typ, msg); err != nil {
				return
			}
		}
	})}
	e.wg.Add(1)
	go func() { defer e.wg.Done(); e.srv.Serve(ln) }()
	t.Cleanup(func() {
		e.srv.Close()
		e.wg.Wait()
	})
	return e, ln.Addr().String()
}

// runWS runs 10 connections of 20 messages each (rated, pipelined or closed loop) against addr.
func runWS(t *testing.T, addr string, spec proto.Spec, clientTLS []*tls.Config, rate float64, pipeline int, hold time.Duration) *metrics.Snapshot {
	t.Helper()
	spec.Protocol, spec.WebSocket.Host = proto.WebSocket, addr
	x, err := proto.Compile(spec)
	if err != nil {
		t.Fatal(err)
	}
	res, err := Run(context.Background(), Config{
		Model: Arrival, Ramp: schedule.Ramp{Start: 100, Stages: []schedule.Stage{{Duration: 100 * time.Millisecond, Target: 100}}},
		Destinations: []dial.Destination{dial.NewDestination(netip.MustParseAddrPort(addr))},
		Dialer:       dial.NewKernel(dial.Options{ConnectTimeout: time.Second}), Close: dial.CloseFIN, TLS: clientTLS,
		Send: &Send{Count: 20, Rate: rate, Pipeline: pipeline, Exchange: x}, Hold: hold,
		IOTimeout: 5 * time.Second, MaxInFlight: 100, GracefulStop: 5 * time.Second, Interval: 100 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	return res.Total
}

func TestWebSocketLoopback(t *testing.T) {
	fdcheck.Check(t)
	certPEM, keyPEM, err := target.SelfSigned([]string{"127.0.0.1"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	srvTLS, err := target.TLSConfig(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(certPEM)
	msg := []byte("hello, websocket")
	echo := proto.Spec{Payload: msg, Expect: msg, WebSocket: proto.WebSocketSpec{Path: "/echo", Subprotocol: "echo", Echo: true}}
	for _, server := range []string{"builtin", "builtin wss", "coder/websocket"} {
		var addr string
		var clientTLS []*tls.Config
		var coder *coderEcho
		switch server {
		case "coder/websocket":
			coder, addr = startCoderEcho(t)
		default:
			cfg := target.Config{Mode: target.ModeWebSocket}
			if server == "builtin wss" {
				cfg.TLS = srvTLS
				clientTLS = []*tls.Config{{RootCAs: roots, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}}
			}
			srv, err := target.Start(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { srv.Close() })
			addr = srv.Addrs()[0]
		}
		for _, c := range []struct {
			rate     float64
			pipeline int
			hold     time.Duration
			binary   bool
		}{{0, 1, 0, false}, {2000, 4, 0, true}, {0, 1, 20 * time.Millisecond, false}} {
			t.Run(fmt.Sprintf("%s/rate %v/pipeline %d/hold %v", server, c.rate, c.pipeline, c.hold), func(t *testing.T) {
				spec := echo
				spec.WebSocket.Binary = c.binary
				tot := runWS(t, addr, spec, clientTLS, c.rate, c.pipeline, c.hold)
				if tot.Established != 10 || tot.Outcomes[metrics.OK] != 10 {
					t.Fatalf("established %d, outcomes %v (%v)", tot.Established, tot.Outcomes, tot.Examples)
				}
				if tot.Requests != 200 || tot.RequestOutcomes[metrics.OK] != 200 {
					t.Fatalf("written %d, outcomes %v, want 200 ok", tot.Requests, tot.RequestOutcomes)
				}
			})
		}
		if coder != nil {
			for range 30 {
				<-coder.ended // counted after the client's closing handshake is over
			}
			coder.srv.Close()
			coder.wg.Wait()
			coder.mu.Lock()
			// Every connection offered "echo", which it selected, and ended with a close frame of
			// status 1000 (normal closure): the closing handshake.
			if coder.subs["echo"] != 30 || coder.closes[websocket.StatusNormalClosure] != 30 {
				t.Errorf("subprotocols %v, close statuses %v: want 30 connections with echo, closed 1000", coder.subs, coder.closes)
			}
			coder.mu.Unlock()
		}
	}
}

// TestWebSocketClosers: a ramp-down that releases every held WebSocket connection at once runs
// their closing handshakes on at most maxClosers goroutines, and every one completes (the server
// sees status 1000 on each).
func TestWebSocketClosers(t *testing.T) {
	fdcheck.Check(t)
	coder, addr := startCoderEcho(t)
	defer func(n int) { maxClosers = n }(maxClosers)
	maxClosers = 2
	var mu sync.Mutex
	most, calls := 0, 0
	closingStep = func(n int) { mu.Lock(); most, calls = max(most, n), calls+1; mu.Unlock() }
	defer func() { closingStep = nil }()
	msg := []byte("hello")
	x, err := proto.Compile(proto.Spec{Protocol: proto.WebSocket, Payload: msg, Expect: msg,
		WebSocket: proto.WebSocketSpec{Host: addr, Echo: true}})
	if err != nil {
		t.Fatal(err)
	}
	res, err := Run(context.Background(), Config{
		Model: Concurrency, Ramp: schedule.Ramp{Stages: []schedule.Stage{
			{Duration: 100 * time.Millisecond, Target: 20},
			{Duration: 300 * time.Millisecond, Target: 20},
			{Duration: time.Millisecond, Target: 0},
		}},
		Destinations: []dial.Destination{dial.NewDestination(netip.MustParseAddrPort(addr))},
		Dialer:       dial.NewKernel(dial.Options{ConnectTimeout: time.Second}), Close: dial.CloseFIN, Hold: time.Hour,
		Send: &Send{Count: 1, Exchange: x}, IOTimeout: 5 * time.Second, GracefulStop: 5 * time.Second, Interval: 100 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	if tot := res.Total; tot.Established != 20 || tot.Outcomes[metrics.OK] != 20 {
		t.Fatalf("established %d, outcomes %v (%v)", tot.Established, tot.Outcomes, tot.Examples)
	}
	for range 20 {
		<-coder.ended // the server counts each close after the client's handshake is over
	}
	coder.srv.Close()
	coder.wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	if calls != 20 || most < 1 || most > 2 {
		t.Errorf("%d closing handshakes on at most %d closers, want 20 on at most 2", calls, most)
	}
	coder.mu.Lock()
	defer coder.mu.Unlock()
	if coder.closes[websocket.StatusNormalClosure] != 20 {
		t.Errorf("close statuses %v, want 20 x 1000", coder.closes)
	}
}

// TestWebSocketAnswers: a server that refuses the upgrade fails the connection naming its status;
// one that answers a message wrongly fails that request.
func TestWebSocketAnswers(t *testing.T) {
	respond := func(s string) func(c net.Conn, done <-chan struct{}) {
		return func(c net.Conn, done <-chan struct{}) {
			defer c.Close()
			buf := make([]byte, 4096)
			c.Read(buf)
			io.WriteString(c, s)
			<-done
		}
	}
	cases := []struct {
		name    string
		behave  func(c net.Conn, done <-chan struct{})
		outcome metrics.Outcome
		text    string
		failed  uint64 // failed requests
	}{
		{"refused 400", respond("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n"), metrics.StatusMismatch, "status 400, want 101", 0},
		{"no 101", respond("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"), metrics.StatusMismatch, "status 200, want 101", 0},
		{"wrong echo", func(c net.Conn, done <-chan struct{}) {
			defer c.Close()
			u := wsUpgrade(c)
			if !u {
				return
			}
			var hb [14]byte
			c.Read(hb[:]) // the message (small: one read)
			c.Write([]byte{0x81, 3, 'b', 'a', 'd'})
			<-done
		}, metrics.EchoMismatch, "echo mismatch", 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fdcheck.Check(t)
			srv := startHostile(t, tc.behave)
			addr := srv.ln.Addr().String()
			x, err := proto.Compile(proto.Spec{Protocol: proto.WebSocket, Payload: []byte("hello"), Expect: []byte("hello"),
				WebSocket: proto.WebSocketSpec{Host: addr, Echo: true}})
			if err != nil {
				t.Fatal(err)
			}
			res, err := Run(context.Background(), Config{
				Model: Arrival, Ramp: schedule.Ramp{Start: 20, Stages: []schedule.Stage{{Duration: 100 * time.Millisecond, Target: 20}}},
				Destinations: srv.dst(), Dialer: dial.NewKernel(dial.Options{ConnectTimeout: time.Second}),
				Send: &Send{Count: 1, Exchange: x}, IOTimeout: 5 * time.Second, MaxInFlight: 10, GracefulStop: 5 * time.Second,
			})
			if err != nil {
				t.Fatal(err)
			}
			tot := res.Total
			if tot.Outcomes[tc.outcome] != 2 {
				t.Fatalf("outcomes %v, want 2 %v", tot.Outcomes, tc.outcome)
			}
			found := false
			for _, ex := range tot.Examples[tc.outcome] {
				found = found || strings.Contains(ex, tc.text)
			}
			if !found {
				t.Fatalf("examples %v, want one saying %q", tot.Examples, tc.text)
			}
			if failed := tot.Requests - tot.RequestOutcomes[metrics.OK]; failed != 2*tc.failed {
				t.Fatalf("requests %d, outcomes %v: want %d failed", tot.Requests, tot.RequestOutcomes, 2*tc.failed)
			}
		})
	}
}

// wsUpgrade answers a client's upgrade request with gobwas/ws's server side.
func wsUpgrade(c net.Conn) bool {
	_, err := ws.Upgrade(c)
	return err == nil
}
