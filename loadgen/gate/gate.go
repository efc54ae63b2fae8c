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

	"github.com/portstorm/portstorm/loadgen/plan"
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

// ContextOf is the context a plan's metric names are checked in.
func ContextOf(p *plan.Plan) Context {
	model := p.Load.Model
	if model == "" {
		model = plan.DefaultModel
	}
	stages := len(p.Load.Stages)
	if p.Search != nil {
		stages = 1 // every probe of a search is one stage (docs/search.md)
	}
	return Context{Stages: stages, Model: model}
}

// Compile checks and compiles a plan's thresholds and loads its baseline. Every problem is a
// *plan.FieldError with the file:line of the threshold or baseline key (or the override that set
// it); the error is a plan.Errors holding all of them.
func Compile(p *plan.Plan) (*Gate, error) {
	g := &Gate{}
	c := ContextOf(p)
	var errs plan.Errors
	for i, th := range p.Thresholds {
		if strings.TrimSpace(th.Expr) == "" {
			continue // plan.Validate reports it
		}
		path := "thresholds[" + strconv.Itoa(i) + "]"
		t, err := Parse(th.Expr, c)
		if err != nil {
			errs = append(errs, p.ErrorAt(path+".expr", err.Error()))
			continue
		}
		// delay only matters with abort_on_fail: it is how long into the run the abort waits.
		t.AbortOnFail, t.Delay = th.AbortOnFail, th.Delay.D()
		g.Thresholds = append(g.Thresholds, t)
	}
	if b := p.Baseline; b != nil && strings.TrimSpace(b.File) != "" {
		opts := CompareOptions{MaxRegression: float64(b.MaxRegression), Metrics: b.Metrics, Normalize: b.Normalize}
		for i, name := range b.Metrics {
			if _, err := Resolve(strings.TrimSpace(name), c); err != nil {
				errs = append(errs, p.ErrorAt("baseline.metrics["+strconv.Itoa(i)+"]", err.Error()))
			}
		}
		base, err := report.ReadSummary(b.File)
		switch {
		case err != nil:
			errs = append(errs, p.ErrorAt("baseline.file", "cannot read the baseline: "+err.Error()))
		case b.Normalize == plan.NormalizeCalibration && !calibrated(base):
			errs = append(errs, p.ErrorAt("baseline.normalize", fmt.Sprintf("the baseline %s holds no calibration, so there is nothing to normalize it by; "+
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

// ValidatePlan reports every threshold and baseline problem of a plan, each a *plan.FieldError;
// commands run it after plan.Validate, so that validate and run catch the same mistakes.
func ValidatePlan(p *plan.Plan) []error {
	_, err := Compile(p)
	if err == nil {
		return nil
	}
	es := err.(plan.Errors)
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
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
