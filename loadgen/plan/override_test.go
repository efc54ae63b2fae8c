package plan

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

const overrideBase = `version: 1
name: base
target:
  builtin: {mode: echo}
connection:
  connect_timeout: 3s
load:
  model: concurrency
  stages:
    - {duration: 10s, target: 100}
  max_in_flight: 500
`

func TestOverrides(t *testing.T) {
	tests := []struct {
		name    string
		o       Overrides
		check   func(p *Plan) any // the value under test
		want    any
		origins map[string]string // expected Origins entries (others may exist)
	}{
		{
			name:  "file alone",
			check: func(p *Plan) any { return p.Load.Model },
			want:  "concurrency",
		},
		{
			name:    "env beats file",
			o:       Overrides{Env: []string{"PORTSTORM_LOAD_MODEL=arrival"}},
			check:   func(p *Plan) any { return p.Load.Model },
			want:    "arrival",
			origins: map[string]string{"load.model": "env PORTSTORM_LOAD_MODEL"},
		},
		{
			name:    "set beats env",
			o:       Overrides{Env: []string{"PORTSTORM_LOAD_MODEL=arrival"}, Sets: []string{"load.model=concurrency"}},
			check:   func(p *Plan) any { return p.Load.Model },
			want:    "concurrency",
			origins: map[string]string{"load.model": "--set load.model"},
		},
		{
			name:  "later set beats earlier set",
			o:     Overrides{Sets: []string{"load.max_in_flight=1", "load.max_in_flight=2"}},
			check: func(p *Plan) any { return p.Load.MaxInFlight },
			want:  2,
		},
		{
			name:  "set value is YAML: an integer",
			o:     Overrides{Sets: []string{"load.max_in_flight=100"}},
			check: func(p *Plan) any { return p.Load.MaxInFlight },
			want:  100,
		},
		{
			name:    "env with underscores in the key",
			o:       Overrides{Env: []string{"PORTSTORM_CONNECTION_CONNECT_TIMEOUT=250ms", "HOME=/root"}},
			check:   func(p *Plan) any { return p.Connection.ConnectTimeout },
			want:    Duration(250 * time.Millisecond),
			origins: map[string]string{"connection.connect_timeout": "env PORTSTORM_CONNECTION_CONNECT_TIMEOUT"},
		},
		{
			name: "list replaced whole from flow syntax",
			o:    Overrides{Sets: []string{"load.stages=[{duration: 5s, target: 10}, {duration: 1s, target: 0}]"}},
			check: func(p *Plan) any {
				return p.Load.Stages
			},
			want: []Stage{{Duration(5 * time.Second), 10}, {Duration(time.Second), 0}},
			origins: map[string]string{
				"load.stages":           "--set load.stages",
				"load.stages[1].target": "--set load.stages",
			},
		},
		{
			name:    "list from env",
			o:       Overrides{Env: []string{`PORTSTORM_THRESHOLDS=["connect.p99 < 5ms"]`}},
			check:   func(p *Plan) any { return p.Thresholds },
			want:    []Threshold{{Expr: "connect.p99 < 5ms"}},
			origins: map[string]string{"thresholds[0].expr": "env PORTSTORM_THRESHOLDS"},
		},
		{
			name:    "creates missing mappings",
			o:       Overrides{Sets: []string{"output.dir=out", "baseline.file=b.json"}},
			check:   func(p *Plan) any { return [2]string{p.Output.Dir, p.Baseline.File} },
			want:    [2]string{"out", "b.json"},
			origins: map[string]string{"output": "--set output.dir", "baseline.file": "--set baseline.file"},
		},
		{
			name:  "empty --set value restores the default",
			o:     Overrides{Sets: []string{"load.max_in_flight="}},
			check: func(p *Plan) any { return p.Load.MaxInFlight },
			want:  DefaultMaxInFlight,
		},
		{
			name:  "empty env value is ignored",
			o:     Overrides{Env: []string{"PORTSTORM_LOAD_MAX_IN_FLIGHT="}},
			check: func(p *Plan) any { return p.Load.MaxInFlight },
			want:  500,
		},
		{
			name:  "unrelated PORTSTORM_ variables are ignored",
			o:     Overrides{Env: []string{"PORTSTORM_TOKEN=x", "PORTSTORM_LOAD_MODLE=arrival", "PORTSTORM_LOAD=x"}},
			check: func(p *Plan) any { return p.Load.Model },
			want:  "concurrency",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Parse("base.yaml", []byte(overrideBase), tc.o)
			if err != nil {
				t.Fatal(err)
			}
			p.Defaults()
			if errs := p.Validate(); len(errs) > 0 {
				t.Fatal(errors.Join(errs...))
			}
			if got := tc.check(p); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %#v, want %#v", got, tc.want)
			}
			for path, origin := range tc.origins {
				if got := p.Origins[path]; got != origin {
					t.Errorf("Origins[%q] = %q, want %q", path, got, origin)
				}
				if line, ok := p.Lines[path]; !ok || line != 0 {
					t.Errorf("Lines[%q] = %d, %v; want 0 for an overridden field", path, line, ok)
				}
			}
		})
	}
}

func TestOverrideErrors(t *testing.T) {
	tests := []struct {
		name string
		o    Overrides
		want []string // each must be a whole line of the error
	}{
		{
			name: "unknown key with suggestion",
			o:    Overrides{Sets: []string{"load.modle=arrival"}},
			want: []string{`--set load.modle: unknown key (did you mean "model"?)`},
		},
		{
			name: "unknown top-level key",
			o:    Overrides{Sets: []string{"zzz=1"}},
			want: []string{`--set zzz: unknown key; want one of version, name, target, source, connection, load, thresholds, baseline, output`},
		},
		{
			name: "bad value from env",
			o:    Overrides{Env: []string{"PORTSTORM_LOAD_MAX_IN_FLIGHT=abc"}},
			want: []string{`env PORTSTORM_LOAD_MAX_IN_FLIGHT: load.max_in_flight: want an integer, got "abc"`},
		},
		{
			name: "bad value from set",
			o:    Overrides{Sets: []string{"connection.connect_timeout=10"}},
			want: []string{`--set connection.connect_timeout: want a duration with a unit, like 10s, 250ms or 1m30s, got "10"`},
		},
		{
			name: "set without =",
			o:    Overrides{Sets: []string{"load.model"}},
			want: []string{`--set load.model: want key=value, e.g. --set load.model=arrival`},
		},
		{
			name: "set without key",
			o:    Overrides{Sets: []string{"=5"}},
			want: []string{`--set =5: want key=value, e.g. --set load.model=arrival`},
		},
		{
			name: "group instead of setting",
			o:    Overrides{Sets: []string{"target.builtin={mode: sink}"}},
			want: []string{`--set target.builtin: is a group of settings; set one of its keys: target.builtin.mode, target.builtin.listeners, target.builtin.idle_timeout, target.builtin.max_frame`},
		},
		{
			name: "key below a setting",
			o:    Overrides{Sets: []string{"load.model.x=1"}},
			want: []string{`--set load.model.x: load.model: is a single setting with no keys below it`},
		},
		{
			name: "error inside a list value",
			o:    Overrides{Sets: []string{"load.stages=[{duraton: 5s}]"}},
			want: []string{`--set load.stages: load.stages[0].duraton: unknown key (did you mean "duration"?)`},
		},
		{
			name: "value that is not YAML",
			o:    Overrides{Sets: []string{"name=[oops"}},
			want: []string{`--set name: the value is not valid YAML`},
		},
		{
			name: "several at once, file errors too",
			o:    Overrides{Sets: []string{"load.modle=x", "load.max_in_flight=x"}, Env: []string{"PORTSTORM_OUTPUT_INTERVAL=x"}},
			want: []string{
				`--set load.max_in_flight: want an integer, got "x"`,
				`env PORTSTORM_OUTPUT_INTERVAL: output.interval: want a duration with a unit, like 10s, 250ms or 1m30s, got "x"`,
				`--set load.modle: unknown key (did you mean "model"?)`,
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("base.yaml", []byte(overrideBase), tc.o)
			if err == nil {
				t.Fatal("accepted")
			}
			lines := strings.Split(err.Error(), "\n")
			for _, w := range tc.want {
				found := false
				for _, l := range lines {
					found = found || strings.HasPrefix(l, w)
				}
				if !found {
					t.Errorf("no line starts with %q in:\n%v", w, err)
				}
			}
			if len(lines) != len(tc.want) {
				t.Errorf("got %d errors, want %d:\n%v", len(lines), len(tc.want), err)
			}
		})
	}
}

// Validate names the override, not the file, for a value it set.
func TestValidateNamesOverride(t *testing.T) {
	p, err := Parse("base.yaml", []byte(overrideBase), Overrides{Sets: []string{"load.model=burst", "load.stages=[{duration: 0s, target: 1}]"}})
	if err != nil {
		t.Fatal(err)
	}
	p.Defaults()
	got := errors.Join(p.Validate()...).Error()
	for _, w := range []string{
		`--set load.model: want one of concurrency, arrival, got "burst"`,
		`--set load.stages: load.stages[0].duration: want more than 0s`,
	} {
		if !strings.Contains(got, w) {
			t.Errorf("%q not in:\n%s", w, got)
		}
	}
}

func TestEnvVarNames(t *testing.T) {
	seen := map[string]string{}
	for _, k := range Keys() {
		name := EnvVar(k)
		if other, dup := seen[name]; dup {
			t.Errorf("%s and %s share the variable %s", k, other, name)
		}
		seen[name] = k
	}
	for path, want := range map[string]string{
		"load.model":                 "PORTSTORM_LOAD_MODEL",
		"connection.connect_timeout": "PORTSTORM_CONNECTION_CONNECT_TIMEOUT",
		"target.builtin.mode":        "PORTSTORM_TARGET_BUILTIN_MODE",
	} {
		if got := EnvVar(path); got != want {
			t.Errorf("EnvVar(%q) = %q, want %q", path, got, want)
		}
		if seen[want] != path {
			t.Errorf("Keys() lacks %s", path)
		}
	}
}

// TestOverrideRateOutOfRange: a rate set from the command line that parses but is out of range is
// refused by Validate, naming the override (1e300 was accepted and ran as one per 1000 s).
func TestOverrideRateOutOfRange(t *testing.T) {
	for _, tc := range []struct{ set, want string }{
		{"load.max_connect_rate=1e300", `--set load.max_connect_rate: want "unlimited" or a number from 0.001 to 10000000 per second, got 1e+300`},
		{"load.max_connect_rate=0.00001", `--set load.max_connect_rate: want "unlimited" or a number from 0.001 to 10000000 per second, got 1e-05`},
	} {
		t.Run(tc.set, func(t *testing.T) {
			p, err := Parse("base.yaml", []byte(overrideBase), Overrides{Sets: []string{tc.set}})
			if err != nil {
				t.Fatal(err)
			}
			errs := p.Validate()
			if len(errs) != 1 || errs[0].Error() != tc.want {
				t.Errorf("got %v, want %q", errs, tc.want)
			}
		})
	}
}

// TestFileRateOutOfRange: the same from the plan file names its file:line.
func TestFileRateOutOfRange(t *testing.T) {
	src := `version: 1
name: rate
target: {builtin: {mode: echo}}
load:
  model: concurrency
  stages: [{duration: 10s, target: 100}]
  max_connect_rate: 1e300
`
	p, err := Parse("rate.yaml", []byte(src), Overrides{})
	if err != nil {
		t.Fatal(err)
	}
	want := `rate.yaml:7: load.max_connect_rate: want "unlimited" or a number from 0.001 to 10000000 per second, got 1e+300`
	if errs := p.Validate(); len(errs) != 1 || errs[0].Error() != want {
		t.Errorf("got %v, want %q", errs, want)
	}
}
