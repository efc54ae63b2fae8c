package report

import (
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// BaselineResult is the comparison of a run with a previous result (summary.json's "baseline").
type BaselineResult struct {
	// File is the baseline's summary.json; Name and StartedAt identify the run it holds.
	File string `json:"file"`
	Name string `json:"name"`
	// StartedAt is the baseline run's start, RFC 3339.
	StartedAt string `json:"started_at"`
	// MaxRegression is the tolerance of the non-count metrics, as a fraction (0.10 for 10%).
	MaxRegression float64         `json:"max_regression"`
	Pass          bool            `json:"pass"`
	Checks        []BaselineCheck `json:"checks"`
	// Notes say what could make the comparison misleading (different plans, missing figures).
	Notes []string `json:"notes,omitempty"`
	// Normalize is "calibration" when latencies and achieved rates were compared as multiples of
	// each run's calibration unit; Scale is then the new run's unit over the baseline's (2: this
	// host ran the reference twice as slowly).
	Normalize string   `json:"normalize,omitempty"`
	Scale     *float64 `json:"scale,omitempty"`
}

// Calibration is a host's reference, measured before a run (loadgen/calibrate): sequential
// loopback connections of portstorm's own, each a connect, one 64-byte echo exchange and a close
// with RST. Times are microseconds.
type Calibration struct {
	// UnitUS is the median time of one reference connection (connect and exchange): the unit
	// latencies are divided by, and achieved rates multiplied by, under baseline.normalize.
	UnitUS       float64 `json:"unit_us"`
	ConnectP50US float64 `json:"connect_p50_us"`
	EchoP50US    float64 `json:"echo_p50_us"`
	// Connections is how many reference connections were timed (after a warm-up); DurationUS how
	// long the calibration took.
	Connections int   `json:"connections"`
	DurationUS  int64 `json:"duration_us"`
}

// BaselineCheck is one compared metric.
type BaselineCheck struct {
	Metric string `json:"metric"`
	// Base and New are the figures as shown; BaseValue and NewValue the numbers in summary.json's
	// units (µs, counts, fractions, per second, bytes), absent when the figure is missing or none.
	Base      string   `json:"base"`
	New       string   `json:"new"`
	BaseValue *float64 `json:"base_value,omitempty"`
	NewValue  *float64 `json:"new_value,omitempty"`
	// Delta is the change ("+12.5%", "+3"), Tolerance what was allowed ("exact", "+10%").
	Delta     string `json:"delta"`
	Tolerance string `json:"tolerance"`
	Pass      bool   `json:"pass"`
	// NewNormalized is, under baseline.normalize, the new figure brought to the baseline host's
	// speed (a latency divided by the scale, an achieved rate multiplied by it), in summary.json's
	// units: what Delta compares with BaseValue. Absent for the figures that do not move with the
	// host's speed (counts, shares, the schedule's).
	NewNormalized *float64 `json:"new_normalized,omitempty"`
}

// Stopped says which abort_on_fail threshold ended the run early, when, and what it saw then.
type Stopped struct {
	Threshold string  `json:"threshold"`
	AtS       float64 `json:"at_s"`
	Observed  string  `json:"observed"`
}

// VerdictRow is one line of the verdict table: a threshold or a baseline check.
type VerdictRow struct {
	Kind      string // "threshold" or "baseline"
	Metric    string
	Condition string
	Observed  string
	Pass      bool
}

// VerdictRows lists the summary's thresholds, then its baseline checks, as verdict table rows.
func VerdictRows(s *Summary) []VerdictRow {
	var rows []VerdictRow
	for _, t := range s.Thresholds {
		m, cond := t.Metric, t.Condition
		if m == "" { // a summary from before the gate named its parts
			m, cond = t.Expr, ""
		}
		if t.StoppedRun {
			cond += " (stopped the run)"
		} else if t.AbortOnFail {
			cond += " (abort_on_fail)"
		}
		rows = append(rows, VerdictRow{Kind: "threshold", Metric: m, Condition: cond, Observed: t.Observed, Pass: t.Pass})
	}
	if b := s.Baseline; b != nil {
		for _, c := range b.Checks {
			cond := "== " + c.Base
			if c.Tolerance != "exact" {
				cond = fmt.Sprintf("%s of %s", c.Tolerance, c.Base)
			}
			obs := c.New
			if c.Delta != "" {
				obs += " (" + c.Delta + ")"
			}
			rows = append(rows, VerdictRow{Kind: "baseline", Metric: "baseline " + c.Metric, Condition: cond, Observed: obs, Pass: c.Pass})
		}
	}
	return rows
}

// WriteVerdict prints the verdict table: metric, condition, observed, pass or FAIL. It prints
// nothing when the run had no thresholds and no baseline.
func WriteVerdict(w io.Writer, s *Summary) {
	if st := s.Stopped; st != nil {
		fmt.Fprintf(w, "  stopped      at %.2fs: abort_on_fail threshold %q failed (observed %s)\n", st.AtS, st.Threshold, st.Observed)
	}
	rows := VerdictRows(s)
	if len(rows) == 0 {
		return
	}
	var failedT, totalT, failedB, totalB int
	for _, r := range rows {
		if r.Kind == "threshold" {
			totalT++
			if !r.Pass {
				failedT++
			}
		} else {
			totalB++
			if !r.Pass {
				failedB++
			}
		}
	}
	var parts []string
	if totalT > 0 {
		parts = append(parts, fmt.Sprintf("%d of %d threshold(s) failed", failedT, totalT))
	}
	if totalB > 0 {
		parts = append(parts, fmt.Sprintf("%d of %d baseline check(s) regressed", failedB, totalB))
	}
	fmt.Fprintf(w, "  verdict      %s: %s\n", strings.ToUpper(s.Verdict), strings.Join(parts, "; "))
	head := VerdictRow{Metric: "metric", Condition: "condition", Observed: "observed"}
	wm, wc, wo := width(head.Metric), width(head.Condition), width(head.Observed)
	for _, r := range rows {
		wm, wc, wo = max(wm, width(r.Metric)), max(wc, width(r.Condition)), max(wo, width(r.Observed))
	}
	line := func(m, c, o, res string) {
		fmt.Fprintf(w, "    %s  %s  %s  %s\n", pad(m, wm), pad(c, wc), pad(o, wo), res)
	}
	line(head.Metric, head.Condition, head.Observed, "result")
	for _, r := range rows {
		res := "pass"
		if !r.Pass {
			res = "FAIL"
		}
		line(r.Metric, r.Condition, r.Observed, res)
	}
	if b := s.Baseline; b != nil && b.Scale != nil {
		fmt.Fprintf(w, "    baseline latencies and achieved rates normalized by %s: scale %.2f (this host took %.2fx the baseline host's time for the reference)\n",
			b.Normalize, *b.Scale, *b.Scale)
	}
}

// width counts runes, so that "µs" lines up.
func width(s string) int { return utf8.RuneCountInString(s) }

func pad(s string, n int) string {
	if d := n - width(s); d > 0 {
		return s + strings.Repeat(" ", d)
	}
	return s
}

// Settle makes a judged summary's verdict final (after gate.Judge): "error" when the result cannot
// be trusted whatever the thresholds say (no connection established, a worker process failed, a
// result file missing), and a warning when most connections failed while nothing judged the run:
// "no_thresholds" must not read as a pass.
func Settle(s *Summary) {
	if why := Untrusted(s); why != "" {
		s.Verdict = VerdictError
		s.Warnings = append(s.Warnings, "verdict error: "+why)
	}
	if w := MostFailed(s); w != "" {
		s.Warnings = append(s.Warnings, w)
	}
}

// MostFailed is the warning for a run where most connection attempts failed while no threshold or
// baseline judged it, or "".
func MostFailed(s *Summary) string {
	c := s.Connections
	// Dropped attempts never connected either: a full window, or a stop that caught them waiting
	// out a failing destination's backoff (connection.on_connect_failure).
	notOK := c.Failed + c.Dropped
	if len(s.Thresholds) > 0 || s.Baseline != nil || c.Attempted == 0 || 2*notOK <= c.Attempted {
		return ""
	}
	what := "failed"
	if c.Dropped > 0 {
		what = fmt.Sprintf("failed or were dropped (%d dropped)", c.Dropped)
	}
	return fmt.Sprintf("%d of %d connection attempts %s (%.1f%%) and no threshold judged the run: add thresholds (errors.rate, connections.failed) to make this a failure",
		notOK, c.Attempted, what, 100*float64(notOK)/float64(c.Attempted))
}

// Untrusted says why a summary's result cannot be trusted, or "".
func Untrusted(s *Summary) string {
	c := s.Connections
	switch {
	case len(s.OutputsIncomplete) > 0:
		return "result file(s) not written: " + strings.Join(s.OutputsIncomplete, ", ")
	case len(s.WorkerFailures) > 0:
		return fmt.Sprintf("%d worker process(es) failed", len(s.WorkerFailures))
	case len(s.TargetFailures) > 0:
		return fmt.Sprintf("%d built-in target process(es) failed", len(s.TargetFailures))
	case s.Unreachable != nil:
		return s.Unreachable.Message()
	case c.Attempted > 0 && c.Established == 0:
		return fmt.Sprintf("target unreachable: none of %d connection attempts succeeded", c.Attempted)
	}
	return ""
}
