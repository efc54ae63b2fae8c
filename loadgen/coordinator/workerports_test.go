//go:build linux

package coordinator

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/portstorm/portstorm/loadgen/dial"
	"github.com/portstorm/portstorm/loadgen/isolate/nstest"
	"github.com/portstorm/portstorm/loadgen/plan"
	"github.com/portstorm/portstorm/loadgen/preflight"
	"github.com/portstorm/portstorm/loadgen/schedule"
	"github.com/portstorm/portstorm/loadgen/shard"
)

// TestWorkerPortReport: a worker process's port report (its entry in summary.json's
// ports_by_host) holds the kernel counters' deltas over its run and its TIME_WAIT samples, as a
// single process's report does. The worker never sampled its observatory (only the collector of
// a single process did), so every kernel delta was its baseline against itself, all zeros, and
// TIME_WAIT was never sampled. The worker runs in this process, segment 0 of 2, in a private
// network namespace: the namespace's counters move only with the test's connections.
func TestWorkerPortReport(t *testing.T) {
	if !nstest.Run(t) {
		return
	}
	checkFDs(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	// The target reads until the client's FIN, then closes: the client closes first and holds
	// the TIME_WAIT.
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				io.Copy(io.Discard, c)
				c.Close()
			})
		}
	})
	defer wg.Wait()
	defer ln.Close()

	p := &plan.Plan{Version: 1, Name: "worker-ports",
		Target:     plan.Target{Addresses: []string{ln.Addr().String()}},
		Connection: plan.Connection{Hold: plan.Duration(100 * time.Millisecond), Close: "fin", ConnectTimeout: plan.Duration(2 * time.Second)},
		Load: plan.Load{Model: "concurrency", Workers: 2, Stages: []plan.Stage{
			{Duration: plan.Duration(400 * time.Millisecond), Target: 200}, {Duration: plan.Duration(400 * time.Millisecond), Target: 200}},
			GracefulStop: plan.Duration(2 * time.Second)},
		Output: plan.Output{Interval: plan.Duration(100 * time.Millisecond)},
	}
	p.Defaults()
	if errs := p.Validate(); len(errs) > 0 {
		t.Fatalf("invalid plan: %v", errs)
	}
	ws, err := compile(t, p).Segment(0, 2, []string{ln.Addr().String()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := RunWorker(context.Background(), ws, schedule.Segment{Index: 0, Count: 2}, WorkerOptions{}, &out); err != nil {
		t.Fatalf("worker: %v\n%s", err, out.String())
	}
	var attempted, established uint64
	var done *shard.Done
	err = shard.Read(&out, func(m shard.Message) error {
		if s := m.Snapshot; s != nil {
			attempted += s.Attempted
			established += s.Established
		}
		if m.Done != nil {
			done = m.Done
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if done == nil || done.Ports == nil {
		t.Fatalf("the worker's last word has no port report: %+v", done)
	}
	if established < 100 {
		t.Fatalf("established %d of %d attempted: want a clean run of a few hundred", established, attempted)
	}
	r := done.Ports
	k := r.Kernel
	t.Logf("attempted %d, established %d; kernel %v; TIME_WAIT %+v", attempted, established, k, r.TimeWait)
	if k == nil {
		t.Fatal("the worker's port report has no kernel counters")
	}
	// Only this test connects in the namespace: every connect() sent a SYN, and the client closed
	// first each established connection that ended (the run's end closes the rest).
	if k["ActiveOpens"] < attempted {
		t.Errorf("kernel ActiveOpens %d < connections attempted %d: the worker's kernel deltas were not read", k["ActiveOpens"], attempted)
	}
	if tw := r.TimeWait; tw.Samples == 0 || tw.Peak <= 0 {
		t.Errorf("TIME_WAIT %+v: the worker never sampled it", tw)
	}
}

// TestCoordinatorOfWorkersDumpsNoTimeWait: the coordinator of worker processes makes no
// connection, so its observatory finds none of its own 4-tuples in TIME_WAIT: it reads the kernel
// counters (timeline.csv's kernel_ columns) but samples no TIME_WAIT (-1, "not sampled"), where
// its dump said 0 in a run that held thousands. A process that connects, alone or as a worker,
// samples it.
func TestCoordinatorOfWorkersDumpsNoTimeWait(t *testing.T) {
	if !nstest.Run(t) {
		return
	}
	tests := []struct {
		name     string
		layout   int // the spec's worker processes
		worker   int // runner.workers: segment i/N's N in a worker process, else 0
		sampleTW bool
	}{
		{"single process", 1, 0, true},
		{"worker process", 1, 2, true},
		{"coordinator of workers", 2, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := portPlan("echo", 1, "kernel", "", nil, 10, time.Second, time.Second)
			s := compile(t, p)
			s.Layout.Workers = tt.layout
			r := newPortRun(s)
			if tt.worker > 0 {
				r.workers, r.segmentOnly = tt.worker, true
			}
			r.observe([]dial.Destination{{AddrPort: netip.MustParseAddrPort("127.0.0.1:9")}}, &preflight.Forecast{})
			got := r.sample()
			if got == nil || !got.Kernel.Valid {
				t.Fatalf("sample %+v: the kernel counters were not read", got)
			}
			if sampled := got.TimeWait >= 0; sampled != tt.sampleTW {
				t.Errorf("TIME_WAIT %d: sampled %v, want %v", got.TimeWait, sampled, tt.sampleTW)
			}
		})
	}
}
