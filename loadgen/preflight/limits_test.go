package preflight_test

import (
	"strings"
	"testing"

	"github.com/portstorm/portstorm/loadgen/plan"
	"github.com/portstorm/portstorm/loadgen/preflight"
	"github.com/portstorm/portstorm/loadgen/spec"
)

// Each limit alone, on the numbers that decide it; TestForecast covers them put together.

func TestEffectiveRange(t *testing.T) {
	tests := []struct {
		name              string
		strategy, window  string
		h                 func(*preflight.Host)
		in                preflight.Inputs
		lo, hi, effective int
		from              string
		ignored           bool
		warning           string
	}{
		{name: "the kernel's range", lo: 32768, hi: 60999, effective: 28232, from: "ip_local_port_range"},
		{name: "reserved ports and listeners are not usable", h: func(h *preflight.Host) { h.ReservedPorts = "40000-40009,70000" },
			in: preflight.Inputs{ListenersInRange: 2}, lo: 32768, hi: 60999, effective: 28220, from: "ip_local_port_range"},
		{name: "a window inside the range", strategy: "range", window: "40000-40999", lo: 40000, hi: 40999, effective: 1000, from: "IP_LOCAL_PORT_RANGE"},
		{name: "a window the kernel clamps", strategy: "range", window: "30000-40000", lo: 32768, hi: 40000, effective: 7233,
			from: "IP_LOCAL_PORT_RANGE", warning: "clamped by the kernel to ip_local_port_range: 32768-40000"},
		{name: "a window outside the range is ignored", strategy: "range", window: "1024-2000", lo: 32768, hi: 60999, effective: 28232,
			from: "IP_LOCAL_PORT_RANGE", ignored: true, warning: "lies wholly outside"},
		{name: "explicit ports ignore the sysctl and its reservations", strategy: "explicit", window: "1024-2023",
			h: func(h *preflight.Host) { h.ReservedPorts = "1024-1100" }, lo: 1024, hi: 2023, effective: 1000, from: "explicit"},
		{name: "explicit privileged ports without root", strategy: "explicit", window: "1000-1999",
			h: func(h *preflight.Host) { h.Root, h.UnprivilegedPortStart = false, 1024 }, lo: 1000, hi: 1999, effective: 1000, from: "explicit", warning: "need root"},
		{name: "an isolated run's namespace range", h: nil, lo: 1024, hi: 65535, effective: 64512, from: "ip_local_port_range", strategy: "netns"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := plan40k()
			switch tt.strategy {
			case "netns":
				p.Isolate, p.Netns = true, &plan.Netns{PortRange: "1024-65535"}
			default:
				p.Source.Ports.Strategy, p.Source.Ports.Range = tt.strategy, tt.window
			}
			h := host()
			if tt.h != nil {
				tt.h(&h)
			}
			r, warnings := preflight.EffectiveRange(spec.Preflight(p), h, tt.in)
			if r.Lo != tt.lo || r.Hi != tt.hi || r.Effective != tt.effective || r.From != tt.from || r.Ignored != tt.ignored {
				t.Errorf("range %+v, want %d-%d from %s, %d usable, ignored %v", r, tt.lo, tt.hi, tt.from, tt.effective, tt.ignored)
			}
			if got := strings.Join(warnings, "\n"); (tt.warning == "") != (got == "") || !strings.Contains(got, tt.warning) {
				t.Errorf("warnings %q, want one saying %q", warnings, tt.warning)
			}
			if f := preflight.Plan(spec.Preflight(p), h, tt.in); f.Range != r {
				t.Errorf("preflight.Plan's range %+v, preflight.EffectiveRange's %+v", f.Range, r)
			}
		})
	}
}

func TestPortsLimit(t *testing.T) {
	dst := func(n int) preflight.Inputs {
		in := preflight.Inputs{Loopback: true}
		for i := range n {
			in.Destinations = append(in.Destinations, "127.0.0.1:"+string(rune('1'+i)))
		}
		return in
	}
	tests := []struct {
		name     string
		p        *plan.Plan
		in       preflight.Inputs
		max      int64
		stops    bool
		why, fix string
	}{
		{name: "one pair", p: plan40k(), in: dst(1), max: 28232, stops: true, why: "per (source, destination) pair x 1", fix: "2 in all"},
		{name: "two sources double it", p: plan40k("127.0.0.1", "127.0.0.2"), in: dst(1), max: 56464, why: "x 2"},
		{name: "two destinations double it", p: plan40k(), in: dst(2), max: 56464, why: "x 2"},
		{name: "bind counts sources, not destinations", in: dst(3), max: 28232, stops: true, why: "per source address (bind",
			p: func() *plan.Plan { p := plan40k("127.0.0.1"); p.Source.Ports.Strategy = "bind"; return p }(), fix: "bind-no-port"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := preflight.PortsLimit(spec.Preflight(tt.p), preflight.Capacity(spec.Preflight(tt.p), host(), tt.in))
			if l.Kind != preflight.LimitPorts || l.Name != "local ports" || !l.Ports || l.Max != tt.max || l.Demand != 40000 || l.Stops != tt.stops || !strings.Contains(l.Why, tt.why) {
				t.Errorf("limit %+v, want max %d, stops %v, why ...%s...", l, tt.max, tt.stops, tt.why)
			}
			if got := strings.Join(l.Fixes, "\n"); (tt.fix == "") != (got == "") || !strings.Contains(got, tt.fix) {
				t.Errorf("fixes %q, want one saying %q", l.Fixes, tt.fix)
			}
		})
	}
}

func TestTimeWaitLimit(t *testing.T) {
	churn := func(close string, strategy string, rate plan.Rate) *plan.Plan {
		p := plan40k()
		p.Connection.Close, p.Connection.Hold = close, plan.Duration(0)
		p.Load.Stages[0].Target = 1000
		p.Load.MaxConnectRate = rate
		p.Source.Ports.Strategy = strategy
		if strategy == "explicit" {
			p.Source.Ports.Range = "20000-29999"
		}
		return p
	}
	tests := []struct {
		name      string
		p         *plan.Plan
		h         func(*preflight.Host)
		loopback  bool
		ok, stops bool
		max       int64
		why, fix  string
	}{
		{name: "rst leaves no TIME_WAIT", p: churn("rst", "", 5000)},
		{name: "explicit ports recycle TIME_WAIT", p: churn("fin", "explicit", 5000)},
		{name: "60 s without reuse", p: churn("fin", "", 5000), ok: true, stops: true, max: (28232 - 1000) / 60,
			why: "a 4-tuple stays taken for 60 s", fix: "tcp_tw_reuse=1"},
		{name: "tcp_tw_reuse=2 on loopback: 1 s", p: churn("fin", "", 5000), loopback: true, ok: true, max: 28232 - 1000,
			why: "after 1s"},
		{name: "tcp_tw_reuse=1 with a 10 s delay", p: churn("half", "", 5000), h: func(h *preflight.Host) { h.TWReuse, h.TWReuseDelay = 1, 10000 },
			ok: true, stops: true, max: (28232 - 1000) / 10, why: "after 10s", fix: "more source addresses"},
		{name: "an unknown rate is not forecast", p: churn("fin", "", 0), ok: true, max: (28232 - 1000) / 60, why: "not forecast"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := host()
			if tt.h != nil {
				tt.h(&h)
			}
			in := preflight.Inputs{Destinations: []string{"127.0.0.1:6379"}, Loopback: tt.loopback}
			l, ok := preflight.TimeWaitLimit(spec.Preflight(tt.p), preflight.Capacity(spec.Preflight(tt.p), h, in))
			if ok != tt.ok {
				t.Fatalf("preflight.TimeWaitLimit = %+v, %v; want ok %v", l, ok, tt.ok)
			}
			if !ok {
				return
			}
			if l.Kind != preflight.LimitTimeWait || l.Name != "TIME_WAIT" || !l.Ports || l.Max != tt.max || l.Stops != tt.stops || !strings.Contains(l.Why, tt.why) {
				t.Errorf("limit %+v, want max %d, stops %v, why ...%s...", l, tt.max, tt.stops, tt.why)
			}
			if got := strings.Join(l.Fixes, "\n"); (tt.fix == "") != (got == "") || !strings.Contains(got, tt.fix) {
				t.Errorf("fixes %q, want one saying %q", l.Fixes, tt.fix)
			}
		})
	}
}

func TestOpenFilesLimit(t *testing.T) {
	builtin := plan40k()
	builtin.Target = plan.Target{Builtin: &plan.Builtin{Mode: "hold", Listeners: 1}}
	one := preflight.Inputs{Destinations: []string{"127.0.0.1:6379"}}
	tests := []struct {
		name     string
		p        *plan.Plan
		fdHard   int64
		in       preflight.Inputs
		ok       bool
		max      int64
		stops    bool
		why, fix string
	}{
		{name: "unknown limit", p: plan40k(), fdHard: 0, in: one},
		{name: "one process", p: plan40k(), fdHard: 20000, in: one, ok: true, max: 20000 - preflight.FDOverhead - 1, stops: true,
			why: "1 descriptor(s) per connection, 1 generator", fix: "load.workers: 3"},
		{name: "three workers", p: plan40k(), fdHard: 20000, in: preflight.Inputs{Destinations: one.Destinations, Workers: 3}, ok: true,
			max: 3 * (20000 - preflight.FDOverhead - 1), why: "3 generator process(es)"},
		{name: "the built-in target in the same process", p: builtin, fdHard: 20000, in: one, ok: true,
			max: (20000 - preflight.FDOverhead - 1) / 2, stops: true, why: "runs in the same process", fix: "run the target in another process"},
		{name: "target processes bound it too", p: builtin, fdHard: 20000, in: preflight.Inputs{Destinations: one.Destinations, Workers: 4, TargetProcesses: 1},
			ok: true, max: 20000 - preflight.FDOverhead - 1, stops: true, why: "1 target process(es)", fix: "target.builtin.processes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := host()
			h.FDHard = tt.fdHard
			l, ok := preflight.OpenFilesLimit(spec.Preflight(tt.p), h, tt.in, 40000)
			if ok != tt.ok {
				t.Fatalf("preflight.OpenFilesLimit = %+v, %v; want ok %v", l, ok, tt.ok)
			}
			if !ok {
				return
			}
			if l.Kind != preflight.LimitOpenFiles || l.Name != "open files" || l.Ports || l.Max != tt.max || l.Demand != 40000 || l.Stops != tt.stops || !strings.Contains(l.Why, tt.why) {
				t.Errorf("limit %+v, want max %d, stops %v, why ...%s...", l, tt.max, tt.stops, tt.why)
			}
			if got := strings.Join(l.Fixes, "\n"); (tt.fix == "") != (got == "") || !strings.Contains(got, tt.fix) {
				t.Errorf("fixes %q, want one saying %q", l.Fixes, tt.fix)
			}
		})
	}
}

func TestConntrackLimit(t *testing.T) {
	isolated := plan40k()
	isolated.Isolate = true
	tests := []struct {
		name     string
		p        *plan.Plan
		h        func(*preflight.Host)
		loopback bool
		ok       bool
		max      int64
		stops    bool
	}{
		{name: "no table", p: plan40k()},
		{name: "active table with room", p: plan40k(), h: func(h *preflight.Host) {
			h.ConntrackMax, h.ConntrackCount, h.Conntrack = 262144, 1000, preflight.ConntrackActive
		},
			ok: true, max: 261144},
		{name: "active table too small", p: plan40k(), h: func(h *preflight.Host) {
			h.ConntrackMax, h.ConntrackCount, h.Conntrack = 65536, 30000, preflight.ConntrackActive
		},
			ok: true, max: 35536, stops: true},
		{name: "module loaded but not tracking loopback", p: plan40k(), loopback: true,
			h: func(h *preflight.Host) {
				h.ConntrackMax, h.ConntrackCount, h.Conntrack = 65536, 30000, preflight.ConntrackInactive
			}},
		{name: "the run's fresh namespace tracks nothing", p: isolated,
			h: func(h *preflight.Host) {
				h.ConntrackMax, h.ConntrackCount, h.Conntrack = 65536, 30000, preflight.ConntrackActive
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := host()
			if tt.h != nil {
				tt.h(&h)
			}
			l, ok := preflight.ConntrackLimit(spec.Preflight(tt.p), h, preflight.Inputs{Loopback: tt.loopback}, 40000)
			if ok != tt.ok {
				t.Fatalf("preflight.ConntrackLimit = %+v, %v; want ok %v", l, ok, tt.ok)
			}
			if !ok {
				return
			}
			if l.Kind != preflight.LimitConntrack || l.Name != "conntrack" || l.Ports || l.Max != tt.max || l.Stops != tt.stops {
				t.Errorf("limit %+v, want max %d, stops %v", l, tt.max, tt.stops)
			}
			if tt.stops && (len(l.Fixes) == 0 || !strings.Contains(l.Fixes[0], "nf_conntrack_max=80000")) {
				t.Errorf("fixes %q, want nf_conntrack_max=80000", l.Fixes)
			}
		})
	}
}

// TestFileMaxLimit: fs.file-max less what the host has allocated is shared by every process, two
// descriptors per connection with the built-in target; a million connections need 2,000,000.
func TestFileMaxLimit(t *testing.T) {
	builtin := plan40k()
	builtin.Target = plan.Target{Builtin: &plan.Builtin{Mode: "hold", Listeners: 16}}
	million := preflight.Inputs{Loopback: true, Workers: 53, TargetProcesses: 53}
	overhead := 107 * int64(preflight.FDOverhead)
	tests := []struct {
		name        string
		p           *plan.Plan
		fileMax, nr int64
		in          preflight.Inputs
		peak        int64
		ok          bool
		max         int64
		stops       bool
		fix         string
	}{
		{name: "unknown", p: builtin, fileMax: -1, nr: -1, in: million, peak: 1000000},
		{name: "this host: a million fit", p: builtin, fileMax: 2466255, nr: 1000, in: million, peak: 1000000,
			ok: true, max: (2466255 - 1000 - overhead) / 2},
		{name: "with a million files already open, they do not", p: builtin, fileMax: 2466255, nr: 1000000, in: million, peak: 1000000,
			ok: true, max: (2466255 - 1000000 - overhead) / 2, stops: true, fix: "fs.file-max to 3"},
		{name: "a target elsewhere takes one descriptor each", p: plan40k(), fileMax: 100000, nr: 1000, in: preflight.Inputs{}, peak: 40000,
			ok: true, max: 100000 - 1000 - preflight.FDOverhead},
		{name: "nothing left", p: plan40k(), fileMax: 1000, nr: 5000, in: preflight.Inputs{}, peak: 40000,
			ok: true, max: 0, stops: true, fix: "fs.file-max"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := host()
			h.FileMax, h.FileNr = tt.fileMax, tt.nr
			l, ok := preflight.FileMaxLimit(spec.Preflight(tt.p), h, tt.in, tt.peak)
			if ok != tt.ok {
				t.Fatalf("FileMaxLimit = %+v, %v; want ok %v", l, ok, tt.ok)
			}
			if !ok {
				return
			}
			if l.Kind != preflight.LimitFileMax || l.Name != "file-max" || l.Ports || l.Max != tt.max || l.Demand != tt.peak || l.Stops != tt.stops {
				t.Errorf("limit %+v, want max %d, stops %v", l, tt.max, tt.stops)
			}
			if got := strings.Join(l.Fixes, "\n"); (tt.fix == "") != (got == "") || !strings.Contains(got, tt.fix) {
				t.Errorf("fixes %q, want one saying %q", l.Fixes, tt.fix)
			}
		})
	}
}

// TestMemoryLimit: MemAvailable (90% of it) over the measured cost of a connection and of each
// process.
func TestMemoryLimit(t *testing.T) {
	builtin := plan40k()
	builtin.Target = plan.Target{Builtin: &plan.Builtin{Mode: "hold", Listeners: 16}}
	gib := int64(1) << 30
	share := func(b int64) int64 { return int64(float64(b) * 0.9) }
	pair := int64(2*preflight.KernelPerSocket + preflight.GeneratorPerConnection + preflight.TargetPerConnection)
	million := preflight.Inputs{Loopback: true, Workers: 53, TargetProcesses: 53}
	tests := []struct {
		name  string
		p     *plan.Plan
		avail int64
		in    preflight.Inputs
		peak  int64
		ok    bool
		max   int64
		stops bool
	}{
		{name: "unknown", p: builtin, avail: -1, in: million, peak: 1000000},
		{name: "24 GiB hold a million with the target", p: builtin, avail: 22 * gib, in: million, peak: 1000000, ok: true,
			max: (share(22*gib) - 107*preflight.ProcessBase) / pair},
		{name: "8 GiB do not", p: builtin, avail: 8 * gib, in: million, peak: 1000000, ok: true,
			max: (share(8*gib) - 107*preflight.ProcessBase) / pair, stops: true},
		{name: "a remote target: one socket here", p: plan40k(), avail: 1 * gib, in: preflight.Inputs{}, peak: 40000, ok: true,
			max: (share(gib) - preflight.ProcessBase) / (preflight.KernelPerSocket + preflight.GeneratorPerConnection)},
		{name: "processes alone exhaust it", p: builtin, avail: 100 << 20, in: million, peak: 1000, ok: true, max: 0, stops: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := host()
			h.MemAvailable = tt.avail
			l, ok := preflight.MemoryLimit(spec.Preflight(tt.p), h, tt.in, tt.peak)
			if ok != tt.ok {
				t.Fatalf("MemoryLimit = %+v, %v; want ok %v", l, ok, tt.ok)
			}
			if !ok {
				return
			}
			if l.Kind != preflight.LimitMemory || l.Name != "memory" || l.Ports || l.Max != tt.max || l.Demand != tt.peak || l.Stops != tt.stops {
				t.Errorf("limit %+v, want max %d, stops %v", l, tt.max, tt.stops)
			}
			if tt.stops != (len(l.Fixes) > 0) {
				t.Errorf("fixes %q with stops %v", l.Fixes, tt.stops)
			}
		})
	}
}
