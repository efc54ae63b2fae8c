// Package report turns measurements into result files: summary.json (the contract users' CI scripts
// parse), timeline.csv and the text summary, all written atomically.
package report

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/portstorm/portstorm/loadgen/memory"
	"github.com/portstorm/portstorm/loadgen/metrics"
	"github.com/portstorm/portstorm/loadgen/plan"
	"github.com/portstorm/portstorm/loadgen/ports"
	"github.com/portstorm/portstorm/loadgen/preflight"
	"github.com/portstorm/portstorm/loadgen/schedule"
	"github.com/portstorm/portstorm/target"
)

// Schema names the summary.json contract; later versions only add fields.
const Schema = "portstorm/summary/v1"

// SummaryFile is the summary's name in a results folder.
const SummaryFile = "summary.json"

// The verdicts summary.json's "verdict" (and junit.xml's) may hold. Only VerdictPass means the run
// passed: a CI script checking verdict == "pass" never passes a run that did not.
const (
	// VerdictPass: the run was carried out, every threshold and baseline check was judged and passed.
	VerdictPass = "pass"
	// VerdictFail: a threshold or baseline check failed, or abort_on_fail stopped the run (exit 1).
	VerdictFail = "fail"
	// VerdictNone: the run was carried out but the plan has no thresholds and no baseline, so
	// nothing judged it (exit 0). A run where most connections failed gets a warning too.
	VerdictNone = "no_thresholds"
	// VerdictError: the run or its result cannot be trusted whatever the thresholds say: the target
	// was unreachable, a worker process failed, or a result file could not be written
	// (outputs_incomplete). The exit code is 3 (130 when also interrupted).
	VerdictError = "error"
)

// Summary is summary.json (docs/results.md). Times are microseconds, counts integers.
type Summary struct {
	Schema      string         `json:"schema"`
	Name        string         `json:"name"`
	StartedAt   time.Time      `json:"started_at"`
	EndedAt     time.Time      `json:"ended_at"`
	DurationUS  int64          `json:"duration_us"`
	Interrupted bool           `json:"interrupted"`
	Aborted     bool           `json:"aborted"`
	Verdict     string         `json:"verdict"`
	Plan        *plan.Plan     `json:"plan"`
	Host        preflight.Host `json:"host"`
	Segments    int            `json:"segments"`

	Connections Connections         `json:"connections"`
	Outcomes    map[string]uint64   `json:"outcomes"`
	First       map[string]First    `json:"first"`
	Examples    map[string][]string `json:"examples,omitempty"`
	Errors      ErrorRate           `json:"errors"`
	Bytes       Bytes               `json:"bytes"`
	// Requests are the requests (messages) written on the connections, rated or not; nil only in
	// a summary written before requests were counted.
	Requests   *Requests                 `json:"requests,omitempty"`
	Latency    map[string]LatencySummary `json:"latency"`
	Stages     []Stage                   `json:"stages"`
	Ports      *ports.Report             `json:"ports"`
	Thresholds []ThresholdResult         `json:"thresholds"`
	Warnings   []string                  `json:"warnings,omitempty"`
	Target     *target.Stats             `json:"target,omitempty"`
	// Pacing is what this machine's arrival pacing can do, measured at the start of an
	// arrival-model run; it sets where the schedule_lag and slot_wait warnings begin.
	Pacing *Pacing `json:"pacing,omitempty"`
	// Calibration is this host's reference, measured before the run when the plan compares with a
	// baseline normalized by it (baseline.normalize: calibration) or run --calibrate asked.
	Calibration *Calibration `json:"calibration,omitempty"`
	// Memory is what the connections held at the plateau cost in memory, the kernel's (slab) next
	// to the generator's and the built-in target's processes' (RSS); only when at least
	// memory.MinConnections were held and /proc could be read (docs/results.md).
	Memory *memory.Report `json:"memory,omitempty"`
	// Baseline is the comparison with a previous result (plan baseline:), when the plan asked.
	Baseline *BaselineResult `json:"baseline,omitempty"`
	// Stopped says why the run ended early, when an abort_on_fail threshold stopped it.
	Stopped *Stopped `json:"stopped,omitempty"`
	// Unreachable says the run gave up on a target that never accepted a connection
	// (connection.on_connect_failure); the exit code is then 3.
	Unreachable *Unreachable `json:"unreachable,omitempty"`
	// OutputsIncomplete names the result files that could not be written (their error is on
	// stderr); the verdict is then "error".
	OutputsIncomplete []string `json:"outputs_incomplete,omitempty"`
	// Workers is how many worker processes ran the plan, when more than one did.
	Workers int `json:"workers,omitempty"`
	// WorkerFailures lists worker processes that ended without finishing their segment; the
	// result holds what every worker measured until then.
	WorkerFailures []WorkerFailure `json:"worker_failures,omitempty"`
	// TargetFailures lists built-in target processes that ended before the run asked them to (the
	// run was stopped then), or without their counters; target holds the others' counters.
	TargetFailures []TargetFailure `json:"target_failures,omitempty"`
	// Segment is "i/N" in the result of one distributed segment (portstorm run --segment).
	Segment string `json:"segment,omitempty"`
	// PlanHash identifies the whole run a segment or merged result belongs to (spec.Spec.Hash: the
	// SHA-256 of its compiled spec, the plan included, without the machine's facts).
	PlanHash string `json:"plan_hash,omitempty"`
	// Shards lists the distributed segments a merged result was made from (portstorm merge).
	Shards []ShardSummary `json:"shards,omitempty"`
	// PortsByHost keeps every segment's port report apart in a merged result, per host.
	PortsByHost []HostPorts `json:"ports_by_host,omitempty"`
	// Search is the answer of a capacity search (portstorm search); the rest of the summary is
	// its answer's probe (search.go).
	Search *Search `json:"search,omitempty"`
}

// Model is the load model of the run, as its recorded plan names it (load.model; concurrency when
// the summary holds no plan). The plan a summary holds is the run's record, summary.json's "plan"
// (a contract): a fresh summary and the same one read back from its file must decide alike (the
// headline latency, a stage's unit), so the report decides from the record, read once here with
// the model's own parser, rather than from a value the compiler hands the writer alone.
func (s *Summary) Model() schedule.Model {
	if s.Plan == nil {
		return schedule.Concurrency
	}
	m, _ := schedule.ParseModel(s.Plan.Load.Model) // a name it does not know: concurrency, as ever
	return m
}

// Unreachable is why a run gave up before its schedule ended: nothing was ever established, and
// connects kept failing at the target's side past connection.on_connect_failure's grace.
type Unreachable struct {
	// AtS is when the run gave up, FirstAtS when the first connect failed (from the run's start).
	AtS      float64 `json:"at_s"`
	FirstAtS float64 `json:"first_at_s"`
	// Failed is how many connects had failed at the target's side by then (in the process or
	// worker that gave up first).
	Failed int `json:"failed"`
	// Destination, Outcome and Error are the first failure's: where it went, its outcome
	// (ECONNREFUSED, ETIMEDOUT, other for unreachable networks) and its message.
	Destination string `json:"destination"`
	Outcome     string `json:"outcome"`
	Error       string `json:"error"`
}

// Message is the one line that explains the give-up: on stderr with exit code 3, in the text
// summary and in junit.xml.
func (u *Unreachable) Message() string {
	return fmt.Sprintf("target unreachable: nothing established %.2fs after the first failed connect (%d failed); first error: %s",
		u.AtS-u.FirstAtS, u.Failed, u.Error)
}

// Connections are the connection counters. attempted == established + failed + dropped.
type Connections struct {
	Attempted      uint64 `json:"attempted"`
	Established    uint64 `json:"established"`
	Failed         uint64 `json:"failed"`
	Dropped        uint64 `json:"dropped"`
	Closed         uint64 `json:"closed"`
	PeakConcurrent int64  `json:"peak_concurrent"`
	// PerSecond is established connections per second of run time.
	PerSecond float64 `json:"per_second"`
}

// First is when an outcome first occurred.
type First struct {
	AtS         float64 `json:"at_s"`
	Concurrency int64   `json:"concurrency"`
}

// ErrorRate counts connections that ended in anything but ok, and their share of those that ended.
type ErrorRate struct {
	Count uint64  `json:"count"`
	Rate  float64 `json:"rate"`
}

// Bytes moved by requests.
type Bytes struct {
	Out uint64 `json:"out"`
	In  uint64 `json:"in"`
}

// Requests are the requests (messages) written on the connections (docs/results.md): how many, how
// each ended, and how close the run came to the rate it offered. Per second figures count over the
// run's (or the stage's) time.
type Requests struct {
	// Written counts the requests written; Offered those the schedule meant to send: under a
	// request rate (connection.send.rate, total_rate, rate_stages) every request whose intended send
	// time came, sent or not; unrated, the requests written.
	Written uint64 `json:"written"`
	Offered uint64 `json:"offered"`
	// Outcomes counts the requests by how each ended: ok when its answer was the one expected (or,
	// with nothing to read, when it was written), else the outcome of what went wrong. Every outcome
	// name is present.
	Outcomes map[string]uint64 `json:"outcomes"`
	// Errors counts the requests that ended in anything but ok; ErrorRate is their share of Written.
	Errors    uint64  `json:"errors"`
	ErrorRate float64 `json:"error_rate"`
	// PerSecond is Written per second achieved; OfferedPerSecond is Offered per second.
	PerSecond        float64 `json:"per_second"`
	OfferedPerSecond float64 `json:"offered_per_second"`
	// Shortfall is 1 - written/offered (0 to 1): how far the run fell short of the rate it offered;
	// 0 unrated, and 0 when nothing was offered.
	Shortfall float64 `json:"shortfall"`
	// Rated says the requests were sent at a rate: request_intended holds values.
	Rated bool `json:"rated"`
}

// ShortfallWarn is the shortfall above which the summary warns that the run could not hold its
// request rate.
const ShortfallWarn = 0.01

func requests(s *metrics.Snapshot) *Requests {
	r := &Requests{Written: s.Requests, Offered: s.RequestsOffered, Errors: s.RequestErrors(),
		Outcomes: make(map[string]uint64, metrics.NumOutcomes)}
	for o, n := range s.RequestOutcomes {
		r.Outcomes[metrics.Outcome(o).String()] = n
	}
	if h := s.Hist[metrics.RequestIntended]; h != nil && h.TotalCount() > 0 {
		r.Rated = true
	}
	if r.Written > 0 {
		r.ErrorRate = float64(r.Errors) / float64(r.Written)
	}
	if d := s.EndUS - s.StartUS; d > 0 {
		r.PerSecond = float64(r.Written) / (float64(d) / 1e6)
		r.OfferedPerSecond = float64(r.Offered) / (float64(d) / 1e6)
	}
	if r.Offered > 0 && r.Written < r.Offered {
		r.Shortfall = 1 - float64(r.Written)/float64(r.Offered)
	}
	return r
}

// Headline names the latency that heads a result (docs/measurements.md), decided from what the
// result holds: request_intended when the requests were rated (it holds values), rtt when the run
// is about requests (more requests written than connections established: keep-alive), else
// connect_intended under the arrival model and connect under the concurrency model.
func Headline(s *Summary) string {
	if ls := s.Latency["request_intended"]; ls.Count > 0 {
		return "request_intended"
	}
	if r := s.Requests; r != nil && r.Written > s.Connections.Established && s.Latency["rtt"].Count > 0 {
		return "rtt"
	}
	if s.Model() == schedule.Arrival {
		return "connect_intended"
	}
	return "connect"
}

// LatencySummary is one histogram's figures in microseconds, plus the histogram itself (base64 of
// the compressed HdrHistogram V2 encoding) so that results merge exactly.
type LatencySummary struct {
	Count int64   `json:"count"`
	Min   int64   `json:"min"`
	Mean  float64 `json:"mean"`
	P50   int64   `json:"p50"`
	P90   int64   `json:"p90"`
	P99   int64   `json:"p99"`
	P999  int64   `json:"p999"`
	Max   int64   `json:"max"`
	HDR   string  `json:"hdr"`
}

// Stage is one plan stage's own figures (intervals are cut at stage boundaries).
type Stage struct {
	Index       int                       `json:"index"`
	StartS      float64                   `json:"start_s"`
	EndS        float64                   `json:"end_s"`
	Connections Connections               `json:"connections"`
	Outcomes    map[string]uint64         `json:"outcomes"`
	Latency     map[string]LatencySummary `json:"latency"`
	// Requests are the stage's own requests, as the run's.
	Requests *Requests `json:"requests,omitempty"`
}

// ThresholdResult is one threshold's verdict.
type ThresholdResult struct {
	Expr     string `json:"expr"`
	Observed string `json:"observed"`
	Pass     bool   `json:"pass"`
	// Metric is the metric's canonical name, Condition the operator and limit ("< 5ms").
	Metric    string `json:"metric,omitempty"`
	Condition string `json:"condition,omitempty"`
	// AbortOnFail is the plan's abort_on_fail; StoppedRun is true for the threshold that stopped it.
	AbortOnFail bool `json:"abort_on_fail,omitempty"`
	StoppedRun  bool `json:"stopped_run,omitempty"`
}

// Pacing is the calibration the lateness warnings are judged against.
type Pacing struct {
	// FloorP99US is the p99 lateness of arrivals paced with nothing else to do (about 25 ms of
	// them, at the start): the schedule_lag this machine shows at rest. In a merged result, the
	// largest of the segments'.
	FloorP99US int64 `json:"floor_p99_us"`
	// LagWarnUS is the p99 of schedule_lag or slot_wait above which the summary warns:
	// LagWarnFactor times the floor, and at least MinLagWarn.
	LagWarnUS int64 `json:"lag_warn_us"`
}

// The warning rule. A run's arrivals share the CPU with its connections, so a p99 of a few times
// the idle floor is the machine, not a generator that fell behind; on a quiet machine whose floor
// is a few microseconds, MinLagWarn keeps scheduling noise from reading as a bottleneck. Without a
// calibration (a result from before it, a summary built by hand) the threshold is DefaultLagWarn.
const (
	LagWarnFactor  = 4
	MinLagWarn     = 250 * time.Microsecond
	DefaultLagWarn = time.Millisecond
)

// NewPacing returns the calibration for a measured floor; nil when floor is 0 (not measured).
func NewPacing(floor time.Duration) *Pacing {
	if floor <= 0 {
		return nil
	}
	return &Pacing{FloorP99US: floor.Microseconds(), LagWarnUS: max(LagWarnFactor*floor, MinLagWarn).Microseconds()}
}

// WorkerFailure is a worker process (or a segment) that ended without finishing its part of the
// run: which, when, and its exit status.
type WorkerFailure struct {
	Worker  string  `json:"worker"`
	PID     int     `json:"pid"`
	AtS     float64 `json:"at_s"`
	Status  string  `json:"status"`
	Message string  `json:"message,omitempty"`
}

func (f WorkerFailure) String() string {
	s := fmt.Sprintf("%s (pid %d) ended at %.1fs: %s", f.Worker, f.PID, f.AtS, f.Status)
	if f.Message != "" {
		s += ": " + f.Message
	}
	return s
}

// TargetFailure is a built-in target process that ended before it was asked to, or without its
// counters: which, when, and its exit status.
type TargetFailure struct {
	Target  string  `json:"target"`
	PID     int     `json:"pid"`
	AtS     float64 `json:"at_s"`
	Status  string  `json:"status"`
	Message string  `json:"message,omitempty"`
}

// MarshalJSON writes the summary with the contract's collections always present: thresholds and
// stages as [] rather than null, and every outcome name in outcomes, so that CI scripts parsing
// summary.json need no null checks whoever built the Summary (Build, a merge, a file read back).
func (s Summary) MarshalJSON() ([]byte, error) {
	type plain Summary // without the method, so that Marshal does not recurse
	p := plain(s)
	if p.Thresholds == nil {
		p.Thresholds = []ThresholdResult{}
	}
	if p.Stages == nil {
		p.Stages = []Stage{}
	}
	if p.First == nil {
		p.First = map[string]First{}
	}
	if p.Latency == nil {
		p.Latency = map[string]LatencySummary{}
	}
	outs := make(map[string]uint64, metrics.NumOutcomes)
	for o := range metrics.NumOutcomes {
		outs[o.String()] = 0
	}
	for name, n := range p.Outcomes {
		outs[name] = n
	}
	p.Outcomes = outs
	if p.Requests != nil {
		r := *p.Requests
		r.Outcomes = allOutcomes(r.Outcomes)
		p.Requests = &r
	}
	return json.Marshal(p)
}

// allOutcomes returns m with every outcome name present (0 where m has none).
func allOutcomes(m map[string]uint64) map[string]uint64 {
	outs := make(map[string]uint64, metrics.NumOutcomes)
	for o := range metrics.NumOutcomes {
		outs[o.String()] = 0
	}
	for name, n := range m {
		outs[name] = n
	}
	return outs
}

// Latencies summarises every histogram of a snapshot. A nil histogram (the zero Snapshot's) is empty.
func Latencies(s *metrics.Snapshot) (map[string]LatencySummary, error) {
	out := make(map[string]LatencySummary, metrics.NumLatencies)
	for l, h := range s.Hist {
		if h == nil {
			h = metrics.NewHistogram()
		}
		enc, err := metrics.EncodeHistogram(h)
		if err != nil {
			return nil, err
		}
		ls := LatencySummary{Count: h.TotalCount(), HDR: enc}
		if ls.Count > 0 {
			ls.Min, ls.Mean, ls.Max = h.Min(), h.Mean(), h.Max()
			ls.P50, ls.P90 = h.ValueAtQuantile(50), h.ValueAtQuantile(90)
			ls.P99, ls.P999 = h.ValueAtQuantile(99), h.ValueAtQuantile(99.9)
		}
		out[metrics.Latency(l).String()] = ls
	}
	return out, nil
}

func outcomes(s *metrics.Snapshot) map[string]uint64 {
	m := make(map[string]uint64, metrics.NumOutcomes)
	for i, n := range s.Outcomes {
		m[metrics.Outcome(i).String()] = n
	}
	return m
}

func connections(s *metrics.Snapshot) Connections {
	c := Connections{
		Attempted: s.Attempted, Established: s.Established, Failed: s.Failed,
		Dropped: s.Dropped, Closed: s.Closed, PeakConcurrent: s.PeakActive,
	}
	if d := s.EndUS - s.StartUS; d > 0 {
		c.PerSecond = float64(s.Established) / (float64(d) / 1e6)
	}
	return c
}

// Input is everything a summary is built from.
type Input struct {
	Plan        *plan.Plan
	Host        preflight.Host
	Segments    int
	Start, End  time.Time
	Interrupted bool
	Aborted     bool
	Total       *metrics.Snapshot
	Stages      []*metrics.Snapshot // index = stage; nil where a stage never ran
	Target      *target.Stats
	// TargetIdle is the built-in target's idle timeout as compiled (0: the target's default), for
	// the warning when it closed connections for their silence.
	TargetIdle time.Duration
	Ports      *ports.Report // the port observatory's report; nil when ports were not observed
	// PacingFloor is engine.PacingFloor measured at the start of an arrival-model run; 0 when it
	// was not.
	PacingFloor time.Duration
	// Live builds the running figures judged after every interval (abort_on_fail): the histograms
	// are summarised but not encoded (hdr stays ""), which would cost milliseconds and megabytes
	// per interval.
	Live bool
}

// Build makes the summary. Its verdict is "no_thresholds" until the gate judges it.
func Build(in Input) (*Summary, error) {
	t := in.Total
	if t == nil {
		return nil, errors.New("building the summary: no total snapshot")
	}
	var name string
	if in.Plan != nil {
		name = in.Plan.Name
	}
	s := &Summary{
		Schema: Schema, Name: name, StartedAt: in.Start.UTC(), EndedAt: in.End.UTC(),
		DurationUS: in.End.Sub(in.Start).Microseconds(), Interrupted: in.Interrupted, Aborted: in.Aborted,
		Verdict: VerdictNone, Plan: in.Plan, Host: in.Host, Segments: max(in.Segments, 1),
		Connections: connections(t), Outcomes: outcomes(t), First: map[string]First{},
		Bytes: Bytes{Out: t.BytesOut, In: t.BytesIn}, Requests: requests(t), Thresholds: []ThresholdResult{}, Stages: []Stage{},
		Target: in.Target, Ports: in.Ports, Pacing: NewPacing(in.PacingFloor),
	}
	for i, f := range t.First {
		if f != nil {
			s.First[metrics.Outcome(i).String()] = First{AtS: float64(f.AtUS) / 1e6, Concurrency: f.Concurrency}
		}
		if len(t.Examples[i]) > 0 {
			if s.Examples == nil {
				s.Examples = map[string][]string{}
			}
			s.Examples[metrics.Outcome(i).String()] = t.Examples[i]
		}
	}
	s.Errors.Count = t.Errors()
	if ended := t.Failed + t.Closed; ended > 0 {
		s.Errors.Rate = float64(s.Errors.Count) / float64(ended)
	}
	var err error
	if s.Latency, err = latenciesFor(t, in.Live); err != nil {
		return nil, err
	}
	for i, st := range in.Stages {
		if st == nil {
			continue
		}
		lat, err := latenciesFor(st, in.Live)
		if err != nil {
			return nil, err
		}
		s.Stages = append(s.Stages, Stage{
			Index: i, StartS: float64(st.StartUS) / 1e6, EndS: float64(st.EndUS) / 1e6,
			Connections: connections(st), Outcomes: outcomes(st), Latency: lat, Requests: requests(st),
		})
	}
	s.Warnings = append(s.Warnings, lagWarnings(s)...)
	if w := shortfallWarning(s); w != "" {
		s.Warnings = append(s.Warnings, w)
	}
	if t.Clamped > 0 {
		s.Warnings = append(s.Warnings, fmt.Sprintf("%d latencies fell outside 1µs..1h and were clamped", t.Clamped))
	}
	if w := idleWarning(s, in.TargetIdle); w != "" {
		s.Warnings = append(s.Warnings, w)
	}
	return s, nil
}

// idleWarning says when the built-in target closed connections for their silence: from then on
// only the generator held them. A held connection reads nothing, so the generator counted them
// open to the end: configs/million.yaml once "held" a million while the target, at its default
// 60 s idle_timeout, had closed 856,671 of them and held 251,780 at most.
func idleWarning(s *Summary, idle time.Duration) string {
	if s.Target == nil || s.Target.IdleClosed == 0 {
		return ""
	}
	if idle <= 0 {
		idle = target.DefaultIdleTimeout
	}
	return fmt.Sprintf("the built-in target closed %d connection(s) silent for its idle_timeout (%s): from then on only the generator "+
		"held them, and a held connection reads nothing, so it counted them open; to hold connections longer than that at both "+
		"ends, set target.builtin.idle_timeout above connection.hold (target.peak: %d)", s.Target.IdleClosed, idle, s.Target.Peak)
}

// lagWarnings blames late arrivals on the side that made them late: slot_wait on the target (or
// the max_in_flight window), schedule_lag on the generator.
func lagWarnings(s *Summary) []string {
	warnAt, rule := DefaultLagWarn.Microseconds(), "the default threshold, no pacing calibration"
	if p := s.Pacing; p != nil {
		warnAt = p.LagWarnUS
		rule = fmt.Sprintf("%d× this machine's pacing floor of %s, at least %s", LagWarnFactor, fmtUS(p.FloorP99US), fmtUS(MinLagWarn.Microseconds()))
	}
	var out []string
	if w := s.Latency["slot_wait"]; w.Count > 0 && w.P99 > warnAt {
		window := "load.max_in_flight"
		if s.Plan != nil && s.Plan.Load.MaxInFlight > 0 {
			window = fmt.Sprintf("load.max_in_flight (%d)", s.Plan.Load.MaxInFlight)
		}
		out = append(out, fmt.Sprintf("slot_wait p99 is %s (over %s, %s): arrivals waited for a free slot of %s, so the target was slow to finish connections or the window is too small; connect_intended includes the wait",
			fmtUS(w.P99), fmtUS(warnAt), rule, window))
	}
	if lag := s.Latency["schedule_lag"]; lag.Count > 0 && lag.P99 > warnAt {
		backedOff := s.Plan != nil && !s.Plan.Connection.OnConnectFailure.Measure &&
			s.Outcomes["ECONNREFUSED"]+s.Outcomes["ETIMEDOUT"]+s.Outcomes["other"] > 0
		if backedOff {
			// The arrivals that waited out a failing destination's backoff are late on purpose.
			out = append(out, fmt.Sprintf("schedule_lag p99 is %s (over %s, %s): connects failed at the target's side, and connects to a failing destination wait out its backoff (connection.on_connect_failure); or the generator was the bottleneck",
				fmtUS(lag.P99), fmtUS(warnAt), rule))
		} else {
			out = append(out, fmt.Sprintf("schedule_lag p99 is %s (over %s, %s): the generator, not the target, fell behind its schedule for part of the run",
				fmtUS(lag.P99), fmtUS(warnAt), rule))
		}
	}
	return out
}

// shortfallWarning says, in words, that a rated run could not hold its request rate, by how much,
// and which side held the requests back: window_wait (the pipelining window was full: the target
// answered too slowly) or request_lag (the generator fell behind).
func shortfallWarning(s *Summary) string {
	r := s.Requests
	if r == nil || r.Shortfall <= ShortfallWarn {
		return ""
	}
	w := fmt.Sprintf("the run could not hold its request rate: %d of %d requests offered were written (%.1f%% short; %.0f/s achieved of %.0f/s offered)",
		r.Written, r.Offered, 100*r.Shortfall, r.PerSecond, r.OfferedPerSecond)
	wait, lag := s.Latency["window_wait"], s.Latency["request_lag"]
	switch {
	case wait.Count > 0 && wait.P99 > lag.P99:
		w += fmt.Sprintf("; window_wait p99 %s: requests waited for the pipelining window (connection.send.pipeline), so the target answered too slowly", fmtUS(wait.P99))
	case lag.Count > 0 && lag.P99 > 0:
		w += fmt.Sprintf("; request_lag p99 %s: the generator fell behind its schedule", fmtUS(lag.P99))
	}
	return w
}

// fmtUS formats microseconds for people. The unit changes where rounding to two decimals would
// reach the next one, so that 999999µs reads "1.00s", not "1000.00ms".
func fmtUS(us int64) string {
	switch {
	case us < 1000:
		return fmt.Sprintf("%dµs", us)
	case us < 999_995:
		return fmt.Sprintf("%.2fms", float64(us)/1e3)
	default:
		return fmt.Sprintf("%.2fs", float64(us)/1e6)
	}
}
