//go:build linux

package engine

import (
	"context"
	"net/netip"
	"runtime"
	"runtime/metrics"
	"sync/atomic"
	"testing"
	"time"

	pmetrics "github.com/portstorm/portstorm/loadgen/metrics"

	"github.com/portstorm/portstorm/internal/loopback"
	"github.com/portstorm/portstorm/loadgen/dial"
	"github.com/portstorm/portstorm/loadgen/schedule"
	"github.com/portstorm/portstorm/target"
)

// goroutinesCreated is the number of goroutines this process has created so far.
func goroutinesCreated(t *testing.T) uint64 {
	s := []metrics.Sample{{Name: "/sched/goroutines-created:goroutines"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		t.Skip("runtime/metrics has no goroutines-created counter")
	}
	return s[0].Value.Uint64()
}

// TestRampPool: a concurrency ramp that wants n held connections at once, on the bare path, opens
// them from a few goroutines rather than one per slot, and every connection is established, held
// and closed as before. With a connect rate cap, or off the bare path (a send), each slot still
// has its goroutine.
func TestRampPool(t *testing.T) {
	srv, err := target.Start(context.Background(), target.Config{Mode: target.ModeHold, ClientsHold: true})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	dsts := []dial.Destination{dial.NewDestination(netip.MustParseAddrPort(srv.Addrs()[0]))}
	const n = 1500
	tests := []struct {
		name     string
		edit     func(*Config)
		wantPool bool
	}{
		{"bare path", func(*Config) {}, true},
		{"connect rate cap", func(c *Config) { c.MaxConnectRate = 1e6 }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := dial.New(dial.Options{ConnectTimeout: 10 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			cfg := Config{
				Model: Concurrency, Ramp: schedule.Ramp{Start: n, Stages: []schedule.Stage{{Duration: time.Hour, Target: n}}},
				Destinations: dsts, Dialer: d, Hold: time.Hour, Close: dial.CloseRST,
				GracefulStop: time.Minute, Interval: 10 * time.Millisecond, IOTimeout: time.Minute,
			}
			tt.edit(&cfg)
			ctx, stop := context.WithCancel(context.Background())
			defer stop()
			before := goroutinesCreated(t)
			var created atomic.Uint64
			cfg.OnSnapshot = func(s *pmetrics.Snapshot) {
				// The run ends once all n are held: the goroutines it took to get there are counted.
				if s.Active == n && created.Load() == 0 {
					created.Store(goroutinesCreated(t) - before)
					stop()
				}
			}
			res, err := Run(ctx, cfg)
			if err != nil {
				t.Fatal(err)
			}
			tot := res.Total
			checkTotals(t, tot)
			if tot.Established != n || tot.Failed != 0 || tot.PeakActive != n {
				t.Fatalf("established %d, failed %d, peak %d; want %d held (outcomes %v %v)", tot.Established, tot.Failed, tot.PeakActive, n, tot.Outcomes, tot.Examples)
			}
			got := created.Load()
			if got == 0 {
				t.Fatal("no interval saw every connection held")
			}
			if pooled := got < n/4; pooled != tt.wantPool {
				t.Errorf("%d goroutines created to hold %d connections; want a goroutine per slot: %v", got, n, !tt.wantPool)
			}
			t.Logf("%d goroutines created to hold %d", got, n)
		})
	}
}

// TestRampPoolDroppedSYNs: against a listener whose accept queue is full (it drops SYNs, so every
// connect waits for retransmits), the pool's goroutines would each sit out a connect timeout with
// the rest of the ramp queued behind them; the first connect that waits a retransmit hands every
// slot left to a goroutine of its own, so each slot tries to connect within the stage, as without
// the pool.
func TestRampPoolDroppedSYNs(t *testing.T) {
	dst := dial.NewDestination(loopback.Unaccepted(t))
	d, err := dial.New(dial.Options{ConnectTimeout: 20 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	// More slots than the pool has goroutines (32 per P): with the pool stuck, those past them
	// would still be queued when the stage ends, never attempted.
	n := 4 * 64 * (runtime.GOMAXPROCS(0) + 1)
	cfg := Config{
		Model: Concurrency, Ramp: schedule.Ramp{Start: float64(n), Stages: []schedule.Stage{{Duration: 3 * time.Second, Target: float64(n)}}},
		Destinations: []dial.Destination{dst}, Dialer: d, Hold: time.Hour, Close: dial.CloseRST,
		GracefulStop: 100 * time.Millisecond, Interval: 100 * time.Millisecond, IOTimeout: time.Minute,
	}
	res, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	tot := res.Total
	checkTotals(t, tot)
	if tot.Attempted < uint64(n) {
		t.Errorf("%d of %d slots attempted a connect within the stage (outcomes %v): the ramp stayed queued behind waiting connects",
			tot.Attempted, n, tot.Outcomes)
	}
}
