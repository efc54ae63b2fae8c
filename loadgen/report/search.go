package report

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Search is summary.json's "search" (docs/results.md): the answer of a capacity search
// (portstorm search), how it was found, and every probe. The rest of the summary is the answer's
// probe: the confirming probe of the level that held, or the highest level that held, or, when
// none did, the first that failed.
type Search struct {
	// Dimension is what was searched (arrival_rate, concurrency); Unit what its levels count.
	Dimension string  `json:"dimension"`
	Unit      string  `json:"unit"`
	Min       float64 `json:"min"`
	Max       float64 `json:"max"`
	Growth    float64 `json:"growth"`
	Tolerance float64 `json:"tolerance"`
	// Require is the level the answer had to reach (null: none).
	Require *float64 `json:"require"`
	// Status is how the search ended: converged, max_held, min_failed, max_probes, max_time,
	// interrupted or error.
	Status string `json:"status"`
	// Held is the highest level that held (null: none did), Confirmed whether it also held the
	// longer confirming probe; Failed is the lowest level that failed above it (null: none did).
	Held      *float64 `json:"held"`
	Confirmed bool     `json:"confirmed"`
	Failed    *float64 `json:"failed"`
	// Within is (failed - held) / held: how closely the capacity is known (null without both).
	Within *float64 `json:"within"`
	// Pass is true when a level held, at least require when one is set (exit 0).
	Pass bool `json:"pass"`
	// Failure is what failed at Failed, the first failing level.
	Failure *SearchFailure `json:"failure"`
	// AnswerProbe is the index of the probe the rest of the summary is (0: none).
	AnswerProbe int       `json:"answer_probe"`
	StartedAt   time.Time `json:"started_at"`
	DurationS   float64   `json:"duration_s"`
	// Thresholds are the plan's thresholds that judged every probe, with their limits in
	// summary.json's units (the chart's lines).
	Thresholds []SearchThreshold `json:"thresholds"`
	Probes     []SearchProbe     `json:"probes"`
	// Error is why the search could not be carried out (status error).
	Error string `json:"error,omitempty"`
}

// SearchThreshold is one threshold of a search plan.
type SearchThreshold struct {
	Expr   string  `json:"expr"`
	Metric string  `json:"metric"`
	Kind   string  `json:"kind"` // count, time, ratio, per-second rate, size
	Limit  float64 `json:"limit"`
}

// SearchProbe is one probe: a run at one level, whose full results are in Dir.
type SearchProbe struct {
	Index int     `json:"index"`
	Level float64 `json:"level"`
	// Confirm marks the longer probe that confirms an answer.
	Confirm   bool      `json:"confirm"`
	DurationS float64   `json:"duration_s"`
	StartedAt time.Time `json:"started_at"`
	// Outcome is held, failed, interrupted or error.
	Outcome string `json:"outcome"`
	// Dir is the probe's results folder, relative to the search's ("" when none was written:
	// the preflight refused the level).
	Dir     string `json:"dir"`
	Verdict string `json:"verdict"`
	// Stopped is the abort_on_fail stop that ended a failing probe early.
	Stopped *Stopped `json:"stopped,omitempty"`
	// Values are the thresholds' figures, in Thresholds' order (null: the probe has none).
	Values []*float64 `json:"values"`
	// Failure is what failed, for a probe that failed.
	Failure *SearchFailure `json:"failure,omitempty"`
	// Stage is the probe's one stage, compact: its latency statistics without the histograms
	// (those are in the probe's own summary.json).
	Stage *Stage `json:"stage"`
	// TimeWait is the TIME_WAIT sockets of the run's port range when the probe ended (-1: not
	// observed); the next probe starts with those that have not expired.
	TimeWait int64 `json:"time_wait"`
	// Error is why the probe could not be carried out (outcome error).
	Error string `json:"error,omitempty"`
}

// The kinds of SearchFailure: what ran out at a level.
const (
	// FailThreshold: a threshold failed (the target's latency or errors); Metric says which.
	FailThreshold = "threshold"
	// FailPorts: the client's local ports ran out (EADDRNOTAVAIL, or the preflight's forecast).
	FailPorts = "ports"
	// FailFDs: the client's open-files limit (EMFILE, or the preflight's forecast).
	FailFDs = "fds"
	// FailHostLimit: another limit of this host, as the preflight forecast it (conntrack).
	FailHostLimit = "host_limit"
	// FailUnreachable: the target accepted nothing at the level.
	FailUnreachable = "unreachable"
)

// SearchFailure says what failed at a level.
type SearchFailure struct {
	Kind    string `json:"kind"`
	Message string `json:"message"`
	// Threshold, Metric and Observed name the threshold that failed (kind threshold; the one
	// that stopped the probe when one did).
	Threshold string `json:"threshold,omitempty"`
	Metric    string `json:"metric,omitempty"`
	Observed  string `json:"observed,omitempty"`
	// Outcomes counts the probe's failed connections by outcome (ECONNREFUSED, ETIMEDOUT...).
	Outcomes map[string]uint64 `json:"outcomes,omitempty"`
	// Limit is the preflight's limit that refused the level, when it did.
	Limit string `json:"limit,omitempty"`
}

// CompactStage is st without its histograms and without outcomes that never happened.
func CompactStage(st Stage) *Stage {
	out := st
	out.Outcomes = map[string]uint64{}
	for k, n := range st.Outcomes {
		if n > 0 {
			out.Outcomes[k] = n
		}
	}
	out.Latency = make(map[string]LatencySummary, len(st.Latency))
	for k, l := range st.Latency {
		if l.Count > 0 {
			l.HDR = ""
			out.Latency[k] = l
		}
	}
	return &out
}

// Level shows a level with the search's unit: "4,250 connections/s".
func (s *Search) Level(v float64) string {
	n := strconv.FormatFloat(v, 'f', -1, 64)
	if v == float64(int64(v)) {
		n = groupDigits(uint64(v))
	}
	return n + " " + s.Unit
}

// Answer is the search's one-line answer, for people.
func (s *Search) Answer() string {
	var b strings.Builder
	switch {
	case s.Held == nil:
		b.WriteString("no level held")
	default:
		fmt.Fprintf(&b, "%s holds", s.Level(*s.Held))
		if !s.Confirmed {
			b.WriteString(" (not confirmed)")
		}
	}
	if s.Failed != nil {
		fmt.Fprintf(&b, "; %s fails", s.Level(*s.Failed))
		if s.Failure != nil {
			fmt.Fprintf(&b, ": %s", s.Failure.Message)
		}
	}
	if s.Within != nil {
		fmt.Fprintf(&b, " (known within %.1f%%, tolerance %.1f%%)", 100**s.Within, 100*s.Tolerance)
	}
	return b.String()
}

// WriteSearchText prints the search's probes and its answer.
func WriteSearchText(w io.Writer, s *Search) {
	if s == nil {
		return
	}
	fmt.Fprintf(w, "\nsearch %s: %s after %d probe(s), %.1fs\n", s.Dimension, s.Status, len(s.Probes), s.DurationS)
	fmt.Fprintf(w, "  %5s  %-24s %8s  %-17s  %s\n", "probe", "level", "length", "outcome", "what")
	for _, p := range s.Probes {
		kind := ""
		if p.Confirm {
			kind = " (confirm)"
		}
		what := ""
		switch {
		case p.Failure != nil:
			what = p.Failure.Message
		case p.Error != "":
			what = p.Error
		}
		line := fmt.Sprintf("  %5d  %-24s %8s  %-17s  %s", p.Index, s.Level(p.Level), fmtSeconds(p.DurationS), p.Outcome+kind, what)
		fmt.Fprintln(w, strings.TrimRight(line, " "))
	}
	fmt.Fprintf(w, "  answer       %s\n", s.Answer())
	if s.Require != nil {
		res := "pass"
		if !s.Pass {
			res = "FAIL"
		}
		fmt.Fprintf(w, "  require      %s: %s\n", s.Level(*s.Require), res)
	}
	if s.Error != "" {
		fmt.Fprintf(w, "  error        %s\n", s.Error)
	}
}

// WriteSearchResults writes the result files of a search into dir, the verdict last: report.html,
// junit.xml, then summary.json. timeline.csv and latency.hlog, when the answer's probe wrote them,
// are copied from its folder first, so that report.html draws its charts (and portstorm report
// renders the folder again). A file that cannot be written is named in outputs_incomplete and
// makes the verdict error, as for a run.
func WriteSearchResults(dir string, s *Summary, answerDir string) error {
	var errs []error
	fail := func(name string, err error) {
		errs = append(errs, err)
		s.OutputsIncomplete = append(s.OutputsIncomplete, name)
		s.Verdict = VerdictError
	}
	if answerDir != "" {
		for _, name := range []string{TimelineFile, HLogFile} {
			b, err := os.ReadFile(filepath.Join(answerDir, name))
			if errors.Is(err, os.ErrNotExist) {
				continue
			}
			if err == nil {
				err = WriteFileAtomic(filepath.Join(dir, name), b)
			}
			if err != nil {
				fail(name, err)
			}
		}
	}
	html := WriteHTML(dir, s)
	if html != nil {
		fail(HTMLFile, html)
	}
	if err := WriteJUnit(dir, s); err != nil {
		fail(JUnitFile, err)
	}
	if err := WriteSummary(dir, s); err != nil {
		fail(SummaryFile, err)
	}
	if len(errs) > 0 && html == nil && s.Verdict == VerdictError {
		if err := WriteHTML(dir, s); err != nil {
			os.Remove(filepath.Join(dir, HTMLFile))
		}
	}
	return errors.Join(errs...)
}
