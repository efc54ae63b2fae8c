package gate

import (
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"

	hdr "github.com/HdrHistogram/hdrhistogram-go"
	"github.com/agnivade/levenshtein"

	"github.com/portstorm/portstorm/loadgen/metrics"
	"github.com/portstorm/portstorm/loadgen/report"
	"github.com/portstorm/portstorm/loadgen/schedule"
	"github.com/portstorm/portstorm/target"
)

// Kind is what a metric measures. It fixes how a limit is written (and checked) and how a value
// is shown.
type Kind uint8

const (
	// Count is a whole number: 60000.
	Count Kind = iota
	// Time is a latency or a moment in the run, in microseconds as summary.json keeps it; limits take
	// units: 5ms, 250us, 30s.
	Time
	// Ratio is a share, 0 to 1 in summary.json; limits are written 0.1% or 0.001.
	Ratio
	// PerSecond is a rate: 500 or 500/s.
	PerSecond
	// Bytes is a size: 64B, 1MiB.
	Bytes
)

func (k Kind) String() string {
	return [...]string{"count", "time", "ratio", "per-second rate", "size"}[k]
}

// state says whether a result holds a figure.
type state uint8

const (
	present state = iota
	// never: the event the figure dates never happened ("none"): ports were never exhausted, an
	// outcome never occurred.
	never
	// missing: the result does not hold the figure: no samples, a stage that never ran, ports not
	// observed. A threshold on a missing figure fails: a gate must not pass on no evidence.
	missing
)

type figure struct {
	v   float64
	st  state
	why string // what is missing
}

func value(v float64) figure    { return figure{v: v} }
func absent(why string) figure  { return figure{st: missing, why: why} }
func noneFigure() figure        { return figure{st: never} }
func countOf(n uint64) figure   { return value(float64(n)) }
func countOfInt(n int64) figure { return value(float64(n)) }

// Metric is a figure of a result that thresholds and baseline checks name.
type Metric struct {
	// Name is the canonical name: "connect.p99", "stage[1].errors.rate", "ports.exhaustion".
	Name string
	Kind Kind
	// Nullable metrics date an event ("ports.exhaustion", "first.ECONNRESET") and are none when it
	// never happened. Compared with a number, none reads as never: later, or larger, than any limit.
	Nullable bool
	get      func(*view) figure
	// Speed says how the figure moves with the speed of the host that measured it, for a baseline
	// compared with baseline.normalize: calibration.
	Speed Speed
	// nameIn, when set, is the name the metric resolves to in a result (latency.STAT names the
	// result's headline latency, known only from the result).
	nameIn func(*view) string
}

// Speed is how a metric moves with the host's speed.
type Speed uint8

const (
	// SpeedNone: counts, shares, sizes, the schedule's times and rates: no host speed in them.
	SpeedNone Speed = iota
	// SpeedTime: latencies, longer on a slower host (divided by its calibration unit).
	SpeedTime
	// SpeedRate: achieved rates, lower on a slower host (multiplied by its calibration unit).
	SpeedRate
)

// nameFor is the metric's name as judged on v.
func (m *Metric) nameFor(v *view) string {
	if m.nameIn != nil {
		return m.nameIn(v)
	}
	return m.Name
}

// Context is what a metric name is checked against: the plan's stage count (0: unknown, any index
// passes) and load model (which histogram "latency.p99" means).
type Context struct {
	Stages int
	Model  schedule.Model
}

var (
	stageRE = regexp.MustCompile(`^stages?\[([0-9]+)\]\.(.+)$`)
	pctRE   = regexp.MustCompile(`^p([0-9]{1,6})$`)
)

// latencyNames are the histograms of docs/measurements.md, in summary.json order.
func latencyNames() []string {
	out := make([]string, metrics.NumLatencies)
	for l := range metrics.NumLatencies {
		out[l] = l.String()
	}
	return out
}

func outcomeNames() []string {
	out := make([]string, metrics.NumOutcomes)
	for o := range metrics.NumOutcomes {
		out[o] = o.String()
	}
	return out
}

var connectionFields = map[string]string{
	"attempted": "attempted", "established": "established", "failed": "failed", "dropped": "dropped",
	"closed": "closed", "peak_concurrent": "peak_concurrent", "peak": "peak_concurrent", "per_second": "per_second",
}

var latencyStats = []string{"count", "min", "mean", "p50", "p90", "p99", "p999", "max"}

// Resolve finds the metric a name means. Errors say what is wrong and suggest the nearest name.
func Resolve(name string, c Context) (*Metric, error) {
	stage := -1
	rest := name
	if m := stageRE.FindStringSubmatch(name); m != nil {
		if strings.HasPrefix(name, "stages[") {
			return nil, fmt.Errorf("unknown metric %q; per-stage metrics are written stage[N].metric, like stage[%s].%s", name, m[1], m[2])
		}
		n, err := strconv.Atoi(m[1])
		if err != nil || (c.Stages > 0 && n >= c.Stages) {
			return nil, fmt.Errorf("%q: the plan has %d stage(s), stage[0] to stage[%d] (counted from 0, as load.stages and summary.json's stages[].index)",
				name, c.Stages, c.Stages-1)
		}
		stage, rest = n, m[2]
	} else if strings.HasPrefix(name, "stage") && strings.Contains(name, "[") {
		return nil, fmt.Errorf("unknown metric %q; per-stage metrics are written stage[N].metric, like stage[1].connect.p99", name)
	}
	m, err := resolveIn(rest, stage, c)
	if err != nil {
		return nil, err
	}
	if stage >= 0 {
		m.Name = fmt.Sprintf("stage[%d].%s", stage, m.Name)
	}
	return m, nil
}

func unknown(name string, stage int, c Context) error {
	best, bestD := "", math.MaxInt
	for _, k := range knownNames(c, stage >= 0) {
		if strings.EqualFold(name, k) {
			best, bestD = k, 0
			break
		}
		if d := levenshtein.ComputeDistance(name, k); d < bestD {
			best, bestD = k, d
		}
	}
	scope := "metric"
	if stage >= 0 {
		scope = "per-stage metric"
	}
	if bestD <= max(2, len(name)/4) {
		return fmt.Errorf("unknown %s %q (did you mean %q?)", scope, name, best)
	}
	return fmt.Errorf("unknown %s %q; want one of connections.*, outcomes.*, errors.count, errors.rate, duration, "+
		"requests.* (count, offered, errors, error_rate, per_second, offered_per_second, shortfall, outcomes.OUTCOME), "+
		"LATENCY.STAT (LATENCY: %s; STAT: count, min, mean, max, p50, p90, p99, p999 or any pNN)%s",
		scope, name, strings.Join(latencyNames(), ", "), map[bool]string{
			false: ", bytes.*, first.OUTCOME, target.*, ports.* or stage[N].METRIC",
			true:  "",
		}[stage >= 0])
}

// knownNames lists the names suggestions are drawn from.
func knownNames(c Context, inStage bool) []string {
	var out []string
	for f := range connectionFields {
		out = append(out, "connections."+f)
	}
	for _, o := range outcomeNames() {
		out = append(out, "outcomes."+o)
	}
	out = append(out, "errors.count", "errors.rate", "duration")
	for f := range requestFields {
		out = append(out, "requests."+f)
	}
	for _, o := range outcomeNames() {
		out = append(out, "requests.outcomes."+o)
	}
	for _, l := range append(latencyNames(), "latency") {
		for _, s := range latencyStats {
			out = append(out, l+"."+s, "latency."+l+"."+s)
		}
	}
	if !inStage {
		out = append(out, "bytes.out", "bytes.in")
		for _, o := range outcomeNames() {
			out = append(out, "first."+o, "first."+o+".at_s", "first."+o+".concurrency")
		}
		for _, f := range targetFields {
			out = append(out, "target."+f.name)
		}
		out = append(out, portsNames...)
	}
	slices.Sort(out)
	return out
}

func resolveIn(name string, stage int, c Context) (*Metric, error) {
	parts := strings.Split(name, ".")
	whole := stage < 0
	switch {
	case parts[0] == "connections" && len(parts) == 2:
		if f, ok := connectionFields[parts[1]]; ok {
			return connectionsMetric(f, stage), nil
		}
	case parts[0] == "outcomes" && len(parts) == 2:
		if _, ok := metrics.ParseOutcome(parts[1]); ok {
			return outcomeMetric(name, parts[1], stage), nil
		}
	case parts[0] == "requests" && len(parts) == 2:
		if f, ok := requestFields[parts[1]]; ok {
			return requestsMetric(f, stage), nil
		}
	case parts[0] == "requests" && len(parts) == 3 && parts[1] == "outcomes":
		if _, ok := metrics.ParseOutcome(parts[2]); ok {
			return requestOutcomeMetric(name, parts[2], stage), nil
		}
	case name == "errors.count" || name == "errors.rate":
		return errorsMetric(parts[1], stage), nil
	case name == "duration":
		return durationMetric(name, stage), nil
	case whole && parts[0] == "bytes" && len(parts) == 2 && (parts[1] == "out" || parts[1] == "in"):
		return bytesMetric(name, parts[1] == "out"), nil
	case whole && parts[0] == "first" && (len(parts) == 2 || len(parts) == 3):
		if _, ok := metrics.ParseOutcome(parts[1]); ok {
			field := "at_s"
			if len(parts) == 3 {
				field = parts[2]
			}
			if field == "at_s" || field == "concurrency" {
				return firstMetric(name, parts[1], field), nil
			}
		}
	case whole && parts[0] == "target" && len(parts) == 2:
		if m := targetMetric(name, parts[1]); m != nil {
			return m, nil
		}
	case whole && parts[0] == "ports":
		if m := portsMetric(name); m != nil {
			return m, nil
		}
	}
	if m, err := latencyMetric(name, parts, stage, c); m != nil || err != nil {
		return m, err
	}
	return nil, unknown(name, stage, c)
}

// outcomeMetric counts connections that ended in outcome o, in the run or a stage.
func outcomeMetric(name, o string, stage int) *Metric {
	return &Metric{Name: name, Kind: Count, get: func(v *view) figure {
		out, why := v.outcomes(stage)
		if why != "" {
			return absent(why)
		}
		return countOf(out[o])
	}}
}

// requestOutcomeMetric counts requests that ended in outcome o, in the run or a stage.
func requestOutcomeMetric(name, o string, stage int) *Metric {
	return &Metric{Name: name, Kind: Count, get: func(v *view) figure {
		r, why := v.requests(stage)
		if why != "" {
			return absent(why)
		}
		return countOf(r.Outcomes[o])
	}}
}

// durationMetric is how long the run, or a stage, lasted.
func durationMetric(name string, stage int) *Metric {
	return &Metric{Name: name, Kind: Time, get: func(v *view) figure {
		if stage < 0 {
			return value(float64(v.s.DurationUS))
		}
		st := v.stage(stage)
		if st == nil {
			return absent(fmt.Sprintf("stage %d did not run", stage))
		}
		return value((st.EndS - st.StartS) * 1e6)
	}}
}

// bytesMetric is the bytes the run wrote (out) or read.
func bytesMetric(name string, out bool) *Metric {
	return &Metric{Name: name, Kind: Bytes, get: func(v *view) figure {
		if out {
			return countOf(v.s.Bytes.Out)
		}
		return countOf(v.s.Bytes.In)
	}}
}

// targetMetric is one of the built-in target's counters; nil for a field it does not have.
func targetMetric(name, field string) *Metric {
	for _, f := range targetFields {
		if f.name == field {
			return &Metric{Name: name, Kind: f.kind, get: func(v *view) figure {
				if v.s.Target == nil {
					return absent("no built-in target in this run")
				}
				return f.get(v.s.Target)
			}}
		}
	}
	return nil
}

// latencyMetric reads LATENCY.STAT, latency.LATENCY.STAT and latency.STAT: the result's headline
// latency (report.Headline, docs/measurements.md): request_intended when the requests were rated,
// rtt when the run is about requests, else connect_intended under the arrival model and connect.
// Its canonical name is the model's connection latency's until a result names the headline.
func latencyMetric(name string, parts []string, stage int, c Context) (*Metric, error) {
	headline := false
	if parts[0] == "latency" {
		parts = parts[1:]
		if len(parts) == 1 {
			def := "connect"
			if c.Model == schedule.Arrival {
				def = "connect_intended"
			}
			parts, headline = []string{def, parts[0]}, true
		}
	}
	if len(parts) != 2 || !slices.Contains(latencyNames(), parts[0]) {
		return nil, nil
	}
	lat, stat := parts[0], parts[1]
	kind := Time
	pct := -1.0
	switch stat {
	case "count":
		kind = Count
	case "min", "mean", "max":
	default:
		m := pctRE.FindStringSubmatch(stat)
		if m == nil {
			return nil, fmt.Errorf("unknown statistic %q of %s; want count, min, mean, max or a percentile like p50, p99, p999 (99.9), p9999 (99.99)", stat, lat)
		}
		if d := m[1]; len(d) > 2 && d != "100" && !strings.HasPrefix(d, "99") {
			return nil, fmt.Errorf("%s.%s: write percentiles as p50, p99, p999 (99.9), p9995 (99.95) or p100 (the maximum)", lat, stat)
		}
		pct = parsePercentile(m[1])
	}
	canonical := lat + "." + stat
	latOf := func(*view) string { return lat }
	if headline {
		latOf = func(v *view) string { return v.headline(lat) }
	}
	m := &Metric{Name: canonical, Kind: kind}
	if kind == Time {
		m.Speed = SpeedTime
	}
	if headline {
		m.nameIn = func(v *view) string { return latOf(v) + "." + stat }
	}
	m.get = func(v *view) figure {
		lat := latOf(v)
		ls, why := v.latency(stage, lat)
		if why != "" {
			return absent(why)
		}
		if stat == "count" {
			return countOfInt(ls.Count)
		}
		if ls.Count == 0 {
			return absent("no samples")
		}
		switch stat {
		case "min":
			return countOfInt(ls.Min)
		case "mean":
			return value(ls.Mean)
		case "max":
			return countOfInt(ls.Max)
		case "p50":
			return countOfInt(ls.P50)
		case "p90":
			return countOfInt(ls.P90)
		case "p99":
			return countOfInt(ls.P99)
		case "p999":
			return countOfInt(ls.P999)
		}
		h, err := v.histogram(stage, lat, ls.HDR)
		if err != nil {
			return absent(err.Error())
		}
		return countOfInt(h.ValueAtPercentile(pct))
	}
	return m, nil
}

// parsePercentile reads the digits of pNN the way latency tools write them: the first two digits
// are the whole part, the rest the fraction (p999 is 99.9, p9999 99.99); p100 is the maximum.
func parsePercentile(d string) float64 {
	if d == "100" || len(d) <= 2 {
		n, _ := strconv.Atoi(d)
		return float64(n)
	}
	f, _ := strconv.ParseFloat(d[:2]+"."+d[2:], 64)
	return f
}

func connectionsMetric(field string, stage int) *Metric {
	kind, speed := Count, SpeedNone
	if field == "per_second" {
		kind, speed = PerSecond, SpeedRate
	}
	return &Metric{Name: "connections." + field, Kind: kind, Speed: speed, get: func(v *view) figure {
		c, why := v.connections(stage)
		if why != "" {
			return absent(why)
		}
		switch field {
		case "attempted":
			return countOf(c.Attempted)
		case "established":
			return countOf(c.Established)
		case "failed":
			return countOf(c.Failed)
		case "dropped":
			return countOf(c.Dropped)
		case "closed":
			return countOf(c.Closed)
		case "peak_concurrent":
			return countOfInt(c.PeakConcurrent)
		default:
			return value(c.PerSecond)
		}
	}}
}

// requestFields are the requests.* metrics (summary.json's requests) and their kinds; count is
// written.
var requestFields = map[string]string{
	"count": "written", "written": "written", "offered": "offered", "errors": "errors",
	"error_rate": "error_rate", "per_second": "per_second", "offered_per_second": "offered_per_second",
	"shortfall": "shortfall",
}

func requestsMetric(field string, stage int) *Metric {
	kind, speed := Count, SpeedNone
	switch field {
	case "error_rate", "shortfall":
		kind = Ratio
	case "per_second":
		// Achieved; offered_per_second is the schedule's, whatever the host.
		kind, speed = PerSecond, SpeedRate
	case "offered_per_second":
		kind = PerSecond
	}
	name := "requests." + field
	if field == "written" {
		name = "requests.count"
	}
	return &Metric{Name: name, Kind: kind, Speed: speed, get: func(v *view) figure {
		r, why := v.requests(stage)
		if why != "" {
			return absent(why)
		}
		switch field {
		case "written":
			return countOf(r.Written)
		case "offered":
			return countOf(r.Offered)
		case "errors":
			return countOf(r.Errors)
		}
		// A rate or share of no requests is no evidence: a gate on it fails rather than passes.
		if r.Written == 0 && r.Offered == 0 {
			return absent("no requests in this run")
		}
		switch field {
		case "error_rate":
			return value(r.ErrorRate)
		case "per_second":
			return value(r.PerSecond)
		case "offered_per_second":
			return value(r.OfferedPerSecond)
		}
		return value(r.Shortfall)
	}}
}

func errorsMetric(field string, stage int) *Metric {
	kind := Count
	if field == "rate" {
		kind = Ratio
	}
	return &Metric{Name: "errors." + field, Kind: kind, get: func(v *view) figure {
		if stage < 0 {
			if field == "count" {
				return countOf(v.s.Errors.Count)
			}
			return value(v.s.Errors.Rate)
		}
		st := v.stage(stage)
		if st == nil {
			return absent(fmt.Sprintf("stage %d did not run", stage))
		}
		var n uint64
		for o, c := range st.Outcomes {
			if o != metrics.OK.String() {
				n += c
			}
		}
		if field == "count" {
			return countOf(n)
		}
		// As for the whole run: errors over connections that ended.
		if ended := st.Connections.Failed + st.Connections.Closed; ended > 0 {
			return value(float64(n) / float64(ended))
		}
		return value(0)
	}}
}

func firstMetric(name, outcome, field string) *Metric {
	kind := Time
	if field == "concurrency" {
		kind = Count
	}
	return &Metric{Name: name, Kind: kind, Nullable: true, get: func(v *view) figure {
		f, ok := v.s.First[outcome]
		if !ok {
			return noneFigure()
		}
		if field == "concurrency" {
			return countOfInt(f.Concurrency)
		}
		return value(f.AtS * 1e6)
	}}
}

type targetField struct {
	name string
	kind Kind
	get  func(*target.Stats) figure
}

var targetFields = []targetField{
	{"accepted", Count, func(t *target.Stats) figure { return countOf(t.Accepted) }},
	{"peak", Count, func(t *target.Stats) figure { return countOfInt(t.Peak) }},
	{"closed", Count, func(t *target.Stats) figure { return countOf(t.Closed) }},
	{"idle_closed", Count, func(t *target.Stats) figure { return countOf(t.IdleClosed) }},
	{"bytes_in", Bytes, func(t *target.Stats) figure { return countOf(t.BytesIn) }},
	{"bytes_out", Bytes, func(t *target.Stats) figure { return countOf(t.BytesOut) }},
}

// The port observatory's figures (docs/ports.md), read from summary.json's ports object by
// name, so that any build's port report is judged by the same names.
var portsNames = []string{
	"ports.exhaustion", "ports.exhausted_at", "ports.exhaustion.at_s", "ports.exhaustion.concurrency",
	"ports.exhaustion.occupancy", "ports.time_wait_peak", "ports.unique_ports", "ports.reuse",
	"ports.peak_per_destination", "ports.occupancy",
}

func portsMetric(name string) *Metric {
	switch name {
	case "ports.exhaustion", "ports.exhausted_at", "ports.exhaustion.at_s":
		return &Metric{Name: name, Kind: Time, Nullable: true, get: func(v *view) figure { return v.exhaustion("at_s") }}
	case "ports.exhaustion.concurrency":
		return &Metric{Name: name, Kind: Count, Nullable: true, get: func(v *view) figure { return v.exhaustion("concurrency") }}
	case "ports.exhaustion.occupancy":
		return &Metric{Name: name, Kind: Ratio, Nullable: true, get: func(v *view) figure { return v.exhaustion("occupancy") }}
	case "ports.time_wait_peak":
		return &Metric{Name: name, Kind: Count, get: func(v *view) figure {
			p, why := v.portsObject()
			if why != "" {
				return absent(why)
			}
			if n, ok := number(p["time_wait_peak"]); ok {
				return value(n)
			}
			return absent("summary.json has no ports.time_wait_peak")
		}}
	case "ports.unique_ports", "ports.reuse":
		field := strings.TrimPrefix(name, "ports.")
		return &Metric{Name: name, Kind: Count, get: func(v *view) figure { return v.portsList("sources", field, false) }}
	case "ports.peak_per_destination":
		return &Metric{Name: name, Kind: Count, get: func(v *view) figure { return v.portsList("destinations", "peak_concurrent", true) }}
	case "ports.occupancy":
		return &Metric{Name: name, Kind: Ratio, get: func(v *view) figure { return v.portsList("destinations", "occupancy", true) }}
	}
	return nil
}

// view reads figures out of one summary, decoding each histogram at most once.
type view struct {
	s *report.Summary
	// live, when set, gives the running histograms (stage -1: the whole run) of a live summary,
	// whose hdr fields are empty.
	live     Histograms
	hists    map[string]*hdr.Histogram
	ports    map[string]any
	portsWhy string
	portsSet bool
}

func newView(s *report.Summary) *view { return &view{s: s, hists: map[string]*hdr.Histogram{}} }

func (v *view) stage(i int) *report.Stage {
	for k := range v.s.Stages {
		if v.s.Stages[k].Index == i {
			return &v.s.Stages[k]
		}
	}
	return nil
}

func (v *view) connections(stage int) (report.Connections, string) {
	if stage < 0 {
		return v.s.Connections, ""
	}
	st := v.stage(stage)
	if st == nil {
		return report.Connections{}, fmt.Sprintf("stage %d did not run", stage)
	}
	return st.Connections, ""
}

func (v *view) outcomes(stage int) (map[string]uint64, string) {
	if stage < 0 {
		return v.s.Outcomes, ""
	}
	st := v.stage(stage)
	if st == nil {
		return nil, fmt.Sprintf("stage %d did not run", stage)
	}
	return st.Outcomes, ""
}

func (v *view) requests(stage int) (*report.Requests, string) {
	r := v.s.Requests
	if stage >= 0 {
		st := v.stage(stage)
		if st == nil {
			return nil, fmt.Sprintf("stage %d did not run", stage)
		}
		r = st.Requests
	}
	if r == nil {
		return nil, "summary.json has no requests (written before requests were counted)"
	}
	return r, ""
}

// headline is the result's headline latency (report.Headline), or def when the result cannot say
// (a summary without requests and without the request histograms).
func (v *view) headline(def string) string {
	switch h := report.Headline(v.s); h {
	case "request_intended", "rtt":
		return h
	}
	return def
}

func (v *view) latency(stage int, lat string) (report.LatencySummary, string) {
	m := v.s.Latency
	if stage >= 0 {
		st := v.stage(stage)
		if st == nil {
			return report.LatencySummary{}, fmt.Sprintf("stage %d did not run", stage)
		}
		m = st.Latency
	}
	ls, ok := m[lat]
	if !ok {
		return report.LatencySummary{}, "summary.json has no " + lat + " histogram"
	}
	return ls, ""
}

func (v *view) histogram(stage int, lat, enc string) (*hdr.Histogram, error) {
	if v.live != nil {
		if h := v.live(stage, lat); h != nil {
			return h, nil
		}
		return nil, fmt.Errorf("%s histogram: not kept", lat)
	}
	key := strconv.Itoa(stage) + "/" + lat
	if h, ok := v.hists[key]; ok {
		return h, nil
	}
	h, err := metrics.DecodeHistogram(enc)
	if err != nil {
		return nil, fmt.Errorf("%s histogram: %w", lat, err)
	}
	v.hists[key] = h
	return h, nil
}

// portsObject is summary.json's ports as generic JSON, whatever Go type the observatory uses.
func (v *view) portsObject() (map[string]any, string) {
	if v.portsSet {
		return v.ports, v.portsWhy
	}
	v.portsSet = true
	if v.s.Ports == nil {
		v.portsWhy = "ports not observed in this run"
		return nil, v.portsWhy
	}
	b, err := json.Marshal(v.s.Ports)
	if err == nil {
		err = json.Unmarshal(b, &v.ports)
	}
	if err != nil || v.ports == nil {
		v.ports, v.portsWhy = nil, "ports not observed in this run"
	}
	return v.ports, v.portsWhy
}

// exhaustion reads ports.exhaustion; without a port report, the first EADDRNOTAVAIL or EADDRINUSE
// is the exhaustion (docs/ports.md defines it so), with its time and concurrency but no occupancy.
func (v *view) exhaustion(field string) figure {
	if p, _ := v.portsObject(); p != nil {
		if e, ok := p["exhaustion"]; ok {
			if e == nil {
				return noneFigure()
			}
			obj, _ := e.(map[string]any)
			n, ok := number(obj[field])
			if !ok {
				return absent("summary.json has no ports.exhaustion." + field)
			}
			if field == "at_s" {
				n *= 1e6
			}
			return value(n)
		}
	}
	var first *report.First
	for _, o := range []string{metrics.EADDRNOTAVAIL.String(), metrics.EADDRINUSE.String()} {
		if f, ok := v.s.First[o]; ok && (first == nil || f.AtS < first.AtS) {
			first = &f
		}
	}
	switch {
	case first == nil:
		return noneFigure()
	case field == "at_s":
		return value(first.AtS * 1e6)
	case field == "concurrency":
		return countOfInt(first.Concurrency)
	}
	return absent("ports not observed in this run; occupancy unknown")
}

// portsList sums (or, with maxOf, takes the largest) a field over ports.<list>[].
func (v *view) portsList(list, field string, maxOf bool) figure {
	p, why := v.portsObject()
	if p == nil {
		return absent(why)
	}
	items, _ := p[list].([]any)
	if len(items) == 0 {
		return absent("summary.json has no ports." + list)
	}
	var acc float64
	found := false
	for _, it := range items {
		obj, _ := it.(map[string]any)
		x := obj[field]
		if m, ok := x.(map[string]any); ok { // {"count": n, ...}
			x = m["count"]
		}
		n, ok := number(x)
		if !ok {
			continue
		}
		found = true
		if maxOf {
			acc = max(acc, n)
		} else {
			acc += n
		}
	}
	if !found {
		return absent(fmt.Sprintf("summary.json has no ports.%s[].%s", list, field))
	}
	return value(acc)
}

func number(x any) (float64, bool) {
	switch n := x.(type) {
	case float64:
		return n, true
	case json.Number:
		f, err := n.Float64()
		return f, err == nil
	}
	return 0, false
}
