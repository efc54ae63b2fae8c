package plan

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// searchPlan is a valid search plan built in code, defaulted.
func searchPlan() *Plan {
	p := &Plan{
		Version:    1,
		Name:       "search",
		Target:     Target{Builtin: &Builtin{}},
		Load:       Load{Model: "arrival"},
		Thresholds: []Threshold{{Expr: "latency.p99 < 10ms"}},
		Search:     &Search{Min: 100, Max: 10000},
	}
	p.Defaults()
	return p
}

func TestSearchDefaults(t *testing.T) {
	p := searchPlan()
	s := p.Search
	if s.Dimension != "arrival_rate" || s.Growth != 2 || s.Probe != DefaultSearchProbe || s.Confirm != 3*DefaultSearchProbe ||
		s.Settle != DefaultSearchSettle || s.Tolerance != DefaultSearchTolerance || s.MaxProbes != 20 || s.MaxTime != DefaultSearchMaxTime {
		t.Errorf("defaults: %+v", *s)
	}
	// The dimension gives the model when the plan names no model.
	q := &Plan{Version: 1, Name: "q", Target: Target{Builtin: &Builtin{}}, Thresholds: []Threshold{{Expr: "connect.p99 < 1ms"}},
		Search: &Search{Dimension: "arrival_rate", Min: 1, Max: 2}}
	q.Defaults()
	if q.Load.Model != "arrival" {
		t.Errorf("model %q, want arrival from the dimension", q.Load.Model)
	}
	if errs := q.Validate(); len(errs) > 0 {
		t.Errorf("valid search plan: %v", errors.Join(errs...))
	}
	if errs := p.Validate(); len(errs) > 0 {
		t.Errorf("valid search plan: %v", errors.Join(errs...))
	}
}

func TestValidateSearch(t *testing.T) {
	tests := []struct {
		name  string
		edit  func(p *Plan)
		field string // "" when the plan is valid
		msg   string
	}{
		{"valid", func(p *Plan) {}, "", ""},
		{"unknown dimension", func(p *Plan) { p.Search.Dimension = "request_rate" }, "search.dimension", "arrival_rate, concurrency"},
		{"dimension against the model", func(p *Plan) { p.Search.Dimension = "concurrency" }, "search.dimension", "want load.model: concurrency"},
		{"stages given", func(p *Plan) { p.Load.Stages = []Stage{{Duration(time.Second), 1}} }, "load.stages", "remove load.stages"},
		{"start given", func(p *Plan) { p.Load.Start = 5 }, "load.start", "remove load.start"},
		{"no min", func(p *Plan) { p.Search.Min = 0 }, "search.min", "missing"},
		{"negative max", func(p *Plan) { p.Search.Max = -1 }, "search.max", "above 0"},
		{"max under min", func(p *Plan) { p.Search.Max = 50 }, "search.max", "at least search.min"},
		{"min equals max", func(p *Plan) { p.Search.Max = 100 }, "", ""},
		{"require above max", func(p *Plan) { p.Search.Require = 20000 }, "search.require", "never tries more"},
		{"require in range", func(p *Plan) { p.Search.Require = 5000 }, "", ""},
		{"fractional concurrency", func(p *Plan) {
			p.Load.Model, p.Search.Dimension, p.Search.Min = "concurrency", "concurrency", 1.5
		}, "search.min", "whole number"},
		{"fractional rate", func(p *Plan) { p.Search.Min = 0.5 }, "", ""},
		{"growth 1", func(p *Plan) { p.Search.Growth = 1 }, "search.growth", "above 1"},
		{"probe too short", func(p *Plan) { p.Search.Probe = Duration(time.Millisecond) }, "search.probe", "100ms to 1h"},
		{"probe under the interval", func(p *Plan) {
			p.Search.Probe, p.Search.Confirm, p.Output.Interval = Duration(time.Second), Duration(time.Second), Duration(2*time.Second)
		}, "search.probe", "output.interval"},
		{"confirm shorter", func(p *Plan) { p.Search.Confirm = Duration(time.Second) }, "search.confirm", "the longer one"},
		{"tolerance 0.01%", func(p *Plan) { p.Search.Tolerance = 0.0001 }, "search.tolerance", "0.1% to 100%"},
		{"max_probes 1", func(p *Plan) { p.Search.MaxProbes = 1 }, "search.max_probes", "2 to 1000"},
		{"max_time negative", func(p *Plan) { p.Search.MaxTime = -1 }, "search.max_time", "100ms to"},
		{"settle negative", func(p *Plan) { p.Search.Settle = -1 }, "search.settle", "0s to 1h"},
		{"no thresholds", func(p *Plan) { p.Thresholds = nil }, "search", "needs the thresholds"},
		{"baseline", func(p *Plan) { p.Baseline = &Baseline{File: "b.json"} }, "baseline", "not against a baseline"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := searchPlan()
			tt.edit(p)
			errs := p.Validate()
			if tt.field == "" {
				if len(errs) > 0 {
					t.Fatalf("want valid, got %v", errors.Join(errs...))
				}
				return
			}
			for _, err := range errs {
				var fe *FieldError
				if errors.As(err, &fe) && fe.Field == tt.field && strings.Contains(fe.Msg, tt.msg) {
					return
				}
			}
			t.Fatalf("want an error on %s containing %q, got %v", tt.field, tt.msg, errors.Join(errs...))
		})
	}
}

// TestSearchFileLines: a search plan's problems are all reported at once, each at its line.
func TestSearchFileLines(t *testing.T) {
	src := `version: 1
name: s
target: {builtin: {mode: echo}}
load: {model: arrival}
thresholds: ["latency.p99 < 10ms"]
search:
  dimension: concurrency
  min: 100
  max: 10
  tolerance: 200%
`
	p, err := Parse("s.yaml", []byte(src), Overrides{})
	if err != nil {
		t.Fatal(err)
	}
	p.Defaults()
	var got []string
	for _, e := range p.Validate() {
		got = append(got, e.Error())
	}
	want := []string{
		"s.yaml:7: search.dimension: concurrency is searched under load.model concurrency, but the model is arrival; want load.model: concurrency, or leave it out",
		"s.yaml:9: search.max: want at least search.min (100), got 10",
		"s.yaml:10: search.tolerance: want 0.1% to 100%, like 5%, got 200%",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
