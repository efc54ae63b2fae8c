package coordinator

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/portstorm/portstorm/loadgen/gate"
	"github.com/portstorm/portstorm/loadgen/metrics"
	"github.com/portstorm/portstorm/loadgen/preflight"
	"github.com/portstorm/portstorm/loadgen/report"
	"github.com/portstorm/portstorm/loadgen/search"
	"github.com/portstorm/portstorm/loadgen/spec"
)

// ProbesDir is the folder of a search's probes, inside its results folder.
const ProbesDir = "probes"

// SearchOptions are a search's settings that do not come from the plan.
type SearchOptions struct {
	// OutDir is the exact results folder; "" means <output.dir>/<name>-search-<UTC time>.
	OutDir string
	// Run is every probe's run options (Abort, AllowRemote, Stderr, Env, Exe, test dialers);
	// OutDir and Progress are set per probe.
	Run Options
	// Log receives a line as every probe starts and ends (nil: none).
	Log io.Writer
}

// SearchOutcome is a finished search: its summary (the answer's probe with the search section),
// its folder and the algorithm's answer.
type SearchOutcome struct {
	Summary *report.Summary
	Dir     string
	Answer  *search.Answer
}

// Search carries out the capacity search of a compiled search plan (docs/search.md): the
// algorithm of loadgen/search decides the levels, and every probe is a run of its own (Run; its
// folder under probes/), the answer and every probe in summary.json's
// search section, report.html charting the probes. Its errors are the coordinator's: ErrInvalid
// (exit 2) and any other (exit 3), the latter with the results so far written when a probe
// could not be carried out; a signal ends the probe under way (its results written) and the
// search, with the results so far (Summary.Interrupted).
func Search(ctx context.Context, s *spec.Spec, o SearchOptions) (*SearchOutcome, error) {
	sr := s.Search
	if sr == nil {
		return nil, fmt.Errorf("%w: the plan has no search: section (portstorm run runs it)", ErrInvalid)
	}
	// The thresholds, as every probe's gate compiles them: their metrics chart the probes.
	g, err := spec.Gate(spec.ProbePlan(s.Plan, sr.Min, sr.Probe, s.Name))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	dir := o.OutDir
	if dir == "" {
		dir = filepath.Join(s.OutputDir, s.Name+"-search-"+time.Now().UTC().Format("20060102T150405Z"))
	}
	release, err := report.ClaimDir(dir)
	if err != nil {
		return nil, err
	}
	defer release()
	r := &searchRun{s: s, o: o, dir: dir, gate: g, start: time.Now(), sums: map[int]*report.Summary{}, dirs: map[int]string{}}
	c := search.Config{Min: sr.Min, Max: sr.Max, Growth: sr.Growth, Tolerance: sr.Tolerance, Whole: sr.Dimension.Whole(),
		Probe: sr.Probe, Confirm: sr.Confirm, Settle: sr.Settle, MaxProbes: sr.MaxProbes, MaxTime: sr.MaxTime}
	a := search.Find(ctx, c, r, func() time.Duration { return time.Since(r.start) })
	sum, answerDir := r.summary(a)
	res := &SearchOutcome{Summary: sum, Dir: dir, Answer: a}
	if err := report.WriteSearchResults(dir, sum, answerDir); err != nil {
		return res, err
	}
	if a.Status == search.Error {
		return res, fmt.Errorf("the search could not be carried out: %s", sum.Search.Error)
	}
	return res, nil
}

// searchRun is the search.Prober that runs probes and keeps their records.
type searchRun struct {
	s     *spec.Spec
	o     SearchOptions
	dir   string
	gate  *gate.Gate
	start time.Time

	probes []report.SearchProbe
	sums   map[int]*report.Summary
	dirs   map[int]string
	// reached says a probe has established connections: the target can be reached.
	reached bool
	err     string
}

func (r *searchRun) logf(format string, args ...any) {
	if r.o.Log != nil {
		fmt.Fprintf(r.o.Log, format, args...)
	}
}

// level is a level as folder names and log lines show it.
func (r *searchRun) level(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }

// Probe runs one probe: it waits the settle (the last probe's connections have all ended when
// its run returned), then runs the probe's plan as a run of its own.
func (r *searchRun) Probe(ctx context.Context, p search.Probe) search.Outcome {
	sr := r.s.Search
	if p.Settle > 0 {
		t := time.NewTimer(p.Settle)
		select {
		case <-ctx.Done():
			t.Stop()
			return search.Interrupted
		case <-t.C:
		}
	}
	kind := ""
	if p.Confirm {
		kind = "-confirm"
	}
	sub := filepath.Join(ProbesDir, fmt.Sprintf("%02d-%s-%s%s", p.Index, sr.Dimension, r.level(p.Level), kind))
	rec := report.SearchProbe{Index: p.Index, Level: p.Level, Confirm: p.Confirm, DurationS: p.Duration.Seconds(),
		StartedAt: time.Now().UTC(), TimeWait: -1}
	what := "probe"
	if p.Confirm {
		what = "confirming probe"
	}
	left := ""
	if n := len(r.probes); n > 0 && r.probes[n-1].TimeWait > 0 {
		// TIME_WAIT sockets the last probe left hold ports of the range until they expire (or are
		// reused, tcp_tw_reuse): a probe at the ports' limit has fewer (docs/search.md).
		left = fmt.Sprintf(" (%d TIME_WAIT left by probe %d)", r.probes[n-1].TimeWait, n)
	}
	r.logf("portstorm search: %s %d: %s %s %s for %s%s\n", what, p.Index, sr.Dimension, r.level(p.Level), sr.Dimension.Unit(), p.Duration, left)
	out := r.run(ctx, p, sub, &rec)
	rec.Outcome = out.String()
	msg := ""
	switch {
	case rec.Failure != nil:
		msg = ": " + rec.Failure.Message
	case rec.Error != "":
		msg = ": " + rec.Error
	}
	r.logf("portstorm search: probe %d %s%s\n", p.Index, rec.Outcome, msg)
	if out == search.Broken && r.err == "" {
		r.err = fmt.Sprintf("probe %d (%s %s): %s", p.Index, sr.Dimension, r.level(p.Level), rec.Error)
	}
	r.probes = append(r.probes, rec)
	return out
}

func (r *searchRun) run(ctx context.Context, p search.Probe, sub string, rec *report.SearchProbe) search.Outcome {
	ps, err := r.s.Probe(p.Level, p.Duration, Facts(r.o.Run.Env))
	if err != nil {
		rec.Error = fmt.Errorf("%w: %w", ErrInvalid, err).Error()
		return search.Broken
	}
	o := r.o.Run
	o.OutDir, o.Progress = filepath.Join(r.dir, sub), nil
	first := true
	o.OnSnapshot = func(s *metrics.Snapshot) {
		if first {
			first = false
			r.logf("portstorm search: probe %d under way\n", p.Index)
		}
		if r.o.Run.OnSnapshot != nil {
			r.o.Run.OnSnapshot(s)
		}
	}
	res, err := Run(ctx, ps, o)
	var refused *Refused
	switch {
	case errors.As(err, &refused):
		// The preflight's forecast: this host cannot carry the level out; the client runs out.
		rec.Failure = refusal(refused)
		return search.Failed
	case errors.Is(err, ErrInterrupted):
		return search.Interrupted
	case res == nil && err != nil:
		rec.Error = err.Error()
		return search.Broken
	}
	rec.Dir = filepath.ToSlash(sub)
	sum := res.Summary
	r.sums[p.Index], r.dirs[p.Index] = sum, res.Dir
	rec.Verdict, rec.Stopped = sum.Verdict, sum.Stopped
	if len(sum.Stages) > 0 {
		rec.Stage = report.CompactStage(sum.Stages[0])
	}
	rec.TimeWait = timeWait(sum)
	for _, t := range r.gate.Thresholds {
		var v *float64
		if x, ok := t.Metric.Value(sum); ok {
			v = &x
		}
		rec.Values = append(rec.Values, v)
	}
	reached := r.reached
	r.reached = r.reached || sum.Connections.Established > 0
	switch {
	case err != nil:
		rec.Error = err.Error()
		return search.Broken
	case sum.Interrupted:
		return search.Interrupted
	case len(sum.WorkerFailures) > 0, len(sum.TargetFailures) > 0:
		rec.Error = "verdict error: " + report.Untrusted(sum)
		return search.Broken
	case sum.Unreachable != nil && !reached:
		// Never reached at all: there is no capacity to search.
		rec.Error = sum.Unreachable.Message()
		return search.Broken
	case sum.Verdict == report.VerdictError:
		rec.Error = "verdict error: " + report.Untrusted(sum)
		return search.Broken
	}
	if f := searchFailure(sum); f != nil {
		rec.Failure = f
		return search.Failed
	}
	return search.Held
}

// refusal is what the preflight's refusal of a level says ran out.
func refusal(r *Refused) *report.SearchFailure {
	f := &report.SearchFailure{Kind: report.FailHostLimit, Message: "the preflight refuses the level"}
	l := r.Forecast.First()
	if l == nil {
		for i := range r.Forecast.Limits {
			if r.Forecast.Limits[i].Stops {
				l = &r.Forecast.Limits[i]
				break
			}
		}
	}
	if l == nil {
		return f
	}
	f.Limit = l.Name
	switch {
	case l.Ports:
		f.Kind = report.FailPorts
	case l.Kind == preflight.LimitOpenFiles:
		f.Kind = report.FailFDs
	}
	f.Message = fmt.Sprintf("the client's %s would run out (preflight: %d %s needed, %d allowed)", l.Name, l.Demand, l.Unit, l.Max)
	return f
}

// searchFailure is what failed in a probe's summary, or nil when it held: the client's ports or file
// descriptors running out fail a probe whatever the thresholds say; then the threshold that
// stopped it, or the first that failed.
func searchFailure(s *report.Summary) *report.SearchFailure {
	outcomes := map[string]uint64{}
	for name, n := range s.Outcomes {
		if n > 0 && name != metrics.OK.String() {
			outcomes[name] = n
		}
	}
	exhausted := s.Ports != nil && s.Ports.Exhaustion != nil
	for _, h := range s.PortsByHost {
		exhausted = exhausted || h.Ports != nil && h.Ports.Exhaustion != nil
	}
	switch {
	case exhausted || outcomes[metrics.EADDRNOTAVAIL.String()] > 0:
		msg := "the client's local ports ran out"
		if n := outcomes[metrics.EADDRNOTAVAIL.String()]; n > 0 {
			msg += fmt.Sprintf(" (EADDRNOTAVAIL %d)", n)
		} else if s.Ports != nil && s.Ports.Exhaustion != nil && s.Ports.Exhaustion.Errno != "" {
			msg += fmt.Sprintf(" (%s from %s)", s.Ports.Exhaustion.Errno, s.Ports.Exhaustion.Syscall)
		}
		return &report.SearchFailure{Kind: report.FailPorts, Outcomes: outcomes, Message: msg}
	case outcomes[metrics.EMFILE.String()] > 0:
		return &report.SearchFailure{Kind: report.FailFDs, Outcomes: outcomes,
			Message: fmt.Sprintf("the client's open-files limit ran out (EMFILE %d)", outcomes[metrics.EMFILE.String()])}
	case s.Unreachable != nil:
		return &report.SearchFailure{Kind: report.FailUnreachable, Outcomes: outcomes, Message: s.Unreachable.Message()}
	case s.Verdict == report.VerdictPass:
		return nil
	}
	f := &report.SearchFailure{Kind: report.FailThreshold, Outcomes: outcomes}
	for _, t := range s.Thresholds {
		if !t.Pass && (f.Threshold == "" || t.StoppedRun) {
			f.Threshold, f.Metric, f.Observed = t.Expr, t.Metric, t.Observed
		}
	}
	f.Message = fmt.Sprintf("threshold %q failed (observed %s)", f.Threshold, f.Observed)
	if side := requestSide(s, f.Metric); side != "" {
		if strings.HasPrefix(side, "the generator") {
			f.Kind = report.FailGenerator
		}
		f.Message += ": " + side
	}
	if len(outcomes) > 0 {
		f.Message += "; failed connections: " + outcomeList(outcomes)
	}
	return f
}

// requestSide says which side held a rated probe's requests back when the threshold on metric
// failed (docs/search.md "What failed"), "" when the metric is not about requests at a rate.
// request_intended = window_wait + request_lag + rtt (docs/measurements.md "Requests at a rate"):
// request_lag is the generator's lateness, window_wait and rtt the target's answers. A failed
// request_lag threshold is the generator's; a shortfall (requests.shortfall, requests.per_second)
// is the generator's when request_lag dominates window_wait, the target's when window_wait does;
// a failed request_intended threshold is the target's unless request_lag is the largest of the
// three at p99.
func requestSide(s *report.Summary, metric string) string {
	name, _, _ := strings.Cut(metric, ".")
	if strings.HasPrefix(metric, "stage[") {
		// stage[0].request_lag.p99: the probe's one stage.
		_, rest, _ := strings.Cut(metric, "].")
		name, _, _ = strings.Cut(rest, ".")
		metric = rest
	}
	lag, wait, rtt := s.Latency["request_lag"], s.Latency["window_wait"], s.Latency["rtt"]
	lagged := fmt.Sprintf("request_lag p99 %s", fmtMicros(lag.P99))
	waited := fmt.Sprintf("window_wait p99 %s", fmtMicros(wait.P99))
	generator := "the generator could not keep up its request rate (" + lagged + ", " + waited + ")"
	target := "the target answered too slowly for the rate (" + waited + ", " + lagged + ")"
	switch {
	case name == "request_lag":
		return generator
	case metric == "requests.shortfall" || metric == "requests.per_second":
		switch {
		case wait.Count > 0 && wait.P99 >= lag.P99 && wait.P99 > 0:
			return target
		case lag.Count > 0 && lag.P99 > 0:
			return generator
		}
		return ""
	case name == "request_intended":
		if lag.Count > 0 && lag.P99 > wait.P99 && lag.P99 > rtt.P99 {
			return generator + fmt.Sprintf(", rtt p99 %s", fmtMicros(rtt.P99))
		}
		return fmt.Sprintf("the target answered too slowly for the rate (rtt p99 %s, %s, %s)", fmtMicros(rtt.P99), waited, lagged)
	}
	return ""
}

// fmtMicros shows a latency in microseconds as a duration.
func fmtMicros(us int64) string { return (time.Duration(us) * time.Microsecond).String() }

// outcomeList shows outcome counts in the outcomes' fixed order.
func outcomeList(m map[string]uint64) string {
	var parts []string
	for o := range metrics.NumOutcomes {
		if n := m[o.String()]; n > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", o, n))
		}
	}
	return strings.Join(parts, ", ")
}

// timeWait is the client's TIME_WAIT sockets at the run's end, -1 when not observed.
func timeWait(s *report.Summary) int64 {
	if s.Ports != nil {
		return s.Ports.TimeWait.Last
	}
	n := int64(-1)
	for _, h := range s.PortsByHost {
		if h.Ports != nil && h.Ports.TimeWait.Last >= 0 {
			n = max(n, 0) + h.Ports.TimeWait.Last
		}
	}
	return n
}

// summary is the search's summary.json: the answer's probe with the search section, the verdict
// the search's (pass when a level held, at least require), and a threshold row saying so; and the
// folder of the answer's probe.
func (r *searchRun) summary(a *search.Answer) (*report.Summary, string) {
	sr := r.s.Search
	rs := &report.Search{Dimension: sr.Dimension.String(), Unit: sr.Dimension.Unit(), Min: sr.Min, Max: sr.Max,
		Growth: sr.Growth, Tolerance: sr.Tolerance, Status: string(a.Status), Confirmed: a.Confirmed,
		StartedAt: r.start.UTC(), DurationS: time.Since(r.start).Seconds(), Probes: r.probes, Error: r.err}
	if rs.Probes == nil {
		rs.Probes = []report.SearchProbe{}
	}
	for _, t := range r.gate.Thresholds {
		rs.Thresholds = append(rs.Thresholds, report.SearchThreshold{Expr: t.Expr, Metric: t.Metric.Name, Kind: t.Metric.Kind.String(), Limit: t.Limit})
	}
	if sr.Require > 0 {
		rs.Require = &sr.Require
	}
	if a.HasHeld {
		rs.Held = &a.Held
	}
	if a.HasFailed {
		rs.Failed = &a.Failed
		for _, p := range r.probes {
			if p.Level == a.Failed && p.Failure != nil {
				rs.Failure = p.Failure
			}
		}
	}
	if w := a.Within(); w >= 0 {
		rs.Within = &w
	}
	rs.Pass = a.HasHeld && a.Held >= sr.Require && a.Status != search.Error && a.Status != search.Stopped
	// The answer's probe: the confirmation of the level that held, or its last probe; else the
	// first probe at the level that failed; else the last probe with results.
	for _, p := range r.probes {
		if r.sums[p.Index] == nil {
			continue
		}
		switch {
		case a.HasHeld && p.Level == a.Held && p.Outcome == "held":
			rs.AnswerProbe = p.Index
		case !a.HasHeld && a.HasFailed && p.Level == a.Failed && p.Outcome == "failed":
			rs.AnswerProbe = p.Index
		}
	}
	if rs.AnswerProbe == 0 {
		for _, p := range r.probes {
			if r.sums[p.Index] != nil {
				rs.AnswerProbe = p.Index
			}
		}
	}
	var sum report.Summary
	if ans := r.sums[rs.AnswerProbe]; ans != nil {
		sum = *ans
		sum.Thresholds = append([]report.ThresholdResult(nil), ans.Thresholds...)
		sum.Warnings = append([]string(nil), ans.Warnings...)
		sum.OutputsIncomplete = nil
	} else {
		now := time.Now()
		sum = report.Summary{Schema: report.Schema, Name: r.s.Name, StartedAt: r.start, EndedAt: now,
			DurationUS: now.Sub(r.start).Microseconds(), Host: r.s.Host, Segments: 1}
	}
	sum.Plan = r.s.Plan
	sum.Search = rs
	sum.Interrupted = a.Status == search.Stopped
	held := "none"
	if rs.Held != nil {
		held = rs.Level(*rs.Held)
	}
	row := report.ThresholdResult{Metric: "search.held", Observed: held, Pass: rs.Pass}
	if rs.Require != nil {
		row.Condition = ">= " + rs.Level(*rs.Require)
		row.Expr = fmt.Sprintf("search.held >= %v", *rs.Require)
	} else {
		row.Condition = "a level holds"
		row.Expr = "search.held: a level holds"
	}
	sum.Thresholds = append(sum.Thresholds, row)
	switch {
	case a.Status == search.Error:
		sum.Verdict = report.VerdictError
	case rs.Pass:
		sum.Verdict = report.VerdictPass
	default:
		sum.Verdict = report.VerdictFail
	}
	if rs.Held != nil && !rs.Confirmed {
		sum.Warnings = append(sum.Warnings, fmt.Sprintf("search: %s held its probe but was not confirmed by a longer one (%s)", held, a.Status))
	}
	if f := rs.Failure; f != nil && f.Kind == report.FailPorts {
		var tw int64
		for _, p := range r.probes {
			tw = max(tw, p.TimeWait)
		}
		if tw > 0 {
			sum.Warnings = append(sum.Warnings, fmt.Sprintf("search: the ports ran out, and earlier probes left up to %d TIME_WAIT sockets holding ports of the range; close: rst, or a settle past tcp_tw_reuse_delay, gives every probe the whole range", tw))
		}
	}
	switch a.Status {
	case search.MaxProbes, search.MaxTime:
		sum.Warnings = append(sum.Warnings, fmt.Sprintf("search: stopped by %s before the answer was known within %.1f%%", a.Status, 100*sr.Tolerance))
	case search.MaxHeld:
		sum.Warnings = append(sum.Warnings, fmt.Sprintf("search: even search.max (%s) held; the capacity is above it", rs.Level(sr.Max)))
	}
	return &sum, r.dirs[rs.AnswerProbe]
}
