package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/portstorm/portstorm/loadgen/coordinator"
	"github.com/portstorm/portstorm/loadgen/isolate"
	"github.com/portstorm/portstorm/loadgen/metrics"
	"github.com/portstorm/portstorm/loadgen/plan"
	"github.com/portstorm/portstorm/loadgen/ports"
	"github.com/portstorm/portstorm/loadgen/report"
	"github.com/portstorm/portstorm/loadgen/schedule"
	"github.com/portstorm/portstorm/loadgen/spec"
)

// Exit codes (docs/results.md): what users' CI scripts branch on.
const (
	exitPass        = 0
	exitFail        = 1
	exitInvalid     = 2
	exitCannotRun   = 3
	exitInterrupted = 130
)

// exitError carries an exit code through cobra.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func exitWith(code int, err error) error { return &exitError{code: code, err: err} }

// env is what a command needs from the process, injected so tests run it in-process.
type env struct {
	environ        []string
	stdin          io.Reader // a worker's start instant comes in here (--start-at ready)
	stdout, stderr io.Writer
	signals        <-chan os.Signal
	// isTerminal reports whether stdout is a terminal (live progress line) or not (a line every 5 s).
	isTerminal bool
	// onSnapshot receives every interval snapshot of a run (the --metrics-listen exporter).
	onSnapshot func(*metrics.Snapshot)
	// onPorts receives every interval's port sample (the exporter's port figures).
	onPorts func(*ports.Sample)
}

// Main runs portstorm with args and returns the exit code.
func Main(args, environ []string, stdout, stderr io.Writer, signals <-chan os.Signal) int {
	e := &env{environ: environ, stdin: os.Stdin, stdout: stdout, stderr: stderr, signals: signals}
	if f, ok := stdout.(*os.File); ok {
		e.isTerminal = term.IsTerminal(int(f.Fd()))
	}
	root := &cobra.Command{
		Use:           "portstorm",
		Short:         "Stress-test TCP connection capacity: connection storms, held connections, ephemeral ports",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return exitWith(exitInvalid, flagError(c, err))
	})
	root.AddCommand(runCmd(e), validateCmd(e), targetCmd(e), versionCmd(e), compareCmd(e), reportCmd(e), doctorCmd(e), mergeCmd(e), k8sCmd(e), searchCmd(e))
	addCompletions(root)
	err := root.Execute()
	if err == nil {
		return exitPass
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.err != nil {
			fmt.Fprintf(stderr, "portstorm: %v\n", ee.err)
		}
		return ee.code
	}
	// cobra's own errors: unknown command, wrong argument count.
	fmt.Fprintf(stderr, "portstorm: %v\n", err)
	return exitInvalid
}

// ownEnv are the PORTSTORM_ variables that are not plan settings, so not warned about: portstorm's
// own, and those its test suite sets (.ci/run exports them; tests start portstorm with them).
var ownEnv = []string{cpuProfileEnv, "PORTSTORM_LONG_TESTS", "PORTSTORM_REAL_SERVERS"}

type planFlags struct {
	sets []string
}

func (f *planFlags) add(c *cobra.Command) {
	c.Flags().StringArrayVar(&f.sets, "set", nil, "override a plan key: --set load.model=arrival, load.stages[0].target=50, baseline=null removes (repeatable; YAML values)")
}

// loadPlan loads, defaults and validates a plan; every problem is reported at once with exit code 2:
// the strict pass's (unknown keys, wrong types) and the checks of the values that did decode.
//
// A PORTSTORM_ variable that names no setting (a misspelt override) gets a warning on stderr; not
// in the child a private namespace runs, whose parent warned already.
func (f *planFlags) loadPlan(e *env, path string) (*plan.Plan, error) {
	if !isolate.IsChild(e.environ) {
		for _, w := range plan.UnknownEnv(e.environ, ownEnv...) {
			fmt.Fprintf(e.stderr, "portstorm: warning: %s\n", w)
		}
	}
	p, err := plan.LoadFile(path, plan.Overrides{Sets: f.sets, Env: e.environ})
	if p == nil {
		return nil, exitWith(exitInvalid, err)
	}
	var errs []error
	var strict plan.Errors
	if errors.As(err, &strict) {
		errs = strict.Unwrap()
	} else if err != nil {
		errs = []error{err}
	}
	p.Defaults()
	errs = append(errs, p.Validate()...)
	// The gate checks what the plan package cannot: threshold expressions and the baseline.
	for _, err := range spec.GateErrors(p) {
		var fe *plan.FieldError
		if errors.As(err, &fe) && p.Undecoded(fe.Field) {
			continue // the strict pass reported this field
		}
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		msgs := make([]string, len(errs))
		for i, err := range errs {
			msgs[i] = err.Error()
		}
		return nil, exitWith(exitInvalid, fmt.Errorf("%d problem(s) in the plan:\n%s", len(errs), strings.Join(msgs, "\n")))
	}
	return p, nil
}

func validateCmd(e *env) *cobra.Command {
	var pf planFlags
	c := &cobra.Command{
		Use:   "validate PLAN",
		Short: "Check a plan without running it (exit 0 valid, 2 invalid)",
		Args:  exactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			p, err := pf.loadPlan(e, args[0])
			if err != nil {
				return err
			}
			if sr := p.Search; sr != nil {
				fmt.Fprintf(e.stdout, "%s: valid search plan %q (%s from %v to %v, probes of %s; portstorm search runs it)\n",
					args[0], p.Name, sr.Dimension, sr.Min, sr.Max, sr.Probe)
				return nil
			}
			fmt.Fprintf(e.stdout, "%s: valid plan %q (%s model, %d stage(s), %s)\n",
				args[0], p.Name, p.Load.Model, len(p.Load.Stages), spec.Ramp(p).Total())
			return nil
		},
	}
	pf.add(c)
	return c
}

func exactArgs(n int) cobra.PositionalArgs {
	return func(c *cobra.Command, args []string) error {
		if len(args) != n {
			return exitWith(exitInvalid, fmt.Errorf("%s takes %d argument(s), got %d\nusage: %s", c.Name(), n, len(args), c.UseLine()))
		}
		return nil
	}
}

func runCmd(e *env) *cobra.Command {
	var pf planFlags
	var out string
	var quiet, allowRemote bool
	var live liveFlags
	var netns bool
	var worker, startAt string
	var seg segmentFlags
	var calibrate bool
	c := &cobra.Command{
		Use:   "run PLAN",
		Short: "Run a plan and write results (exit 0 pass, 1 threshold failed, 2 invalid, 3 could not run, 130 interrupted)",
		Args:  exactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			// Signals count from here: one that comes while the plan is loaded or the run set up
			// ends the command at once (130), stopping what it had started.
			in := e.watchSignals()
			defer in.stop()
			if worker != "" {
				// A coordinator's worker: its argument is its segment of the run spec, not a plan.
				return e.runWorker(in, args[0], worker, startAt, allowRemote)
			}
			if netns {
				pf.sets = append(pf.sets, "isolate=true")
			}
			p, err := pf.loadPlan(e, args[0])
			if err != nil {
				return err
			}
			if p.Search != nil {
				return exitWith(exitInvalid, fmt.Errorf("%s is a capacity search (it has a search: section); run it with portstorm search", args[0]))
			}
			if err := in.beforeRun(); err != nil {
				return err
			}
			if seg.upload != "" && !seg.asked() {
				return exitWith(exitInvalid, errors.New("--upload sends a segment's shard folder: it needs --segment"))
			}
			if seg.asked() && calibrate {
				return exitWith(exitInvalid, errors.New("--calibrate: a segment's result is merged, and a merged result keeps no calibration (baseline.normalize needs a run on one machine)"))
			}
			if seg.asked() {
				s, err := e.compile(p)
				if err != nil {
					return err
				}
				return e.runSegment(in, s, &seg, &live, out, startAt, quiet, allowRemote)
			}
			s, done, err := e.isolated(in, c, args, p)
			if done {
				return err
			}
			// --calibrate asks what baseline.normalize: calibration does (the spec's decision).
			s.Calibrate = s.Calibrate || calibrate
			lv, err := live.start(e, s.Name)
			if err != nil {
				return err
			}
			if err := in.beforeRun(); err != nil {
				lv.end(in.ctx, nil)
				return err
			}
			res, err := e.run(in, s, out, quiet, allowRemote)
			lv.end(in.ctx, res)
			return err
		},
	}
	pf.add(c)
	live.add(c)
	c.Flags().StringVar(&out, "out", "", "results folder (default <output.dir>/<name>-<UTC time>)")
	c.Flags().BoolVarP(&quiet, "quiet", "q", false, "no live progress; only the final summary")
	c.Flags().BoolVar(&allowRemote, "allow-remote", false, "permit targets outside loopback (the plan must say target.allow_remote: true too)")
	c.Flags().BoolVar(&netns, "netns", false, "run generator and built-in target in a private network namespace (as isolate: true)")
	c.Flags().BoolVar(&calibrate, "calibrate", false, "measure this host's reference before the run and keep it in summary.json's calibration, for a baseline compared with baseline.normalize: calibration")
	// A coordinator starts its worker processes with these: run segment i/N from an agreed instant
	// and stream snapshots on stdout instead of writing results.
	c.Flags().StringVar(&worker, "worker", "", "run as a worker process for segment i/N (internal)")
	c.Flags().StringVar(&startAt, "start-at", "", "with --segment, the RFC 3339 instant every segment starts its schedule (default now)")
	c.Flags().MarkHidden("worker")
	seg.add(c)
	return c
}

// runWorker runs one segment for a coordinator: snapshots go to stdout, messages to stderr. With
// --start-at ready, the worker says on stdout when it is set up and reads its start instant from
// stdin: the coordinator then starts all its workers as soon as the slowest is ready.
func (e *env) runWorker(in *interrupts, specFile, segment, startAt string, allowRemote bool) error {
	seg, err := schedule.ParseSegment(segment)
	if err != nil {
		return exitWith(exitInvalid, fmt.Errorf("--worker: %w", err))
	}
	s, err := spec.ReadFile(specFile)
	if err != nil {
		return exitWith(exitInvalid, fmt.Errorf("--worker: %w", err))
	}
	if err := in.beforeRun(); err != nil {
		return err
	}
	o, err := e.workerStart(startAt)
	if err != nil {
		return exitWith(exitInvalid, err)
	}
	o.AllowRemote, o.Abort = allowRemote, in.abort
	if err := coordinator.RunWorker(in.ctx, s, seg, o, e.stdout); err != nil {
		if errors.Is(err, coordinator.ErrInvalid) {
			return exitWith(exitInvalid, err)
		}
		return exitWith(exitCannotRun, err)
	}
	return nil
}

// workerStart reads a worker's --start-at: an RFC 3339 instant, "ready" (the instant comes on
// stdin), or nothing (at once).
func (e *env) workerStart(startAt string) (coordinator.WorkerOptions, error) {
	var o coordinator.WorkerOptions
	switch startAt {
	case "":
	case coordinator.StartAtReady:
		o.StartFrom = e.stdin
		if o.StartFrom == nil {
			o.StartFrom = strings.NewReader("") // no stdin: the worker ends, saying why
		}
	default:
		at, err := time.Parse(time.RFC3339Nano, startAt)
		if err != nil {
			return o, fmt.Errorf("--start-at %q: want an RFC 3339 time or %q: %w", startAt, coordinator.StartAtReady, err)
		}
		o.StartAt = at
	}
	return o, nil
}

// interrupts are a command's SIGINT/SIGTERM: the first cancels ctx (before the run begins: end at
// once; during it: stop starting work, drain, write results), the second closes abort (cut what is
// in flight). got receives them as they come, for a parent that forwards them (--netns).
type interrupts struct {
	ctx   context.Context
	abort chan struct{}
	got   chan os.Signal
	stop  func()
}

// watchSignals starts acting on e.signals; stop ends that.
func (e *env) watchSignals() *interrupts {
	ctx, cancel := context.WithCancel(context.Background())
	in := &interrupts{ctx: ctx, abort: make(chan struct{}), got: make(chan os.Signal, 2)}
	done := make(chan struct{})
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		for n := 0; ; n++ {
			select {
			case s := <-e.signals:
				select {
				case in.got <- s:
				default:
				}
				if n == 0 {
					fmt.Fprintf(e.stderr, "\nportstorm: %v: stopping; draining connections (again to cut them)\n", s)
					cancel()
				} else {
					fmt.Fprintf(e.stderr, "portstorm: %v: cutting in-flight connections\n", s)
					close(in.abort)
					return
				}
			case <-done:
				return
			}
		}
	}()
	in.stop = func() { close(done); <-exited; cancel() }
	return in
}

// beforeRun is the exit of a command interrupted before its run began, or nil.
func (in *interrupts) beforeRun() error {
	if in.ctx.Err() != nil {
		return exitWith(exitInterrupted, coordinator.ErrInterrupted)
	}
	return nil
}

// compile is the plan's spec on this host; its problems are exit 2.
func (e *env) compile(p *plan.Plan) (*spec.Spec, error) {
	s, err := spec.Compile(p, coordinator.Facts(e.environ))
	if err != nil {
		return nil, exitWith(exitInvalid, fmt.Errorf("%w: %w", coordinator.ErrInvalid, err))
	}
	return s, nil
}

// isolated compiles p and carries out its isolation (e.isolate): done is true when the run took
// place in a child, in its own namespace, or could not. Inside the namespace the plan is compiled
// again: the namespace's sysctls are facts of the host the run sees.
func (e *env) isolated(in *interrupts, c *cobra.Command, args []string, p *plan.Plan) (s *spec.Spec, done bool, err error) {
	if s, err = e.compile(p); err != nil {
		return nil, true, err
	}
	if done, err = e.isolate(in, c, args, s.Isolate); done || s.Isolate == nil {
		return s, done, err
	}
	s, err = e.compile(p)
	return s, err != nil, err
}

// run runs the spec; the outcome (nil when there is none) is for the metrics' end.
func (e *env) run(in *interrupts, s *spec.Spec, out string, quiet, allowRemote bool) (*coordinator.Outcome, error) {
	prog := newProgress(e.stdout, e.isTerminal, quiet)
	res, err := coordinator.Run(in.ctx, s, coordinator.Options{
		OutDir: out, AllowRemote: allowRemote, Abort: in.abort, Progress: prog.update, OnSnapshot: e.onSnapshot,
		OnPorts: e.onPorts, Stderr: e.stderr, Env: e.environ,
	})
	prog.finish()
	e.writeOutcome(res)
	return res, outcomeExit(res, err)
}

// writeOutcome prints a run's (or a merge's) text summary, and on stderr, where CI logs show it,
// the warning of a run that most connections failed while nothing judged it.
func (e *env) writeOutcome(res *coordinator.Outcome) {
	if res == nil {
		return
	}
	report.WriteText(e.stdout, res.Summary, res.Dir)
	if w := report.MostFailed(res.Summary); w != "" {
		fmt.Fprintf(e.stderr, "portstorm: WARNING: %s\n", w)
	}
}

// outcomeExit maps a run's (or a merge's) outcome to its exit code.
func outcomeExit(res *coordinator.Outcome, err error) error {
	switch {
	case errors.Is(err, coordinator.ErrInvalid), errors.Is(err, coordinator.ErrShards):
		return exitWith(exitInvalid, err)
	case errors.Is(err, coordinator.ErrInterrupted):
		return exitWith(exitInterrupted, err)
	case err != nil:
		return exitWith(exitCannotRun, err)
	}
	s := res.Summary
	switch {
	case len(s.WorkerFailures) > 0:
		msgs := make([]string, len(s.WorkerFailures))
		for i, f := range s.WorkerFailures {
			msgs[i] = fmt.Sprintf("%s (pid %d) ended at %.1fs: %s %s", f.Worker, f.PID, f.AtS, f.Status, f.Message)
		}
		return exitWith(exitCannotRun, fmt.Errorf("worker process(es) failed; results hold what was measured:\n  %s", strings.Join(msgs, "\n  ")))
	case len(s.TargetFailures) > 0:
		msgs := make([]string, len(s.TargetFailures))
		for i, f := range s.TargetFailures {
			msgs[i] = fmt.Sprintf("%s (pid %d) ended at %.1fs: %s %s", f.Target, f.PID, f.AtS, f.Status, f.Message)
		}
		return exitWith(exitCannotRun, fmt.Errorf("built-in target process(es) failed; results hold what was measured:\n  %s", strings.Join(msgs, "\n  ")))
	case s.Interrupted:
		return exitWith(exitInterrupted, errors.New("interrupted; results written, marked interrupted"))
	case s.Unreachable != nil:
		return exitWith(exitCannotRun, fmt.Errorf("%s; results written", s.Unreachable.Message()))
	case s.Connections.Attempted > 0 && s.Connections.Established == 0:
		return exitWith(exitCannotRun, fmt.Errorf("target unreachable: none of %d connection attempts succeeded", s.Connections.Attempted))
	case s.Verdict == report.VerdictError:
		return exitWith(exitCannotRun, fmt.Errorf("verdict error: %s", report.Untrusted(s)))
	case s.Verdict == report.VerdictFail:
		return exitWith(exitFail, verdictError(s))
	}
	return nil
}
