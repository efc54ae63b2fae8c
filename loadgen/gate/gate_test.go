package gate

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	hdr "github.com/HdrHistogram/hdrhistogram-go"

	"github.com/portstorm/portstorm/loadgen/metrics"
	"github.com/portstorm/portstorm/loadgen/plan"
	"github.com/portstorm/portstorm/loadgen/ports"
	"github.com/portstorm/portstorm/loadgen/report"
	"github.com/portstorm/portstorm/loadgen/schedule"
)

var ctx3 = Context{Stages: 3, Model: schedule.Concurrency}

func TestParse(t *testing.T) {
	tests := []struct {
		name, expr string
		c          Context
		metric     string
		kind       Kind
		op         Op
		limit      float64
		none       bool
	}{
		{"latency with ms", "connect.p99 < 5ms", ctx3, "connect.p99", Time, Less, 5000, false},
		{"latency with us", "rtt.p50<=250us", ctx3, "rtt.p50", Time, LessEqual, 250, false},
		{"latency with µs and spaces", "  connect.max   >   1.5µs ", ctx3, "connect.max", Time, Greater, 1.5, false},
		{"long form", "latency.connect_intended.p999 < 1s", ctx3, "connect_intended.p999", Time, Less, 1e6, false},
		{"slot wait (the target held arrivals back)", "slot_wait.p99 < 10ms", ctx3, "slot_wait.p99", Time, Less, 10000, false},
		{"schedule lag (the generator was late)", "latency.schedule_lag.p99 < 500us", ctx3, "schedule_lag.p99", Time, Less, 500, false},
		{"model default, concurrency", "latency.p99 < 1ms", ctx3, "connect.p99", Time, Less, 1000, false},
		{"model default, arrival", "latency.p99 < 1ms", Context{Model: schedule.Arrival}, "connect_intended.p99", Time, Less, 1000, false},
		{"any percentile", "connect.p95 < 2ms", ctx3, "connect.p95", Time, Less, 2000, false},
		{"four nines", "connect.p9999 < 20ms", ctx3, "connect.p9999", Time, Less, 20000, false},
		{"percent", "errors.rate < 0.1%", ctx3, "errors.rate", Ratio, Less, 0.001, false},
		{"fraction", "errors.rate <= 0.01", ctx3, "errors.rate", Ratio, LessEqual, 0.01, false},
		{"count", "connections.peak >= 60000", ctx3, "connections.peak_concurrent", Count, GreaterEqual, 60000, false},
		{"count with underscores", "connections.established >= 60_000", ctx3, "connections.established", Count, GreaterEqual, 60000, false},
		{"outcome", "outcomes.EADDRNOTAVAIL == 0", ctx3, "outcomes.EADDRNOTAVAIL", Count, Equal, 0, false},
		{"rate", "connections.per_second > 500/s", ctx3, "connections.per_second", PerSecond, Greater, 500, false},
		{"bytes", "bytes.out >= 1MiB", ctx3, "bytes.out", Bytes, GreaterEqual, 1 << 20, false},
		{"exhaustion none", "ports.exhaustion == none", ctx3, "ports.exhaustion", Time, Equal, 0, true},
		{"exhausted_at spelling", "ports.exhausted_at != none", ctx3, "ports.exhausted_at", Time, NotEqual, 0, true},
		{"first occurrence", "first.ECONNRESET.at_s > 10s", ctx3, "first.ECONNRESET.at_s", Time, Greater, 10e6, false},
		{"stage latency", "stage[1].connect.p99 < 2ms", ctx3, "stage[1].connect.p99", Time, Less, 2000, false},
		{"stage errors", "stage[2].errors.rate < 1%", ctx3, "stage[2].errors.rate", Ratio, Less, 0.01, false},
		{"stage count, unknown stage count", "stage[7].connections.failed == 0", Context{}, "stage[7].connections.failed", Count, Equal, 0, false},
		{"run duration", "duration < 30s", ctx3, "duration", Time, Less, 30e6, false},
		{"target", "target.accepted >= 10", ctx3, "target.accepted", Count, GreaterEqual, 10, false},
		{"not equal", "outcomes.other != 1", ctx3, "outcomes.other", Count, NotEqual, 1, false},
		{"requests per second", "requests.per_second >= 40000/s", ctx3, "requests.per_second", PerSecond, GreaterEqual, 40000, false},
		{"requests offered per second", "requests.offered_per_second >= 100", ctx3, "requests.offered_per_second", PerSecond, GreaterEqual, 100, false},
		{"request error rate", "requests.error_rate < 0.1%", ctx3, "requests.error_rate", Ratio, Less, 0.001, false},
		{"request shortfall", "requests.shortfall < 1%", ctx3, "requests.shortfall", Ratio, Less, 0.01, false},
		{"request count", "requests.count >= 1000", ctx3, "requests.count", Count, GreaterEqual, 1000, false},
		{"requests written is the count", "requests.written >= 1000", ctx3, "requests.count", Count, GreaterEqual, 1000, false},
		{"requests offered", "requests.offered > 0", ctx3, "requests.offered", Count, Greater, 0, false},
		{"request errors", "requests.errors == 0", ctx3, "requests.errors", Count, Equal, 0, false},
		{"request outcome", "requests.outcomes.ECONNRESET == 0", ctx3, "requests.outcomes.ECONNRESET", Count, Equal, 0, false},
		{"stage requests", "stage[1].requests.per_second > 10", ctx3, "stage[1].requests.per_second", PerSecond, Greater, 10, false},
		{"request latency", "request_intended.p99 < 5ms", ctx3, "request_intended.p99", Time, Less, 5000, false},
		{"request lag", "latency.request_lag.p999 < 1ms", ctx3, "request_lag.p999", Time, Less, 1000, false},
		{"window wait", "stage[0].window_wait.max < 1s", ctx3, "stage[0].window_wait.max", Time, Less, 1e6, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			th, err := Parse(tt.expr, tt.c)
			if err != nil {
				t.Fatal(err)
			}
			if th.Metric.Name != tt.metric || th.Metric.Kind != tt.kind || th.Op != tt.op || th.None != tt.none {
				t.Errorf("got %s (%v) %v none=%v", th.Metric.Name, th.Metric.Kind, th.Op, th.None)
			}
			if !tt.none && th.Limit != tt.limit {
				t.Errorf("limit %v, want %v", th.Limit, tt.limit)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct{ name, expr, want string }{
		{"empty", "  ", "empty"},
		{"no operator", "connect.p99 5ms", "no comparison"},
		{"single equals", "outcomes.EOF = 0", "write =="},
		{"reversed operator", "connect.p99 =< 5ms", "write <="},
		{"no value", "connect.p99 <", "no value after <"},
		{"no metric", "< 5ms", "no metric before <"},
		{"two comparisons", "0 < connect.p99 < 5ms", "more than one comparison"},
		{"chained", "connect.p99 < 5ms < 6ms", "more than one comparison"},
		{"unknown metric, suggestion", "conect.p99 < 5ms", `did you mean "connect.p99"?`},
		{"unknown family", "frobs.count > 1", "want one of connections.*"},
		{"the unknown-metric list names requests", "frobs.count > 1", "requests.* (count, offered, errors, error_rate, per_second, offered_per_second, shortfall"},
		{"the latency list names the request histograms", "frobs.count > 1", "request_intended, request_lag, window_wait"},
		{"request metric misspelt", "requests.persecond > 1", `did you mean "requests.per_second"?`},
		{"request outcome unknown", "requests.outcomes.EFOO == 0", "unknown metric"},
		{"request rate with a unit", "requests.per_second > 5ms", "rate"},
		{"unknown statistic", "connect.p99x < 5ms", `unknown statistic "p99x"`},
		{"percentile above 100", "connect.p101 < 5ms", "p50, p99, p999"},
		{"time without unit", "connect.p99 < 5", "write the limit with a unit, like 5ms"},
		{"time with a space", "connect.p99 < 5 ms", "without a space, like 5ms"},
		{"bad duration", "connect.p99 < 5parsecs", "want a duration"},
		{"negative time", "connect.p99 > -5ms", "0 or more"},
		{"share above 1", "errors.rate < 5", "did you mean 5%?"},
		{"share above 100%", "errors.rate < 150%", "0% to 100%"},
		{"count with a unit", "connections.peak >= 5ms", "is a count"},
		{"fractional count", "outcomes.EOF < 1.5", "whole number"},
		{"none on a count", "outcomes.EOF == none", "cannot be none"},
		{"none with <", "ports.exhaustion < none", "only with == or !="},
		{"stage out of range", "stage[3].connect.p99 < 1ms", "stage[0] to stage[2]"},
		{"stages spelling", "stages[1].connect.p99 < 1ms", "stage[N].metric"},
		{"stage without index", "stage.connect.p99 < 1ms", "unknown metric"},
		{"run-only metric in a stage", "stage[1].bytes.out > 1B", "unknown per-stage metric"},
		{"space in the metric", "connect p99 < 5ms", "contains a space"},
		{"outcome case", "outcomes.eof == 0", `did you mean "outcomes.EOF"?`},
		{"too long", "connect.p99 < " + strings.Repeat("9", 600) + "ms", "at most 512"},
		{"huge count", "outcomes.EOF < 99999999999999999999999", "too large"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(tt.expr, ctx3)
			if err == nil {
				t.Fatalf("%q parsed", tt.expr)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q lacks %q", err, tt.want)
			}
		})
	}
}

// fixture builds a summary as a run would: snapshots with histograms, through report.Build.
type fixture struct {
	connect     []int64 // µs, one established connection each
	failures    map[metrics.Outcome]uint64
	firstAt     map[metrics.Outcome]int64 // µs
	peak        int64
	stage1Extra []int64 // connect samples recorded in stage 1
	// reqs requests written in stage 0 (reqErrs of them reset), each with an rtt of reqRTT µs;
	// offered > 0 makes them rated (request_intended 3x the rtt) with that many offered.
	reqs, reqErrs, offered uint64
	reqRTT                 int64
}

func (f fixture) build(t testing.TB) *report.Summary {
	t.Helper()
	p := &plan.Plan{Version: 1, Name: "fx", Load: plan.Load{Model: "concurrency",
		Stages: []plan.Stage{{Duration: plan.Duration(time.Second), Target: 10}, {Duration: plan.Duration(time.Second), Target: 10}}}}
	snap := func(stage int, samples []int64) *metrics.Snapshot {
		s := metrics.NewSnapshot()
		s.Stage, s.StartUS, s.EndUS = stage, int64(stage)*1e6, int64(stage+1)*1e6
		for _, v := range samples {
			s.Hist[metrics.Connect].RecordValue(v)
			s.Hist[metrics.Lifetime].RecordValue(1000)
		}
		n := uint64(len(samples))
		s.Attempted, s.Established, s.Closed = n, n, n
		s.Outcomes[metrics.OK] = n
		s.PeakActive, s.Active = f.peak, 0
		return s
	}
	s0, s1 := snap(0, f.connect), snap(1, f.stage1Extra)
	s0.Requests, s0.RequestsOffered = f.reqs, f.reqs
	s0.RequestOutcomes[metrics.OK], s0.RequestOutcomes[metrics.ECONNRESET] = f.reqs-f.reqErrs, f.reqErrs
	for range f.reqs {
		s0.Hist[metrics.RTT].RecordValue(f.reqRTT)
		if f.offered > 0 {
			s0.Hist[metrics.RequestIntended].RecordValue(3 * f.reqRTT)
		}
	}
	if f.offered > 0 {
		s0.RequestsOffered = f.offered
	}
	for o, n := range f.failures {
		s0.Outcomes[o] += n
		s0.Attempted += n
		s0.Failed += n
		at := f.firstAt[o]
		s0.First[o] = &metrics.FirstSeen{AtUS: at, Concurrency: 7}
	}
	total := metrics.NewSnapshot()
	for _, s := range []*metrics.Snapshot{s0, s1} {
		if err := total.Add(s); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	sum, err := report.Build(report.Input{Plan: p, Start: start, End: start.Add(2 * time.Second), Total: total,
		Stages: []*metrics.Snapshot{s0.Clone(), s1.Clone()}})
	if err != nil {
		t.Fatal(err)
	}
	return sum
}

func TestJudge(t *testing.T) {
	sum := fixture{
		connect:     []int64{100, 200, 300, 400, 5000},
		failures:    map[metrics.Outcome]uint64{metrics.ECONNRESET: 5},
		firstAt:     map[metrics.Outcome]int64{metrics.ECONNRESET: 1_500_000},
		peak:        42,
		stage1Extra: []int64{50},
	}.build(t)
	tests := []struct {
		expr     string
		pass     bool
		observed string
	}{
		{"connect.p99 < 5ms", false, "5ms"},
		{"connect.p99 <= 5.01ms", true, "5ms"}, // 5000 is kept at 3 significant digits: up to 5003,
		{"connect.p50 < 1ms", true, "200µs"},
		{"connect.p95 < 1ms", false, "5ms"},
		{"connect.count == 6", true, "6"},
		{"rtt.p99 < 1ms", false, "n/a (no samples)"},
		{"rtt.count == 0", true, "0"},
		{"errors.rate < 50%", true, "45.45%"},
		{"errors.rate < 10%", false, "45.45%"},
		{"errors.count == 5", true, "5"},
		{"outcomes.ECONNRESET == 0", false, "5"},
		{"connections.peak >= 42", true, "42"},
		{"connections.attempted == 11", true, "11"},
		{"ports.exhaustion == none", true, "none"},
		{"ports.exhaustion != none", false, "none"},
		{"ports.exhaustion.at_s > 10s", true, "none"},
		{"ports.time_wait_peak < 100", false, "n/a (ports not observed in this run)"},
		{"first.ECONNRESET.at_s > 1s", true, "1.5s"},
		{"first.ECONNRESET == none", false, "1.5s"},
		{"first.EOF == none", true, "none"},
		{"stage[0].connect.max < 10ms", true, "5ms"},
		{"stage[1].connect.p99 < 100us", true, "50µs"},
		{"stage[1].errors.rate == 0", true, "0%"},
		{"stage[0].errors.count == 5", true, "5"},
		{"duration < 3s", true, "2s"},
		{"target.accepted > 0", false, "n/a (no built-in target in this run)"},
	}
	for _, tt := range tests {
		t.Run(tt.expr, func(t *testing.T) {
			th, err := Parse(tt.expr, Context{Stages: 2, Model: schedule.Concurrency})
			if err != nil {
				t.Fatal(err)
			}
			pass, obs := th.judge(newView(sum))
			if pass != tt.pass || obs != tt.observed {
				t.Errorf("pass %v observed %q, want %v %q", pass, obs, tt.pass, tt.observed)
			}
		})
	}
}

// TestJudgeRequests: requests.* and the request latencies judge a result's requests; latency.STAT
// is the result's headline (rtt for a keep-alive run, request_intended for a rated one), and the
// threshold's metric names which.
func TestJudgeRequests(t *testing.T) {
	conns := []int64{100, 200, 300, 400, 500}
	keepAlive := fixture{connect: conns, reqs: 1000, reqErrs: 10, reqRTT: 300}.build(t)
	rated := fixture{connect: conns, reqs: 1000, reqErrs: 10, reqRTT: 300, offered: 1250}.build(t)
	none := fixture{connect: conns}.build(t)
	old := *none
	old.Requests = nil
	old.Stages = nil
	tests := []struct {
		name     string
		sum      *report.Summary
		expr     string
		pass     bool
		observed string
		metric   string
	}{
		{"achieved rate", keepAlive, "requests.per_second >= 500/s", true, "500/s", "requests.per_second"},
		{"offered unrated is written", keepAlive, "requests.offered_per_second >= 500", true, "500/s", "requests.offered_per_second"},
		{"count", keepAlive, "requests.count == 1000", true, "1000", "requests.count"},
		{"errors", keepAlive, "requests.errors == 0", false, "10", "requests.errors"},
		{"error rate, independent of connections", keepAlive, "requests.error_rate < 2%", true, "1%", "requests.error_rate"},
		{"per outcome", keepAlive, "requests.outcomes.ECONNRESET == 10", true, "10", "requests.outcomes.ECONNRESET"},
		{"unrated shortfall is 0", keepAlive, "requests.shortfall == 0", true, "0%", "requests.shortfall"},
		{"headline of a keep-alive run is rtt", keepAlive, "latency.p99 < 1ms", true, "300µs", "rtt.p99"},
		{"stage rate", keepAlive, "stage[0].requests.per_second >= 1000", true, "1000/s", "stage[0].requests.per_second"},
		{"stage without requests", keepAlive, "stage[1].requests.count == 0", true, "0", "stage[1].requests.count"},
		{"rated shortfall", rated, "requests.shortfall < 5%", false, "20%", "requests.shortfall"},
		{"rated offered", rated, "requests.offered_per_second == 625", true, "625/s", "requests.offered_per_second"},
		{"intended latency", rated, "request_intended.p99 < 1ms", true, "900µs", "request_intended.p99"},
		{"headline of a rated run is request_intended", rated, "latency.p99 < 500us", false, "900µs", "request_intended.p99"},
		{"headline of a connection run stays connect", none, "latency.p99 < 1ms", true, "500µs", "connect.p99"},
		{"a rate of no requests is no evidence", none, "requests.per_second > 0", false, "n/a (no requests in this run)", "requests.per_second"},
		{"no requests counts 0", none, "requests.count == 0", true, "0", "requests.count"},
		{"a summary from before requests", &old, "requests.count == 0", false, "n/a (summary.json has no requests (written before requests were counted))", "requests.count"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			th, err := Parse(tt.expr, Context{Stages: 2, Model: schedule.Concurrency})
			if err != nil {
				t.Fatal(err)
			}
			s := *tt.sum
			(&Gate{Thresholds: []*Threshold{th}}).Judge(&s)
			r := s.Thresholds[0]
			if r.Pass != tt.pass || r.Observed != tt.observed || r.Metric != tt.metric {
				t.Errorf("pass %v observed %q metric %q, want %v %q %q", r.Pass, r.Observed, r.Metric, tt.pass, tt.observed, tt.metric)
			}
		})
	}
}

// TestCompareRequests: the default comparison set holds the request figures: a run that held less
// of its rate, or answered more slowly from the intended time, regresses.
func TestCompareRequests(t *testing.T) {
	conns := []int64{100, 200, 300, 400, 500}
	base := fixture{connect: conns, reqs: 1000, reqRTT: 300, offered: 1000}.build(t)
	short := fixture{connect: conns, reqs: 800, reqRTT: 300, offered: 1000}.build(t)
	slow := fixture{connect: conns, reqs: 1000, reqRTT: 600, offered: 1000}.build(t)
	failing := fixture{connect: conns, reqs: 1000, reqErrs: 5, reqRTT: 300, offered: 1000}.build(t)
	noReqs := fixture{connect: conns}.build(t)
	tests := []struct {
		name     string
		base     *report.Summary
		cur      *report.Summary
		failing  []string
		absent   []string
		included []string
	}{
		{"identical", base, base, nil, nil, []string{"requests.per_second", "requests.shortfall", "request_intended.p99", "requests.error_rate"}},
		{"fell short of the rate", base, short, []string{"requests.per_second", "requests.shortfall"}, nil, nil},
		{"slower", base, slow, []string{"rtt.p50", "rtt.p90", "rtt.p99", "request_intended.p50", "request_intended.p90", "request_intended.p99"}, nil, nil},
		{"failed requests", base, failing, []string{"requests.errors", "requests.error_rate"}, nil, nil},
		{"no requests in either run: no request checks", noReqs, noReqs, nil,
			[]string{"requests.per_second", "requests.errors", "requests.error_rate", "requests.shortfall", "request_intended.p99"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := Compare(tt.base, tt.cur, CompareOptions{MaxRegression: 0.1})
			if err != nil {
				t.Fatal(err)
			}
			var failing, all []string
			for _, c := range res.Checks {
				all = append(all, c.Metric)
				if !c.Pass {
					failing = append(failing, c.Metric)
				}
			}
			if strings.Join(failing, ",") != strings.Join(tt.failing, ",") {
				t.Errorf("failing %v, want %v\n%+v", failing, tt.failing, res.Checks)
			}
			for _, m := range tt.absent {
				if slices.Contains(all, m) {
					t.Errorf("%s compared: %v", m, all)
				}
			}
			for _, m := range tt.included {
				if !slices.Contains(all, m) {
					t.Errorf("%s not compared: %v", m, all)
				}
			}
		})
	}
}

func TestExhaustionFromPortReport(t *testing.T) {
	sum := fixture{connect: []int64{100}}.build(t)
	tests := []struct {
		name  string
		ports *ports.Report
		expr  string
		pass  bool
		obs   string
	}{
		{"no exhaustion", &ports.Report{}, "ports.exhaustion == none", true, "none"},
		{"exhausted", &ports.Report{Exhaustion: &ports.Exhaustion{AtS: 2.5, Concurrency: 28232, Occupancy: 0.99}}, "ports.exhaustion == none", false, "2.5s"},
		{"exhausted at", &ports.Report{Exhaustion: &ports.Exhaustion{AtS: 2.5, Concurrency: 28232, Occupancy: 0.99}}, "ports.exhaustion.concurrency >= 28000", true, "28232"},
		{"occupancy", &ports.Report{Exhaustion: &ports.Exhaustion{AtS: 2.5, Occupancy: 0.5}}, "ports.exhaustion.occupancy < 90%", true, "50%"},
		{"time_wait", &ports.Report{TimeWaitPeak: 14200}, "ports.time_wait_peak < 10000", false, "14200"},
		{"per destination", &ports.Report{Destinations: []ports.PairReport{{PeakConcurrent: 10}, {PeakConcurrent: 30, Occupancy: 0.25}}}, "ports.peak_per_destination >= 30", true, "30"},
		{"occupancy of the fullest destination", &ports.Report{Destinations: []ports.PairReport{{Occupancy: 0.1}, {Occupancy: 0.25}}}, "ports.occupancy < 20%", false, "25%"},
		{"reuse", &ports.Report{Sources: []ports.SourceReport{{Reuse: 3}, {Reuse: 4}}}, "ports.reuse == 7", true, "7"},
		{"unique ports", &ports.Report{Sources: []ports.SourceReport{{UniquePorts: 3}}}, "ports.unique_ports >= 1", true, "3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := *sum
			s.Ports = tt.ports
			th, err := Parse(tt.expr, ctx3)
			if err != nil {
				t.Fatal(err)
			}
			pass, obs := th.judge(newView(&s))
			if pass != tt.pass || obs != tt.obs {
				t.Errorf("pass %v observed %q, want %v %q", pass, obs, tt.pass, tt.obs)
			}
		})
	}
}

func TestCompare(t *testing.T) {
	base := fixture{connect: []int64{100, 200, 300, 400, 500}}.build(t)
	doubled := fixture{connect: []int64{200, 400, 600, 800, 1000}}.build(t)
	within := fixture{connect: []int64{100, 200, 300, 400, 540}}.build(t)
	faster := fixture{connect: []int64{50, 60, 70, 80, 90}}.build(t)
	moreConns := fixture{connect: []int64{100, 200, 300, 400, 500, 500}}.build(t)
	withErrors := fixture{connect: []int64{100, 200, 300, 400, 500}, failures: map[metrics.Outcome]uint64{metrics.ECONNREFUSED: 1}}.build(t)
	p99 := []string{"connect.p99"}
	tests := []struct {
		name    string
		cur     *report.Summary
		metrics []string
		tol     float64
		pass    bool
		failing []string
	}{
		{"identical results pass", base, nil, 0.10, true, nil},
		{"identical at zero tolerance", base, nil, 0, true, nil},
		{"connect p99 doubled fails at 10%", doubled, p99, 0.10, false, []string{"connect.p99"}},
		{"connect p99 doubled passes at 100%", doubled, p99, 1.0, true, nil},
		{"doubled fails in the default set", doubled, nil, 0.10, false, []string{"connect.p50", "connect.p90", "connect.p99"}},
		{"8% slower passes at 10%", within, p99, 0.10, true, nil},
		{"faster passes", faster, nil, 0.10, true, nil},
		{"differing counts fail", moreConns, []string{"connections.established", "connections.attempted"}, 1.0, false,
			[]string{"connections.established", "connections.attempted"}},
		{"a new failure outcome fails", withErrors, nil, 1.0, false, []string{"connections.failed", "errors.count", "outcomes.ECONNREFUSED"}},
		{"first occurrence appearing fails", withErrors, []string{"first.ECONNREFUSED"}, 1.0, false, []string{"first.ECONNREFUSED"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := Compare(base, tt.cur, CompareOptions{MaxRegression: tt.tol, Metrics: tt.metrics})
			if err != nil {
				t.Fatal(err)
			}
			var failing []string
			for _, c := range res.Checks {
				if !c.Pass {
					failing = append(failing, c.Metric)
				}
			}
			if res.Pass != tt.pass || strings.Join(failing, ",") != strings.Join(tt.failing, ",") {
				t.Errorf("pass %v failing %v, want %v %v\n%+v", res.Pass, failing, tt.pass, tt.failing, res.Checks)
			}
			if len(res.Checks) == 0 {
				t.Error("no checks")
			}
		})
	}
}

func TestCompareDeltas(t *testing.T) {
	base := fixture{connect: []int64{1000}}.build(t)
	cur := fixture{connect: []int64{2000, 2000}}.build(t)
	res, err := Compare(base, cur, CompareOptions{MaxRegression: 0.1, Metrics: []string{"connect.p99", "connections.established", "rtt.p99"}})
	if err != nil {
		t.Fatal(err)
	}
	want := []struct{ metric, base, new, delta, tol string }{
		{"connect.p99", "1ms", "2ms", "+100%", "+10%"},
		{"connections.established", "1", "2", "+1", "exact"},
		{"rtt.p99", "n/a", "n/a", "", "+10%"},
	}
	if len(res.Checks) != len(want) {
		t.Fatalf("checks %+v", res.Checks)
	}
	for i, w := range want {
		c := res.Checks[i]
		if c.Metric != w.metric || c.Base != w.base || c.New != w.new || c.Delta != w.delta || c.Tolerance != w.tol {
			t.Errorf("check %d: %+v, want %+v", i, c, w)
		}
	}
	if _, err := Compare(base, cur, CompareOptions{Metrics: []string{"conect.p99"}}); err == nil {
		t.Error("an unknown metric compared")
	}
	if _, err := Compare(base, cur, CompareOptions{MaxRegression: -1}); err == nil {
		t.Error("a negative tolerance accepted")
	}
}

func TestGateJudgeAndAbort(t *testing.T) {
	sum := fixture{connect: []int64{100, 200, 9000}, failures: map[metrics.Outcome]uint64{metrics.ETIMEDOUT: 1}}.build(t)
	g, errs := Compile(Input{Context: Context{Stages: 2}, Thresholds: []ThresholdInput{
		{Expr: "connect.p99 < 5ms"},
		{Expr: "errors.count == 0", AbortOnFail: true, Delay: 2 * time.Second},
		{Expr: "connections.established >= 3"},
	}})
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	if !g.Live() {
		t.Error("not live with an abort_on_fail threshold")
	}
	if st := g.Abort(sum, time.Second, nil); st != nil {
		t.Errorf("aborted before the delay: %+v", st)
	}
	st := g.Abort(sum, 2*time.Second, nil)
	if st == nil || st.Threshold != "errors.count == 0" || st.Observed != "1" || st.AtS != 2 {
		t.Fatalf("abort %+v", st)
	}
	// Figures the run does not have yet do not abort it.
	pending, errs := Compile(Input{Context: Context{Stages: 3},
		Thresholds: []ThresholdInput{{Expr: "rtt.p99 < 1ms", AbortOnFail: true}, {Expr: "stage[2].connect.p99 < 1ms", AbortOnFail: true}}})
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	if st := pending.Abort(sum, time.Minute, nil); st != nil {
		t.Errorf("aborted on a missing figure: %+v", st)
	}

	sum.Stopped = st
	g.Judge(sum)
	if sum.Verdict != "fail" || len(sum.Thresholds) != 3 {
		t.Fatalf("verdict %s thresholds %+v", sum.Verdict, sum.Thresholds)
	}
	got := sum.Thresholds
	if got[0].Pass || got[0].Observed != "9.01ms" || got[0].Condition != "< 5ms" || got[0].Metric != "connect.p99" {
		t.Errorf("threshold 0: %+v", got[0])
	}
	if got[1].Pass || !got[1].StoppedRun || !got[1].AbortOnFail {
		t.Errorf("threshold 1: %+v", got[1])
	}
	if !got[2].Pass {
		t.Errorf("threshold 2: %+v", got[2])
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"connect.p99 < 5ms", "errors.rate < 0.1%", "stage[1].connect.p99 < 2ms", "ports.exhaustion == none",
		"connections.peak >= 60_000", "bytes.out > 1KiB", "first.EOF.at_s > 1s", "latency.p9999 <= 1h", "a<>b", "stage[99999999999999999999].x < 1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		th, err := Parse(s, ctx3)
		if err == nil && (th.Metric == nil || th.Metric.get == nil) {
			t.Fatalf("%q parsed without a metric", s)
		}
		if err == nil {
			th.judge(newView(&report.Summary{}))
		}
	})
}

func TestAbortOnLiveFigures(t *testing.T) {
	total := metrics.NewSnapshot()
	for _, v := range []int64{100, 200, 300, 9000} {
		total.Hist[metrics.Connect].RecordValue(v)
	}
	total.Attempted, total.Established = 4, 4
	p := &plan.Plan{Name: "live", Load: plan.Load{Model: "concurrency", Stages: make([]plan.Stage, 1)}}
	live, err := report.Build(report.Input{Plan: p, Start: time.Now(), End: time.Now(), Total: total, Live: true})
	if err != nil {
		t.Fatal(err)
	}
	if live.Latency["connect"].HDR != "" || live.Latency["connect"].P99 < 9000 {
		t.Fatalf("live latency %+v", live.Latency["connect"])
	}
	g, errs := Compile(Input{Context: Context{Stages: 1}, Thresholds: []ThresholdInput{{Expr: "connect.p95 < 5ms", AbortOnFail: true}}})
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	hist := func(stage int, latency string) *hdr.Histogram {
		if stage == -1 && latency == "connect" {
			return total.Hist[metrics.Connect]
		}
		return nil
	}
	if st := g.Abort(live, time.Second, hist); st == nil || st.Observed != "9.01ms" {
		t.Errorf("abort %+v", st)
	}
}

// TestCompareNotesOnConnectFailure: a baseline written before connection.on_connect_failure
// existed holds nothing there; that is no difference between the plans. A policy that differs is.
func TestCompareNotesOnConnectFailure(t *testing.T) {
	defaults := plan.OnConnectFailure{BackoffAfter: 3, Backoff: plan.DefaultBackoff, MaxBackoff: plan.DefaultMaxBackoff,
		MaxFailRate: 1000, GiveUpAfter: plan.DefaultGiveUpAfter, GiveUpAttempts: 1000}
	tests := []struct {
		name      string
		base, cur plan.OnConnectFailure
		differ    bool
	}{
		{"baseline from before the key", plan.OnConnectFailure{}, defaults, false},
		{"same policy", defaults, defaults, false},
		{"the new run measures refusals", defaults, plan.OnConnectFailure{Measure: true}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base := fixture{connect: []int64{100, 200}}.build(t)
			cur := fixture{connect: []int64{100, 200}}.build(t)
			base.Plan.Connection.OnConnectFailure, cur.Plan.Connection.OnConnectFailure = tt.base, tt.cur
			res, err := Compare(base, cur, CompareOptions{MaxRegression: 0.1})
			if err != nil {
				t.Fatal(err)
			}
			differ := slices.ContainsFunc(res.Notes, func(n string) bool { return strings.Contains(n, "the plans differ in connection") })
			if differ != tt.differ {
				t.Errorf("notes %q, want a plan difference: %v", res.Notes, tt.differ)
			}
		})
	}
}

// TestJudgeVerdicts: "pass" needs something judged; a plan without thresholds or baseline gives
// "no_thresholds", and a result that cannot be trusted "error" whatever its thresholds say.
func TestJudgeVerdicts(t *testing.T) {
	tests := []struct {
		name        string
		thresholds  []ThresholdInput
		unreachable bool
		want        string
	}{
		{"nothing to judge", nil, false, report.VerdictNone},
		{"threshold passes", []ThresholdInput{{Expr: "connections.established >= 3"}}, false, report.VerdictPass},
		{"threshold fails", []ThresholdInput{{Expr: "connections.established >= 300"}}, false, report.VerdictFail},
		{"threshold passes, target unreachable", []ThresholdInput{{Expr: "errors.count >= 0"}}, true, report.VerdictError},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sum := fixture{connect: []int64{100, 200, 300}}.build(t)
			if tt.unreachable {
				sum.Connections.Established, sum.Connections.Failed = 0, sum.Connections.Attempted
			}
			g, errs := Compile(Input{Context: Context{Stages: 1}, Thresholds: tt.thresholds})
			if err := errors.Join(errs...); err != nil {
				t.Fatal(err)
			}
			g.Judge(sum)
			if sum.Verdict != tt.want {
				t.Errorf("verdict %q, want %q (warnings %q)", sum.Verdict, tt.want, sum.Warnings)
			}
		})
	}
}
