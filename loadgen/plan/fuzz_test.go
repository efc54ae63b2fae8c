package plan

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// FuzzLoad: Parse never panics, and a plan that Parse, Defaults and Validate accept, written out as
// YAML, parses back to the same plan (and is still valid).
func FuzzLoad(f *testing.F) {
	for _, pattern := range []string{"testdata/good/*.yaml", "testdata/bad/*.yaml", "../../configs/*.yaml"} {
		files, _ := filepath.Glob(pattern)
		for _, file := range files {
			data, err := os.ReadFile(file)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(data)
		}
	}
	// Binary junk, long values, and plans with problems in both passes (a partial plan).
	for _, seed := range []string{
		"version: 1\nname: x\x00y\n",
		"version: 1\nname: \xff\xfe\n",
		"\x07version: 1\n",
		"version: 1\nname: \"h\xc3\xa9llo\x7f\"\n",
		"version: 1: 2\n",
		"version: 1\nname: " + strings.Repeat("n", 300) + "\n" + strings.Repeat("k", 200) + ": 1\n",
		"version: one\nname: [x]\ntarget: {addresses: {a: b}}\nload: {model: storm, max_in_flight: -1, stages: [{duration: 5, target: 1}]}\n",
		"version: 1\ntarget: {builtin: {mode: mirror}}\nlaod: {}\nload: {stages: [{duration: 1s, target: x}]}\nthresholds: [[]]\n",
		"version: 1\ntarget: {addresses: [\"127.0.0.1:9\"]}\nconnection: {tls: {ca_file: /}, send: {file: /dev/null}}\nload: {stages: [{duration: 1s, target: 1}]}\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := Parse("fuzz.yaml", data, Overrides{})
		if err != nil {
			var es Errors
			if !errors.As(err, &es) {
				t.Fatalf("Parse's error is a %T, want Errors: %v", err, err)
			}
			for _, e := range es {
				if e.Line <= 0 && e.Origin == "" && len(data) <= MaxFileSize {
					t.Fatalf("an error without a line: %v", e)
				}
			}
			if p != nil { // a partial plan: the checks of what decoded must not panic
				p.Defaults()
				p.Validate()
			}
			return
		}
		p.Defaults()
		if errs := p.Validate(); len(errs) > 0 {
			return
		}
		out, err := yaml.Marshal(p)
		if err != nil {
			t.Fatalf("marshal a valid plan: %v", err)
		}
		q, err := Parse("fuzz.yaml", out, Overrides{})
		if err != nil {
			t.Fatalf("a valid plan, written out, does not parse: %v\n%s", err, out)
		}
		if !equalPlans(p, q) {
			t.Fatalf("round trip changed the plan:\n%s", out)
		}
		if errs := q.Validate(); len(errs) > 0 {
			t.Fatalf("round trip made the plan invalid: %v\n%s", errs, out)
		}
	})
}

// FuzzOverrides: any --set flag (key and value) and environment variable on a plan never panics,
// every error names its override or a line, and a plan the overrides leave valid, written out as
// YAML, parses back to the same plan.
func FuzzOverrides(f *testing.F) {
	for _, seed := range [][3]string{
		{"baseline=null", "", ""},
		{"target.addresses=[127.0.0.1:8080]", "PORTSTORM_TARGET_BUILTIN_MODE", "sink"},
		{"load.stages[0].target=5", "PORTSTORM_LOAD_STAGES", "[{duration: 1s, target: 1}]"},
		{"load.stages[1]=null", "", ""},
		{"load.stages[9].target=5", "", ""},
		{"thresholds[0].abort_on_fail=true", "", ""},
		{"thresholds[1]={expr: x}", "", ""},
		{"target.addresses[0]", "", ""},
		{"load.stages[x][0]=1", "", ""},
		{"load.stages[-1]=", "", ""},
		{"[0]=1", "", ""},
		{"connection.send.hex=0a", "PORTSTORM_CONNECTION_SEND_FILE", "x"},
		{"target=~", "", ""},
		{"load=null", "", ""},
		{"connection.send.http.headers[0]=X: y", "", ""},
		{"name=a\n---\nb", "", ""},
	} {
		f.Add(seed[0], seed[1], seed[2])
	}
	f.Fuzz(func(t *testing.T, set, envName, envVal string) {
		o := Overrides{Sets: []string{set}, Env: []string{envName + "=" + envVal}}
		p, err := Parse("full.yaml", []byte(overrideFull), o)
		if err != nil {
			var es Errors
			if !errors.As(err, &es) {
				t.Fatalf("Parse's error is a %T, want Errors: %v", err, err)
			}
			for _, e := range es {
				if e.Line <= 0 && e.Origin == "" {
					t.Fatalf("an error without a line or an override: %v", e)
				}
			}
			if p != nil {
				p.Defaults()
				p.Validate()
			}
			return
		}
		p.Defaults()
		if errs := p.Validate(); len(errs) > 0 {
			return
		}
		out, err := yaml.Marshal(p)
		if err != nil {
			t.Fatalf("marshal a valid plan: %v", err)
		}
		q, err := Parse("fuzz.yaml", out, Overrides{})
		if err != nil {
			t.Fatalf("a valid plan, written out, does not parse: %v\n%s", err, out)
		}
		if !equalPlans(p, q) {
			t.Fatalf("round trip changed the plan:\n%s", out)
		}
	})
}
