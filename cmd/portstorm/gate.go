package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

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
	var maxReg string
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
			res, err := gate.Compare(base, cur, gate.CompareOptions{MaxRegression: float64(tol), Metrics: names})
			if err != nil {
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

// liveFlags are run's Prometheus endpoint flags.
type liveFlags struct {
	listen      string
	allowRemote bool
}

func (f *liveFlags) add(c *cobra.Command) {
	c.Flags().StringVar(&f.listen, "metrics-listen", "", "serve live Prometheus metrics on this address during the run, like 127.0.0.1:9464 (off by default)")
	c.Flags().BoolVar(&f.allowRemote, "metrics-allow-remote", false, "permit --metrics-listen outside loopback")
}

// start serves the metrics endpoint when asked; stop ends it after the run.
func (f *liveFlags) start(e *env, name string) (stop func(), err error) {
	if f.listen == "" {
		return func() {}, nil
	}
	ex := exporter.New(name)
	srv, err := exporter.Serve(f.listen, f.allowRemote, ex.Handler())
	if err != nil {
		return nil, exitWith(exitInvalid, err)
	}
	e.onSnapshot = ex.Observe
	fmt.Fprintf(e.stderr, "portstorm: serving Prometheus metrics on http://%s/metrics\n", srv.Addr())
	return func() {
		e.onSnapshot = nil
		srv.Close()
	}, nil
}
