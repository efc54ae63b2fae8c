package coordinator

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/portstorm/portstorm/loadgen/dial"
	"github.com/portstorm/portstorm/loadgen/engine"
	"github.com/portstorm/portstorm/loadgen/metrics"
	"github.com/portstorm/portstorm/loadgen/report"
	"github.com/portstorm/portstorm/loadgen/schedule"
	"github.com/portstorm/portstorm/loadgen/shard"
	"github.com/portstorm/portstorm/loadgen/spec"
)

// procsEnv is the environment of a worker or target process: env (the one portstorm was given,
// Options.Env) with GOMAXPROCS set to n (0: not set). Never nil: a process started with a nil
// environment would inherit this process's own, which the coordinator does not read.
func procsEnv(env []string, n int) []string {
	out := append([]string{}, env...)
	if n > 0 {
		out = append(out, fmt.Sprintf("GOMAXPROCS=%d", n))
	}
	return out
}

// destinations are dsts as addresses, as a segment's spec names them.
func destinations(dsts []dial.Destination) []string {
	out := make([]string, len(dsts))
	for i, d := range dsts {
		out[i] = d.String()
	}
	return out
}

// runWorkers runs the spec as n worker processes, each one segment, merging their snapshots into
// take. procs is each worker's GOMAXPROCS (0: the default); cert is the built-in target's
// certificate, when it serves TLS. Each worker gets its segment of the spec as a JSON file. ready
// is called with the workers' process ids once all are set up, before the first connection.
func runWorkers(ctx context.Context, s *spec.Spec, o Options, n, procs int, dsts []dial.Destination, cert []byte, take func(*metrics.Snapshot), ready func(pids []int)) (*ended, error) {
	tmp, err := os.MkdirTemp("", "portstorm-workers-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	specs := make([]shard.WorkerSpec, n)
	for i := range n {
		ws, err := s.Segment(i, n, destinations(dsts), cert)
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
			Path: o.Exe, Args: args, Env: procsEnv(o.Env, procs)}
	}
	// Every worker ends by its schedule plus its graceful stop; past that and a margin, it is hung.
	tm := shard.Timing{Handshake: true, RunFor: s.Ramp.Total() + s.GracefulStop + s.IOTimeout + 30*time.Second, Ready: ready}
	res, err := shard.Run(ctx, o.Abort, specs, take, o.Stderr, tm)
	if res == nil {
		return nil, err
	}
	out := &ended{Ending: res.Ending, Total: res.Total, Failures: res.Failures}
	// Workers own disjoint source addresses (or port windows): their port reports stay apart, one
	// per worker, as distributed segments' stay per host.
	for _, wp := range res.Ports {
		out.PortsByHost = append(out.PortsByHost, report.HostPorts{Host: s.Host.Hostname, Segment: wp.Segment, Ports: wp.Ports})
	}
	return out, err
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
	// The skeleton's steps up to the execution (runner): no outputs, no summary; the coordinator
	// writes them.
	r := &runner{s: s, o: Options{AllowRemote: o.AllowRemote}, local: true, segmentOnly: true, workers: seg.Count}
	if err := r.resolve(ctx); err != nil {
		return err
	}
	if err := r.setUp(ctx); err != nil {
		return err
	}
	pr := r.pr
	cfg, err := engineConfig(s, r.pairs, pr, nil)
	if err != nil {
		return err
	}
	cfg.Segment, cfg.Start, cfg.Abort = seg, o.StartAt, o.Abort
	var werr error
	cfg.OnSnapshot = func(s *metrics.Snapshot) {
		// The observatory's interval sample, as the collector takes it in a single process: its
		// TIME_WAIT dump and its reading of the kernel counters, which are what the worker's port
		// report (ports_by_host) gives. Without it the report's kernel deltas were those of the
		// baseline against itself, all zeros, and its TIME_WAIT never sampled.
		pr.sample()
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
	return w.Done(shard.Done{Ending: ending(res), Ports: pr.report()})
}
