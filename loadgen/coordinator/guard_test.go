package coordinator

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/portstorm/portstorm/loadgen/dial"
	"github.com/portstorm/portstorm/loadgen/plan"
)

// countingDialer counts connection attempts and refuses them all.
type countingDialer struct{ n atomic.Int64 }

func (d *countingDialer) Dial(context.Context, dial.Destination) (net.Conn, error) {
	d.n.Add(1)
	return nil, errors.New("counting dialer: no connections")
}

// fakeResolver answers every name with the given addresses.
type fakeResolver []netip.Addr

func (r fakeResolver) LookupNetIP(context.Context, string, string) ([]netip.Addr, error) {
	return r, nil
}

// TestRemoteNeedsBothOptIns: a target outside loopback runs only with target.allow_remote in the
// plan AND the --allow-remote flag; otherwise the run is refused before a single attempt.
func TestRemoteNeedsBothOptIns(t *testing.T) {
	tests := []struct {
		name           string
		addr           string
		resolves       fakeResolver
		planOK, flagOK bool
		refused        bool
	}{
		{"literal remote, no opt-in", "192.0.2.1:80", nil, false, false, true},
		{"literal remote, plan only", "192.0.2.1:80", nil, true, false, true},
		{"literal remote, flag only", "192.0.2.1:80", nil, false, true, true},
		{"name resolving outside loopback", "db.example:5432", fakeResolver{netip.MustParseAddr("198.51.100.9")}, false, false, true},
		{"name resolving to loopback first, remote second", "mixed.example:80", fakeResolver{netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("198.51.100.9")}, false, false, false},
		{"name resolving to remote first", "mixed.example:80", fakeResolver{netip.MustParseAddr("198.51.100.9"), netip.MustParseAddr("127.0.0.1")}, false, false, true},
		{"IPv4-mapped remote", "[::ffff:192.0.2.1]:80", nil, false, false, true},
		{"loopback", "127.0.0.1:1", nil, false, false, false},
		{"both opt-ins", "192.0.2.1:80", nil, true, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := &plan.Plan{Version: 1, Name: "guard", Target: plan.Target{Addresses: []string{tt.addr}, AllowRemote: tt.planOK},
				Load: plan.Load{Model: "arrival", Start: 20, Stages: []plan.Stage{{Duration: plan.Duration(100e6), Target: 20}}}}
			p.Defaults()
			if errs := p.Validate(); len(errs) > 0 {
				t.Fatal(errs)
			}
			d := &countingDialer{}
			_, err := Run(context.Background(), compile(t, p), Options{
				OutDir: filepath.Join(t.TempDir(), "r"), AllowRemote: tt.flagOK, Dialer: d, Resolver: tt.resolves,
			})
			if tt.refused {
				if !errors.Is(err, ErrInvalid) || !errors.Is(err, dial.ErrRemote) {
					t.Fatalf("err = %v, want a refusal (ErrInvalid, ErrRemote)", err)
				}
				if n := d.n.Load(); n != 0 {
					t.Fatalf("%d connection attempts to a refused target", n)
				}
				return
			}
			if err != nil {
				t.Fatalf("err = %v", err)
			}
			if d.n.Load() == 0 {
				t.Fatal("an allowed target was never dialled")
			}
		})
	}
}
