package spec

import (
	"strings"

	"github.com/portstorm/portstorm/loadgen/gate"
	"github.com/portstorm/portstorm/loadgen/plan"
)

// Gate compiles the plan's thresholds and loads its baseline. Every problem is a *plan.FieldError
// with the file:line of the threshold or baseline key (or the override that set it); the error is
// a plan.Errors holding all of them.
func Gate(p *plan.Plan) (*gate.Gate, error) {
	g, errs := gate.Compile(GateInput(p))
	if len(errs) == 0 {
		return g, nil
	}
	fes := make(plan.Errors, len(errs))
	for i, err := range errs {
		fes[i] = err.(*plan.FieldError) // made by GateInput's At
	}
	return nil, fes
}

// GateErrors reports every threshold and baseline problem of a plan, each a *plan.FieldError;
// commands run it after plan.Validate, so that validate and run catch the same mistakes.
func GateErrors(p *plan.Plan) []error {
	_, errs := gate.Compile(GateInput(p))
	return errs
}

// GateInput is the plan's thresholds and baseline as the gate takes them, checked in the context
// of the plan's stages and load model.
func GateInput(p *plan.Plan) gate.Input {
	m, _ := model(p)
	in := gate.Input{Context: gate.Context{Stages: len(p.Load.Stages), Model: m},
		At: func(key, msg string) error { return p.ErrorAt(key, msg) }}
	if p.Search != nil {
		in.Context.Stages = 1 // every probe of a search is one stage (docs/search.md)
	}
	for _, th := range p.Thresholds {
		in.Thresholds = append(in.Thresholds, gate.ThresholdInput{Expr: th.Expr, AbortOnFail: th.AbortOnFail, Delay: th.Delay.D()})
	}
	if b := p.Baseline; b != nil && strings.TrimSpace(b.File) != "" {
		in.Baseline = &gate.BaselineInput{File: b.File, MaxRegression: float64(b.MaxRegression), Metrics: b.Metrics, Normalize: b.Normalize}
	}
	return in
}
