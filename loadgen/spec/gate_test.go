package spec

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/portstorm/portstorm/loadgen/plan"
	"github.com/portstorm/portstorm/loadgen/report"
)

// TestGateErrors: every threshold and baseline problem of a plan is a plan error at its key's
// file:line (or the --set that set it), all at once.
func TestGateErrors(t *testing.T) {
	dir := t.TempDir()
	baseFile := filepath.Join(dir, "base.json")
	if err := report.WriteSummary(dir, &report.Summary{Schema: report.Schema, Name: "base"}); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(dir, "summary.json"), baseFile); err != nil {
		t.Fatal(err)
	}
	src := `version: 1
name: gates
target: {builtin: {mode: echo}}
load:
  stages:
    - {duration: 1s, target: 10}
    - {duration: 1s, target: 10}
thresholds:
  - "connect.p99 < 5ms"
  - "conect.p99 < 5ms"
  - expr: "errors.rate < 5"
    abort_on_fail: true
  - "stage[2].connect.p99 < 1ms"
baseline:
  file: ` + baseFile + `
  max_regression: 10%
  metrics: [connect.p99, outcomes.BOGUS]
`
	p, err := plan.Parse("gates.yaml", []byte(src), plan.Overrides{})
	if err != nil {
		t.Fatal(err)
	}
	p.Defaults()
	errs := GateErrors(p)
	want := []struct {
		line      int
		field, in string
	}{
		{10, "thresholds[1].expr", `did you mean "connect.p99"?`},
		{11, "thresholds[2].expr", "did you mean 5%?"},
		{13, "thresholds[3].expr", "stage[0] to stage[1]"},
		{17, "baseline.metrics[1]", "outcomes.BOGUS"},
	}
	if len(errs) != len(want) {
		t.Fatalf("%d errors, want %d:\n%v", len(errs), len(want), errs)
	}
	for i, w := range want {
		var fe *plan.FieldError
		if !errors.As(errs[i], &fe) {
			t.Fatalf("error %d is %T", i, errs[i])
		}
		if fe.File != "gates.yaml" || fe.Line != w.line || fe.Field != w.field || !strings.Contains(fe.Msg, w.in) {
			t.Errorf("error %d: %s, want gates.yaml:%d %s ...%s", i, fe, w.line, w.field, w.in)
		}
	}

	// A missing baseline file is a plan error at baseline.file; --set names itself.
	p, err = plan.Parse("gates.yaml", []byte(src), plan.Overrides{Sets: []string{"baseline.file=" + filepath.Join(dir, "nope.json"), `thresholds=["connect.p99 < 5ms"]`}})
	if err != nil {
		t.Fatal(err)
	}
	p.Defaults()
	errs = GateErrors(p)
	if len(errs) != 2 || !strings.Contains(errs[1].Error(), "--set baseline.file") || !strings.Contains(errs[1].Error(), "nope.json") {
		t.Errorf("errors %v", errs)
	}
}

// TestGateInput: the gate's context is the plan's stage count (one per probe of a search) and its
// load model, typed.
func TestGateInput(t *testing.T) {
	tests := []struct {
		name   string
		edit   func(*plan.Plan)
		stages int
		model  string
	}{
		{"concurrency", func(*plan.Plan) {}, 1, "concurrency"},
		{"arrival, two stages", func(p *plan.Plan) {
			p.Load.Model, p.Load.Stages = "arrival", append(p.Load.Stages, p.Load.Stages[0])
		}, 2, "arrival"},
		{"a search's probe is one stage", func(p *plan.Plan) {
			p.Load.Stages = append(p.Load.Stages, p.Load.Stages[0])
			p.Search = &plan.Search{}
		}, 1, "concurrency"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := base()
			tt.edit(p)
			c := GateInput(p).Context
			if c.Stages != tt.stages || c.Model.String() != tt.model {
				t.Errorf("context %+v, want %d stage(s), %s", c, tt.stages, tt.model)
			}
		})
	}
}

// TestValidateNormalize: baseline.normalize takes one word, and needs a baseline with a calibration;
// each problem names its file:line.
func TestValidateNormalize(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, s *report.Summary) string {
		sub := filepath.Join(dir, name)
		if err := os.Mkdir(sub, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := report.WriteSummary(sub, s); err != nil {
			t.Fatal(err)
		}
		return filepath.Join(sub, "summary.json")
	}
	calibrated := write("cal", &report.Summary{Schema: report.Schema, Name: "cal", Calibration: &report.Calibration{UnitUS: 40, ConnectP50US: 25, EchoP50US: 15, Connections: 1000}})
	plain := write("plain", &report.Summary{Schema: report.Schema, Name: "plain"})
	src := func(file, normalize string) string {
		return `version: 1
name: norm
target: {builtin: {mode: echo}}
load:
  stages: [{duration: 1s, target: 10}]
baseline:
  file: ` + file + `
  normalize: ` + normalize + "\n"
	}
	tests := []struct {
		name, file, normalize string
		field                 string
		line                  int
		want                  string
	}{
		{"calibrated baseline", calibrated, "calibration", "", 0, ""},
		{"a baseline without a calibration", plain, "calibration", "baseline.normalize", 8, "holds no calibration"},
		{"a misspelt word", calibrated, "calibrate", "baseline.normalize", 8, "want one of calibration"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := plan.Parse("norm.yaml", []byte(src(tt.file, tt.normalize)), plan.Overrides{})
			if err != nil {
				t.Fatal(err)
			}
			p.Defaults()
			errs := append(p.Validate(), GateErrors(p)...)
			if tt.field == "" {
				if len(errs) > 0 {
					t.Fatalf("errors %v", errs)
				}
				return
			}
			if len(errs) != 1 {
				t.Fatalf("errors %v, want one", errs)
			}
			var fe *plan.FieldError
			if !errors.As(errs[0], &fe) || fe.File != "norm.yaml" || fe.Line != tt.line || fe.Field != tt.field || !strings.Contains(fe.Msg, tt.want) {
				t.Errorf("error %v, want norm.yaml:%d %s ...%s", errs[0], tt.line, tt.field, tt.want)
			}
		})
	}
}
