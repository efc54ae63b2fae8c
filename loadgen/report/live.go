package report

import "github.com/portstorm/portstorm/loadgen/metrics"

// latenciesFor summarises a snapshot's histograms; live figures skip the encoding.
func latenciesFor(s *metrics.Snapshot, live bool) (map[string]LatencySummary, error) {
	if !live {
		return Latencies(s)
	}
	out := make(map[string]LatencySummary, metrics.NumLatencies)
	for l, h := range s.Hist {
		ls := LatencySummary{}
		if h != nil && h.TotalCount() > 0 {
			ls.Count, ls.Min, ls.Mean, ls.Max = h.TotalCount(), h.Min(), h.Mean(), h.Max()
			ls.P50, ls.P90 = h.ValueAtQuantile(50), h.ValueAtQuantile(90)
			ls.P99, ls.P999 = h.ValueAtQuantile(99), h.ValueAtQuantile(99.9)
		}
		out[metrics.Latency(l).String()] = ls
	}
	return out, nil
}
