package k8s

import (
	"errors"
	"fmt"
	"math"
	"net"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"

	"github.com/portstorm/portstorm/loadgen/plan"
	"github.com/portstorm/portstorm/loadgen/preflight"
	"github.com/portstorm/portstorm/loadgen/spec"
)

// File is a file a plan names (baseline.file, connection.send.file, connection.tls.ca_file),
// carried in the ConfigMap under Key and seen by the pods at PlanDir/Key.
type File struct {
	Key  string
	Data []byte
	// From is where it was read at render time; Field the plan key that names it.
	From, Field string
}

// Sysctl is a pod sysctl (securityContext.sysctls).
type Sysctl struct{ Name, Value string }

// Checks are the render-time choices FromPlan cannot make alone.
type Checks struct {
	// AllowBuiltinTarget renders a plan with target.builtin: every pod then load-tests a target of
	// its own on its own loopback, which measures the generator side only.
	AllowBuiltinTarget bool
	// UnsafeSysctls renders the plan's netns TIME_WAIT sysctls as pod sysctls, which Kubernetes
	// calls unsafe: the kubelet must allow them (--allowed-unsafe-sysctls) and the namespace's Pod
	// Security level must not be restricted or baseline.
	UnsafeSysctls bool
}

// MaxConfigMap is the most the rendered ConfigMap's data may hold: Kubernetes stores an object in
// etcd up to 1 MiB (binary files count as base64), and the object's own fields need room.
const MaxConfigMap = 1000 * 1024

// Memory a segment pod is sized for, from the measured figures (README.md, "Performance"): a held
// idle connection parked by the engine costs the generator 419 B resident, one that keeps its
// goroutine and net.Conn (requests, TLS, a half close) 9,024 B; the kernel's socket, charged to the
// pod's memory cgroup, adds about 3 KiB; a TLS connection keeps its record buffers (2 x 16 KiB).
// The figures are rounded up: a pod that is OOM-killed loses its shard.
const (
	memBase    = 96 << 20 // runtime, histograms, interval snapshots, result files
	memParked  = 4 << 10
	memActive  = 16 << 10
	memTLS     = 64 << 10
	mergeBytes = 256 << 20
	// fdOverhead is what a run holds besides its connections (loadgen/preflight: 32).
	fdOverhead = 32
)

// podRange is ip_local_port_range in a fresh network namespace (a pod's): the kernel's default.
var podRange = preflight.PortRange{Lo: 32768, Hi: 60999}

// wideRange is the range a pod is given when the default one holds too few connections: every
// unprivileged port (the pod's ports are its own: nothing else of the node listens there).
var wideRange = preflight.PortRange{Lo: 1024, Hi: 65535}

// FromPlan fills o.Plan, o.Files, o.Sysctls, the resources and o.Notes from a loaded, defaulted
// and validated plan: the plan the pods run is the resolved plan, with the files it names
// rewritten to PlanDir/<key> and carried in the ConfigMap, isolate turned into the pod's own
// network namespace. A plan that cannot run as pods is refused with every reason at once; what
// can run but differs from a one-host run comes back as warnings.
func FromPlan(p *plan.Plan, o *Options, c Checks) (warnings []string, err error) {
	if o.Parallelism < 1 {
		return nil, fmt.Errorf("parallelism %d: want 1 or more", o.Parallelism)
	}
	var problems []string
	pp := *p // the pod plan: a copy, whose changed parts are copied too
	pp.Lines, pp.Origins, pp.File = nil, nil, ""
	o.Name = p.Name

	if p.Target.Builtin != nil {
		if !c.AllowBuiltinTarget {
			problems = append(problems, "target.builtin: every pod would start its own built-in target on its own loopback and load-test only itself, "+
				"which measures the generator side, not a server: run `portstorm target --listen 0.0.0.0:PORT --allow-remote` where the pods can reach it "+
				"(a Deployment, a VM) and name it in target.addresses with target.allow_remote: true, or render with --allow-builtin-target")
		} else {
			warnings = append(warnings, "target.builtin: each pod load-tests a built-in target on its own loopback (--allow-builtin-target): the merged result measures the generators, not a server")
		}
	}
	for _, a := range p.Target.Addresses {
		host, _, err := net.SplitHostPort(a)
		if err != nil {
			continue // Validate reported it
		}
		if ip := net.ParseIP(host); (ip != nil && ip.IsLoopback()) || strings.EqualFold(host, "localhost") {
			problems = append(problems, fmt.Sprintf("target.addresses: %s is on loopback, which in a pod is the pod itself: name an address the pods can reach (a Service, a node, a load balancer) with target.allow_remote: true", a))
		}
	}
	if len(p.Source.Addresses) > 0 {
		problems = append(problems, fmt.Sprintf("source.addresses %v: a pod has one address, its pod IP, and cannot bind others: remove source.addresses (segments on N nodes are N source addresses already)", p.Source.Addresses))
	}

	// Files the plan names travel in the ConfigMap.
	keys := map[string]bool{PlanKey: true}
	carry := func(field, from, prefix string) string {
		data, err := plan.ReadFile(from, plan.MaxFileSize*64)
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s: %v: the file must be readable where you render, to travel to the pods in the ConfigMap", field, err))
			return from
		}
		key := configKey(prefix, from, keys)
		o.Files = append(o.Files, File{Key: key, Data: data, From: from, Field: field})
		return path.Join(PlanDir, key)
	}
	if b := p.Baseline; b != nil && b.Normalize != "" {
		problems = append(problems, fmt.Sprintf("baseline.normalize: %s: the merge Job judges the merged result of the pods' segments, which holds no calibration (each pod's host differs): "+
			"remove baseline.normalize (--set baseline.normalize=null) and compare as measured, with baselines made on the same kind of node", b.Normalize))
	}
	if b := p.Baseline; b != nil && strings.TrimSpace(b.File) != "" {
		nb := *b
		nb.File = carry("baseline.file", b.File, "baseline")
		pp.Baseline = &nb
	}
	if s := p.Connection.Send; s != nil && s.File != "" {
		ns := *s
		ns.File = carry("connection.send.file", s.File, "send")
		pp.Connection.Send = &ns
	}
	if t := p.Connection.TLS; t != nil && t.CAFile != "" && p.Target.Builtin == nil {
		nt := *t
		nt.CAFile = carry("connection.tls.ca_file", t.CAFile, "ca")
		pp.Connection.TLS = &nt
	}

	// isolate: a pod is a network namespace of its own already.
	var rng *preflight.PortRange
	if p.Isolate {
		pp.Isolate, pp.Netns = false, nil
		warnings = append(warnings, "isolate: true: a pod has a network namespace of its own, which is what isolate makes; the pods run the plan without isolate "+
			"(making a namespace would need CAP_SYS_ADMIN, which a restricted pod does not have), and its netns sysctls become pod sysctls")
		if n := p.Netns; n != nil {
			if lo, hi, ok := plan.ParsePortRange(n.PortRange); ok {
				rng = &preflight.PortRange{Lo: lo, Hi: hi}
			}
			var unsafe []Sysctl
			if n.TWReuse != "" {
				unsafe = append(unsafe, Sysctl{"net.ipv4.tcp_tw_reuse", n.TWReuse})
			}
			if n.TWReuseDelay > 0 {
				unsafe = append(unsafe, Sysctl{"net.ipv4.tcp_tw_reuse_delay", fmt.Sprint(n.TWReuseDelay.D().Milliseconds())})
			}
			if n.MaxTWBuckets > 0 {
				unsafe = append(unsafe, Sysctl{"net.ipv4.tcp_max_tw_buckets", fmt.Sprint(n.MaxTWBuckets)})
			}
			if len(unsafe) > 0 && !c.UnsafeSysctls {
				names := make([]string, len(unsafe))
				for i, s := range unsafe {
					names[i] = s.Name
				}
				problems = append(problems, fmt.Sprintf("netns: %s are unsafe sysctls in Kubernetes: a pod may set them only when the kubelet allows them "+
					"(--allowed-unsafe-sysctls=%s) and the namespace's Pod Security level is privileged; render with --unsafe-sysctls if the nodes do, or remove them from the plan",
					strings.Join(names, ", "), strings.Join(names, ",")))
			}
			if c.UnsafeSysctls {
				o.Sysctls = append(o.Sysctls, unsafe...)
			}
		}
	}

	// The ports one pod needs: the preflight's forecast of the pod's share on a fresh namespace.
	n := int64(o.Parallelism)
	podPeak := (memoryPeak(p) + n - 1) / n
	if rng == nil {
		if f := podForecast(p, o.Parallelism, podRange); stops(f) && !p.Source.Ports.ExpectExhaustion {
			rng = &wideRange
		}
		if w := spec.PortWindow(p); p.Source.Ports.Strategy == "range" && w.Lo > 0 && (int(w.Lo) < podRange.Lo || int(w.Hi) > podRange.Hi) {
			rng = &preflight.PortRange{Lo: min(int(w.Lo), podRange.Lo), Hi: max(int(w.Hi), podRange.Hi)}
		}
	}
	if rng != nil {
		o.Sysctls = append([]Sysctl{{"net.ipv4.ip_local_port_range", fmt.Sprintf("%d %d", rng.Lo, rng.Hi)}}, o.Sysctls...)
	}
	// Explicit source ports below 1024 need CAP_NET_BIND_SERVICE, which the pods drop: the safe
	// sysctl ip_unprivileged_port_start lets the pod's user bind them in its own namespace.
	if w := spec.PortWindow(p); p.Source.Ports.Strategy == "explicit" && w.Lo > 0 && w.Lo < 1024 {
		o.Sysctls = append(o.Sysctls, Sysctl{"net.ipv4.ip_unprivileged_port_start", fmt.Sprint(w.Lo)})
	}
	use := podRange
	if rng != nil {
		use = *rng
	}
	if f := podForecast(p, o.Parallelism, use); stops(f) && !p.Source.Ports.ExpectExhaustion {
		l := f.First()
		problems = append(problems, fmt.Sprintf("%s: each of %d pods needs %d %s, over %d (%s) with ip_local_port_range %d-%d: render with a larger --parallelism, or change the plan (%s)",
			l.Name, o.Parallelism, l.Demand, l.Unit, l.Max, l.Why, use.Lo, use.Hi, strings.Join(l.Fixes, "; ")))
	}

	// Resources: memory by connection, descriptors as a note (Kubernetes has no resource for them).
	per := int64(memActive)
	cn := p.Connection
	switch {
	case cn.TLS != nil:
		per = memTLS
	case cn.Send == nil && (cn.Close == "fin" || cn.Close == "rst"):
		per = memParked
	}
	if p.Target.Builtin != nil {
		per += memParked // the target's end, in the same pod
	}
	o.Memory = quantity(memBase + podPeak*per)
	o.MergeMemory = quantity(mergeBytes)
	o.OpenFiles = podPeak + fdOverhead
	if p.Target.Builtin != nil {
		o.OpenFiles += podPeak
	}
	o.Notes = append(o.Notes,
		fmt.Sprintf("each segment pod holds up to %d connection(s): memory %s (%s per connection and %s for the run); it needs an open-files limit of %d or more, which the container runtime sets (containerd 1.x: 1048576; containerd 2.x and Docker 25+: 524288 hard), not Kubernetes",
			podPeak, o.Memory, quantity(per), quantity(memBase), o.OpenFiles))
	if o.OpenFiles > 524288 {
		warnings = append(warnings, fmt.Sprintf("each pod needs %d open files: over the 524288 hard limit of containerd 2.x and Docker 25+ pods; render with a larger --parallelism, or check the nodes' runtime (LimitNOFILE)", o.OpenFiles))
	}
	o.Notes = append(o.Notes, "node-wide limits the pods share and cannot set: nf_conntrack_max (every pod's connections through the node's conntrack, when kube-proxy or a NetworkPolicy tracks them), the node's CPU")

	if len(problems) > 0 {
		return warnings, fmt.Errorf("%w:\n  %s", ErrCannotRender, strings.Join(problems, "\n  "))
	}
	total := 0
	for _, f := range o.Files {
		total += len(f.Data)
		if !utf8.Valid(f.Data) {
			total += len(f.Data) / 3 // base64
		}
	}
	if b, err := yaml.Marshal(&pp); err != nil {
		return warnings, err
	} else {
		o.Plan = b
		total += len(b)
	}
	if total > MaxConfigMap {
		var sizes []string
		for _, f := range o.Files {
			sizes = append(sizes, fmt.Sprintf("%s %s (%d bytes)", f.Field, f.From, len(f.Data)))
		}
		return warnings, fmt.Errorf("%w: the plan and its files take %d bytes, over the %d a ConfigMap holds (%s): make the files smaller or put them in the image and name their path there",
			ErrCannotRender, total, MaxConfigMap, strings.Join(sizes, ", "))
	}
	return warnings, nil
}

// memoryPeak is the most connections the plan may have open at once, for sizing memory: the
// preflight's demand, and under the arrival model the connections that may still be connecting and
// answering (connect_timeout + io_timeout after their start), up to load.max_in_flight.
func memoryPeak(p *plan.Plan) int64 {
	peak, rate := spec.Demand(p)
	if p.Load.Model == "arrival" {
		c := p.Connection
		worst := int64(math.Ceil(rate * (c.ConnectTimeout.D() + c.IOTimeout.D()).Seconds()))
		peak = max(peak, worst)
		if p.Load.MaxInFlight > 0 {
			peak = min(peak, int64(p.Load.MaxInFlight))
		}
	}
	return max(peak, 1)
}

// ErrCannotRender wraps the reasons a plan cannot run as pods.
var ErrCannotRender = errors.New("the plan cannot run as Kubernetes pods")

// podForecast is the preflight's forecast of one pod's share of p in a fresh network namespace
// with ip_local_port_range r (the kernel's defaults elsewhere; limits of the node unknown).
func podForecast(p *plan.Plan, n int, r preflight.PortRange) *preflight.Forecast {
	pp := *p
	pp.Isolate, pp.Netns, pp.Source.Addresses = false, nil, nil
	l := pp.Load
	l.Start /= float64(n)
	l.Stages = make([]plan.Stage, len(p.Load.Stages))
	for i, s := range p.Load.Stages {
		l.Stages[i] = plan.Stage{Duration: s.Duration, Target: s.Target / float64(n)}
	}
	l.MaxInFlight = (l.MaxInFlight + n - 1) / n
	l.MaxConnectRate = plan.Rate(float64(l.MaxConnectRate) / float64(n))
	pp.Load = l
	if lo, hi, ok := plan.ParsePortRange(p.Source.Ports.Range); ok && n > 1 && hi-lo+1 >= n {
		size := hi - lo + 1
		pp.Source.Ports.Range = fmt.Sprintf("%d-%d", lo, lo+size/n-1) // the smallest share
	}
	h := preflight.Host{PortRange: r, FDHard: -1, FDSoft: -1, TWReuse: 2, TWReuseDelay: 1000, MaxTWBuckets: -1, Somaxconn: 4096,
		Syncookies: 1, TCPTimestamps: 1, ConntrackMax: -1, ConntrackCount: -1, UnprivilegedPortStart: 1024, Conntrack: preflight.ConntrackUnknown}
	dsts := p.Target.Addresses
	if p.Target.Builtin != nil {
		dsts = make([]string, max(p.Target.Builtin.Listeners, 1))
		for i := range dsts {
			dsts[i] = fmt.Sprintf("127.0.0.1:<listener %d>", i+1)
		}
	}
	return preflight.Plan(spec.Preflight(&pp), h, preflight.Inputs{Destinations: dsts, Loopback: p.Target.Builtin != nil})
}

// stops reports whether a port limit stops the forecast run.
func stops(f *preflight.Forecast) bool {
	l := f.First()
	return l != nil && l.Ports
}

var nonKey = regexp.MustCompile(`[^-._a-zA-Z0-9]+`)

// configKey is a ConfigMap key for a file: prefix-<base name>, made of the characters a key
// allows, unique among keys.
func configKey(prefix, from string, keys map[string]bool) string {
	base := nonKey.ReplaceAllString(filepath.Base(from), "_")
	if len(base) > 200 {
		base = base[len(base)-200:]
	}
	k := prefix + "-" + base
	for i := 2; keys[k]; i++ {
		k = fmt.Sprintf("%s-%d-%s", prefix, i, base)
	}
	keys[k] = true
	return k
}

// quantity writes bytes as a Kubernetes quantity in Mi, rounded up.
func quantity(b int64) string {
	if b < 1<<20 && b%(1<<10) == 0 {
		return fmt.Sprintf("%dKi", b>>10)
	}
	return fmt.Sprintf("%dMi", (b+1<<20-1)>>20)
}
