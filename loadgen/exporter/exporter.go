// Package exporter serves a running plan's figures as Prometheus metrics (client_golang), for
// dashboards that watch a long run live. It only reads interval snapshots; results files stay the
// record of a run.
package exporter

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/portstorm/portstorm/loadgen/memory"
	"github.com/portstorm/portstorm/loadgen/metrics"
	"github.com/portstorm/portstorm/loadgen/ports"
	"github.com/portstorm/portstorm/loadgen/report"
)

// latencyBuckets are the upper bounds, in seconds, of the exported latency histograms: from 50 µs
// (a loopback connect) to 10 s (connect timeouts), about three per decade.
var latencyBuckets = []float64{
	0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
	0.1, 0.25, 0.5, 1, 2.5, 5, 10,
}

// quantiles are the latency quantiles exported as a summary (portstorm_latency_quantiles_seconds),
// exact from the run's HdrHistograms where the histogram's buckets are coarse.
var quantiles = []float64{0.5, 0.9, 0.99, 0.999}

// Exporter keeps a run's running totals and renders them on every scrape and push. Observe,
// ObservePorts, Finish, scrapes and pushes may run concurrently.
type Exporter struct {
	mu      sync.Mutex
	name    string
	total   *metrics.Snapshot
	stage   int
	elapsed time.Duration
	ports   portFigures
	// memory is summary.json's memory (nil until the run is over, and when it was not measured).
	memory *memory.Report
	// finished is set by Finish: the run is over and verdict is its verdict.
	finished bool
	verdict  string
	reg      *prometheus.Registry
	// pushReg renders the same figures without the plan label, which a push carries as a grouping
	// label instead (the Pushgateway refuses a metric holding a grouping label of its own).
	pushReg *prometheus.Registry
	pushes  *pushes
}

// portFigures are the port observatory's figures as the exporter shows them: from each interval's
// sample during the run, then from summary.json's ports report once the run is over.
type portFigures struct {
	seen bool
	// tw, twPeak: TIME_WAIT sockets by side (ours, target, others); -1 while not sampled.
	tw, twPeak             [3]int64
	unique                 int
	occupancy, occPeak     float64
	failures               uint64
	exhausted              bool
	reusePorts, reuseTuple uint64
	reuseEarly             uint64
}

// twSides are the label values of the TIME_WAIT series, in portFigures' order.
var twSides = [3]string{"ours", "target", "others"}

// collector renders an Exporter with one set of constant labels.
type collector struct {
	e *Exporter

	attempted, established, failed, dropped, closed *prometheus.Desc
	active, peak, stageDesc, elapsedDesc            *prometheus.Desc
	outcomes, bytes, latency, quantile              *prometheus.Desc
	requests, requestsOffered, requestsWritten      *prometheus.Desc
	shortfall                                       *prometheus.Desc
	timeWait, timeWaitPeak, unique                  *prometheus.Desc
	occupancy, occupancyPeak, exhausted             *prometheus.Desc
	exhaustion, reuse                               *prometheus.Desc
	memConns, memSlab, memRSS                       *prometheus.Desc
	finished, verdict                               *prometheus.Desc
}

func newCollector(e *Exporter, l prometheus.Labels) *collector {
	d := func(n, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("portstorm_"+n, help, labels, l)
	}
	return &collector{
		e:           e,
		attempted:   d("connections_attempted_total", "Connections attempted."),
		established: d("connections_established_total", "Connections established."),
		failed:      d("connections_failed_total", "Connections that failed before being established."),
		dropped:     d("connections_dropped_total", "Arrivals dropped for want of a free slot (on_saturation: drop)."),
		closed:      d("connections_closed_total", "Established connections that ended."),
		active:      d("connections_active", "Established connections open at the end of the last interval."),
		peak:        d("connections_peak", "Most established connections open at once so far."),
		stageDesc:   d("stage", "The plan stage running (counted from 0)."),
		elapsedDesc: d("elapsed_seconds", "Run time at the end of the last interval."),
		outcomes:    d("outcomes_total", "Connections by how they ended.", "outcome"),
		bytes:       d("bytes_total", "Request bytes written (out) and read back (in).", "direction"),
		latency:     d("latency_seconds", "Latency histograms (connect, connect_intended, schedule_lag, slot_wait, rtt, lifetime, first_byte, tls_handshake, request_intended, request_lag, window_wait; defined in docs/measurements.md).", "latency"),
		quantile: d("latency_quantiles_seconds",
			"Latency quantiles (0.5, 0.9, 0.99, 0.999) of the run so far, exact from its HdrHistograms (a summary); only latencies with samples.", "latency"),
		requests: d("requests_total", "Requests (messages) written on the connections, by how each ended.", "outcome"),
		requestsOffered: d("requests_offered_total",
			"Requests the schedule meant to send: under a request rate those whose intended send time came, sent or not; unrated, those written."),
		requestsWritten: d("requests_written_total", "Requests (messages) written on the connections."),
		shortfall: d("requests_shortfall_ratio",
			"1 - written/offered: how far the run fell short of its request rate (0 unrated or before anything was offered)."),
		timeWait: d("time_wait_sockets",
			"TIME_WAIT sockets at the last sample: ours (client side of this run's 4-tuples), target (the destinations' side of them), others (other processes' in the run's port space); docs/ports.md.", "side"),
		timeWaitPeak:  d("time_wait_peak_sockets", "Most TIME_WAIT sockets at one sample so far, by side as portstorm_time_wait_sockets.", "side"),
		unique:        d("ports_unique", "Local ports used so far, all source addresses."),
		occupancy:     d("ports_occupancy_ratio", "Highest share of its port capacity any (source, destination) pair holds now (0 to 1)."),
		occupancyPeak: d("ports_occupancy_peak_ratio", "Highest share of its port capacity any (source, destination) pair held at once (0 to 1)."),
		exhausted:     d("ports_exhausted", "1 once the local ports ran out (the first EADDRNOTAVAIL or EADDRINUSE), else 0."),
		exhaustion:    d("ports_exhaustion_events_total", "Connects and binds that failed for want of a local port (EADDRNOTAVAIL, EADDRINUSE; summary.json ports.failures)."),
		reuse: d("port_reuse_total",
			"Reuse of local ports: port (a port used again), four_tuple (a 4-tuple used again), early (a TIME_WAIT 4-tuple taken over sooner than tcp_tw_reuse_delay).", "kind"),
		memConns: d("memory_plateau_connections",
			"Connections held at the plateau when the memory per connection was measured (summary.json memory.connections); only once measured."),
		memSlab: d("memory_kernel_slab_per_connection_bytes",
			"Growth of the kernel's slab (/proc/meminfo Slab, the whole host's) from before the first connection to the plateau, per connection held (memory.kernel.per_connection); only once measured."),
		memRSS: d("memory_rss_per_connection_bytes",
			"Growth of the resident set of the generator's processes or the built-in target's own from before the first connection to the plateau, per connection held (memory.generator/target.per_connection); only once measured.", "process"),
		finished: d("run_finished", "1 once the run is over (the endpoint lingers or the push is the last), else 0."),
		verdict:  d("verdict", "1 for the run's verdict (pass, fail, no_thresholds, error) once it is over.", "verdict"),
	}
}

// New returns an exporter for the plan called name (the "plan" label of every metric).
func New(name string) *Exporter {
	e := &Exporter{
		name:    name,
		total:   metrics.NewSnapshot(),
		reg:     prometheus.NewRegistry(),
		pushReg: prometheus.NewRegistry(),
	}
	e.reg.MustRegister(newCollector(e, prometheus.Labels{"plan": name}))
	e.pushReg.MustRegister(newCollector(e, nil))
	return e
}

// Observe adds one interval snapshot to the running totals.
func (e *Exporter) Observe(s *metrics.Snapshot) {
	e.mu.Lock()
	defer e.mu.Unlock()
	// Snapshots come from one run with portstorm's histogram bounds, so Add cannot refuse them; if
	// it ever did, the totals would stay as they were and the scrape shows it not moving.
	_ = e.total.Add(s)
	e.stage = s.Stage
	e.elapsed = time.Duration(s.EndUS) * time.Microsecond
	if e.pushes != nil {
		e.pushes.interval(e.elapsed)
	}
}

// ObservePorts takes the port observatory's sample of one interval (coordinator.Options.OnPorts).
func (e *Exporter) ObservePorts(s *ports.Sample) {
	e.mu.Lock()
	defer e.mu.Unlock()
	f := &e.ports
	if !f.seen {
		f.seen = true
		f.tw, f.twPeak = [3]int64{-1, -1, -1}, [3]int64{-1, -1, -1}
	}
	for i, v := range [3]int64{s.TimeWait, s.TimeWaitTarget, s.TimeWaitOthers} {
		if v >= 0 { // -1: not sampled this interval; the last sample stands
			f.tw[i] = v
			f.twPeak[i] = max(f.twPeak[i], v)
		}
	}
	f.unique = s.UniquePorts
	f.occupancy = s.Occupancy
	f.occPeak = max(f.occPeak, s.Occupancy)
	f.failures = s.PortFailures
	f.exhausted = f.exhausted || s.Exhausted
	f.reusePorts += s.PortReuse
	f.reuseTuple += s.TupleReuse
	f.reuseEarly += s.EarlyReuse
}

// Finish takes the run's summary: its port report's figures replace the live ones (for a run of
// worker processes, ports_by_host's: counts and peaks summed over the workers, occupancy the
// highest; not the others' TIME_WAIT of several reports from one host, where each worker counts
// the other workers' sockets among the others'), its memory per connection is shown when it was measured, the run is marked finished
// and its verdict shown. The counters and histograms stay the snapshots' sums, which the summary
// is built from.
func (e *Exporter) Finish(s *report.Summary) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.finished = true
	if s == nil {
		return
	}
	e.verdict = s.Verdict
	e.memory = s.Memory
	reps := []*ports.Report{s.Ports}
	// shared: several reports of one host (worker processes), whose others' TIME_WAIT cannot be
	// told from one another's.
	shared := false
	if s.Ports == nil {
		reps = reps[:0]
		hosts := map[string]bool{}
		for _, h := range s.PortsByHost {
			if h.Ports != nil {
				reps = append(reps, h.Ports)
				shared = shared || hosts[h.Host]
				hosts[h.Host] = true
			}
		}
	}
	if len(reps) == 0 {
		return
	}
	f := &e.ports
	*f = portFigures{seen: true, tw: [3]int64{-1, -1, -1}, twPeak: [3]int64{-1, -1, -1}}
	add := func(to *int64, v int64) {
		if v >= 0 {
			*to = max(*to, 0) + v
		}
	}
	for _, r := range reps {
		add(&f.tw[0], r.TimeWait.Last)
		for i, v := range [3]int64{r.TimeWait.Peak, r.TimeWait.TargetPeak, r.TimeWait.OthersPeak} {
			if i == 2 && shared {
				continue
			}
			add(&f.twPeak[i], v)
		}
		for _, src := range r.Sources {
			f.unique += src.UniquePorts
		}
		for _, d := range r.Destinations {
			f.occPeak = max(f.occPeak, d.Occupancy)
		}
		for _, fl := range r.Failures {
			f.failures += fl.Count
		}
		f.exhausted = f.exhausted || r.Exhaustion != nil
		f.reusePorts += r.Reuse.Ports
		f.reuseTuple += r.Reuse.FourTuples
		f.reuseEarly += r.Reuse.Early
	}
}

// Handler serves the metrics in the Prometheus exposition format.
func (e *Exporter) Handler() http.Handler {
	return promhttp.HandlerFor(e.reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

// Describe implements prometheus.Collector.
func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.attempted, c.established, c.failed, c.dropped, c.closed,
		c.active, c.peak, c.stageDesc, c.elapsedDesc, c.outcomes, c.bytes, c.latency, c.quantile,
		c.requests, c.requestsOffered, c.requestsWritten, c.shortfall, c.timeWait, c.timeWaitPeak,
		c.unique, c.occupancy, c.occupancyPeak, c.exhausted, c.exhaustion, c.reuse,
		c.memConns, c.memSlab, c.memRSS, c.finished, c.verdict} {
		ch <- d
	}
}

// Collect implements prometheus.Collector: it renders the totals as they stand.
func (c *collector) Collect(ch chan<- prometheus.Metric) {
	e := c.e
	e.mu.Lock()
	defer e.mu.Unlock()
	t := e.total
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter(c.attempted, t.Attempted)
	counter(c.established, t.Established)
	counter(c.failed, t.Failed)
	counter(c.dropped, t.Dropped)
	counter(c.closed, t.Closed)
	gauge(c.active, float64(t.Active))
	gauge(c.peak, float64(t.PeakActive))
	gauge(c.stageDesc, float64(e.stage))
	gauge(c.elapsedDesc, e.elapsed.Seconds())
	for o := range metrics.NumOutcomes {
		counter(c.outcomes, t.Outcomes[o], o.String())
	}
	for o := range metrics.NumOutcomes {
		counter(c.requests, t.RequestOutcomes[o], o.String())
	}
	counter(c.requestsOffered, t.RequestsOffered)
	counter(c.requestsWritten, t.Requests)
	short := 0.0
	if t.RequestsOffered > 0 && t.Requests < t.RequestsOffered {
		short = float64(t.RequestsOffered-t.Requests) / float64(t.RequestsOffered)
	}
	gauge(c.shortfall, short)
	counter(c.bytes, t.BytesOut, "out")
	counter(c.bytes, t.BytesIn, "in")
	for l, h := range t.Hist {
		if h == nil {
			h = metrics.NewHistogram()
		}
		name := metrics.Latency(l).String()
		buckets := make(map[float64]uint64, len(latencyBuckets))
		for _, bar := range h.Distribution() {
			// A bar's values are microseconds in [From, To]; it counts under every bound at or above To.
			for _, b := range latencyBuckets {
				if float64(bar.To) <= b*1e6 {
					buckets[b] += uint64(bar.Count)
				}
			}
		}
		for _, b := range latencyBuckets {
			if _, ok := buckets[b]; !ok {
				buckets[b] = 0
			}
		}
		sum := h.Mean() * float64(h.TotalCount()) / 1e6
		ch <- prometheus.MustNewConstHistogram(c.latency, uint64(h.TotalCount()), sum, buckets, name)
		if h.TotalCount() > 0 {
			qs := make(map[float64]float64, len(quantiles))
			for _, q := range quantiles {
				qs[q] = float64(h.ValueAtQuantile(q*100)) / 1e6
			}
			ch <- prometheus.MustNewConstSummary(c.quantile, uint64(h.TotalCount()), sum, qs, name)
		}
	}
	if f := &e.ports; f.seen {
		for i, side := range twSides {
			if f.tw[i] >= 0 {
				gauge(c.timeWait, float64(f.tw[i]), side)
			}
			if f.twPeak[i] >= 0 {
				gauge(c.timeWaitPeak, float64(f.twPeak[i]), side)
			}
		}
		gauge(c.unique, float64(f.unique))
		if !e.finished {
			gauge(c.occupancy, f.occupancy)
		}
		gauge(c.occupancyPeak, f.occPeak)
		exhausted := 0.0
		if f.exhausted {
			exhausted = 1
		}
		gauge(c.exhausted, exhausted)
		counter(c.exhaustion, f.failures)
		counter(c.reuse, f.reusePorts, "port")
		counter(c.reuse, f.reuseTuple, "four_tuple")
		counter(c.reuse, f.reuseEarly, "early")
	}
	if m := e.memory; m != nil {
		gauge(c.memConns, float64(m.Connections))
		if m.Kernel != nil {
			gauge(c.memSlab, float64(m.Kernel.PerConnection))
		}
		if m.Generator != nil {
			gauge(c.memRSS, float64(m.Generator.PerConnection), "generator")
		}
		if m.Target != nil {
			gauge(c.memRSS, float64(m.Target.PerConnection), "target")
		}
	}
	finished := 0.0
	if e.finished {
		finished = 1
		if e.verdict != "" {
			gauge(c.verdict, 1, e.verdict)
		}
	}
	gauge(c.finished, finished)
}

// ErrRemote is returned for a listen address outside loopback without the opt-in.
var ErrRemote = errors.New("the metrics endpoint listens on loopback unless --metrics-allow-remote is given")

// CheckAddr checks a listen address: host:port with a loopback IP or "localhost", unless
// allowRemote. An empty host (":9464") means every interface, so it is remote.
func CheckAddr(addr string, allowRemote bool) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("--metrics-listen %q: want host:port, like 127.0.0.1:9464: %w", addr, err)
	}
	if port == "" {
		return fmt.Errorf("--metrics-listen %q: no port", addr)
	}
	if allowRemote {
		return nil
	}
	if strings.EqualFold(host, "localhost") {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("--metrics-listen %q: %w", addr, ErrRemote)
}

// Server is a running metrics endpoint.
type Server struct {
	srv   *http.Server
	l     net.Listener
	done  chan error
	once  sync.Once
	close error
}

// Serve checks addr, listens on it and serves /metrics in the background until Close.
func Serve(addr string, allowRemote bool, h http.Handler) (*Server, error) {
	if err := CheckAddr(addr, allowRemote); err != nil {
		return nil, err
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--metrics-listen %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", h)
	s := &Server{l: l, done: make(chan error, 1), srv: &http.Server{
		Handler: mux, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second,
		WriteTimeout: 30 * time.Second, IdleTimeout: 30 * time.Second, MaxHeaderBytes: 16 << 10,
	}}
	go func() { s.done <- s.srv.Serve(l) }()
	return s, nil
}

// Addr is the address the endpoint listens on (with the port chosen, for ":0").
func (s *Server) Addr() string { return s.l.Addr().String() }

// Close stops the endpoint, letting a scrape in progress finish for up to a second. Later calls
// return the first one's result.
func (s *Server) Close() error {
	s.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		err := s.srv.Shutdown(ctx)
		if err != nil {
			s.srv.Close()
		}
		if serr := <-s.done; !errors.Is(serr, http.ErrServerClosed) && err == nil {
			err = serr
		}
		s.close = err
	})
	return s.close
}
