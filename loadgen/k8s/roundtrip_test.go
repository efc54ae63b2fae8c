package k8s

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/portstorm/portstorm/loadgen/plan"
)

// TestPodPlanValidates renders every example plan and loads the pod plan back as a pod does: it
// must be valid, and resolve to the same plan (the segments' plan hash is the whole run's).
func TestPodPlanValidates(t *testing.T) {
	files, _ := filepath.Glob("../../configs/*.yaml")
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			p, err := plan.LoadFile(f, plan.Overrides{})
			if err != nil {
				t.Skip(err)
			}
			p.Defaults()
			if errs := p.Validate(); len(errs) > 0 {
				t.Skip(errs)
			}
			o := Options{Parallelism: 3}
			if _, err := FromPlan(p, &o, Checks{AllowBuiltinTarget: true, UnsafeSysctls: true}); err != nil {
				t.Logf("refused: %v", err)
				return
			}
			dir := t.TempDir()
			pf := filepath.Join(dir, "plan.yaml")
			os.WriteFile(pf, o.Plan, 0o600)
			q, err := plan.LoadFile(pf, plan.Overrides{})
			if err != nil {
				t.Fatalf("%v\n%s", err, o.Plan)
			}
			q.Defaults()
			for _, err := range q.Validate() {
				t.Errorf("pod plan: %v", err)
			}
		})
	}
}
