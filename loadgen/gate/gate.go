// Package gate judges results: the plan's thresholds (live, for abort_on_fail, and at the end) and
// the comparison with a baseline result, into the verdict that decides the exit code. It reads
// results only.
package gate

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	hdr "github.com/HdrHistogram/hdrhistogram-go"

	"github.com/portstorm/portstorm/loadgen/report"
)

// Gate is a plan's compiled thresholds and baseline.
type Gate struct {
	Thresholds []*Threshold
	// Baseline is the loaded baseline result and how to compare with it; nil without baseline:.
	Baseline *Baseline
}

// Baseline is a loaded baseline and the comparison the plan asked for.
type Baseline struct {
	File    string
	Summary *report.Summary
	Options CompareOptions
}

// Input is what a gate is compiled from: the plan's thresholds and baseline as loadgen/spec reads
// them (spec.Gate), and the context their metric names are checked in.
type Input struct {
	Context    Context
	Thresholds []ThresholdInput
	// Baseline is nil without baseline: (or without its file).
	Baseline *BaselineInput
	// At makes the error of a problem at a plan key ("thresholds[1].expr", "baseline.file"); the
	// compiler gives the plan's, which says file:line. Nil: "key: msg".
	At func(key, msg string) error
}

// ThresholdInput is one of the plan's thresholds. An empty Expr is skipped (plan.Validate reports
// it).
type ThresholdInput struct {
	Expr        string
	AbortOnFail bool
	// Delay only matters with AbortOnFail: how long into the run the abort waits.
	Delay time.Duration
}

// BaselineInput is the plan's baseline: the summary to compare with and how.
type BaselineInput struct {
	File          string
	MaxRegression float64
	Metrics       []string
	// Normalize is baseline.normalize: NormalizeCalibration, or empty (compared as measured).
	Normalize string
}

// Compile checks and compiles the thresholds and loads the baseline. Every problem is reported,
// each made by in.At at its plan key.
func Compile(in Input) (*Gate, []error) {
	at := in.At
	if at == nil {
		at = func(key, msg string) error { return fmt.Errorf("%s: %s", key, msg) }
	}
	g := &Gate{}
	c := in.Context
	var errs []error
	for i, th := range in.Thresholds {
		if strings.TrimSpace(th.Expr) == "" {
			continue
		}
		t, err := Parse(th.Expr, c)
		if err != nil {
			errs = append(errs, at("thresholds["+strconv.Itoa(i)+"].expr", err.Error()))
			continue
		}
		t.AbortOnFail, t.Delay = th.AbortOnFail, th.Delay
		g.Thresholds = append(g.Thresholds, t)
	}
	if b := in.Baseline; b != nil {
		opts := CompareOptions{MaxRegression: b.MaxRegression, Metrics: b.Metrics, Normalize: b.Normalize}
		for i, name := range b.Metrics {
			if _, err := Resolve(strings.TrimSpace(name), c); err != nil {
				errs = append(errs, at("baseline.metrics["+strconv.Itoa(i)+"]", err.Error()))
			}
		}
		base, err := report.ReadSummary(b.File)
		switch {
		case err != nil:
			errs = append(errs, at("baseline.file", "cannot read the baseline: "+err.Error()))
		case b.Normalize == NormalizeCalibration && !calibrated(base):
			errs = append(errs, at("baseline.normalize", fmt.Sprintf("the baseline %s holds no calibration, so there is nothing to normalize it by; "+
				"make it again with one: portstorm run PLAN --calibrate --set baseline=null --out DIR, then copy DIR/summary.json to %s", b.File, b.File)))
		default:
			g.Baseline = &Baseline{File: b.File, Summary: base, Options: opts}
		}
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return g, nil
}

// Live reports whether any threshold must be watched during the run.
func (g *Gate) Live() bool {
	for _, t := range g.Thresholds {
		if t.AbortOnFail {
			return true
		}
	}
	return false
}

// Histograms gives the running histogram of a latency, for the whole run (stage -1) or a stage;
// nil when there is none.
type Histograms func(stage int, latency string) *hdr.Histogram

// Abort judges the abort_on_fail thresholds whose delay has passed on s, the summary of the run so
// far (running totals), and returns the first that fails, or nil. A live summary (report.Input's
// Live) has no encoded histograms; hist then gives the running ones for percentiles the summary
// does not keep (nil: decode the summary's).
func (g *Gate) Abort(s *report.Summary, elapsed time.Duration, hist Histograms) *report.Stopped {
	v := newView(s)
	v.live = hist
	for _, t := range g.Thresholds {
		if !t.AbortOnFail || elapsed < t.Delay {
			continue
		}
		// A figure the run does not have yet (no samples, a stage still to come) is no evidence of
		// failure: only the final judgement fails a threshold for it.
		if ok, obs, isMissing := t.judgeFigure(v); !ok && !isMissing {
			return &report.Stopped{Threshold: t.Expr, AtS: elapsed.Seconds(), Observed: obs}
		}
	}
	return nil
}

// Judge fills the summary's thresholds, baseline comparison and verdict: "pass" only when something
// was judged and all of it passed, "no_thresholds" when the plan gave nothing to judge, then
// report.Settle's "error" when the result cannot be trusted. A run stopped by an abort_on_fail
// threshold fails, and that threshold fails whatever the final totals say.
func (g *Gate) Judge(s *report.Summary) {
	v := newView(s)
	s.Thresholds = make([]report.ThresholdResult, 0, len(g.Thresholds))
	pass := s.Stopped == nil
	for _, t := range g.Thresholds {
		ok, obs := t.judge(v)
		r := report.ThresholdResult{Expr: t.Expr, Observed: obs, Pass: ok, Metric: t.Metric.nameFor(v),
			Condition: t.Condition(), AbortOnFail: t.AbortOnFail}
		if s.Stopped != nil && s.Stopped.Threshold == t.Expr && t.AbortOnFail {
			r.Pass, r.StoppedRun = false, true
			r.Observed = fmt.Sprintf("%s at %.2fs", s.Stopped.Observed, s.Stopped.AtS)
		}
		pass = pass && r.Pass
		s.Thresholds = append(s.Thresholds, r)
	}
	if b := g.Baseline; b != nil {
		res, err := Compare(b.Summary, s, b.Options)
		if err != nil { // names were checked by Compile; a summary without a plan lands here
			res = &report.BaselineResult{Notes: []string{err.Error()}}
		}
		res.File = b.File
		s.Baseline = res
		pass = pass && res.Pass
	}
	switch {
	case !pass:
		s.Verdict = report.VerdictFail
	case len(g.Thresholds) == 0 && g.Baseline == nil:
		s.Verdict = report.VerdictNone
	default:
		s.Verdict = report.VerdictPass
	}
	report.Settle(s)
}
