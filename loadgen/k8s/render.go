// Package k8s renders the Kubernetes manifests of a distributed run: the plan as a ConfigMap, one
// Indexed Job pod per segment (one per node), a shared results volume and the merge Job.
package k8s

import (
	"encoding/json"
	"fmt"
	"io"
	"regexp"
	"strings"
	"text/template"
	"time"
)

// Options describe the rendered run. Zero values take the documented defaults.
type Options struct {
	// Name is the plan's name; manifests are named portstorm-<name> (made a DNS label).
	Name string
	// Plan is the plan file's text, mounted at /plan/plan.yaml in every pod.
	Plan []byte
	// Parallelism is N: segments, pods and nodes (one pod per node).
	Parallelism int
	// Image is the portstorm image (default "portstorm:latest").
	Image string
	// Namespace is where everything goes (default "default").
	Namespace string
	// StartAt is the instant every segment starts its schedule, rendered into the Job: pods that
	// start earlier wait for it, so their intervals line up for an exact merge.
	StartAt time.Time
	// Storage is the results volume's size (default "1Gi"); StorageClass picks a ReadWriteMany
	// class ("" the cluster's default).
	Storage, StorageClass string
	// AllowRemote adds --allow-remote to the segments' args (the plan must say target.allow_remote too).
	AllowRemote bool
	// MergeWait bounds how long the merge Job waits for every segment's shard.json (default 2h).
	MergeWait time.Duration
}

// PlanPath and ResultsPath are where pods see the plan and the shared results volume.
const (
	PlanPath    = "/plan/plan.yaml"
	ResultsPath = "/results"
)

var nonLabel = regexp.MustCompile(`[^a-z0-9-]+`)

// ResourceName is the run's manifests' base name: portstorm-<plan name> as an RFC 1123 label,
// short enough for the "-segments" suffix and the pods' index suffixes.
func ResourceName(plan string) string {
	n := strings.Trim(nonLabel.ReplaceAllString(strings.ToLower(plan), "-"), "-")
	if len(n) > 30 {
		n = strings.Trim(n[:30], "-")
	}
	if n == "" {
		return "portstorm"
	}
	return "portstorm-" + n
}

// Render writes the manifests as one multi-document YAML stream, ready for kubectl apply -f -.
func Render(w io.Writer, o Options) error {
	if o.Parallelism < 1 {
		return fmt.Errorf("parallelism %d: want 1 or more", o.Parallelism)
	}
	if o.Image == "" {
		o.Image = "portstorm:latest"
	}
	if o.Namespace == "" {
		o.Namespace = "default"
	}
	if o.Storage == "" {
		o.Storage = "1Gi"
	}
	if o.MergeWait <= 0 {
		o.MergeWait = 2 * time.Hour
	}
	if o.StartAt.IsZero() {
		return fmt.Errorf("no start instant")
	}
	segs := make([]string, o.Parallelism)
	for i := range segs {
		segs[i] = fmt.Sprintf("%s/segment-%d", ResultsPath, i)
	}
	d := map[string]any{
		"O": o, "Name": ResourceName(o.Name), "N": o.Parallelism, "Segments": segs,
		"StartAt": o.StartAt.UTC().Format(time.RFC3339Nano), "Wait": o.MergeWait.String(),
		"PlanPath": PlanPath, "Results": ResultsPath,
	}
	return manifests.Execute(w, d)
}

// q quotes a string as YAML (a JSON string is a YAML double-quoted scalar).
func q(v any) string {
	b, _ := json.Marshal(fmt.Sprint(v))
	return string(b)
}

var manifests = template.Must(template.New("k8s").Funcs(template.FuncMap{"q": q,
	"str": func(b []byte) string { return string(b) }}).Parse(`# portstorm distributed run: {{ .N }} segment(s) of plan {{ q .O.Name }}, starting at {{ .StartAt }}.
# Apply with: kubectl apply -f THIS_FILE ; the merged result lands in {{ .Results }}/merged on the volume.
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Name }}-plan
  namespace: {{ q .O.Namespace }}
  labels:
    app.kubernetes.io/name: portstorm
    app.kubernetes.io/instance: {{ .Name }}
data:
  plan.yaml: {{ q (str .O.Plan) }}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: {{ .Name }}-results
  namespace: {{ q .O.Namespace }}
  labels:
    app.kubernetes.io/name: portstorm
    app.kubernetes.io/instance: {{ .Name }}
spec:
  accessModes: ["ReadWriteMany"]
{{- if .O.StorageClass }}
  storageClassName: {{ q .O.StorageClass }}
{{- end }}
  resources:
    requests:
      storage: {{ q .O.Storage }}
---
apiVersion: batch/v1
kind: Job
metadata:
  name: {{ .Name }}-segments
  namespace: {{ q .O.Namespace }}
  labels:
    app.kubernetes.io/name: portstorm
    app.kubernetes.io/instance: {{ .Name }}
    app.kubernetes.io/component: segment
spec:
  completionMode: Indexed
  completions: {{ .N }}
  parallelism: {{ .N }}
  backoffLimit: 0
  template:
    metadata:
      labels:
        app.kubernetes.io/name: portstorm
        app.kubernetes.io/instance: {{ .Name }}
        app.kubernetes.io/component: segment
    spec:
      restartPolicy: Never
      affinity:
        podAntiAffinity:
          requiredDuringSchedulingIgnoredDuringExecution:
          - topologyKey: kubernetes.io/hostname
            labelSelector:
              matchLabels:
                app.kubernetes.io/instance: {{ .Name }}
                app.kubernetes.io/component: segment
      containers:
      - name: portstorm
        image: {{ q .O.Image }}
        args:
        - run
        - {{ .PlanPath }}
        - --segment
        - $(JOB_COMPLETION_INDEX)/{{ .N }}
        - --start-at
        - {{ q .StartAt }}
        - --host
        - $(NODE_NAME)
        - --out
        - {{ .Results }}/segment-$(JOB_COMPLETION_INDEX)
        - --quiet
{{- if .O.AllowRemote }}
        - --allow-remote
{{- end }}
        env:
        - name: JOB_COMPLETION_INDEX
          valueFrom:
            fieldRef:
              fieldPath: metadata.annotations['batch.kubernetes.io/job-completion-index']
        - name: NODE_NAME
          valueFrom:
            fieldRef:
              fieldPath: spec.nodeName
        volumeMounts:
        - name: plan
          mountPath: /plan
          readOnly: true
        - name: results
          mountPath: {{ .Results }}
      volumes:
      - name: plan
        configMap:
          name: {{ .Name }}-plan
      - name: results
        persistentVolumeClaim:
          claimName: {{ .Name }}-results
---
apiVersion: batch/v1
kind: Job
metadata:
  name: {{ .Name }}-merge
  namespace: {{ q .O.Namespace }}
  labels:
    app.kubernetes.io/name: portstorm
    app.kubernetes.io/instance: {{ .Name }}
    app.kubernetes.io/component: merge
spec:
  completions: 1
  parallelism: 1
  backoffLimit: 0
  template:
    metadata:
      labels:
        app.kubernetes.io/name: portstorm
        app.kubernetes.io/instance: {{ .Name }}
        app.kubernetes.io/component: merge
    spec:
      restartPolicy: Never
      containers:
      - name: merge
        image: {{ q .O.Image }}
        args:
        - merge
{{- range .Segments }}
        - {{ . }}
{{- end }}
        - --out
        - {{ .Results }}/merged
        - --wait
        - {{ .Wait }}
        volumeMounts:
        - name: results
          mountPath: {{ .Results }}
      volumes:
      - name: results
        persistentVolumeClaim:
          claimName: {{ .Name }}-results
`))
