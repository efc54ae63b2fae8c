package report

import (
	"bytes"
	"encoding/xml"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	hdr "github.com/HdrHistogram/hdrhistogram-go"

	"github.com/portstorm/portstorm/loadgen/metrics"
	"github.com/portstorm/portstorm/loadgen/plan"
)

// runOf builds the snapshots of a small run: n intervals of 100 ms, interval i recording i+1
// connect latencies of (i+1)*100 µs, with a failure in the last.
func runOf(t *testing.T, n int) (*Summary, []*metrics.Snapshot) {
	t.Helper()
	var snaps []*metrics.Snapshot
	total := metrics.NewSnapshot()
	for i := range n {
		s := metrics.NewSnapshot()
		s.Seq, s.StartUS, s.EndUS = i, int64(i)*100_000, int64(i+1)*100_000
		s.Stage = i * 2 / n
		for range i + 1 {
			s.Hist[metrics.Connect].RecordValue(int64(i+1) * 100)
			s.Hist[metrics.RTT].RecordValue(50)
		}
		k := uint64(i + 1)
		s.Attempted, s.Established, s.Closed, s.Active, s.PeakActive = k, k, k, int64(i), int64(i+1)
		s.Outcomes[metrics.OK] = k
		if i == n-1 {
			s.Attempted++
			s.Failed++
			s.Outcomes[metrics.ECONNREFUSED]++
			s.First[metrics.ECONNREFUSED] = &metrics.FirstSeen{AtUS: s.StartUS, Concurrency: 3}
			s.Examples[metrics.ECONNREFUSED] = []string{"dial tcp 127.0.0.1:1: connect: connection refused"}
		}
		if err := total.Add(s); err != nil {
			t.Fatal(err)
		}
		snaps = append(snaps, s)
	}
	p := &plan.Plan{Version: 1, Name: "out", Load: plan.Load{Model: "concurrency",
		Stages: []plan.Stage{{Duration: plan.Duration(time.Second), Target: 5}, {Duration: plan.Duration(time.Second), Target: 5}}}}
	sum, err := Build(Input{Plan: p, Start: t0, End: t0.Add(time.Duration(n) * 100 * time.Millisecond), Total: total})
	if err != nil {
		t.Fatal(err)
	}
	return sum, snaps
}

// writeRun writes a results folder the way the coordinator does.
func writeRun(t *testing.T, n int) (string, *Summary) {
	t.Helper()
	dir := t.TempDir()
	sum, snaps := runOf(t, n)
	l, err := CreateHLog(dir, t0)
	if err != nil {
		t.Fatal(err)
	}
	var rows []TimelineRow
	for _, s := range snaps {
		rows = append(rows, Row(s))
		if err := l.Write(s); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	sum.Thresholds = []ThresholdResult{
		{Expr: "connect.p99 < 500us", Observed: "1ms", Pass: false, Metric: "connect.p99", Condition: "< 500us"},
		{Expr: `errors.rate < 5% <script>alert(1)</script>`, Observed: "1.8%", Pass: true},
	}
	sum.Verdict = "fail"
	for _, w := range []func() error{
		func() error { return WriteTimeline(dir, rows) },
		func() error { return WriteSummary(dir, sum) },
		func() error { return WriteJUnit(dir, sum) },
		func() error { return WriteHTML(dir, sum) },
	} {
		if err := w(); err != nil {
			t.Fatal(err)
		}
	}
	return dir, sum
}

func TestHLogRoundTrip(t *testing.T) {
	dir, sum := writeRun(t, 10)
	f, err := os.Open(filepath.Join(dir, HLogFile))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	counts := map[string]int64{}
	var lastEnd float64
	err = ReadHLog(f, t0, func(iv HLogInterval) error {
		counts[iv.Tag] += iv.Hist.TotalCount()
		if iv.Tag == "connect" {
			if iv.StartS < lastEnd-1e-9 || iv.EndS-iv.StartS < 0.098 || iv.EndS-iv.StartS > 0.102 {
				t.Errorf("interval [%v, %v] after %v", iv.StartS, iv.EndS, lastEnd)
			}
			lastEnd = iv.EndS
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if counts["connect"] != sum.Latency["connect"].Count || counts["rtt"] != sum.Latency["rtt"].Count || len(counts) != 2 {
		t.Errorf("counts %v, summary connect %d rtt %d", counts, sum.Latency["connect"].Count, sum.Latency["rtt"].Count)
	}
	if lastEnd < 0.999 || lastEnd > 1.001 {
		t.Errorf("last interval ends at %v s", lastEnd)
	}
}

func TestLatencySeriesMerges(t *testing.T) {
	dir, _ := writeRun(t, 10)
	tests := []struct {
		name      string
		maxPoints int
		points    int
		firstP99  int64
	}{
		{"one point per interval", 100, 10, 100},
		{"merged in pairs", 5, 5, 200},
		{"merged in threes", 4, 4, 300},
		{"one point", 1, 1, 1000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			series, err := LatencySeries(filepath.Join(dir, HLogFile), t0, tt.maxPoints)
			if err != nil {
				t.Fatal(err)
			}
			pts := series["connect"]
			if len(pts) != tt.points {
				t.Fatalf("%d points, want %d", len(pts), tt.points)
			}
			var n int64
			for _, p := range pts {
				n += p.Count
			}
			if n != 55 {
				t.Errorf("the points hold %d values, want 55", n)
			}
			// Merged windows keep true percentiles: the window's p99 is its largest value.
			if got := pts[0].P99; got < tt.firstP99 || got > tt.firstP99+1 {
				t.Errorf("first window p99 %d, want %d", got, tt.firstP99)
			}
		})
	}
	if _, err := LatencySeries(filepath.Join(dir, "missing.hlog"), t0, 10); !os.IsNotExist(err) {
		t.Errorf("missing file: %v", err)
	}
}

func TestHLogIsReadByHdrHistogramTools(t *testing.T) {
	dir, _ := writeRun(t, 3)
	b, err := os.ReadFile(filepath.Join(dir, HLogFile))
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	for _, want := range []string{"#[Histogram log format version 1.3]", "#[StartTime: ", "#[BaseTime: ", `"StartTimestamp","Interval_Length","Interval_Max","Interval_Compressed_Histogram"`, "Tag=connect,", "Tag=rtt,"} {
		if !strings.Contains(text, want) {
			t.Errorf("the log lacks %q", want)
		}
	}
	r := hdr.NewHistogramLogReader(bytes.NewReader(b))
	n := 0
	for {
		h, err := r.NextIntervalHistogram()
		if err != nil {
			t.Fatal(err)
		}
		if h == nil {
			break
		}
		n++
	}
	if n != 6 {
		t.Errorf("%d intervals read, want 6", n)
	}
}

func TestReadHLogCorrupt(t *testing.T) {
	for _, tt := range []struct{ name, text string }{
		{"bad payload", "Tag=connect,0.000,0.100,0.001,HISTFAAAAbad\n"},
		{"garbage base64", "Tag=connect,0.0,0.1,0.0,!!!!\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := ReadHLog(strings.NewReader(tt.text), t0, func(HLogInterval) error { return nil })
			if err == nil {
				t.Error("a corrupt log read without error")
			}
		})
	}
}

func TestJUnit(t *testing.T) {
	dir, sum := writeRun(t, 4)
	sum.Baseline = &BaselineResult{File: "base.json", Pass: false, Checks: []BaselineCheck{
		{Metric: "connect.p99", Base: "500µs", New: "1ms", Delta: "+100%", Tolerance: "+10%", Pass: false},
		{Metric: "connections.attempted", Base: "11", New: "11", Delta: "0", Tolerance: "exact", Pass: true},
	}}
	if err := WriteJUnit(dir, sum); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, JUnitFile))
	if err != nil {
		t.Fatal(err)
	}
	var j JUnitSuites
	if err := xml.Unmarshal(b, &j); err != nil {
		t.Fatal(err)
	}
	s := j.Suites[0]
	if j.Tests != 5 || j.Failures != 2 || s.Tests != 5 || s.Failures != 2 {
		t.Fatalf("tests %d failures %d", j.Tests, j.Failures)
	}
	want := []struct {
		class, name string
		fails       bool
		msg         string
	}{
		{"portstorm.out.run", "run completed", false, ""},
		{"portstorm.out.thresholds", "connect.p99 < 500us", true, "connect.p99 < 500us: observed 1ms"},
		{"portstorm.out.thresholds", "errors.rate < 5% <script>alert(1)</script>", false, ""},
		{"portstorm.out.baseline", "connect.p99 vs baseline (+10%)", true, "connect.p99: baseline 500µs, observed 1ms (+100%)"},
		{"portstorm.out.baseline", "connections.attempted vs baseline (exact)", false, ""},
	}
	for i, w := range want {
		c := s.Cases[i]
		if c.ClassName != w.class || c.Name != w.name || (c.Failure != nil) != w.fails {
			t.Errorf("case %d: %s / %s failure %v, want %+v", i, c.ClassName, c.Name, c.Failure, w)
		}
		if w.fails && c.Failure.Message != w.msg {
			t.Errorf("case %d: message %q, want %q", i, c.Failure.Message, w.msg)
		}
	}
}

func TestTimelineReadBack(t *testing.T) {
	dir, _ := writeRun(t, 5)
	f, err := os.Open(filepath.Join(dir, TimelineFile))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tl, err := ReadTimeline(f)
	if err != nil {
		t.Fatal(err)
	}
	est, ok := tl.Column("established")
	if !ok || len(est) != 5 || est[4] != 5 {
		t.Errorf("established %v", est)
	}
	if _, ok := tl.Column("nope"); ok {
		t.Error("an unknown column read")
	}
	for _, bad := range []struct{ name, text, want string }{
		{"empty", "", "empty"},
		{"not a number", "t_s,active\n1.0,x\n", "timeline.csv:2: column active"},
		{"ragged", "t_s,active\n1.0\n", "wrong number of fields"},
	} {
		t.Run(bad.name, func(t *testing.T) {
			_, err := ReadTimeline(strings.NewReader(bad.text))
			if err == nil || !strings.Contains(err.Error(), bad.want) {
				t.Errorf("error %v, want %q", err, bad.want)
			}
		})
	}
}

func TestHTMLIsSelfContained(t *testing.T) {
	dir, sum := writeRun(t, 10)
	b, err := os.ReadFile(filepath.Join(dir, HTMLFile))
	if err != nil {
		t.Fatal(err)
	}
	page := string(b)
	// Everything but the inlined ECharts library: no external reference of any kind.
	i := strings.Index(page, echartsJS)
	if i < 0 {
		t.Fatal("ECharts is not inlined")
	}
	rest := page[:i] + page[i+len(echartsJS):]
	for _, re := range []string{`(?i)<script[^>]+src=`, `(?i)<link[^>]+href=`, `(?i)<img`, `(?i)url\(`, `(?i)@import`, `(?i)https?://`, `(?i)<iframe`} {
		if m := regexp.MustCompile(re).FindString(rest); m != "" {
			t.Errorf("report.html refers outside itself: %q", m)
		}
	}
	d, err := LoadChartData(dir, sum)
	if err != nil {
		t.Fatal(err)
	}
	ids := ChartIDs(sum, d)
	wantIDs := []string{ChartConnections, ChartLatency + "connect", ChartLatency + "rtt", ChartSpectrum, ChartOutcomes}
	if strings.Join(ids, " ") != strings.Join(wantIDs, " ") {
		t.Errorf("charts %v, want %v", ids, wantIDs)
	}
	for _, id := range ids {
		if !strings.Contains(page, `id="`+id+`"`) || !strings.Contains(page, "goecharts_"+id+".setOption") {
			t.Errorf("chart %s is not on the page", id)
		}
	}
	if strings.Contains(page, "<script>alert(1)") {
		t.Error("a threshold expression reached the page unescaped")
	}
	for _, want := range []string{"FAIL", "connect.p99", "ECONNREFUSED", "connection refused"} {
		if !strings.Contains(page, want) {
			t.Errorf("the page lacks %q", want)
		}
	}
}

func TestHTMLWithoutTimelineOrLog(t *testing.T) {
	dir, sum := writeRun(t, 3)
	os.Remove(filepath.Join(dir, HLogFile))
	os.Remove(filepath.Join(dir, TimelineFile))
	if err := WriteHTML(dir, sum); err != nil {
		t.Fatal(err)
	}
	d, err := LoadChartData(dir, sum)
	if err != nil {
		t.Fatal(err)
	}
	if ids := ChartIDs(sum, d); strings.Join(ids, " ") != ChartSpectrum {
		t.Errorf("charts %v from the summary alone", ids)
	}
}

func TestVerdictTable(t *testing.T) {
	s := &Summary{Verdict: "fail",
		Thresholds: []ThresholdResult{
			{Expr: "connect.p99 < 5ms", Metric: "connect.p99", Condition: "< 5ms", Observed: "730µs", Pass: true},
			{Expr: "errors.count == 0", Metric: "errors.count", Condition: "== 0", Observed: "3 at 1.20s", AbortOnFail: true, StoppedRun: true},
		},
		Stopped:  &Stopped{Threshold: "errors.count == 0", AtS: 1.2, Observed: "3"},
		Baseline: &BaselineResult{Checks: []BaselineCheck{{Metric: "connect.p50", Base: "80µs", New: "90µs", Delta: "+12.5%", Tolerance: "+10%"}}},
	}
	var b bytes.Buffer
	WriteVerdict(&b, s)
	want := `  stopped      at 1.20s: abort_on_fail threshold "errors.count == 0" failed (observed 3)
  verdict      FAIL: 1 of 2 threshold(s) failed; 1 of 1 baseline check(s) regressed
    metric                condition               observed       result
    connect.p99           < 5ms                   730µs          pass
    errors.count          == 0 (stopped the run)  3 at 1.20s     FAIL
    baseline connect.p50  +10% of 80µs            90µs (+12.5%)  FAIL
`
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
	b.Reset()
	WriteVerdict(&b, &Summary{Verdict: "pass"})
	if b.Len() != 0 {
		t.Errorf("a run without checks printed %q", b.String())
	}
}

// TestLatenessCharts: an arrival run's report draws schedule_lag over time, and slot_wait only
// when some arrival waited for a slot (otherwise it is all zeros), from latency.hlog or, without
// it, from timeline.csv's p99 columns.
func TestLatenessCharts(t *testing.T) {
	for _, tc := range []struct {
		name    string
		wait    time.Duration
		keepLog bool
		want    []string
	}{
		{"waited, from the log", 900 * time.Millisecond, true, []string{"slot_wait", "schedule_lag"}},
		{"waited, from the timeline", 900 * time.Millisecond, false, []string{"slot_wait", "schedule_lag"}},
		{"never waited", 0, true, []string{"schedule_lag"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			rec := metrics.NewRecorder(t0, 1)
			sh := rec.Shard(0)
			for i := range 10 {
				sh.Attempt()
				sh.Connected(metrics.Timing{SlotWait: tc.wait * time.Duration(i%2), Lag: 80 * time.Microsecond, Connect: 100 * time.Microsecond, Intended: true})
			}
			s := rec.Cut(at(time.Second), 0)
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
			if err := WriteTimeline(dir, []TimelineRow{Row(s)}); err != nil {
				t.Fatal(err)
			}
			if !tc.keepLog {
				os.Remove(filepath.Join(dir, HLogFile))
			}
			sum, err := Build(Input{Plan: fixturePlan(), Start: t0, End: at(time.Second), Total: s})
			if err != nil {
				t.Fatal(err)
			}
			d, err := LoadChartData(dir, sum)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, id := range ChartIDs(sum, d) {
				if name, ok := strings.CutPrefix(id, ChartLatency); ok && (name == "slot_wait" || name == "schedule_lag") {
					got = append(got, name)
				}
			}
			if strings.Join(got, " ") != strings.Join(tc.want, " ") {
				t.Errorf("lateness charts %v, want %v", got, tc.want)
			}
		})
	}
}

// cutLast is strings.Cut at the last sep.
func cutLast(s, sep string) (before, after string, found bool) {
	if i := strings.LastIndex(s, sep); i >= 0 {
		return s[:i], s[i+len(sep):], true
	}
	return s, "", false
}

// TestHLogLineMatchesHdr: latency.hlog's interval lines, encoded with metrics' kept encoder, are
// what hdrhistogram-go's HistogramLogWriter writes for the same intervals, byte for byte up to
// the histogram, and the histogram decodes to the one hdr's writer encoded (the encoder
// compresses at another zlib level).
func TestHLogLineMatchesHdr(t *testing.T) {
	for _, start := range []time.Time{t0, t0.Add(1234 * time.Millisecond)} {
		dir := t.TempDir()
		_, snaps := runOf(t, 40)
		l, err := CreateHLog(dir, start)
		if err != nil {
			t.Fatal(err)
		}
		var want bytes.Buffer
		w := hdr.NewHistogramLogWriter(&want)
		w.SetBaseTime(l.w.BaseTime())
		lines := 0
		for _, s := range snaps {
			if err := l.Write(s); err != nil {
				t.Fatal(err)
			}
			for i, h := range s.Hist {
				if h == nil || h.TotalCount() == 0 {
					continue
				}
				h.SetTag(metrics.Latency(i).String())
				h.SetStartTimeMs(start.UnixMilli() + s.StartUS/1000)
				h.SetEndTimeMs(start.UnixMilli() + s.EndUS/1000)
				if err := w.OutputIntervalHistogram(h); err != nil {
					t.Fatal(err)
				}
				lines++
			}
		}
		l.Close()
		b, err := os.ReadFile(filepath.Join(dir, HLogFile))
		if err != nil {
			t.Fatal(err)
		}
		_, got, _ := strings.Cut(string(b), "\"Interval_Max\",\"Interval_Compressed_Histogram\"\n")
		gotLines, wantLines := strings.Split(got, "\n"), strings.Split(want.String(), "\n")
		if lines == 0 || len(gotLines) != len(wantLines) {
			t.Fatalf("start %v: %d lines\n%s\nhdr's writer, %d:\n%s", start, len(gotLines), got, lines, want.String())
		}
		for i, g := range gotLines {
			// Everything but the histogram as hdr's writer has it; the histogram (compressed at
			// another level: metrics' encoder) decodes to the one hdr's writer encoded.
			gHead, gHist, _ := cutLast(g, ",")
			wHead, wHist, _ := cutLast(wantLines[i], ",")
			if gHead != wHead {
				t.Errorf("start %v: line %d is\n%s\nhdr's writer:\n%s", start, i, g, wantLines[i])
				continue
			}
			if gHist == wHist {
				continue
			}
			gh, gerr := hdr.Decode([]byte(gHist))
			wh, werr := hdr.Decode([]byte(wHist))
			if gerr != nil || werr != nil || !gh.Equals(wh) {
				t.Errorf("start %v: line %d's histogram decodes to another (%v, %v)", start, i, gerr, werr)
			}
		}
	}
}
