package report

import (
	"fmt"
	"strconv"

	"github.com/go-echarts/go-echarts/v2/charts"
	"github.com/go-echarts/go-echarts/v2/opts"
)

// ChartSearch is the ID of a search's probe chart, one per threshold: + its index.
const ChartSearch = "chart_search_"

// searchCharts draw a capacity search's probes (docs/search.md): for each threshold, its figure
// at every probe against the probe's level, held and failed marked, and the threshold's limit as
// a line, so that the knee shows where the levels stop holding.
func searchCharts(s *Summary) []chartSpec {
	sr := s.Search
	if sr == nil || len(sr.Probes) == 0 {
		return nil
	}
	var out []chartSpec
	for i, th := range sr.Thresholds {
		var held, failed []opts.ScatterData
		for _, p := range sr.Probes {
			if i >= len(p.Values) || p.Values[i] == nil || p.Outcome != "held" && p.Outcome != "failed" {
				continue
			}
			d := opts.ScatterData{Name: fmt.Sprintf("probe %d", p.Index), Value: []any{p.Level, round3(*p.Values[i])}, SymbolSize: 10}
			if p.Confirm {
				d.Name += " (confirm)"
				d.Symbol, d.SymbolSize = "diamond", 14
			}
			if p.Outcome == "held" {
				held = append(held, d)
			} else {
				failed = append(failed, d)
			}
		}
		if len(held)+len(failed) == 0 {
			continue
		}
		id := ChartSearch + strconv.Itoa(i)
		y := opts.YAxis{Type: "value", Name: th.Metric}
		tip := opts.Tooltip{Show: opts.Bool(true), Trigger: "item"}
		if th.Kind == "time" {
			// Log scale: the knee's latencies run from microseconds to seconds.
			y.Type, y.AxisLabel = "log", &opts.AxisLabel{Formatter: opts.FuncOpts(usFormatter)}
		}
		c := charts.NewScatter()
		c.SetGlobalOptions(append(baseOpts(id, "320px"),
			charts.WithTooltipOpts(tip),
			charts.WithXAxisOpts(opts.XAxis{Type: "value", Name: sr.Dimension + " (" + sr.Unit + ")", NameLocation: "middle", NameGap: 28, Scale: opts.Bool(true)}),
			charts.WithYAxisOpts(y))...)
		limit := []charts.SeriesOpts{
			charts.WithMarkLineNameYAxisItemOpts(opts.MarkLineNameYAxisItem{Name: th.Expr, YAxis: round3(th.Limit)}),
			charts.WithMarkLineStyleOpts(opts.MarkLineStyle{Symbol: []string{"none", "none"},
				LineStyle: &opts.LineStyle{Type: "dashed", Color: "#999999", Width: 1},
				Label:     &opts.Label{Show: opts.Bool(true), Formatter: "{b}", Color: "#666666"}}),
		}
		c.AddSeries("held", held, append([]charts.SeriesOpts{charts.WithItemStyleOpts(opts.ItemStyle{Color: colorOK})}, limit...)...)
		c.AddSeries("failed", failed, charts.WithItemStyleOpts(opts.ItemStyle{Color: failColors[0]}))
		caption := fmt.Sprintf("Every probe's %s against its level: held in green, failed in red, the confirming probe a diamond; the dashed line is the threshold. %s.",
			th.Metric, sr.Answer())
		out = append(out, chartSpec{id, "Capacity search: " + th.Expr, caption, c})
	}
	return out
}
