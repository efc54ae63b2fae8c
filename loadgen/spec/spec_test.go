package spec

import (
	"bytes"
	"fmt"
	"github.com/portstorm/portstorm/loadgen/schedule"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/portstorm/portstorm/loadgen/dial"
	"github.com/portstorm/portstorm/loadgen/engine"
	"github.com/portstorm/portstorm/loadgen/plan"
	"github.com/portstorm/portstorm/loadgen/preflight"
	"github.com/portstorm/portstorm/loadgen/proto"
	"github.com/portstorm/portstorm/target"
)

var host = preflight.Host{Cores: 2, FDHard: 20000, PortRange: preflight.PortRange{Lo: 32768, Hi: 60999}}

// TestConfigs: every example plan in configs/ compiles, as run would compile it.
func TestConfigs(t *testing.T) {
	files, err := filepath.Glob("../../configs/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no plans in configs/")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			p, err := plan.LoadFile(f, plan.Overrides{})
			if err != nil {
				t.Fatal(err)
			}
			p.Defaults()
			if errs := p.Validate(); len(errs) > 0 {
				t.Fatal(errs)
			}
			s, err := Compile(p, Facts{Host: host})
			if err != nil {
				t.Fatalf("does not compile: %v", err)
			}
			if s.Layout.Workers < 1 || len(s.Ramp.Stages) != len(p.Load.Stages) {
				t.Errorf("layout %+v, %d stages: not the plan's", s.Layout, len(s.Ramp.Stages))
			}
			if (s.Target != nil) != (p.Target.Builtin != nil) {
				t.Errorf("built-in target %v, plan's %v", s.Target, p.Target.Builtin)
			}
		})
	}
}

func base() *plan.Plan {
	return &plan.Plan{Name: "t",
		Target:     plan.Target{Addresses: []string{"127.0.0.1:9"}},
		Source:     plan.Source{Ports: plan.Ports{Strategy: "kernel"}},
		Connection: plan.Connection{Close: "fin"},
		Load:       plan.Load{Model: "concurrency", Stages: []plan.Stage{{Duration: plan.Duration(time.Second), Target: 10}}},
	}
}

// TestEnums: each plan key that names a mode is read here, once, into its typed value.
func TestEnums(t *testing.T) {
	for _, tt := range []struct {
		name     string
		edit     func(*plan.Plan)
		check    func(*Spec) bool
		errorHas string
	}{
		{"close fin", func(p *plan.Plan) { p.Connection.Close = "fin" }, func(s *Spec) bool { return s.Close == dial.CloseFIN }, ""},
		{"close rst", func(p *plan.Plan) { p.Connection.Close = "rst" }, func(s *Spec) bool { return s.Close == dial.CloseRST }, ""},
		{"close half", func(p *plan.Plan) { p.Connection.Close = "half" }, func(s *Spec) bool { return s.Close == dial.CloseHalf }, ""},
		{"close server", func(p *plan.Plan) { p.Connection.Close = "server" }, func(s *Spec) bool { return s.Close == dial.CloseServer }, ""},
		{"close unknown", func(p *plan.Plan) { p.Connection.Close = "slam" }, nil, "connection.close"},
		{"model arrival", func(p *plan.Plan) { p.Load.Model = "arrival" }, func(s *Spec) bool { return s.Model == engine.Arrival }, ""},
		{"model concurrency", func(p *plan.Plan) {}, func(s *Spec) bool { return s.Model == engine.Concurrency }, ""},
		{"model unknown", func(p *plan.Plan) { p.Load.Model = "burst" }, nil, "load.model"},
		{"strategy range", func(p *plan.Plan) { p.Source.Ports = plan.Ports{Strategy: "range", Range: "40000-40099"} },
			func(s *Spec) bool {
				return s.Strategy == dial.StrategyRange && s.Window == dial.Window{Lo: 40000, Hi: 40099}
			}, ""},
		{"strategy unknown", func(p *plan.Plan) { p.Source.Ports.Strategy = "lucky" }, nil, "source.ports.strategy"},
		{"target mode", func(p *plan.Plan) {
			p.Target = plan.Target{Builtin: &plan.Builtin{Mode: "rst", Listeners: 2}}
		}, func(s *Spec) bool { return s.Target.Config.Mode == target.ModeRST && len(s.Target.Config.Listen) == 2 }, ""},
		{"target of a storm reads early", func(p *plan.Plan) {
			p.Target = plan.Target{Builtin: &plan.Builtin{Mode: "sink"}}
		}, func(s *Spec) bool { return !s.Target.Config.ClientsHold }, ""},
		{"target of held connections does not", func(p *plan.Plan) {
			p.Target = plan.Target{Builtin: &plan.Builtin{Mode: "hold"}}
			p.Connection.Hold = plan.Duration(time.Minute)
		}, func(s *Spec) bool { return s.Target.Config.ClientsHold }, ""},
		{"target mode unknown", func(p *plan.Plan) { p.Target = plan.Target{Builtin: &plan.Builtin{Mode: "tarpit"}} }, nil, "target.builtin.mode"},
		{"protocol redis", func(p *plan.Plan) {
			p.Connection.Send = &plan.Send{Protocol: "redis", Count: 1, Redis: &plan.RedisCommand{Command: []string{"PING"}}}
		}, func(s *Spec) bool { return s.Send.Exchange.Protocol == proto.Redis }, ""},
		{"protocol raw generated echo", func(p *plan.Plan) {
			p.Connection.Send = &plan.Send{Bytes: 64, Count: 2, Expect: "echo"}
		}, func(s *Spec) bool { return s.Send.Generated && s.Send.Bytes == 64 && s.Send.Echo && s.Send.Count == 2 }, ""},
		{"protocol raw data echo", func(p *plan.Plan) {
			p.Connection.Send = &plan.Send{Data: "hi", Count: 1, Expect: "echo"}
		}, func(s *Spec) bool { return !s.Send.Generated && s.Send.Exchange.Protocol == proto.Echo }, ""},
		{"every problem at once", func(p *plan.Plan) { p.Connection.Close = "slam"; p.Load.Model = "burst" }, nil, "load.model"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := base()
			tt.edit(p)
			s, err := Compile(p, Facts{Host: host})
			if tt.errorHas != "" {
				if err == nil || !strings.Contains(err.Error(), tt.errorHas) {
					t.Fatalf("error %v, want one naming %s", err, tt.errorHas)
				}
				if tt.name == "every problem at once" && !strings.Contains(err.Error(), "connection.close") {
					t.Errorf("error %v names only one of the two problems", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !tt.check(s) {
				t.Errorf("spec %+v", s)
			}
		})
	}
}

// TestTargetSide: the built-in target listens below the client's port range (or its window), and
// under close: server it closes first, after the whole conversation.
func TestTargetSide(t *testing.T) {
	for _, tt := range []struct {
		name       string
		close      string
		window     string
		below      int
		closeFirst bool
		after      int64
	}{
		{"fin, below the sysctl range", "fin", "", 32768, false, 0},
		{"below the window", "fin", "20000-20099", 20000, false, 0},
		{"server closes after 3 requests of 64 bytes", "server", "", 32768, true, 192},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := base()
			p.Target = plan.Target{Builtin: &plan.Builtin{Mode: "echo", Listeners: 1}}
			p.Connection.Close = tt.close
			p.Connection.Send = &plan.Send{Bytes: 64, Count: 3}
			if tt.window != "" {
				p.Source.Ports = plan.Ports{Strategy: "range", Range: tt.window}
			}
			s, err := Compile(p, Facts{Host: host})
			if err != nil {
				t.Fatal(err)
			}
			c := s.Target.Config
			if c.PortBelow != tt.below || c.CloseFirst != tt.closeFirst || c.CloseAfter != tt.after {
				t.Errorf("PortBelow %d CloseFirst %v CloseAfter %d, want %d %v %d", c.PortBelow, c.CloseFirst, c.CloseAfter, tt.below, tt.closeFirst, tt.after)
			}
		})
	}
}

// TestHTTPHost: the Host header is the plan's, else the first destination as written, else the
// address the built-in target got.
func TestHTTPHost(t *testing.T) {
	for _, tt := range []struct {
		name, host string
		addrs      []string
		want       string
	}{
		{"plan's", "example.org", []string{"localhost:80"}, "example.org"},
		{"first destination as written", "", []string{"localhost:80", "127.0.0.1:81"}, "localhost:80"},
		{"built-in target's address", "", nil, "127.0.0.1:5000"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := base()
			p.Target.Addresses = tt.addrs
			if tt.addrs == nil {
				p.Target = plan.Target{Builtin: &plan.Builtin{Mode: "http"}}
			}
			p.Connection.Send = &plan.Send{Protocol: "http", Count: 1, HTTP: &plan.HTTPRequest{Method: "GET", Path: "/", Host: tt.host}}
			s, err := Compile(p, Facts{Host: host})
			if err != nil {
				t.Fatal(err)
			}
			es, err := s.Send.Engine("127.0.0.1:5000")
			if err != nil {
				t.Fatal(err)
			}
			if es.Exchange == nil {
				t.Fatal("no exchange")
			}
			var req bytes.Buffer
			r := proto.NewReader()
			r.Reset(strings.NewReader("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"))
			if _, err := es.Exchange.Do(&req, r); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(req.String(), "Host: "+tt.want+"\r\n") {
				t.Errorf("request %q, want Host %s", req.String(), tt.want)
			}
		})
	}
}

// TestTLS: server name and trust, from the plan, the target's name or the built-in certificate.
func TestTLS(t *testing.T) {
	cert, _, err := target.SelfSigned([]string{"localhost"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, cert, 0o600); err != nil {
		t.Fatal(err)
	}
	notPEM := filepath.Join(t.TempDir(), "x.pem")
	if err := os.WriteFile(notPEM, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	dsts := []dial.Destination{{AddrPort: mustAddrPort("127.0.0.1:443")}}
	for _, tt := range []struct {
		name     string
		edit     func(*plan.Plan)
		sni      string
		errorHas string
	}{
		{"no tls", func(p *plan.Plan) {}, "", ""},
		{"by the target's name", func(p *plan.Plan) {
			p.Target.Addresses = []string{"example.org:443"}
			p.Connection.TLS = &plan.TLS{}
		}, "example.org", ""},
		{"by address", func(p *plan.Plan) { p.Connection.TLS = &plan.TLS{CAFile: ca} }, "127.0.0.1", ""},
		{"the plan's name", func(p *plan.Plan) { p.Connection.TLS = &plan.TLS{ServerName: "x.test"} }, "x.test", ""},
		{"built-in", func(p *plan.Plan) { p.Target = plan.Target{Builtin: &plan.Builtin{Mode: "echo", TLS: true}} }, "127.0.0.1", ""},
		{"ca_file without PEM", func(p *plan.Plan) { p.Connection.TLS = &plan.TLS{CAFile: notPEM} }, "", "holds no PEM certificate"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := base()
			tt.edit(p)
			s, err := Compile(p, Facts{Host: host})
			if tt.errorHas != "" {
				if err == nil || !strings.Contains(err.Error(), "connection.tls.ca_file") || !strings.Contains(err.Error(), tt.errorHas) {
					t.Fatalf("error %v, want connection.tls.ca_file: ...%s", err, tt.errorHas)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			cs, err := s.TLS.Configs(dsts, cert)
			if err != nil {
				t.Fatal(err)
			}
			if tt.sni == "" {
				if cs != nil {
					t.Errorf("TLS configs %v without TLS", cs)
				}
				return
			}
			if len(cs) != 1 || cs[0].ServerName != tt.sni {
				t.Fatalf("configs %v, want server name %s", cs, tt.sni)
			}
			if p.Connection.TLS != nil && p.Connection.TLS.CAFile == "" && cs[0].RootCAs != nil {
				t.Error("system roots replaced without a ca_file")
			}
		})
	}
}

func mustAddrPort(s string) netip.AddrPort {
	return netip.MustParseAddrPort(s)
}

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
	procs := func(p *plan.Plan, n int) *plan.Plan {
		p.Target.Builtin.ProcsPerProcess = n
		return p
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
		{"procs_per_process: the target apart", procs(hold(1000, 0, 0), 3), 8, false, 1, 1, 4, 3},
		{"procs_per_process with processes", procs(hold(1000, 0, 2), 1), 2, false, 1, 2, 1, 1},
		{"procs_per_process over GOMAXPROCS set", procs(hold(60000, 0, 0), 2), 2, true, 4, 4, 0, 2},
	} {
		t.Run(tt.name, func(t *testing.T) {
			l := PlanLayout(tt.p, preflight.Host{Cores: tt.cores, FDHard: 20000}, tt.procsSet)
			if l.Workers != tt.workers || l.Targets != tt.targets || l.GenProcs != tt.genProcs || l.TargetProcs != tt.targetProcs {
				t.Errorf("layout %+v, want workers %d, targets %d, GOMAXPROCS %d and %d",
					l, tt.workers, tt.targets, tt.genProcs, tt.targetProcs)
			}
			if tt.targetProcs > 0 && !strings.Contains(l.Why, "GOMAXPROCS") {
				t.Errorf("why %q does not say how the cores are shared", l.Why)
			}
		})
	}
}

// TestSendRate: the keys of requests at a rate compile to the engine's typed send: a per-connection
// rate as is, total_rate as a constant ramp over the load stages, rate_stages as a ramp from 0,
// count: unlimited as Unlimited, pipeline 0 as 1; and the spec survives the trip to a worker.
func TestSendRate(t *testing.T) {
	sec := func(n float64) plan.Duration { return plan.Duration(n * float64(time.Second)) }
	tests := []struct {
		name string
		send plan.Send
		want Send // Exchange and Generated fields ignored
	}{
		{"per connection", plan.Send{Rate: 50, Count: plan.Unlimited, Pipeline: 4, Expect: "echo"},
			Send{Rate: 50, Unlimited: true, Pipeline: 4}},
		{"total rate", plan.Send{TotalRate: 3000, Count: 10},
			Send{Count: 10, Pipeline: 1, TotalRate: &schedule.Ramp{Start: 3000, Stages: []schedule.Stage{{Duration: 10 * time.Second, Target: 3000}}}}},
		{"rate stages", plan.Send{RateStages: []plan.Stage{{Duration: sec(2), Target: 100}, {Duration: sec(3), Target: 0}}, Count: plan.Unlimited},
			Send{Unlimited: true, Pipeline: 1, TotalRate: &schedule.Ramp{Stages: []schedule.Stage{{Duration: 2 * time.Second, Target: 100}, {Duration: 3 * time.Second}}}}},
		{"closed loop", plan.Send{}, Send{Count: 1, Pipeline: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := base()
			p.Version = plan.SchemaVersion
			p.Load.Stages = []plan.Stage{{Duration: sec(4), Target: 10}, {Duration: sec(6), Target: 10}}
			s := tt.send
			p.Connection.Send = &s
			p.Connection.Hold = sec(1)
			p.Defaults()
			if errs := p.Validate(); len(errs) > 0 {
				t.Fatal(errs)
			}
			sp, err := Compile(p, Facts{Host: host})
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(t.TempDir(), "spec.json")
			if err := sp.Write(path); err != nil {
				t.Fatal(err)
			}
			back, err := ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			for _, got := range []*Send{sp.Send, back.Send} {
				g := *got
				g.Exchange, g.Generated, g.Bytes, g.Echo = proto.Spec{}, false, 0, false
				if fmt.Sprint(g.Count, g.Unlimited, g.Rate, g.Pipeline, g.Interval) != fmt.Sprint(tt.want.Count, tt.want.Unlimited, tt.want.Rate, tt.want.Pipeline, tt.want.Interval) ||
					!reflect.DeepEqual(g.TotalRate, tt.want.TotalRate) {
					t.Fatalf("send %+v (total %+v), want %+v (total %+v)", g, g.TotalRate, tt.want, tt.want.TotalRate)
				}
				es, err := got.Engine("127.0.0.1:1")
				if err != nil {
					t.Fatal(err)
				}
				if es.Unlimited != tt.want.Unlimited || es.Rate != tt.want.Rate || es.Pipeline != tt.want.Pipeline || !reflect.DeepEqual(es.TotalRate, tt.want.TotalRate) {
					t.Fatalf("engine send %+v", es)
				}
			}
		})
	}
}

// TestCalibrate: a baseline normalized by the calibration makes the run calibrate; no other plan
// does, and a worker's spec never carries it (the coordinator calibrates).
func TestCalibrate(t *testing.T) {
	for _, tt := range []struct {
		name     string
		baseline *plan.Baseline
		want     bool
	}{
		{"no baseline", nil, false},
		{"a baseline compared as measured", &plan.Baseline{File: "b.json"}, false},
		{"normalize: calibration", &plan.Baseline{File: "b.json", Normalize: plan.NormalizeCalibration}, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := base()
			p.Baseline = tt.baseline
			s, err := Compile(p, Facts{Host: host})
			if err != nil {
				t.Fatal(err)
			}
			if s.Calibrate != tt.want {
				t.Errorf("Calibrate %v, want %v", s.Calibrate, tt.want)
			}
			path := filepath.Join(t.TempDir(), "spec.json")
			if err := s.Write(path); err != nil {
				t.Fatal(err)
			}
			w, err := ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if w.Calibrate {
				t.Error("a worker's spec calibrates")
			}
		})
	}
}

// TestPreflight: the forecast's input is the plan's keys as typed values (a close mode, a
// strategy, the namespace's settings), read here once; preflight compares no name of them.
func TestPreflight(t *testing.T) {
	tests := []struct {
		name string
		edit func(*plan.Plan)
		want func(*preflight.Load) bool
	}{
		{"close mode and strategy", func(p *plan.Plan) {
			p.Connection.Close, p.Source.Ports = "half", plan.Ports{Strategy: "range", Range: "40000-40999", ExpectExhaustion: true}
		}, func(l *preflight.Load) bool {
			return l.Close == dial.CloseHalf && l.Strategy == dial.StrategyRange && l.Window == dial.Window{Lo: 40000, Hi: 40999} && l.ExpectExhaustion
		}},
		{"sources", func(p *plan.Plan) { p.Source.Addresses = []string{"127.0.0.2", "127.0.0.3"} },
			func(l *preflight.Load) bool {
				return len(l.Sources) == 2 && l.Sources[1] == netip.MustParseAddr("127.0.0.3")
			}},
		{"the namespace's settings", func(p *plan.Plan) {
			p.Isolate, p.Target = true, plan.Target{Builtin: &plan.Builtin{Mode: "hold"}}
			p.Netns = &plan.Netns{PortRange: "1024-65535", TWReuse: "0", TWReuseDelay: plan.Duration(50 * time.Millisecond), MaxTWBuckets: 7}
		}, func(l *preflight.Load) bool {
			return l.Isolate && l.Netns == preflight.Netns{PortRange: preflight.PortRange{Lo: 1024, Hi: 65535}, TWReuse: 0, TWReuseSet: true,
				TWReuseDelay: 50 * time.Millisecond, MaxTWBuckets: 7}
		}},
		{"tw_reuse left to the kernel", func(p *plan.Plan) {
			p.Isolate, p.Netns, p.Target = true, &plan.Netns{}, plan.Target{Builtin: &plan.Builtin{Mode: "hold"}}
		},
			func(l *preflight.Load) bool { return !l.Netns.TWReuseSet && l.Netns.PortRange == preflight.PortRange{} }},
		{"arrival demand", func(p *plan.Plan) {
			p.Load = plan.Load{Model: "arrival", Start: 100, Stages: []plan.Stage{{Duration: plan.Duration(time.Second), Target: 100}}}
			p.Connection.Hold = plan.Duration(2 * time.Second)
		}, func(l *preflight.Load) bool { return l.Peak == 200 && l.Rate == 100 }},
		{"the built-in target", func(p *plan.Plan) { p.Target = plan.Target{Builtin: &plan.Builtin{Mode: "hold"}} },
			func(l *preflight.Load) bool { return l.Builtin && l.MaxListeners == plan.MaxListeners }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := base()
			p.Version = 1
			tt.edit(p)
			p.Defaults()
			if errs := p.Validate(); len(errs) > 0 {
				t.Fatal(errs)
			}
			l := Preflight(p)
			if !tt.want(&l) {
				t.Errorf("Preflight = %+v", l)
			}
			s, err := Compile(p, Facts{Host: host})
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(s.Preflight, l) {
				t.Errorf("the spec's %+v, Preflight's %+v", s.Preflight, l)
			}
		})
	}
}
