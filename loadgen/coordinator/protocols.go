package coordinator

import (
	"fmt"
	"time"

	"github.com/portstorm/portstorm/loadgen/dial"
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

// builtinTLS is the built-in target's certificate for one run. Target processes receive it with
// their configuration (spec.TargetProcess), worker processes as the CA of their segment's spec.
type builtinTLS struct {
	certPEM, keyPEM []byte
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
	return &builtinTLS{certPEM: certPEM, keyPEM: keyPEM}, nil
}
