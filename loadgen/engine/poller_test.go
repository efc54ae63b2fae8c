package engine

import (
	"context"
	"net"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portstorm/portstorm/loadgen/dial"
	"github.com/portstorm/portstorm/loadgen/metrics"
	"github.com/portstorm/portstorm/loadgen/schedule"
	"github.com/portstorm/portstorm/target"
)

// pollerOnly is a dialer as off Linux: no DialBare, and connections Detach declines (not a
// *net.TCPConn), so every connection is dialled, held and closed through Go's poller.
type pollerOnly struct {
	d     *dial.Ports
	dials atomic.Uint64
}

func (p *pollerOnly) Dial(ctx context.Context, dst dial.Destination) (net.Conn, error) {
	p.dials.Add(1)
	c, err := p.d.Dial(ctx, dst)
	if err != nil {
		return nil, err
	}
	return struct{ net.Conn }{c}, nil
}

// TestPollerPathOnly: with no bare dial and no detaching, as on systems other than Linux, a run
// that only connects, holds and closes goes through the poller and every connection ends ok.
func TestPollerPathOnly(t *testing.T) {
	for _, mode := range []target.Mode{target.ModeSink, target.ModeHold} {
		t.Run(string(mode), func(t *testing.T) {
			srv, err := target.Start(context.Background(), target.Config{Mode: mode})
			if err != nil {
				t.Fatal(err)
			}
			defer srv.Close()
			d := &pollerOnly{d: dial.NewKernel(dial.Options{ConnectTimeout: time.Second})}
			const rate = 200
			res, err := Run(context.Background(), Config{
				Model: Arrival, Ramp: schedule.Ramp{Start: rate, Stages: []schedule.Stage{{Duration: 300 * time.Millisecond, Target: rate}}},
				Destinations: []dial.Destination{dial.NewDestination(netip.MustParseAddrPort(srv.Addrs()[0]))},
				Dialer:       d, Hold: 20 * time.Millisecond, Close: dial.CloseFIN,
				IOTimeout: time.Second, MaxInFlight: 1000, GracefulStop: 5 * time.Second, Interval: 100 * time.Millisecond,
			})
			if err != nil {
				t.Fatal(err)
			}
			tot := res.Total
			if tot.Attempted == 0 || d.dials.Load() != tot.Attempted {
				t.Errorf("%d dials through the poller, %d attempted", d.dials.Load(), tot.Attempted)
			}
			if tot.Established != tot.Attempted || tot.Closed != tot.Established || tot.Outcomes[metrics.OK] != tot.Closed || tot.Active != 0 {
				t.Errorf("attempted %d, established %d, closed %d, active %d, outcomes %v (examples %v): want every one ok",
					tot.Attempted, tot.Established, tot.Closed, tot.Active, tot.Outcomes, tot.Examples)
			}
		})
	}
}
