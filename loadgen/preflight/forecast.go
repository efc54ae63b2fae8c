package preflight

import (
	"fmt"
	"math"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/portstorm/portstorm/loadgen/dial"
	"github.com/portstorm/portstorm/loadgen/ports"
)

// fdOverhead is the descriptors a run holds besides its connections: stdio, the poller, the results
// files, listeners. Measured at about 12; 32 leaves room.
const fdOverhead = 32

// timeWaitTime is how long TIME_WAIT lasts on Linux (TCP_TIMEWAIT_LEN, 60 s).
const timeWaitTime = 60 * time.Second

// Inputs are what the forecast needs beyond the plan and the host's sysctls.
type Inputs struct {
	// Destinations names the run's destinations (host:port); for the built-in target, one entry per
	// listener (its port may be unknown before it starts: "127.0.0.1:<listener 1>").
	Destinations []string
	// Loopback is true when every destination is on loopback (tcp_tw_reuse=2 applies there).
	Loopback bool
	// ListenersInRange and HeldAtStart come from a census of the sockets present (Census).
	ListenersInRange int
	HeldAtStart      int
	// Workers is how many generator processes share the load (0 or 1: this process alone).
	Workers int
	// TargetProcesses is how many processes run the built-in target (0: inside the generator).
	TargetProcesses int
}

// Load is what the forecast reads of a plan, as typed values: loadgen/spec compiles it (spec.Preflight;
// this package cannot import spec, which imports it), so that nothing here reads a plan key or
// compares the name of a close mode or a strategy.
type Load struct {
	// Strategy and Window are source.ports: the port strategy and the window it draws from (zero
	// without source.ports.range); Sources are source.addresses expanded.
	Strategy dial.Strategy
	Window   dial.Window
	Sources  []netip.Addr
	// ExpectExhaustion is source.ports.expect_exhaustion: port limits are the finding.
	ExpectExhaustion bool
	// Close is connection.close: whether the generator's sockets end in TIME_WAIT.
	Close dial.CloseMode
	// Builtin is true when the plan runs the built-in target (it holds the other end of every
	// connection: in the generator's process, or in target processes of its own).
	Builtin bool
	// MaxListeners is the most listeners the built-in target may have (the fix that adds
	// destinations stays within it).
	MaxListeners int
	// Isolate is true when the run makes a fresh network namespace (isolate: true) with Netns.
	Isolate bool
	Netns   Netns
	// Peak is the plan's most concurrent connections, Rate its churn in connections/s (0 unknown).
	Peak int64
	Rate float64
}

// Netns is the plan's settings of the fresh namespace an isolated run makes (netns:); a zero field
// leaves the kernel's default of a new namespace.
type Netns struct {
	// PortRange is ip_local_port_range (zero: the host's range is forecast, as before).
	PortRange PortRange
	// TWReuse is tcp_tw_reuse, when TWReuseSet.
	TWReuse    int
	TWReuseSet bool
	// TWReuseDelay is tcp_tw_reuse_delay; MaxTWBuckets tcp_max_tw_buckets.
	TWReuseDelay time.Duration
	MaxTWBuckets int
}

// LimitKind says which limit a Limit is, for a caller that decides from it (a search tells the
// client's ports and descriptors running out from other host limits) without reading its name.
type LimitKind uint8

const (
	// LimitPorts is the local port space (PortsLimit).
	LimitPorts LimitKind = iota + 1
	// LimitTimeWait is the churn TIME_WAIT leaves room for (TimeWaitLimit).
	LimitTimeWait
	// LimitOpenFiles is the open-files limit over the run's processes (OpenFilesLimit).
	LimitOpenFiles
	// LimitConntrack is nf_conntrack_max (ConntrackLimit).
	LimitConntrack
	// LimitFileMax is fs.file-max, the host's open files over every process (FileMaxLimit).
	LimitFileMax
	// LimitMemory is the host's available memory (MemoryLimit).
	LimitMemory
)

// Limit is one host or plan limit and where it stops the run.
type Limit struct {
	Kind LimitKind `json:"-"`
	Name string    `json:"name"`
	// Max is what the limit allows, in Unit; Demand is what the plan needs.
	Max    int64  `json:"max"`
	Demand int64  `json:"demand"`
	Unit   string `json:"unit"`
	Stops  bool   `json:"stops"`
	// Ports is true for the limits of the local port space (the ones expect_exhaustion waives).
	Ports bool     `json:"ports"`
	Why   string   `json:"why"`
	Fixes []string `json:"fixes,omitempty"`
}

// PairForecast is one (source, destination).
type PairForecast struct {
	Source      string `json:"source"`
	Destination string `json:"destination"`
	Capacity    int    `json:"capacity"`
	Demand      int    `json:"demand"`
	TimeWait    int    `json:"time_wait"`
}

// Forecast is the capacity forecast of a plan on a host.
type Forecast struct {
	Strategy dial.Strategy `json:"strategy"`
	Range    ports.Range   `json:"range"`
	Window   dial.Window   `json:"-"`
	Sources  []netip.Addr  `json:"-"`
	// Capacity is the connections one (source, destination) can hold (bind: one source, shared).
	Capacity int `json:"capacity"`
	// Peak is the plan's most concurrent connections; Rate its churn in connections/s (0 unknown).
	Peak  int64          `json:"peak"`
	Rate  float64        `json:"rate"`
	Pairs []PairForecast `json:"pairs"`
	// Limits, in the order they stop the run (the first is the first to bite).
	Limits []Limit `json:"limits"`
	// TWReuseDelay is the TIME_WAIT reuse delay that applies to the destinations, 0 when none does.
	TWReuseDelay time.Duration `json:"-"`
	Warnings     []string      `json:"warnings,omitempty"`
	// Refuse is true when the plan cannot be carried out as written.
	Refuse bool `json:"refuse"`
	// ExpectExhaustion mirrors the plan: port limits are the finding, not a reason to refuse.
	ExpectExhaustion bool `json:"expect_exhaustion"`
}

// First returns the limit that stops the run first, or nil when none does.
func (f *Forecast) First() *Limit {
	for i := range f.Limits {
		if f.Limits[i].Stops {
			return &f.Limits[i]
		}
	}
	return nil
}

// SysctlRange is the ip_local_port_range the run will see: the host's, or the plan's namespace one.
func SysctlRange(l Load, h Host) PortRange {
	if l.Isolate && l.Netns.PortRange != (PortRange{}) && !h.Isolated {
		return l.Netns.PortRange
	}
	return h.PortRange
}

// Plan forecasts how far the plan p gets on host h: capacity per (source, destination), every
// limit with where it stops the run, the first one, and the exact change that lifts each. Each limit
// is also its own function (PortsLimit, TimeWaitLimit, OpenFilesLimit, ConntrackLimit), for a caller
// that needs one of them.
func Plan(l Load, h Host, in Inputs) *Forecast {
	f := Capacity(l, h, in)
	f.Limits = append(f.Limits, PortsLimit(l, f))
	if tw, ok := TimeWaitLimit(l, f); ok {
		f.Limits = append(f.Limits, tw)
		if maxTW := timeWaitBuckets(l, h); maxTW > 0 && f.Rate > 0 {
			if est := int64(f.Rate * timeWaitTime.Seconds()); est > int64(maxTW) {
				f.Warnings = append(f.Warnings, fmt.Sprintf("about %d TIME_WAIT sockets expected, over tcp_max_tw_buckets %d: the rest are not kept (TcpExt TCPTimeWaitOverflow)", est, maxTW))
			}
		}
	}
	if fl, ok := OpenFilesLimit(l, h, in, f.Peak); ok {
		f.Limits = append(f.Limits, fl)
	}
	if cl, ok := ConntrackLimit(l, h, in, f.Peak); ok {
		f.Limits = append(f.Limits, cl)
	}
	if fm, ok := FileMaxLimit(l, h, in, f.Peak); ok {
		f.Limits = append(f.Limits, fm)
	}
	if ml, ok := MemoryLimit(l, h, in, f.Peak); ok {
		f.Limits = append(f.Limits, ml)
	}
	if h.Syncookies == 0 && f.Rate > float64(max(h.Somaxconn, 128))*10 {
		f.Warnings = append(f.Warnings, fmt.Sprintf("tcp_syncookies=0 with %.0f connections/s and somaxconn %d: a full SYN queue drops SYNs", f.Rate, h.Somaxconn))
	}
	sortLimits(f.Limits)
	if first := f.First(); first != nil && !(first.Ports && f.ExpectExhaustion) {
		f.Refuse = true
	}
	for _, l := range f.Limits {
		if l.Stops && !l.Ports {
			f.Refuse = true
		}
	}
	return f
}

// Capacity is the forecast without its limits: the strategy, the effective port range and the
// capacity of one (source, destination), the plan's demand spread over the pairs, and the TIME_WAIT
// reuse delay. It is all a census of the range needs, and what the port and TIME_WAIT limits read.
func Capacity(l Load, h Host, in Inputs) *Forecast {
	f := &Forecast{Strategy: l.Strategy, ExpectExhaustion: l.ExpectExhaustion, Sources: l.Sources, Window: l.Window}
	f.TWReuseDelay = timeWaitReuse(l, h, in.Loopback)
	f.Range, f.Warnings = EffectiveRange(l, h, in)
	f.Capacity = f.Range.Effective

	f.Peak, f.Rate = l.Peak, l.Rate
	srcNames, dsts := pairNames(f, in)
	pairs := int64(len(srcNames) * len(dsts))
	perPair := ceilDiv(f.Peak, pairs)
	var twPerPair int64
	if clientTimeWait(l) && f.Rate > 0 {
		twPerPair = int64(math.Ceil(f.Rate / float64(pairs) * f.timeWaitTime().Seconds()))
	}
	for _, s := range srcNames {
		for _, d := range dsts {
			f.Pairs = append(f.Pairs, PairForecast{Source: s, Destination: d, Capacity: f.Capacity, Demand: int(perPair), TimeWait: int(twPerPair)})
		}
	}
	return f
}

// pairNames names the sources and destinations the forecast pairs ("(kernel's choice)" for no
// source address, "?" for destinations not known).
func pairNames(f *Forecast, in Inputs) (srcs, dsts []string) {
	dsts = in.Destinations
	if len(dsts) == 0 {
		dsts = []string{"?"}
	}
	srcs = []string{"(kernel's choice)"}
	if len(f.Sources) > 0 {
		srcs = make([]string, len(f.Sources))
		for i, a := range f.Sources {
			srcs[i] = a.String()
		}
	}
	return srcs, dsts
}

// shape is how many sources and destinations f pairs.
func (f *Forecast) shape() (S, D int64) {
	S = int64(max(len(f.Sources), 1))
	return S, int64(len(f.Pairs)) / S
}

// timeWaitTime is how long a closed connection's 4-tuple stays taken.
func (f *Forecast) timeWaitTime() time.Duration {
	if f.TWReuseDelay > 0 {
		return f.TWReuseDelay
	}
	return timeWaitTime
}

// clientTimeWait reports whether the generator's sockets end in TIME_WAIT: it closes first, and
// the strategy does not recycle its ports at once (explicit binds with SO_REUSEADDR).
func clientTimeWait(l Load) bool {
	return l.Close.ClientHoldsTimeWait() && l.Strategy != dial.StrategyExplicit
}

// netnsTimeWait is the run's tcp_tw_reuse, tcp_tw_reuse_delay (ms) and tcp_max_tw_buckets: the
// host's, or those of the fresh namespace isolate makes (the kernel's defaults, then the plan's
// netns settings).
func netnsTimeWait(l Load, h Host) (twReuse, twDelay, maxTW int) {
	twReuse, twDelay, maxTW = h.TWReuse, h.TWReuseDelay, h.MaxTWBuckets
	if l.Isolate && !h.Isolated {
		twReuse, twDelay, maxTW = 2, 1000, -1
		n := l.Netns
		if n.TWReuseSet {
			twReuse = n.TWReuse
		}
		if n.TWReuseDelay > 0 {
			twDelay = int(n.TWReuseDelay.Milliseconds())
		}
		if n.MaxTWBuckets > 0 {
			maxTW = n.MaxTWBuckets
		}
	}
	return twReuse, twDelay, maxTW
}

// timeWaitReuse is the delay after which connect() takes a TIME_WAIT 4-tuple over, 0 when
// tcp_tw_reuse does not apply to the destinations (2: loopback only).
func timeWaitReuse(l Load, h Host, loopback bool) time.Duration {
	twReuse, twDelay, _ := netnsTimeWait(l, h)
	if twReuse == 1 || (twReuse == 2 && loopback) {
		if twDelay < 0 {
			return time.Second
		}
		return time.Duration(max(twDelay, 0)) * time.Millisecond
	}
	return 0
}

func timeWaitBuckets(l Load, h Host) int {
	_, _, maxTW := netnsTimeWait(l, h)
	return maxTW
}

// EffectiveRange is the local port range the plan's strategy draws from on h, and how much of it is
// usable, with warnings about a window the kernel clamps or ignores.
// It is the one limit a census of the range needs, callable before the rest of the forecast.
func EffectiveRange(l Load, h Host, in Inputs) (ports.Range, []string) {
	strategy, w := l.Strategy, l.Window
	var warnings []string
	sys := SysctlRange(l, h)
	r := ports.Range{Lo: sys.Lo, Hi: sys.Hi, From: "ip_local_port_range"}
	switch strategy {
	case dial.StrategyRange:
		r.From = "IP_LOCAL_PORT_RANGE"
		lo, hi := max(int(w.Lo), sys.Lo), min(int(w.Hi), sys.Hi)
		if lo > hi {
			r.Ignored = true
			warnings = append(warnings, fmt.Sprintf(
				"source.ports.range %d-%d lies wholly outside ip_local_port_range %d-%d: the kernel ignores the per-socket range and uses the whole sysctl range; "+
					"want a window inside %d-%d", w.Lo, w.Hi, sys.Lo, sys.Hi, sys.Lo, sys.Hi))
		} else {
			if lo != int(w.Lo) || hi != int(w.Hi) {
				warnings = append(warnings, fmt.Sprintf("source.ports.range %d-%d is clamped by the kernel to ip_local_port_range: %d-%d",
					w.Lo, w.Hi, lo, hi))
			}
			r.Lo, r.Hi = lo, hi
		}
	case dial.StrategyExplicit:
		r.From = "explicit"
		r.Lo, r.Hi = int(w.Lo), int(w.Hi)
		if !h.Root && h.UnprivilegedPortStart > 0 && r.Lo < h.UnprivilegedPortStart {
			warnings = append(warnings, fmt.Sprintf("ports below %d need root (ip_unprivileged_port_start): binding them will fail with EACCES", h.UnprivilegedPortStart))
		}
	}
	if r.Lo > 0 && r.Hi >= r.Lo {
		r.Size = r.Hi - r.Lo + 1
	}
	if strategy != dial.StrategyExplicit {
		r.Reserved = ReservedIn(h.ReservedPorts, r.Lo, r.Hi)
		r.Listeners = in.ListenersInRange
	}
	r.HeldAtStart = in.HeldAtStart
	r.Effective = max(r.Size-r.Reserved-r.Listeners, 0)
	return r, warnings
}

// PortsLimit is the local port space: the concurrent connections the capacity f (from Capacity)
// holds over its (source, destination) pairs, or, under bind, over its sources alone.
func PortsLimit(l Load, f *Forecast) Limit {
	strategy := f.Strategy
	S, D := f.shape()
	pairs := S * D
	portMax := int64(f.Capacity) * pairs
	unit := "(source, destination) pair"
	per := pairs
	if strategy == dial.StrategyBind {
		portMax = int64(f.Capacity) * S
		unit = "source address (bind reserves a port for one socket, whatever the destination)"
		per = S
	}
	need := f.Peak
	r := f.Range
	lim := Limit{Kind: LimitPorts, Name: "local ports", Max: portMax, Demand: need, Unit: "concurrent connections", Ports: true, Stops: need > portMax,
		Why: fmt.Sprintf("%d usable ports (%s %d-%d%s) per %s x %d", f.Capacity, r.From, r.Lo, r.Hi, reduced(r), unit, per)}
	if lim.Stops {
		lim.Fixes = portFixes(l, f, S, D, need)
	}
	return lim
}

// TimeWaitLimit is the churn the port space sustains while each closed connection keeps its
// 4-tuple in TIME_WAIT (60 s, TCP_TIMEWAIT_LEN, or the reuse delay); false when the generator's
// sockets leave no TIME_WAIT.
func TimeWaitLimit(l Load, f *Forecast) (Limit, bool) {
	strategy := f.Strategy
	if !clientTimeWait(l) {
		return Limit{}, false
	}
	S, D := f.shape()
	twTime := f.timeWaitTime()
	tw := Limit{Kind: LimitTimeWait, Name: "TIME_WAIT", Unit: "connections/s", Ports: true}
	free := int64(f.Capacity)*S*D - f.Peak
	tw.Max = int64(math.Max(0, float64(free)/twTime.Seconds()))
	if strategy == dial.StrategyBind {
		tw.Max = int64(math.Max(0, float64(int64(f.Capacity)*S-f.Peak)/twTime.Seconds()))
	}
	tw.Demand = int64(math.Ceil(f.Rate))
	reuse := "tcp_tw_reuse does not apply to these destinations: a 4-tuple stays taken for 60 s"
	if f.TWReuseDelay > 0 {
		reuse = fmt.Sprintf("tcp_tw_reuse lets connect() take a TIME_WAIT 4-tuple over after %s", f.TWReuseDelay)
	}
	tw.Why = "the client closes first (close: " + l.Close.String() + ") and holds TIME_WAIT; " + reuse
	if f.Rate == 0 {
		tw.Why += "; the churn rate is not known before the run (no hold, no rate cap), so this is not forecast"
	}
	tw.Stops = f.Rate > 0 && tw.Demand > tw.Max
	if tw.Stops {
		tw.Fixes = []string{
			"close: rst (SO_LINGER 0) leaves no TIME_WAIT on the client",
			"close: server lets the target hold TIME_WAIT",
			"more source addresses or destinations: each adds a full range of 4-tuples",
		}
		if f.TWReuseDelay == 0 {
			tw.Fixes = append(tw.Fixes, "tcp_tw_reuse=1 (in the run's namespace: isolate: true with netns.tw_reuse: 1)")
		}
	}
	return tw, true
}

// OpenFilesLimit is the open-files hard limit over the run's processes, for peak concurrent
// connections; false when the host's limit is not known. Go raises the soft limit to the hard one at
// start. Each generator process holds its share of the connections; the built-in target holds the
// other end, in the generator process or in processes of its own.
func OpenFilesLimit(l Load, h Host, in Inputs, peak int64) (Limit, bool) {
	if h.FDHard <= 0 {
		return Limit{}, false
	}
	fdsPer := int64(1)
	if l.Builtin && in.TargetProcesses == 0 {
		fdsPer = 2
	}
	workers := int64(max(in.Workers, 1))
	fdMax := max((h.FDHard-fdOverhead-int64(len(in.Destinations)))/fdsPer, 0) * workers
	why := fmt.Sprintf("open-files hard limit %d per process, %d descriptor(s) per connection, %d generator process(es)", h.FDHard, fdsPer, workers)
	if fdsPer == 2 {
		why += " (the built-in target runs in the same process)"
	}
	if tp := int64(in.TargetProcesses); l.Builtin && tp > 0 {
		fdMax = min(fdMax, max(h.FDHard-fdOverhead-int64(len(in.Destinations)), 0)*tp)
		why += fmt.Sprintf(", %d target process(es)", tp)
	}
	fl := Limit{Kind: LimitOpenFiles, Name: "open files", Max: fdMax, Demand: peak, Unit: "concurrent connections", Stops: peak > fdMax, Why: why}
	if fl.Stops {
		procs := ceilDiv(peak*fdsPer+fdOverhead, h.FDHard-fdOverhead)
		fl.Fixes = []string{
			fmt.Sprintf("more worker processes: load.workers: %d (and target.builtin.processes: %d for the built-in target), or leave both at auto", procs, procs),
			fmt.Sprintf("raise the open-files hard limit to %d or more (ulimit -Hn, LimitNOFILE=, /etc/security/limits.conf)", peak*fdsPer+fdOverhead),
		}
		if fdsPer == 2 {
			fl.Fixes = append(fl.Fixes, "run the target in another process (portstorm target, then target.addresses): halves the descriptors this process needs")
		}
	}
	return fl, true
}

// descriptorsPerConnection is the open files one connection takes on this host: its socket, and
// the built-in target's end of it.
func descriptorsPerConnection(l Load) int64 {
	if l.Builtin {
		return 2
	}
	return 1
}

// processes is how many portstorm processes the run has: the generator's (itself, or its
// workers and the coordinator) and the built-in target's own.
func processes(in Inputs) int64 {
	n := int64(1)
	if in.Workers > 1 {
		n += int64(in.Workers)
	}
	return n + int64(in.TargetProcesses)
}

// FileMaxLimit is fs.file-max's room for peak concurrent connections: the host's open files over
// every process and namespace (the run's private namespace shares it), less those allocated
// already; false when it is not known. Two descriptors per connection with the built-in target.
func FileMaxLimit(l Load, h Host, in Inputs, peak int64) (Limit, bool) {
	if h.FileMax <= 0 || h.FileNr < 0 {
		return Limit{}, false
	}
	per := descriptorsPerConnection(l)
	procs := processes(in)
	free := max(h.FileMax-h.FileNr-procs*fdOverhead, 0)
	fl := Limit{Kind: LimitFileMax, Name: "file-max", Max: free / per, Demand: peak, Unit: "concurrent connections",
		Why: fmt.Sprintf("fs.file-max %d, %d allocated now, %d descriptor(s) per connection, %d processes", h.FileMax, h.FileNr, per, procs)}
	fl.Stops = peak > fl.Max
	if fl.Stops {
		fl.Fixes = []string{fmt.Sprintf("raise fs.file-max to %d or more (sysctl -w fs.file-max=...: a host setting that every namespace shares; portstorm never changes it)",
			h.FileNr+peak*per+procs*fdOverhead+h.FileMax/10)}
		if per == 2 {
			fl.Fixes = append(fl.Fixes, "or run the target on another host (target.addresses): halves the descriptors this host needs")
		}
	}
	return fl, true
}

// What a held connection costs in memory, as measured by configs/million.yaml (summary.json's
// `memory`; docs/measurements.md, "Memory per connection"): the kernel's slab per socket (TCP,
// sock_inode_cache, dentry, filp, eventpoll_epi, ...; 7.92 KiB for both ends of a loopback
// connection), the generator's (1.21 KiB over 53 workers) and the built-in target's (101 B)
// resident memory per connection, and what a portstorm process takes before its first connection
// (15-17 MB: its binary's text counted once per process, as RSS does).
const (
	KernelPerSocket        = 4 << 10
	GeneratorPerConnection = 1280
	TargetPerConnection    = 128
	ProcessBase            = 16 << 20
)

// memoryShare is the part of MemAvailable the forecast lets a run take: the rest stays for the host
// (its page cache, other processes), so that a run that fits does not push it into reclaim.
const memoryShare = 0.9

// MemoryLimit is the host's available memory for peak concurrent connections, at the measured
// cost of one (the kernel's sockets, the generator's and the target's memory) and of each
// process; false when MemAvailable is not known.
func MemoryLimit(l Load, h Host, in Inputs, peak int64) (Limit, bool) {
	if h.MemAvailable <= 0 {
		return Limit{}, false
	}
	sockets := int64(1)
	if in.Loopback || l.Builtin {
		sockets = 2 // the target's end is on this host too
	}
	per := sockets*KernelPerSocket + GeneratorPerConnection
	if l.Builtin {
		per += TargetPerConnection
	}
	procs := processes(in)
	room := max(int64(float64(h.MemAvailable)*memoryShare)-procs*ProcessBase, 0)
	ml := Limit{Kind: LimitMemory, Name: "memory", Max: room / per, Demand: peak, Unit: "concurrent connections",
		Why: fmt.Sprintf("%.1f GiB available (MemAvailable; %.0f%% of it for the run), about %d B per connection (the kernel's %d B per socket x %d, the generator's %d B",
			float64(h.MemAvailable)/(1<<30), memoryShare*100, per, KernelPerSocket, sockets, GeneratorPerConnection)}
	if l.Builtin {
		ml.Why += fmt.Sprintf(", the target's %d B", TargetPerConnection)
	}
	ml.Why += fmt.Sprintf("), %d processes of %d MiB", procs, ProcessBase>>20)
	ml.Stops = peak > ml.Max
	if ml.Stops {
		need := float64(peak*per+procs*ProcessBase) / memoryShare
		ml.Fixes = []string{fmt.Sprintf("a host with %.1f GiB available or more, or fewer connections (about %d fit)", need/(1<<30), ml.Max)}
		if sockets == 2 {
			ml.Fixes = append(ml.Fixes, "or the target on another host: it takes the other socket's memory")
		}
	}
	return ml, true
}

// ConntrackLimit is nf_conntrack_max's room for peak concurrent connections; false when conntrack
// does not track the run's connections.
func ConntrackLimit(l Load, h Host, in Inputs, peak int64) (Limit, bool) {
	if !conntrackLimits(l, h, in) {
		return Limit{}, false
	}
	avail := int64(max(h.ConntrackMax-max(h.ConntrackCount, 0), 0))
	cl := Limit{Kind: LimitConntrack, Name: "conntrack", Max: avail, Demand: peak, Unit: "tracked connections", Stops: peak > avail,
		Why: fmt.Sprintf("nf_conntrack_max %d, %d entries in use: a full table drops new SYNs (they end as ETIMEDOUT)", h.ConntrackMax, max(h.ConntrackCount, 0))}
	if cl.Stops {
		cl.Fixes = []string{fmt.Sprintf("sysctl net.netfilter.nf_conntrack_max=%d", peak*2),
			"or exempt loopback from tracking: iptables -t raw -A OUTPUT -o lo -j NOTRACK"}
	}
	return cl, true
}

// conntrackLimits reports whether nf_conntrack_max limits the run: only when conntrack tracks
// connections in the run's namespace, not because the module is loaded.
func conntrackLimits(l Load, h Host, in Inputs) bool {
	if h.ConntrackMax <= 0 {
		return false
	}
	if l.Isolate && !h.Isolated {
		// The run's fresh namespace has no rule that needs conntrack, hence no hook (see
		// ConntrackInactive).
		return false
	}
	switch h.Conntrack {
	case ConntrackInactive:
		// The probe was on loopback: a rule that exempts lo (raw NOTRACK) would hide tracking of the
		// other interfaces, which entries already in the table betray.
		return !in.Loopback && h.ConntrackCount > 0
	case ConntrackNotLoaded:
		return false
	}
	return true // active, or not probed (a Host from elsewhere): the table's size is the limit
}

// sortLimits puts the limits that stop the run first, the tightest (by Max/Demand) first.
func sortLimits(ls []Limit) {
	ratio := func(l Limit) float64 {
		if l.Demand <= 0 {
			return math.Inf(1)
		}
		return float64(l.Max) / float64(l.Demand)
	}
	for i := 1; i < len(ls); i++ {
		for j := i; j > 0 && ratio(ls[j]) < ratio(ls[j-1]); j-- {
			ls[j], ls[j-1] = ls[j-1], ls[j]
		}
	}
}

func reduced(r ports.Range) string {
	var parts []string
	if r.Reserved > 0 {
		parts = append(parts, fmt.Sprintf("%d reserved", r.Reserved))
	}
	if r.Listeners > 0 {
		parts = append(parts, fmt.Sprintf("%d listening", r.Listeners))
	}
	if len(parts) == 0 {
		return ""
	}
	return ", minus " + strings.Join(parts, " and ")
}

// portFixes spells out the changes that lift the port limit, with the numbers that make it pass.
func portFixes(l Load, f *Forecast, S, D, need int64) []string {
	strategy := f.Strategy
	cap := int64(max(f.Capacity, 1))
	var fixes []string
	if strategy == dial.StrategyBind {
		fixes = append(fixes, fmt.Sprintf("source.ports.strategy: bind-no-port (IP_BIND_ADDRESS_NO_PORT): each port serves all %d destinations, %d connections in all", D, cap*S*D))
		S2 := ceilDiv(need, cap)
		fixes = append(fixes, fmt.Sprintf("or %d source addresses (source.addresses, e.g. %s)", S2, pool(S2)))
		return fixes
	}
	S2 := ceilDiv(need, cap*D)
	verb := "add source addresses"
	strat := ""
	if strategy == dial.StrategyKernel && len(f.Sources) == 0 {
		strat = " with source.ports.strategy: bind-no-port"
	}
	fixes = append(fixes, fmt.Sprintf("%s: %d in all (source.addresses: [%s]%s); each adds a full range per destination", verb, S2, pool(S2), strat))
	D2 := ceilDiv(need, cap*S)
	if l.Builtin {
		if D2 <= int64(l.MaxListeners) {
			fixes = append(fixes, fmt.Sprintf("or more destinations: target.builtin.listeners: %d", D2))
		}
	} else {
		fixes = append(fixes, fmt.Sprintf("or more destinations: %d target addresses or ports in all (target.addresses)", D2))
	}
	switch strategy {
	case dial.StrategyRange:
		fixes = append(fixes, fmt.Sprintf("or a wider source.ports.range: %d ports per destination are needed (inside ip_local_port_range)", ceilDiv(need, S*D)))
	case dial.StrategyExplicit:
		fixes = append(fixes, "or a wider source.ports.range, up to \"1024-65535\" (64512 ports)")
	default:
		perPair := ceilDiv(need, S*D)
		if perPair <= 64512 {
			fixes = append(fixes, fmt.Sprintf("or a wider range: net.ipv4.ip_local_port_range needs %d ports (e.g. \"1024 65535\"); "+
				"without touching the host: isolate: true with netns.port_range: \"1024-65535\"", perPair))
			fixes = append(fixes, "or source.ports.strategy: explicit with range \"1024-65535\" (no sysctl; recycles TIME_WAIT at once)")
		}
	}
	return fixes
}

// pool renders n loopback source addresses for a fix.
func pool(n int64) string {
	if n <= 4 {
		var a []string
		for i := int64(0); i < n; i++ {
			a = append(a, fmt.Sprintf("%q", fmt.Sprintf("127.0.0.%d", i+1)))
		}
		return strings.Join(a, ", ")
	}
	bits := 32 - int(math.Ceil(math.Log2(float64(n+2))))
	return fmt.Sprintf("%q", fmt.Sprintf("127.0.0.0/%d", bits))
}

func ceilDiv(a, b int64) int64 {
	if b <= 0 {
		return 0
	}
	return (a + b - 1) / b
}

// ReservedIn counts the ports of ip_local_reserved_ports ("8080,9000-9010") within lo..hi.
func ReservedIn(reserved string, lo, hi int) int {
	n := 0
	for _, part := range strings.Split(reserved, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		a, b, isRange := strings.Cut(part, "-")
		x, err1 := strconv.Atoi(a)
		y := x
		var err2 error
		if isRange {
			y, err2 = strconv.Atoi(b)
		}
		if err1 != nil || err2 != nil {
			continue
		}
		x, y = max(x, lo), min(y, hi)
		if y >= x {
			n += y - x + 1
		}
	}
	return n
}
