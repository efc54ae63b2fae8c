// Package report turns measurements into result files: summary.json (the contract users' CI scripts
// parse), timeline.csv and the text summary, all written atomically.
package report

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/portstorm/portstorm/loadgen/metrics"
	"github.com/portstorm/portstorm/loadgen/plan"
	"github.com/portstorm/portstorm/loadgen/ports"
	"github.com/portstorm/portstorm/loadgen/preflight"
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

// Summary is summary.json (design §7). Times are microseconds, counts integers.
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

	Connections Connections               `json:"connections"`
	Outcomes    map[string]uint64         `json:"outcomes"`
	First       map[string]First          `json:"first"`
	Examples    map[string][]string       `json:"examples,omitempty"`
	Errors      ErrorRate                 `json:"errors"`
	Bytes       Bytes                     `json:"bytes"`
	Latency     map[string]LatencySummary `json:"latency"`
	Stages      []Stage                   `json:"stages"`
	Ports       *ports.Report             `json:"ports"`
	Thresholds  []ThresholdResult         `json:"thresholds"`
	Warnings    []string                  `json:"warnings,omitempty"`
	Target      *TargetStats              `json:"target,omitempty"`
	// Baseline is the comparison with a previous result (plan baseline:), when the plan asked.
	Baseline *BaselineResult `json:"baseline,omitempty"`
	// Stopped says why the run ended early, when an abort_on_fail threshold stopped it.
	Stopped *Stopped `json:"stopped,omitempty"`
	// OutputsIncomplete names the result files that could not be written (their error is on
	// stderr); the verdict is then "error".
	OutputsIncomplete []string `json:"outputs_incomplete,omitempty"`
	// Workers is how many worker processes ran the plan, when more than one did.
	Workers int `json:"workers,omitempty"`
	// WorkerFailures lists worker processes that ended without finishing their segment; the
	// result holds what every worker measured until then.
	WorkerFailures []WorkerFailure `json:"worker_failures,omitempty"`
	// Segment is "i/N" in the result of one distributed segment (portstorm run --segment).
	Segment string `json:"segment,omitempty"`
	// PlanHash identifies the whole plan a segment or merged result ran (SHA-256 of its YAML).
	PlanHash string `json:"plan_hash,omitempty"`
	// Shards lists the distributed segments a merged result was made from (portstorm merge).
	Shards []ShardSummary `json:"shards,omitempty"`
	// PortsByHost keeps every segment's port report apart in a merged result, per host.
	PortsByHost []HostPorts `json:"ports_by_host,omitempty"`
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

// TargetStats are the built-in target's counters, when the run started one.
// Add adds another segment's target counters; Peak becomes the sum of the peaks (an upper bound).
func (t *TargetStats) Add(o *TargetStats) {
	t.Accepted += o.Accepted
	t.Peak += o.Peak
	t.Closed += o.Closed
	t.BytesIn += o.BytesIn
	t.BytesOut += o.BytesOut
	t.IdleClosed += o.IdleClosed
	t.Rejected += o.Rejected
	t.Requests += o.Requests
	t.TLSHandshakes += o.TLSHandshakes
	t.TLSFailed += o.TLSFailed
	t.Processes += max(o.Processes, 1)
}

// WorkerFailure is a worker process that ended early: which, when, and its exit status.
type WorkerFailure struct {
	Worker  string  `json:"worker"`
	PID     int     `json:"pid"`
	AtS     float64 `json:"at_s"`
	Status  string  `json:"status"`
	Message string  `json:"message,omitempty"`
}

type TargetStats struct {
	Accepted   uint64 `json:"accepted"`
	Peak       int64  `json:"peak"`
	Closed     uint64 `json:"closed"`
	BytesIn    uint64 `json:"bytes_in"`
	BytesOut   uint64 `json:"bytes_out"`
	IdleClosed uint64 `json:"idle_closed"`
	// Rejected counts connections reset at once for being over target.builtin.max_conns.
	Rejected uint64 `json:"rejected,omitempty"`
	// Requests counts the HTTP requests the http mode answered; TLSHandshakes and TLSFailed the
	// handshakes it completed and those that failed.
	Requests      uint64 `json:"requests,omitempty"`
	TLSHandshakes uint64 `json:"tls_handshakes,omitempty"`
	TLSFailed     uint64 `json:"tls_failed,omitempty"`
	// Processes is how many target processes shared the listeners; Peak is then the sum of their
	// peaks, an upper bound of the true combined peak.
	Processes int `json:"processes,omitempty"`
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
	return json.Marshal(p)
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
	Target      *TargetStats
	Ports       *ports.Report // the port observatory's report; nil when ports were not observed
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
		Bytes: Bytes{Out: t.BytesOut, In: t.BytesIn}, Thresholds: []ThresholdResult{}, Stages: []Stage{},
		Target: in.Target, Ports: in.Ports,
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
			Connections: connections(st), Outcomes: outcomes(st), Latency: lat,
		})
	}
	if lag := s.Latency["schedule_lag"]; lag.Count > 0 && lag.P99 > 1000 {
		s.Warnings = append(s.Warnings, fmt.Sprintf(
			"schedule_lag p99 is %s: the generator, not the target, was the bottleneck for part of the run", fmtUS(lag.P99)))
	}
	if t.Clamped > 0 {
		s.Warnings = append(s.Warnings, fmt.Sprintf("%d latencies fell outside 1µs..1h and were clamped", t.Clamped))
	}
	return s, nil
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
