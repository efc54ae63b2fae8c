package k8s

import (
	"bytes"
	"slices"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

const planText = "version: 1\nname: Big Run\n# a comment: \"quoted\"\ntarget: {addresses: [\"10.0.0.1:80\"]}\n"

func render(t *testing.T, o Options) []string {
	t.Helper()
	var b bytes.Buffer
	if err := Render(&b, o); err != nil {
		t.Fatal(err)
	}
	return strings.Split(b.String(), "\n---\n")
}

type decoded struct {
	cm         corev1.ConfigMap
	pvc        corev1.PersistentVolumeClaim
	seg, merge batchv1.Job
	docs       []string
}

// decode decodes every rendered manifest strictly into the official Kubernetes API types: a
// misspelled or misplaced field fails here, not at kubectl apply.
func decode(t *testing.T, o Options) *decoded {
	t.Helper()
	d := &decoded{docs: render(t, o)}
	if len(d.docs) != 4 {
		t.Fatalf("%d documents, want ConfigMap, PVC, segments Job, merge Job", len(d.docs))
	}
	for i, into := range []any{&d.cm, &d.pvc, &d.seg, &d.merge} {
		if err := yaml.UnmarshalStrict([]byte(d.docs[i]), into); err != nil {
			t.Fatalf("document %d: %v\n%s", i, err, d.docs[i])
		}
	}
	return d
}

func TestRenderDecodesStrictly(t *testing.T) {
	at := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	bin := []byte{0xff, 0x00, 0xfe}
	d := decode(t, Options{Name: "Big Run", Plan: []byte(planText), Parallelism: 3, Image: "registry.example/portstorm:v1",
		Namespace: "load", StartAt: at, StorageClass: "nfs", Memory: "200Mi", CPU: "2",
		Files:   []File{{Key: "baseline-b.json", Data: []byte("{}\n")}, {Key: "send-r.bin", Data: bin}},
		Sysctls: []Sysctl{{"net.ipv4.ip_local_port_range", "1024 65535"}}})
	cm, pvc, seg, merge := d.cm, d.pvc, d.seg, d.merge
	if cm.Kind != "ConfigMap" || cm.Data["plan.yaml"] != planText || cm.Namespace != "load" || cm.Name != "portstorm-big-run-plan" ||
		cm.Data["baseline-b.json"] != "{}\n" || !bytes.Equal(cm.BinaryData["send-r.bin"], bin) {
		t.Errorf("configmap %s/%s: data %q binaryData %v", cm.Namespace, cm.Name, cm.Data, cm.BinaryData)
	}
	if pvc.Kind != "PersistentVolumeClaim" || !slices.Equal(pvc.Spec.AccessModes, []corev1.PersistentVolumeAccessMode{corev1.ReadWriteMany}) ||
		pvc.Spec.StorageClassName == nil || *pvc.Spec.StorageClassName != "nfs" || pvc.Spec.Resources.Requests.Storage().String() != "1Gi" {
		t.Errorf("pvc %+v", pvc.Spec)
	}
	s := seg.Spec
	if seg.Kind != "Job" || s.CompletionMode == nil || *s.CompletionMode != batchv1.IndexedCompletion ||
		*s.Completions != 3 || *s.Parallelism != 3 || *s.BackoffLimit != 0 {
		t.Errorf("segments job spec %+v", s)
	}
	ps := s.Template.Spec
	anti := ps.Affinity.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution
	if len(anti) != 1 || anti[0].TopologyKey != "kubernetes.io/hostname" ||
		anti[0].LabelSelector.MatchLabels["app.kubernetes.io/component"] != s.Template.Labels["app.kubernetes.io/component"] {
		t.Errorf("anti-affinity %+v, pod labels %v", anti, s.Template.Labels)
	}
	c := ps.Containers[0]
	wantArgs := []string{"run", "/plan/plan.yaml", "--segment", "$(JOB_COMPLETION_INDEX)/3", "--start-at", "2030-01-02T03:04:05Z",
		"--host", "$(NODE_NAME)", "--out", "/results/segment-$(JOB_COMPLETION_INDEX)", "--quiet"}
	if c.Image != "registry.example/portstorm:v1" || c.ImagePullPolicy != corev1.PullIfNotPresent || !slices.Equal(c.Command, []string{Binary}) ||
		!slices.Equal(c.Args, wantArgs) || ps.RestartPolicy != corev1.RestartPolicyNever {
		t.Errorf("segment container %s %s %q %q", c.Image, c.ImagePullPolicy, c.Command, c.Args)
	}
	if len(c.Env) != 2 || c.Env[0].ValueFrom.FieldRef.FieldPath != "metadata.annotations['batch.kubernetes.io/job-completion-index']" {
		t.Errorf("env %+v", c.Env)
	}
	if r := c.Resources; r.Requests.Memory().String() != "200Mi" || r.Limits.Memory().String() != "200Mi" ||
		r.Requests.Cpu().String() != "2" || r.Limits.Cpu().String() != "2" {
		t.Errorf("segment resources %+v", r)
	}
	if sc := ps.SecurityContext; len(sc.Sysctls) != 1 || sc.Sysctls[0] != (corev1.Sysctl{Name: "net.ipv4.ip_local_port_range", Value: "1024 65535"}) {
		t.Errorf("sysctls %+v", sc.Sysctls)
	}
	mp := merge.Spec.Template.Spec
	mc := mp.Containers[0]
	wantMerge := []string{"merge", "/results/segment-0", "/results/segment-1", "/results/segment-2", "--out", "/results/merged", "--wait", "2h0m0s"}
	if !slices.Equal(mc.Args, wantMerge) || *merge.Spec.BackoffLimit != 0 || merge.Spec.CompletionMode != nil || mp.Affinity != nil {
		t.Errorf("merge job args %q, affinity %+v", mc.Args, mp.Affinity)
	}
	// The merge pod reads the plan's baseline at the path the plan names: it mounts the ConfigMap.
	mounts := map[string]string{}
	for _, m := range mc.VolumeMounts {
		mounts[m.Name] = m.MountPath
	}
	if mounts["plan"] != PlanDir || mounts["results"] != ResultsPath || mounts["tmp"] != "/tmp" {
		t.Errorf("merge mounts %v", mounts)
	}
	for _, v := range mp.Volumes {
		if v.Name == "results" && v.PersistentVolumeClaim.ClaimName != pvc.Name {
			t.Errorf("merge volume %+v, pvc %s", v, pvc.Name)
		}
	}

	// Both pods are what a "restricted" Pod Security namespace admits.
	for name, p := range map[string]corev1.PodSpec{"segment": ps, "merge": mp} {
		checkRestricted(t, name, p)
	}

	// The decoding is strict: a misspelled field is refused.
	bad := strings.Replace(d.docs[2], "completionMode:", "completionMod:", 1)
	if err := yaml.UnmarshalStrict([]byte(bad), &batchv1.Job{}); err == nil {
		t.Error("a misspelled field decoded without error")
	}
}

// safeSysctls are the sysctls Kubernetes calls safe (the baseline and restricted Pod Security
// levels admit them; kubernetes.io/docs/tasks/administer-cluster/sysctl-cluster).
var safeSysctls = []string{"kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.ip_unprivileged_port_start",
	"net.ipv4.tcp_syncookies", "net.ipv4.ping_group_range", "net.ipv4.ip_local_reserved_ports", "net.ipv4.tcp_keepalive_time",
	"net.ipv4.tcp_fin_timeout", "net.ipv4.tcp_keepalive_intvl", "net.ipv4.tcp_keepalive_probes"}

// checkRestricted checks a pod spec against the "restricted" Pod Security Standard
// (kubernetes.io/docs/concepts/security/pod-security-standards), and the limits a load generator
// needs: resources requested and limited, a read-only root.
func checkRestricted(t *testing.T, name string, p corev1.PodSpec) {
	t.Helper()
	sc := p.SecurityContext
	if sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot || sc.RunAsUser == nil || *sc.RunAsUser == 0 ||
		sc.SeccompProfile == nil || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("%s pod securityContext %+v", name, sc)
	}
	for _, s := range sc.Sysctls {
		if !slices.Contains(safeSysctls, s.Name) {
			t.Errorf("%s pod: sysctl %s is not a safe one", name, s.Name)
		}
	}
	if p.HostNetwork || p.HostPID || p.HostIPC {
		t.Errorf("%s pod uses host namespaces", name)
	}
	for _, v := range p.Volumes {
		if v.ConfigMap == nil && v.PersistentVolumeClaim == nil && v.EmptyDir == nil {
			t.Errorf("%s pod: volume %s of a kind restricted does not admit", name, v.Name)
		}
	}
	for _, c := range p.Containers {
		cs := c.SecurityContext
		if cs == nil || cs.AllowPrivilegeEscalation == nil || *cs.AllowPrivilegeEscalation || cs.Capabilities == nil ||
			!slices.Equal(cs.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(cs.Capabilities.Add) > 0 ||
			cs.ReadOnlyRootFilesystem == nil || !*cs.ReadOnlyRootFilesystem || (cs.Privileged != nil && *cs.Privileged) {
			t.Errorf("%s container securityContext %+v", name, cs)
		}
		if c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() || c.Resources.Requests.Cpu().IsZero() {
			t.Errorf("%s container resources %+v", name, c.Resources)
		}
		if c.ImagePullPolicy == "" || strings.HasSuffix(c.Image, ":latest") {
			t.Errorf("%s container image %s, pull policy %q", name, c.Image, c.ImagePullPolicy)
		}
	}
}

func TestRenderAccessModes(t *testing.T) {
	base := Options{Name: "x", Plan: []byte(planText), Image: "i:v1", StartAt: time.Now()}
	tests := []struct {
		mode     string
		n        int
		ok       bool
		colocate bool
	}{
		{"", 3, true, false},
		{"ReadWriteMany", 1, true, false},
		{"ReadWriteOnce", 1, true, true},
		{"ReadWriteOnce", 2, false, false},
		{"ReadWriteOncePod", 1, false, false},
		{"ReadOnlyMany", 1, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.mode+"/"+string(rune('0'+tt.n)), func(t *testing.T) {
			o := base
			o.AccessMode, o.Parallelism = tt.mode, tt.n
			err := Render(&bytes.Buffer{}, o)
			if (err == nil) != tt.ok {
				t.Fatalf("err %v, want ok %v", err, tt.ok)
			}
			if !tt.ok {
				return
			}
			d := decode(t, o)
			if want := corev1.PersistentVolumeAccessMode(tt.mode); tt.mode != "" && d.pvc.Spec.AccessModes[0] != want {
				t.Errorf("access modes %v", d.pvc.Spec.AccessModes)
			}
			aff := d.merge.Spec.Template.Spec.Affinity
			if got := aff != nil && aff.PodAffinity != nil; got != tt.colocate {
				t.Errorf("merge pod affinity %+v, want colocated %v", aff, tt.colocate)
			}
		})
	}
}

func TestRenderRefuses(t *testing.T) {
	tests := []struct {
		name string
		o    Options
	}{
		{"no parallelism", Options{Name: "x", Plan: []byte(planText), Image: "i:v1", StartAt: time.Now()}},
		{"no start", Options{Name: "x", Plan: []byte(planText), Image: "i:v1", Parallelism: 2}},
		{"no image", Options{Name: "x", Plan: []byte(planText), Parallelism: 2, StartAt: time.Now()}},
		{"bad pull policy", Options{Name: "x", Plan: []byte(planText), Image: "i:v1", Parallelism: 2, StartAt: time.Now(), PullPolicy: "Sometimes"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := Render(&bytes.Buffer{}, tt.o); err == nil {
				t.Fatal("rendered")
			}
		})
	}
}

func TestResourceName(t *testing.T) {
	for in, want := range map[string]string{"Big Run": "portstorm-big-run", "": "portstorm", "a_b.c": "portstorm-a-b-c",
		strings.Repeat("x", 50): "portstorm-" + strings.Repeat("x", 30)} {
		if got := ResourceName(in); got != want {
			t.Errorf("ResourceName(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestRenderUpload: with --results upload there is no claim: a Service in front of the merge pod,
// emptyDirs for the shard folders, the segments send theirs to the Service, the merge receives.
func TestRenderUpload(t *testing.T) {
	o := Options{Name: "up", Plan: []byte(planText), Parallelism: 2, Image: "i:v1", StartAt: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC),
		Results: "upload", Linger: 10 * time.Minute, MergeWait: time.Hour}
	docs := render(t, o)
	if len(docs) != 4 {
		t.Fatalf("%d documents", len(docs))
	}
	var cm corev1.ConfigMap
	var svc corev1.Service
	var seg, merge batchv1.Job
	for i, into := range []any{&cm, &svc, &seg, &merge} {
		if err := yaml.UnmarshalStrict([]byte(docs[i]), into); err != nil {
			t.Fatalf("document %d: %v\n%s", i, err, docs[i])
		}
	}
	if svc.Kind != "Service" || svc.Name != "portstorm-up-merge" || svc.Spec.Ports[0].Port != MergePort ||
		svc.Spec.Selector["app.kubernetes.io/component"] != merge.Spec.Template.Labels["app.kubernetes.io/component"] ||
		svc.Spec.Selector["app.kubernetes.io/instance"] != merge.Spec.Template.Labels["app.kubernetes.io/instance"] {
		t.Errorf("service %+v, merge pod labels %v", svc, merge.Spec.Template.Labels)
	}
	sc := seg.Spec.Template.Spec.Containers[0]
	if !slices.Equal(sc.Args[len(sc.Args)-4:], []string{"--upload", "http://portstorm-up-merge:7070/shard/$(JOB_COMPLETION_INDEX)", "--upload-wait", "1h0m0s"}) {
		t.Errorf("segment args %q", sc.Args)
	}
	mc := merge.Spec.Template.Spec.Containers[0]
	if !slices.Equal(mc.Args[len(mc.Args)-4:], []string{"--receive", ":7070", "--linger", "10m0s"}) || len(mc.Ports) != 1 || mc.Ports[0].ContainerPort != MergePort {
		t.Errorf("merge args %q ports %+v", mc.Args, mc.Ports)
	}
	for name, p := range map[string]corev1.PodSpec{"segment": seg.Spec.Template.Spec, "merge": merge.Spec.Template.Spec} {
		checkRestricted(t, name, p)
		for _, v := range p.Volumes {
			if v.PersistentVolumeClaim != nil || (v.Name == "results" && (v.EmptyDir == nil || v.EmptyDir.SizeLimit.String() != "1Gi")) {
				t.Errorf("%s volume %+v", name, v)
			}
		}
	}
	if err := Render(&bytes.Buffer{}, Options{Name: "x", Plan: []byte(planText), Image: "i:v1", StartAt: time.Now(), Parallelism: 1, Results: "s3"}); err == nil {
		t.Error("rendered --results s3")
	}
}
