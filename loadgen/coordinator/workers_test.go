package coordinator

import (
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/portstorm/portstorm/loadgen/plan"
	"github.com/portstorm/portstorm/loadgen/spec"
	"github.com/portstorm/portstorm/target"
)

func TestProcsEnv(t *testing.T) {
	env := []string{"A=1"}
	if got := procsEnv(env, 0); len(got) != 1 {
		t.Errorf("procsEnv(env, 0) = %v, want env unchanged", got)
	}
	// No environment given: the processes get none, not this process's own (exec.Cmd's nil Env).
	if got := procsEnv(nil, 0); got == nil || len(got) != 0 {
		t.Errorf("procsEnv(nil, 0) = %#v, want an empty environment", got)
	}
	got := procsEnv(env, 3)
	if len(got) != 2 || got[1] != "GOMAXPROCS=3" || len(env) != 1 {
		t.Errorf("procsEnv(env, 3) = %v (env now %v), want GOMAXPROCS=3 appended to a copy", got, env)
	}
}

// TestBuiltinHeaderTimeout: target.builtin.header_timeout reaches the target in this process and
// every target process's configuration (JSON on its stdin); unset, each keeps the target's own
// default (zero).
func TestBuiltinHeaderTimeout(t *testing.T) {
	for _, tt := range []struct {
		name string
		set  plan.Duration
	}{
		{"set", plan.Duration(1500 * time.Millisecond)},
		{"unset", 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := &plan.Plan{Target: plan.Target{Builtin: &plan.Builtin{Mode: "http", Listeners: 1, HeaderTimeout: tt.set}},
				Source: plan.Source{Ports: plan.Ports{Strategy: "kernel"}}, Connection: plan.Connection{Close: "fin"}}
			cfg, err := (&builtin{}).config(compile(t, p).Target)
			if err != nil {
				t.Fatal(err)
			}
			if cfg.HeaderTimeout != tt.set.D() {
				t.Errorf("in-process HeaderTimeout %v, want %v", cfg.HeaderTimeout, tt.set.D())
			}
			in, err := targetInput(cfg, nil, cfg.Listen, true)
			if err != nil {
				t.Fatal(err)
			}
			var tp spec.TargetProcess
			if err := json.Unmarshal(in, &tp); err != nil {
				t.Fatal(err)
			}
			if tp.Config.HeaderTimeout != tt.set.D() || tp.Config.Mode != target.ModeHTTP || !tp.Config.ReusePort {
				t.Errorf("target process config %+v, want HeaderTimeout %v, http, SO_REUSEPORT", tp.Config, tt.set.D())
			}
		})
	}
}

// TestTargetInput: every target process shares the listeners and serves the run's certificate;
// only the first picks its ports below the clients' range.
func TestTargetInput(t *testing.T) {
	cert := &builtinTLS{certPEM: []byte("cert"), keyPEM: []byte("key")}
	cfg := target.Config{Mode: target.ModeEcho, PortBelow: 32768, CloseFirst: true, CloseAfter: 128}
	for _, first := range []bool{true, false} {
		in, err := targetInput(cfg, cert, []string{"127.0.0.1:5000"}, first)
		if err != nil {
			t.Fatal(err)
		}
		var tp spec.TargetProcess
		if err := json.Unmarshal(in, &tp); err != nil {
			t.Fatal(err)
		}
		c := tp.Config
		wantBelow := 0
		if first {
			wantBelow = 32768
		}
		if c.PortBelow != wantBelow || !c.ReusePort || !slices.Equal(c.Listen, []string{"127.0.0.1:5000"}) ||
			!c.CloseFirst || c.CloseAfter != 128 || string(tp.CertPEM) != "cert" || string(tp.KeyPEM) != "key" {
			t.Errorf("first %v: %+v", first, tp)
		}
	}
}

// TestCompileReadsInjectedEnv: a GOMAXPROCS in the environment given to Main is kept by every
// process (no share of the cores is set); the coordinator's own environment is not read.
func TestCompileReadsInjectedEnv(t *testing.T) {
	p := &plan.Plan{Target: plan.Target{Builtin: &plan.Builtin{Mode: "hold", Processes: 1}},
		Source: plan.Source{Ports: plan.Ports{Strategy: "kernel"}}, Connection: plan.Connection{Close: "fin"},
		Load: plan.Load{Model: "concurrency", Stages: []plan.Stage{{Duration: plan.Duration(time.Second), Target: 10}}}}
	for _, tt := range []struct {
		name   string
		env    []string
		shared bool
	}{
		{"GOMAXPROCS given", []string{"A=1", "GOMAXPROCS=3"}, false},
		{"GOMAXPROCS empty", []string{"GOMAXPROCS="}, true},
		{"none", []string{"A=1"}, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s, err := spec.Compile(p, Facts(tt.env))
			if err != nil {
				t.Fatal(err)
			}
			if got := s.Layout.GenProcs > 0; got != tt.shared {
				t.Errorf("layout %+v: cores shared %v, want %v", s.Layout, got, tt.shared)
			}
		})
	}
}
