package spec

import (
	"slices"
	"testing"
	"time"

	"github.com/portstorm/portstorm/loadgen/plan"
	"github.com/portstorm/portstorm/loadgen/search"
)

func searchBase() *plan.Plan {
	p := &plan.Plan{Version: 1, Name: "s", Target: plan.Target{Builtin: &plan.Builtin{}},
		Thresholds: []plan.Threshold{{Expr: "latency.p99 < 10ms"}, {Expr: "errors.rate < 1%", Delay: plan.Duration(3 * time.Second)}},
		Search:     &plan.Search{Dimension: "arrival_rate", Min: 10, Max: 1000, Require: 500}}
	p.Defaults()
	return p
}

func TestCompileSearch(t *testing.T) {
	tests := []struct {
		dim   string
		want  search.Dimension
		model string
		unit  string
	}{
		{"arrival_rate", search.ArrivalRate, "arrival", "connections/s"},
		{"concurrency", search.Concurrency, "concurrency", "connections"},
		{"request_rate", search.RequestRate, "concurrency", "requests/s"},
	}
	for _, tt := range tests {
		t.Run(tt.dim, func(t *testing.T) {
			p := searchBase()
			p.Load.Model = ""
			p.Search.Dimension = tt.dim
			if tt.want == search.RequestRate {
				p.Load.Start = 20
				p.Connection.Send = &plan.Send{Count: plan.Unlimited}
			}
			p.Defaults()
			s, err := Compile(p, Facts{Host: host})
			if err != nil {
				t.Fatal(err)
			}
			sr := s.Search
			if sr == nil || sr.Dimension != tt.want || sr.Dimension.String() != tt.dim || sr.Dimension.Unit() != tt.unit ||
				p.Load.Model != tt.model {
				t.Fatalf("search %+v, model %s", sr, p.Load.Model)
			}
			if sr.Min != 10 || sr.Max != 1000 || sr.Require != 500 || sr.Tolerance != 0.05 || sr.Growth != 2 ||
				sr.Probe != 10*time.Second || sr.Confirm != 30*time.Second || sr.Settle != 2*time.Second || sr.MaxProbes != 20 ||
				sr.MaxTime != 10*time.Minute {
				t.Errorf("search %+v", *sr)
			}
		})
	}
	if _, err := search.ParseDimension("requests"); err == nil {
		t.Error("requests is not a dimension")
	}
}

func TestProbePlan(t *testing.T) {
	p := searchBase()
	q := ProbePlan(p, 250, 4*time.Second, "s-probe-03")
	if q.Search != nil || q.Name != "s-probe-03" || q.Load.Start != 250 || len(q.Load.Stages) != 1 ||
		q.Load.Stages[0] != (plan.Stage{Duration: plan.Duration(4 * time.Second), Target: 250}) {
		t.Fatalf("probe plan: %+v", q.Load)
	}
	// Every threshold is watched live; its own delay wins over a quarter of the probe (at least two
	// intervals).
	want := []plan.Threshold{{Expr: "latency.p99 < 10ms", AbortOnFail: true, Delay: plan.Duration(2 * time.Second)},
		{Expr: "errors.rate < 1%", AbortOnFail: true, Delay: plan.Duration(3 * time.Second)}}
	for i, w := range want {
		if q.Thresholds[i] != w {
			t.Errorf("threshold %d: %+v, want %+v", i, q.Thresholds[i], w)
		}
	}
	if q := ProbePlan(p, 250, 3*time.Second, "s"); q.Thresholds[0].Delay != plan.Duration(2*time.Second) {
		t.Errorf("a 3s probe with a 1s interval: delay %s, want two intervals", q.Thresholds[0].Delay)
	}
	// The search plan is left as it was.
	if p.Search == nil || p.Thresholds[0].AbortOnFail || len(p.Load.Stages) != 0 {
		t.Errorf("the search plan changed: %+v", p)
	}
	if errs := q.Validate(); len(errs) > 0 {
		t.Errorf("the probe plan is not valid: %v", errs)
	}
	if _, err := Compile(q, Facts{Host: host}); err != nil {
		t.Errorf("the probe plan does not compile: %v", err)
	}
}

// TestRequestProbePlan: a request_rate probe holds the plan's connections for a warm-up of one
// interval and the probe, and sends the level across them from the warm-up's end.
func TestRequestProbePlan(t *testing.T) {
	tests := []struct {
		name   string
		edit   func(p *plan.Plan)
		warm   time.Duration
		delay0 time.Duration // the first threshold's delay: warm-up + a quarter of the probe
	}{
		{name: "one interval", edit: func(p *plan.Plan) {}, warm: time.Second, delay0: 3 * time.Second},
		{name: "max_connect_rate slower than an interval", edit: func(p *plan.Plan) { p.Load.MaxConnectRate = 10 },
			warm: 4 * time.Second, delay0: 6 * time.Second},
		{name: "max_connect_rate faster", edit: func(p *plan.Plan) { p.Load.MaxConnectRate = 1000 }, warm: time.Second, delay0: 3 * time.Second},
		{name: "arrival: the connections build up over their hold", edit: func(p *plan.Plan) {
			p.Load.Model, p.Connection.Hold = "arrival", plan.Duration(5*time.Second)
		}, warm: 5 * time.Second, delay0: 7 * time.Second},
		{name: "arrival: a hold under an interval", edit: func(p *plan.Plan) {
			p.Load.Model, p.Connection.Hold = "arrival", plan.Duration(300*time.Millisecond)
		}, warm: time.Second, delay0: 3 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := searchBase()
			p.Load.Model = ""
			p.Search.Dimension = "request_rate"
			p.Load.Start = 40
			p.Connection.Send = &plan.Send{Count: plan.Unlimited, Pipeline: 2}
			p.Defaults()
			tt.edit(p)
			if errs := p.Validate(); len(errs) > 0 {
				t.Fatalf("the search plan is not valid: %v", errs)
			}
			q := ProbePlan(p, 2500, 8*time.Second, "s-probe-02")
			if q.Load.Start != 40 || len(q.Load.Stages) != 1 || q.Load.Stages[0] != (plan.Stage{Duration: plan.Duration(tt.warm + 8*time.Second), Target: 40}) {
				t.Fatalf("probe load: %+v", q.Load)
			}
			snd := q.Connection.Send
			want := []plan.Stage{{Duration: plan.Duration(tt.warm), Target: 0}, {Duration: plan.Duration(rateStep), Target: 2500},
				{Duration: plan.Duration(8*time.Second - rateStep), Target: 2500}}
			if snd.TotalRate != 0 || snd.Rate != 0 || !slices.Equal(snd.RateStages, want) || snd.Pipeline != 2 || snd.Count != plan.Unlimited {
				t.Fatalf("probe send: %+v, want rate stages %v", *snd, want)
			}
			if q.Thresholds[0].Delay != plan.Duration(tt.delay0) || q.Thresholds[1].Delay != plan.Duration(tt.warm+3*time.Second) {
				t.Errorf("delays %s, %s: want %s, and the threshold's own 3s after the warm-up", q.Thresholds[0].Delay, q.Thresholds[1].Delay, tt.delay0)
			}
			// The search plan is left as it was.
			if p.Connection.Send.RateStages != nil || p.Connection.Send.TotalRate != 0 || len(p.Load.Stages) != 0 {
				t.Errorf("the search plan changed: %+v %+v", *p.Connection.Send, p.Load)
			}
			if errs := q.Validate(); len(errs) > 0 {
				t.Errorf("the probe plan is not valid: %v", errs)
			}
			if _, err := Compile(q, Facts{Host: host}); err != nil {
				t.Errorf("the probe plan does not compile: %v", err)
			}
		})
	}
}
