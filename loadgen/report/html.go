package report

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/go-echarts/go-echarts/v2/charts"
	"github.com/go-echarts/go-echarts/v2/opts"
	"github.com/go-echarts/go-echarts/v2/render"

	"github.com/portstorm/portstorm/loadgen/metrics"
	"github.com/portstorm/portstorm/loadgen/preflight"
	"github.com/portstorm/portstorm/loadgen/schedule"
)

// HTMLFile is the report's name in a results folder.
const HTMLFile = "report.html"

// echartsJS is Apache ECharts 5.4.3 (the version go-echarts v2.6 targets), dist/echarts.min.js of
// the npm package, Apache-2.0 (assets/ECHARTS-LICENSE, assets/ECHARTS-NOTICE). It is inlined into
// every report so that the page loads nothing when opened: no CDN, no network.
//
//go:embed assets/echarts.min.js
var echartsJS string

// maxChartPoints bounds the points of a time chart; longer runs are shown in merged windows.
const maxChartPoints = 1500

// ChartData is what the charts are drawn from besides the summary: the timeline and the latency
// series from latency.hlog. Either may be nil (a folder from an older build): the charts that need
// it fall back to what there is.
type ChartData struct {
	Timeline *Timeline
	Latency  map[string][]LatencyPoint
}

// LoadChartData reads timeline.csv and latency.hlog from a results folder; missing files are not
// errors, unreadable ones are.
func LoadChartData(dir string, s *Summary) (*ChartData, error) {
	d := &ChartData{}
	f, err := os.Open(filepath.Join(dir, TimelineFile))
	switch {
	case err == nil:
		d.Timeline, err = ReadTimeline(f)
		f.Close()
		if err != nil {
			return nil, err
		}
	case !errors.Is(err, fs.ErrNotExist):
		return nil, err
	}
	d.Latency, err = LatencySeries(filepath.Join(dir, HLogFile), s.StartedAt, maxChartPoints)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	return d, nil
}

// WriteHTML renders report.html into dir from the summary and the timeline.csv and latency.hlog
// beside it.
func WriteHTML(dir string, s *Summary) error {
	d, err := LoadChartData(dir, s)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	if err := RenderHTML(&buf, s, d); err != nil {
		return err
	}
	return WriteFileAtomic(filepath.Join(dir, HTMLFile), buf.Bytes())
}

// chart is one rendered chart of the page.
type chart struct {
	ID, Title, Caption string
	Element, Script    template.HTML
}

// Chart IDs, stable so that tests and people can find each chart. go-echarts names JavaScript
// variables after them, so they are identifiers: no hyphens.
const (
	ChartConnections       = "chart_connections"
	ChartRequests          = "chart_requests"
	ChartRequestLatency    = "chart_request_latency"
	ChartLatency           = "chart_latency_" // + latency name
	ChartSpectrum          = "chart_spectrum"
	ChartOutcomes          = "chart_outcomes"
	ChartPorts             = "chart_ports"
	ChartPortsDestinations = "chart_ports_destinations"
	ChartPortsKnee         = "chart_ports_occupancy"
	ChartPortsReuse        = "chart_ports_reuse"
)

// ChartIDs lists the charts a report of s with d holds, in page order.
func ChartIDs(s *Summary, d *ChartData) []string {
	cs, _ := buildCharts(s, d)
	ids := make([]string, len(cs))
	for i, c := range cs {
		ids[i] = c.ID
	}
	return ids
}

// RenderHTML writes the self-contained report page.
func RenderHTML(w io.Writer, s *Summary, d *ChartData) error {
	if d == nil {
		d = &ChartData{}
	}
	cs, err := buildCharts(s, d)
	if err != nil {
		return err
	}
	page := newPage(s, d, cs)
	return pageTemplate.Execute(w, page)
}

// snippet renders a go-echarts chart into its element and script, turning the library's panics
// (template errors) into an error.
func snippet(r render.Renderer) (sn render.ChartSnippet, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("rendering a chart: %v", p)
		}
	}()
	return r.RenderSnippet(), nil
}

type chartSpec struct {
	id, title, caption string
	r                  render.Renderer
}

func buildCharts(s *Summary, d *ChartData) ([]chart, error) {
	specs := searchCharts(s)
	if d.Timeline != nil {
		if c := connectionsChart(s, d.Timeline); c != nil {
			specs = append(specs, chartSpec{ChartConnections, "Connections over time",
				"Open connections at the end of each interval and the most open at once within it (left axis); connections opened and closed per second (right axis). Dashed vertical lines mark stage boundaries.", c})
		}
	}
	requestCharts := false
	if r := s.Requests; r != nil && (r.Written > 0 || r.Offered > 0) {
		if d.Timeline != nil {
			if c := requestsChart(d.Timeline); c != nil {
				specs = append(specs, chartSpec{ChartRequests, "Requests over time",
					"Requests written per second (achieved) and, when the requests were rated, offered per second (those whose intended send time came), with failed requests per second, per interval. Dashed vertical lines mark stage boundaries.", c})
			}
		}
		if c := requestLatencyChart(s, d); c != nil {
			requestCharts = true
			specs = append(specs, chartSpec{ChartRequestLatency, "Request latency over time",
				"Round trip (rtt: request written to the full answer read) and, for rated requests, request_intended (intended send time to the full answer: the coordinated-omission-free figure), p50 and p99 of each interval, log scale.", c})
		}
	}
	for _, l := range []metrics.Latency{metrics.Connect, metrics.ConnectIntended, metrics.SlotWait, metrics.ScheduleLag, metrics.RTT} {
		name := l.String()
		if l == metrics.RTT && requestCharts {
			continue // drawn in the request latency chart
		}
		if ls, ok := s.Latency[name]; !ok || ls.Count == 0 || l == metrics.SlotWait && ls.Max <= metrics.HistLowest {
			// (slot_wait of a run that never waited for a slot is all zeros: nothing to draw.)
			continue
		}
		c := latencyChart(name, d)
		if c == nil {
			continue
		}
		specs = append(specs, chartSpec{ChartLatency + name, latencyTitles[name] + ", percentiles over time",
			latencyCaptions[name] + " Percentiles of each interval, log scale.", c})
	}
	if c := spectrumChart(s); c != nil {
		specs = append(specs, chartSpec{ChartSpectrum, "Percentile spectrum",
			"Latency at each percentile over the whole run (HdrHistogram), log scales: the tail is on the right.", c})
	}
	if d.Timeline != nil {
		if c := outcomesChart(d.Timeline); c != nil {
			specs = append(specs, chartSpec{ChartOutcomes, "Connection outcomes over time",
				"How connections ended, per interval: ok in green, each failure by its errno.", c})
		}
	}
	specs = append(specs, portCharts(s, d.Timeline)...)
	out := make([]chart, 0, len(specs))
	for _, sp := range specs {
		sn, err := snippet(sp.r)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", sp.id, err)
		}
		out = append(out, chart{ID: sp.id, Title: sp.title, Caption: sp.caption,
			Element: template.HTML(sn.Element), Script: template.HTML(sn.Script)})
	}
	return out, nil
}

var latencyTitles = map[string]string{
	"connect": "Connect latency", "connect_intended": "Connect latency from the intended start",
	"schedule_lag": "Schedule lag", "rtt": "Round trip", "lifetime": "Lifetime",
	"first_byte": "Time to first byte", "tls_handshake": "TLS handshake", "slot_wait": "Slot wait",
}

var latencyCaptions = map[string]string{
	"connect":          "connect() started to established.",
	"connect_intended": "Intended start to established, including any time the generator was late or waited for a free slot: the coordinated-omission-free figure.",
	"schedule_lag":     "How late the generator started connections after their intended start, beyond any wait for a free slot: the generator falling behind.",
	"slot_wait":        "How long arrivals waited for a free load.max_in_flight slot: the target (or the window) holding the load back.",
	"rtt":              "Request written to the full answer read (the echo, the HTTP response, the Redis reply).",
	"first_byte":       "Request written to the first byte of the answer.",
	"tls_handshake":    "Established to TLS handshake complete.",
}

// Palette: readable on white, distinguishable for the common colour-vision deficiencies.
var (
	colorOK      = "#3a9a5b"
	seriesColors = []string{"#2f6db5", "#e08a1e", "#c23b3b", "#7b4fb3", "#222222", "#2a9d9d"}
	failColors   = []string{"#c23b3b", "#e08a1e", "#8e44ad", "#b5651d", "#d35480", "#7f7f7f", "#a01010", "#f2b134", "#5a3d8a", "#444444"}
)

// usFormatter shows microseconds with a unit, on axes and in tooltips.
const usFormatter = `function (v) { if (v == null || isNaN(v)) { return '-'; } if (v >= 1e6) { return (v / 1e6).toFixed(2) + ' s'; } if (v >= 1e3) { return (v / 1e3).toFixed(v >= 1e4 ? 1 : 2) + ' ms'; } return Math.round(v) + ' µs'; }`

func baseOpts(id, height string) []charts.GlobalOpts {
	return []charts.GlobalOpts{
		charts.WithInitializationOpts(opts.Initialization{ChartID: id, Width: "100%", Height: height, Theme: "white"}),
		charts.WithAnimation(false),
		charts.WithTooltipOpts(opts.Tooltip{Show: opts.Bool(true), Trigger: "axis"}),
		charts.WithLegendOpts(opts.Legend{Show: opts.Bool(true), Top: "4", Left: "center"}),
		charts.WithGridOpts(opts.Grid{Left: "64", Right: "64", Top: "48", Bottom: "48", ContainLabel: opts.Bool(true)}),
		charts.WithColorsOpts(seriesColors),
	}
}

func timeAxis() opts.XAxis {
	return opts.XAxis{Type: "value", Name: "time into the run (s)", NameLocation: "middle", NameGap: 28, Min: 0,
		SplitLine: &opts.SplitLine{Show: opts.Bool(false)}}
}

func xy(x, y float64) opts.LineData {
	return opts.LineData{Value: []any{round3(x), round3(y)}}
}

func round3(v float64) float64 { return math.Round(v*1000) / 1000 }

// stageMarks are dashed vertical lines where the timeline's stage changes.
func stageMarks(t *Timeline) []opts.MarkLineNameXAxisItem {
	st, ok1 := t.Column("stage")
	ts, ok2 := t.Column("t_s")
	if !ok1 || !ok2 {
		return nil
	}
	var out []opts.MarkLineNameXAxisItem
	for i := 1; i < len(st); i++ {
		if st[i] != st[i-1] {
			out = append(out, opts.MarkLineNameXAxisItem{Name: "stage " + strconv.Itoa(int(st[i])), XAxis: round3(ts[i-1])})
		}
	}
	return out
}

func markOpts(marks []opts.MarkLineNameXAxisItem) []charts.SeriesOpts {
	if len(marks) == 0 {
		return nil
	}
	return []charts.SeriesOpts{
		charts.WithMarkLineNameXAxisItemOpts(marks...),
		charts.WithMarkLineStyleOpts(opts.MarkLineStyle{Symbol: []string{"none", "none"},
			LineStyle: &opts.LineStyle{Type: "dashed", Color: "#999999", Width: 1},
			Label:     &opts.Label{Show: opts.Bool(true), Formatter: "{b}", Color: "#666666"}}),
	}
}

func connectionsChart(s *Summary, t *Timeline) *charts.Line {
	ts, ok := t.Column("t_s")
	active, ok2 := t.Column("active")
	if !ok || !ok2 || len(ts) == 0 {
		return nil
	}
	peakCol, _ := t.Column("peak_active")
	est, _ := t.Column("established")
	closed, _ := t.Column("closed")
	c := charts.NewLine()
	c.SetGlobalOptions(append(baseOpts(ChartConnections, "360px"),
		charts.WithXAxisOpts(timeAxis()),
		charts.WithYAxisOpts(opts.YAxis{Type: "value", Name: "open"}),
	)...)
	c.ExtendYAxis(opts.YAxis{Type: "value", Name: "per second", Position: "right", SplitLine: &opts.SplitLine{Show: opts.Bool(false)}})
	var a, pk, op, cl []opts.LineData
	prev := 0.0
	for i, t := range ts {
		a = append(a, xy(t, active[i]))
		if peakCol != nil {
			pk = append(pk, xy(t, peakCol[i]))
		}
		if dt := t - prev; dt >= 0.001 && est != nil && closed != nil {
			op = append(op, xy(t, est[i]/dt))
			cl = append(cl, xy(t, closed[i]/dt))
		}
		prev = t
	}
	line := opts.LineChart{ShowSymbol: opts.Bool(false)}
	c.AddSeries("open connections", a, append([]charts.SeriesOpts{charts.WithLineChartOpts(opts.LineChart{ShowSymbol: opts.Bool(false), Step: "end"}),
		charts.WithAreaStyleOpts(opts.AreaStyle{Opacity: opts.Float(0.12)}), charts.WithLineStyleOpts(opts.LineStyle{Width: 2})}, markOpts(stageMarks(t))...)...)
	if len(pk) > 0 {
		c.AddSeries("peak open in interval", pk, charts.WithLineChartOpts(opts.LineChart{ShowSymbol: opts.Bool(false), Step: "end"}),
			charts.WithLineStyleOpts(opts.LineStyle{Width: 1, Type: "dashed"}))
	}
	if len(op) > 0 {
		line.YAxisIndex = 1
		c.AddSeries("opened/s", op, charts.WithLineChartOpts(line), charts.WithLineStyleOpts(opts.LineStyle{Width: 1.5}))
		c.AddSeries("closed/s", cl, charts.WithLineChartOpts(line), charts.WithLineStyleOpts(opts.LineStyle{Width: 1.5, Type: "dotted"}))
	}
	return c
}

// requestsChart draws requests per second per interval from timeline.csv: achieved (written),
// offered when it differs (rated requests), and failed requests.
func requestsChart(t *Timeline) *charts.Line {
	ts, ok := t.Column("t_s")
	written, ok2 := t.Column("requests_per_s")
	if !ok || !ok2 || len(ts) == 0 {
		return nil
	}
	offered, _ := t.Column("requests_offered_per_s")
	errs, _ := t.Column("request_errors")
	c := charts.NewLine()
	c.SetGlobalOptions(append(baseOpts(ChartRequests, "320px"),
		charts.WithXAxisOpts(timeAxis()),
		charts.WithYAxisOpts(opts.YAxis{Type: "value", Name: "requests / s"}),
	)...)
	var w, o, e []opts.LineData
	rated, failed := false, false
	prev := 0.0
	for i, t := range ts {
		dt := t - prev
		prev = t
		if dt < 0.001 {
			continue // a stage cut: no time to rate over
		}
		w = append(w, xy(t, written[i]))
		if offered != nil {
			o = append(o, xy(t, offered[i]))
			rated = rated || offered[i] != written[i]
		}
		if errs != nil {
			e = append(e, xy(t, errs[i]/dt))
			failed = failed || errs[i] > 0
		}
	}
	if len(w) == 0 {
		return nil
	}
	line := charts.WithLineChartOpts(opts.LineChart{ShowSymbol: opts.Bool(len(w) < 3)})
	if rated {
		c.AddSeries("offered/s", o, line, charts.WithLineStyleOpts(opts.LineStyle{Width: 1.5, Type: "dashed"}))
	}
	c.AddSeries("achieved (written)/s", w, append([]charts.SeriesOpts{line, charts.WithLineStyleOpts(opts.LineStyle{Width: 2})}, markOpts(stageMarks(t))...)...)
	if failed {
		c.AddSeries("failed/s", e, line, charts.WithLineStyleOpts(opts.LineStyle{Width: 1, Color: failColors[0]}))
	}
	return c
}

// requestLatencyChart draws rtt and request_intended p50 and p99 per interval, from latency.hlog
// or, without it, the p99 columns of timeline.csv.
func requestLatencyChart(s *Summary, d *ChartData) *charts.Line {
	c := charts.NewLine()
	c.SetGlobalOptions(append(baseOpts(ChartRequestLatency, "340px"),
		charts.WithXAxisOpts(timeAxis()),
		charts.WithYAxisOpts(opts.YAxis{Type: "log", Name: "latency",
			AxisLabel: &opts.AxisLabel{Formatter: opts.FuncOpts(usFormatter)}}),
		charts.WithTooltipOpts(opts.Tooltip{Show: opts.Bool(true), Trigger: "axis", ValueFormatter: opts.FuncOpts(usFormatter)}),
	)...)
	for _, name := range []string{"request_intended", "rtt"} {
		if ls, ok := s.Latency[name]; !ok || ls.Count == 0 {
			continue
		}
		if pts := d.Latency[name]; len(pts) > 0 {
			line := charts.WithLineChartOpts(opts.LineChart{ShowSymbol: opts.Bool(len(pts) < 3)})
			for _, se := range []struct {
				stat string
				get  func(LatencyPoint) int64
			}{{"p50", func(p LatencyPoint) int64 { return p.P50 }}, {"p99", func(p LatencyPoint) int64 { return p.P99 }}} {
				data := make([]opts.LineData, 0, len(pts))
				for _, p := range pts {
					data = append(data, xy(p.EndS, float64(max(se.get(p), 1))))
				}
				c.AddSeries(name+" "+se.stat, data, line)
			}
			continue
		}
		if d.Timeline == nil {
			continue
		}
		ts, _ := d.Timeline.Column("t_s")
		v, ok := d.Timeline.Column(name + "_p99_us")
		if !ok {
			continue
		}
		var data []opts.LineData
		for i, t := range ts {
			if v[i] > 0 {
				data = append(data, xy(t, v[i]))
			}
		}
		if len(data) > 0 {
			c.AddSeries(name+" p99", data, charts.WithLineChartOpts(opts.LineChart{ShowSymbol: opts.Bool(len(data) < 3)}))
		}
	}
	if len(c.MultiSeries) == 0 {
		return nil
	}
	return c
}

func latencyChart(name string, d *ChartData) *charts.Line {
	id := ChartLatency + name
	c := charts.NewLine()
	c.SetGlobalOptions(append(baseOpts(id, "340px"),
		charts.WithXAxisOpts(timeAxis()),
		charts.WithYAxisOpts(opts.YAxis{Type: "log", Name: "latency",
			AxisLabel: &opts.AxisLabel{Formatter: opts.FuncOpts(usFormatter)}}),
		charts.WithTooltipOpts(opts.Tooltip{Show: opts.Bool(true), Trigger: "axis", ValueFormatter: opts.FuncOpts(usFormatter)}),
	)...)
	if pts := d.Latency[name]; len(pts) > 0 {
		// A line through fewer than three points (a keep-alive run connects in its first interval
		// only) draws little or nothing: mark the points.
		line := charts.WithLineChartOpts(opts.LineChart{ShowSymbol: opts.Bool(len(pts) < 3)})
		series := []struct {
			name string
			get  func(LatencyPoint) int64
		}{
			{"p50", func(p LatencyPoint) int64 { return p.P50 }},
			{"p90", func(p LatencyPoint) int64 { return p.P90 }},
			{"p99", func(p LatencyPoint) int64 { return p.P99 }},
			{"p99.9", func(p LatencyPoint) int64 { return p.P999 }},
			{"max", func(p LatencyPoint) int64 { return p.Max }},
		}
		for _, se := range series {
			data := make([]opts.LineData, 0, len(pts))
			for _, p := range pts {
				data = append(data, xy(p.EndS, float64(max(se.get(p), 1))))
			}
			c.AddSeries(se.name, data, line)
		}
		return c
	}
	// No latency.hlog: the timeline keeps connect's p50, p99 and max, and the p99 of the others.
	if d.Timeline == nil {
		return nil
	}
	ts, _ := d.Timeline.Column("t_s")
	cols := map[string][]string{
		"connect":          {"connect_p50_us", "connect_p99_us", "connect_max_us"},
		"connect_intended": {"connect_intended_p99_us"},
		"slot_wait":        {"slot_wait_p99_us"},
		"schedule_lag":     {"schedule_lag_p99_us"},
		"rtt":              {"rtt_p99_us"},
	}[name]
	added := false
	for _, col := range cols {
		v, ok := d.Timeline.Column(col)
		if !ok {
			continue
		}
		var data []opts.LineData
		for i, t := range ts {
			if v[i] > 0 {
				data = append(data, xy(t, v[i]))
			}
		}
		if len(data) == 0 {
			continue // no interval had a sample: an empty series, not a line at zero
		}
		label := strings.TrimSuffix(strings.TrimPrefix(col, name+"_"), "_us")
		c.AddSeries(label, data, charts.WithLineChartOpts(opts.LineChart{ShowSymbol: opts.Bool(len(data) < 3)}))
		added = true
	}
	if !added {
		return nil
	}
	return c
}

func outcomesChart(t *Timeline) *charts.Bar {
	ts, ok := t.Column("t_s")
	if !ok || len(ts) == 0 {
		return nil
	}
	c := charts.NewBar()
	x := make([]string, len(ts))
	for i, v := range ts {
		x[i] = strconv.FormatFloat(v, 'f', 1, 64)
	}
	c.SetGlobalOptions(append(baseOpts(ChartOutcomes, "320px"),
		charts.WithXAxisOpts(opts.XAxis{Type: "category", Name: "interval ending at (s)", NameLocation: "middle", NameGap: 28}),
		charts.WithYAxisOpts(opts.YAxis{Type: "value", Name: "connections"}),
		charts.WithLegendOpts(opts.Legend{Show: opts.Bool(true), Top: "4", Left: "center", Type: "scroll"}),
	)...)
	c.SetXAxis(x)
	fail := 0
	for o := range metrics.NumOutcomes {
		v, ok := t.Column("outcome_" + o.String())
		if !ok {
			continue
		}
		var total float64
		for _, n := range v {
			total += n
		}
		if total == 0 && o != metrics.OK {
			continue
		}
		color := colorOK
		if o != metrics.OK {
			color = failColors[fail%len(failColors)]
			fail++
		}
		data := make([]opts.BarData, len(v))
		for i, n := range v {
			data[i] = opts.BarData{Value: n}
		}
		c.AddSeries(o.String(), data, charts.WithBarChartOpts(opts.BarChart{Stack: "outcomes", BarCategoryGap: "20%"}),
			charts.WithItemStyleOpts(opts.ItemStyle{Color: color}))
	}
	if len(c.MultiSeries) == 0 {
		return nil
	}
	return c
}

// The page.

type card struct{ Label, Value, Note string }

type row struct {
	Cells []string
	Bad   bool
}

type table struct {
	Head []string
	Rows []row
}

type page struct {
	S                 *Summary
	Title             string
	Verdict           string
	Badges            []string
	Subtitle          string
	Cards             []card
	Checks            *table
	BaselineNote      []string
	Charts            []chart
	NoPorts           bool
	Latency, Outcomes *table
	Stages            *table
	Memory            *memorySection
	Host              *table
	PlanJSON          string
	EChartsJS         template.JS
}

func newPage(s *Summary, d *ChartData, cs []chart) *page {
	p := &page{S: s, Title: "portstorm " + s.Name, Verdict: strings.ToUpper(s.Verdict), Charts: cs, EChartsJS: template.JS(echartsJS),
		Badges: badges(s), Subtitle: subtitle(s), Cards: cards(s), Checks: checksTable(s), NoPorts: s.Ports == nil,
		Latency: latencyTable(s), Outcomes: outcomesTable(s), Stages: stagesTable(s), Memory: newMemorySection(s), Host: hostTable(s.Host)}
	if b := s.Baseline; b != nil {
		p.BaselineNote = append([]string{fmt.Sprintf("Baseline %s (%s, started %s); counts compare exactly, other metrics within %s.",
			b.File, b.Name, b.StartedAt, strconv.FormatFloat(100*b.MaxRegression, 'f', -1, 64)+"%")}, b.Notes...)
	}
	if s.Plan != nil {
		if b, err := json.MarshalIndent(s.Plan, "", "  "); err == nil {
			p.PlanJSON = string(b)
		}
	}
	return p
}

// badges are the marks of a run that did not go as planned.
func badges(s *Summary) []string {
	var out []string
	if s.Interrupted {
		out = append(out, "interrupted")
	}
	if s.Stopped != nil {
		out = append(out, fmt.Sprintf("stopped at %.2fs by %s", s.Stopped.AtS, s.Stopped.Threshold))
	}
	if u := s.Unreachable; u != nil {
		out = append(out, fmt.Sprintf("gave up at %.2fs: target unreachable (%s)", u.AtS, u.Outcome))
	}
	if s.Aborted {
		out = append(out, "in-flight connections cut")
	}
	if len(s.OutputsIncomplete) > 0 {
		out = append(out, "not written: "+strings.Join(s.OutputsIncomplete, ", "))
	}
	return out
}

// subtitle is the line under the title: when, how long, the model, the target, the segments.
func subtitle(s *Summary) string {
	var sub []string
	sub = append(sub, s.StartedAt.UTC().Format("2006-01-02 15:04:05 UTC"), fmtSeconds(float64(s.DurationUS)/1e6))
	if s.Plan != nil {
		sub = append(sub, fmt.Sprintf("%s model, %d stage(s)", s.Plan.Load.Model, len(s.Plan.Load.Stages)))
		switch {
		case s.Plan.Target.Builtin != nil:
			sub = append(sub, fmt.Sprintf("built-in %s target, %d listener(s)", s.Plan.Target.Builtin.Mode, s.Plan.Target.Builtin.Listeners))
		case len(s.Plan.Target.Addresses) > 0:
			sub = append(sub, "target "+strings.Join(s.Plan.Target.Addresses, ", "))
		}
	}
	if s.Segments > 1 {
		sub = append(sub, fmt.Sprintf("%d segments", s.Segments))
	}
	return strings.Join(sub, " · ")
}

// cards are the headline figures: the requests first when there were any, then the connections
// and the headline latency.
func cards(s *Summary) []card {
	c := s.Connections
	lat := Headline(s)
	l := s.Latency[lat]
	out := []card{
		{"attempted", groupDigits(c.Attempted), fmt.Sprintf("%s/s established", groupDigits(uint64(math.Round(c.PerSecond))))},
		{"established", groupDigits(c.Established), fmt.Sprintf("%s closed", groupDigits(c.Closed))},
		{"peak open", groupDigits(uint64(max(c.PeakConcurrent, 0))), "concurrent connections"},
		{"failed", groupDigits(c.Failed), fmt.Sprintf("%s dropped", groupDigits(c.Dropped))},
		{"error rate", strconv.FormatFloat(100*s.Errors.Rate, 'f', 3, 64) + "%", fmt.Sprintf("%s of the connections that ended", groupDigits(s.Errors.Count))},
		{lat + " p99", fmtUSOrDash(l.Count, l.P99), "p50 " + fmtUSOrDash(l.Count, l.P50) + " · max " + fmtUSOrDash(l.Count, l.Max)},
	}
	if r := s.Requests; r != nil && (r.Written > 0 || r.Offered > 0) {
		rc := []card{{"requests", groupDigits(r.Written), fmt.Sprintf("%s/s · %s failed (%s%%)", fmtRate(r.PerSecond), groupDigits(r.Errors),
			strconv.FormatFloat(100*r.ErrorRate, 'f', 3, 64))}}
		if r.Rated {
			rc = append(rc, card{"offered", fmtRate(r.OfferedPerSecond) + "/s", fmt.Sprintf("%s requests · %s%% short",
				groupDigits(r.Offered), strconv.FormatFloat(100*r.Shortfall, 'f', 2, 64))})
		}
		out = append(rc, out...)
	}
	return out
}

// checksTable is the thresholds and baseline checks with their results; nil when there are none.
func checksTable(s *Summary) *table {
	rows := VerdictRows(s)
	if len(rows) == 0 {
		return nil
	}
	t := &table{Head: []string{"check", "condition", "observed", "result"}}
	for _, r := range rows {
		res := "pass"
		if !r.Pass {
			res = "FAIL"
		}
		t.Rows = append(t.Rows, row{Cells: []string{r.Metric, r.Condition, r.Observed, res}, Bad: !r.Pass})
	}
	return t
}

// latencyTable is every latency with samples.
func latencyTable(s *Summary) *table {
	lt := &table{Head: []string{"latency", "count", "min", "mean", "p50", "p90", "p99", "p99.9", "max"}}
	for l := range metrics.NumLatencies {
		ls, ok := s.Latency[l.String()]
		if !ok || ls.Count == 0 {
			continue
		}
		lt.Rows = append(lt.Rows, row{Cells: []string{l.String(), groupDigits(uint64(ls.Count)), fmtUS(ls.Min), fmtUS(int64(math.Round(ls.Mean))),
			fmtUS(ls.P50), fmtUS(ls.P90), fmtUS(ls.P99), fmtUS(ls.P999), fmtUS(ls.Max)}})
	}
	return lt
}

// outcomesTable is every outcome that happened, when first and an example.
func outcomesTable(s *Summary) *table {
	ot := &table{Head: []string{"outcome", "count", "first at", "open then", "example"}}
	for o := range metrics.NumOutcomes {
		n := s.Outcomes[o.String()]
		if n == 0 {
			continue
		}
		r := row{Cells: []string{o.String(), groupDigits(n), "", "", ""}, Bad: o != metrics.OK}
		if f, ok := s.First[o.String()]; ok {
			r.Cells[2], r.Cells[3] = fmtSeconds(f.AtS), groupDigits(uint64(max(f.Concurrency, 0)))
		}
		if ex := s.Examples[o.String()]; len(ex) > 0 {
			r.Cells[4] = ex[0]
		}
		ot.Rows = append(ot.Rows, r)
	}
	return ot
}

// stagesTable is each stage's figures beside the plan's target for it; nil without stages.
func stagesTable(s *Summary) *table {
	if len(s.Stages) == 0 {
		return nil
	}
	st := &table{Head: []string{"stage", "time", "target", "attempted", "established", "failed", "peak open", "errors", "connect p50", "connect p99", "requests/s"}}
	for _, g := range s.Stages {
		target := ""
		if s.Plan != nil && g.Index < len(s.Plan.Load.Stages) {
			ps := s.Plan.Load.Stages[g.Index]
			target = strconv.FormatFloat(ps.Target, 'f', -1, 64)
			if s.Model() == schedule.Arrival {
				target += "/s"
			}
			target += " over " + ps.Duration.String()
		}
		var errs uint64
		for o, n := range g.Outcomes {
			if o != metrics.OK.String() {
				errs += n
			}
		}
		cl := g.Latency["connect"]
		reqs := "–"
		if r := g.Requests; r != nil && r.Written > 0 {
			reqs = fmtRate(r.PerSecond)
		}
		st.Rows = append(st.Rows, row{Cells: []string{strconv.Itoa(g.Index), fmtSeconds(g.StartS) + " – " + fmtSeconds(g.EndS), target,
			groupDigits(g.Connections.Attempted), groupDigits(g.Connections.Established), groupDigits(g.Connections.Failed),
			groupDigits(uint64(max(g.Connections.PeakConcurrent, 0))), groupDigits(errs), fmtUSOrDash(cl.Count, cl.P50), fmtUSOrDash(cl.Count, cl.P99), reqs},
			Bad: errs > 0})
	}
	return st
}

// hostTable is the host's facts as summary.json records them, by key; nil when there are none.
func hostTable(h preflight.Host) *table {
	hb, err := json.Marshal(h)
	if err != nil {
		return nil
	}
	var hm map[string]any
	if json.Unmarshal(hb, &hm) != nil || len(hm) == 0 {
		return nil
	}
	ht := &table{Head: []string{"host", "value"}}
	keys := make([]string, 0, len(hm))
	for k := range hm {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v, _ := json.Marshal(hm[k])
		ht.Rows = append(ht.Rows, row{Cells: []string{k, strings.Trim(string(v), `"`)}})
	}
	return ht
}

func fmtUSOrDash(count, us int64) string {
	if count == 0 {
		return "–"
	}
	return fmtUS(us)
}

func fmtSeconds(s float64) string {
	if s < 60 {
		return strconv.FormatFloat(s, 'f', 2, 64) + " s"
	}
	return fmt.Sprintf("%dm%04.1fs", int(s)/60, math.Mod(s, 60))
}

// groupDigits writes 12345 as 12,345.
func groupDigits(n uint64) string {
	s := strconv.FormatUint(n, 10)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

var pageTemplate = template.Must(template.New("report").Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}} — {{.Verdict}}</title>
<style>
  :root { --fg: #1d2330; --muted: #5f6b7a; --line: #e3e7ee; --bg: #f6f7f9; --pass: #2f8f4e; --fail: #c23b3b; }
  * { box-sizing: border-box; }
  body { margin: 0; background: var(--bg); color: var(--fg); font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
  main { max-width: 1180px; margin: 0 auto; padding: 24px 28px 48px; }
  header { display: flex; align-items: center; gap: 16px; flex-wrap: wrap; }
  h1 { font-size: 24px; margin: 0; font-weight: 650; }
  h2 { font-size: 17px; margin: 32px 0 8px; font-weight: 650; }
  .verdict { font-weight: 700; letter-spacing: .06em; padding: 4px 12px; border-radius: 6px; color: #fff; }
  .verdict.PASS { background: var(--pass); } .verdict.FAIL, .verdict.ERROR { background: var(--fail); }
  .verdict.NO_THRESHOLDS { background: var(--muted); }
  .badge { padding: 3px 10px; border-radius: 6px; background: #fde8c8; color: #7a4a00; font-size: 13px; }
  .sub { color: var(--muted); margin: 6px 0 18px; }
  .cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(160px, 1fr)); gap: 12px; }
  .card { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 12px 14px; }
  .card .label { color: var(--muted); font-size: 12px; text-transform: uppercase; letter-spacing: .04em; }
  .card .value { font-size: 24px; font-weight: 650; margin-top: 2px; font-variant-numeric: tabular-nums; }
  .card .note { color: var(--muted); font-size: 12px; }
  table { border-collapse: collapse; width: 100%; background: #fff; border: 1px solid var(--line); border-radius: 8px; overflow: hidden; }
  th, td { text-align: left; padding: 7px 10px; border-bottom: 1px solid var(--line); font-variant-numeric: tabular-nums; vertical-align: top; }
  th { background: #eef1f5; font-weight: 600; font-size: 13px; }
  tr:last-child td { border-bottom: none; }
  tr.bad td { background: #fdf0f0; }
  td.res-pass { color: var(--pass); font-weight: 650; } td.res-FAIL { color: var(--fail); font-weight: 700; }
  td.num { text-align: right; }
  .panel { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 14px 16px 6px; margin-top: 14px; }
  .panel h3 { margin: 0; font-size: 15px; font-weight: 650; }
  .panel p { margin: 2px 0 6px; color: var(--muted); font-size: 13px; }
  .note { color: var(--muted); }
  .warn { background: #fff7e0; border: 1px solid #f0dca0; border-radius: 8px; padding: 8px 12px; margin: 6px 0; }
  details { margin-top: 10px; } pre { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 12px; overflow: auto; font-size: 12px; }
  footer { margin-top: 36px; color: var(--muted); font-size: 12px; }
</style>
<script>{{.EChartsJS}}</script>
</head>
<body>
<main>
<header>
  <h1>{{.Title}}</h1>
  <span class="verdict {{.Verdict}}" id="verdict">{{.Verdict}}</span>
  {{range .Badges}}<span class="badge">{{.}}</span>{{end}}
</header>
<div class="sub">{{.Subtitle}}</div>

<section class="cards">
{{range .Cards}}  <div class="card"><div class="label">{{.Label}}</div><div class="value">{{.Value}}</div><div class="note">{{.Note}}</div></div>
{{end}}</section>

{{with .Checks}}<h2>Checks</h2>
<table id="checks"><tr>{{range .Head}}<th>{{.}}</th>{{end}}</tr>
{{range .Rows}}<tr{{if .Bad}} class="bad"{{end}}>{{range $i, $c := .Cells}}{{if eq $i 3}}<td class="res-{{$c}}">{{$c}}</td>{{else}}<td>{{$c}}</td>{{end}}{{end}}</tr>
{{end}}</table>{{end}}
{{range .BaselineNote}}<p class="note">{{.}}</p>{{end}}
{{range .S.Warnings}}<div class="warn">{{.}}</div>{{end}}

<h2>Charts</h2>
{{range .Charts}}<div class="panel" data-chart="{{.ID}}">
  <h3>{{.Title}}</h3><p>{{.Caption}}</p>
  {{.Element}}
  {{.Script}}
</div>
{{end}}{{if .NoPorts}}<p class="note">Local ports: this result has no port report, so there is no port view.</p>{{end}}

<h2>Latency</h2>
<table id="latency"><tr>{{range .Latency.Head}}<th>{{.}}</th>{{end}}</tr>
{{range .Latency.Rows}}<tr>{{range $i, $c := .Cells}}<td{{if $i}} class="num"{{end}}>{{$c}}</td>{{end}}</tr>
{{end}}</table>

<h2>Outcomes</h2>
<table id="outcomes"><tr>{{range .Outcomes.Head}}<th>{{.}}</th>{{end}}</tr>
{{range .Outcomes.Rows}}<tr{{if .Bad}} class="bad"{{end}}>{{range .Cells}}<td>{{.}}</td>{{end}}</tr>
{{end}}</table>

{{with .Stages}}<h2>Stages</h2>
<table id="stages"><tr>{{range .Head}}<th>{{.}}</th>{{end}}</tr>
{{range .Rows}}<tr{{if .Bad}} class="bad"{{end}}>{{range .Cells}}<td>{{.}}</td>{{end}}</tr>
{{end}}</table>{{end}}

{{with .Memory}}<section id="memory"><h2>Memory per held connection</h2>
<p class="note">{{.Note}}</p>
<table id="memory_figures"><tr>{{range .Figures.Head}}<th>{{.}}</th>{{end}}</tr>
{{range .Figures.Rows}}<tr>{{range $i, $c := .Cells}}<td{{if and $i (lt $i 3)}} class="num"{{end}}>{{$c}}</td>{{end}}</tr>
{{end}}</table>
{{with .Caches}}<table id="memory_caches"><tr>{{range .Head}}<th>{{.}}</th>{{end}}</tr>
{{range .Rows}}<tr>{{range $i, $c := .Cells}}<td{{if $i}} class="num"{{end}}>{{$c}}</td>{{end}}</tr>
{{end}}</table>{{end}}
{{with .CachesNote}}<p class="note">{{.}}</p>{{end}}
</section>{{end}}

{{with .Host}}<details><summary>Host</summary>
<table><tr>{{range .Head}}<th>{{.}}</th>{{end}}</tr>
{{range .Rows}}<tr>{{range .Cells}}<td>{{.}}</td>{{end}}</tr>
{{end}}</table></details>{{end}}
{{with .PlanJSON}}<details><summary>Plan (resolved)</summary><pre>{{.}}</pre></details>{{end}}

<footer>Written by portstorm from summary.json, timeline.csv and latency.hlog ({{.S.Schema}}). Self-contained: charts by Apache ECharts, inlined.</footer>
</main>
<script>
  window.addEventListener('resize', function () {
    document.querySelectorAll('[_echarts_instance_]').forEach(function (el) { var c = echarts.getInstanceByDom(el); if (c) { c.resize(); } });
  });
</script>
</body>
</html>
`))
