package spec

import (
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
	}
	for _, tt := range tests {
		t.Run(tt.dim, func(t *testing.T) {
			p := searchBase()
			p.Load.Model = ""
			p.Search.Dimension = tt.dim
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
	if _, err := search.ParseDimension("request_rate"); err == nil {
		t.Error("request_rate is not a dimension yet")
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
