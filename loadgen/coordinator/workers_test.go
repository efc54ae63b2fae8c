package coordinator

import (
	"slices"
	"testing"
	"time"

	"github.com/portstorm/portstorm/loadgen/plan"
)

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
			p := &plan.Plan{Target: plan.Target{Builtin: &plan.Builtin{Mode: "http", Listeners: 1, HeaderTimeout: tt.set}},
				Source: plan.Source{Ports: plan.Ports{Strategy: "kernel"}}, Connection: plan.Connection{Close: "fin"}}
			cfg, err := newPortRun(compile(t, p)).builtinTarget()
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
