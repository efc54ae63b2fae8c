package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/portstorm/portstorm/loadgen/coordinator"
	"github.com/portstorm/portstorm/loadgen/gate"
	"github.com/portstorm/portstorm/loadgen/metrics"
	"github.com/portstorm/portstorm/loadgen/plan"
	"github.com/portstorm/portstorm/loadgen/report"
	"github.com/portstorm/portstorm/target"
)

// Exit codes (design §7): what users' CI scripts branch on.
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
	stdout, stderr io.Writer
	signals        <-chan os.Signal
	// isTerminal reports whether stdout is a terminal (live progress line) or not (a line every 5 s).
	isTerminal bool
	// onSnapshot receives every interval snapshot of a run (the --metrics-listen exporter).
	onSnapshot func(*metrics.Snapshot)
}

// Main runs portstorm with args and returns the exit code.
func Main(args, environ []string, stdout, stderr io.Writer, signals <-chan os.Signal) int {
	e := &env{environ: environ, stdout: stdout, stderr: stderr, signals: signals}
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
		return exitWith(exitInvalid, fmt.Errorf("%w\nsee '%s --help'", err, c.CommandPath()))
	})
	root.AddCommand(runCmd(e), validateCmd(e), targetCmd(e), versionCmd(e), compareCmd(e), reportCmd(e), doctorCmd(e))
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

type planFlags struct {
	sets []string
}

func (f *planFlags) add(c *cobra.Command) {
	c.Flags().StringArrayVar(&f.sets, "set", nil, "override a plan key: --set load.model=arrival (repeatable; YAML values)")
}

// loadPlan loads, defaults and validates a plan; every problem is reported at once with exit code 2.
func (f *planFlags) loadPlan(e *env, path string) (*plan.Plan, error) {
	p, err := plan.LoadFile(path, plan.Overrides{Sets: f.sets, Env: e.environ})
	if err != nil {
		return nil, exitWith(exitInvalid, err)
	}
	p.Defaults()
	// The gate checks what the plan package cannot: threshold expressions and the baseline.
	if errs := append(p.Validate(), gate.ValidatePlan(p)...); len(errs) > 0 {
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
			fmt.Fprintf(e.stdout, "%s: valid plan %q (%s model, %d stage(s), %s)\n",
				args[0], p.Name, p.Load.Model, len(p.Load.Stages), coordinator.Ramp(p).Total())
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
	c := &cobra.Command{
		Use:   "run PLAN",
		Short: "Run a plan and write results (exit 0 pass, 1 threshold failed, 2 invalid, 3 could not run, 130 interrupted)",
		Args:  exactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			if netns {
				pf.sets = append(pf.sets, "isolate=true")
			}
			p, err := pf.loadPlan(e, args[0])
			if err != nil {
				return err
			}
			if done, err := e.isolate(c, args, p); done {
				return err
			}
			stop, err := live.start(e, p)
			if err != nil {
				return err
			}
			defer stop()
			return e.run(p, out, quiet, allowRemote)
		},
	}
	pf.add(c)
	live.add(c)
	c.Flags().StringVar(&out, "out", "", "results folder (default <output.dir>/<name>-<UTC time>)")
	c.Flags().BoolVarP(&quiet, "quiet", "q", false, "no live progress; only the final summary")
	c.Flags().BoolVar(&allowRemote, "allow-remote", false, "permit targets outside loopback (the plan must say target.allow_remote: true too)")
	c.Flags().BoolVar(&netns, "netns", false, "run generator and built-in target in a private network namespace (as isolate: true)")
	return c
}

func (e *env) run(p *plan.Plan, out string, quiet, allowRemote bool) error {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	abort := make(chan struct{})
	done := make(chan struct{})
	defer close(done)
	go func() {
		// First signal: stop starting work, drain, write results. Second: cut what is in flight.
		for n := 0; ; n++ {
			select {
			case s := <-e.signals:
				if n == 0 {
					fmt.Fprintf(e.stderr, "\nportstorm: %v: stopping; draining connections (again to cut them)\n", s)
					cancel()
				} else {
					fmt.Fprintf(e.stderr, "portstorm: %v: cutting in-flight connections\n", s)
					close(abort)
					return
				}
			case <-done:
				return
			}
		}
	}()
	prog := newProgress(e.stdout, e.isTerminal, quiet)
	res, err := coordinator.Run(ctx, p, coordinator.Options{
		OutDir: out, AllowRemote: allowRemote, Abort: abort, Progress: prog.update, OnSnapshot: e.onSnapshot,
	})
	prog.finish()
	if res != nil {
		report.WriteText(e.stdout, res.Summary, res.Dir)
	}
	switch {
	case errors.Is(err, coordinator.ErrInvalid):
		return exitWith(exitInvalid, err)
	case err != nil:
		return exitWith(exitCannotRun, err)
	}
	s := res.Summary
	switch {
	case s.Interrupted:
		return exitWith(exitInterrupted, errors.New("interrupted; results written, marked interrupted"))
	case s.Connections.Attempted > 0 && s.Connections.Established == 0:
		return exitWith(exitCannotRun, fmt.Errorf("target unreachable: none of %d connection attempts succeeded", s.Connections.Attempted))
	case s.Verdict == "fail":
		return exitWith(exitFail, verdictError(s))
	}
	return nil
}

func targetCmd(e *env) *cobra.Command {
	var listen []string
	var mode string
	var idle time.Duration
	var maxFrame int
	var allowRemote bool
	c := &cobra.Command{
		Use:   "target",
		Short: "Run the built-in target server until interrupted",
		Args:  exactArgs(0),
		RunE: func(c *cobra.Command, args []string) error {
			m, err := target.ParseMode(mode)
			if err != nil {
				return exitWith(exitInvalid, err)
			}
			srv, err := target.Start(context.Background(), target.Config{
				Listen: listen, Mode: m, IdleTimeout: idle, MaxFrame: maxFrame, AllowRemote: allowRemote,
			})
			if err != nil {
				return exitWith(exitInvalid, err)
			}
			for _, a := range srv.Addrs() {
				fmt.Fprintf(e.stdout, "portstorm target: %s listening on %s\n", m, a)
			}
			<-e.signals
			srv.Close()
			st := srv.Stats()
			fmt.Fprintf(e.stdout, "portstorm target: accepted %d, peak %d, bytes in %d, out %d, idle-closed %d\n",
				st.Accepted, st.Peak, st.BytesIn, st.BytesOut, st.IdleClosed)
			return nil
		},
	}
	c.Flags().StringArrayVar(&listen, "listen", []string{"127.0.0.1:0"}, "listen address (repeatable)")
	c.Flags().StringVar(&mode, "mode", "echo", "echo, sink, hold, close or rst")
	c.Flags().DurationVar(&idle, "idle-timeout", 60*time.Second, "close connections silent for this long")
	c.Flags().IntVar(&maxFrame, "max-frame", 64<<10, "largest read echoed at once, bytes")
	c.Flags().BoolVar(&allowRemote, "allow-remote", false, "permit listening outside loopback")
	return c
}

func versionCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  exactArgs(0),
		Run: func(c *cobra.Command, args []string) {
			v := "(devel)"
			if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
				v = bi.Main.Version
			}
			fmt.Fprintf(e.stdout, "portstorm %s\n", v)
		},
	}
}
