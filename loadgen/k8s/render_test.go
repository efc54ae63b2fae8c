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

// TestRenderDecodesStrictly decodes every rendered manifest strictly into the official Kubernetes
// API types: a misspelled or misplaced field fails here, not at kubectl apply.
func TestRenderDecodesStrictly(t *testing.T) {
	at := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	docs := render(t, Options{Name: "Big Run", Plan: []byte(planText), Parallelism: 3, Image: "registry.example/portstorm:v1",
		Namespace: "load", StartAt: at, StorageClass: "nfs"})
	if len(docs) != 4 {
		t.Fatalf("%d documents, want ConfigMap, PVC, segments Job, merge Job", len(docs))
	}
	var cm corev1.ConfigMap
	var pvc corev1.PersistentVolumeClaim
	var seg, merge batchv1.Job
	for i, into := range []any{&cm, &pvc, &seg, &merge} {
		if err := yaml.UnmarshalStrict([]byte(docs[i]), into); err != nil {
			t.Fatalf("document %d: %v\n%s", i, err, docs[i])
		}
	}
	if cm.Kind != "ConfigMap" || cm.Data["plan.yaml"] != planText || cm.Namespace != "load" || cm.Name != "portstorm-big-run-plan" {
		t.Errorf("configmap %s/%s: plan %q", cm.Namespace, cm.Name, cm.Data["plan.yaml"])
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
	if c.Image != "registry.example/portstorm:v1" || !slices.Equal(c.Args, wantArgs) || ps.RestartPolicy != corev1.RestartPolicyNever {
		t.Errorf("segment container %s %q", c.Image, c.Args)
	}
	if len(c.Env) != 2 || c.Env[0].ValueFrom.FieldRef.FieldPath != "metadata.annotations['batch.kubernetes.io/job-completion-index']" {
		t.Errorf("env %+v", c.Env)
	}
	mc := merge.Spec.Template.Spec.Containers[0]
	wantMerge := []string{"merge", "/results/segment-0", "/results/segment-1", "/results/segment-2", "--out", "/results/merged", "--wait", "2h0m0s"}
	if !slices.Equal(mc.Args, wantMerge) || *merge.Spec.BackoffLimit != 0 || merge.Spec.CompletionMode != nil {
		t.Errorf("merge job args %q", mc.Args)
	}
	if v := merge.Spec.Template.Spec.Volumes[0]; v.PersistentVolumeClaim.ClaimName != pvc.Name {
		t.Errorf("merge volume %+v, pvc %s", v, pvc.Name)
	}

	// The decoding is strict: a misspelled field is refused.
	bad := strings.Replace(docs[2], "completionMode:", "completionMod:", 1)
	if err := yaml.UnmarshalStrict([]byte(bad), &batchv1.Job{}); err == nil {
		t.Error("a misspelled field decoded without error")
	}
}

func TestRenderRefuses(t *testing.T) {
	tests := []struct {
		name string
		o    Options
	}{
		{"no parallelism", Options{Name: "x", StartAt: time.Now()}},
		{"no start", Options{Name: "x", Parallelism: 2}},
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
