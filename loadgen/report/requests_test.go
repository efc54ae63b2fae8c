package report

import (
	"bytes"

	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/portstorm/portstorm/loadgen/metrics"
)

// requestRun records a keep-alive run of two connections in two stages of one second each:
// unrated requests (closed loop), or rated ones whose intended times came at offered per stage.
// Stage 0 writes 100 requests, one of them answered badly (echo_mismatch) and one reset; stage 1
// writes 50.
func requestRun(t *testing.T, rated bool, offered [2]uint64) (total *metrics.Snapshot, stages []*metrics.Snapshot) {
	t.Helper()
	rec := metrics.NewRecorder(t0, 2)
	a, b := rec.Shard(0), rec.Shard(1)
	for _, sh := range []*metrics.Shard{a, b} {
		sh.Attempt()
		sh.Connected(metrics.Timing{Connect: 200 * time.Microsecond})
	}
	req := func(sh *metrics.Shard, service time.Duration, err error) {
		rt := metrics.RequestTiming{FirstByte: service / 2, Service: service, Out: 64, In: 64}
		if rated {
			rt.Intended, rt.Lag, rt.WindowWait = true, 50*time.Microsecond, 2*time.Millisecond
		}
		sh.Request(rt, err)
	}
	for i := range 100 {
		var err error
		switch i {
		case 10:
			err = metrics.ErrEchoMismatch
		case 20:
			err = reset()
		}
		req([]*metrics.Shard{a, b}[i%2], 300*time.Microsecond, err)
	}
	if rated {
		a.Offer(offered[0])
	}
	s0 := rec.Cut(at(time.Second), 0)
	for i := range 50 {
		req([]*metrics.Shard{a, b}[i%2], 400*time.Microsecond, nil)
	}
	if rated {
		b.Offer(offered[1])
	}
	s1 := rec.Cut(at(2*time.Second), 1)
	total = metrics.NewSnapshot()
	for _, s := range []*metrics.Snapshot{s0, s1} {
		if err := total.Add(s); err != nil {
			t.Fatal(err)
		}
	}
	return total, []*metrics.Snapshot{s0, s1}
}

func TestBuildRequests(t *testing.T) {
	tests := []struct {
		name    string
		rated   bool
		offered [2]uint64
		// want: the run's figures, stage 0's written and per second, and the warning's words.
		want        Requests
		stage0      Requests
		headline    string
		warn        string
		noRequests  bool
		connections bool
	}{
		{
			name:     "unrated keep-alive: offered is written, no shortfall, rtt heads",
			want:     Requests{Written: 150, Offered: 150, Errors: 2, ErrorRate: 2.0 / 150, PerSecond: 75, OfferedPerSecond: 75},
			stage0:   Requests{Written: 100, Offered: 100, Errors: 2, ErrorRate: 0.02, PerSecond: 100, OfferedPerSecond: 100},
			headline: "rtt",
		},
		{
			name: "rated and held: request_intended heads", rated: true, offered: [2]uint64{100, 50},
			want:     Requests{Written: 150, Offered: 150, Errors: 2, ErrorRate: 2.0 / 150, PerSecond: 75, OfferedPerSecond: 75, Rated: true},
			stage0:   Requests{Written: 100, Offered: 100, Errors: 2, ErrorRate: 0.02, PerSecond: 100, OfferedPerSecond: 100, Rated: true},
			headline: "request_intended",
		},
		{
			name: "rated and 25% short in stage 1: a warning says by how much and blames the window", rated: true, offered: [2]uint64{100, 100},
			want: Requests{Written: 150, Offered: 200, Errors: 2, ErrorRate: 2.0 / 150, PerSecond: 75, OfferedPerSecond: 100,
				Shortfall: 0.25, Rated: true},
			stage0:   Requests{Written: 100, Offered: 100, Errors: 2, ErrorRate: 0.02, PerSecond: 100, OfferedPerSecond: 100, Rated: true},
			headline: "request_intended",
			warn:     "could not hold its request rate: 150 of 200 requests offered were written (25.0% short; 75/s achieved of 100/s offered); window_wait p99 2.00ms",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			total, stages := requestRun(t, tc.rated, tc.offered)
			p := fixturePlan()
			p.Load.Model = "concurrency"
			s, err := Build(Input{Plan: p, Start: t0, End: at(2 * time.Second), Total: total, Stages: stages})
			if err != nil {
				t.Fatal(err)
			}
			check := func(what string, got *Requests, want Requests) {
				t.Helper()
				if got == nil {
					t.Fatalf("%s: no requests", what)
				}
				if got.Outcomes["ok"] != got.Written-got.Errors || got.Outcomes["echo_mismatch"] != 1 || got.Outcomes["ECONNRESET"] != 1 {
					t.Errorf("%s outcomes %v", what, got.Outcomes)
				}
				g := *got
				g.Outcomes = nil
				if math.Abs(g.Shortfall-want.Shortfall) < 1e-12 {
					g.Shortfall = want.Shortfall
				}
				if !reflect.DeepEqual(g, want) {
					t.Errorf("%s\n got %+v\nwant %+v", what, g, want)
				}
			}
			check("requests", s.Requests, tc.want)
			check("stages[0].requests", s.Stages[0].Requests, tc.stage0)
			if h := Headline(s); h != tc.headline {
				t.Errorf("headline %q, want %q", h, tc.headline)
			}
			var warned string
			for _, w := range s.Warnings {
				if strings.Contains(w, "request rate") {
					warned = w
				}
			}
			switch {
			case tc.warn == "" && warned != "":
				t.Errorf("warned %q", warned)
			case tc.warn != "" && !strings.Contains(warned, tc.warn):
				t.Errorf("warning %q\nwant it to hold %q", warned, tc.warn)
			}
		})
	}
}

// TestHeadline: the headline latency is decided from what the result holds, not from the plan.
func TestHeadline(t *testing.T) {
	lat := func(names ...string) map[string]LatencySummary {
		m := map[string]LatencySummary{}
		for _, n := range names {
			m[n] = LatencySummary{Count: 10}
		}
		return m
	}
	arrival, concurrency := fixturePlan(), fixturePlan()
	concurrency.Load.Model = "concurrency"
	tests := []struct {
		name string
		s    *Summary
		want string
	}{
		{"connection run", &Summary{Plan: concurrency, Latency: lat("connect", "rtt"),
			Connections: Connections{Established: 10}, Requests: &Requests{Written: 10}}, "connect"},
		{"arrival connection run", &Summary{Plan: arrival, Latency: lat("connect", "connect_intended", "rtt"),
			Connections: Connections{Established: 10}, Requests: &Requests{Written: 10}}, "connect_intended"},
		{"keep-alive run", &Summary{Plan: arrival, Latency: lat("connect", "connect_intended", "rtt"),
			Connections: Connections{Established: 10}, Requests: &Requests{Written: 2000}}, "rtt"},
		{"rated run, whatever the plan says", &Summary{Plan: concurrency, Latency: lat("connect", "rtt", "request_intended"),
			Connections: Connections{Established: 10}, Requests: &Requests{Written: 10}}, "request_intended"},
		{"a summary from before requests were counted", &Summary{Plan: concurrency, Latency: lat("connect", "rtt"),
			Connections: Connections{Established: 10}}, "connect"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := Headline(tc.s); got != tc.want {
				t.Errorf("Headline = %q, want %q", got, tc.want)
			}
		})
	}
}

// TestRequestsLineWidth: the requests line wraps within textWidth columns however many outcomes
// failed, and prints nothing for a run without requests.
func TestRequestsLineWidth(t *testing.T) {
	every := map[string]uint64{}
	for o := range metrics.NumOutcomes {
		every[o.String()] = 1_000_000_000 + uint64(o)
	}
	tests := []struct {
		name  string
		r     *Requests
		lines int
		holds []string
	}{
		{"none", nil, 0, nil},
		{"nothing written", &Requests{Outcomes: allOutcomes(nil)}, 0, nil},
		{"unrated", &Requests{Written: 5, Offered: 5, PerSecond: 2.5, Outcomes: allOutcomes(map[string]uint64{"ok": 5})}, 1,
			[]string{"requests     written 5 (2.50/s)  errors 0"}},
		{"rated, every outcome failed", &Requests{Written: 99_999_999_999, Offered: 199_999_999_999, Errors: 17_000_000_000,
			ErrorRate: 0.17, PerSecond: 1234567.8, OfferedPerSecond: 2469135.6, Shortfall: 0.5, Rated: true, Outcomes: every}, 7,
			[]string{"offered 199999999999 (2469136/s)", "shortfall 50.00%", "other 1000000017"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			writeRequests(&b, tc.r)
			out := b.String()
			lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
			if out == "" {
				lines = nil
			}
			if len(lines) != tc.lines {
				t.Errorf("%d lines, want %d:\n%s", len(lines), tc.lines, out)
			}
			for _, l := range lines {
				if n := utf8.RuneCountInString(l); n > textWidth {
					t.Errorf("line of %d columns: %q", n, l)
				}
			}
			for _, h := range tc.holds {
				if !strings.Contains(out, h) {
					t.Errorf("the text lacks %q:\n%s", h, out)
				}
			}
		})
	}
}

// TestHLogRequestHistogramsMergeExactly: the request histograms are tagged in latency.hlog like the
// others, and a run recorded by three workers (or segments), merged, logs exactly the counts and
// percentiles one recorder logs for the same requests.
func TestHLogRequestHistogramsMergeExactly(t *testing.T) {
	record := func(shards []*metrics.Shard) {
		for i := range 3000 {
			sh := shards[i%len(shards)]
			sh.Request(metrics.RequestTiming{Intended: true, Lag: time.Duration(i%97) * time.Microsecond,
				WindowWait: time.Duration(i%13) * 100 * time.Microsecond, FirstByte: 100 * time.Microsecond,
				Service: time.Duration(200+i) * time.Microsecond, Out: 64, In: 64}, nil)
		}
		shards[0].Offer(3100)
	}
	one := metrics.NewRecorder(t0, 1)
	record([]*metrics.Shard{one.Shard(0)})
	single := one.Cut(at(time.Second), 0)

	merged := metrics.NewSnapshot()
	var workers []*metrics.Shard
	var recs []*metrics.Recorder
	for range 3 {
		r := metrics.NewRecorder(t0, 2)
		recs = append(recs, r)
		workers = append(workers, r.Shard(0), r.Shard(1))
	}
	record(workers)
	for _, r := range recs {
		if err := merged.Combine(r.Cut(at(time.Second), 0)); err != nil {
			t.Fatal(err)
		}
	}
	logged := func(s *metrics.Snapshot) map[string][2]int64 {
		dir := t.TempDir()
		l, err := CreateHLog(dir, t0)
		if err != nil {
			t.Fatal(err)
		}
		if err := l.Write(s); err != nil {
			t.Fatal(err)
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		f, err := os.Open(filepath.Join(dir, HLogFile))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		out := map[string][2]int64{}
		if err := ReadHLog(f, t0, func(iv HLogInterval) error {
			out[iv.Tag] = [2]int64{iv.Hist.TotalCount(), iv.Hist.ValueAtQuantile(99)}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return out
	}
	a, b := logged(single), logged(merged)
	for _, tag := range []string{"request_intended", "request_lag", "window_wait", "rtt", "first_byte"} {
		if a[tag][0] != 3000 || a[tag] != b[tag] {
			t.Errorf("%s: one recorder logs (count, p99) %v, three workers merged %v; want 3000 values alike", tag, a[tag], b[tag])
		}
	}
	if merged.Requests != single.Requests || merged.RequestsOffered != single.RequestsOffered || merged.RequestsOffered != 3100 {
		t.Errorf("merged requests %d offered %d, one recorder %d and %d", merged.Requests, merged.RequestsOffered, single.Requests, single.RequestsOffered)
	}
}

// TestRequestCharts: a run with requests draws the request rate and latency charts (the rtt chart
// is part of the latter), from latency.hlog or, without it, from timeline.csv; a lone interval of
// connects still draws its points; a run without requests draws neither.
func TestRequestCharts(t *testing.T) {
	for _, tc := range []struct {
		name     string
		requests bool
		rated    bool
		keepLog  bool
		want     []string
		series   []string
	}{
		{"keep-alive, from the log", true, false, true,
			[]string{ChartConnections, ChartRequests, ChartRequestLatency, ChartLatency + "connect"}, []string{"achieved (written)/s", "rtt p99"}},
		{"rated, from the log", true, true, true,
			[]string{ChartConnections, ChartRequests, ChartRequestLatency, ChartLatency + "connect"}, []string{"offered/s", "request_intended p99", "rtt p50"}},
		{"rated, from the timeline", true, true, false,
			[]string{ChartConnections, ChartRequests, ChartRequestLatency, ChartLatency + "connect"}, []string{"offered/s", "request_intended p99"}},
		{"no requests", false, false, true, []string{ChartConnections, ChartLatency + "connect"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			var snaps []*metrics.Snapshot
			var total, rows = metrics.NewSnapshot(), []TimelineRow(nil)
			if tc.requests {
				// Offered 100 and 100, written 100 and 50: stage 1 falls short when rated.
				tot, st := requestRun(t, tc.rated, [2]uint64{100, 100})
				snaps, total = st, tot
			} else {
				rec := metrics.NewRecorder(t0, 1)
				sh := rec.Shard(0)
				sh.Attempt()
				sh.Connected(metrics.Timing{Connect: 200 * time.Microsecond})
				snaps = []*metrics.Snapshot{rec.Cut(at(time.Second), 0), rec.Cut(at(2*time.Second), 1)}
				for _, s := range snaps {
					if err := total.Add(s); err != nil {
						t.Fatal(err)
					}
				}
			}
			l, err := CreateHLog(dir, t0)
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range snaps {
				rows = append(rows, Row(s))
				if err := l.Write(s); err != nil {
					t.Fatal(err)
				}
			}
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			if err := WriteTimeline(dir, rows); err != nil {
				t.Fatal(err)
			}
			if !tc.keepLog {
				os.Remove(filepath.Join(dir, HLogFile))
			}
			sum, err := Build(Input{Plan: fixturePlan(), Start: t0, End: at(2 * time.Second), Total: total, Stages: snaps})
			if err != nil {
				t.Fatal(err)
			}
			d, err := LoadChartData(dir, sum)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, id := range ChartIDs(sum, d) {
				if id != ChartSpectrum && id != ChartOutcomes && id != ChartPorts {
					got = append(got, id)
				}
			}
			if strings.Join(got, " ") != strings.Join(tc.want, " ") {
				t.Errorf("charts %v, want %v", got, tc.want)
			}
			var page bytes.Buffer
			if err := RenderHTML(&page, sum, d); err != nil {
				t.Fatal(err)
			}
			for _, s := range tc.series {
				if !strings.Contains(page.String(), `"name":"`+s+`"`) {
					t.Errorf("the page has no series %q", s)
				}
			}
			if tc.requests && !strings.Contains(page.String(), `<div class="label">requests</div>`) {
				t.Error("the page has no requests card")
			}
			// The connect chart of a run that connected in its first interval only marks its point.
			if !strings.Contains(page.String(), `"showSymbol":true`) {
				t.Error("no chart marks its points")
			}
		})
	}
}
