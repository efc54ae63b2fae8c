package target

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// testHosts are the names the test certificate is for.
var testHosts = []string{"localhost", "127.0.0.1", "::1"}

// testCert is made once for every TLS test: a key pair per test would only slow them.
var testCert = sync.OnceValues(func() ([]byte, error) {
	certPEM, keyPEM, err := SelfSigned(testHosts, time.Hour)
	return slices.Concat(certPEM, keyPEM), err
})

// testTLS returns a server configuration with the test certificate, and a pool that trusts it.
func testTLS(tb testing.TB) (*tls.Config, *x509.CertPool) {
	tb.Helper()
	both, err := testCert()
	if err != nil {
		tb.Fatalf("SelfSigned: %v", err)
	}
	certPEM, keyPEM := splitPEM(tb, both)
	conf, err := TLSConfig(certPEM, keyPEM)
	if err != nil {
		tb.Fatalf("TLSConfig: %v", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(certPEM) {
		tb.Fatal("the certificate PEM holds no certificate")
	}
	return conf, roots
}

// splitPEM separates the certificate block from the key block.
func splitPEM(tb testing.TB, both []byte) (certPEM, keyPEM []byte) {
	tb.Helper()
	i := strings.Index(string(both), "-----BEGIN PRIVATE KEY")
	if i < 0 {
		tb.Fatalf("no private key in %q", both)
	}
	return both[:i], both[i:]
}

// tlsDial connects to addr and completes a handshake as a client trusting roots and expecting
// serverName, with a deadline on all of the connection's I/O; the test closes it.
func tlsDial(tb testing.TB, addr, serverName string, roots *x509.CertPool) (*tls.Conn, error) {
	tb.Helper()
	d := tls.Dialer{NetDialer: &net.Dialer{Timeout: waitLimit}, Config: &tls.Config{RootCAs: roots, ServerName: serverName}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	tc := c.(*tls.Conn)
	tc.SetDeadline(time.Now().Add(waitLimit))
	tb.Cleanup(func() { tc.Close() })
	return tc, nil
}

func TestSelfSigned(t *testing.T) {
	hosts := []string{"localhost", "127.0.0.1", "::1", "[::2]", "fe80::1%lo", "target.example"}
	certPEM, keyPEM, err := SelfSigned(hosts, 48*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	block, rest := pem.Decode(certPEM)
	if block == nil || block.Type != "CERTIFICATE" || len(rest) != 0 {
		t.Fatalf("certificate PEM %q: want one CERTIFICATE block", certPEM)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if kb, _ := pem.Decode(keyPEM); kb == nil || kb.Type != "PRIVATE KEY" {
		t.Fatalf("key PEM %q: want a PRIVATE KEY block", keyPEM)
	}
	if pub, ok := cert.PublicKey.(*ecdsa.PublicKey); !ok || pub.Curve != elliptic.P256() {
		t.Errorf("public key %T, want ECDSA P-256", cert.PublicKey)
	}
	if !cert.IsCA || !cert.BasicConstraintsValid || cert.KeyUsage != x509.KeyUsageCertSign|x509.KeyUsageDigitalSignature {
		t.Errorf("IsCA %v, key usage %v: want a CA with cert-sign and digital-signature", cert.IsCA, cert.KeyUsage)
	}
	if !slices.Equal(cert.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}) {
		t.Errorf("extended key usage %v, want server auth", cert.ExtKeyUsage)
	}
	if !slices.Equal(cert.DNSNames, []string{"localhost", "target.example"}) {
		t.Errorf("DNS names %q", cert.DNSNames)
	}
	var ips []string
	for _, ip := range cert.IPAddresses {
		ips = append(ips, ip.String())
	}
	if !slices.Equal(ips, []string{"127.0.0.1", "::1", "::2", "fe80::1"}) {
		t.Errorf("IP addresses %q", ips)
	}
	if d := time.Until(cert.NotAfter); d < 47*time.Hour || d > 48*time.Hour {
		t.Errorf("expires in %v, want 48h", d)
	}
	if time.Now().Before(cert.NotBefore) {
		t.Errorf("not valid before %v", cert.NotBefore)
	}
	roots := x509.NewCertPool()
	roots.AddCert(cert)
	for _, name := range []string{"localhost", "127.0.0.1", "::1", "::2", "target.example"} {
		if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, DNSName: name}); err != nil {
			t.Errorf("verify as %q: %v", name, err)
		}
	}
	var hostErr x509.HostnameError
	if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, DNSName: "127.0.0.2"}); !errors.As(err, &hostErr) {
		t.Errorf("verify as 127.0.0.2: %v, want a hostname error", err)
	}
}

func TestSelfSignedRefuses(t *testing.T) {
	for _, tc := range []struct {
		name     string
		hosts    []string
		validFor time.Duration
		naming   string
	}{
		{"no hosts", nil, time.Hour, "no hosts"},
		{"empty host", []string{"localhost", ""}, time.Hour, "empty host"},
		{"empty brackets", []string{"[]"}, time.Hour, "empty host"},
		{"zero validity", []string{"localhost"}, 0, "validFor 0s"},
		{"negative validity", []string{"localhost"}, -time.Hour, "validFor -1h"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, _, err := SelfSigned(tc.hosts, tc.validFor); err == nil || !strings.Contains(err.Error(), tc.naming) {
				t.Errorf("SelfSigned(%q, %v) error %v, want one naming %q", tc.hosts, tc.validFor, err, tc.naming)
			}
		})
	}
}

func TestTLSConfigRefuses(t *testing.T) {
	certPEM, keyPEM := splitPEM(t, must(testCert()))
	_, otherKey, err := SelfSigned([]string{"localhost"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name      string
		cert, key []byte
	}{
		{"empty", nil, nil},
		{"key for certificate", keyPEM, certPEM},
		{"another key", certPEM, otherKey},
		{"garbage", []byte("not PEM"), keyPEM},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if conf, err := TLSConfig(tc.cert, tc.key); err == nil || !strings.Contains(err.Error(), "TLS certificate and key") {
				t.Errorf("TLSConfig = %v, %v; want an error", conf, err)
			}
		})
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// TestTLSModes: echo, sink, hold and http run inside the TLS session.
func TestTLSModes(t *testing.T) {
	serverConf, roots := testTLS(t)
	for _, mode := range []Mode{ModeEcho, ModeSink, ModeHold, ModeHTTP} {
		t.Run(string(mode), func(t *testing.T) {
			guardFDs(t)
			s := start(t, Config{Mode: mode, TLS: serverConf, MaxFrame: 1024})
			c, err := tlsDial(t, s.Addrs()[0], "localhost", roots)
			if err != nil {
				t.Fatal(err)
			}
			exerciseMode(t, s, c, mode)
			c.Close()
			waitFor(t, "the target to close", func() bool { return s.Stats().Closed == 1 })
			if st := s.Stats(); st.TLSHandshakes != 1 || st.TLSFailed != 0 || st.IdleClosed != 0 {
				t.Errorf("stats %+v, want one handshake", st)
			}
		})
	}
}

// exerciseMode checks that c, just connected to s, is served the way mode serves.
func exerciseMode(t *testing.T, s *Server, c net.Conn, mode Mode) {
	t.Helper()
	switch mode {
	case ModeEcho:
		// Larger than MaxFrame and than a TLS record: several reads, several records.
		msg := make([]byte, 40<<10)
		for i := range msg {
			msg[i] = byte(i)
		}
		if err := ping(c, msg); err != nil {
			t.Fatal(err)
		}
	case ModeSink, ModeHold:
		if _, err := c.Write(make([]byte, 40<<10)); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the target to read 40 KiB", func() bool { return s.Stats().BytesIn == 40<<10 })
	case ModeHTTP:
		br := bufio.NewReader(c)
		for range 3 {
			if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: t\r\n\r\n"); err != nil {
				t.Fatal(err)
			}
			if resp, body := readResponse(t, br, "GET"); resp.StatusCode != 200 || body != httpBody {
				t.Fatalf("answer %d %q", resp.StatusCode, body)
			}
		}
	case ModeWebSocket:
		exerciseWebSocket(t, c)
	case ModeClose, ModeRST:
		n, err := c.Read(make([]byte, 1))
		want := io.EOF
		if mode == ModeRST {
			want = syscall.ECONNRESET
		}
		if n != 0 || !errors.Is(err, want) {
			t.Fatalf("read = %d, %v; want 0, %v", n, err, want)
		}
	}
}

func TestHTTPOverTLS(t *testing.T) {
	guardFDs(t)
	serverConf, roots := testTLS(t)
	s := start(t, Config{Mode: ModeHTTP, TLS: serverConf})
	_, port, _ := net.SplitHostPort(s.Addrs()[0])
	// The URL's host, 127.0.0.1, is what the client verifies: an IP address SAN.
	client := httpClient(t, &tls.Config{RootCAs: roots})
	for i, method := range []string{"GET", "HEAD", "POST", "GET"} {
		got := do(t, client, method, "https://127.0.0.1:"+port+"/", strings.NewReader("body"))
		want := httpBody
		if method == "HEAD" {
			want = ""
		}
		if got.status != 200 || got.body != want || got.reused != (i > 0) {
			t.Fatalf("%s: %+v, want 200 %q, reused %v", method, got, want, i > 0)
		}
	}
	if st := s.Stats(); st.TLSHandshakes != 1 || st.Requests != 4 || st.Accepted != 1 {
		t.Errorf("stats %+v, want 4 requests over one handshake", st)
	}
}

func TestTLSServerNames(t *testing.T) {
	serverConf, roots := testTLS(t)
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"localhost", true},
		{"127.0.0.1", true},
		{"example.com", false},
		{"127.0.0.2", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			guardFDs(t)
			s := start(t, Config{TLS: serverConf})
			c, err := tlsDial(t, s.Addrs()[0], tc.name, roots)
			if !tc.ok {
				var hostErr x509.HostnameError
				if !errors.As(err, &hostErr) {
					t.Fatalf("handshake as %q: %v, want a hostname error", tc.name, err)
				}
				waitFor(t, "the target to count the failed handshake", func() bool { return s.Stats().TLSFailed == 1 })
				return
			}
			if err != nil {
				t.Fatalf("handshake as %q: %v", tc.name, err)
			}
			if err := ping(c, []byte("hi")); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestTLSHandshakeFailures: hostile or mistaken clients fail their handshake, are counted, and leave
// a session established before them, and one after, unharmed. Those that stall are closed after
// IdleTimeout (short then: no session could complete a handshake under it on a loaded machine,
// so TestTLSSilentClientBlocksNoOne shows the others unharmed).
func TestTLSHandshakeFailures(t *testing.T) {
	serverConf, roots := testTLS(t)
	for _, tc := range []struct {
		name string
		idle bool // ended by the idle timeout, which is short then
		bad  func(t *testing.T, addr string)
	}{
		{"plain HTTP request", false, func(t *testing.T, addr string) {
			c := dial(t, addr)
			io.WriteString(c, "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
			io.ReadAll(c) // until the target closes
		}},
		{"garbage ClientHello", false, func(t *testing.T, addr string) {
			c := dial(t, addr)
			c.Write([]byte("\x16\x03\x01\x00\x10\x01\x00\x00\x0cgarbagegarbage"))
			io.ReadAll(c) // an alert, then the target's close
		}},
		{"untrusting client", false, func(t *testing.T, addr string) {
			var unknown x509.UnknownAuthorityError
			if _, err := tlsDial(t, addr, "localhost", x509.NewCertPool()); !errors.As(err, &unknown) {
				t.Fatalf("handshake without the certificate trusted: %v, want an unknown authority", err)
			}
		}},
		{"client hangs up", false, func(t *testing.T, addr string) {
			dial(t, addr).Close()
		}},
		{"silent client", true, func(t *testing.T, addr string) {
			if got, err := io.ReadAll(dial(t, addr)); err != nil || len(got) > 0 {
				t.Fatalf("silent client read %q, %v; want the target's close", got, err)
			}
		}},
		{"half a ClientHello", true, func(t *testing.T, addr string) {
			c := dial(t, addr)
			c.Write([]byte("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"))
			if _, err := io.ReadAll(c); err != nil {
				t.Fatalf("stalled client: %v, want the target's close", err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			guardFDs(t)
			if tc.idle {
				s := start(t, Config{TLS: serverConf, IdleTimeout: 100 * time.Millisecond})
				tc.bad(t, s.Addrs()[0])
				waitFor(t, "the target to count the close", func() bool { return s.Stats().Closed == 1 })
				if st := s.Stats(); st.TLSFailed != 1 || st.IdleClosed != 1 || st.TLSHandshakes != 0 {
					t.Errorf("stats %+v, want the handshake failed and closed as idle", st)
				}
				return
			}
			s := start(t, Config{TLS: serverConf})
			addr := s.Addrs()[0]
			before, err := tlsDial(t, addr, "localhost", roots)
			if err != nil {
				t.Fatal(err)
			}
			tc.bad(t, addr)
			waitFor(t, "the target to count the failed handshake", func() bool { return s.Stats().TLSFailed == 1 })
			if err := ping(before, []byte("still here")); err != nil {
				t.Errorf("session established before: %v", err)
			}
			after, err := tlsDial(t, addr, "localhost", roots)
			if err != nil {
				t.Fatalf("handshake after: %v", err)
			}
			if err := ping(after, []byte("after")); err != nil {
				t.Errorf("session established after: %v", err)
			}
			if st := s.Stats(); st.TLSHandshakes != 2 || st.TLSFailed != 1 || st.IdleClosed != 0 {
				t.Errorf("stats %+v, want 2 handshakes and 1 failed", st)
			}
		})
	}
}

func btoi(b bool) int { return boolIndex(b) }

// TestTLSSilentClientBlocksNoOne: handshakes run in the connections' goroutines, so clients that
// connect and say nothing do not delay anyone else's.
func TestTLSSilentClientBlocksNoOne(t *testing.T) {
	guardFDs(t)
	serverConf, roots := testTLS(t)
	s := start(t, Config{TLS: serverConf})
	for range 3 {
		dial(t, s.Addrs()[0])
	}
	waitFor(t, "the target to accept the silent clients", func() bool { return s.Stats().Accepted == 3 })
	c, err := tlsDial(t, s.Addrs()[0], "localhost", roots)
	if err != nil {
		t.Fatalf("handshake with 3 silent clients waiting: %v", err)
	}
	if err := ping(c, []byte("served")); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.TLSHandshakes != 1 || st.TLSFailed != 0 || st.Active != 4 {
		t.Errorf("stats %+v, want one handshake done and three waiting", st)
	}
}

// errorsIsAny reports whether err is any of targets.
func errorsIsAny(err error, targets ...error) bool {
	for _, t := range targets {
		if errors.Is(err, t) {
			return true
		}
	}
	return false
}

// tlsCloseErrors are how a TLS client's handshake fails against close and rst modes. Close sends
// FIN, or RST when the ClientHello was already queued at the target (see handle).
var tlsCloseErrors = map[Mode][]error{
	ModeClose: {io.EOF, syscall.ECONNRESET},
	ModeRST:   {syscall.ECONNRESET},
}

// TestTLSCloseAndRST: close and rst act at accept, before a handshake.
func TestTLSCloseAndRST(t *testing.T) {
	serverConf, roots := testTLS(t)
	for _, mode := range []Mode{ModeClose, ModeRST} {
		t.Run(string(mode), func(t *testing.T) {
			guardFDs(t)
			s := start(t, Config{Mode: mode, TLS: serverConf})
			if _, err := tlsDial(t, s.Addrs()[0], "localhost", roots); !errorsIsAny(err, tlsCloseErrors[mode]...) {
				t.Fatalf("handshake: %v, want one of %v", err, tlsCloseErrors[mode])
			}
			if st := s.Stats(); st.TLSHandshakes != 0 || st.TLSFailed != 0 || st.Closed != 1 {
				t.Errorf("stats %+v, want no handshake attempted", st)
			}
		})
	}
}

// TestTLSCloseFirst: under TLS the target closes first after the handshake, with close_notify,
// which the client reads as a clean EOF.
func TestTLSCloseFirst(t *testing.T) {
	serverConf, roots := testTLS(t)
	for _, tc := range []struct {
		name  string
		mode  Mode
		after int64
		send  string
	}{
		{"right after the handshake", ModeEcho, 0, ""},
		{"echo after 5 bytes", ModeEcho, 5, "hello"},
		{"sink after 5 bytes", ModeSink, 5, "hello"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			guardFDs(t)
			s := start(t, Config{Mode: tc.mode, TLS: serverConf, CloseFirst: true, CloseAfter: tc.after})
			c, err := tlsDial(t, s.Addrs()[0], "localhost", roots)
			if err != nil {
				t.Fatalf("handshake: %v", err)
			}
			if _, err := io.WriteString(c, tc.send); err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(c)
			if err != nil {
				t.Fatalf("waiting for the target's close: %v, want close_notify", err)
			}
			if want := map[Mode]string{ModeEcho: tc.send}[tc.mode]; string(got) != want {
				t.Errorf("read %q, want %q", got, want)
			}
			waitFor(t, "the target to count the close", func() bool { return s.Stats().Closed == 1 })
			if st := s.Stats(); st.TLSHandshakes != 1 {
				t.Errorf("stats %+v, want one handshake", st)
			}
		})
	}
}

// TestTLSCloseInHandshake: Close does not wait for a handshake in progress.
func TestTLSCloseInHandshake(t *testing.T) {
	guardFDs(t)
	serverConf, _ := testTLS(t)
	s, err := Start(context.Background(), Config{TLS: serverConf})
	if err != nil {
		t.Fatal(err)
	}
	c := dial(t, s.Addrs()[0])
	waitFor(t, "the target to accept", func() bool { return s.Stats().Accepted == 1 })
	began := time.Now()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(began); d > waitLimit {
		t.Errorf("Close took %v with a handshake waiting (IdleTimeout %v)", d, DefaultIdleTimeout)
	}
	if _, err := io.ReadAll(c); err != nil {
		t.Errorf("client after Close: %v, want EOF", err)
	}
	if st := s.Stats(); st.TLSFailed != 1 || st.Closed != 1 {
		t.Errorf("stats %+v, want the interrupted handshake failed and closed", st)
	}
}

// BenchmarkTLSHandshake measures connect, handshake and close against the target.
func BenchmarkTLSHandshake(b *testing.B) {
	serverConf, roots := testTLS(b)
	s := start(b, Config{Mode: ModeSink, TLS: serverConf})
	d := tls.Dialer{Config: &tls.Config{RootCAs: roots, ServerName: "localhost"}}
	b.ReportAllocs()
	for b.Loop() {
		c, err := d.Dial("tcp", s.Addrs()[0])
		if err != nil {
			b.Fatal(err)
		}
		c.(*tls.Conn).NetConn().(*net.TCPConn).SetLinger(0)
		c.Close()
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "handshakes/s")
}
