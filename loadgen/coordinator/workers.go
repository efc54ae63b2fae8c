package coordinator

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/portstorm/portstorm/loadgen/dial"
	"github.com/portstorm/portstorm/loadgen/engine"
	"github.com/portstorm/portstorm/loadgen/metrics"
	"github.com/portstorm/portstorm/loadgen/plan"
	"github.com/portstorm/portstorm/loadgen/preflight"
	"github.com/portstorm/portstorm/loadgen/schedule"
	"github.com/portstorm/portstorm/loadgen/shard"
	"github.com/portstorm/portstorm/loadgen/spec"
)

// procsEnv is env with GOMAXPROCS set to n (env unchanged when n is 0). A nil env is this
// process's own (a caller that injects none).
func procsEnv(env []string, n int) []string {
	if env == nil {
		env = os.Environ()
	}
	if n <= 0 {
		return env
	}
	return append(slices.Clone(env), fmt.Sprintf("GOMAXPROCS=%d", n))
}

// workerPlan is segment i's plan: the destinations already resolved (the built-in target runs in
// the coordinator's processes), its own source addresses or port window so that workers never
// compete for ports, and nothing a worker must not do again (isolation, thresholds, baseline).
func workerPlan(p *plan.Plan, i, n int, dsts []dial.Destination) (*plan.Plan, error) {
	wp := *p
	wp.Target = plan.Target{AllowRemote: p.Target.AllowRemote}
	for _, d := range dsts {
		wp.Target.Addresses = append(wp.Target.Addresses, d.String())
	}
	wp.Isolate, wp.Netns, wp.Thresholds, wp.Baseline = false, nil, nil, nil
	wp.Load.Workers = 0
	srcs, err := p.Source.SourceAddrs()
	if err != nil {
		return nil, err
	}
	wp.Source = p.Source
	switch {
	case len(srcs) >= n:
		// Source addresses round-robin: each worker owns whole port spaces.
		var mine []string
		for j, a := range srcs {
			if j%n == i {
				mine = append(mine, a.String())
			}
		}
		wp.Source.Addresses = mine
	case p.Source.Ports.Range != "":
		// Too few addresses: split the port window instead.
		lo, hi, ok := plan.ParsePortRange(p.Source.Ports.Range)
		if !ok || hi-lo+1 < n {
			return nil, fmt.Errorf("source.ports.range %q cannot be split over %d workers", p.Source.Ports.Range, n)
		}
		size := hi - lo + 1
		a, b := lo+size*i/n, lo+size*(i+1)/n-1
		wp.Source.Ports.Range = fmt.Sprintf("%d-%d", a, b)
	}
	return &wp, nil
}

// workerSpec is segment i's spec: workerPlan's cut (destinations resolved, its own source
// addresses or port window, nothing a worker must not do again), with the built-in target's
// certificate as the CA to trust. The server name and the HTTP Host of a destination named by a
// host name were compiled from the whole plan and travel as they are.
func workerSpec(s *spec.Spec, i, n int, dsts []dial.Destination, cert []byte) (*spec.Spec, error) {
	wp, err := workerPlan(s.Plan, i, n, dsts)
	if err != nil {
		return nil, err
	}
	ws := *s
	ws.Plan, ws.Target = wp, nil
	ws.Addresses = wp.Target.Addresses
	ws.Layout = spec.Layout{Workers: 1}
	if ws.Sources, err = wp.Source.SourceAddrs(); err != nil {
		return nil, err
	}
	ws.Window = preflight.PortWindow(wp)
	if t := s.TLS; t != nil && t.Builtin {
		c := *t
		c.Builtin, c.CAPEM = false, cert
		ws.TLS = &c
	}
	return &ws, nil
}

// runWorkers runs the spec as n worker processes, each one segment, merging their snapshots into
// take. procs is each worker's GOMAXPROCS (0: the default); cert is the built-in target's
// certificate, when it serves TLS. Each worker gets its segment of the spec as a JSON file.
func runWorkers(ctx context.Context, s *spec.Spec, o Options, exe string, n, procs int, dsts []dial.Destination, cert []byte, take func(*metrics.Snapshot)) (*execResult, error) {
	tmp, err := os.MkdirTemp("", "portstorm-workers-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	specs := make([]shard.WorkerSpec, n)
	for i := range n {
		ws, err := workerSpec(s, i, n, dsts, cert)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
		}
		file := filepath.Join(tmp, fmt.Sprintf("segment-%d.json", i))
		if err := ws.Write(file); err != nil {
			return nil, err
		}
		// Every worker starts its schedule at the same instant, so that their intervals line up for
		// the merge; "ready" has it say when it is set up and wait for that instant (shard.Timing).
		args := []string{"run", file, "-q", "--worker", fmt.Sprintf("%d/%d", i, n), "--start-at", StartAtReady}
		if o.AllowRemote {
			args = append(args, "--allow-remote")
		}
		specs[i] = shard.WorkerSpec{Label: fmt.Sprintf("worker %d/%d", i, n), Segment: fmt.Sprintf("%d/%d", i, n),
			Path: exe, Args: args, Env: procsEnv(o.Env, procs)}
	}
	// Every worker ends by its schedule plus its graceful stop; past that and a margin, it is hung.
	tm := shard.Timing{Handshake: true, RunFor: s.Ramp.Total() + s.GracefulStop + s.IOTimeout + 30*time.Second}
	res, err := shard.Run(ctx, o.Abort, specs, take, o.Stderr, tm)
	if res == nil {
		return nil, err
	}
	return &execResult{Start: res.Start, End: res.End, Interrupted: res.Interrupted, Aborted: res.Aborted,
		Total: res.Total, Failures: res.Failures, Ports: res.Ports, Unreachable: (*unreachableErr)(res.Unreachable)}, err
}

// StartAtReady is the value of run's --start-at with which a coordinator starts its workers: say
// when set up, then read the start instant from stdin (shard.Timing.Handshake).
const StartAtReady = "ready"

// WorkerOptions are a worker process's settings that do not come from its plan.
type WorkerOptions struct {
	// StartAt is the instant the segment starts its schedule (zero: at once), unless StartFrom is
	// set.
	StartAt time.Time
	// StartFrom, when set, is where the start instant comes from: once set up, the worker says it
	// is ready and reads one line from it (shard.ReadStart), so that the coordinator need not guess
	// how long the slowest worker's setup takes.
	StartFrom io.Reader
	// AllowRemote is the --allow-remote flag.
	AllowRemote bool
	// Abort, when closed, cuts in-flight connections at once.
	Abort <-chan struct{}
}

// RunWorker is the worker side: it runs segment seg of s (its segment of the coordinator's spec)
// from its start instant and streams every interval snapshot, then how the segment ended, to out.
// The coordinator has already checked the whole plan.
func RunWorker(ctx context.Context, s *spec.Spec, seg schedule.Segment, o WorkerOptions, out io.Writer) error {
	w := shard.NewWriter(out)
	err := runWorker(ctx, s, seg, o, w)
	if err != nil {
		w.Fail(err)
	}
	return err
}

func runWorker(ctx context.Context, s *spec.Spec, seg schedule.Segment, o WorkerOptions, w *shard.Writer) error {
	if s.Target != nil {
		return fmt.Errorf("%w: a worker's spec names its destinations (target.addresses)", ErrInvalid)
	}
	dsts, err := dial.Resolve(ctx, nil, s.Addresses, s.AllowRemote && o.AllowRemote)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	pr := newPortRun(s)
	pr.workers, pr.targetProcs, pr.segmentOnly = seg.Count, 0, true
	if dsts, err = pr.setup(dsts, nil); err != nil {
		return err
	}
	cfg, err := engineConfig(s, dsts, pr)
	if err != nil {
		return err
	}
	cfg.Segment, cfg.Start, cfg.Abort = seg, o.StartAt, o.Abort
	var werr error
	cfg.OnSnapshot = func(s *metrics.Snapshot) {
		if err := w.Snapshot(s); err != nil && werr == nil {
			werr = err
		}
		s.Release() // written out: its histograms go back to the pool for the next interval
	}
	if o.StartFrom != nil {
		// Everything but the schedule is ready: only now is the start instant worth asking for.
		if err := w.Ready(); err != nil {
			return fmt.Errorf("telling the coordinator this worker is ready: %w", err)
		}
		if cfg.Start, err = shard.ReadStart(ctx, o.StartFrom); err != nil {
			return fmt.Errorf("worker %s: no start instant from the coordinator: %w", seg, err)
		}
	}
	res, err := engine.Run(ctx, cfg)
	if err != nil {
		return err
	}
	if werr != nil {
		return fmt.Errorf("writing snapshots to the coordinator: %w", werr)
	}
	return w.Done(shard.Done{Start: res.Start, End: res.End, Interrupted: res.Interrupted, Aborted: res.Aborted, Ports: pr.report(),
		Unreachable: (*shard.Unreachable)(unreachable(res.Unreachable))})
}
