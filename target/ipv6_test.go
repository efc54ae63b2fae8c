package target

import (
	"crypto/tls"
	"errors"
	"net"
	"syscall"
	"testing"
	"time"
)

// requireIPv6 skips the test when ::1 cannot be bound (IPv6 disabled, or a container without it).
func requireIPv6(t *testing.T) {
	t.Helper()
	ln, err := net.Listen("tcp", "[::1]:0")
	if err != nil {
		t.Skipf("IPv6 loopback unavailable: %v", err)
	}
	ln.Close()
}

// TestIPv6 serves every mode, with and without TLS, on ::1; the TLS client verifies "::1" as the
// server name, an IP address SAN of the certificate.
func TestIPv6(t *testing.T) {
	requireIPv6(t)
	serverConf, roots := testTLS(t)
	for _, secure := range []bool{false, true} {
		for _, mode := range Modes() {
			name := string(mode)
			if secure {
				name += "/tls"
			}
			t.Run(name, func(t *testing.T) {
				guardFDs(t)
				cfg := Config{Mode: mode, Listen: []string{"[::1]:0"}}
				if secure {
					cfg.TLS = serverConf
				}
				s := start(t, cfg)
				addr := s.Addrs()[0]
				if host, _, err := net.SplitHostPort(addr); err != nil || host != "::1" {
					t.Fatalf("Addrs()[0] = %q, want host ::1", addr)
				}
				var c net.Conn
				var err error
				switch {
				case secure && (mode == ModeClose || mode == ModeRST):
					// No handshake: the client sees it fail as TestTLSCloseAndRST does.
					if _, err = tlsDial(t, addr, "::1", roots); !errorsIsAny(err, tlsCloseErrors[mode]...) {
						t.Fatalf("handshake: %v, want one of %v", err, tlsCloseErrors[mode])
					}
					return
				case secure:
					c, err = tlsDial(t, addr, "::1", roots)
				case mode == ModeRST:
					// The reset may beat connect's return (see TestCloseAndRSTModes).
					d := net.Dialer{Timeout: waitLimit}
					if c, err = d.Dial("tcp6", addr); errors.Is(err, syscall.ECONNRESET) {
						return
					}
					if err == nil {
						t.Cleanup(func() { c.Close() })
						c.SetDeadline(time.Now().Add(waitLimit))
					}
				default:
					c = dial(t, addr)
				}
				if err != nil {
					t.Fatal(err)
				}
				exerciseMode(t, s, c, mode)
				if st := s.Stats(); st.Accepted != 1 || st.TLSHandshakes != uint64(btoi(secure)) {
					t.Errorf("stats %+v", st)
				}
			})
		}
	}
}

// TestIPv6HTTPClient: net/http, plain and TLS, against a target on ::1 and 127.0.0.1 at once.
func TestIPv6HTTPClient(t *testing.T) {
	requireIPv6(t)
	serverConf, roots := testTLS(t)
	for _, secure := range []bool{false, true} {
		t.Run(map[bool]string{false: "http", true: "https"}[secure], func(t *testing.T) {
			guardFDs(t)
			cfg := Config{Mode: ModeHTTP, Listen: []string{"[::1]:0", "127.0.0.1:0"}}
			client := httpClient(t, nil)
			scheme := "http"
			if secure {
				cfg.TLS = serverConf
				client = httpClient(t, &tls.Config{RootCAs: roots})
				scheme = "https"
			}
			s := start(t, cfg)
			for _, addr := range s.Addrs() {
				for i := range 2 {
					got := do(t, client, "GET", scheme+"://"+addr+"/", nil)
					if got.status != 200 || got.body != httpBody || got.reused != (i > 0) {
						t.Fatalf("GET %s (%d): %+v", addr, i, got)
					}
				}
			}
			if st := s.Stats(); st.Accepted != 2 || st.Requests != 4 {
				t.Errorf("stats %+v, want 2 connections, 4 requests", st)
			}
		})
	}
}
