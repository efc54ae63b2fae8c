package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/portstorm/portstorm/loadgen/coordinator"
	"github.com/portstorm/portstorm/loadgen/exporter"
	"github.com/portstorm/portstorm/loadgen/gate"
	"github.com/portstorm/portstorm/loadgen/plan"
	"github.com/portstorm/portstorm/loadgen/report"
)

// verdictError says why a run failed its gate, for the exit-1 message.
func verdictError(s *report.Summary) error {
	var parts []string
	if st := s.Stopped; st != nil {
		parts = append(parts, fmt.Sprintf("stopped at %.2fs by abort_on_fail threshold %q (observed %s)", st.AtS, st.Threshold, st.Observed))
	}
	var failed []string
	for _, t := range s.Thresholds {
		if !t.Pass {
			failed = append(failed, fmt.Sprintf("%q (observed %s)", t.Expr, t.Observed))
		}
	}
	if len(failed) > 0 {
		parts = append(parts, fmt.Sprintf("%d threshold(s) failed: %s", len(failed), strings.Join(failed, ", ")))
	}
	if b := s.Baseline; b != nil && !b.Pass {
		var reg []string
		for _, c := range b.Checks {
			if !c.Pass {
				reg = append(reg, c.Metric)
			}
		}
		parts = append(parts, fmt.Sprintf("regression against the baseline %s: %s", b.File, strings.Join(reg, ", ")))
	}
	if len(parts) == 0 {
		parts = append(parts, "the run failed its gate")
	}
	return errors.New(strings.Join(parts, "; "))
}

// readResult reads a summary.json, or the one in a results folder.
func readResult(path string) (*report.Summary, string, error) {
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		path = filepath.Join(path, "summary.json")
	}
	s, err := report.ReadSummary(path)
	return s, path, err
}

func compareCmd(e *env) *cobra.Command {
	var maxReg, normalize string
	var names []string
	c := &cobra.Command{
		Use:   "compare BASELINE NEW",
		Short: "Compare a result with a baseline (summary.json files or results folders; exit 0 pass, 1 regression, 2 bad input)",
		Long: `Compare a result with a baseline. Counts (connections, outcomes, errors) must match exactly;
latencies may be worse by at most --max-regression, rates lower by at most it. Without --metric, the
declared default set is compared (see the README's "Baselines" section).`,
		Args: exactArgs(2),
		RunE: func(c *cobra.Command, args []string) error {
			tol, err := plan.ParsePercent(maxReg)
			if err != nil || tol < 0 {
				return exitWith(exitInvalid, fmt.Errorf("--max-regression %q: want a percentage of 0%% or more, like 10%%", maxReg))
			}
			base, basePath, err := readResult(args[0])
			if err != nil {
				return exitWith(exitInvalid, fmt.Errorf("baseline: %w", err))
			}
			cur, curPath, err := readResult(args[1])
			if err != nil {
				return exitWith(exitInvalid, fmt.Errorf("new result: %w", err))
			}
			if normalize != "" && normalize != plan.NormalizeCalibration {
				return exitWith(exitInvalid, fmt.Errorf("--normalize %q: want %s", normalize, plan.NormalizeCalibration))
			}
			res, err := gate.Compare(base, cur, gate.CompareOptions{MaxRegression: float64(tol), Metrics: names, Normalize: normalize})
			if err != nil {
				if normalize != "" && strings.Contains(err.Error(), "no calibration") {
					return exitWith(exitInvalid, fmt.Errorf("--normalize: %w", err))
				}
				return exitWith(exitInvalid, fmt.Errorf("--metric: %w", err))
			}
			res.File = basePath
			writeComparison(e.stdout, res, curPath)
			if !res.Pass {
				return exitWith(exitFail, fmt.Errorf("regression against the baseline %s", basePath))
			}
			return nil
		},
	}
	c.Flags().StringVar(&maxReg, "max-regression", "10%", "how much worse a latency (or lower a rate) may be; counts compare exactly")
	c.Flags().StringArrayVar(&names, "metric", nil, "compare this metric (repeatable; names as in thresholds, like connect.p99); default: the declared set")
	c.Flags().StringVar(&normalize, "normalize", "", "calibration: compare latencies and achieved rates as multiples of each result's calibration unit (both need summary.json's calibration)")
	return c
}

func writeComparison(w io.Writer, r *report.BaselineResult, cur string) {
	fmt.Fprintf(w, "portstorm compare: %s (baseline %q, started %s) vs %s\n", r.File, r.Name, r.StartedAt, cur)
	head := []string{"metric", "baseline", "new", "delta", "tolerance", "result"}
	rows := [][]string{head}
	failed := 0
	for _, c := range r.Checks {
		res := "pass"
		if !c.Pass {
			res = "FAIL"
			failed++
		}
		rows = append(rows, []string{c.Metric, c.Base, c.New, c.Delta, c.Tolerance, res})
	}
	widths := make([]int, len(head))
	for _, row := range rows {
		for i, cell := range row {
			widths[i] = max(widths[i], len([]rune(cell)))
		}
	}
	for _, row := range rows {
		var b strings.Builder
		b.WriteString("  ")
		for i, cell := range row {
			b.WriteString(cell)
			if i < len(row)-1 {
				b.WriteString(strings.Repeat(" ", widths[i]-len([]rune(cell))+2))
			}
		}
		fmt.Fprintln(w, b.String())
	}
	for _, n := range r.Notes {
		fmt.Fprintf(w, "  note: %s\n", n)
	}
	verdict := "PASS"
	if !r.Pass {
		verdict = "FAIL"
	}
	fmt.Fprintf(w, "compare: %s: %d of %d check(s) regressed\n", verdict, failed, len(r.Checks))
}

func reportCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "report RESULT_DIR",
		Short: "Re-render the text summary, report.html and junit.xml of a saved result (from summary.json, timeline.csv and latency.hlog)",
		Args:  exactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			dir := args[0]
			s, _, err := readResult(dir)
			if err != nil {
				return exitWith(exitInvalid, err)
			}
			if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
				dir = filepath.Dir(dir)
			}
			report.WriteText(e.stdout, s, dir)
			report.WriteSearchText(e.stdout, s.Search) // a search's folder: its probes and answer
			// junit.xml, which CI reads for the verdict, last: a report that fails leaves it as it was.
			if err := report.WriteHTML(dir, s); err != nil {
				return exitWith(exitCannotRun, err)
			}
			if err := report.WriteJUnit(dir, s); err != nil {
				return exitWith(exitCannotRun, err)
			}
			fmt.Fprintf(e.stdout, "  wrote        %s, %s\n", filepath.Join(dir, report.HTMLFile), filepath.Join(dir, report.JUnitFile))
			return nil
		},
	}
}

// liveFlags are run's Prometheus flags: the endpoint, its linger after the run, and pushes to a
// Pushgateway.
type liveFlags struct {
	listen      string
	allowRemote bool
	linger      time.Duration
	push        string
	pushEvery   time.Duration
	pushJob     string
	pushLabels  []string
}

func (f *liveFlags) add(c *cobra.Command) {
	c.Flags().StringVar(&f.listen, "metrics-listen", "", "serve live Prometheus metrics on this address during the run, like 127.0.0.1:9464 (off by default)")
	c.Flags().BoolVar(&f.allowRemote, "metrics-allow-remote", false, "permit --metrics-listen outside loopback")
	c.Flags().DurationVar(&f.linger, "metrics-linger", 0, "with --metrics-listen, keep serving the final figures this long after the run, like 30s (a signal ends it early)")
	c.Flags().StringVar(&f.push, "metrics-push", "", "push the figures to this Prometheus Pushgateway at the run's end, like http://127.0.0.1:9091")
	c.Flags().DurationVar(&f.pushEvery, "metrics-push-interval", 0, "with --metrics-push, push also every this much run time, like 10s (default: only at the end)")
	c.Flags().StringVar(&f.pushJob, "metrics-push-job", exporter.DefaultJob, "with --metrics-push, the job label of the pushed group")
	c.Flags().StringArrayVar(&f.pushLabels, "metrics-push-label", nil, "with --metrics-push, a grouping label name=value of the pushed group (repeatable), like instance=runner-3")
}

// check reports a problem with the flags, naming the flag (exit 2).
func (f *liveFlags) check() error {
	switch {
	case f.linger < 0:
		return fmt.Errorf("--metrics-linger %s: want 0 or more", f.linger)
	case f.linger > 0 && f.listen == "":
		return errors.New("--metrics-linger keeps the --metrics-listen endpoint up after the run: it needs --metrics-listen")
	case f.pushEvery < 0:
		return fmt.Errorf("--metrics-push-interval %s: want 0 or more", f.pushEvery)
	case f.push == "" && (f.pushEvery != 0 || len(f.pushLabels) > 0 || f.pushJob != exporter.DefaultJob):
		return errors.New("--metrics-push-interval, --metrics-push-job and --metrics-push-label need --metrics-push")
	case f.push != "" && f.pushJob == "":
		return errors.New("--metrics-push-job: want a job name")
	}
	return nil
}

// live is a run's Prometheus side: the exporter with its endpoint and pushes.
type live struct {
	f   *liveFlags
	e   *env
	ex  *exporter.Exporter
	srv *exporter.Server
}

// start serves the metrics endpoint of the run named name and starts the pushes when asked; grouping are push grouping
// labels of portstorm's own (a segment's). A nil live (nothing asked) is valid: its end does nothing.
func (f *liveFlags) start(e *env, name string, grouping ...[2]string) (*live, error) {
	if err := f.check(); err != nil {
		return nil, exitWith(exitInvalid, err)
	}
	if f.listen == "" && f.push == "" {
		return nil, nil
	}
	l := &live{f: f, e: e, ex: exporter.New(name)}
	if f.push != "" {
		for _, kv := range f.pushLabels {
			k, v, _ := strings.Cut(kv, "=")
			grouping = append(grouping, [2]string{k, v})
		}
		err := l.ex.StartPush(exporter.PushConfig{URL: f.push, Job: f.pushJob, Grouping: grouping, Every: f.pushEvery,
			Warn: func(err error) { fmt.Fprintf(e.stderr, "portstorm: warning: metrics push: %v\n", err) }})
		if err != nil {
			return nil, exitWith(exitInvalid, err)
		}
	}
	if f.listen != "" {
		srv, err := exporter.Serve(f.listen, f.allowRemote, l.ex.Handler())
		if err != nil {
			l.ex.PushFinal(context.Background()) // ends the push goroutine; nothing ran yet
			return nil, exitWith(exitInvalid, err)
		}
		l.srv = srv
		fmt.Fprintf(e.stderr, "portstorm: serving Prometheus metrics on http://%s/metrics\n", srv.Addr())
	}
	e.onSnapshot, e.onPorts = l.ex.Observe, l.ex.ObservePorts
	return l, nil
}

// end takes the run's outcome (nil when it has none), pushes the final figures, keeps the endpoint
// up for --metrics-linger unless the run was interrupted (ctx ends the linger early: a signal),
// then closes it. The exit code stays the run's: a failed push is a warning.
func (l *live) end(ctx context.Context, res *coordinator.Outcome) {
	if l == nil {
		return
	}
	l.e.onSnapshot, l.e.onPorts = nil, nil
	var s *report.Summary
	if res != nil {
		s = res.Summary
	}
	l.ex.Finish(s)
	if err := l.ex.PushFinal(context.WithoutCancel(ctx)); err != nil {
		fmt.Fprintf(l.e.stderr, "portstorm: warning: metrics push: %v\n", err)
	} else if l.f.push != "" {
		fmt.Fprintf(l.e.stderr, "portstorm: pushed the final metrics to %s\n", l.f.push)
	}
	if l.srv == nil {
		return
	}
	if l.f.linger > 0 && ctx.Err() == nil && (s == nil || !s.Interrupted) {
		fmt.Fprintf(l.e.stderr, "portstorm: serving the final metrics on http://%s/metrics for %s (a signal ends it)\n", l.srv.Addr(), l.f.linger)
		if errors.Is(l.srv.Linger(ctx, l.f.linger), exporter.ErrLingerCut) {
			fmt.Fprintln(l.e.stderr, "portstorm: metrics linger ended by a signal")
		}
		return
	}
	l.srv.Close()
}
