package coordinator

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/portstorm/portstorm/loadgen/dial"
	"github.com/portstorm/portstorm/loadgen/plan"
	"github.com/portstorm/portstorm/loadgen/spec"
	"github.com/portstorm/portstorm/target"
)

// defaultHost is the Host header when neither the plan nor its targets give one: the built-in
// target's address.
func defaultHost(dsts []dial.Destination) string {
	if len(dsts) > 0 {
		return dsts[0].AddrPort.String()
	}
	return "localhost"
}

// builtinTLS is the built-in target's certificate for one run, and the files that hand it to
// target processes (the key) and worker processes (the certificate, as their CA file).
type builtinTLS struct {
	certPEM, keyPEM   []byte
	dir               string
	certFile, keyFile string
}

// newBuiltinTLS makes a self-signed certificate for the loopback names and addr.
func newBuiltinTLS(addr string) (*builtinTLS, error) {
	hosts := []string{"localhost", "127.0.0.1", "::1"}
	if addr != "" && addr != "127.0.0.1" && addr != "::1" {
		hosts = append(hosts, addr)
	}
	certPEM, keyPEM, err := target.SelfSigned(hosts, 7*24*time.Hour)
	if err != nil {
		return nil, fmt.Errorf("a certificate for the built-in target: %w", err)
	}
	dir, err := os.MkdirTemp("", "portstorm-tls-")
	if err != nil {
		return nil, err
	}
	b := &builtinTLS{certPEM: certPEM, keyPEM: keyPEM, dir: dir,
		certFile: filepath.Join(dir, "cert.pem"), keyFile: filepath.Join(dir, "key.pem")}
	if err := os.WriteFile(b.certFile, certPEM, 0o600); err != nil {
		b.close()
		return nil, err
	}
	if err := os.WriteFile(b.keyFile, keyPEM, 0o600); err != nil {
		b.close()
		return nil, err
	}
	return b, nil
}

func (b *builtinTLS) close() {
	if b != nil {
		os.RemoveAll(b.dir)
	}
}

// namesForWorkers puts into a worker's plan what it cannot recover from the resolved addresses
// it is given: the TLS server name and the HTTP Host of a destination named by a host name, and
// the built-in target's certificate as the CA to trust.
func namesForWorkers(wp, p *plan.Plan, caFile string) {
	var tc *plan.TLS
	if p.Connection.TLS != nil {
		c := *p.Connection.TLS
		tc = &c
	}
	if b := p.Target.Builtin; b != nil && b.TLS {
		if tc == nil {
			tc = &plan.TLS{}
		}
		tc.CAFile = caFile
	}
	if name := spec.HostName(p.Target.Addresses); tc != nil && tc.ServerName == "" {
		tc.ServerName = name
	}
	wp.Connection.TLS = tc
	if s := p.Connection.Send; s != nil && s.HTTP != nil && s.HTTP.Host == "" && len(p.Target.Addresses) > 0 {
		sc, hc := *s, *s.HTTP
		hc.Host = p.Target.Addresses[0]
		sc.HTTP = &hc
		wp.Connection.Send = &sc
	}
}
