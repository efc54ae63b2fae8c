package gate

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/portstorm/portstorm/loadgen/metrics"
	"github.com/portstorm/portstorm/loadgen/report"
	"github.com/portstorm/portstorm/loadgen/schedule"
)

// CompareOptions say what a baseline comparison checks.
type CompareOptions struct {
	// MaxRegression is how much worse a non-count metric may be, as a fraction (0.10 for 10%):
	// latencies and shares may grow by it, rates and the time of first failures shrink by it.
	MaxRegression float64
	// Metrics are the compared metrics, named as in thresholds; empty means DefaultMetrics.
	Metrics []string
	// Normalize, "calibration", compares the figures that move with the host's speed (Metric.Speed)
	// as multiples of each run's calibration unit (summary.json's calibration); both summaries must
	// hold one. Empty: as measured.
	Normalize string
}

// NormalizeCalibration is CompareOptions.Normalize's one value: the plan's baseline.normalize word
// (plan.NormalizeCalibration, which spec.GateInput passes on).
const NormalizeCalibration = "calibration"

// calibrated reports whether a summary holds a calibration to normalize by.
func calibrated(s *report.Summary) bool {
	return s.Calibration != nil && s.Calibration.UnitUS > 0 && !math.IsInf(s.Calibration.UnitUS, 0)
}

// DefaultMetrics is the declared comparison set, for a plan's load model:
//   - counts, compared exactly: connections.failed, connections.dropped, errors.count and every
//     failure outcome (outcomes.ECONNREFUSED, ...; shown when either run has some); under the
//     arrival model also connections.attempted and connections.established, which the schedule
//     fixes (under the concurrency model they depend on how fast connections turn over, so they
//     are left out);
//   - latencies, within MaxRegression: p50, p90 and p99 of connect, connect_intended (arrival),
//     rtt and request_intended (when either run sent requests, or rated ones);
//   - requests: requests.errors (exactly; shown when either run has some), requests.per_second
//     (achieved; lower is worse), requests.error_rate and requests.shortfall (higher is worse),
//     when either run sent requests.
func DefaultMetrics(model schedule.Model) []string {
	var out []string
	if model == schedule.Arrival {
		out = append(out, "connections.attempted", "connections.established")
	}
	out = append(out, "connections.failed", "connections.dropped", "errors.count")
	for o := range metrics.NumOutcomes {
		if o != metrics.OK {
			out = append(out, "outcomes."+o.String())
		}
	}
	lats := []string{"connect"}
	if model == schedule.Arrival {
		lats = append(lats, "connect_intended")
	}
	for _, l := range append(lats, "rtt", "request_intended") {
		for _, s := range []string{"p50", "p90", "p99"} {
			out = append(out, l+"."+s)
		}
	}
	return append(out, "requests.errors", "requests.per_second", "requests.error_rate", "requests.shortfall")
}

// Compare checks a new result against a baseline: counts exactly, other metrics within
// MaxRegression in their worse direction. An unknown metric name is an error.
func Compare(base, cur *report.Summary, o CompareOptions) (*report.BaselineResult, error) {
	if base == nil || cur == nil {
		return nil, fmt.Errorf("compare: missing summary")
	}
	if o.MaxRegression < 0 || math.IsNaN(o.MaxRegression) || math.IsInf(o.MaxRegression, 0) {
		return nil, fmt.Errorf("max regression must be 0%% or more, got %v", o.MaxRegression)
	}
	// The model the new run's summary records (its plan, the run's record).
	c := Context{Model: cur.Model()}
	names, declared := o.Metrics, false
	if len(names) == 0 {
		names, declared = DefaultMetrics(c.Model), true
	}
	c.Stages = min(len(base.Stages), len(cur.Stages))
	res := &report.BaselineResult{
		Name: base.Name, StartedAt: base.StartedAt.UTC().Format("2006-01-02T15:04:05Z"),
		MaxRegression: o.MaxRegression, Pass: true, Checks: []report.BaselineCheck{},
	}
	scale := 0.0 // no normalization
	switch o.Normalize {
	case "":
	case NormalizeCalibration:
		switch {
		case !calibrated(base):
			return nil, fmt.Errorf("baseline.normalize: calibration: the baseline holds no calibration (summary.json calibration.unit_us)")
		case !calibrated(cur):
			return nil, fmt.Errorf("baseline.normalize: calibration: the new result holds no calibration (a merged result of segments has none: compare it as measured)")
		}
		scale = cur.Calibration.UnitUS / base.Calibration.UnitUS
		res.Normalize, res.Scale = o.Normalize, &scale
	default:
		return nil, fmt.Errorf("baseline.normalize %q: want %s or nothing", o.Normalize, NormalizeCalibration)
	}
	bv, nv := newView(base), newView(cur)
	for _, name := range names {
		m, err := Resolve(strings.TrimSpace(name), c)
		if err != nil {
			return nil, err
		}
		raw := m.get(nv)
		nf := raw
		normalized := scale > 0 && raw.st == present && m.Speed != SpeedNone
		if normalized {
			// The new figure at the baseline host's speed: a latency divided by the scale, an
			// achieved rate multiplied by it.
			if m.Speed == SpeedTime {
				nf.v /= scale
			} else {
				nf.v *= scale
			}
		}
		chk, skip := compareOne(m, m.get(bv), nf, o.MaxRegression, declared)
		if normalized {
			// Shown and kept as measured, with the figure compared beside it.
			v, n := raw.v, nf.v
			chk.NewValue, chk.NewNormalized = &v, &n
			chk.New = show(m, raw) + " (" + show(m, nf) + " normalized)"
		}
		chk.Metric = m.nameFor(nv)
		if skip {
			continue
		}
		res.Checks = append(res.Checks, chk)
		res.Pass = res.Pass && chk.Pass
	}
	res.Notes = notes(base, cur)
	if scale > 0 {
		res.Notes = append(res.Notes, fmt.Sprintf("latencies and achieved rates normalized by calibration: this host's reference connection took %s, the baseline's %s (scale %.2f)",
			Format(Time, cur.Calibration.UnitUS), Format(Time, base.Calibration.UnitUS), scale))
	}
	return res, nil
}

// higherIsBetter: rates, and the moment an event first happened (later is better).
func higherIsBetter(m *Metric) bool { return m.Kind == PerSecond || m.Nullable }

func compareOne(m *Metric, b, n figure, tol float64, declared bool) (report.BaselineCheck, bool) {
	chk := report.BaselineCheck{Metric: m.Name, Base: show(m, b), New: show(m, n), Pass: true}
	exact := m.Kind == Count || m.Kind == Bytes
	switch {
	case exact && !m.Nullable:
		chk.Tolerance = "exact"
	case higherIsBetter(m):
		chk.Tolerance = "-" + Format(Ratio, tol)
	default:
		chk.Tolerance = "+" + Format(Ratio, tol)
	}
	if b.st == present {
		chk.BaseValue = &b.v
	}
	if n.st == present {
		chk.NewValue = &n.v
	}
	switch {
	case b.st == missing && n.st == missing:
		// In the declared set, a figure neither run has (rtt without requests) is no check at all.
		return chk, declared
	case b.st == missing:
		chk.Delta = "not in the baseline"
		return chk, false
	case n.st == missing:
		chk.Pass, chk.Delta = false, "missing"
		return chk, false
	case b.st == never || n.st == never:
		switch {
		case b.st == n.st:
			chk.Delta = "0"
		case n.st == never:
			chk.Delta = "gone"
		default:
			chk.Pass, chk.Delta = false, "new"
		}
		return chk, false
	}
	if exact && !m.Nullable {
		d := n.v - b.v
		chk.Pass = d == 0
		chk.Delta = strconv.FormatFloat(d, 'f', -1, 64)
		if d > 0 {
			chk.Delta = "+" + chk.Delta
		}
		// Failure outcomes that neither run had are no news; errors.count already says so.
		skip := declared && (strings.HasPrefix(m.Name, "outcomes.") || m.Name == "requests.errors") && b.v == 0 && n.v == 0
		return chk, skip
	}
	worse := n.v - b.v
	if higherIsBetter(m) {
		worse = -worse
	}
	switch {
	case b.v == 0 && n.v == 0:
		chk.Delta = "0%"
	case b.v == 0:
		chk.Delta = "from 0"
		chk.Pass = worse <= 0
	default:
		rel := (n.v - b.v) / b.v
		chk.Delta = signed(rel)
		// A small epsilon keeps "exactly at the tolerance" a pass despite float rounding.
		chk.Pass = worse/b.v <= tol+1e-9
	}
	return chk, false
}

func show(m *Metric, f figure) string {
	switch f.st {
	case missing:
		return "n/a"
	case never:
		return "none"
	}
	return Format(m.Kind, f.v)
}

func signed(rel float64) string {
	s := Format(Ratio, math.Abs(rel))
	if rel < 0 {
		return "-" + s
	}
	return "+" + s
}

// notes say what makes a comparison misleading: different plans, interrupted or stopped runs.
func notes(base, cur *report.Summary) []string {
	var out []string
	if base.Plan != nil && cur.Plan != nil {
		var diff []string
		baseConn := base.Plan.Connection
		if isZero(baseConn.OnConnectFailure) {
			// A summary from before connection.on_connect_failure existed: its plan holds nothing
			// there, which is no difference of the user's.
			baseConn.OnConnectFailure = cur.Plan.Connection.OnConnectFailure
		}
		parts := []struct {
			name string
			a, b any
		}{
			{"target", base.Plan.Target, cur.Plan.Target},
			{"source", base.Plan.Source, cur.Plan.Source},
			{"connection", baseConn, cur.Plan.Connection},
			{"load", base.Plan.Load, cur.Plan.Load},
		}
		for _, p := range parts {
			a, _ := json.Marshal(p.a)
			b, _ := json.Marshal(p.b)
			if string(a) != string(b) {
				diff = append(diff, p.name)
			}
		}
		if len(diff) > 0 {
			out = append(out, fmt.Sprintf("the plans differ in %s: the runs may not be comparable", strings.Join(diff, ", ")))
		}
	}
	for _, r := range []struct {
		who string
		s   *report.Summary
	}{{"baseline", base}, {"new run", cur}} {
		if r.s.Interrupted {
			out = append(out, "the "+r.who+" was interrupted")
		}
		if r.s.Stopped != nil {
			out = append(out, "the "+r.who+" was stopped early by a threshold")
		}
	}
	return out
}

// isZero reports whether v is its type's zero value.
func isZero[T comparable](v T) bool {
	var zero T
	return v == zero
}
