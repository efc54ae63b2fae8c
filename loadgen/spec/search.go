package spec

import (
	"fmt"
	"slices"
	"time"

	"github.com/portstorm/portstorm/loadgen/plan"
	"github.com/portstorm/portstorm/loadgen/search"
)

// Search is a compiled search: section.
type Search struct {
	Dimension                       search.Dimension
	Min, Max, Growth, Tolerance     float64
	Require                         float64 // 0: none
	Probe, Settle, Confirm, MaxTime time.Duration
	MaxProbes                       int
}

func compileSearch(p *plan.Plan) (*Search, error) {
	sr := p.Search
	d, err := search.ParseDimension(sr.Dimension)
	if err != nil {
		return nil, fmt.Errorf("search.dimension: %w", err)
	}
	return &Search{Dimension: d, Min: sr.Min, Max: sr.Max, Growth: sr.Growth, Tolerance: float64(sr.Tolerance),
		Require: sr.Require, Probe: sr.Probe.D(), Settle: sr.Settle.D(), Confirm: sr.Confirm.D(),
		MaxTime: sr.MaxTime.D(), MaxProbes: sr.MaxProbes}, nil
}

// ProbeAbortShare is the share of a probe that passes before its thresholds may end it early, and
// at least two snapshot intervals (a threshold's own delay, when the plan gives one, wins): the
// first moments of a level are its least settled, and a percentile of a few samples is noise.
const ProbeAbortShare = 4

// ProbePlan is the plan of one probe of a search plan p: one stage at level for d, started at the
// level, named name, with every threshold watched live (abort_on_fail) so that a probe above
// capacity ends early instead of growing a backlog. The plan's other keys are kept as written.
func ProbePlan(p *plan.Plan, level float64, d time.Duration, name string) *plan.Plan {
	q := *p
	q.Search = nil
	q.Name = name
	q.Load.Start = level
	q.Load.Stages = []plan.Stage{{Duration: plan.Duration(d), Target: level}}
	q.Thresholds = slices.Clone(p.Thresholds)
	for i := range q.Thresholds {
		t := &q.Thresholds[i]
		t.AbortOnFail = true
		if t.Delay == 0 {
			t.Delay = plan.Duration(min(max(d/ProbeAbortShare, 2*p.Output.Interval.D()), d))
		}
	}
	return &q
}
