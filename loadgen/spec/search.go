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
// capacity ends early instead of growing a backlog. A request_rate search's probe holds the plan's
// load.start instead, for RequestWarmup and then d, and sends level requests per second across
// those connections once the warm-up has opened them (connection.send.rate_stages: 0 through the
// warm-up, then the level; docs/search.md); the thresholds' delays count from the warm-up's end.
// The plan's other keys are kept as written.
func ProbePlan(p *plan.Plan, level float64, d time.Duration, name string) *plan.Plan {
	q := *p
	q.Search = nil
	q.Name = name
	load, warm := level, time.Duration(0)
	if p.SearchesRequests() && p.Connection.Send != nil {
		load, warm = p.Load.Start, RequestWarmup(p)
		send := *p.Connection.Send
		send.Rate, send.TotalRate = 0, 0
		send.RateStages = []plan.Stage{{Duration: plan.Duration(warm), Target: 0},
			{Duration: plan.Duration(rateStep), Target: level}, {Duration: plan.Duration(d - rateStep), Target: level}}
		q.Connection.Send = &send
	}
	q.Load.Start = load
	q.Load.Stages = []plan.Stage{{Duration: plan.Duration(warm + d), Target: load}}
	q.Thresholds = slices.Clone(p.Thresholds)
	for i := range q.Thresholds {
		t := &q.Thresholds[i]
		t.AbortOnFail = true
		if t.Delay == 0 {
			t.Delay = plan.Duration(min(max(d/ProbeAbortShare, 2*p.Output.Interval.D()), d))
		}
		// A delay counts from the requests' start: the warm-up sends none.
		t.Delay += plan.Duration(warm)
	}
	return &q
}

// rateStep is how long a request_rate probe's rate takes to rise from 0 to its level, after the
// warm-up: a step (rate_stages ramp linearly).
const rateStep = time.Millisecond

// RequestWarmup is how long a request_rate probe holds its connections before its requests
// begin: one snapshot interval, or when longer the time the connections take to be all open:
// under the concurrency model load.max_connect_rate's time to open load.start connections, under
// the arrival model connection.hold (the open connections grow until the first ones end). A
// total rate's requests due while no connection is open yet are never sent, and a few connections
// carrying the whole rate fill their windows (docs/measurements.md "Requests at a rate"): from the
// probe's first instant either would fail it on neither the target's capacity nor the generator's.
func RequestWarmup(p *plan.Plan) time.Duration {
	w := p.Output.Interval.D()
	switch r := float64(p.Load.MaxConnectRate); {
	case p.Load.Model == "arrival":
		w = max(w, p.Connection.Hold.D())
	case r > 0:
		w = max(w, time.Duration(p.Load.Start/r*float64(time.Second)))
	}
	return w
}
