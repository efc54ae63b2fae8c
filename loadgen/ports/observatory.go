// Package ports is the port observatory (docs/ports.md): which local port every connection got, per
// source address and destination, reuse and its intervals, parity, exhaustion and TIME_WAIT.
package ports

import (
	"errors"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	hdr "github.com/HdrHistogram/hdrhistogram-go"

	"github.com/portstorm/portstorm/loadgen/dial"
	"github.com/portstorm/portstorm/loadgen/metrics"
	"github.com/portstorm/portstorm/loadgen/platform"
)

// Config describes the run the observatory watches.
type Config struct {
	Strategy dial.Strategy
	// Range is the effective port range and what reduced it (from the preflight).
	Range Range
	// Capacity is how many connections one (source, destination) pair can hold at once; under the
	// bind strategy it is per source address, shared by every destination.
	Capacity int
	// TWReuseDelay is tcp_tw_reuse_delay when TIME_WAIT reuse applies to the destinations
	// (tcp_tw_reuse 1, or 2 on loopback); 0 when it does not.
	TWReuseDelay time.Duration
	// TWReuse is tcp_tw_reuse (-1 unknown).
	TWReuse int
	// ClientHoldsTW is true for the close modes where the client closes first (fin, half).
	ClientHoldsTW bool
	// Destinations are the run's targets, to tell client TIME_WAIT from the target's.
	Destinations []netip.AddrPort
	// Interval is the snapshot interval: a TIME_WAIT sample that costs more than a tenth of it makes
	// the next ones be skipped, so that sampling takes a tenth of the time at most (skipsAfter).
	Interval time.Duration
	// Proc is the proc file system root ("/proc").
	Proc string
	// NoSockDiag turns the TIME_WAIT sampling off (the counters are still read).
	NoSockDiag bool
	// Share is the part of the run's table budget (64 MiB) this observatory may take: 1/N in each
	// of a run's N worker processes, so that a run's tables stay within the budget however many
	// processes it has (53 workers of a million connections took 64 MiB each, 3.4 GB). 0 means 1.
	Share float64
}

// memoryBudget caps the per-port tables allocated lazily in 1024-port chunks (8 KiB each): 64 MiB.
// Beyond it, reuse intervals of new ports are not timed, and the report says so.
const memoryBudget = 8192

// minTableBudget is the fewest chunks an observatory gets however small its share: 2 MiB.
const minTableBudget = 256

// tableBudget is the chunks of an observatory with share of the run's budget (0: all of it).
func tableBudget(share float64) int {
	if share <= 0 || share >= 1 {
		return memoryBudget
	}
	return max(int(memoryBudget*share), minTableBudget)
}

// Observatory records every connection's local port. It is safe for concurrent use; per connection
// it takes one lock, does two map look-ups and allocates nothing once a port's table exists.
type Observatory struct {
	cfg   Config
	start time.Time

	mu      sync.Mutex
	sources map[netip.Addr]*source
	order   []*source
	pairs   map[pairKey]*pair
	pairSeq []*pair
	// lastPair remembers a pair per destination, to place a failure whose source the kernel picks.
	lastPair   map[netip.AddrPort]*pair
	budget     int
	overBudget bool

	sharedNow, sharedPeak int
	sharedEver            int
	portReuse             uint64
	early                 uint64
	ivPortReuse, ivTuple  uint64
	ivEarly               uint64
	portHist, tupleHist   *hdr.Histogram
	deciles               [10]*hdr.Histogram
	exhaustion            *Exhaustion
	open                  int64 // established connections recorded and not yet closed, all pairs
	failures              map[failKey]uint64
	outsideWindow         uint64

	// sampling state (only the snapshot goroutine touches it, under mu for the report)
	base, last     Counters
	dests          map[netip.AddrPort]bool
	twPeak, twLast int64
	twTargetPeak   int64
	twOthersPeak   int64
	// twPairs is the sampler's own copy of the pairs, to match TIME_WAIT sockets to the 4-tuples
	// this run used without holding mu through a dump.
	twPairs          map[pairKey]*pair
	samples, skipped int
	sampleMaxUS      int64
	skipLeft         int // intervals the TIME_WAIT sampling still skips (skipsAfter)
	sampleErr        error
}

type failKey struct{ syscall, errno string }

type pairKey struct {
	src netip.Addr
	dst netip.AddrPort
}

type source struct {
	addr        netip.Addr
	used        [1024]uint64 // bit p: port p was used in the run
	sharedEver  [1024]uint64
	unique      int
	openPorts   int               // ports in use now: dropped by Closing, before close(2) frees them
	open        int               // connections open now, as pair.open: dropped by Closed
	refs        [64]*[1024]uint16 // open connections per port
	released    [64]*[1024]int64  // last release per port: µs since start + 1
	connections uint64
	reuse       uint64
	same, other uint64 // ports of the preferred parity and of the other, chosen by connect()
	secondPass  *Pass
}

type pair struct {
	src        *source
	dst        netip.AddrPort
	open, peak int
	// live is open, dropped by Closing instead of Closed: the peak counts from it, so that a
	// connection which took a port its closing predecessor freed does not count both at once.
	live        int
	connections uint64
	released    [64]*[1024]int64 // last release per port toward dst: µs+1, negative when TIME_WAIT stayed
	reuse       uint64
	early       uint64
	// used has bit p set once local port p was used toward dst: with src and dst it names every
	// 4-tuple of the run, so that a TIME_WAIT socket is counted only when it is this run's. 8 KiB a
	// pair, outside the timing budget: a TIME_WAIT count must not lose sockets once the budget is
	// spent. Opened sets bits under mu; the sampler reads them without it, hence atomics.
	used [1024]atomic.Uint64
}

// Conn is what Opened returns and Closed takes back: the connection's place in the tables.
type Conn struct {
	p    *pair
	port uint16
	left bool // Closing took its port out of the tables
}

// New returns an observatory for the run described by cfg.
func New(cfg Config) *Observatory {
	if cfg.Proc == "" {
		cfg.Proc = "/proc"
	}
	if cfg.Interval <= 0 {
		cfg.Interval = time.Second
	}
	if !platform.Linux {
		cfg.NoSockDiag = true // sock_diag is Linux's: TIME_WAIT is not sampled (-1)
	}
	o := &Observatory{
		cfg:       cfg,
		start:     time.Now(),
		sources:   make(map[netip.Addr]*source),
		pairs:     make(map[pairKey]*pair),
		lastPair:  make(map[netip.AddrPort]*pair),
		budget:    tableBudget(cfg.Share),
		portHist:  metrics.NewHistogram(),
		tupleHist: metrics.NewHistogram(),
		failures:  make(map[failKey]uint64),
		dests:     make(map[netip.AddrPort]bool),
		twPairs:   make(map[pairKey]*pair),
		twPeak:    -1, twLast: -1, twTargetPeak: -1, twOthersPeak: -1,
	}
	for i := range o.deciles {
		o.deciles[i] = metrics.NewHistogram()
	}
	for _, d := range cfg.Destinations {
		o.dests[d] = true
	}
	return o
}

// Baseline reads the kernel counters the run's deltas count from. Call it before the run starts.
func (o *Observatory) Baseline() {
	c := ReadCounters(o.cfg.Proc)
	o.mu.Lock()
	o.base, o.last = c, c
	o.mu.Unlock()
}

// Begin sets the instant offsets count from (the engine's start), so that times here and in the
// outcome counters agree.
func (o *Observatory) Begin(start time.Time) {
	o.mu.Lock()
	o.start = start
	o.mu.Unlock()
}

func (o *Observatory) us(t time.Time) int64 { return t.Sub(o.start).Microseconds() }

func (o *Observatory) source(a netip.Addr) *source {
	s := o.sources[a]
	if s == nil {
		s = &source{addr: a}
		o.sources[a] = s
		o.order = append(o.order, s)
	}
	return s
}

func (o *Observatory) pair(src netip.Addr, dst netip.AddrPort) *pair {
	k := pairKey{src, dst}
	p := o.pairs[k]
	if p == nil {
		p = &pair{src: o.source(src), dst: dst}
		o.pairs[k] = p
		o.pairSeq = append(o.pairSeq, p)
	}
	o.lastPair[dst] = p
	return p
}

// chunk returns the table chunk for port, allocating it within the budget (nil past it).
func chunk[T any](tab *[64]*[1024]T, port uint16, o *Observatory) *[1024]T {
	c := tab[port>>10]
	if c == nil {
		if o.budget <= 0 {
			o.overBudget = true
			return nil
		}
		o.budget--
		c = new([1024]T)
		tab[port>>10] = c
	}
	return c
}

// occupancy is the share of the capacity in use before a connection is added.
func (o *Observatory) occupancy(p *pair) float64 {
	if o.cfg.Capacity <= 0 {
		return 0
	}
	n := p.open
	if o.cfg.Strategy == dial.StrategyBind {
		n = p.src.open
	}
	return float64(n) / float64(o.cfg.Capacity)
}

// Opened records an established connection: local is its local address and port (the invalid
// AddrPort when unknown: nothing is recorded), start when connect() began, connect how long it took.
//
// Reuse intervals run from the moment close() was called on the earlier connection to the moment
// connect() returned on this one: both clocks are read on the safe side of the kernel's own
// (TIME_WAIT begins after close() is called; the reuse check happens before connect() returns), so
// an interval never reads shorter than the kernel's, and "early" is never a scheduling artefact.
func (o *Observatory) Opened(dst dial.Destination, local netip.AddrPort, start time.Time, connect time.Duration) Conn {
	if !local.IsValid() {
		return Conn{}
	}
	ip, port := local.Addr().Unmap(), local.Port()
	t := o.us(start.Add(connect)) + 1 // when connect() returned
	o.mu.Lock()
	defer o.mu.Unlock()
	p := o.pair(ip.Unmap(), dst.AddrPort)
	s := p.src
	occ := o.occupancy(p)
	d := min(int(occ*10), 9)
	recordUS(o.deciles[d], connect.Microseconds())

	s.connections++
	p.connections++
	w, bit := port>>6, uint64(1)<<(port&63)
	if p.used[w].Load()&bit == 0 {
		p.used[w].Or(bit)
	}
	if s.used[w]&bit == 0 {
		s.used[w] |= bit
		s.unique++
	} else {
		s.reuse++
		o.portReuse++
		o.ivPortReuse++
	}
	if c := s.released[port>>10]; c != nil {
		if r := c[port&1023]; r != 0 {
			recordUS(o.portHist, t-r)
		}
	}
	startUS := o.us(start)
	if c := p.released[port>>10]; c != nil {
		if r := c[port&1023]; r != 0 {
			tw := r < 0
			if tw {
				r = -r
			}
			iv := t - r
			recordUS(o.tupleHist, iv)
			p.reuse++
			o.ivTuple++
			// Early: TIME_WAIT was taken over sooner than tcp_tw_reuse_delay allows (SO_REUSEADDR does
			// that, within micro- to milliseconds). The kernel times the delay from its own stamps,
			// which this side can only approach from user space: a tenth of the delay is slack.
			if tw && (o.cfg.TWReuseDelay <= 0 || iv < o.cfg.TWReuseDelay.Microseconds()*9/10) {
				p.early++
				o.early++
				o.ivEarly++
			}
		}
	}
	if o.cfg.Strategy.ConnectPicksPort() && o.cfg.Range.Effective > 0 {
		if uint16(port)%2 == uint16(o.cfg.Range.Lo)%2 {
			s.same++
		} else {
			s.other++
			// The per-socket range has no parity rule (docs/ports.md §Binding): no second pass to date there.
			if s.secondPass == nil && o.cfg.Strategy != dial.StrategyRange {
				s.secondPass = &Pass{AtS: float64(startUS) / 1e6, Occupancy: occ, Destination: dst.AddrPort.String()}
			}
		}
	}
	if o.cfg.Strategy == dial.StrategyRange && (int(port) < o.cfg.Range.Lo || int(port) > o.cfg.Range.Hi) {
		o.outsideWindow++
	}
	if refs := chunk(&s.refs, port, o); refs != nil {
		refs[port&1023]++
		switch refs[port&1023] {
		case 1:
			s.openPorts++
		case 2:
			o.sharedNow++
			o.sharedPeak = max(o.sharedPeak, o.sharedNow)
			if s.sharedEver[w]&bit == 0 {
				s.sharedEver[w] |= bit
				o.sharedEver++
			}
		}
	}
	p.open++
	s.open++
	o.open++
	p.live++
	p.peak = max(p.peak, p.live)
	// A connect that began before the first failing one returned, recorded only after it: it was in
	// flight when the failure was recorded, and (with nothing closing) took its port before the
	// kernel found none left. Count it in, so the record shows the state at that instant.
	if x := o.exhaustion; x != nil && startUS <= x.atUS {
		o.fixExhaustion(p, +1)
	}
	return Conn{p: p, port: port}
}

// Closing takes a connection's port out of use, just before the close(2) that frees it: the port's
// sharing and the destination's peak then never count it together with a connection that takes
// the port next. Told after the close, the observatory heard of that connection first whenever the
// closing goroutine was descheduled between the two (on a loaded machine, at a stop that resets the
// holds while connects are in flight): a bind run, whose ports cannot be shared, reported shared
// ports. Closed, which must still follow, does the rest; without Closing it does this too.
func (o *Observatory) Closing(c *Conn) {
	if c.p == nil || c.left {
		return
	}
	o.mu.Lock()
	o.leave(*c)
	o.mu.Unlock()
	c.left = true
}

// leave drops c's port reference and live count. The caller holds mu.
func (o *Observatory) leave(c Conn) {
	p, s := c.p, c.p.src
	p.live--
	if refs := s.refs[c.port>>10]; refs != nil && refs[c.port&1023] > 0 {
		refs[c.port&1023]--
		switch refs[c.port&1023] {
		case 0:
			s.openPorts--
		case 1:
			o.sharedNow--
		}
	}
}

// Closed records the end of a connection: close() was called at closing and returned at closed.
// clientTW says whether this end was left in TIME_WAIT (it closed first with a FIN).
func (o *Observatory) Closed(c Conn, closing, closed time.Time, clientTW bool) {
	p := c.p
	if p == nil {
		return
	}
	t := o.us(closing) + 1
	o.mu.Lock()
	defer o.mu.Unlock()
	s := p.src
	if !c.left {
		o.leave(c)
	}
	if ch := chunk(&s.released, c.port, o); ch != nil {
		ch[c.port&1023] = t
	}
	if ch := chunk(&p.released, c.port, o); ch != nil {
		if clientTW {
			ch[c.port&1023] = -t
		} else {
			ch[c.port&1023] = t
		}
	}
	p.open--
	s.open--
	o.open--
	// Closed before the failure but recorded after it: the record counted it as open.
	if x := o.exhaustion; x != nil && o.us(closed) < x.atUS {
		o.fixExhaustion(p, -1)
	}
}

// fixExhaustion moves the exhaustion record by one connection of pair p that it missed.
func (o *Observatory) fixExhaustion(p *pair, d int) {
	x := o.exhaustion
	x.Concurrency += int64(d)
	if x.pair == p || (o.cfg.Strategy == dial.StrategyBind && x.pair != nil && x.pair.src == p.src) {
		x.Open += d
		if o.cfg.Capacity > 0 {
			x.Occupancy = float64(x.Open) / float64(o.cfg.Capacity)
		}
	}
}

// Failed records a connect that failed; the first EADDRNOTAVAIL or EADDRINUSE is the exhaustion.
// The concurrency it records is the observatory's own count of open connections, kept under the
// same lock as the per-destination counts, so the two agree (the engine's counter lags: it counts a
// connection after the observatory does).
func (o *Observatory) Failed(dst dial.Destination, err error, at time.Time) {
	var errno string
	switch {
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		errno = "EADDRNOTAVAIL"
	case errors.Is(err, syscall.EADDRINUSE):
		errno = "EADDRINUSE"
	default:
		return
	}
	sc := dial.Syscall(err)
	o.mu.Lock()
	defer o.mu.Unlock()
	o.failures[failKey{sc, errno}]++
	if o.exhaustion != nil && o.exhaustion.atUS <= o.us(at) {
		return
	}
	x := &Exhaustion{atUS: o.us(at), AtS: float64(o.us(at)) / 1e6, Concurrency: o.open, Errno: errno, Syscall: sc,
		Destination: dst.AddrPort.String()}
	var p *pair
	if dst.Source.IsValid() {
		p = o.pairs[pairKey{dst.Source, dst.AddrPort}]
		x.Source = dst.Source.String()
	} else if p = o.lastPair[dst.AddrPort]; p != nil {
		x.Source = p.src.addr.String()
	}
	x.pair = p
	if p != nil {
		x.Occupancy = o.occupancy(p)
		x.Open = p.open
		if o.cfg.Strategy == dial.StrategyBind {
			x.Open = p.src.open
		}
	}
	o.exhaustion = x
}

func recordUS(h *hdr.Histogram, us int64) {
	_ = h.RecordValue(min(max(us, metrics.HistLowest), metrics.HistHighest))
}
