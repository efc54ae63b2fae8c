package gate

import "github.com/portstorm/portstorm/loadgen/report"

// Value is the metric's figure in s, in summary.json's units for its kind (µs, fraction, count,
// per second, bytes); ok is false when s does not hold it or the event it dates never happened.
// A capacity search charts its probes with it.
func (m *Metric) Value(s *report.Summary) (v float64, ok bool) {
	f := m.get(newView(s))
	return f.v, f.st == present
}
