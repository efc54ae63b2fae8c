//go:build linux

package coordinator

import (
	"context"
	"testing"
	"time"

	"github.com/portstorm/portstorm/loadgen/plan"
	"github.com/portstorm/portstorm/target"
)

// TestIPv6Loopback: a target on ::1 and the source address ::1 work like 127.0.0.1, with every
// port strategy, and the port report names the IPv6 source.
func TestIPv6Loopback(t *testing.T) {
	srv, err := target.Start(context.Background(), target.Config{Mode: target.ModeEcho, Listen: []string{"[::1]:0"}})
	if err != nil {
		t.Skipf("no IPv6 loopback here: %v", err)
	}
	defer srv.Close()
	for _, strategy := range []string{"kernel", "bind-no-port", "bind", "range", "explicit"} {
		t.Run(strategy, func(t *testing.T) {
			p := &plan.Plan{Version: 1, Name: "v6",
				Target:     plan.Target{Addresses: srv.Addrs()},
				Source:     plan.Source{Addresses: []string{"::1"}, Ports: plan.Ports{Strategy: strategy}},
				Connection: plan.Connection{Send: &plan.Send{Bytes: 16, Expect: "echo"}, Close: "rst"},
				Load:       plan.Load{Model: "arrival", Start: 200, Stages: []plan.Stage{{Duration: plan.Duration(500 * time.Millisecond), Target: 200}}},
			}
			if strategy == "range" || strategy == "explicit" {
				p.Source.Ports.Range = "42000-42999"
			}
			p.Defaults()
			s := runPlan(t, p, Options{})
			if s.Connections.Established == 0 || s.Connections.Failed != 0 || s.Errors.Count != 0 {
				t.Fatalf("connections %+v, outcomes %v, examples %v", s.Connections, s.Outcomes, s.Examples)
			}
			if len(s.Ports.Sources) != 1 || s.Ports.Sources[0].Address != "::1" {
				t.Fatalf("port sources %+v, want ::1", s.Ports.Sources)
			}
		})
	}
}
