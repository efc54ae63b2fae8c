package exporter

import (
	"context"
	"errors"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"

	"github.com/portstorm/portstorm/loadgen/memory"
	"github.com/portstorm/portstorm/loadgen/metrics"
	"github.com/portstorm/portstorm/loadgen/ports"
	"github.com/portstorm/portstorm/loadgen/report"
)

// openFDs counts this process's open descriptors (Linux; elsewhere -1, and the check is skipped).
func openFDs() int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return -1
	}
	return len(ents)
}

func checkFDs(t *testing.T) {
	t.Helper()
	before := openFDs()
	t.Cleanup(func() {
		http.DefaultClient.CloseIdleConnections()
		if after := openFDs(); before >= 0 && after > before {
			t.Errorf("open fds %d after the test, %d before", after, before)
		}
	})
}

// snapshot is an interval of a small rated run: 10 connections, 20 requests written of 25 offered.
func snapshot(endUS int64) *metrics.Snapshot {
	s := metrics.NewSnapshot()
	s.EndUS = endUS
	s.Attempted, s.Established, s.Active, s.PeakActive = 10, 10, 10, 10
	s.Requests, s.RequestsOffered = 20, 25
	s.RequestOutcomes[metrics.OK] = 20
	for i := range int64(100) {
		s.Hist[metrics.RequestIntended].RecordValue(1000 + i*10) // 1 ms to 1.99 ms
		s.Hist[metrics.RTT].RecordValue(500)
	}
	return s
}

// finalSummary is the summary of that run, with a port report whose figures differ from the
// live samples', so that a scrape shows which it renders.
func finalSummary() *report.Summary {
	return &report.Summary{Verdict: report.VerdictPass, Ports: &ports.Report{
		Sources:      []ports.SourceReport{{UniquePorts: 700}, {UniquePorts: 300}},
		Destinations: []ports.PairReport{{Occupancy: 0.25}, {Occupancy: 0.75}},
		Failures:     []ports.Failure{{Syscall: "connect", Errno: "EADDRNOTAVAIL", Count: 4}, {Syscall: "bind", Errno: "EADDRINUSE", Count: 1}},
		Exhaustion:   &ports.Exhaustion{Errno: "EADDRNOTAVAIL"},
		Reuse:        ports.Reuse{Ports: 11, FourTuples: 12, Early: 13},
		TimeWait:     ports.TimeWait{Peak: 900, Last: 850, TargetPeak: 5, OthersPeak: 7},
	}}
}

// TestPortAndRequestFigures scrapes the endpoint over loopback during a run (two intervals with
// port samples, the second without a TIME_WAIT sample) and after it (the summary's port report).
func TestPortAndRequestFigures(t *testing.T) {
	checkFDs(t)
	e := New("p")
	url := serveMetrics(t, e)
	if got := scrape(t, url); strings.Contains(got, "portstorm_ports_unique") || strings.Contains(got, "portstorm_time_wait") {
		t.Errorf("port figures before any port sample:\n%s", got)
	}
	e.Observe(snapshot(1_000_000))
	e.ObservePorts(&ports.Sample{TimeWait: 100, TimeWaitTarget: 2, TimeWaitOthers: 3, UniquePorts: 40,
		Occupancy: 0.5, PortReuse: 1, TupleReuse: 2, EarlyReuse: 0})
	e.Observe(snapshot(2_000_000))
	e.ObservePorts(&ports.Sample{TimeWait: -1, TimeWaitTarget: -1, TimeWaitOthers: -1, UniquePorts: 60,
		Occupancy: 0.25, PortReuse: 3, TupleReuse: 4, EarlyReuse: 1, PortFailures: 2, Exhausted: true})
	during := scrape(t, url)
	e.Finish(finalSummary())
	after := scrape(t, url)
	tests := []struct {
		name, page string
		want       []string
		absent     []string
	}{
		{"during the run", during, []string{
			`portstorm_requests_written_total{plan="p"} 40`,
			`portstorm_requests_offered_total{plan="p"} 50`,
			`portstorm_requests_shortfall_ratio{plan="p"} 0.2`,
			`portstorm_latency_quantiles_seconds{latency="request_intended",plan="p",quantile="0.5"} 0.00149`,
			`portstorm_latency_quantiles_seconds{latency="request_intended",plan="p",quantile="0.99"} 0.00198`,
			`portstorm_latency_quantiles_seconds{latency="rtt",plan="p",quantile="0.9"} 0.0005`,
			// TIME_WAIT: the last sample that had one stands, the peak is the highest.
			`portstorm_time_wait_sockets{plan="p",side="ours"} 100`,
			`portstorm_time_wait_sockets{plan="p",side="target"} 2`,
			`portstorm_time_wait_sockets{plan="p",side="others"} 3`,
			`portstorm_time_wait_peak_sockets{plan="p",side="ours"} 100`,
			`portstorm_ports_unique{plan="p"} 60`,
			`portstorm_ports_occupancy_ratio{plan="p"} 0.25`,
			`portstorm_ports_occupancy_peak_ratio{plan="p"} 0.5`,
			`portstorm_ports_exhausted{plan="p"} 1`,
			`portstorm_ports_exhaustion_events_total{plan="p"} 2`,
			`portstorm_port_reuse_total{kind="port",plan="p"} 4`,
			`portstorm_port_reuse_total{kind="four_tuple",plan="p"} 6`,
			`portstorm_port_reuse_total{kind="early",plan="p"} 1`,
			`portstorm_run_finished{plan="p"} 0`,
		}, []string{"portstorm_verdict", `latency="connect",plan="p",quantile`}},
		{"after the run: the summary's port report", after, []string{
			`portstorm_time_wait_sockets{plan="p",side="ours"} 850`,
			`portstorm_time_wait_peak_sockets{plan="p",side="ours"} 900`,
			`portstorm_time_wait_peak_sockets{plan="p",side="target"} 5`,
			`portstorm_time_wait_peak_sockets{plan="p",side="others"} 7`,
			`portstorm_ports_unique{plan="p"} 1000`,
			`portstorm_ports_occupancy_peak_ratio{plan="p"} 0.75`,
			`portstorm_ports_exhausted{plan="p"} 1`,
			`portstorm_ports_exhaustion_events_total{plan="p"} 5`,
			`portstorm_port_reuse_total{kind="port",plan="p"} 11`,
			`portstorm_port_reuse_total{kind="four_tuple",plan="p"} 12`,
			`portstorm_port_reuse_total{kind="early",plan="p"} 13`,
			`portstorm_requests_written_total{plan="p"} 40`,
			`portstorm_run_finished{plan="p"} 1`,
			`portstorm_verdict{plan="p",verdict="pass"} 1`,
		}, []string{`portstorm_ports_occupancy_ratio{`, `side="target"} 2`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkPage(t, tt.page, tt.want, tt.absent)
			if t.Failed() {
				t.Logf("page:\n%s", tt.page)
			}
		})
	}
}

// pushed is one request a test Pushgateway received.
type pushed struct {
	method, path, body string
}

// gateway is a test Pushgateway: every request is recorded on got, answered with status.
func gateway(t *testing.T, status int) (*httptest.Server, chan pushed) {
	got := make(chan pushed, 16)
	gw := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		user, pw, _ := r.BasicAuth()
		path := r.URL.Path
		if user != "" {
			path += " auth " + user + ":" + pw
		}
		got <- pushed{r.Method, path, string(b)}
		w.WriteHeader(status)
	}))
	t.Cleanup(gw.Close)
	return gw, got
}

// TestPush pushes during a run, every second of run time, and at its end: each push is a PUT of
// the whole group, with the plan and the given labels as grouping labels and no plan label in the
// body (the Pushgateway would refuse it).
func TestPush(t *testing.T) {
	checkFDs(t)
	gw, got := gateway(t, http.StatusOK)
	e := New("p")
	if err := e.StartPush(PushConfig{URL: strings.Replace(gw.URL, "http://", "http://ci:secret@", 1), Job: "gate",
		Grouping: [][2]string{{"segment", "0/2"}, {"instance", "runner-3"}}, Every: time.Second}); err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		endUS int64
		push  bool // an interval push is due: it arrives before the test goes on
	}{
		{500_000, false}, {1_200_000, true}, {1_400_000, false}, {3_500_000, true}, {3_900_000, false},
	}
	var n int
	for _, s := range steps {
		e.Observe(snapshot(s.endUS))
		if s.push {
			p := <-got
			n++
			if !strings.Contains(p.body, "portstorm_run_finished 0") {
				t.Errorf("interval push %d:\n%s", n, p.body)
			}
		}
	}
	e.ObservePorts(&ports.Sample{TimeWait: 9, TimeWaitTarget: -1, TimeWaitOthers: -1, UniquePorts: 3})
	e.Finish(finalSummary())
	if err := e.PushFinal(context.Background()); err != nil {
		t.Fatal(err)
	}
	close(got)
	var last pushed
	for p := range got {
		n++
		last = p
	}
	if n != 3 {
		t.Errorf("%d pushes, want 2 interval pushes and the final one", n)
	}
	// The group: job, then the grouping labels in any order (client_golang keeps them in a map);
	// the segment's "/" makes it send that value base64-encoded.
	path, auth, _ := strings.Cut(last.path, " auth ")
	parts := strings.Split(strings.TrimPrefix(path, "/metrics/"), "/")
	group := map[string]string{}
	for i := 0; i+1 < len(parts); i += 2 {
		group[parts[i]] = parts[i+1]
	}
	want := map[string]string{"job": "gate", "plan": "p", "segment@base64": "MC8y", "instance": "runner-3"}
	if last.method != http.MethodPut || !maps.Equal(group, want) || len(parts) != 8 || parts[0] != "job" || auth != "ci:secret" {
		t.Errorf("final push %s %s, want PUT of the group %v with basic auth ci:secret", last.method, last.path, want)
	}
	for _, w := range []string{"portstorm_run_finished 1", `portstorm_verdict{verdict="pass"} 1`,
		"portstorm_requests_written_total 100", `portstorm_time_wait_peak_sockets{side="ours"} 900`,
		`portstorm_latency_seconds_count{latency="request_intended"} 500`} {
		if !strings.Contains(last.body, w+"\n") {
			t.Errorf("final push lacks %s", w)
		}
	}
	if strings.Contains(last.body, "plan=") {
		t.Errorf("pushed metrics carry the plan label:\n%s", last.body)
	}
	// A second PushFinal does nothing.
	if err := e.PushFinal(context.Background()); err != nil {
		t.Error(err)
	}
}

// TestPushFails: a Pushgateway that refuses is a warning during the run (once) and Final's error.
func TestPushFails(t *testing.T) {
	checkFDs(t)
	gw, got := gateway(t, http.StatusInternalServerError)
	warned := make(chan error, 4)
	e := New("p")
	if err := e.StartPush(PushConfig{URL: gw.URL, Every: time.Second, Warn: func(err error) { warned <- err }}); err != nil {
		t.Fatal(err)
	}
	e.Observe(snapshot(1_000_000))
	<-got
	if err := <-warned; err == nil || !strings.Contains(err.Error(), "500") {
		t.Errorf("warning %v", err)
	}
	e.Observe(snapshot(2_000_000))
	<-got
	err := e.PushFinal(context.Background())
	if err == nil || !strings.Contains(err.Error(), "pushing to http://127.0.0.1") {
		t.Errorf("final push error %v", err)
	}
	if len(warned) != 0 {
		t.Errorf("%d more warnings: only the first failure is told", len(warned))
	}
}

func TestCheckPush(t *testing.T) {
	tests := []struct {
		url   string
		group [][2]string
		want  string
	}{
		{"http://127.0.0.1:9091", nil, ""},
		{"https://u:p@push.example:9091/base", [][2]string{{"instance", "a"}}, ""},
		{"127.0.0.1:9091", nil, "http(s) URL"},
		{"ftp://h/", nil, "http(s) URL"},
		{"http://", nil, "http(s) URL"},
		{"http://h:9091", [][2]string{{"9x", "a"}}, "not a label name"},
		{"http://h:9091", [][2]string{{"plan", "a"}}, "set by portstorm"},
		{"http://h:9091", [][2]string{{"job", "a"}}, "--metrics-push-job"},
		{"http://h:9091", [][2]string{{"__x", "a"}}, "reserved"},
		{"http://h:9091", [][2]string{{"instance", ""}}, "want a value"},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			err := CheckPush(PushConfig{URL: tt.url, Grouping: tt.group})
			if (err == nil) != (tt.want == "") || (err != nil && !strings.Contains(err.Error(), tt.want)) {
				t.Errorf("error %v, want %q", err, tt.want)
			}
		})
	}
}

// TestLingerWait times the linger in virtual time: it lasts its duration to the nanosecond, and a
// cancelled context (a signal) ends it at once.
func TestLingerWait(t *testing.T) {
	tests := []struct {
		name     string
		d        time.Duration
		cancelAt time.Duration // 0: never
		want     time.Duration
		err      error
	}{
		{"lasts its duration", 30 * time.Second, 0, 30 * time.Second, nil},
		{"a signal ends it early", 30 * time.Second, 5 * time.Second, 5 * time.Second, ErrLingerCut},
		{"none", 0, 0, 0, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				if tt.cancelAt > 0 {
					time.AfterFunc(tt.cancelAt, cancel)
				}
				start := time.Now()
				err := wait(ctx, tt.d)
				if took := time.Since(start); took != tt.want || !errors.Is(err, tt.err) {
					t.Errorf("took %s, error %v; want %s, %v", took, err, tt.want, tt.err)
				}
			})
		})
	}
}

// TestLingerServes: after the run, the endpoint serves the final figures while it lingers, and
// stops when the linger's context ends.
func TestLingerServes(t *testing.T) {
	checkFDs(t)
	e := New("p")
	srv, err := Serve("127.0.0.1:0", false, e.Handler())
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + srv.Addr() + "/metrics"
	e.Observe(snapshot(6_000_000))
	e.Finish(finalSummary())
	ctx, cancel := context.WithCancel(context.Background())
	lingered := make(chan error, 1)
	go func() { lingered <- srv.Linger(ctx, time.Hour) }()
	page := scrape(t, url)
	for _, w := range []string{`portstorm_run_finished{plan="p"} 1`, `portstorm_connections_attempted_total{plan="p"} 10`,
		`portstorm_ports_unique{plan="p"} 1000`} {
		if !strings.Contains(page, w) {
			t.Errorf("lingering endpoint lacks %s", w)
		}
	}
	cancel()
	if err := <-lingered; !errors.Is(err, ErrLingerCut) {
		t.Errorf("linger: %v", err)
	}
	http.DefaultClient.CloseIdleConnections()
	if resp, err := http.Get(url); err == nil {
		resp.Body.Close()
		t.Error("the endpoint still answers after the linger")
	}
}

// TestFinishPorts: the final port figures come from summary.json's ports, or for a run of worker
// processes from ports_by_host (summed; occupancy the highest); without either, no port series.
// The others' TIME_WAIT of several reports from one host (worker processes, each counting the
// other workers' sockets as others') is not summed: absent; one report per host, it is.
func TestFinishPorts(t *testing.T) {
	worker := func(unique int, occ float64, twPeak int64) *ports.Report {
		return &ports.Report{Sources: []ports.SourceReport{{UniquePorts: unique}}, Destinations: []ports.PairReport{{Occupancy: occ}},
			Failures: []ports.Failure{{Count: 1}}, Reuse: ports.Reuse{Ports: 2}, TimeWait: ports.TimeWait{Peak: twPeak, Last: 1, TargetPeak: -1, OthersPeak: 10 * twPeak}}
	}
	tests := []struct {
		name   string
		s      *report.Summary
		want   []string
		absent []string
	}{
		{"ports", finalSummary(), []string{`portstorm_ports_unique{plan="p"} 1000`}, nil},
		{"ports by worker", &report.Summary{Verdict: report.VerdictFail, PortsByHost: []report.HostPorts{
			{Host: "vm", Segment: "0/2", Ports: worker(10, 0.5, 3)}, {Host: "vm", Segment: "1/2", Ports: worker(20, 0.25, 4)}}}, []string{
			`portstorm_ports_unique{plan="p"} 30`, `portstorm_ports_occupancy_peak_ratio{plan="p"} 0.5`,
			`portstorm_ports_exhaustion_events_total{plan="p"} 2`, `portstorm_port_reuse_total{kind="port",plan="p"} 4`,
			`portstorm_time_wait_peak_sockets{plan="p",side="ours"} 7`, `portstorm_time_wait_sockets{plan="p",side="ours"} 2`,
			`portstorm_ports_exhausted{plan="p"} 0`, `portstorm_verdict{plan="p",verdict="fail"} 1`,
		}, []string{`side="target"`, `side="others"`}},
		{"ports by host", &report.Summary{Verdict: report.VerdictPass, PortsByHost: []report.HostPorts{
			{Host: "a", Segment: "0/2", Ports: worker(10, 0.5, 3)}, {Host: "b", Segment: "1/2", Ports: worker(20, 0.25, 4)}}}, []string{
			`portstorm_time_wait_peak_sockets{plan="p",side="ours"} 7`, `portstorm_time_wait_peak_sockets{plan="p",side="others"} 70`,
		}, []string{`side="target"`}},
		{"no ports", &report.Summary{Verdict: report.VerdictNone}, []string{`portstorm_verdict{plan="p",verdict="no_thresholds"} 1`},
			[]string{"portstorm_ports_", "portstorm_time_wait"}},
		{"no summary (the run could not start)", nil, []string{`portstorm_run_finished{plan="p"} 1`}, []string{"portstorm_verdict"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkFDs(t)
			e := New("p")
			url := serveMetrics(t, e)
			e.Finish(tt.s)
			page := scrape(t, url)
			checkPage(t, page, tt.want, tt.absent)
		})
	}
}

// TestLint: every series passes client_golang's promlint (names, units, _total on counters only),
// the memory series included.
func TestLint(t *testing.T) {
	e := New("p")
	e.Observe(snapshot(1_000_000))
	e.ObservePorts(&ports.Sample{TimeWait: 1, TimeWaitTarget: 1, TimeWaitOthers: 1})
	s := finalSummary()
	s.Memory = memoryReport()
	e.Finish(s)
	mfs, err := e.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, mf := range mfs {
		names = append(names, mf.GetName())
	}
	for _, n := range []string{"portstorm_memory_plateau_connections", "portstorm_memory_kernel_slab_per_connection_bytes",
		"portstorm_memory_rss_per_connection_bytes"} {
		if !slices.Contains(names, n) {
			t.Errorf("%s is not among the series linted", n)
		}
	}
	for _, reg := range []*prometheus.Registry{e.reg, e.pushReg} {
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		problems, err := promlint.NewWithMetricFamilies(mfs).Lint()
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range problems {
			t.Errorf("%s: %s", p.Metric, p.Text)
		}
	}
}

// memoryReport is summary.json's memory of 1,000 connections held, every side measured.
func memoryReport() *memory.Report {
	return &memory.Report{AtS: 12.5, Connections: 1000,
		Kernel: &memory.Kernel{SlabBytes: 9_126_000, PerConnection: 9126, Caches: []memory.CacheGrowth{
			{Name: "TCP", Objects: 2000, ObjSize: 2368, Bytes: 4_844_000, PerConnection: 4844}}},
		Generator: &memory.Process{Processes: 3, BaseRSS: 20_000_000, RSS: 21_000_000, PerConnection: 1000},
		Target:    &memory.Process{Processes: 2, BaseRSS: 10_000_000, RSS: 10_053_000, PerConnection: 53}}
}

// TestFinishMemory: summary.json's memory per connection is exported once the run is over and
// only when it was measured, each side only when it was (the target runs in the generator's
// process, the kernel's slab could not be read).
func TestFinishMemory(t *testing.T) {
	partial := memoryReport()
	partial.Kernel, partial.Target = nil, nil
	tests := []struct {
		name   string
		memory *memory.Report
		want   []string
		absent []string
	}{
		{"measured", memoryReport(), []string{
			`portstorm_memory_plateau_connections{plan="p"} 1000`,
			`portstorm_memory_kernel_slab_per_connection_bytes{plan="p"} 9126`,
			`portstorm_memory_rss_per_connection_bytes{plan="p",process="generator"} 1000`,
			`portstorm_memory_rss_per_connection_bytes{plan="p",process="target"} 53`,
		}, nil},
		{"generator only", partial, []string{
			`portstorm_memory_plateau_connections{plan="p"} 1000`,
			`portstorm_memory_rss_per_connection_bytes{plan="p",process="generator"} 1000`,
		}, []string{"portstorm_memory_kernel_", `process="target"`}},
		{"not measured", nil, []string{`portstorm_run_finished{plan="p"} 1`}, []string{"portstorm_memory_"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkFDs(t)
			e := New("p")
			url := serveMetrics(t, e)
			e.Observe(snapshot(1_000_000))
			if page := scrape(t, url); strings.Contains(page, "portstorm_memory_") {
				t.Errorf("memory series before the run is over:\n%s", page)
			}
			s := finalSummary()
			s.Memory = tt.memory
			e.Finish(s)
			page := scrape(t, url)
			checkPage(t, page, tt.want, tt.absent)
			if tt.memory != nil && !strings.Contains(page, "# HELP portstorm_memory_rss_per_connection_bytes ") {
				t.Error("no HELP text for portstorm_memory_rss_per_connection_bytes")
			}
			http.DefaultClient.CloseIdleConnections()
		})
	}
}

// checkPage fails t for each line of want (a whole series line) missing from a scraped page, and
// for each text of absent on it.
func checkPage(t *testing.T, page string, want, absent []string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(page, w+"\n") {
			t.Errorf("missing %s", w)
		}
	}
	for _, a := range absent {
		if strings.Contains(page, a) {
			t.Errorf("has %s", a)
		}
	}
}
