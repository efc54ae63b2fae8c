package ports

import (
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"time"

	hdr "github.com/HdrHistogram/hdrhistogram-go"

	"github.com/portstorm/portstorm/loadgen/metrics"
)

// Range is the effective local port range of the run and what reduced it (docs/ports.md).
type Range struct {
	Lo   int `json:"lo"`
	Hi   int `json:"hi"`
	Size int `json:"size"`
	// From says where the range comes from: ip_local_port_range, IP_LOCAL_PORT_RANGE (the per-socket
	// window clamped to it) or explicit (the plan's window, which ignores the sysctl).
	From string `json:"from"`
	// Reserved counts ip_local_reserved_ports inside the range (connect() skips them).
	Reserved int `json:"reserved"`
	// Listeners counts listening sockets on ports inside the range: connect() skips such a port
	// for every source address and destination.
	Listeners int `json:"listeners"`
	// HeldAtStart counts other sockets on the source addresses with a local port in the range when
	// the run began; they take the port only toward their own destination.
	HeldAtStart int `json:"held_at_start"`
	// Effective is Size - Reserved - Listeners: the connections one (source, destination) can hold.
	Effective int `json:"effective"`
	// Ignored is true when the kernel ignored the per-socket range (it lies outside
	// ip_local_port_range, or connections got ports outside it).
	Ignored bool `json:"ignored,omitempty"`
}

// Pass is when connect() first chose a port of the non-preferred parity: the kernel starts its
// second pass once the first parity of the range is taken toward a destination.
type Pass struct {
	AtS         float64 `json:"at_s"`
	Occupancy   float64 `json:"occupancy"`
	Destination string  `json:"destination"`
}

// Parity is the even/odd split of ports chosen by connect() (kernel, bind-no-port, range).
type Parity struct {
	Preferred  string `json:"preferred"`
	Even       uint64 `json:"even"`
	Odd        uint64 `json:"odd"`
	SecondPass *Pass  `json:"second_pass"`
}

// SourceReport is one source address.
type SourceReport struct {
	Address     string `json:"address"`
	Connections uint64 `json:"connections"`
	UniquePorts int    `json:"unique_ports"`
	// Reuse counts connections whose local port was used earlier in the run.
	Reuse  uint64 `json:"reuse"`
	Parity Parity `json:"parity"`
}

// PairReport is one (source, destination).
type PairReport struct {
	Source         string  `json:"source"`
	Destination    string  `json:"destination"`
	Capacity       int     `json:"capacity"`
	PeakConcurrent int     `json:"peak_concurrent"`
	Occupancy      float64 `json:"occupancy"`
	Connections    uint64  `json:"connections"`
	// FourTupleReuse counts connections on a 4-tuple used earlier in the run; EarlyReuse those that
	// took it over from TIME_WAIT sooner than tcp_tw_reuse_delay.
	FourTupleReuse uint64 `json:"four_tuple_reuse"`
	EarlyReuse     uint64 `json:"early_reuse"`
}

// Shared counts local ports in use toward several destinations at the same moment.
type Shared struct {
	Peak  int `json:"peak"`
	Ports int `json:"ports"`
}

// Interval summarises a histogram of intervals, in microseconds.
type Interval struct {
	Count int64  `json:"count"`
	Min   int64  `json:"min"`
	P1    int64  `json:"p1"`
	P50   int64  `json:"p50"`
	P99   int64  `json:"p99"`
	Max   int64  `json:"max"`
	HDR   string `json:"hdr"`
}

// Reuse is local-port and 4-tuple reuse over the run.
type Reuse struct {
	Ports      uint64 `json:"ports"`
	FourTuples uint64 `json:"four_tuples"`
	// Early counts 4-tuples taken over from TIME_WAIT sooner than tcp_tw_reuse_delay (10% slack).
	Early          uint64   `json:"early"`
	TWReuse        int      `json:"tw_reuse"`
	TWReuseDelayMS int64    `json:"tw_reuse_delay_ms"`
	PortInterval   Interval `json:"port_interval"`
	TupleInterval  Interval `json:"four_tuple_interval"`
}

// Exhaustion is the first EADDRNOTAVAIL or EADDRINUSE.
type Exhaustion struct {
	atUS        int64
	pair        *pair
	AtS         float64 `json:"at_s"`
	Concurrency int64   `json:"concurrency"`
	Occupancy   float64 `json:"occupancy"`
	// Open is how many connections held the exhausted (source, destination), or the source's ports
	// under the bind strategy.
	Open        int    `json:"open"`
	Errno       string `json:"errno"`
	Syscall     string `json:"syscall"`
	Source      string `json:"source"`
	Destination string `json:"destination"`
}

// Decile is connect latency for connections started at an occupancy of [From, To) of the capacity.
type Decile struct {
	From  float64 `json:"from"`
	To    float64 `json:"to"`
	Count int64   `json:"count"`
	P50   int64   `json:"p50"`
	P99   int64   `json:"p99"`
}

// TimeWait summarises the per-interval sock_diag samples.
type TimeWait struct {
	// Peak and Last count TIME_WAIT sockets of the client side: local address a run source, remote
	// a run destination. -1 when never sampled.
	Peak int64 `json:"peak"`
	Last int64 `json:"last"`
	// TargetPeak counts TIME_WAIT on the destinations' side (the built-in target closing first).
	// Both count only the 4-tuples of this run's connections.
	TargetPeak int64 `json:"target_peak"`
	// OthersPeak counts, at its peak, the TIME_WAIT sockets of other processes (4-tuples this run
	// did not use) from a run source address and a port of the run's range to a run destination:
	// they share the run's port space, since the run cannot take their 4-tuples. -1 when never
	// sampled.
	OthersPeak  int64 `json:"others_peak"`
	Samples     int   `json:"samples"`
	Skipped     int   `json:"skipped"`
	SampleMaxUS int64 `json:"sample_max_us"`
}

// Failure counts connect failures of the port kind by the system call that returned them.
type Failure struct {
	Syscall string `json:"syscall"`
	Errno   string `json:"errno"`
	Count   uint64 `json:"count"`
}

// Report is summary.json's "ports" (docs/results.md).
type Report struct {
	Strategy     string         `json:"strategy"`
	Range        Range          `json:"range"`
	Sources      []SourceReport `json:"sources"`
	Destinations []PairReport   `json:"destinations"`
	SharedPorts  Shared         `json:"shared_ports"`
	Reuse        Reuse          `json:"reuse"`
	Exhaustion   *Exhaustion    `json:"exhaustion"`
	Failures     []Failure      `json:"failures"`
	// ConnectByOccupancy is connect latency per occupancy decile: the kernel's port search slows
	// once half the range is taken.
	ConnectByOccupancy []Decile `json:"connect_by_occupancy"`
	TimeWaitPeak       int64    `json:"time_wait_peak"`
	TimeWait           TimeWait `json:"time_wait"`
	// Kernel is the run's delta of each kernel TCP counter (absent when /proc could not be read).
	Kernel   map[string]uint64 `json:"kernel,omitempty"`
	Warnings []string          `json:"warnings,omitempty"`
}

func summarize(h *hdr.Histogram) Interval {
	enc, _ := metrics.EncodeHistogram(h)
	iv := Interval{Count: h.TotalCount(), HDR: enc}
	if iv.Count > 0 {
		iv.Min, iv.Max = h.Min(), h.Max()
		iv.P1, iv.P50, iv.P99 = h.ValueAtQuantile(1), h.ValueAtQuantile(50), h.ValueAtQuantile(99)
	}
	return iv
}

// Report builds the port report. Call it after the run.
func (o *Observatory) Report() *Report {
	o.mu.Lock()
	defer o.mu.Unlock()
	r := &Report{
		Strategy: o.cfg.Strategy.String(), Range: o.cfg.Range, Exhaustion: o.exhaustion,
		Sources: []SourceReport{}, Destinations: []PairReport{}, Failures: []Failure{},
		SharedPorts: Shared{Peak: o.sharedPeak, Ports: o.sharedEver},
		Reuse: Reuse{Ports: o.portReuse, FourTuples: o.tupleReuseTotal(), Early: o.early, TWReuse: o.cfg.TWReuse,
			TWReuseDelayMS: o.cfg.TWReuseDelay.Milliseconds(),
			PortInterval:   summarize(o.portHist), TupleInterval: summarize(o.tupleHist)},
		TimeWaitPeak: max(o.twPeak, 0),
		TimeWait: TimeWait{Peak: o.twPeak, Last: o.twLast, TargetPeak: o.twTargetPeak, OthersPeak: o.twOthersPeak, Samples: o.samples,
			Skipped: o.skipped, SampleMaxUS: o.sampleMaxUS},
	}
	pref := "even"
	if o.cfg.Range.Lo%2 == 1 {
		pref = "odd"
	}
	for _, s := range o.order {
		sr := SourceReport{Address: s.addr.String(), Connections: s.connections, UniquePorts: s.unique, Reuse: s.reuse,
			Parity: Parity{Preferred: pref, SecondPass: s.secondPass}}
		if pref == "even" {
			sr.Parity.Even, sr.Parity.Odd = s.same, s.other
		} else {
			sr.Parity.Even, sr.Parity.Odd = s.other, s.same
		}
		r.Sources = append(r.Sources, sr)
	}
	for _, p := range o.pairSeq {
		pr := PairReport{Source: p.src.addr.String(), Destination: p.dst.String(), Capacity: o.cfg.Capacity,
			PeakConcurrent: p.peak, Connections: p.connections, FourTupleReuse: p.reuse, EarlyReuse: p.early}
		if o.cfg.Capacity > 0 {
			pr.Occupancy = float64(p.peak) / float64(o.cfg.Capacity)
		}
		r.Destinations = append(r.Destinations, pr)
	}
	for k, n := range o.failures {
		r.Failures = append(r.Failures, Failure{Syscall: k.syscall, Errno: k.errno, Count: n})
	}
	sort.Slice(r.Failures, func(i, j int) bool { return r.Failures[i].Count > r.Failures[j].Count })
	for i, h := range o.deciles {
		d := Decile{From: float64(i) / 10, To: float64(i+1) / 10, Count: h.TotalCount()}
		if d.Count > 0 {
			d.P50, d.P99 = h.ValueAtQuantile(50), h.ValueAtQuantile(99)
		}
		r.ConnectByOccupancy = append(r.ConnectByOccupancy, d)
	}
	if d := o.last.Sub(o.base); d.Valid {
		r.Kernel = make(map[string]uint64, NumCounters)
		for i, v := range d.V {
			r.Kernel[Counter(i).String()] = v
		}
	}
	r.Warnings = o.warnings(r)
	return r
}

func (o *Observatory) tupleReuseTotal() uint64 {
	var n uint64
	for _, p := range o.pairSeq {
		n += p.reuse
	}
	return n
}

func (o *Observatory) warnings(r *Report) []string {
	var w []string
	if o.outsideWindow > 0 {
		r.Range.Ignored = true
		w = append(w, fmt.Sprintf("the kernel ignored the per-socket port range %d-%d for %d connection(s): "+
			"IP_LOCAL_PORT_RANGE is clamped to ip_local_port_range and ignored when it lies wholly outside it",
			o.cfg.Range.Lo, o.cfg.Range.Hi, o.outsideWindow))
	}
	if o.early > 0 {
		switch {
		case o.cfg.Strategy.ConnectPicksPort():
			// connect() itself never takes over a TIME_WAIT younger than tcp_tw_reuse_delay (it
			// times the delay from the TIME_WAIT's own entry stamp). A 4-tuple free sooner had its
			// TIME_WAIT ended early: a RST arriving at a TIME_WAIT socket kills it (RFC 1337
			// "TIME-WAIT assassination", tcp_rfc1337=0). On a loaded host a delayed ACK from the
			// peer, overtaken by its FIN, draws exactly such a RST.
			w = append(w, fmt.Sprintf("%d connection(s) found a 4-tuple free that this run had left in TIME_WAIT less than "+
				"tcp_tw_reuse_delay (%s) before: connect() does not take a TIME_WAIT that young, so it was ended early, "+
				"most likely by a RST reaching it (RFC 1337 TIME-WAIT assassination, tcp_rfc1337=0); Tcp OutRsts counts %d RST(s) sent in this run",
				o.early, o.cfg.TWReuseDelay, r.Kernel["OutRsts"]))
		default:
			why := "SO_REUSEADDR with an explicit bind takes TIME_WAIT over at once, whatever tcp_tw_reuse says"
			if o.cfg.TWReuseDelay <= 0 {
				why = "tcp_tw_reuse does not apply here, yet the 4-tuples were reused"
			}
			w = append(w, fmt.Sprintf("%d connection(s) reused a 4-tuple still in TIME_WAIT sooner than tcp_tw_reuse_delay (%s): %s; "+
				"a peer that still holds the old connection may answer the new one with a RST",
				o.early, o.cfg.TWReuseDelay, why))
		}
	}
	if k := r.Kernel; k != nil && k["TCPTimeWaitOverflow"] > 0 {
		w = append(w, fmt.Sprintf("%d TIME_WAIT socket(s) were not kept because tcp_max_tw_buckets was full (TcpExt TCPTimeWaitOverflow): "+
			"those 4-tuples were free again at once", k["TCPTimeWaitOverflow"]))
	}
	if o.overBudget {
		w = append(w, fmt.Sprintf("the port tables reached their %d MiB budget: reuse intervals of some ports were not timed", tableBudget(o.cfg.Share)*8/1024))
	}
	if o.twOthersPeak > 0 {
		w = append(w, fmt.Sprintf("others' TIME_WAIT sockets sharing the port space: %d at most (connections of other processes "+
			"from the run's source addresses and port range to its destinations: other programs, or this run's other workers); "+
			"not counted in time_wait_peak, but the run cannot use their 4-tuples",
			o.twOthersPeak))
	}
	if o.sampleErr != nil {
		w = append(w, "TIME_WAIT could not be sampled: "+o.sampleErr.Error())
	}
	if o.skipped > 0 {
		w = append(w, fmt.Sprintf("%d TIME_WAIT sample(s) were skipped: one took %s, over a tenth of the interval",
			o.skipped, time.Duration(o.sampleMaxUS)*time.Microsecond))
	}
	return w
}

// Sample is one interval's port figures for the timeline.
type Sample struct {
	// TimeWait and TimeWaitTarget are -1 when not sampled this interval.
	TimeWait       int64
	TimeWaitTarget int64
	SampleUS       int64
	Kernel         Counters // deltas over the interval
	UniquePorts    int      // all sources, so far
	SharedNow      int
	PortReuse      uint64 // in the interval
	TupleReuse     uint64
	EarlyReuse     uint64
	// TimeWaitOthers counts other processes' TIME_WAIT sockets in the run's port space (as
	// TimeWait.OthersPeak), -1 when not sampled this interval.
	TimeWaitOthers int64
	// Occupancy is the highest share of its capacity any (source, destination) holds now;
	// PortFailures the port failures so far (EADDRNOTAVAIL, EADDRINUSE), Exhausted whether the
	// ports ran out at least once. The live metrics exporter reads them (loadgen/exporter).
	Occupancy    float64
	PortFailures uint64
	Exhausted    bool
}

// skipsAfter is how many intervals the TIME_WAIT sampling skips after a dump that took cost, so
// that it takes no more than a tenth of the time: none for a dump under a tenth of the interval;
// with a million connections in the namespace (two million sockets for the kernel to walk, 0.1-0.4
// s a dump), several. Every process of a run dumping every interval held a 2-core host's CPU.
// share is the observatory's Config.Share (0: 1): each of a run's N worker processes dumps the
// same namespace, so each keeps to a tenth of the time over N, and the run's dumps together to a
// tenth.
func skipsAfter(cost, interval time.Duration, share float64) int {
	if share > 0 && share < 1 {
		cost = time.Duration(float64(cost) / share)
	}
	if interval <= 0 || cost <= interval/10 {
		return 0
	}
	return int((cost*10+interval-1)/interval) - 1
}

// Sample reads the interval's kernel counters and, unless a previous sample was too costly (see
// skipsAfter), the TIME_WAIT sockets (one sock_diag dump with a TIME_WAIT state filter per address
// family). It is called once per interval, from one goroutine.
func (o *Observatory) Sample() Sample {
	c := ReadCounters(o.cfg.Proc)
	s := Sample{TimeWait: -1, TimeWaitTarget: -1, TimeWaitOthers: -1}
	o.mu.Lock()
	skip := o.skipLeft > 0 || o.cfg.NoSockDiag
	srcs := make(map[netip.Addr]bool, len(o.order))
	for _, src := range o.order {
		srcs[src.addr] = true
	}
	for _, p := range o.pairSeq[len(o.twPairs):] {
		o.twPairs[pairKey{p.src.addr, p.dst}] = p
	}
	o.mu.Unlock()
	if !skip {
		t0 := time.Now()
		var client, target, others int64
		// Only the 4-tuples this run used count: other programs' connections to the same
		// destinations leave TIME_WAIT too, and counting theirs made a peak of TIME_WAIT appear
		// before this run had closed anything. Theirs on a run source address and a port of the
		// run's range still take 4-tuples the run cannot use, so they are counted apart.
		count := func(k Socket) {
			switch {
			case o.dests[k.Local]:
				if o.ours(k.Remote, k.Local) {
					target++
				}
			case o.dests[k.Remote]:
				if o.ours(k.Local, k.Remote) {
					client++
				} else if srcs[k.Local.Addr()] && o.inRange(k.Local.Port()) {
					others++
				}
			}
		}
		// A dump walks the kernel's whole table of connections, every bucket of it (262,144 on
		// a machine with 24 GiB): 2.5 ms each interval however few sockets there are
		// (BenchmarkTimeWaitSampleNone), on a core a target on the same host may need. With no TIME_WAIT socket at all in the namespace
		// (sockstat's count: runs that hold their connections) every count is 0 without one.
		var err error
		if !noTimeWait(o.cfg.Proc) {
			if dumpStep != nil {
				dumpStep()
			}
			err = Dump(FamilyV4, 1<<StateTimeWait, count)
			if err == nil && o.hasV6() {
				err = Dump(FamilyV6, 1<<StateTimeWait, count)
			}
		}
		cost := time.Since(t0)
		s.SampleUS = cost.Microseconds()
		o.mu.Lock()
		if err != nil {
			o.sampleErr = err
		} else {
			s.TimeWait, s.TimeWaitTarget, s.TimeWaitOthers = client, target, others
			o.samples++
			o.twLast = client
			o.twPeak = max(o.twPeak, client)
			o.twTargetPeak = max(o.twTargetPeak, target)
			o.twOthersPeak = max(o.twOthersPeak, others)
		}
		o.sampleMaxUS = max(o.sampleMaxUS, s.SampleUS)
		o.skipLeft = skipsAfter(cost, o.cfg.Interval, o.cfg.Share)
		o.mu.Unlock()
	} else if !o.cfg.NoSockDiag {
		o.mu.Lock()
		o.skipped++
		o.skipLeft--
		o.mu.Unlock()
	}
	o.mu.Lock()
	s.Kernel = c.Sub(o.last)
	if c.Valid {
		o.last = c
	}
	for _, src := range o.order {
		s.UniquePorts += src.unique
	}
	s.SharedNow = o.sharedNow
	for _, p := range o.pairSeq {
		s.Occupancy = max(s.Occupancy, o.occupancy(p))
	}
	for _, n := range o.failures {
		s.PortFailures += n
	}
	s.Exhausted = o.exhaustion != nil
	s.PortReuse, s.TupleReuse, s.EarlyReuse = o.ivPortReuse, o.ivTuple, o.ivEarly
	o.ivPortReuse, o.ivTuple, o.ivEarly = 0, 0, 0
	o.mu.Unlock()
	return s
}

// inRange reports whether port is in the range the run draws its ports from (any port when the
// range is unknown).
func (o *Observatory) inRange(port uint16) bool {
	r := o.cfg.Range
	return r.Size <= 0 || (int(port) >= r.Lo && int(port) <= r.Hi)
}

// ours reports whether this run used local port of src toward dst. A 4-tuple this run used and
// closed without TIME_WAIT (RST) that another program then took and left in TIME_WAIT would count
// as this run's: connect() would have to pick that very port toward that very destination.
func (o *Observatory) ours(src, dst netip.AddrPort) bool {
	p := o.twPairs[pairKey{src.Addr(), dst}]
	if p == nil {
		return false
	}
	port := src.Port()
	return p.used[port>>6].Load()&(1<<(port&63)) != 0
}

func (o *Observatory) hasV6() bool {
	return slices.ContainsFunc(o.cfg.Destinations, func(d netip.AddrPort) bool { return d.Addr().Is6() })
}
