package coordinator

import (
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestTakesOnlyTheSpec: the coordinator carries out the compiled spec and never reads the plan
// type (docs/architecture.md): no file of the package but its tests imports loadgen/plan. What
// must still be a plan (summary.json's plan, the preflight's and the gate's input) is the spec's
// Plan field.
func TestTakesOnlyTheSpec(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		af, err := parser.ParseFile(token.NewFileSet(), f, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range af.Imports {
			if path, _ := strconv.Unquote(imp.Path.Value); path == "github.com/portstorm/portstorm/loadgen/plan" {
				t.Errorf("%s imports %s", f, path)
			}
		}
	}
}
