package engine

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/portstorm/portstorm/loadgen/dial"
	"github.com/portstorm/portstorm/loadgen/metrics"
	"github.com/portstorm/portstorm/loadgen/ports"
	"github.com/portstorm/portstorm/target"
)

// TestClosedBeforeThePortIsFree: the connection that takes a port its predecessor's close(2) just
// freed is never counted open beside it, even when the closing goroutine records the end late. The
// test takes the port at the worst moment, after close(2) returned and before the end is recorded
// (closeStep), as a connect did on a loaded machine at a stop that reset the holds: a bind run,
// whose ports cannot be shared, reported shared ports and a peak of 1001 connections on 1000 ports.
func TestClosedBeforeThePortIsFree(t *testing.T) {
	tests := []struct {
		close        dial.CloseMode
		shared, peak int // shared ports and peak open connections the run reports
	}{
		{dial.CloseRST, 0, 1},
		{dial.CloseFIN, 0, 1},
	}
	for _, tt := range tests {
		t.Run(tt.close.String(), func(t *testing.T) {
			srv, err := target.Start(context.Background(), target.Config{Mode: target.ModeSink, Listen: []string{"127.0.0.1:0"}})
			if err != nil {
				t.Fatal(err)
			}
			defer srv.Close()
			ap := netip.MustParseAddrPort(srv.Addrs()[0])
			other := netip.AddrPortFrom(ap.Addr(), ap.Port()+1) // never dialled: the next connection's destination
			obs := ports.New(ports.Config{Strategy: dial.StrategyKernel, Destinations: []netip.AddrPort{ap, other}, NoSockDiag: true,
				Range: ports.Range{Lo: 32768, Hi: 60999, Size: 28232, Effective: 28232}, Capacity: 28232})
			obs.Begin(time.Now())
			e := newParkEngine(Config{Destinations: []dial.Destination{dial.NewDestination(ap)}, Dialer: dial.NewKernel(dial.Options{}),
				IOTimeout: 5 * time.Second, Close: tt.close, Hold: time.Minute, Ports: obs})
			defer e.hardStop()
			sh := e.rec.Shard(0)
			sh.Attempt()
			h := e.connection(0, sh, time.Time{}, 0, nil)
			if h == nil {
				t.Fatalf("no connection to hold: %v", e.rec.Cut(time.Now(), 0).Examples)
			}
			local := netip.AddrPortFrom(ap.Addr(), h.port)
			closeStep = func(*held) {
				// The next connect, on the port just freed, is recorded first.
				obs.Opened(dial.NewDestination(other), local, time.Now(), time.Microsecond)
				sh.Connected(metrics.Timing{Connect: time.Microsecond})
			}
			defer func() { closeStep = nil }()
			e.finish(h, nil)
			r, snap := obs.Report(), e.rec.Cut(time.Now(), 0)
			if r.SharedPorts.Ports != tt.shared || snap.PeakActive != int64(tt.peak) {
				t.Errorf("shared ports %d, peak open %d; want %d and %d", r.SharedPorts.Ports, snap.PeakActive, tt.shared, tt.peak)
			}
		})
	}
}
