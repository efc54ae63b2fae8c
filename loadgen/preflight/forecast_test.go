package preflight_test

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/portstorm/portstorm/loadgen/plan"
	"github.com/portstorm/portstorm/loadgen/preflight"
	"github.com/portstorm/portstorm/loadgen/spec"
)

// host is a machine with the kernel's default port range and enough descriptors, so that the ports
// are what limits the plans below.
func host() preflight.Host {
	return preflight.Host{FDSoft: 1 << 20, FDHard: 1 << 20, PortRange: preflight.PortRange{32768, 60999}, TWReuse: 2, TWReuseDelay: 1000,
		MaxTWBuckets: 262144, Somaxconn: 4096, Syncookies: 1, ConntrackMax: -1, ConntrackCount: -1, Root: true}
}

func plan40k(sources ...string) *plan.Plan {
	p := &plan.Plan{Version: 1, Name: "forty",
		Target:     plan.Target{Addresses: []string{"127.0.0.1:6379"}},
		Source:     plan.Source{Addresses: sources},
		Connection: plan.Connection{Hold: plan.Duration(time.Minute), Close: "rst"},
		Load:       plan.Load{Stages: []plan.Stage{{Duration: plan.Duration(time.Minute), Target: 40000}}},
	}
	if len(sources) > 0 {
		p.Source.Ports.Strategy = "bind-no-port"
	}
	p.Defaults()
	return p
}

func TestForecast(t *testing.T) {
	in := preflight.Inputs{Destinations: []string{"127.0.0.1:6379"}, Loopback: true}
	tests := []struct {
		name      string
		p         *plan.Plan
		h         func(*preflight.Host)
		in        preflight.Inputs
		refuse    bool
		first     string // the limit that stops it first, "" for none
		max       int64
		fixes     []string
		capacity  int
		warnings  []string
		expectExh bool
	}{
		{name: "40000 from one address to one port stop at the range size", p: plan40k(), in: in, refuse: true,
			first: "local ports", max: 28232, capacity: 28232,
			fixes: []string{"2 in all", `"127.0.0.1", "127.0.0.2"`, "more destinations: 2 target addresses", "ip_local_port_range", "explicit"}},
		{name: "two source addresses pass", p: plan40k("127.0.0.1", "127.0.0.2"), in: in, capacity: 28232},
		{name: "a listener and a reserved port in the range", p: plan40k(), in: preflight.Inputs{Destinations: in.Destinations, Loopback: true, ListenersInRange: 1},
			h: func(h *preflight.Host) { h.ReservedPorts = "40000-40009,70000" }, refuse: true, first: "local ports", max: 28221, capacity: 28221},
		{name: "the descriptors of one process", p: plan40k("127.0.0.1", "127.0.0.2"), in: in, h: func(h *preflight.Host) { h.FDHard = 20000 },
			refuse: true, first: "open files", max: 19967, fixes: []string{"more worker processes: load.workers: 3", "raise the open-files hard limit"}},
		{name: "the descriptors of three workers", p: plan40k("127.0.0.1", "127.0.0.2"), in: preflight.Inputs{Destinations: in.Destinations, Loopback: true, Workers: 3},
			h: func(h *preflight.Host) { h.FDHard = 20000 }, refuse: false},
		{name: "bind reserves a port per socket", in: preflight.Inputs{Destinations: []string{"127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3"}, Loopback: true},
			p: func() *plan.Plan {
				p := plan40k("127.0.0.1")
				p.Source.Ports.Strategy = "bind"
				p.Load.Stages[0].Target = 30000
				return p
			}(), refuse: true, first: "local ports", max: 28232, fixes: []string{"bind-no-port", "84696 connections"}},
		{name: "range window inside the sysctl range", in: in, capacity: 1000, refuse: true, first: "local ports", max: 1000,
			p: func() *plan.Plan {
				p := plan40k("127.0.0.1")
				p.Source.Ports = plan.Ports{Strategy: "range", Range: "40000-40999"}
				return p
			}()},
		{name: "expect_exhaustion runs it anyway", in: in, capacity: 1000, first: "local ports", max: 1000, expectExh: true,
			p: func() *plan.Plan {
				p := plan40k("127.0.0.1")
				p.Source.Ports = plan.Ports{Strategy: "range", Range: "40000-40999", ExpectExhaustion: true}
				return p
			}()},
		{name: "range window outside the sysctl range is ignored", in: in, capacity: 28232, refuse: true, first: "local ports",
			warnings: []string{"ignores the per-socket range"},
			p: func() *plan.Plan {
				p := plan40k("127.0.0.1")
				p.Source.Ports = plan.Ports{Strategy: "range", Range: "2000-2999"}
				return p
			}()},
		{name: "explicit ignores the sysctl", in: in, capacity: 64512,
			p: func() *plan.Plan {
				p := plan40k("127.0.0.1")
				p.Source.Ports = plan.Ports{Strategy: "explicit", Range: "1024-65535"}
				return p
			}()},
		{name: "the run's namespace range", in: in, capacity: 64512,
			p: func() *plan.Plan {
				p := plan40k()
				p.Target = plan.Target{Builtin: &plan.Builtin{Mode: "hold"}}
				p.Isolate = true
				p.Netns = &plan.Netns{PortRange: "1024-65535"}
				p.Defaults()
				return p
			}()},
		{name: "FIN churn without TIME_WAIT reuse", in: in, refuse: true, first: "TIME_WAIT", max: 470,
			fixes: []string{"close: rst", "tcp_tw_reuse=1"},
			h:     func(h *preflight.Host) { h.TWReuse = 0 },
			p: func() *plan.Plan {
				p := plan40k()
				p.Load = plan.Load{Model: "arrival", Start: 1000, Stages: []plan.Stage{{Duration: plan.Duration(time.Minute), Target: 1000}}}
				p.Connection.Close, p.Connection.Hold = "fin", 0
				p.Defaults()
				return p
			}()},
		{name: "FIN churn with loopback reuse", in: in, capacity: 28232,
			p: func() *plan.Plan {
				p := plan40k()
				p.Load = plan.Load{Model: "arrival", Start: 1000, Stages: []plan.Stage{{Duration: plan.Duration(time.Minute), Target: 1000}}}
				p.Connection.Close, p.Connection.Hold = "fin", 0
				p.Defaults()
				return p
			}()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := host()
			if tt.h != nil {
				tt.h(&h)
			}
			f := preflight.Plan(spec.Preflight(tt.p), h, tt.in)
			var text strings.Builder
			f.WriteText(&text, tt.p.Name)
			if f.Refuse != tt.refuse {
				t.Errorf("refuse = %v, want %v\n%s", f.Refuse, tt.refuse, text.String())
			}
			if tt.capacity != 0 && f.Capacity != tt.capacity {
				t.Errorf("capacity %d, want %d", f.Capacity, tt.capacity)
			}
			first := f.First()
			switch {
			case tt.first == "" && first != nil:
				t.Errorf("stopped by %s, want nothing\n%s", first.Name, text.String())
			case tt.first != "" && (first == nil || first.Name != tt.first):
				t.Fatalf("first limit %+v, want %s\n%s", first, tt.first, text.String())
			case tt.first != "" && tt.max != 0 && first.Max != tt.max:
				t.Errorf("%s stops it at %d, want %d", first.Name, first.Max, tt.max)
			}
			all := text.String()
			for _, fx := range tt.fixes {
				if !strings.Contains(all, fx) {
					t.Errorf("the fixes lack %q:\n%s", fx, all)
				}
			}
			for _, w := range tt.warnings {
				if !strings.Contains(strings.Join(f.Warnings, "\n"), w) {
					t.Errorf("warnings %v lack %q", f.Warnings, w)
				}
			}
			if tt.expectExh && !strings.Contains(all, "as the plan expects") {
				t.Errorf("the verdict does not say the exhaustion is expected:\n%s", all)
			}
		})
	}
}

func TestReservedIn(t *testing.T) {
	tests := []struct {
		reserved string
		lo, hi   int
		want     int
	}{
		{"", 1, 65535, 0},
		{"8080", 1, 65535, 1},
		{"8080,9000-9010", 9005, 9100, 6},
		{"40000-40999", 40500, 40599, 100},
		{"junk,5-x,7", 1, 10, 1},
	}
	for _, tt := range tests {
		if got := preflight.ReservedIn(tt.reserved, tt.lo, tt.hi); got != tt.want {
			t.Errorf("preflight.ReservedIn(%q, %d, %d) = %d, want %d", tt.reserved, tt.lo, tt.hi, got, tt.want)
		}
	}
}

// TestConntrackForecast: nf_conntrack_max limits a plan only when conntrack tracks connections in
// the run's namespace, not because the module is loaded.
func TestConntrackForecast(t *testing.T) {
	// 500,000 connections over 20 destinations: the ports and descriptors suffice; only a
	// conntrack table of 262,144 could stop it.
	big := func(isolated bool) *plan.Plan {
		p := plan40k()
		p.Target.Addresses = nil
		for i := range 20 {
			p.Target.Addresses = append(p.Target.Addresses, "127.0.0.1:"+strconv.Itoa(7000+i))
		}
		p.Load.Stages[0].Target = 500000
		p.Isolate = isolated
		return p
	}
	in := func(loopback bool) preflight.Inputs {
		var dsts []string
		addr := "10.0.0.1:"
		if loopback {
			addr = "127.0.0.1:"
		}
		for i := range 20 {
			dsts = append(dsts, addr+strconv.Itoa(7000+i))
		}
		return preflight.Inputs{Destinations: dsts, Loopback: loopback}
	}
	for _, tt := range []struct {
		name     string
		state    string
		count    int
		loopback bool
		isolate  bool
		limited  bool
	}{
		{"tracked here", preflight.ConntrackActive, 0, true, false, true},
		{"not probed (a host read elsewhere)", "", 0, true, false, true},
		{"the probe failed", preflight.ConntrackUnknown, 0, true, false, true},
		{"loaded, nothing tracked", preflight.ConntrackInactive, 0, true, false, false},
		{"loaded, nothing tracked, remote destinations, empty table", preflight.ConntrackInactive, 0, false, false, false},
		{"loopback untracked but entries elsewhere, remote destinations", preflight.ConntrackInactive, 100, false, false, true},
		{"loopback untracked, entries elsewhere, loopback destinations", preflight.ConntrackInactive, 100, true, false, false},
		{"not loaded", preflight.ConntrackNotLoaded, 0, true, false, false},
		{"the run's fresh namespace", preflight.ConntrackActive, 5, true, true, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := host()
			h.ConntrackMax, h.ConntrackCount, h.Conntrack = 262144, tt.count, tt.state
			if tt.state == preflight.ConntrackNotLoaded {
				h.ConntrackMax, h.ConntrackCount = -1, -1
			}
			f := preflight.Plan(spec.Preflight(big(tt.isolate)), h, in(tt.loopback))
			var text strings.Builder
			f.WriteText(&text, "big")
			var limit *preflight.Limit
			for i := range f.Limits {
				if f.Limits[i].Name == "conntrack" {
					limit = &f.Limits[i]
				}
			}
			if (limit != nil) != tt.limited {
				t.Fatalf("conntrack limit %+v, want one: %v\n%s", limit, tt.limited, text.String())
			}
			if f.Refuse != tt.limited {
				t.Errorf("refuse = %v, want %v (only conntrack could stop it)\n%s", f.Refuse, tt.limited, text.String())
			}
			if tt.limited && (!limit.Stops || limit.Max != int64(262144-tt.count)) {
				t.Errorf("conntrack limit %+v, want it to stop the plan at %d", limit, 262144-tt.count)
			}
		})
	}
}
