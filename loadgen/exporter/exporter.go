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

	"github.com/portstorm/portstorm/loadgen/metrics"
)

// latencyBuckets are the upper bounds, in seconds, of the exported latency histograms: from 50 µs
// (a loopback connect) to 10 s (connect timeouts), about three per decade.
var latencyBuckets = []float64{
	0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
	0.1, 0.25, 0.5, 1, 2.5, 5, 10,
}

// Exporter keeps a run's running totals and renders them on every scrape. Observe and scrapes may
// run concurrently.
type Exporter struct {
	mu      sync.Mutex
	total   *metrics.Snapshot
	stage   int
	elapsed time.Duration
	reg     *prometheus.Registry

	attempted, established, failed, dropped, closed *prometheus.Desc
	active, peak, stageDesc, elapsedDesc            *prometheus.Desc
	outcomes, bytes, latency                        *prometheus.Desc
	requests, requestsOffered                       *prometheus.Desc
}

// New returns an exporter for the plan called name (the "plan" label of every metric).
func New(name string) *Exporter {
	l := prometheus.Labels{"plan": name}
	d := func(n, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("portstorm_"+n, help, labels, l)
	}
	e := &Exporter{
		total:       metrics.NewSnapshot(),
		reg:         prometheus.NewRegistry(),
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
		requests:    d("requests_total", "Requests (messages) written on the connections, by how each ended.", "outcome"),
		requestsOffered: d("requests_offered_total",
			"Requests the schedule meant to send: under a request rate those whose intended send time came, sent or not; unrated, those written."),
	}
	e.reg.MustRegister(e)
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
}

// Handler serves the metrics in the Prometheus exposition format.
func (e *Exporter) Handler() http.Handler {
	return promhttp.HandlerFor(e.reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

// Describe implements prometheus.Collector.
func (e *Exporter) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{e.attempted, e.established, e.failed, e.dropped, e.closed,
		e.active, e.peak, e.stageDesc, e.elapsedDesc, e.outcomes, e.bytes, e.latency, e.requests, e.requestsOffered} {
		ch <- d
	}
}

// Collect implements prometheus.Collector: it renders the totals as they stand.
func (e *Exporter) Collect(ch chan<- prometheus.Metric) {
	e.mu.Lock()
	defer e.mu.Unlock()
	t := e.total
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(d *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v)
	}
	counter(e.attempted, t.Attempted)
	counter(e.established, t.Established)
	counter(e.failed, t.Failed)
	counter(e.dropped, t.Dropped)
	counter(e.closed, t.Closed)
	gauge(e.active, float64(t.Active))
	gauge(e.peak, float64(t.PeakActive))
	gauge(e.stageDesc, float64(e.stage))
	gauge(e.elapsedDesc, e.elapsed.Seconds())
	for o := range metrics.NumOutcomes {
		counter(e.outcomes, t.Outcomes[o], o.String())
	}
	for o := range metrics.NumOutcomes {
		counter(e.requests, t.RequestOutcomes[o], o.String())
	}
	counter(e.requestsOffered, t.RequestsOffered)
	counter(e.bytes, t.BytesOut, "out")
	counter(e.bytes, t.BytesIn, "in")
	for l, h := range t.Hist {
		if h == nil {
			h = metrics.NewHistogram()
		}
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
		ch <- prometheus.MustNewConstHistogram(e.latency, uint64(h.TotalCount()), sum, buckets, metrics.Latency(l).String())
	}
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
