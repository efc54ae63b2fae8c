package preflight

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/portstorm/portstorm/loadgen/isolate"
	"github.com/portstorm/portstorm/loadgen/isolate/nstest"
)

// TestProbeConntrackFreshNamespace: in a fresh network namespace, with the module loaded or not,
// no rule asks for conntrack, so the probe connection is not tracked and the table's size limits
// nothing; ReadHost says so.
func TestProbeConntrackFreshNamespace(t *testing.T) {
	if !nstest.Run(t) {
		return
	}
	want := ConntrackInactive
	if _, err := os.Stat("/proc/sys/net/netfilter/nf_conntrack_count"); err != nil {
		want = ConntrackNotLoaded
	}
	if got := probeConntrack(); got != want {
		t.Errorf("probe in a fresh namespace: %q, want %q", got, want)
	}
	if h := ReadHost(nil); h.Conntrack != want {
		t.Errorf("ReadHost().Conntrack = %q, want %q", h.Conntrack, want)
	}
	// The probes left nothing behind in the namespace's port space: no TIME_WAIT, no socket.
	b, err := os.ReadFile("/proc/net/sockstat")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 0 && f[0] == "TCP:" {
			for i := 1; i+1 < len(f); i += 2 {
				if (f[i] == "tw" || f[i] == "inuse") && f[i+1] != "0" {
					t.Errorf("after the probes: %s", line)
				}
			}
		}
	}
}

func TestConntrackHas(t *testing.T) {
	dir := t.TempDir()
	old := Proc
	Proc = dir
	defer func() { Proc = old }()
	if got := conntrackHas(" sport=40000 dport=7000 "); got != -1 {
		t.Errorf("no table: %d, want -1", got)
	}
	os.MkdirAll(filepath.Join(dir, "net"), 0o755)
	table := "ipv4     2 tcp      6 431999 ESTABLISHED src=127.0.0.1 dst=127.0.0.1 sport=40000 dport=7000 src=127.0.0.1 dst=127.0.0.1 sport=7000 dport=40000 [ASSURED] mark=0 zone=0 use=2\n"
	os.WriteFile(filepath.Join(dir, "net/nf_conntrack"), []byte(table), 0o644)
	for _, tt := range []struct {
		tuple string
		want  int
	}{
		{" sport=40000 dport=7000 ", 1},
		{" sport=40000 dport=7001 ", 0},
		{" sport=4000 dport=7000 ", 0},
	} {
		if got := conntrackHas(tt.tuple); got != tt.want {
			t.Errorf("conntrackHas(%q) = %d, want %d", tt.tuple, got, tt.want)
		}
	}
}

func TestConntrackState(t *testing.T) {
	for _, tt := range []struct {
		name                 string
		before, during, seen int
		want                 string
	}{
		{"no nf_conntrack_count", -1, -1, -1, ConntrackNotLoaded},
		{"the probe's tuple in the table", 0, 1, 1, ConntrackActive},
		{"tuple found though other entries expired", 10, 9, 1, ConntrackActive},
		{"the table read, the tuple absent", 0, 0, 0, ConntrackInactive},
		{"the table read, absent, while others come and go", 10, 12, 0, ConntrackInactive},
		{"no table: the count rose", 0, 1, -1, ConntrackActive},
		{"no table: the count stayed at 0", 0, 0, -1, ConntrackInactive},
		{"no table: the count fell", 10, 8, -1, ConntrackInactive},
		{"the count vanished during the probe", 0, -1, -1, ConntrackUnknown},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := conntrackState(tt.before, tt.during, tt.seen); got != tt.want {
				t.Errorf("conntrackState(%d, %d, %d) = %q, want %q", tt.before, tt.during, tt.seen, got, tt.want)
			}
		})
	}
}

// TestReadHostIsolated: whether the host is the run's private namespace is read from the
// environment portstorm was given, not from this process's own (a test's, here, which has no
// isolate.ChildEnv).
func TestReadHostIsolated(t *testing.T) {
	for _, tt := range []struct {
		name string
		env  []string
		want bool
	}{
		{"no environment", nil, false},
		{"another environment", []string{"HOME=/root", isolate.ChildEnv + "=0"}, false},
		{"started by isolate.Command", []string{"HOME=/root", isolate.ChildEnv + "=1"}, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := ReadHost(tt.env).Isolated; got != tt.want {
				t.Errorf("ReadHost(%q).Isolated = %v, want %v", tt.env, got, tt.want)
			}
		})
	}
}
