// Package coordinator carries out a plan: it starts the built-in target when the plan asks, runs
// the shard(s), merges their snapshots for live progress and the final result, and writes results.
package coordinator

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	hdr "github.com/HdrHistogram/hdrhistogram-go"

	"github.com/portstorm/portstorm/loadgen/dial"
	"github.com/portstorm/portstorm/loadgen/engine"
	"github.com/portstorm/portstorm/loadgen/gate"
	"github.com/portstorm/portstorm/loadgen/metrics"
	"github.com/portstorm/portstorm/loadgen/plan"
	"github.com/portstorm/portstorm/loadgen/preflight"
	"github.com/portstorm/portstorm/loadgen/report"
	"github.com/portstorm/portstorm/loadgen/schedule"
	"github.com/portstorm/portstorm/target"
)

// ErrInvalid wraps problems with the plan or flags found before any connection (exit code 2).
var ErrInvalid = errors.New("invalid plan or flags")

// ErrCannotRun wraps problems that stop a valid plan from running (exit code 3).
var ErrCannotRun = errors.New("the run could not be carried out")

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
	// OnSnapshot, when set, receives every interval snapshot as it is cut, after the coordinator
	// has used it (live metrics exporters). It must not keep or change the snapshot.
	OnSnapshot func(*metrics.Snapshot)
}

// Progress is what the live progress line shows.
type Progress struct {
	Stage, Stages    int
	Elapsed, Total   time.Duration
	Active           int64
	OpenedPerSecond  float64
	Errors           uint64
	ConnectP99       time.Duration
	IntervalAttempts uint64
}

// Outcome is a finished run: its summary and where its files are.
type Outcome struct {
	Summary *report.Summary
	Dir     string
}

// Run carries out a validated, defaulted plan. Cancelling ctx stops it gracefully: the result is
// still written, marked interrupted.
func Run(ctx context.Context, p *plan.Plan, o Options) (*Outcome, error) {
	if err := unsupported(p); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	verdict, err := gate.Compile(p)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	ramp := Ramp(p)
	pr := newPortRun(p)
	var tgt *target.Server
	var dsts []dial.Destination
	if b := p.Target.Builtin; b != nil {
		mode, err := target.ParseMode(b.Mode)
		if err != nil {
			return nil, fmt.Errorf("%w: target.builtin.mode: %w", ErrInvalid, err)
		}
		listen := make([]string, max(b.Listeners, 1))
		for i := range listen {
			listen[i] = "127.0.0.1:0"
		}
		tgt, err = target.Start(context.Background(), pr.targetConfig(target.Config{
			Listen: listen, Mode: mode, IdleTimeout: b.IdleTimeout.D(), MaxFrame: int(b.MaxFrame),
		}))
		if err != nil {
			return nil, fmt.Errorf("%w: starting the built-in target: %w", ErrCannotRun, err)
		}
		defer tgt.Close()
		dsts, err = dial.Resolve(ctx, nil, tgt.Addrs(), false)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrCannotRun, err)
		}
	} else {
		var err error
		dsts, err = dial.Resolve(ctx, o.Resolver, p.Target.Addresses, p.Target.AllowRemote && o.AllowRemote)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
		}
	}
	// Preflight, source addresses, the port strategy and the observatory.
	if dsts, err = pr.setup(dsts, o.Dialer); err != nil {
		return nil, err
	}

	dir := o.OutDir
	if dir == "" {
		dir = filepath.Join(p.Output.Dir, p.Name+"-"+time.Now().UTC().Format("20060102T150405Z"))
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("%w: results folder: %w", ErrCannotRun, err)
	}
	// latency.hlog is written as intervals are cut, so that a killed run keeps them.
	hlog, err := report.CreateHLog(dir, time.Now())
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCannotRun, err)
	}
	defer hlog.Close()

	dialer := pr.dialer
	closeMode, err := dial.ParseCloseMode(p.Connection.Close)
	if err != nil {
		return nil, fmt.Errorf("%w: connection.close: %w", ErrInvalid, err)
	}
	cfg := engine.Config{
		Ramp: ramp, Destinations: dsts, Dialer: dialer,
		IOTimeout: p.Connection.IOTimeout.D(), Hold: p.Connection.Hold.D(), Close: closeMode,
		MaxInFlight: p.Load.MaxInFlight, Drop: p.Load.OnSaturation == "drop",
		MaxConnectRate: float64(p.Load.MaxConnectRate), GracefulStop: p.Load.GracefulStop.D(),
		Abort: o.Abort, Interval: p.Output.Interval.D(), Ports: pr.obs,
	}
	if p.Load.Model == "arrival" {
		cfg.Model = engine.Arrival
	}
	if s := p.Connection.Send; s != nil {
		cfg.Send = &engine.Send{Bytes: int(s.Bytes), Count: s.Count, Interval: s.Interval.D(), Echo: s.Expect == "echo"}
	}

	stages := make([]*metrics.Snapshot, len(ramp.Stages)+1)
	var rows []report.TimelineRow
	var snapErr error
	var errorsSoFar uint64
	// An abort_on_fail threshold is judged on the running totals after every interval; when one
	// fails, runCtx stops the run as a first signal would (graceful stop), without marking it
	// interrupted.
	runCtx, stopRun := context.WithCancel(ctx)
	defer stopRun()
	var stopped *report.Stopped
	var running *metrics.Snapshot
	if verdict.Live() {
		running = metrics.NewSnapshot()
	}
	host := preflight.ReadHost()
	liveStart := time.Now()
	cfg.OnSnapshot = func(s *metrics.Snapshot) {
		row := report.Row(s)
		row.Ports = pr.sample()
		rows = append(rows, row)
		if stages[s.Stage] == nil {
			stages[s.Stage] = metrics.NewSnapshot()
		}
		if err := stages[s.Stage].Add(s); err != nil && snapErr == nil {
			snapErr = err
		}
		if err := hlog.Write(s); err != nil && snapErr == nil {
			snapErr = err
		}
		if running != nil && stopped == nil {
			if err := running.Add(s); err != nil && snapErr == nil {
				snapErr = err
			}
			elapsed := time.Duration(s.EndUS) * time.Microsecond
			live, err := report.Build(report.Input{Plan: p, Host: host, Segments: 1, Start: liveStart,
				End: liveStart.Add(elapsed), Total: running, Stages: stages[:len(ramp.Stages)], Live: true})
			if err == nil {
				hist := func(stage int, latency string) *hdr.Histogram {
					src := running
					if stage >= 0 && stage < len(ramp.Stages) {
						src = stages[stage]
					}
					for l := range metrics.NumLatencies {
						if src != nil && l.String() == latency {
							return src.Hist[l]
						}
					}
					return nil
				}
				if stopped = verdict.Abort(live, elapsed, hist); stopped != nil {
					stopRun()
				}
			}
		}
		if o.OnSnapshot != nil {
			o.OnSnapshot(s)
		}
		errorsSoFar += s.Errors()
		if o.Progress != nil {
			secs := float64(s.EndUS-s.StartUS) / 1e6
			pr := Progress{
				Stage: min(s.Stage+1, len(ramp.Stages)), Stages: len(ramp.Stages),
				Elapsed: time.Duration(s.EndUS) * time.Microsecond, Total: ramp.Total(),
				Active: s.Active, Errors: errorsSoFar, IntervalAttempts: s.Attempted,
				ConnectP99: time.Duration(s.Hist[metrics.Connect].ValueAtQuantile(99)) * time.Microsecond,
			}
			if secs > 0 {
				pr.OpenedPerSecond = float64(s.Established) / secs
			}
			o.Progress(pr)
		}
	}

	res, err := engine.Run(runCtx, cfg)
	if err != nil && res == nil {
		return nil, fmt.Errorf("%w: %w", ErrCannotRun, err)
	}
	if err == nil {
		err = snapErr
	}
	if err != nil {
		return nil, fmt.Errorf("%w: merging measurements: %w", ErrCannotRun, err)
	}
	var ts *report.TargetStats
	if tgt != nil {
		tgt.Close()
		st := tgt.Stats()
		ts = &report.TargetStats{Accepted: st.Accepted, Peak: st.Peak, Closed: st.Closed,
			BytesIn: st.BytesIn, BytesOut: st.BytesOut, IdleClosed: st.IdleClosed}
	}
	// A threshold's stop cancels runCtx, which the engine reports as an interruption; only a
	// cancelled ctx (a signal) is one.
	interrupted := res.Interrupted && (stopped == nil || ctx.Err() != nil)
	sum, err := report.Build(report.Input{
		Plan: p, Host: host, Segments: 1, Start: res.Start, End: res.End,
		Interrupted: interrupted, Aborted: res.Aborted, Total: res.Total, Stages: stages[:len(ramp.Stages)],
		Target: ts, Ports: pr.report(),
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCannotRun, err)
	}
	sum.Stopped = stopped
	verdict.Judge(sum)
	if err := writeResults(dir, sum, rows, hlog); err != nil {
		return &Outcome{Summary: sum, Dir: dir}, fmt.Errorf("%w: %w", ErrCannotRun, err)
	}
	return &Outcome{Summary: sum, Dir: dir}, nil
}

// writeResults writes every result file; report.html is drawn from the timeline and latency log
// written before it, as `portstorm report` redraws it.
func writeResults(dir string, sum *report.Summary, rows []report.TimelineRow, hlog *report.HLog) error {
	if err := report.WriteTimeline(dir, rows); err != nil {
		return err
	}
	if err := hlog.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", report.HLogFile, err)
	}
	if err := report.WriteSummary(dir, sum); err != nil {
		return err
	}
	if err := report.WriteJUnit(dir, sum); err != nil {
		return err
	}
	return report.WriteHTML(dir, sum)
}

// Ramp is the plan's load stages as a schedule.
func Ramp(p *plan.Plan) schedule.Ramp {
	r := schedule.Ramp{Start: p.Load.Start, Stages: make([]schedule.Stage, len(p.Load.Stages))}
	for i, s := range p.Load.Stages {
		r.Stages[i] = schedule.Stage{Duration: s.Duration.D(), Target: s.Target}
	}
	return r
}

// unsupported refuses plan features this build parses but cannot carry out yet, rather than
// silently ignoring them.
func unsupported(p *plan.Plan) error {
	var missing []string
	if len(missing) > 0 {
		return fmt.Errorf("not supported by this build yet: %s", strings.Join(missing, ", "))
	}
	return nil
}
