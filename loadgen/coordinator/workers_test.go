package coordinator

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/portstorm/portstorm/loadgen/plan"
	"github.com/portstorm/portstorm/loadgen/preflight"
)

// TestPlanLayout: processes by the fd limit or the plan, and the cores shared between the two
// sides only when the target runs as processes of its own and GOMAXPROCS was not set.
func TestPlanLayout(t *testing.T) {
	hold := func(peak float64, workers, targets plan.Count) *plan.Plan {
		return &plan.Plan{
			Target: plan.Target{Builtin: &plan.Builtin{Mode: "hold", Processes: targets}},
			Load: plan.Load{Model: "concurrency", Workers: workers,
				Stages: []plan.Stage{{Duration: plan.Duration(1e9), Target: peak}}},
		}
	}
	for _, tt := range []struct {
		name                  string
		p                     *plan.Plan
		cores                 int
		procsSet              bool
		workers, targets      int
		genProcs, targetProcs int
	}{
		{"small, one process", hold(1000, 0, 0), 2, false, 1, 0, 0, 0},
		{"target apart on 2 cores", hold(1000, 0, 1), 2, false, 1, 1, 1, 1},
		{"target apart on 8 cores", hold(1000, 0, 1), 8, false, 1, 1, 4, 4},
		{"3 cores: the odd one to the generator", hold(1000, 0, 1), 3, false, 1, 1, 2, 1},
		{"fd limit: 4 and 4 on 2 cores", hold(60000, 0, 0), 2, false, 4, 4, 1, 1},
		{"fd limit: 4 and 4 on 16 cores", hold(60000, 0, 0), 16, false, 4, 4, 2, 2},
		{"GOMAXPROCS set: kept", hold(60000, 0, 0), 2, true, 4, 4, 0, 0},
		{"one core", hold(1000, 2, 3), 1, false, 2, 3, 1, 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			l := planLayout(tt.p, preflight.Host{Cores: tt.cores, FDHard: 20000}, tt.procsSet)
			if l.workers != tt.workers || l.targets != tt.targets || l.genProcs != tt.genProcs || l.targetProcs != tt.targetProcs {
				t.Errorf("layout %+v, want workers %d, targets %d, GOMAXPROCS %d and %d",
					l, tt.workers, tt.targets, tt.genProcs, tt.targetProcs)
			}
			if tt.genProcs > 0 && !strings.Contains(l.why, "GOMAXPROCS") {
				t.Errorf("why %q does not say how the cores are shared", l.why)
			}
		})
	}
}

func TestProcsEnv(t *testing.T) {
	env := []string{"A=1"}
	if got := procsEnv(env, 0); len(got) != 1 {
		t.Errorf("procsEnv(env, 0) = %v, want env unchanged", got)
	}
	got := procsEnv(env, 3)
	if len(got) != 2 || got[1] != "GOMAXPROCS=3" || len(env) != 1 {
		t.Errorf("procsEnv(env, 3) = %v (env now %v), want GOMAXPROCS=3 appended to a copy", got, env)
	}
}

// TestBuiltinHeaderTimeout: target.builtin.header_timeout reaches the target in this process and
// every target process's flags; unset, each keeps the target's own default.
func TestBuiltinHeaderTimeout(t *testing.T) {
	for _, tt := range []struct {
		name string
		set  plan.Duration
		args []string // the flag and its value, nil for none
	}{
		{"set", plan.Duration(1500 * time.Millisecond), []string{"--header-timeout", "1.5s"}},
		{"unset", 0, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := &plan.Plan{Target: plan.Target{Builtin: &plan.Builtin{Mode: "http", Listeners: 1, HeaderTimeout: tt.set}}}
			cfg, err := newPortRun(p).builtinTarget()
			if err != nil {
				t.Fatal(err)
			}
			if cfg.HeaderTimeout != tt.set.D() {
				t.Errorf("in-process HeaderTimeout %v, want %v", cfg.HeaderTimeout, tt.set.D())
			}
			args := targetArgs(cfg, nil, cfg.Listen, true)
			i := slices.Index(args, "--header-timeout")
			switch {
			case tt.args == nil && i >= 0:
				t.Errorf("target process args %q set --header-timeout", args)
			case tt.args != nil && (i < 0 || !slices.Equal(args[i:i+2], tt.args)):
				t.Errorf("target process args %q, want %q among them", args, tt.args)
			}
		})
	}
}
