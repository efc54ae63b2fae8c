package coordinator

import (
	"encoding/json"
	"net/netip"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/portstorm/portstorm/loadgen/dial"
	"github.com/portstorm/portstorm/loadgen/engine"
	"github.com/portstorm/portstorm/loadgen/plan"
	"github.com/portstorm/portstorm/loadgen/proto"
	"github.com/portstorm/portstorm/loadgen/spec"
	"github.com/portstorm/portstorm/target"
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

// TestWorkerSpec: a worker's segment of the spec, as it travels (a JSON file), keeps the typed
// values compiled from the plan, its own cut of the port window, the resolved destinations, and
// trusts the built-in target's certificate; it never starts a target of its own.
func TestWorkerSpec(t *testing.T) {
	p := &plan.Plan{Version: 1, Name: "w",
		Target:     plan.Target{Builtin: &plan.Builtin{Mode: "http", TLS: true}},
		Source:     plan.Source{Ports: plan.Ports{Strategy: "range", Range: "40000-40999"}},
		Connection: plan.Connection{Close: "half", Send: &plan.Send{Protocol: "http", Count: 2, HTTP: &plan.HTTPRequest{Method: "GET", Path: "/"}}},
		Load:       plan.Load{Model: "arrival", Stages: []plan.Stage{{Duration: plan.Duration(time.Second), Target: 10}}},
	}
	p.Defaults()
	if errs := p.Validate(); len(errs) > 0 {
		t.Fatal(errs)
	}
	s := compile(t, p)
	dsts := []dial.Destination{dial.NewDestination(netip.MustParseAddrPort("127.0.0.1:7000"))}
	cert := []byte("the built-in target's certificate")
	for i, want := range []dial.Window{{Lo: 40000, Hi: 40499}, {Lo: 40500, Hi: 40999}} {
		ws, err := s.Segment(i, 2, destinations(dsts), cert)
		if err != nil {
			t.Fatal(err)
		}
		f := filepath.Join(t.TempDir(), "segment.json")
		if err := ws.Write(f); err != nil {
			t.Fatal(err)
		}
		got, err := spec.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if got.Close != dial.CloseHalf || got.Model != engine.Arrival || got.Strategy != dial.StrategyRange || got.Window != want {
			t.Errorf("segment %d: close %v, model %v, strategy %v, window %v; want half, arrival, range, %v", i, got.Close, got.Model, got.Strategy, got.Window, want)
		}
		if got.Target != nil || got.Layout.Workers != 1 || !slices.Equal(got.Addresses, []string{"127.0.0.1:7000"}) {
			t.Errorf("segment %d: target %v, layout %+v, addresses %v", i, got.Target, got.Layout, got.Addresses)
		}
		if got.TLS == nil || got.TLS.Builtin || string(got.TLS.CAPEM) != string(cert) {
			t.Errorf("segment %d: TLS %+v, want the built-in certificate as its CA", i, got.TLS)
		}
		if got.Send == nil || got.Send.Exchange.Protocol != proto.HTTP || got.Send.Count != 2 || got.Ramp.Total() != time.Second {
			t.Errorf("segment %d: send %+v, ramp %+v", i, got.Send, got.Ramp)
		}
	}
}
