package plan

import (
	"os"
	"path/filepath"
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
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := Parse("fuzz.yaml", data, Overrides{})
		if err != nil {
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
