package coordinator

import (
	"context"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/portstorm/portstorm/loadgen/calibrate"
	"github.com/portstorm/portstorm/loadgen/dial"
	"github.com/portstorm/portstorm/loadgen/gate"
	"github.com/portstorm/portstorm/loadgen/metrics"
	"github.com/portstorm/portstorm/loadgen/ports"
	"github.com/portstorm/portstorm/loadgen/report"
	"github.com/portstorm/portstorm/loadgen/shard"
	"github.com/portstorm/portstorm/loadgen/spec"
	"github.com/portstorm/portstorm/target"
)

// runner is the skeleton every verb that writes a results folder shares, so that a step added to
// one is in all three. Run, RunSegment and Merge are configurations of it; its steps, in order:
//
//  1. startTarget: the built-in target, when the spec has one (in this process, or as target
//     processes of their own);
//  2. resolve: the destinations (the built-in target's addresses, or the spec's);
//  3. setUp: the segment's cut of the spec (RunSegment), the gate, the preflight, source
//     addresses, the dialer and the port observatory;
//  4. calibrateHost: the host's reference (loadgen/calibrate), when the run asks for it
//     (baseline.normalize: calibration, run --calibrate); before the results folder, so a host
//     that cannot calibrate runs nothing. Run only: a segment's result is merged, and a merged
//     result keeps no calibration (the CLI refuses --calibrate with --segment); Merge measures
//     nothing;
//  5. open: the results folder and what is written while the run goes on;
//  6. execute: the load (the engine in this process, worker processes) or the segments' snapshots
//     merged, every interval snapshot through one collector;
//  7. summarise: the summary from how the run ended, whichever way it was executed, with the
//     calibration, then the verdict;
//  8. write: the result files.
//
// Merge runs nothing here, so steps 1 to 4 find little to do (its spec is read from a shard
// folder: no built-in target; local is false, so nothing is resolved or set up but the gate).
type runner struct {
	// The configuration, set by the verb.

	// s is the spec this process carries out: the whole run's (Run, Merge), or the segment's once
	// setUp has cut it (RunSegment).
	s *spec.Spec
	o Options
	// local says connections start here (steps 2 and 3); Merge's were made by its segments.
	local bool
	// targetProcs are the built-in target's processes (0: it runs in this process).
	targetProcs int
	// segmentOnly: this process runs one segment of a run (RunSegment, a worker process): the
	// whole plan's demand is not this host's, so the preflight warns but does not refuse.
	segmentOnly bool
	// calibrate: measure the host's reference before the run (Run only: calibrateHost).
	calibrate bool
	// workers, when set, is the process count the preflight judges open files by (a worker's N).
	workers int
	// cut is RunSegment's: this process runs the spec's cut for its segment, known once the
	// destinations are (spec.Segment).
	cut func(dsts []dial.Destination, cert []byte) (*spec.Spec, error)
	// first writes what must be in the folder before anything is measured (RunSegment: the spec,
	// the plan and the snapshots file).
	first func(dir string) error
	// start is the outputs' time zero (zero: now).
	start time.Time
	// exec carries out the load (or merges it) with the collector's take for every snapshot.
	exec func(ctx context.Context, r *runner) (*ended, error)
	// finish adds the verb's own parts to the summary, before the verdict.
	finish func(r *runner, res *ended, sum *report.Summary)
	// judge: thresholds and baseline are judged here (Run, Merge); a segment's wait for the merge.
	judge bool
	// written runs after the result files are written (RunSegment: shard.json, last).
	written func(out *Outcome) error

	// What the steps made.

	// signalled says the caller's context was cancelled (a signal), as opposed to a stop of the
	// run's own (a threshold, a target process that died).
	signalled func() bool
	verdict   *gate.Gate // the thresholds and the baseline (setUp)
	tgt       *builtin
	dsts      []dial.Destination // resolved: where connections go
	// pairs are dsts paired with the source addresses (setUp): what the engine dials.
	pairs []dial.Destination
	pr    *portRun
	out   *outputs
	col   *collector
	// cal is the host's reference (calibrateHost), nil when the run did not calibrate.
	cal *report.Calibration
	// mem samples the memory the connections take (Run only; nil otherwise).
	mem *memWatch
}

// ended is how a run ended, whichever way it was executed: the engine in this process, worker
// processes, or a distributed run's segments merged. Its Ending (start, end, interrupted,
// aborted, the give-up, all instants) is the type a worker's last word and the workers' merged
// result share; the rest is what the summary needs besides, the failures' times already from
// Start, as the summary has them.
type ended struct {
	shard.Ending
	Total *metrics.Snapshot
	// Segments is how many processes or segments the result is made of.
	Segments int
	// PacingFloor is the arrival pacing this machine can keep (the coarsest of the segments').
	PacingFloor time.Duration
	Failures    []report.WorkerFailure
	// PortsByHost are the port reports of workers or segments, which stay apart.
	PortsByHost    []report.HostPorts
	Target         *target.Stats
	TargetFailures []report.TargetFailure
	Warnings       []string
}

// do carries out the steps in order.
func (r *runner) do(ctx context.Context) (*Outcome, error) {
	if r.o.Stderr == nil {
		r.o.Stderr = os.Stderr
	}
	defer r.close()
	if err := r.startTarget(ctx); err != nil {
		return nil, err
	}
	if err := r.resolve(ctx); err != nil {
		return nil, err
	}
	if err := r.setUp(ctx); err != nil {
		return nil, err
	}
	if err := r.calibrateHost(ctx); err != nil {
		return nil, err
	}
	if err := r.open(); err != nil {
		return nil, err
	}
	res, err := r.execute(ctx)
	if err != nil {
		return nil, err
	}
	sum, err := r.summarise(res)
	if err != nil {
		return nil, err
	}
	return r.write(sum)
}

// close stops what the steps started.
func (r *runner) close() {
	if r.out != nil {
		r.out.close()
	}
	r.mem.close()
	r.tgt.close()
}

// startTarget starts the built-in target, when the spec has one.
func (r *runner) startTarget(ctx context.Context) error {
	if r.s.Target == nil {
		return nil
	}
	var err error
	r.tgt, err = startBuiltin(ctx, r.s.Target, r.targetProcs, r.s.Layout.TargetProcs, r.o)
	return err
}

// resolve finds the destinations: the built-in target's addresses, or the spec's (targets outside
// loopback need both the plan's and the flag's opt-in).
func (r *runner) resolve(ctx context.Context) error {
	if !r.local {
		return nil
	}
	var err error
	if r.tgt != nil {
		if r.dsts, err = dial.Resolve(ctx, nil, r.tgt.addrs, false); err != nil {
			return beforeRun(ctx, err)
		}
		return nil
	}
	if r.dsts, err = dial.Resolve(ctx, r.o.Resolver, r.s.Addresses, r.s.AllowRemote && r.o.AllowRemote); err != nil {
		return beforeRun(ctx, fmt.Errorf("%w: %w", ErrInvalid, err))
	}
	return nil
}

// setUp cuts the segment's spec (RunSegment), compiles the gate (the thresholds and the
// baseline: a segment's cut has none), checks the spec against the host and prepares the port
// side (portRun.setup). A signal that came meanwhile ends the run before it begins.
func (r *runner) setUp(ctx context.Context) error {
	if r.local && r.cut != nil {
		s, err := r.cut(r.dsts, r.tgt.cert())
		if err != nil {
			return fmt.Errorf("%w: %w", ErrInvalid, err)
		}
		r.s = s
	}
	var err error
	if r.verdict, err = spec.Gate(r.s.Plan); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if !r.local {
		return beforeRun(ctx, nil)
	}
	r.pr = newPortRun(r.s)
	r.pr.segmentOnly = r.segmentOnly
	if r.workers > 0 {
		r.pr.workers = r.workers
	}
	if r.pairs, err = r.pr.setup(r.dsts, r.o.Dialer); err != nil {
		return beforeRun(ctx, err)
	}
	return beforeRun(ctx, nil)
}

// calibrateHost measures the host's reference when the run asks for it (baseline.normalize:
// calibration, run --calibrate), after the set-up and before the results folder: a host that
// cannot calibrate runs nothing.
func (r *runner) calibrateHost(ctx context.Context) error {
	if !r.calibrate || !r.local {
		return nil
	}
	var err error
	if r.cal, err = calibrate.Run(ctx, calibrate.Options{}); err != nil {
		return beforeRun(ctx, err)
	}
	return nil
}

// open claims the results folder and opens what is written during the run.
func (r *runner) open() error {
	start := r.start
	if start.IsZero() {
		start = time.Now()
	}
	var first func() error
	if r.first != nil {
		first = func() error { return r.first(r.o.OutDir) }
	}
	var err error
	r.out, err = openOutputs(r.o.OutDir, start, first)
	return err
}

// execute runs the verb's exec with the collector taking every interval snapshot. An
// abort_on_fail threshold is judged on the running totals after every interval; when one fails,
// the run stops as at a first signal (graceful stop), without being marked interrupted. A target
// process that ends mid-run (killed, crashed) has cut its connections and lost its counters: what
// follows would measure a broken set-up, so the run stops as at a first signal, keeps what it
// measured, and reports the process (exit 3).
func (r *runner) execute(ctx context.Context) (*ended, error) {
	runCtx, stopRun := context.WithCancel(ctx)
	defer stopRun()
	r.signalled = func() bool { return ctx.Err() != nil }
	if r.pr == nil {
		r.pr = &portRun{s: r.s}
	}
	r.col = newCollector(r.s, r.pr, r.verdict, r.out.hlog, r.o, stopRun)
	if !r.local {
		// abort_on_fail cannot stop a run after the fact: the merged result is judged once, at the end.
		r.col.running = nil
	}
	if died := r.tgt.died(); died != nil {
		watched := make(chan struct{})
		var wg sync.WaitGroup
		wg.Go(func() {
			select {
			case <-died:
				fmt.Fprintf(r.o.Stderr, "portstorm: a built-in target process ended before the run asked it to; stopping the run\n")
				stopRun()
			case <-watched:
			}
		})
		defer wg.Wait()
		defer close(watched)
	}
	return r.exec(runCtx, r)
}

// targetIdle is the built-in target's idle timeout as compiled (0: no built-in target, or its
// default).
func (r *runner) targetIdle() time.Duration {
	if r.s.Target == nil {
		return 0
	}
	return r.s.Target.Config.IdleTimeout
}

// summarise builds the summary of a run that ended as res, and judges it.
func (r *runner) summarise(res *ended) (*report.Summary, error) {
	if r.tgt != nil {
		res.Target, res.TargetFailures = r.tgt.stop(res.Start)
	}
	var portReport *ports.Report
	if r.s.Layout.Workers == 1 {
		portReport = r.pr.report()
	}
	sum, err := report.Build(report.Input{
		Plan: r.s.Plan, Host: r.pr.host, Segments: res.Segments, Start: res.Start, End: res.End,
		Interrupted: res.Interrupted, Aborted: res.Aborted, Total: res.Total, Stages: r.col.stages[:len(r.s.Ramp.Stages)],
		Target: res.Target, TargetIdle: r.targetIdle(), Ports: portReport, PacingFloor: res.PacingFloor,
	})
	if err != nil {
		return nil, err
	}
	sum.Stopped = r.col.stopped
	sum.Calibration = r.cal
	sum.Memory = r.mem.report(res.Start)
	sum.Unreachable = res.Unreachable.Summary(res.Start)
	sum.PortsByHost = append(sum.PortsByHost, res.PortsByHost...)
	sum.WorkerFailures = append(sum.WorkerFailures, res.Failures...)
	sum.TargetFailures = append(sum.TargetFailures, res.TargetFailures...)
	sum.Warnings = append(sum.Warnings, res.Warnings...)
	if r.finish != nil {
		r.finish(r, res, sum)
	}
	if r.judge {
		r.verdict.Judge(sum)
	} else {
		report.Settle(sum)
	}
	return sum, nil
}

// write writes the result files, then what the verb writes after them.
func (r *runner) write(sum *report.Summary) (*Outcome, error) {
	out, err := r.out.write(sum, r.col.rows)
	if err != nil || r.written == nil {
		return out, err
	}
	return out, r.written(out)
}

// builtin is the built-in target of one run: in this process, or as processes of their own.
type builtin struct {
	srv   *target.Server
	procs *targetProcs
	tls   *builtinTLS
	addrs []string
	// processes is how many processes serve it, for its stats.
	processes int
}

// startBuiltin starts the built-in target t, in this process (n == 0) or as n processes of
// GOMAXPROCS procs each (0: the runtime's default).
func startBuiltin(ctx context.Context, t *spec.Target, n, procs int, o Options) (*builtin, error) {
	b := &builtin{processes: max(n, 1)}
	cfg, err := b.config(t)
	if err != nil {
		b.close()
		return nil, err
	}
	if n > 0 {
		if b.procs, err = startTargetProcs(ctx, o.Exe, cfg, b.tls, n, procs, o.Env, o.Stderr); err != nil {
			b.close()
			return nil, beforeRun(ctx, fmt.Errorf("starting the built-in target: %w", err))
		}
		b.addrs = b.procs.addrs
		return b, nil
	}
	if b.srv, err = target.Start(context.Background(), cfg); err != nil {
		b.close()
		return nil, fmt.Errorf("starting the built-in target: %w", err)
	}
	b.addrs = b.srv.Addrs()
	return b, nil
}

// config is the built-in target's configuration from the spec, with its certificate made for this
// run when it serves TLS.
func (b *builtin) config(t *spec.Target) (target.Config, error) {
	cfg := t.Config
	cfg.Listen = append([]string(nil), cfg.Listen...)
	if !t.TLS {
		return cfg, nil
	}
	var err error
	if b.tls, err = newBuiltinTLS(t.Address); err != nil {
		return target.Config{}, err
	}
	if cfg.TLS, err = target.TLSConfig(b.tls.certPEM, b.tls.keyPEM); err != nil {
		return target.Config{}, err
	}
	return cfg, nil
}

// cert is the built-in target's certificate, when it serves TLS (nil otherwise).
func (b *builtin) cert() []byte {
	if b == nil || b.tls == nil {
		return nil
	}
	return b.tls.certPEM
}

// died is closed when a target process ends unasked (nil: none runs).
func (b *builtin) died() <-chan struct{} {
	if b == nil || b.procs == nil {
		return nil
	}
	return b.procs.died
}

// stop stops the target and returns its counters and its processes that failed, their times
// from start.
func (b *builtin) stop(start time.Time) (*target.Stats, []report.TargetFailure) {
	var st target.Stats
	var fails []report.TargetFailure
	if b.srv != nil {
		b.srv.Close()
		st = b.srv.Stats()
	} else {
		st, fails = b.procs.stop(start)
	}
	st.Processes = b.processes
	return &st, fails
}

// close ends what is still running.
func (b *builtin) close() {
	if b == nil {
		return
	}
	if b.srv != nil {
		b.srv.Close()
	}
	if b.procs != nil {
		b.procs.kill()
	}
}
