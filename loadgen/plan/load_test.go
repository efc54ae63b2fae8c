package plan

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// badCase is one row of testdata/bad/cases.tsv: a plan file that must be refused, the line the
// refusal must name and the field path it must name ("-" when the problem is the whole document).
type badCase struct {
	file string
	line int
	key  string
}

func readBadCases(t testing.TB) []badCase {
	t.Helper()
	f, err := os.Open("testdata/bad/cases.tsv")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var cases []badCase
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		if n == 1 || strings.TrimSpace(sc.Text()) == "" {
			continue // header
		}
		cols := strings.Split(sc.Text(), "\t")
		if len(cols) != 3 {
			t.Fatalf("cases.tsv:%d: want 3 tab-separated columns, got %q", n, sc.Text())
		}
		line, err := strconv.Atoi(cols[1])
		if err != nil {
			t.Fatalf("cases.tsv:%d: line: %v", n, err)
		}
		cases = append(cases, badCase{file: cols[0], line: line, key: cols[2]})
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return cases
}

// loadAll runs the intended sequence and returns every error it reports.
func loadAll(path string, o Overrides) (*Plan, []error) {
	p, err := LoadFile(path, o)
	if err != nil {
		var es Errors
		if errors.As(err, &es) {
			return nil, es.Unwrap()
		}
		return nil, []error{err}
	}
	p.Defaults()
	return p, p.Validate()
}

func TestBadPlans(t *testing.T) {
	cases := readBadCases(t)
	if len(cases) < 14 {
		t.Fatalf("cases.tsv has %d rows, want at least 14", len(cases))
	}
	files, _ := filepath.Glob("testdata/bad/*.yaml")
	if len(files) != len(cases) {
		t.Errorf("testdata/bad has %d plans but cases.tsv %d rows: every bad plan needs a row", len(files), len(cases))
	}
	for _, tc := range cases {
		t.Run(strings.TrimSuffix(tc.file, ".yaml"), func(t *testing.T) {
			_, errs := loadAll(filepath.Join("testdata/bad", tc.file), Overrides{})
			if len(errs) == 0 {
				t.Fatal("accepted, want errors")
			}
			at := fmt.Sprintf("%s:%d: ", tc.file, tc.line)
			for _, err := range errs {
				msg := err.Error()
				if !strings.Contains(msg, at) {
					continue
				}
				if tc.key != "-" && !strings.Contains(msg, ": "+tc.key+": ") {
					continue
				}
				var fe *FieldError
				if !errors.As(err, &fe) {
					t.Errorf("%q is a %T, want *FieldError", msg, err)
				}
				t.Log(msg)
				return
			}
			t.Errorf("no error names %q and key %q; got:\n%s", at, tc.key, errors.Join(errs...))
		})
	}
}

func TestStrictPassMessages(t *testing.T) {
	tests := []struct {
		name, file string
		want       []string
	}{
		{"suggests the nearest key", "unknown_top.yaml", []string{`unknown_top.yaml:12: outptu: unknown key (did you mean "output"?)`}},
		{"suggests in a stage", "unknown_stage.yaml", []string{`:12: load.stages[1].duraton: unknown key (did you mean "duration"?)`}},
		{"duplicate names both lines", "duplicate_nested.yaml", []string{`:9: load.model: duplicate key (first at line 8)`}},
		{"integer", "string_for_int.yaml", []string{`load.max_in_flight: want an integer, got "abc"`}},
		{"list", "map_for_list.yaml", []string{`load.stages: want a list, got a mapping`}},
		{"string", "list_for_string.yaml", []string{`name: want a string, got a list`}},
		{"duration with a space", "duration_space.yaml", []string{`connect_timeout: want a duration with a unit`, `got "10 s"`}},
		{"bare duration", "duration_bare.yaml", []string{`got "10"`}},
		{"negative rate", "rate_negative.yaml", []string{`load.max_connect_rate: want a number above 0 (per second), or "unlimited" for no limit, got "-5"`}},
		{"zero rate", "rate_zero.yaml", []string{`load.max_connect_rate:`, `"unlimited"`}},
		{"alias", "alias.yaml", []string{`:7: connection.io_timeout: aliases (*t) are not allowed`}},
		{"not a mapping", "not_mapping.yaml", []string{`not_mapping.yaml:1: the plan must be a mapping`}},
		{"empty", "empty.yaml", []string{`empty.yaml:1: the plan is empty`}},
		{"syntax", "syntax_error.yaml", []string{`syntax_error.yaml:8: invalid YAML: did not find expected key`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := LoadFile(filepath.Join("testdata/bad", tc.file), Overrides{})
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestStrictPassCollectsEveryError(t *testing.T) {
	src := `version: one
name: [x]
target:
  builtin: {mode: echo, listenrs: 2}
connection:
  connect_timeout: 10
load:
  stagse: []
  stages: {}
`
	_, err := Parse("p.yaml", []byte(src), Overrides{})
	var es Errors
	if !errors.As(err, &es) {
		t.Fatalf("got %v, want Errors", err)
	}
	want := []string{"p.yaml:1: version:", "p.yaml:2: name:", "p.yaml:4: target.builtin.listenrs:", "p.yaml:6: connection.connect_timeout:", "p.yaml:8: load.stagse:", "p.yaml:9: load.stages:"}
	if len(es) != len(want) {
		t.Fatalf("got %d errors, want %d:\n%v", len(es), len(want), err)
	}
	for i, w := range want {
		if !strings.HasPrefix(es[i].Error(), w) {
			t.Errorf("error %d = %q, want prefix %q", i, es[i], w)
		}
	}
	if got := strings.Count(err.Error(), "\n") + 1; got != len(want) {
		t.Errorf("Errors renders %d lines, want one per problem", got)
	}
}

func TestTooBig(t *testing.T) {
	big := []byte("version: 1\n# " + strings.Repeat("x", MaxFileSize) + "\n")
	path := filepath.Join(t.TempDir(), "big.yaml")
	if err := os.WriteFile(path, big, 0o600); err != nil {
		t.Fatal(err)
	}
	for name, load := range map[string]func() error{
		"LoadFile": func() error { _, err := LoadFile(path, Overrides{}); return err },
		"Parse":    func() error { _, err := Parse(path, big, Overrides{}); return err },
	} {
		t.Run(name, func(t *testing.T) {
			err := load()
			if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), strconv.Itoa(len(big))) {
				t.Errorf("got %v, want an error naming %s and its size %d", err, path, len(big))
			}
		})
	}
}

func TestSecondDocumentRefused(t *testing.T) {
	_, err := Parse("two.yaml", []byte("version: 1\n---\nversion: 1\n"), Overrides{})
	if err == nil || !strings.Contains(err.Error(), "two.yaml:2:") {
		t.Errorf("got %v, want an error at two.yaml:2", err)
	}
}

func TestGoodPlans(t *testing.T) {
	files, _ := filepath.Glob("testdata/good/*.yaml")
	if len(files) == 0 {
		t.Fatal("no good plans in testdata/good")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			p, errs := loadAll(f, Overrides{})
			if len(errs) > 0 {
				t.Fatalf("refused:\n%v", errors.Join(errs...))
			}
			if p.Name == "" || p.Load.Model == "" || p.Output.Interval == 0 {
				t.Errorf("defaults not filled: %+v", p)
			}
		})
	}
}

func TestQuickstartResolved(t *testing.T) {
	p, errs := loadAll("testdata/good/quickstart.yaml", Overrides{})
	if len(errs) > 0 {
		t.Fatal(errors.Join(errs...))
	}
	want := &Plan{
		Version: 1,
		Name:    "quickstart",
		Target: Target{Builtin: &Builtin{
			Mode: "echo", Listeners: 1, IdleTimeout: Duration(time.Minute), MaxFrame: 64 << 10, Address: "127.0.0.1",
		}},
		Source: Source{Addresses: []string{"127.0.0.1"}, Ports: Ports{Strategy: "kernel"}},
		Connection: Connection{
			ConnectTimeout: Duration(3 * time.Second),
			IOTimeout:      Duration(5 * time.Second),
			Send:           &Send{Protocol: "raw", Bytes: 64, Count: 1, Expect: "echo", MaxResponse: DefaultMaxResponse},
			Close:          "fin",
			OnConnectFailure: OnConnectFailure{BackoffAfter: DefaultBackoffAfter, Backoff: DefaultBackoff, MaxBackoff: DefaultMaxBackoff,
				MaxFailRate: DefaultMaxFailRate, GiveUpAfter: DefaultGiveUpAfter, GiveUpAttempts: DefaultGiveUpAttempts},
		},
		Load: Load{
			Model: "concurrency",
			Stages: []Stage{
				{Duration(10 * time.Second), 1000},
				{Duration(30 * time.Second), 1000},
				{Duration(5 * time.Second), 0},
			},
			MaxInFlight:  20000,
			OnSaturation: "queue",
			GracefulStop: Duration(5 * time.Second),
		},
		Thresholds: []Threshold{
			{Expr: "connect.p99 < 5ms"},
			{Expr: "errors.rate < 0.1%"},
			{Expr: "connections.peak >= 1000"},
			{Expr: "ports.exhausted_at == none", AbortOnFail: true},
		},
		Baseline: &Baseline{File: "results/baseline/quickstart.json", MaxRegression: 0.10},
		Output:   Output{Dir: "results", Interval: Duration(time.Second)},
	}
	if !equalPlans(p, want) {
		t.Errorf("resolved plan:\n%s\nwant:\n%s", mustJSON(t, p), mustJSON(t, want))
	}
	for path, line := range map[string]int{
		"version":                     1,
		"target.builtin.mode":         4,
		"load.stages":                 16,
		"load.stages[1]":              18,
		"load.stages[1].target":       18,
		"thresholds[3].abort_on_fail": 26,
		"thresholds[0].expr":          23,
		"output.interval":             28,
	} {
		if got := p.Lines[path]; got != line {
			t.Errorf("Lines[%q] = %d, want %d", path, got, line)
		}
	}
	if len(p.Origins) != 0 {
		t.Errorf("Origins = %v, want none without overrides", p.Origins)
	}
}

// equalPlans compares plans, ignoring where they were read from.
func equalPlans(a, b *Plan) bool {
	x, y := *a, *b
	x.File, x.Lines, x.Origins = "", nil, nil
	y.File, y.Lines, y.Origins = "", nil, nil
	return reflect.DeepEqual(x, y)
}

func mustJSON(t testing.TB, v any) string {
	t.Helper()
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestRoundTrip(t *testing.T) {
	files, _ := filepath.Glob("testdata/good/*.yaml")
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			p, errs := loadAll(f, Overrides{})
			if len(errs) > 0 {
				t.Fatal(errors.Join(errs...))
			}
			out, err := yaml.Marshal(p)
			if err != nil {
				t.Fatal(err)
			}
			q, err := Parse("again.yaml", out, Overrides{})
			if err != nil {
				t.Fatalf("marshalled plan does not load: %v\n%s", err, out)
			}
			if !equalPlans(p, q) {
				t.Errorf("round trip changed the plan:\n%s", out)
			}

			// JSON is the resolved plan in summary.json: readable units, and it decodes back.
			js := mustJSON(t, p)
			for _, w := range []string{`"connect_timeout": "`, `"interval": "`} {
				if !strings.Contains(js, w) {
					t.Errorf("JSON lacks %s:\n%s", w, js)
				}
			}
			var r Plan
			if err := json.Unmarshal([]byte(js), &r); err != nil {
				t.Fatal(err)
			}
			if !equalPlans(p, &r) {
				t.Errorf("JSON round trip changed the plan:\n%s", js)
			}
		})
	}
}

func TestNullLeavesUnset(t *testing.T) {
	src := "version: 1\nname:\ntarget:\n  builtin:\n  addresses: [\"127.0.0.1:80\"]\nconnection:\n  send: ~\nload:\n  stages: [{duration: 1s, target: 1}]\n"
	p, err := Parse("null.yaml", []byte(src), Overrides{})
	if err != nil {
		t.Fatal(err)
	}
	p.Defaults()
	if errs := p.Validate(); len(errs) > 0 {
		t.Fatal(errors.Join(errs...))
	}
	if p.Target.Builtin != nil || p.Connection.Send != nil || p.Name != "null" {
		t.Errorf("got builtin %v, send %v, name %q; want nil, nil, \"null\"", p.Target.Builtin, p.Connection.Send, p.Name)
	}
}
