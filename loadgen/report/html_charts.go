package report

import (
	"fmt"
	"math"

	"github.com/go-echarts/go-echarts/v2/charts"
	"github.com/go-echarts/go-echarts/v2/opts"

	"github.com/portstorm/portstorm/loadgen/metrics"
	"github.com/portstorm/portstorm/loadgen/ports"
)

// spectrumOpts set up a percentile spectrum: value against percentile, x as 1/(1-q) on a log axis
// (HdrHistogram's percentile distribution plot, where each decade to the right is one more nine).
func spectrumOpts(yName string) []charts.GlobalOpts {
	return []charts.GlobalOpts{
		charts.WithXAxisOpts(opts.XAxis{Type: "log", Name: "percentile", NameLocation: "middle", NameGap: 28, Min: 1, Max: "dataMax",
			AxisLabel: &opts.AxisLabel{Formatter: opts.FuncOpts(`function (v) { var p = 100 - 100 / v; if (p <= 0) { return '0%'; } var d = Math.max(0, Math.round(Math.log10(v)) - 2); return p.toFixed(d) + '%'; }`)}}),
		charts.WithYAxisOpts(opts.YAxis{Type: "log", Name: yName,
			AxisLabel: &opts.AxisLabel{Formatter: opts.FuncOpts(usFormatter)}}),
		charts.WithTooltipOpts(opts.Tooltip{Show: opts.Bool(true), Trigger: "axis", Formatter: opts.FuncOpts(`function (ps) {
			var us = ` + usFormatter + `;
			var q = 100 - 100 / ps[0].value[0];
			var s = 'p' + q.toFixed(4).replace(/\.?0+$/, '');
			ps.forEach(function (p) { s += '<br>' + p.marker + p.seriesName + ': ' + us(p.value[1]); });
			return s; }`)}),
	}
}

// spectrumData is a histogram's percentile distribution, 5 ticks per half distance.
func spectrumData(enc string) []opts.LineData {
	h, err := metrics.DecodeHistogram(enc)
	if err != nil || h.TotalCount() == 0 {
		return nil
	}
	var data []opts.LineData
	// The maximum is drawn where the last sample's percentile lies, 1 - 1/count, that is at x = count.
	last := float64(max(h.TotalCount(), 2))
	for _, b := range h.CumulativeDistributionWithTicks(5) {
		x := last
		if b.Quantile < 100 {
			x = min(1/(1-b.Quantile/100), last)
		}
		data = append(data, opts.LineData{Value: []any{x, max(b.ValueAt, 1)}})
		if b.Quantile >= 100 {
			break
		}
	}
	return data
}

func spectrumChart(s *Summary) *charts.Line {
	c := charts.NewLine()
	c.SetGlobalOptions(append(baseOpts(ChartSpectrum, "360px"), spectrumOpts("latency")...)...)
	for l := range metrics.NumLatencies {
		if l == metrics.Lifetime {
			continue // seconds where the others are micro- to milliseconds: it would flatten them
		}
		ls, ok := s.Latency[l.String()]
		if !ok || ls.Count == 0 {
			continue
		}
		if data := spectrumData(ls.HDR); len(data) > 0 {
			c.AddSeries(l.String(), data, charts.WithLineChartOpts(opts.LineChart{ShowSymbol: opts.Bool(false), Step: "end"}))
		}
	}
	if len(c.MultiSeries) == 0 {
		return nil
	}
	return c
}

// portCharts draw the port observatory's view (docs/ports.md): ports in use, sharing, reuse and
// TIME_WAIT over time, per-destination occupancy against the range, connect latency by occupancy
// decile (the kernel's search slows as the range fills), and release-to-reuse intervals.
func portCharts(s *Summary, t *Timeline) []chartSpec {
	var out []chartSpec
	if c := portsOverTime(t); c != nil {
		out = append(out, chartSpec{ChartPorts, "Local ports over time",
			"Distinct local ports used so far, ports shared by several destinations, TIME_WAIT sockets (left axis) and ports reused per interval (right axis), as the port observatory sampled them.", c})
	}
	r := s.Ports
	if r == nil {
		return out
	}
	if len(r.Destinations) > 0 {
		c := charts.NewBar()
		c.SetGlobalOptions(append(baseOpts(ChartPortsDestinations, "300px"),
			charts.WithXAxisOpts(opts.XAxis{Type: "category"}),
			charts.WithYAxisOpts(opts.YAxis{Type: "value", Name: "peak occupancy", Min: 0, Max: 100,
				AxisLabel: &opts.AxisLabel{Formatter: "{value}%"}}))...)
		var names []string
		var occ []opts.BarData
		for _, d := range r.Destinations {
			names = append(names, fmt.Sprintf("%s → %s: peak %d of %d", d.Source, d.Destination, d.PeakConcurrent, d.Capacity))
			occ = append(occ, opts.BarData{Value: math.Round(10000*d.Occupancy) / 100})
		}
		c.SetXAxis(names)
		c.AddSeries("peak concurrent / usable port range", occ, charts.WithBarChartOpts(opts.BarChart{BarWidth: "40%"}),
			charts.WithLabelOpts(opts.Label{Show: opts.Bool(true), Position: "top", Formatter: "{c}%"}))
		out = append(out, chartSpec{ChartPortsDestinations, "Port occupancy per destination",
			"Peak concurrent connections per (source address, destination) against the usable local port range: the ~64k limit is per destination, not per host.", c})
	}
	if len(r.ConnectByOccupancy) > 0 {
		c := charts.NewBar()
		c.SetGlobalOptions(append(baseOpts(ChartPortsKnee, "300px"),
			charts.WithXAxisOpts(opts.XAxis{Type: "category", Name: "local port range in use", NameLocation: "middle", NameGap: 28}),
			charts.WithYAxisOpts(opts.YAxis{Type: "value", Name: "connect", AxisLabel: &opts.AxisLabel{Formatter: opts.FuncOpts(usFormatter)}}),
			charts.WithTooltipOpts(opts.Tooltip{Show: opts.Bool(true), Trigger: "axis", ValueFormatter: opts.FuncOpts(usFormatter)}))...)
		var names []string
		var p50, p99 []opts.BarData
		for _, d := range r.ConnectByOccupancy {
			names = append(names, fmt.Sprintf("%.0f–%.0f%%", 100*d.From, 100*d.To))
			p50 = append(p50, opts.BarData{Value: d.P50})
			p99 = append(p99, opts.BarData{Value: d.P99})
		}
		c.SetXAxis(names)
		c.AddSeries("connect p50", p50)
		c.AddSeries("connect p99", p99)
		out = append(out, chartSpec{ChartPortsKnee, "Connect latency by port occupancy",
			"Connect latency per decile of the local port range in use: past half the range the kernel's port search scans the whole first-parity half on every connect.", c})
	}
	if c := reuseChart(r); c != nil {
		out = append(out, chartSpec{ChartPortsReuse, "Port reuse intervals",
			fmt.Sprintf("Time from a local port's release to its next use (and of the same 4-tuple), at each percentile. tcp_tw_reuse %d, reuse delay %d ms.", r.Reuse.TWReuse, r.Reuse.TWReuseDelayMS), c})
	}
	return out
}

func portsOverTime(t *Timeline) *charts.Line {
	if t == nil {
		return nil
	}
	ts, ok := t.Column("t_s")
	if !ok || len(ts) == 0 {
		return nil
	}
	c := charts.NewLine()
	c.SetGlobalOptions(append(baseOpts(ChartPorts, "320px"), charts.WithXAxisOpts(timeAxis()),
		charts.WithYAxisOpts(opts.YAxis{Type: "value", Name: "ports, sockets"}))...)
	right := false
	cols := []struct {
		col, name string
		right     bool
	}{
		{"unique_ports", "unique ports", false}, {"shared_ports", "shared ports", false},
		{"time_wait", "TIME_WAIT (client)", false}, {"time_wait_target", "TIME_WAIT (target)", false},
		{"port_reuse", "ports reused", true}, {"four_tuple_reuse", "4-tuples reused", true},
	}
	for _, cl := range cols {
		v, ok := t.Column(cl.col)
		if !ok {
			continue
		}
		var data []opts.LineData
		seen := false
		for i := range v {
			if v[i] < 0 { // not sampled in this interval
				continue
			}
			seen = seen || v[i] > 0
			data = append(data, xy(ts[i], v[i]))
		}
		if !seen {
			continue
		}
		lo := opts.LineChart{ShowSymbol: opts.Bool(false)}
		if cl.right {
			lo.YAxisIndex, right = 1, true
		}
		c.AddSeries(cl.name, data, charts.WithLineChartOpts(lo))
	}
	if len(c.MultiSeries) == 0 {
		return nil
	}
	if right {
		c.ExtendYAxis(opts.YAxis{Type: "value", Name: "reused / interval", Position: "right", SplitLine: &opts.SplitLine{Show: opts.Bool(false)}})
	}
	return c
}

func reuseChart(r *ports.Report) *charts.Line {
	c := charts.NewLine()
	c.SetGlobalOptions(append(baseOpts(ChartPortsReuse, "300px"), spectrumOpts("release → next use")...)...)
	for _, iv := range []struct {
		name string
		iv   ports.Interval
	}{{"port: release → next use", r.Reuse.PortInterval}, {"4-tuple: release → next use", r.Reuse.TupleInterval}} {
		if iv.iv.Count == 0 {
			continue
		}
		if data := spectrumData(iv.iv.HDR); len(data) > 0 {
			c.AddSeries(iv.name, data, charts.WithLineChartOpts(opts.LineChart{ShowSymbol: opts.Bool(false), Step: "end"}))
		}
	}
	if len(c.MultiSeries) == 0 {
		return nil
	}
	return c
}
