package coordinator

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/portstorm/portstorm/loadgen/plan"
	"github.com/portstorm/portstorm/loadgen/spec"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// compile is p's spec on this host, as run compiles it.
func compile(t *testing.T, p *plan.Plan) *spec.Spec {
	t.Helper()
	s, err := spec.Compile(p, Facts(nil))
	if err != nil {
		t.Fatal(err)
	}
	return s
}
