package spec

import (
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/portstorm/portstorm/loadgen/dial"
	"github.com/portstorm/portstorm/loadgen/engine"
	"github.com/portstorm/portstorm/loadgen/proto"

	"github.com/portstorm/portstorm/loadgen/isolate"
	"github.com/portstorm/portstorm/loadgen/plan"
	"github.com/portstorm/portstorm/loadgen/preflight"
)

// TestHash: the hash of a run (a shard folder's plan hash) is the same for the same plan compiled
// on different machines (other limits, another process layout), so that the segments of a
// distributed run agree, and differs for another plan; it survives the spec's trip through a file
// (what portstorm merge reads).
func TestHash(t *testing.T) {
	other := preflight.Host{Cores: 64, FDHard: 1000, Hostname: "elsewhere", PortRange: preflight.PortRange{Lo: 1024, Hi: 65535}}
	hash := func(p *plan.Plan, h preflight.Host, procsSet bool) string {
		t.Helper()
		s, err := Compile(p, Facts{Host: h, ProcsSet: procsSet})
		if err != nil {
			t.Fatal(err)
		}
		f := filepath.Join(t.TempDir(), "spec.json")
		if err := s.Write(f); err != nil {
			t.Fatal(err)
		}
		back, err := ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		a, err := s.Hash()
		if err != nil {
			t.Fatal(err)
		}
		if b, err := back.Hash(); err != nil || b != a {
			t.Fatalf("hash %s, read back %s (%v)", a, b, err)
		}
		return a
	}
	big := base()
	big.Load.Stages[0].Target = 50000 // several worker processes on a host of 1000 descriptors
	changed := base()
	changed.Connection.Close = "rst"
	// Every example plan survives the trip through a file: what merge reads is the run hashed.
	files, err := filepath.Glob("../../configs/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		p, err := plan.LoadFile(f, plan.Overrides{})
		if err != nil {
			t.Fatal(err)
		}
		p.Defaults()
		hash(p, host, false)
	}
	// A websocket plan of generated messages: the bytes are made by each process, not the spec.
	ws, err := plan.LoadFile("../../configs/websocket.yaml", plan.Overrides{})
	if err != nil {
		t.Fatal(err)
	}
	ws.Defaults()
	for _, tt := range []struct {
		name string
		a, b string
		same bool
	}{
		{"another host", hash(base(), host, false), hash(base(), other, true), true},
		{"websocket on two hosts", hash(ws, host, false), hash(ws, other, false), true},
		{"another layout", hash(big, host, false), hash(big, other, false), true},
		{"another plan", hash(base(), host, false), hash(changed, host, false), false},
	} {
		if (tt.a == tt.b) != tt.same {
			t.Errorf("%s: hashes %s and %s, same %v, want %v", tt.name, tt.a, tt.b, tt.a == tt.b, tt.same)
		}
	}
}

// TestIsolate: isolate: true and the netns: sysctls are compiled once into the spec (the CLI
// reads them from there), and a segment never isolates again.
func TestIsolate(t *testing.T) {
	for _, tt := range []struct {
		name string
		edit func(*plan.Plan)
		want *isolate.Sysctls
	}{
		{"not isolated", func(*plan.Plan) {}, nil},
		{"isolated", func(p *plan.Plan) { p.Isolate = true }, &isolate.Sysctls{}},
		{"with sysctls", func(p *plan.Plan) {
			p.Isolate = true
			p.Netns = &plan.Netns{PortRange: "20000-20999", TWReuse: "1", MaxTWBuckets: 100, TWReuseDelay: plan.Duration(250 * time.Millisecond)}
		}, &isolate.Sysctls{PortRange: "20000-20999", TWReuse: "1", MaxTWBuckets: 100, TWReuseDelayMS: 250}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := base()
			tt.edit(p)
			s, err := Compile(p, Facts{Host: host})
			if err != nil {
				t.Fatal(err)
			}
			if (s.Isolate == nil) != (tt.want == nil) || s.Isolate != nil && *s.Isolate != *tt.want {
				t.Errorf("isolate %+v, want %+v", s.Isolate, tt.want)
			}
			seg, err := s.Segment(0, 2, []string{"127.0.0.1:9"}, nil)
			if err != nil {
				t.Fatal(err)
			}
			if seg.Isolate != nil || seg.Plan.Isolate || seg.Plan.Netns != nil {
				t.Errorf("segment isolates: %+v, plan %v %+v", seg.Isolate, seg.Plan.Isolate, seg.Plan.Netns)
			}
			if l := seg.Preflight; l.Isolate || l.Netns != (preflight.Netns{}) {
				t.Errorf("segment's preflight forecasts a namespace of its own: isolate %v, netns %+v", l.Isolate, l.Netns)
			}
		})
	}
}

// TestSegment: a worker's segment of the spec, as it travels (a JSON file), keeps the typed
// values compiled from the plan, its own cut of the port window (its preflight's too), the resolved destinations, and
// trusts the built-in target's certificate; it never starts a target of its own.
func TestSegment(t *testing.T) {
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
	s, err := Compile(p, Facts{Host: host})
	if err != nil {
		t.Fatal(err)
	}
	cert := []byte("the built-in target's certificate")
	for i, want := range []dial.Window{{Lo: 40000, Hi: 40499}, {Lo: 40500, Hi: 40999}} {
		ws, err := s.Segment(i, 2, []string{"127.0.0.1:7000"}, cert)
		if err != nil {
			t.Fatal(err)
		}
		f := filepath.Join(t.TempDir(), "segment.json")
		if err := ws.Write(f); err != nil {
			t.Fatal(err)
		}
		got, err := ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if got.Close != dial.CloseHalf || got.Model != engine.Arrival || got.Strategy != dial.StrategyRange || got.Window != want {
			t.Errorf("segment %d: close %v, model %v, strategy %v, window %v; want half, arrival, range, %v", i, got.Close, got.Model, got.Strategy, got.Window, want)
		}
		// The forecast a worker makes is of its own cut, the built-in target not in its process.
		if l := got.Preflight; l.Window != want || l.Strategy != dial.StrategyRange || l.Close != dial.CloseHalf || l.Builtin {
			t.Errorf("segment %d: preflight's window %v, strategy %v, close %v, built-in %v; want %v, range, half, false", i, l.Window, l.Strategy, l.Close, l.Builtin, want)
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
