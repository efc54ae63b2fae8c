//go:build linux

package main

import (
	"bufio"
	"context"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/portstorm/portstorm/loadgen/report"
	"github.com/portstorm/portstorm/loadgen/shard"
)

// TestK8sPodsNetns proves the manifests `portstorm k8s` renders would run, without a cluster. It
// renders a plan that names a binary send.file and a baseline (both must travel in the ConfigMap),
// decodes the manifests strictly into the Kubernetes API types, and then plays the kubelet: for
// each completion index, a "pod" is a network namespace of its own (veth to a bridge in the target
// host's namespace) and a mount namespace whose root is a read-only folder holding the binary at
// the container's command path, with the rendered volume mounts bind-mounted from folders (the
// ConfigMap's data and binaryData as files, the claim shared by all pods, emptyDir per pod), the
// pod's sysctls set in its namespace, and the container's exact command and args run as the pod's
// runAsUser:runAsGroup with its env ($(VAR) expanded, JOB_COMPLETION_INDEX and NODE_NAME from
// their fieldRefs). The merge Job's container runs the same way, alongside. The merged result must
// pass the plan's gate (its baseline is a one-host run of the same load: counts compare exactly)
// and equal that one-host run's counts. It needs root, ip(8), unshare(1) and chroot(1), and runs
// with PORTSTORM_LONG_TESTS=1 (.ci/run sets it).
func TestK8sPodsNetns(t *testing.T) {
	if os.Getenv("PORTSTORM_LONG_TESTS") != "1" {
		t.Skip("set PORTSTORM_LONG_TESTS=1 to run (about 15 s; needs root, ip, unshare, chroot)")
	}
	if os.Geteuid() != 0 {
		t.Skip("skipped: network and mount namespaces for the pods need root")
	}
	for _, tool := range []string{"ip", "unshare", "chroot", "mount", "sh"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("skipped: %s is not installed", tool)
		}
	}
	// The image's binary: static, as the Dockerfile builds it (the pods' root has no libc).
	dir := t.TempDir()
	bin := filepath.Join(dir, "portstorm")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}

	const n = 3
	id := os.Getpid() % 100000
	lab := &netnsLab{t: t, prefix: fmt.Sprintf("psk%d-", id)}
	subnet := fmt.Sprintf("10.214.%d", id%250)
	tgt := lab.addNS("t")
	lab.ip("-n", tgt, "link", "add", "br0", "type", "bridge")
	lab.ip("-n", tgt, "addr", "add", subnet+".1/24", "dev", "br0")
	lab.ip("-n", tgt, "link", "set", "br0", "up")
	host := func(name string, i int) string {
		ns := lab.addNS(name)
		lab.ip("link", "add", "eth0", "netns", ns, "type", "veth", "peer", "name", fmt.Sprintf("v%d", i), "netns", tgt)
		lab.ip("-n", tgt, "link", "set", fmt.Sprintf("v%d", i), "master", "br0", "up")
		lab.ip("-n", ns, "addr", "add", fmt.Sprintf("%s.%d/24", subnet, 10+i), "dev", "eth0")
		lab.ip("-n", ns, "link", "set", "eth0", "up")
		return ns
	}
	pods := make([]string, n)
	for i := range pods {
		pods[i] = host(fmt.Sprintf("pod%d", i), i)
	}
	solo := host("solo", n)
	mergeNS := host("merge", n+1) // reachable from the pods: --results upload sends it the shard folders

	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	addr := subnet + ".1:7000"
	target := exec.CommandContext(ctx, "ip", "netns", "exec", tgt, bin, "target", "--listen", addr, "--allow-remote", "--mode", "echo")
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

	// The request is binary: it travels in the ConfigMap's binaryData.
	req := make([]byte, 48)
	for i := range req {
		req[i] = byte(0xff - i*5)
	}
	if err := os.WriteFile(filepath.Join(dir, "req.bin"), req, 0o644); err != nil {
		t.Fatal(err)
	}
	load := fmt.Sprintf(`version: 1
name: pods
target: {addresses: [%q], allow_remote: true}
connection: {connect_timeout: 3s, send: {file: req.bin, count: 2, expect: echo}, close: rst}
load:
  model: arrival
  stages: [{duration: 1s, target: 200}, {duration: 1s, target: 200}]
output: {interval: 250ms}
`, addr)
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	// The one-host run: the same load from one generator namespace.
	soloOut := filepath.Join(dir, "solo")
	if out, err := exec.CommandContext(ctx, "ip", "netns", "exec", solo, bin, "run", write("solo.yaml", load), "--out", soloOut, "-q", "--allow-remote").CombinedOutput(); err != nil {
		t.Fatalf("one-host run: %v\n%s", err, out)
	}
	want := readSummary(t, soloOut)
	if want.Connections.Established == 0 || want.Connections.Failed != 0 {
		t.Fatalf("one-host run %+v", want.Connections)
	}
	// The distributed plan judges the merged result against the one-host run: counts exactly.
	planFile := write("plan.yaml", load+fmt.Sprintf(`thresholds: ["errors.count == 0"]
baseline:
  file: %s
  max_regression: 1000%%
  metrics: [connections.attempted, connections.established, connections.failed, connections.closed]
`, filepath.Join(soloOut, "summary.json")))

	mergeIP := fmt.Sprintf("%s.%d", subnet, 10+n+1)
	for _, mode := range []string{"volume", "upload"} {
		t.Run(mode, func(t *testing.T) {
			k8sPods(ctx, t, bin, planFile, mode, pods, mergeNS, mergeIP, want)
		})
	}
}

// k8sPods renders planFile with --results mode, runs the pods and checks the merged result
// against the one-host run's summary want.
func k8sPods(ctx context.Context, t *testing.T, bin, planFile, mode string, pods []string, mergeNS, mergeIP string, want *report.Summary) {
	n := len(pods)
	dir := t.TempDir()
	startAt := time.Now().Add(4 * time.Second).UTC().Format(time.RFC3339Nano)
	manifests := filepath.Join(dir, "run.yaml")
	if out, err := exec.CommandContext(ctx, bin, "k8s", planFile, "--parallelism", strconv.Itoa(n), "--image", "registry.example/portstorm:v0.0.0-test",
		"--start-at", startAt, "--results", mode, "-o", manifests).CombinedOutput(); err != nil {
		t.Fatalf("k8s: %v\n%s", err, out)
	}
	text, err := os.ReadFile(manifests)
	if err != nil {
		t.Fatal(err)
	}
	docs := strings.Split(string(text), "\n---\n")
	if len(docs) != 4 {
		t.Fatalf("%d manifests", len(docs))
	}
	var cm corev1.ConfigMap
	var pvc corev1.PersistentVolumeClaim
	var svc corev1.Service
	var segJob, mergeJob batchv1.Job
	second := any(&pvc)
	if mode == "upload" {
		second = &svc
	}
	for i, into := range []any{&cm, second, &segJob, &mergeJob} {
		if err := yaml.UnmarshalStrict([]byte(docs[i]), into); err != nil {
			t.Fatalf("manifest %d: %v\n%s", i, err, docs[i])
		}
	}
	// The Service's name resolves to the merge pod (cluster DNS, as /etc/hosts in the pods).
	hosts := map[string]string{}
	if mode == "upload" {
		mc := mergeJob.Spec.Template.Spec.Containers[0]
		if len(mc.Ports) != 1 || svc.Spec.Ports[0].TargetPort.IntValue() != int(mc.Ports[0].ContainerPort) ||
			svc.Spec.Selector["app.kubernetes.io/component"] != mergeJob.Spec.Template.Labels["app.kubernetes.io/component"] {
			t.Fatalf("service %+v does not reach the merge container's port", svc.Spec)
		}
		hosts[svc.Name] = mergeIP
	}

	// The volumes as folders: the ConfigMap's keys as files, the claim shared, emptyDirs per pod.
	cmDir := filepath.Join(dir, "configmap")
	podMkdir(t, cmDir, 0o755, false)
	for k, v := range cm.Data {
		podWriteFile(t, filepath.Join(cmDir, k), []byte(v))
	}
	for k, v := range cm.BinaryData {
		podWriteFile(t, filepath.Join(cmDir, k), v)
	}
	if len(cm.BinaryData) != 1 {
		t.Errorf("binaryData holds %d files, want the request", len(cm.BinaryData))
	}
	claim := filepath.Join(dir, "claim")
	podMkdir(t, claim, 0o755, true)

	var wg sync.WaitGroup
	outs := make([][]byte, n+1)
	errs := make([]error, n+1)
	for i := range n {
		wg.Go(func() {
			outs[i], errs[i] = runPod(ctx, t, pods[i], segJob.Spec.Template.Spec, i, fmt.Sprintf("node-%d", i), bin, cmDir, claim, filepath.Join(dir, fmt.Sprintf("pod%d", i)), hosts)
		})
	}
	mergePod := filepath.Join(dir, "mergepod")
	wg.Go(func() {
		outs[n], errs[n] = runPod(ctx, t, mergeNS, mergeJob.Spec.Template.Spec, -1, "node-m", bin, cmDir, claim, mergePod, hosts)
	})
	wg.Wait()
	for i := range n + 1 {
		if errs[i] != nil {
			t.Errorf("pod %d: %v\n%s", i, errs[i], outs[i])
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	results := claim
	if mode == "upload" {
		results = filepath.Join(mergePod, "emptydir-results")
	}
	got := readSummary(t, filepath.Join(results, "merged"))
	g, w := got.Connections, want.Connections
	if g.Attempted != w.Attempted || g.Established != w.Established || g.Failed != w.Failed || g.Closed != w.Closed {
		t.Errorf("merged connections %+v, one-host run %+v", g, w)
	}
	for _, name := range []string{"connect", "rtt"} {
		if got.Latency[name].Count != want.Latency[name].Count {
			t.Errorf("%s: merged %d samples, one-host %d", name, got.Latency[name].Count, want.Latency[name].Count)
		}
	}
	if got.Verdict != "pass" || got.Segments != n || len(got.PortsByHost) != n {
		t.Errorf("merged verdict %s, segments %d, ports_by_host %d", got.Verdict, got.Segments, len(got.PortsByHost))
	}
	for i := range n {
		r, err := shard.ReadResult(filepath.Join(results, fmt.Sprintf("segment-%d", i)))
		if err != nil {
			t.Fatal(err)
		}
		if r.Info.Host != fmt.Sprintf("node-%d", i) || r.Info.Segment != fmt.Sprintf("%d/%d", i, n) {
			t.Errorf("segment %d: host %q, segment %q", i, r.Info.Host, r.Info.Segment)
		}
	}
	t.Logf("%s: %d pods: %d attempted, %d established (one host: %d, %d), verdict %s", mode, n, g.Attempted, g.Established, w.Attempted, w.Established, got.Verdict)
}

func podMkdir(t *testing.T, d string, mode os.FileMode, chown bool) {
	t.Helper()
	if err := os.MkdirAll(d, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(d, mode); err != nil {
		t.Fatal(err)
	}
	if !chown {
		return
	}
	if err := os.Chown(d, podUID, podUID); err != nil {
		t.Fatal(err)
	}
}

const podUID = 65532

func podWriteFile(t *testing.T, p string, b []byte) {
	t.Helper()
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

var varRef = regexp.MustCompile(`\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)`)

// expand does what the kubelet does to command and args: $(VAR) is the container's variable
// when it has one, $$ is $.
func expand(s string, env map[string]string) string {
	return varRef.ReplaceAllStringFunc(s, func(m string) string {
		if m == "$$" {
			return "$"
		}
		if v, ok := env[m[2:len(m)-1]]; ok {
			return v
		}
		return m
	})
}

// runPod runs the pod's single container as the kubelet would, in network namespace ns: root a
// read-only folder with the image's binary, volumes bind-mounted from folders, the pod's sysctls,
// its user, its env. index is the pod's completion index (-1: not an Indexed Job's pod).
func runPod(ctx context.Context, t *testing.T, ns string, spec corev1.PodSpec, index int, node, bin, cmDir, claim, podDir string, hosts map[string]string) ([]byte, error) {
	sc := spec.SecurityContext
	if len(spec.Containers) != 1 || sc == nil || sc.RunAsUser == nil || sc.RunAsGroup == nil {
		return nil, fmt.Errorf("pod spec: want one container and runAsUser, runAsGroup")
	}
	c := spec.Containers[0]
	cs := c.SecurityContext
	if cs == nil || cs.ReadOnlyRootFilesystem == nil || !*cs.ReadOnlyRootFilesystem || cs.Capabilities == nil || !slices.Equal(cs.Capabilities.Drop, []corev1.Capability{"ALL"}) {
		return nil, fmt.Errorf("container securityContext %+v: want a read-only root and every capability dropped", cs)
	}
	for _, s := range sc.Sysctls {
		if !strings.HasPrefix(s.Name, "net.") { // only the namespace's own: never the host's
			return nil, fmt.Errorf("sysctl %s is not a network namespace's", s.Name)
		}
		if out, err := exec.CommandContext(ctx, "ip", "netns", "exec", ns, "sysctl", "-qw", s.Name+"="+s.Value).CombinedOutput(); err != nil {
			return out, fmt.Errorf("sysctl %s=%s: %v", s.Name, s.Value, err)
		}
	}
	env := map[string]string{}
	for _, e := range c.Env {
		switch {
		case e.ValueFrom == nil:
			env[e.Name] = expand(e.Value, env)
		case e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "metadata.annotations['batch.kubernetes.io/job-completion-index']" && index >= 0:
			env[e.Name] = strconv.Itoa(index)
		case e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "spec.nodeName":
			env[e.Name] = node
		default:
			return nil, fmt.Errorf("env %s: %+v is not emulated", e.Name, e.ValueFrom)
		}
	}
	root := filepath.Join(podDir, "root")
	podMkdir(t, root, 0o755, false)
	if len(c.Command) == 0 {
		return nil, fmt.Errorf("the container names no command: it would depend on the image's entrypoint")
	}
	exe := filepath.Join(root, c.Command[0])
	podMkdir(t, filepath.Dir(exe), 0o755, false)
	b, err := os.ReadFile(bin)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(exe, b, 0o755); err != nil {
		return nil, err
	}
	podMkdir(t, filepath.Join(root, "proc"), 0o755, false)
	podMkdir(t, filepath.Join(root, "etc"), 0o755, false)
	etcHosts := "127.0.0.1 localhost\n"
	for name, ip := range hosts {
		etcHosts += ip + " " + name + "\n"
	}
	podWriteFile(t, filepath.Join(root, "etc", "hosts"), []byte(etcHosts))
	vols := map[string]corev1.Volume{}
	for _, v := range spec.Volumes {
		vols[v.Name] = v
	}
	script := []string{"set -e", fmt.Sprintf("mount --bind %q %q", root, root), fmt.Sprintf("mount --bind /proc %q", filepath.Join(root, "proc"))}
	for _, m := range c.VolumeMounts {
		v, ok := vols[m.Name]
		if !ok {
			return nil, fmt.Errorf("volumeMount %s: no such volume", m.Name)
		}
		var src string
		switch {
		case v.ConfigMap != nil:
			src = cmDir
		case v.PersistentVolumeClaim != nil:
			src = claim
		case v.EmptyDir != nil:
			src = filepath.Join(podDir, "emptydir-"+v.Name)
			podMkdir(t, src, 0o777, false)
		default:
			return nil, fmt.Errorf("volume %s: kind not emulated", v.Name)
		}
		mp := filepath.Join(root, m.MountPath)
		podMkdir(t, mp, 0o755, false)
		script = append(script, fmt.Sprintf("mount --bind %q %q", src, mp))
		if m.ReadOnly {
			script = append(script, fmt.Sprintf("mount -o remount,bind,ro %q", mp))
		}
	}
	script = append(script, fmt.Sprintf("mount -o remount,bind,ro %q", root),
		fmt.Sprintf(`exec chroot --userspec=%d:%d %q "$@"`, *sc.RunAsUser, *sc.RunAsGroup, root))
	argv := []string{"netns", "exec", ns, "unshare", "-m", "--propagation", "private", "sh", "-c", strings.Join(script, "\n"), "pod"}
	argv = append(argv, expand(c.Command[0], env))
	for _, a := range c.Command[1:] {
		argv = append(argv, expand(a, env))
	}
	for _, a := range c.Args {
		argv = append(argv, expand(a, env))
	}
	cmd := exec.CommandContext(ctx, "ip", argv...)
	cmd.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOSTNAME=" + node}
	for _, k := range slices.Sorted(maps.Keys(env)) {
		cmd.Env = append(cmd.Env, k+"="+env[k])
	}
	return cmd.CombinedOutput()
}
