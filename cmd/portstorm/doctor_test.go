//go:build linux

package main

import (
	"path/filepath"
	"strings"
	"testing"
)

func TestDoctor(t *testing.T) {
	forty := `version: 1
name: forty
target: {addresses: ["127.0.0.1:6379"]}
connection: {hold: 1m, close: rst}
load:
  stages: [{duration: 1m, target: 40000}]
`
	small := `version: 1
name: small
target: {builtin: {mode: hold, listeners: 2}}
source: {addresses: ["127.0.0.1", "127.0.0.2"], ports: {strategy: bind-no-port}}
load:
  stages: [{duration: 1s, target: 100}]
`
	tests := []struct {
		name string
		args []string
		code int
		want []string
	}{
		{"host only", []string{"doctor"}, 0, []string{"open files", "port range", "tcp_tw_reuse", "somaxconn", "syncookies", "conntrack", "--netns"}},
		{"a plan that cannot run", []string{"doctor", writePlan(t, forty)}, exitCannotRun,
			[]string{"STOPS local ports", "28232", "add source addresses", "more destinations", "verdict: cannot be carried out"}},
		{"a plan that runs", []string{"doctor", writePlan(t, small)}, 0, []string{"127.0.0.2", "verdict: can be carried out", "processes           fd limit"}},
		{"the configs' exhaustion, expected", []string{"doctor", "../../configs/exhaustion.yaml"}, 0, []string{"as the plan expects"}},
		{"two plans", []string{"doctor", "a", "b"}, exitInvalid, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := runMain(t, nil, tt.args...)
			if code != tt.code {
				t.Fatalf("exit %d, want %d\n%s\n%s", code, tt.code, out, errOut)
			}
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
		})
	}
}

// TestRunRefusesImpossiblePlan: run applies the doctor's check and refuses, with exit 3 and the
// explanation, before any connection.
func TestRunRefusesImpossiblePlan(t *testing.T) {
	p := writePlan(t, `version: 1
name: range-too-small
target: {builtin: {mode: hold}}
source: {ports: {strategy: range, range: "40000-40099"}}
load:
  stages: [{duration: 1s, target: 150}]
`)
	code, out, errOut := runMain(t, nil, "run", p, "-q", "--out", filepath.Join(t.TempDir(), "r"))
	if code != exitCannotRun {
		t.Fatalf("exit %d, want %d\n%s\n%s", code, exitCannotRun, out, errOut)
	}
	for _, w := range []string{"preflight refuses", "local ports", "100 concurrent", "expect_exhaustion"} {
		if !strings.Contains(errOut, w) {
			t.Errorf("stderr lacks %q:\n%s", w, errOut)
		}
	}
}

// TestNetnsExhaustion runs configs/exhaustion.yaml (isolate: true) as a user would: portstorm
// starts itself again in a private network namespace and reports the exhaustion at 1000.
func TestNetnsExhaustion(t *testing.T) {
	if testing.Short() {
		t.Skip("runs 5 s")
	}
	checkFDs(t)
	dir := filepath.Join(t.TempDir(), "exh")
	code, out, errOut := runMain(t, nil, "run", "../../configs/exhaustion.yaml", "-q", "--out", dir)
	if strings.Contains(errOut, "cannot be created here") {
		t.Skipf("no private network namespace here: %s", errOut)
	}
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
	s := readSummary(t, dir)
	checkConservation(t, s)
	if !s.Host.Isolated || s.Ports == nil || s.Ports.Exhaustion == nil {
		t.Fatalf("host %+v, ports %+v: want an isolated run with an exhaustion", s.Host, s.Ports)
	}
	if x := s.Ports.Exhaustion; x.Concurrency != 1000 || x.Occupancy != 1 || x.Errno != "EADDRNOTAVAIL" || x.Syscall != "connect" {
		t.Errorf("exhaustion %+v, want 1000 concurrent, 100%%, EADDRNOTAVAIL from connect", x)
	}
	if !strings.Contains(out, "exhausted    at") {
		t.Errorf("the text summary does not show the exhaustion:\n%s", out)
	}
}
