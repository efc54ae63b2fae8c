//go:build linux

package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portstorm/portstorm/loadgen/report"
	"github.com/portstorm/portstorm/loadgen/shard"
)

// netnsLab builds hosts as network namespaces on one bridge and removes them all at the end.
type netnsLab struct {
	t      *testing.T
	prefix string
}

func (l *netnsLab) ip(args ...string) {
	l.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "ip", args...).CombinedOutput(); err != nil {
		l.t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// addNS creates a namespace with loopback up; it is deleted (with its links) when the test ends.
func (l *netnsLab) addNS(name string) string {
	ns := l.prefix + name
	l.ip("netns", "add", ns)
	l.t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil {
			l.t.Errorf("cleanup: ip netns del %s: %v %s", ns, err, out)
		}
	})
	l.ip("-n", ns, "link", "set", "lo", "up")
	return ns
}

// TestDistributedNetns runs one plan as three segments on three generator hosts (network
// namespaces, each with its own address on a bridge) against a target host, with a shared
// --start-at, merges the shard folders with `portstorm merge` and checks the merged result equals
// the shards' union merged in-process, with the port reports kept per host. It needs root and
// ip(8), and runs with PORTSTORM_LONG_TESTS=1 (.ci/run sets it).
func TestDistributedNetns(t *testing.T) {
	if os.Getenv("PORTSTORM_LONG_TESTS") != "1" {
		t.Skip("set PORTSTORM_LONG_TESTS=1 to run (about 10 s; needs root and ip)")
	}
	if os.Geteuid() != 0 {
		t.Skip("skipped: creating network namespaces needs root")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("skipped: ip(8) (iproute2) is not installed")
	}
	bin := buildPortstorm(t)
	id := os.Getpid() % 100000
	lab := &netnsLab{t: t, prefix: fmt.Sprintf("psd%d-", id)}
	subnet := fmt.Sprintf("10.213.%d", id%250)
	tgt := lab.addNS("t")
	lab.ip("-n", tgt, "link", "add", "br0", "type", "bridge")
	lab.ip("-n", tgt, "addr", "add", subnet+".1/24", "dev", "br0")
	lab.ip("-n", tgt, "link", "set", "br0", "up")
	const n = 3
	gens := make([]string, n)
	for i := range gens {
		gens[i] = lab.addNS(fmt.Sprintf("g%d", i))
		// The veth pair is made directly in the two namespaces: nothing appears in the host's.
		lab.ip("link", "add", "eth0", "netns", gens[i], "type", "veth", "peer", "name", fmt.Sprintf("v%d", i), "netns", tgt)
		lab.ip("-n", tgt, "link", "set", fmt.Sprintf("v%d", i), "master", "br0", "up")
		lab.ip("-n", gens[i], "addr", "add", fmt.Sprintf("%s.%d/24", subnet, 10+i), "dev", "eth0")
		lab.ip("-n", gens[i], "link", "set", "eth0", "up")
	}

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	addr := subnet + ".1:7000"
	target := exec.CommandContext(ctx, "ip", "netns", "exec", tgt, bin, "target", "--listen", addr, "--allow-remote")
	stdout, err := target.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	target.Stderr = os.Stderr
	if err := target.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		target.Process.Signal(os.Interrupt)
		target.Wait()
	}()
	if line, err := bufio.NewReader(stdout).ReadString('\n'); err != nil || !strings.Contains(line, "listening") {
		t.Fatalf("target: %q %v", line, err)
	}

	dir := t.TempDir()
	planFile := filepath.Join(dir, "plan.yaml")
	if err := os.WriteFile(planFile, []byte(fmt.Sprintf(`version: 1
name: netns-split
target: {addresses: [%q], allow_remote: true}
connection: {connect_timeout: 3s, send: {bytes: 16B, count: 1}, hold: 10s, close: fin}
load:
  model: concurrency
  stages: [{duration: 1s, target: 90}, {duration: 1s, target: 90}, {duration: 500ms, target: 0}]
thresholds: ["connect.p99 < 10s"]
output: {interval: 250ms}
`, addr)), 0o600); err != nil {
		t.Fatal(err)
	}
	startAt := time.Now().Add(time.Second).Format(time.RFC3339Nano)
	dirs := make([]string, n)
	outs := make([][]byte, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		dirs[i] = filepath.Join(dir, fmt.Sprintf("segment-%d", i))
		wg.Go(func() {
			outs[i], errs[i] = exec.CommandContext(ctx, "ip", "netns", "exec", gens[i], bin, "run", planFile,
				"--segment", fmt.Sprintf("%d/%d", i, n), "--start-at", startAt, "--host", fmt.Sprintf("gen-%d", i),
				"--out", dirs[i], "-q", "--allow-remote").CombinedOutput()
		})
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("segment %d: %v\n%s", i, errs[i], outs[i])
		}
	}
	merged := filepath.Join(dir, "merged")
	if out, err := exec.CommandContext(ctx, bin, "merge", dirs[0], dirs[1], dirs[2], "--out", merged).CombinedOutput(); err != nil {
		t.Fatalf("merge: %v\n%s", err, out)
	}
	got := readSummary(t, merged)

	var rs []*shard.Result
	for _, d := range dirs {
		r, err := shard.ReadResult(d)
		if err != nil {
			t.Fatal(err)
		}
		rs = append(rs, r)
	}
	want, err := shard.MergeResults(rs, nil)
	if err != nil {
		t.Fatal(err)
	}
	lat, err := report.Latencies(want.Total)
	if err != nil {
		t.Fatal(err)
	}
	c := got.Connections
	if c.Attempted != want.Total.Attempted || c.Established != want.Total.Established || c.Closed != want.Total.Closed ||
		c.Failed != want.Total.Failed || c.PeakConcurrent != want.Total.PeakActive {
		t.Errorf("merged %+v; shards' union %+v, peak %d", c, want.Total.Counts, want.Total.PeakActive)
	}
	if c.Established == 0 || c.Failed != 0 || c.PeakConcurrent < 90 {
		t.Errorf("merged run %+v (examples %v)", c, got.Examples)
	}
	for name, w := range lat {
		g := got.Latency[name]
		if g.Count != w.Count || g.P50 != w.P50 || g.P90 != w.P90 || g.P99 != w.P99 || g.P999 != w.P999 || g.Max != w.Max || g.HDR != w.HDR {
			t.Errorf("%s: merged %+v, union %+v", name, g, w)
		}
	}
	hosts := map[string]bool{}
	for _, h := range got.PortsByHost {
		if h.Ports == nil {
			t.Errorf("host %s: no port report", h.Host)
		}
		hosts[h.Host] = true
	}
	if len(hosts) != n || got.Ports != nil || got.Segments != n || got.Verdict != "pass" {
		t.Errorf("ports_by_host hosts %v, ports %v, segments %d, verdict %s", hosts, got.Ports, got.Segments, got.Verdict)
	}
	t.Logf("3 hosts: %d established, peak %d, connect p99 %d µs", c.Established, c.PeakConcurrent, got.Latency["connect"].P99)
}
