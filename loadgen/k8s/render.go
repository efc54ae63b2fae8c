// Package k8s renders the Kubernetes manifests of a distributed run: the plan and the files it
// names as a ConfigMap, one Indexed Job pod per segment (one per node), a shared results volume
// and the merge Job, all as a "restricted" Pod Security namespace admits them (README.md, "On
// Kubernetes, step by step").
package k8s

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"regexp"
	"slices"
	"strings"
	"text/template"
	"time"
	"unicode/utf8"
)

// Options describe the rendered run. Zero values take the documented defaults. FromPlan fills the
// plan's part (Plan, Files, Sysctls, the resources, Notes).
type Options struct {
	// Name is the plan's name; manifests are named portstorm-<name> (made a DNS label).
	Name string
	// Plan is the plan the pods run (YAML), mounted at PlanDir/plan.yaml in every pod.
	Plan []byte
	// Files are the files the plan names, in the ConfigMap next to the plan.
	Files []File
	// Parallelism is N: segments, pods and nodes (one pod per node).
	Parallelism int
	// Image is the portstorm image (required: the command's default is portstorm:<its version>);
	// PullPolicy its imagePullPolicy (default IfNotPresent).
	Image, PullPolicy string
	// Namespace is where everything goes (default "default").
	Namespace string
	// StartAt is the instant every segment starts its schedule, rendered into the Job: pods that
	// start earlier wait for it, so their intervals line up for an exact merge.
	StartAt time.Time
	// Storage is the results volume's size (default "1Gi"); StorageClass its class ("" the
	// cluster's default) and AccessMode its access mode (default ReadWriteMany: every segment pod,
	// one per node, and the merge pod mount it).
	Storage, StorageClass, AccessMode string
	// Results is where the segments' shard folders go: "volume" (the default), a shared
	// PersistentVolumeClaim the merge Job reads; or "upload", no shared volume: each segment pod
	// writes its folder to its own emptyDir and sends it to the merge pod over HTTP (a Service in
	// front of it, port MergePort), which merges them in an emptyDir of its own.
	Results string
	// Linger, with Results "upload", keeps the merge pod serving the merged folder at
	// /merged/ this long after the merge (kubectl port-forward), as its emptyDir goes with it.
	Linger time.Duration
	// AllowRemote adds --allow-remote to the segments' args (the plan must say target.allow_remote too).
	AllowRemote bool
	// MergeWait bounds how long the merge Job waits for every segment's shard.json (default 2h).
	MergeWait time.Duration
	// CPU is each segment pod's CPU request and limit (default "1"); Memory its memory request and
	// limit, MergeMemory the merge pod's (FromPlan sizes them).
	CPU, Memory, MergeMemory string
	// OpenFiles is the open-files limit a segment pod needs (a note: Kubernetes cannot set it).
	OpenFiles int64
	// Sysctls are the segment pods' sysctls (net.ipv4.ip_local_port_range when the plan needs it).
	Sysctls []Sysctl
	// Notes are comments at the head of the manifests: what the pods need of the nodes.
	Notes []string
}

// Where pods see things, and who they run as (distroless's nonroot user; the Dockerfile says
// USER 65532:65532 too).
const (
	PlanDir     = "/plan"
	PlanKey     = "plan.yaml"
	PlanPath    = PlanDir + "/" + PlanKey
	ResultsPath = "/results"
	Binary      = "/usr/local/bin/portstorm"
	UID         = 65532
)

// MergePort is the merge pod's port for the segments' uploads (Results "upload").
const MergePort = 7070

// ResultsModes are the values of Options.Results.
var ResultsModes = []string{"volume", "upload"}

// AccessModes are the results volume's access modes Render takes.
var AccessModes = []string{"ReadWriteMany", "ReadWriteOnce", "ReadWriteOncePod"}

// PullPolicies are the imagePullPolicy values.
var PullPolicies = []string{"IfNotPresent", "Always", "Never"}

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
		return fmt.Errorf("no image: name the portstorm image the pods run (--image)")
	}
	if o.Plan == nil {
		return fmt.Errorf("no plan")
	}
	setDefault(&o.PullPolicy, "IfNotPresent")
	setDefault(&o.Namespace, "default")
	setDefault(&o.Storage, "1Gi")
	setDefault(&o.AccessMode, "ReadWriteMany")
	setDefault(&o.CPU, "1")
	setDefault(&o.Memory, quantity(memBase))
	setDefault(&o.MergeMemory, quantity(mergeBytes))
	if o.MergeWait <= 0 {
		o.MergeWait = 2 * time.Hour
	}
	if o.StartAt.IsZero() {
		return fmt.Errorf("no start instant")
	}
	if !slices.Contains(PullPolicies, o.PullPolicy) {
		return fmt.Errorf("image pull policy %q: want one of %s", o.PullPolicy, strings.Join(PullPolicies, ", "))
	}
	if !slices.Contains(AccessModes, o.AccessMode) {
		return fmt.Errorf("access mode %q: want one of %s", o.AccessMode, strings.Join(AccessModes, ", "))
	}
	setDefault(&o.Results, "volume")
	if !slices.Contains(ResultsModes, o.Results) {
		return fmt.Errorf("results %q: want one of %s", o.Results, strings.Join(ResultsModes, ", "))
	}
	upload := o.Results == "upload"
	// Every segment pod (one per node) and the merge pod mount the volume at once: a
	// ReadWriteOnce volume does for one segment, with the merge pod on its node.
	colocate := o.AccessMode == "ReadWriteOnce" && o.Parallelism == 1 && !upload
	if o.AccessMode != "ReadWriteMany" && !colocate && !upload {
		return fmt.Errorf("access mode %s: the %d segment pods run on %d nodes and the merge pod mounts the volume with them, and a %s volume mounts on one node (ReadWriteOncePod: in one pod): want ReadWriteMany (ReadWriteOnce does for --parallelism 1)",
			o.AccessMode, o.Parallelism, o.Parallelism, o.AccessMode)
	}
	segs := make([]string, o.Parallelism)
	for i := range segs {
		segs[i] = fmt.Sprintf("%s/segment-%d", ResultsPath, i)
	}
	text, binary := map[string]string{PlanKey: string(o.Plan)}, map[string]string{}
	for _, f := range o.Files {
		if utf8.Valid(f.Data) {
			text[f.Key] = string(f.Data)
		} else {
			binary[f.Key] = base64.StdEncoding.EncodeToString(f.Data)
		}
	}
	d := map[string]any{
		"O": o, "Name": ResourceName(o.Name), "N": o.Parallelism, "Segments": segs,
		"StartAt": o.StartAt.UTC().Format(time.RFC3339Nano), "Wait": o.MergeWait.String(),
		"PlanDir": PlanDir, "PlanPath": PlanPath, "Results": ResultsPath, "Binary": Binary, "UID": UID,
		"Text": sortedPairs(text), "Binary64": sortedPairs(binary), "Colocate": colocate, "Upload": upload, "Port": MergePort, "Linger": o.Linger.String(),
	}
	return manifests.Execute(w, d)
}

func setDefault(s *string, def string) {
	if *s == "" {
		*s = def
	}
}

type pair struct{ K, V string }

func sortedPairs(m map[string]string) []pair {
	var ps []pair
	for _, k := range slices.Sorted(maps.Keys(m)) {
		ps = append(ps, pair{k, m[k]})
	}
	return ps
}

// q quotes a string as YAML (a JSON string is a YAML double-quoted scalar).
func q(v any) string {
	b, _ := json.Marshal(fmt.Sprint(v))
	return string(b)
}

// podSecurity is the pods' securityContext: what a "restricted" Pod Security namespace admits.
const podSecurity = `      securityContext:
        runAsNonRoot: true
        runAsUser: {{ .UID }}
        runAsGroup: {{ .UID }}
        fsGroup: {{ .UID }}
        seccompProfile:
          type: RuntimeDefault`

const containerSecurity = `        securityContext:
          allowPrivilegeEscalation: false
          readOnlyRootFilesystem: true
          runAsNonRoot: true
          capabilities:
            drop: ["ALL"]`

var manifests = template.Must(template.New("k8s").Funcs(template.FuncMap{"q": q}).Parse(`# portstorm distributed run: {{ .N }} segment(s) of plan {{ q .O.Name }}, starting at {{ .StartAt }}.
# Apply with: kubectl apply -f THIS_FILE ; the merged result lands in {{ .Results }}/merged on the {{ if .Upload }}merge pod (its emptyDir; its log shows the summary){{ else }}volume{{ end }}.
{{- range .O.Notes }}
# {{ . }}
{{- end }}
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Name }}-plan
  namespace: {{ q .O.Namespace }}
  labels:
    app.kubernetes.io/name: portstorm
    app.kubernetes.io/instance: {{ .Name }}
data:
{{- range .Text }}
  {{ q .K }}: {{ q .V }}
{{- end }}
{{- if .Binary64 }}
binaryData:
{{- range .Binary64 }}
  {{ q .K }}: {{ q .V }}
{{- end }}
{{- end }}
---
{{- if .Upload }}
apiVersion: v1
kind: Service
metadata:
  name: {{ .Name }}-merge
  namespace: {{ q .O.Namespace }}
  labels:
    app.kubernetes.io/name: portstorm
    app.kubernetes.io/instance: {{ .Name }}
spec:
  selector:
    app.kubernetes.io/instance: {{ .Name }}
    app.kubernetes.io/component: merge
  ports:
  - name: shards
    port: {{ .Port }}
    targetPort: {{ .Port }}
{{- else }}
apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: {{ .Name }}-results
  namespace: {{ q .O.Namespace }}
  labels:
    app.kubernetes.io/name: portstorm
    app.kubernetes.io/instance: {{ .Name }}
spec:
  accessModes: [{{ q .O.AccessMode }}]
{{- if .O.StorageClass }}
  storageClassName: {{ q .O.StorageClass }}
{{- end }}
  resources:
    requests:
      storage: {{ q .O.Storage }}
{{- end }}
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
` + podSecurity + `
{{- if .O.Sysctls }}
        sysctls:
{{- range .O.Sysctls }}
        - name: {{ .Name }}
          value: {{ q .Value }}
{{- end }}
{{- end }}
      containers:
      - name: portstorm
        image: {{ q .O.Image }}
        imagePullPolicy: {{ .O.PullPolicy }}
        command: [{{ q .Binary }}]
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
{{- if .Upload }}
        - --upload
        - http://{{ .Name }}-merge:{{ .Port }}/shard/$(JOB_COMPLETION_INDEX)
        - --upload-wait
        - {{ .Wait }}
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
        resources:
          requests:
            cpu: {{ q .O.CPU }}
            memory: {{ q .O.Memory }}
          limits:
            cpu: {{ q .O.CPU }}
            memory: {{ q .O.Memory }}
` + containerSecurity + `
        volumeMounts:
        - name: plan
          mountPath: {{ .PlanDir }}
          readOnly: true
        - name: results
          mountPath: {{ .Results }}
        - name: tmp
          mountPath: /tmp
      volumes:
      - name: plan
        configMap:
          name: {{ .Name }}-plan
      - name: results
{{- if .Upload }}
        emptyDir:
          sizeLimit: {{ q .O.Storage }}
{{- else }}
        persistentVolumeClaim:
          claimName: {{ .Name }}-results
{{- end }}
      - name: tmp
        emptyDir:
          sizeLimit: 64Mi
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
{{- if .Colocate }}
      affinity:
        podAffinity:
          requiredDuringSchedulingIgnoredDuringExecution:
          - topologyKey: kubernetes.io/hostname
            labelSelector:
              matchLabels:
                app.kubernetes.io/instance: {{ .Name }}
                app.kubernetes.io/component: segment
{{- end }}
` + podSecurity + `
      containers:
      - name: merge
        image: {{ q .O.Image }}
        imagePullPolicy: {{ .O.PullPolicy }}
        command: [{{ q .Binary }}]
        args:
        - merge
{{- range .Segments }}
        - {{ . }}
{{- end }}
        - --out
        - {{ .Results }}/merged
        - --wait
        - {{ .Wait }}
{{- if .Upload }}
        - --receive
        - :{{ .Port }}
        - --linger
        - {{ .Linger }}
        ports:
        - name: shards
          containerPort: {{ .Port }}
{{- end }}
        resources:
          requests:
            cpu: "500m"
            memory: {{ q .O.MergeMemory }}
          limits:
            memory: {{ q .O.MergeMemory }}
` + containerSecurity + `
        volumeMounts:
        - name: plan
          mountPath: {{ .PlanDir }}
          readOnly: true
        - name: results
          mountPath: {{ .Results }}
        - name: tmp
          mountPath: /tmp
      volumes:
      - name: plan
        configMap:
          name: {{ .Name }}-plan
      - name: results
{{- if .Upload }}
        emptyDir:
          sizeLimit: {{ q .O.Storage }}
{{- else }}
        persistentVolumeClaim:
          claimName: {{ .Name }}-results
{{- end }}
      - name: tmp
        emptyDir:
          sizeLimit: 64Mi
`))
