// Package coordinator carries out a plan: it starts the built-in target when the plan asks, runs
// the shard(s), merges their snapshots for live progress and the final result, and writes results.
package coordinator

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	hdr "github.com/HdrHistogram/hdrhistogram-go"

	"github.com/portstorm/portstorm/loadgen/dial"
	"github.com/portstorm/portstorm/loadgen/engine"
	"github.com/portstorm/portstorm/loadgen/gate"
	"github.com/portstorm/portstorm/loadgen/metrics"
	"github.com/portstorm/portstorm/loadgen/ports"
	"github.com/portstorm/portstorm/loadgen/preflight"
	"github.com/portstorm/portstorm/loadgen/report"
	"github.com/portstorm/portstorm/loadgen/schedule"
	"github.com/portstorm/portstorm/loadgen/shard"
	"github.com/portstorm/portstorm/loadgen/spec"
)

// ErrInvalid wraps problems with the plan or flags found before any connection (exit code 2).
// Any other error of Run, RunSegment and Merge (but ErrInterrupted and ErrShards) is a run that
// could not be carried out (exit code 3).
var ErrInvalid = errors.New("invalid plan or flags")

// ErrInterrupted is a run cancelled before it began (exit code 130): while the plan was being set
// up (preflight, the built-in target, the results folder), so nothing was measured or written;
// what the set-up had started is stopped.
var ErrInterrupted = errors.New("interrupted before the run began; nothing was measured")

// beforeRun turns err into ErrInterrupted when ctx was cancelled while the run was being set up:
// a step that failed because of the signal (a resolver cut short) is not the step's own fault.
func beforeRun(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ErrInterrupted
	}
	return err
}

// Options are the run's settings that do not come from the plan.
type Options struct {
	// OutDir is the exact results folder; "" means <plan output.dir>/<name>-<UTC time>.
	OutDir string
	// AllowRemote is the --allow-remote flag; targets outside loopback also need the plan's opt-in.
	AllowRemote bool
	// Abort, when closed, cuts in-flight connections at once (a second signal).
	Abort <-chan struct{}
	// Progress receives a progress line's figures after every interval.
	Progress func(Progress)
	// Dialer replaces the kernel dialer (tests).
	Dialer dial.Dialer
	// Resolver replaces the system resolver (tests).
	Resolver dial.Resolver
	// Stderr receives worker and target processes' messages (default os.Stderr).
	Stderr io.Writer
	// Exe is the portstorm executable started as worker and target processes (default: this one).
	Exe string
	// OnSnapshot, when set, receives every interval snapshot as it is cut, after the coordinator
	// has used it (live metrics exporters). It must not keep or change the snapshot.
	OnSnapshot func(*metrics.Snapshot)
	// OnPorts, when set, receives the port observatory's sample of every interval, just before
	// OnSnapshot gets the interval's snapshot (live metrics exporters); not called when the run
	// has no observatory in this process. It must not keep or change the sample.
	OnPorts func(*ports.Sample)
	// Env is the environment worker and target processes start with (os.Environ style); the
	// coordinator reads no other.
	Env []string
}

// Facts are this host's facts as spec.Compile needs them; env is the environment portstorm was
// given (a GOMAXPROCS there is kept by every process; it says whether this is the run's private
// namespace).
func Facts(env []string) spec.Facts {
	return spec.Facts{Host: preflight.ReadHost(env), ProcsSet: procsSet(env)}
}

// procsSet says whether env sets GOMAXPROCS.
func procsSet(env []string) bool {
	for _, kv := range env {
		if k, v, _ := strings.Cut(kv, "="); k == "GOMAXPROCS" && v != "" {
			return true
		}
	}
	return false
}

// Progress is what the live progress line shows.
type Progress struct {
	// Stage is the stage running, counted from 0 as everywhere else (load.stages[N], the
	// thresholds' stage[N], summary.json's stages[].index, timeline.csv's stage); Stage == Stages
	// after the last stage, while in-flight connections finish (graceful_stop).
	Stage, Stages    int
	Elapsed, Total   time.Duration
	Active           int64
	OpenedPerSecond  float64
	Errors           uint64
	ConnectP99       time.Duration
	IntervalAttempts uint64
	// Requests says the run is about requests: more requests written so far than connections
	// established (keep-alive), or rated requests. RequestsPerSecond is the interval's requests
	// written per second, RequestP99 the interval's p99 of request_intended when Rated, else of rtt.
	Requests          bool
	Rated             bool
	RequestsPerSecond float64
	RequestP99        time.Duration
}

// Outcome is a finished run: its summary and where its files are.
type Outcome struct {
	Summary *report.Summary
	Dir     string
}

// Run carries out a compiled plan. Cancelling ctx stops it gracefully: the result is still
// written, marked interrupted. Cancelling it before the run begins (the set-up: preflight, the
// built-in target, the results folder) ends Run at once with ErrInterrupted, with what the set-up
// had started stopped and nothing written. When the plan needs more descriptors than one process
// may hold (or load.workers says so), it runs as worker processes, each one segment of the spec,
// and the built-in target as several processes sharing its listeners.
func Run(ctx context.Context, s *spec.Spec, o Options) (*Outcome, error) {
	lay := s.Layout
	if o.Dialer != nil && lay.Workers > 1 {
		return nil, fmt.Errorf("%w: a test dialer cannot run in worker processes (load.workers: 1)", ErrInvalid)
	}
	if o.Stderr == nil {
		o.Stderr = os.Stderr
	}
	if lay.Workers > 1 || lay.Targets > 0 {
		fmt.Fprintf(o.Stderr, "portstorm: %s\n", lay.Why)
		if o.Exe == "" {
			var err error
			if o.Exe, err = os.Executable(); err != nil {
				return nil, fmt.Errorf("finding portstorm's executable for worker processes: %w", err)
			}
		}
	}
	if o.OutDir == "" {
		o.OutDir = filepath.Join(s.OutputDir, s.Name+"-"+time.Now().UTC().Format("20060102T150405Z"))
	}
	if lay.Workers > 1 {
		// The workers observe their own ports; this process's observatory sees none of them.
		o.OnPorts = nil
	}
	r := &runner{s: s, o: o, local: true, targetProcs: lay.Targets, judge: true,
		calibrate: s.Calibrate, exec: execRun, finish: finishRun}
	return r.do(ctx)
}

// execRun runs the load: in this process, or as worker processes each running its segment.
func execRun(ctx context.Context, r *runner) (*ended, error) {
	s, lay := r.s, r.s.Layout
	floor := s.PacingFloor()
	r.mem = newMemWatch(r.tgt, s.Interval, memQuiet(s.Model, s.Preflight.Peak))
	r.col.mem = r.mem
	var res *ended
	var err error
	if lay.Workers > 1 {
		res, err = runWorkers(ctx, s, r.o, lay.Workers, lay.GenProcs, r.dsts, r.tgt.cert(), r.col.take, r.mem.base)
	} else {
		r.mem.base(nil)
		if lay.GenProcs > 0 {
			// This process is the generator: its share of the cores (see spec.CPUShares).
			defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(lay.GenProcs))
		}
		res, err = runEngine(ctx, s, r.pairs, r.pr, r.tgt.cert(), func(c *engine.Config) {
			c.Abort = r.o.Abort
			c.OnSnapshot = func(s *metrics.Snapshot) {
				r.col.take(s)
				s.Release() // every use of it is done: its histograms go back to the pool
			}
		})
	}
	if err != nil && res == nil {
		return nil, err
	}
	if err == nil {
		err = r.col.err
	}
	if err != nil {
		return nil, fmt.Errorf("merging measurements: %w", err)
	}
	// A threshold's stop cancels the run's context, which the engine reports as an interruption,
	// and a worker giving up on an unreachable target stops the others as a signal would; only a
	// signal (the caller's context) is one.
	res.Interrupted = res.Interrupted && (r.col.stopped == nil && res.Unreachable == nil || r.signalled())
	res.Segments, res.PacingFloor = lay.Workers, floor
	return res, nil
}

// finishRun: a run in worker processes says so, and why its ports are per worker.
func finishRun(r *runner, _ *ended, sum *report.Summary) {
	if lay := r.s.Layout; lay.Workers > 1 {
		sum.Workers = lay.Workers
		sum.Warnings = append(sum.Warnings, fmt.Sprintf("%s; port statistics are per worker in ports_by_host (ports is null)", lay.Why))
	}
}

// runEngine runs s in this process with the engine over dsts; set completes the engine's
// configuration (its snapshots' destination, the segment, the start).
func runEngine(ctx context.Context, s *spec.Spec, dsts []dial.Destination, pr *portRun, cert []byte, set func(*engine.Config)) (*ended, error) {
	cfg, err := engineConfig(s, dsts, pr, cert)
	if err != nil {
		return nil, err
	}
	set(&cfg)
	r, err := engine.Run(ctx, cfg)
	if r == nil {
		return nil, err
	}
	return &ended{Ending: ending(r), Total: r.Total}, err
}

// ending is how the engine's run ended, as a worker's last word says it.
func ending(r *engine.Result) shard.Ending {
	return shard.Ending{Start: r.Start, End: r.End, Interrupted: r.Interrupted, Aborted: r.Aborted,
		Unreachable: unreachable(r.Unreachable)}
}

// unreachable carries the engine's give-up as a worker's last word does.
func unreachable(u *engine.Unreachable) *shard.Unreachable {
	if u == nil {
		return nil
	}
	return &shard.Unreachable{First: u.First, At: u.At, Failed: u.Failures, Destination: u.Destination,
		Outcome: metrics.Classify(u.Err).String(), Error: u.Err.Error()}
}

// engineConfig is the engine's configuration for a spec, its destinations and its port side.
func engineConfig(s *spec.Spec, dsts []dial.Destination, pr *portRun, cert []byte) (engine.Config, error) {
	cfg := engine.Config{
		Model: s.Model, Ramp: s.Ramp, Destinations: dsts, Dialer: pr.dialer,
		IOTimeout: s.IOTimeout, Hold: s.Hold, Close: s.Close,
		MaxInFlight: s.MaxInFlight, Drop: s.Drop,
		MaxConnectRate: s.MaxConnectRate, GracefulStop: s.GracefulStop,
		Interval: s.Interval, Ports: pr.obs,
	}
	if f := s.OnConnectFailure; f != nil {
		c := *f
		cfg.OnConnectFailure = &c
	}
	var err error
	if cfg.Send, err = s.Send.Engine(defaultHost(dsts)); err != nil {
		return engine.Config{}, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if cfg.TLS, err = s.TLS.Configs(dsts, cert); err != nil {
		return engine.Config{}, err
	}
	return cfg, nil
}

// collector consumes the interval snapshots, from the engine or merged from worker processes: the
// timeline, per-stage totals, the latency log, live thresholds, live metrics and progress.
type collector struct {
	s       *spec.Spec
	ramp    schedule.Ramp
	pr      *portRun
	verdict *gate.Gate
	hlog    *report.HLog
	o       Options
	stopRun context.CancelFunc

	stages      []*metrics.Snapshot
	rows        []report.TimelineRow
	err         error
	errorsSoFar uint64
	// requestsSoFar and establishedSoFar tell a run about requests for the progress line.
	requestsSoFar, establishedSoFar uint64
	rated                           bool
	// mem samples the memory of the connections held at the plateau (nil: not in this run).
	mem       *memWatch
	stopped   *report.Stopped
	running   *metrics.Snapshot
	liveStart time.Time
}

func newCollector(s *spec.Spec, pr *portRun, v *gate.Gate, hlog *report.HLog, o Options, stopRun context.CancelFunc) *collector {
	ramp := s.Ramp
	c := &collector{s: s, ramp: ramp, pr: pr, verdict: v, hlog: hlog, o: o, stopRun: stopRun,
		stages: make([]*metrics.Snapshot, len(ramp.Stages)+1), liveStart: time.Now()}
	if v.Live() {
		c.running = metrics.NewSnapshot()
	}
	return c
}

func (c *collector) fail(err error) {
	if err != nil && c.err == nil {
		c.err = err
	}
}

// take handles one interval snapshot; calls come one at a time.
func (c *collector) take(s *metrics.Snapshot) {
	row := report.Row(s)
	row.Ports = c.pr.sample()
	c.rows = append(c.rows, row)
	if s.Stage < 0 || s.Stage >= len(c.stages) {
		c.fail(fmt.Errorf("snapshot %d: stage %d outside the plan", s.Seq, s.Stage))
		return
	}
	if c.stages[s.Stage] == nil {
		c.stages[s.Stage] = metrics.NewSnapshot()
	}
	c.fail(c.stages[s.Stage].Add(s))
	c.fail(c.hlog.Write(s))
	if c.running != nil && c.stopped == nil {
		c.judgeLive(s)
	}
	if c.o.OnPorts != nil && row.Ports != nil {
		c.o.OnPorts(row.Ports)
	}
	if c.o.OnSnapshot != nil {
		c.o.OnSnapshot(s)
	}
	c.count(s)
	c.mem.observe(s.Active, s.EndUS)
	if c.o.Progress != nil {
		c.o.Progress(c.progress(s))
	}
}

// count adds interval s to the running counts the progress line reads.
func (c *collector) count(s *metrics.Snapshot) {
	c.errorsSoFar += s.Errors()
	c.requestsSoFar += s.Requests
	c.establishedSoFar += s.Established
	c.rated = c.rated || s.Hist[metrics.RequestIntended].TotalCount() > 0
}

// progress is the progress line's figures after interval s.
func (c *collector) progress(s *metrics.Snapshot) Progress {
	secs := float64(s.EndUS-s.StartUS) / 1e6
	p99 := func(l metrics.Latency) time.Duration {
		return time.Duration(s.Hist[l].ValueAtQuantile(99)) * time.Microsecond
	}
	pr := Progress{
		Stage: min(s.Stage, len(c.ramp.Stages)), Stages: len(c.ramp.Stages),
		Elapsed: time.Duration(s.EndUS) * time.Microsecond, Total: c.ramp.Total(),
		Active: s.Active, Errors: c.errorsSoFar, IntervalAttempts: s.Attempted,
		ConnectP99: p99(metrics.Connect),
		Rated:      c.rated,
		Requests:   c.rated || c.requestsSoFar > c.establishedSoFar,
		RequestP99: p99(metrics.RTT),
	}
	if c.rated {
		pr.RequestP99 = p99(metrics.RequestIntended)
	}
	if secs > 0 {
		pr.OpenedPerSecond = float64(s.Established) / secs
		pr.RequestsPerSecond = float64(s.Requests) / secs
	}
	return pr
}

// judgeLive judges the abort_on_fail thresholds on the running totals and stops the run when one fails.
func (c *collector) judgeLive(s *metrics.Snapshot) {
	c.fail(c.running.Add(s))
	elapsed := time.Duration(s.EndUS) * time.Microsecond
	live, err := report.Build(report.Input{Plan: c.s.Plan, Host: c.pr.host, Segments: 1, Start: c.liveStart,
		End: c.liveStart.Add(elapsed), Total: c.running, Stages: c.stages[:len(c.ramp.Stages)], Live: true})
	if err != nil {
		return
	}
	hist := func(stage int, latency string) *hdr.Histogram {
		src := c.running
		if stage >= 0 && stage < len(c.ramp.Stages) {
			src = c.stages[stage]
		}
		for l := range metrics.NumLatencies {
			if src != nil && l.String() == latency {
				return src.Hist[l]
			}
		}
		return nil
	}
	if c.stopped = c.verdict.Abort(live, elapsed, hist); c.stopped != nil {
		c.stopRun()
	}
}
