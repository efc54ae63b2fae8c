//go:build linux

package coordinator

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/portstorm/portstorm/loadgen/isolate/nstest"
	"github.com/portstorm/portstorm/loadgen/plan"
)

// TestRawPayloads: a raw request given as text, hex or a file, and the answer expected as echo or
// as an exact reply, against the built-in echo target.
func TestRawPayloads(t *testing.T) {
	file := filepath.Join(t.TempDir(), "payload.bin")
	if err := os.WriteFile(file, []byte("HELLO\r\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		send    plan.Send
		outcome string
		bytes   uint64 // bytes written per connection
	}{
		{"data, echo", plan.Send{Data: "PING\r\n", Expect: "echo"}, "ok", 6},
		{"hex, echo", plan.Send{Hex: "2a 31 0d 0a", Expect: "echo"}, "ok", 4},
		{"file, echo", plan.Send{File: file, Expect: "echo"}, "ok", 7},
		{"data, the right reply", plan.Send{Data: "PING\r\n", Reply: "PING\r\n"}, "ok", 6},
		{"data, a wrong reply", plan.Send{Data: "PING\r\n", Reply: "PONG\r\n"}, "reply_mismatch", 6},
		{"data, written only", plan.Send{Data: "PING\r\n", Expect: "none"}, "ok", 6},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := tt.send
			p := &plan.Plan{Version: 1, Name: "raw",
				Target:     plan.Target{Builtin: &plan.Builtin{Mode: "echo"}},
				Connection: plan.Connection{Send: &s, Close: "rst"},
				Load:       plan.Load{Model: "arrival", Start: 200, Stages: []plan.Stage{{Duration: plan.Duration(500 * time.Millisecond), Target: 200}}},
			}
			p.Defaults()
			sum := runPlan(t, p, Options{})
			c := sum.Connections
			if c.Established == 0 || c.Failed != 0 || sum.Outcomes[tt.outcome] != c.Established {
				t.Fatalf("connections %+v, outcomes %v (examples %v): want every connection %s", c, sum.Outcomes, sum.Examples, tt.outcome)
			}
			if sum.Bytes.Out != tt.bytes*c.Established {
				t.Errorf("%d bytes written, want %d per connection for %d", sum.Bytes.Out, tt.bytes, c.Established)
			}
		})
	}
}

// TestIPv6SourcePool: IPv6 source addresses added to lo inside a private network namespace work
// as a source pool, as 127.0.0.0/8 addresses do, and the port report keeps them apart.
func TestIPv6SourcePool(t *testing.T) {
	if !nstest.Run(t) {
		return
	}
	sources := []string{"fd00::1", "fd00::2"}
	for _, a := range sources {
		// nodad: usable at once, without duplicate address detection's delay.
		if out, err := exec.Command("ip", "-6", "addr", "add", a+"/128", "dev", "lo", "nodad").CombinedOutput(); err != nil {
			t.Skipf("cannot add %s to lo: %v %s", a, err, out)
		}
	}
	for _, strategy := range []string{"kernel", "bind-no-port", "explicit"} {
		t.Run(strategy, func(t *testing.T) {
			p := &plan.Plan{Version: 1, Name: "v6pool",
				Target:     plan.Target{Builtin: &plan.Builtin{Mode: "echo", Address: "::1"}},
				Source:     plan.Source{Addresses: sources, Ports: plan.Ports{Strategy: strategy}},
				Connection: plan.Connection{Send: &plan.Send{Bytes: 16}, Close: "rst"},
				Load:       plan.Load{Model: "arrival", Start: 400, Stages: []plan.Stage{{Duration: plan.Duration(500 * time.Millisecond), Target: 400}}},
			}
			if strategy == "explicit" {
				p.Source.Ports.Range = "42000-42999"
			}
			p.Defaults()
			s := runPlan(t, p, Options{})
			if s.Connections.Established == 0 || s.Connections.Failed != 0 || s.Errors.Count != 0 {
				t.Fatalf("connections %+v, outcomes %v, examples %v", s.Connections, s.Outcomes, s.Examples)
			}
			src := s.Ports.Sources
			if len(src) != 2 || !slices.Contains(sources, src[0].Address) || !slices.Contains(sources, src[1].Address) || src[0].Address == src[1].Address {
				t.Fatalf("port sources %+v, want fd00::1 and fd00::2", src)
			}
			if a, b := s.Ports.Sources[0].Connections, s.Ports.Sources[1].Connections; a+b != s.Connections.Established || a == 0 || b == 0 {
				t.Errorf("connections per source %d and %d of %d", a, b, s.Connections.Established)
			}
		})
	}
}
