package target

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"
)

// SelfSigned makes a self-signed ECDSA P-256 certificate for hosts, valid from now (backdated an
// hour, for clocks that differ between client and target machines) for validFor, and its private
// key, both PEM-encoded (CERTIFICATE, PKCS #8 PRIVATE KEY). Hosts that parse as IP addresses ("::1",
// "[::1]", "127.0.0.1") become IP address SANs, the others DNS name SANs.
//
// The certificate is its own CA (IsCA, KeyUsageCertSign), so a client trusts it with a CertPool
// built from certPEM alone, and verifies any of hosts as the server name.
func SelfSigned(hosts []string, validFor time.Duration) (certPEM, keyPEM []byte, err error) {
	if len(hosts) == 0 {
		return nil, nil, errors.New("target: SelfSigned: no hosts (want names or IP addresses to put in the certificate)")
	}
	if validFor <= 0 {
		return nil, nil, fmt.Errorf("target: SelfSigned: validFor %v is not positive", validFor)
	}
	now := time.Now()
	tmpl := x509.Certificate{
		// SerialNumber nil: CreateCertificate draws a random one (RFC 5280 section 4.1.2.2).
		Subject:               pkix.Name{Organization: []string{"portstorm"}, CommonName: "portstorm target"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(validFor),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	for _, h := range hosts {
		h = strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")
		if h == "" {
			return nil, nil, fmt.Errorf("target: SelfSigned: empty host in %q", hosts)
		}
		if ip, err := netip.ParseAddr(h); err == nil {
			// A zone names an interface of this machine; certificates have no place for it.
			tmpl.IPAddresses = append(tmpl.IPAddresses, net.IP(ip.WithZone("").AsSlice()))
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("target: SelfSigned: generate key: %w", err)
	}
	der, err := x509.CreateCertificate(rand.Reader, &tmpl, &tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("target: SelfSigned: create certificate for %q: %w", hosts, err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("target: SelfSigned: encode key: %w", err)
	}
	certPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	return certPEM, keyPEM, nil
}

// TLSConfig returns a server configuration for Config.TLS that presents the certificate chain
// certPEM (leaf first) with the private key keyPEM, PEM-encoded, and accepts TLS 1.2 and 1.3. It
// offers no ALPN protocols: a client offering some negotiates none and goes on, where a server
// list without overlap would fail its handshake.
func TLSConfig(certPEM, keyPEM []byte) (*tls.Config, error) {
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("target: TLS certificate and key: %w", err)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, nil
}
