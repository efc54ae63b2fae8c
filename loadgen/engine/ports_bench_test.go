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

// BenchmarkObservatory is the connection rate with the port observatory off and on: dial, RST
// close, recording, against the built-in target. The observatory reads the local port from
// conn.LocalAddr() (known since the dial) and takes one lock per open and close; compare the two
// conn/s figures (run with -count to see the spread).
func BenchmarkObservatory(b *testing.B) {
	for _, on := range []bool{false, true} {
		name := "off"
		if on {
			name = "on"
		}
		b.Run(name, func(b *testing.B) {
			srv, err := target.Start(context.Background(), target.Config{Mode: target.ModeSink, Listen: []string{"127.0.0.1:0", "127.0.0.1:0"}})
			if err != nil {
				b.Fatal(err)
			}
			defer srv.Close()
			var dsts []dial.Destination
			var aps []netip.AddrPort
			for _, a := range srv.Addrs() {
				ap := netip.MustParseAddrPort(a)
				dsts = append(dsts, dial.NewDestination(ap))
				aps = append(aps, ap)
			}
			cfg := Config{Destinations: dsts, Dialer: dial.NewKernel(dial.Options{}), IOTimeout: 5 * time.Second, Close: dial.CloseRST}
			if on {
				cfg.Ports = ports.New(ports.Config{Strategy: dial.StrategyKernel, Destinations: aps, NoSockDiag: true,
					Range: ports.Range{Lo: 32768, Hi: 60999, Size: 28232, Effective: 28232}, Capacity: 28232})
				cfg.Ports.Begin(time.Now())
			}
			e := &engine{cfg: cfg, rec: metrics.NewRecorder(time.Now(), 4), stopping: make(chan struct{})}
			e.hardCtx, e.hardStop = context.WithCancel(context.Background())
			defer e.hardStop()
			b.ReportAllocs()
			start := time.Now()
			var i uint64
			for b.Loop() {
				sh := e.rec.Shard(i)
				sh.Attempt()
				e.connection(i, sh, time.Time{}, 0, nil)
				i++
			}
			b.ReportMetric(float64(i)/time.Since(start).Seconds(), "conn/s")
			if tot := e.rec.Cut(time.Now(), 0); tot.Outcomes[metrics.OK] != i {
				b.Fatalf("outcomes %v: %v", tot.Outcomes, tot.Examples)
			}
		})
	}
}
