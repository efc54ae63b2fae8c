package plan

import (
	"strings"
	"testing"
)

// TestLinuxOnlyFeatures: off Linux, a plan using a Linux-only feature is a plan error at its
// file:line saying it needs Linux; on Linux the same plan passes. The system is injected (goos), so
// the rules of every system are checked on this one.
func TestLinuxOnlyFeatures(t *testing.T) {
	tests := []struct {
		name string
		yaml string // appended to a valid plan
		want []string
	}{
		{"isolate", "isolate: true\n", []string{"p.yaml:9: isolate: a private network namespace needs Linux (this is %s)"}},
		{"netns", "isolate: true\nnetns: {tw_reuse: \"1\"}\n", []string{
			"p.yaml:9: isolate: a private network namespace needs Linux (this is %s)",
			"p.yaml:10: netns: the sysctls of a private network namespace need Linux (this is %s)"}},
		{"bind-no-port", "source: {ports: {strategy: bind-no-port}}\n", []string{"p.yaml:9: source.ports.strategy: bind-no-port needs Linux (IP_BIND_ADDRESS_NO_PORT; this is %s)"}},
		{"range", "source:\n  ports: {strategy: range, range: 40000-40999}\n", []string{"p.yaml:10: source.ports.strategy: range needs Linux 6.3 or later (IP_LOCAL_PORT_RANGE; this is %s)"}},
		{"explicit is portable", "source:\n  ports: {strategy: explicit, range: 40000-40999}\n", nil},
		{"bind is portable", "source: {ports: {strategy: bind}}\n", nil},
		{"kernel with a source address is portable", "source: {addresses: [127.0.0.2]}\n", nil},
	}
	const base = `version: 1
name: p
target:
  builtin: {mode: echo}
load:
  model: concurrency
  stages:
    - {duration: 1s, target: 10}
`
	defer func(g string) { goos = g }(goos)
	for _, tt := range tests {
		for _, os := range []string{"linux", "darwin", "windows", "freebsd"} {
			t.Run(tt.name+"/"+os, func(t *testing.T) {
				goos = os
				p, err := Parse("p.yaml", []byte(base+tt.yaml), Overrides{})
				if err != nil {
					t.Fatal(err)
				}
				p.Defaults()
				var got []string
				for _, e := range p.Validate() {
					got = append(got, e.Error())
				}
				var want []string
				if os != "linux" {
					for _, w := range tt.want {
						want = append(want, strings.ReplaceAll(w, "%s", os))
					}
				}
				if len(got) != len(want) {
					t.Fatalf("got %q, want errors starting %q", got, want)
				}
				for i := range want {
					if !strings.HasPrefix(got[i], want[i]) {
						t.Errorf("error %d:\n got %s\nwant %s...", i, got[i], want[i])
					}
				}
			})
		}
	}
}
