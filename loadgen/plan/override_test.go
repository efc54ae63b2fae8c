package plan

import (
	"cmp"
	"errors"
	"reflect"
	"slices"
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

// overrideFull has what overrideBase lacks: addresses, a request, a baseline, two stages, thresholds.
const overrideFull = `version: 1
name: full
target:
  addresses: [127.0.0.1:9, 127.0.0.1:10]
connection:
  send: {data: hello}
load:
  model: concurrency
  stages:
    - {duration: 10s, target: 100}
    - {duration: 20s, target: 200}
  max_in_flight: 500
thresholds:
  - errors.rate == 0
  - {expr: connect.p99 < 5ms}
baseline:
  file: old.json
  metrics: [connect.p99]
`

func TestOverrides(t *testing.T) {
	tests := []struct {
		name    string
		base    string // the plan file (default overrideBase)
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
		// Removing: a null value removes a key, a group or a list element.
		{
			name:  "null removes a group",
			base:  overrideFull,
			o:     Overrides{Sets: []string{"baseline=null"}},
			check: func(p *Plan) any { return p.Baseline },
			want:  (*Baseline)(nil),
		},
		{
			name:  "~ and an empty value remove a group too",
			base:  overrideFull,
			o:     Overrides{Sets: []string{"baseline=~", "connection.send="}},
			check: func(p *Plan) any { return [2]bool{p.Baseline == nil, p.Connection.Send == nil} },
			want:  [2]bool{true, true},
		},
		{
			name:  "null from the environment removes a setting",
			base:  overrideFull,
			o:     Overrides{Env: []string{"PORTSTORM_LOAD_MAX_IN_FLIGHT=null"}},
			check: func(p *Plan) any { return p.Load.MaxInFlight },
			want:  DefaultMaxInFlight,
		},
		{
			name:  "null of a group the file lacks creates nothing",
			o:     Overrides{Sets: []string{"baseline.file=null", "connection.tls=null"}},
			check: func(p *Plan) any { return [2]bool{p.Baseline == nil, p.Connection.TLS == nil} },
			want:  [2]bool{true, true},
		},
		{
			name:    "a group removed, then a key set: only that key",
			base:    overrideFull,
			o:       Overrides{Sets: []string{"baseline=null", "baseline.file=new.json"}},
			check:   func(p *Plan) any { return *p.Baseline },
			want:    Baseline{File: "new.json"},
			origins: map[string]string{"baseline": "--set baseline.file"},
		},
		{
			name:  "null removes a list element",
			base:  overrideFull,
			o:     Overrides{Sets: []string{"load.stages[0]=null"}},
			check: func(p *Plan) any { return p.Load.Stages },
			want:  []Stage{{Duration(20 * time.Second), 200}},
		},
		// Exclusive settings: the override's side replaces the file's.
		{
			name:    "target.addresses replaces the file's built-in target",
			o:       Overrides{Sets: []string{"target.addresses=[127.0.0.1:8080]"}},
			check:   func(p *Plan) any { return p.Target },
			want:    Target{Addresses: []string{"127.0.0.1:8080"}},
			origins: map[string]string{"target.addresses": "--set target.addresses"},
		},
		{
			name:  "target.builtin.mode replaces the file's addresses",
			base:  overrideFull,
			o:     Overrides{Sets: []string{"target.builtin.mode=sink"}},
			check: func(p *Plan) any { return [2]any{p.Target.Addresses, p.Target.Builtin.Mode} },
			want:  [2]any{[]string(nil), "sink"},
		},
		{
			name:  "an element of target.addresses",
			base:  overrideFull,
			o:     Overrides{Sets: []string{"target.addresses[1]=127.0.0.1:7"}},
			check: func(p *Plan) any { return p.Target.Addresses },
			want:  []string{"127.0.0.1:9", "127.0.0.1:7"},
		},
		{
			name:  "--set of the built-in target replaces the environment's addresses",
			o:     Overrides{Env: []string{"PORTSTORM_TARGET_ADDRESSES=[127.0.0.1:9]"}, Sets: []string{"target.builtin.mode=hold"}},
			check: func(p *Plan) any { return [2]any{p.Target.Addresses, p.Target.Builtin.Mode} },
			want:  [2]any{[]string(nil), "hold"},
		},
		{
			name:  "send.hex replaces the file's send.data",
			base:  overrideFull,
			o:     Overrides{Sets: []string{"connection.send.hex=0a0b"}},
			check: func(p *Plan) any { return [2]string{p.Connection.Send.Data, p.Connection.Send.Hex} },
			want:  [2]string{"", "0a0b"},
		},
		// List elements by index.
		{
			name:  "an element's setting",
			base:  overrideFull,
			o:     Overrides{Sets: []string{"load.stages[1].target=5"}},
			check: func(p *Plan) any { return p.Load.Stages },
			want:  []Stage{{Duration(10 * time.Second), 100}, {Duration(20 * time.Second), 5}},
			origins: map[string]string{
				"load.stages[1].target": "--set load.stages[1].target",
			},
		},
		{
			name:  "a whole element",
			base:  overrideFull,
			o:     Overrides{Sets: []string{"load.stages[0]={duration: 1s, target: 2}"}},
			check: func(p *Plan) any { return p.Load.Stages },
			want:  []Stage{{Duration(time.Second), 2}, {Duration(20 * time.Second), 200}},
		},
		{
			name: "the whole list, then an element of it (flag order)",
			o: Overrides{Sets: []string{"load.stages=[{duration: 1s, target: 1}, {duration: 2s, target: 2}]",
				"load.stages[1].duration=3s"}},
			check: func(p *Plan) any { return p.Load.Stages },
			want:  []Stage{{Duration(time.Second), 1}, {Duration(3 * time.Second), 2}},
		},
		{
			name:  "an element, then the whole list: the later wins",
			o:     Overrides{Sets: []string{"load.stages[0].target=7", "load.stages=[{duration: 1s, target: 1}]"}},
			check: func(p *Plan) any { return p.Load.Stages },
			want:  []Stage{{Duration(time.Second), 1}},
		},
		{
			name:  "the environment's list, then an element from --set",
			o:     Overrides{Env: []string{"PORTSTORM_LOAD_STAGES=[{duration: 1s, target: 1}]"}, Sets: []string{"load.stages[0].target=9"}},
			check: func(p *Plan) any { return p.Load.Stages },
			want:  []Stage{{Duration(time.Second), 9}},
		},
		{
			name:  "a key of a threshold written short keeps its expression",
			base:  overrideFull,
			o:     Overrides{Sets: []string{"thresholds[0].abort_on_fail=true"}},
			check: func(p *Plan) any { return p.Thresholds },
			want:  []Threshold{{Expr: "errors.rate == 0", AbortOnFail: true}, {Expr: "connect.p99 < 5ms"}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			base := cmp.Or(tc.base, overrideBase)
			p, err := Parse("base.yaml", []byte(base), tc.o)
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
		base string // the plan file (default overrideBase)
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
			name: "group instead of setting says how to remove it",
			o:    Overrides{Sets: []string{"baseline=1"}},
			want: []string{`--set baseline: is a group of settings; set one of its keys: baseline.file, baseline.max_regression, baseline.metrics, baseline.normalize (or baseline=null to remove it)`},
		},
		{
			name: "index out of range names the list's length",
			o:    Overrides{Sets: []string{"load.stages[1].target=5"}},
			want: []string{`--set load.stages[1].target: index 1 is out of range: load.stages has 1 element(s) (load.stages[0]); to add elements, set the whole list instead, like --set 'load.stages=[...]'`},
		},
		{
			name: "index out of range of a longer list",
			base: overrideFull,
			o:    Overrides{Sets: []string{"target.addresses[2]=127.0.0.1:1"}},
			want: []string{`--set target.addresses[2]: index 2 is out of range: target.addresses has 2 element(s) (target.addresses[0] to target.addresses[1]); to add elements, set the whole list instead, like --set 'target.addresses=[...]'`},
		},
		{
			name: "removing an element out of range",
			o:    Overrides{Sets: []string{"load.stages[3]=null"}},
			want: []string{`--set load.stages[3]: index 3 is out of range: load.stages has 1 element(s) (load.stages[0])`},
		},
		{
			name: "index into a list the plan lacks",
			o:    Overrides{Sets: []string{"thresholds[0].expr=connect.p99 < 1ms"}},
			want: []string{`--set thresholds[0].expr: the plan has no thresholds list to take element 0 of; set the whole list instead, like --set 'thresholds=[...]'`},
		},
		{
			name: "index into a value that is not a list",
			base: "version: 1\nname: x\ntarget: {builtin: {}}\nload: {stages: {duration: 1s}}\n",
			o:    Overrides{Sets: []string{"load.stages[0].target=1"}},
			want: []string{
				`--set load.stages[0].target: load.stages is a mapping in the plan, not a list; set the whole list instead, like --set 'load.stages=[...]'`,
				`base.yaml:4: load.stages: want a list, got a mapping`,
			},
		},
		{
			name: "a list's key without an index",
			o:    Overrides{Sets: []string{"load.stages.target=5"}},
			want: []string{`--set load.stages.target: load.stages: is a list; name one of its elements by its index from 0, like load.stages[0].target`},
		},
		{
			name: "index on a setting that is no list",
			o:    Overrides{Sets: []string{"load.model[0]=arrival"}},
			want: []string{`--set load.model[0]: load.model: is not a list; [N] selects an element of a list, like load.stages[0].target`},
		},
		{
			name: "index that is not a number",
			o:    Overrides{Sets: []string{"load.stages[-1].target=5", "load.stages[x]=1", "load.stages[01]=1"}},
			want: []string{
				`--set load.stages[-1].target: load.stages[-1]: want a list index from 0 in the brackets, got "-1"`,
				`--set load.stages[x]: want a list index from 0 in the brackets, got "x"`,
				`--set load.stages[01]: want a list index from 0 in the brackets, got "01"`,
			},
		},
		{
			name: "malformed brackets",
			o:    Overrides{Sets: []string{"load.stages[0.target=5", "load.stages]0[=1", "load.stages[0][1]=1", "[0]=1"}},
			want: []string{
				`--set load.stages[0.target: load.stages[0: want key[N], one index in brackets at the end of a key, like load.stages[0]`,
				`--set load.stages]0[: want key[N], one index in brackets at the end of a key, like load.stages[0]`,
				`--set load.stages[0][1]: want key[N], one index in brackets at the end of a key, like load.stages[0]`,
				`--set [0]: want a key before [N], like load.stages[0]`,
			},
		},
		{
			name: "unknown key below an element",
			o:    Overrides{Sets: []string{"load.stages[0].traget=5"}},
			want: []string{`--set load.stages[0].traget: unknown key (did you mean "target"?)`},
		},
		{
			name: "key below an element that is a single setting",
			base: overrideFull,
			o:    Overrides{Sets: []string{"target.addresses[0].host=x"}},
			want: []string{`--set target.addresses[0].host: target.addresses[0]: is a single setting with no keys below it`},
		},
		{
			name: "bad value of an element",
			o:    Overrides{Sets: []string{"load.stages[0].target=lots"}},
			want: []string{`--set load.stages[0].target: want a number, got "lots"`},
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
			_, err := Parse("base.yaml", []byte(cmp.Or(tc.base, overrideBase)), tc.o)
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

// TestValidateOverrideCases: what Validate says about plans overrides made; each names the
// override that set the value.
func TestValidateOverrideCases(t *testing.T) {
	for _, tc := range []struct {
		name string
		o    Overrides
		want []string
	}{
		{
			name: "an element's setting",
			o:    Overrides{Sets: []string{"load.stages[0].duration=0s"}},
			want: []string{`--set load.stages[0].duration: want more than 0s`},
		},
		{
			name: "two --set flags give both targets: neither is dropped",
			o:    Overrides{Sets: []string{"target.addresses=[127.0.0.1:9]", "target.builtin.mode=echo"}},
			want: []string{`target: set target.builtin or target.addresses, not both`},
		},
		{
			name: "two environment variables give both requests",
			o:    Overrides{Env: []string{"PORTSTORM_CONNECTION_SEND_DATA=x", "PORTSTORM_CONNECTION_SEND_HEX=0a"}},
			want: []string{`connection.send.hex: give the request once: data and hex are both set`},
		},
		{
			name: "the target removed and none given",
			o:    Overrides{Sets: []string{"target=null"}},
			want: []string{`target: set one of target.builtin`},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Parse("base.yaml", []byte(overrideBase), tc.o)
			if err != nil {
				t.Fatal(err)
			}
			p.Defaults()
			got := errors.Join(p.Validate()...)
			if got == nil {
				t.Fatal("valid")
			}
			for _, w := range tc.want {
				if !strings.Contains(got.Error(), w) {
					t.Errorf("%q not in:\n%v", w, got)
				}
			}
		})
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

// TestValues: the words completion offers for a setting are the words Validate accepts, for every
// enumerated setting, and no other setting has words.
func TestValues(t *testing.T) {
	const junk = "zz-not-a-word"
	for _, k := range Keys() {
		p, err := Parse("base.yaml", []byte(overrideBase), Overrides{Sets: []string{k + "=" + junk}})
		var accepted []string
		if err == nil {
			for _, e := range p.Validate() {
				var fe *FieldError
				if errors.As(e, &fe) && fe.Field == k {
					if list, ok := strings.CutPrefix(fe.Msg, "want one of "); ok {
						list, _, _ = strings.Cut(list, `, got "`+junk)
						accepted = strings.Split(list, ", ")
					}
				}
			}
		}
		if got := Values(k); accepted != nil && !reflect.DeepEqual(got, accepted) {
			t.Errorf("Values(%q) = %q; Validate accepts %q", k, got, accepted)
		}
		if _, ok := enums[k]; ok != (accepted != nil) {
			t.Errorf("%s: in enums %v, but Validate lists its words: %v", k, ok, accepted != nil)
		}
	}
	for k := range enums {
		if !slices.Contains(Keys(), k) {
			t.Errorf("enums names %q, which is no setting", k)
		}
	}
	for path, want := range map[string][]string{
		"connection.close":           {"fin", "rst", "half", "server"},
		"isolate":                    {"true", "false"},
		"load.max_connect_rate":      {"unlimited"},
		"load.workers":               {"auto"},
		"connection.send.count":      {"unlimited"},
		"connection.send.rate":       nil,
		"load.stages":                nil,
		"connection.connect_timeout": nil,
		"no.such.key":                nil,
	} {
		if got := Values(path); !reflect.DeepEqual(got, want) {
			t.Errorf("Values(%q) = %q, want %q", path, got, want)
		}
	}
}

func TestUnknownEnv(t *testing.T) {
	for _, tc := range []struct {
		name    string
		environ []string
		other   []string
		want    []string
	}{
		{name: "settings and other variables pass", environ: []string{"PORTSTORM_LOAD_MODEL=arrival", "HOME=/root", "PORTSTORM_CPUPROFILE=/tmp/p", "_PORTSTORM_MAIN=1"}, other: []string{"PORTSTORM_CPUPROFILE"}},
		{name: "a typo gets the nearest setting", environ: []string{"PORTSTORM_LOAD_MODLE=arrival"},
			want: []string{"PORTSTORM_LOAD_MODLE names no plan setting and is ignored (did you mean PORTSTORM_LOAD_MODEL?)"}},
		{name: "a group is no setting", environ: []string{"PORTSTORM_CONNECTION_SEND=x"},
			want: []string{"PORTSTORM_CONNECTION_SEND names no plan setting and is ignored; it names a group of settings: set one of them, like PORTSTORM_CONNECTION_SEND_PROTOCOL"}},
		{name: "nothing near", environ: []string{"PORTSTORM_TOKEN=x", "PORTSTORM_=", "PORTSTORM"},
			want: []string{
				"PORTSTORM_TOKEN names no plan setting and is ignored; a setting's variable is PORTSTORM_ and its key upper-cased, dots as underscores, like PORTSTORM_LOAD_MODEL",
				"PORTSTORM_ names no plan setting and is ignored; a setting's variable is PORTSTORM_ and its key upper-cased, dots as underscores, like PORTSTORM_LOAD_MODEL",
			}},
		{name: "lower case is not the prefix", environ: []string{"portstorm_load_model=x"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := UnknownEnv(tc.environ, tc.other...); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %q\nwant %q", got, tc.want)
			}
		})
	}
}
