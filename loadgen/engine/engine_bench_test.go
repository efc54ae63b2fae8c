//go:build linux

package engine

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/portstorm/portstorm/loadgen/dial"
	"github.com/portstorm/portstorm/loadgen/metrics"
	"github.com/portstorm/portstorm/target"
)

// BenchmarkConnection measures one connection's whole lifecycle on the per-connection path (dial,
// one 64-byte echo, RST close, recording), against the built-in target on loopback. RST keeps the
// port range free of TIME_WAIT however large b.N grows. Allocations include the runtime's own
// (net.Conn, poller registration); the recorder adds none.
func BenchmarkConnection(b *testing.B) {
	tests := []struct {
		name string
		send *Send
		mode target.Mode
		// guard: the plan's default on_connect_failure watches every connect (as in a run).
		guard bool
		bare  bool // the bare path: a blocking connect outside the poller
	}{
		{"connect-close", nil, target.ModeSink, false, false},
		{"connect-close-guarded", nil, target.ModeSink, true, false},
		{"connect-close-bare", nil, target.ModeSink, false, true},
		{"connect-echo64-close", &Send{Bytes: 64, Count: 1, Echo: true}, target.ModeEcho, false, false},
	}
	for _, tt := range tests {
		b.Run(tt.name, func(b *testing.B) {
			srv, err := target.Start(context.Background(), target.Config{Mode: tt.mode, Listen: []string{"127.0.0.1:0", "127.0.0.1:0"}})
			if err != nil {
				b.Fatal(err)
			}
			defer srv.Close()
			var dsts []dial.Destination
			for _, a := range srv.Addrs() {
				dsts = append(dsts, dial.NewDestination(netip.MustParseAddrPort(a)))
			}
			e := &engine{
				cfg: Config{Destinations: dsts, Dialer: dial.NewKernel(dial.Options{}), Send: tt.send,
					IOTimeout: 5 * time.Second, Close: dial.CloseRST},
				rec:      metrics.NewRecorder(time.Now(), 4),
				stopping: make(chan struct{}),
			}
			if tt.guard {
				e.guard = newFailGuard(testFailPolicy, len(dsts))
			}
			e.hardCtx, e.hardStop = context.WithCancel(context.Background())
			defer e.hardStop()
			if err := e.initSend(); err != nil {
				b.Fatal(err)
			}
			if tt.bare && !e.initBare() {
				b.Fatal("the bare path was not taken")
			}
			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			for i := 0; i < b.N; i++ {
				sh := e.rec.Shard(uint64(i))
				sh.Attempt()
				e.connection(uint64(i), sh, time.Time{}, 0, nil)
			}
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "conn/s")
			b.StopTimer()
			tot := e.rec.Cut(time.Now(), 0)
			if tot.Outcomes[metrics.OK] != uint64(b.N) {
				b.Fatalf("outcomes %v: %v", tot.Outcomes, tot.Examples)
			}
		})
	}
}
