package report

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
)

// JUnitFile is the JUnit report's name in a results folder.
const JUnitFile = "junit.xml"

// The JUnit XML schema as CI systems read it (GitLab's junit artifacts, GitHub test-report
// actions, Jenkins): one suite per run, one test case per threshold and per baseline check, and one
// for the run itself.

// JUnitSuites is the document root.
type JUnitSuites struct {
	XMLName  xml.Name     `xml:"testsuites"`
	Name     string       `xml:"name,attr"`
	Tests    int          `xml:"tests,attr"`
	Failures int          `xml:"failures,attr"`
	Time     string       `xml:"time,attr"`
	Suites   []JUnitSuite `xml:"testsuite"`
}

// JUnitSuite is one run.
type JUnitSuite struct {
	Name       string          `xml:"name,attr"`
	Tests      int             `xml:"tests,attr"`
	Failures   int             `xml:"failures,attr"`
	Errors     int             `xml:"errors,attr"`
	Skipped    int             `xml:"skipped,attr"`
	Time       string          `xml:"time,attr"`
	Timestamp  string          `xml:"timestamp,attr"`
	Properties []JUnitProperty `xml:"properties>property"`
	Cases      []JUnitCase     `xml:"testcase"`
	SystemOut  string          `xml:"system-out,omitempty"`
}

// JUnitProperty is a name and value of the suite.
type JUnitProperty struct {
	Name  string `xml:"name,attr"`
	Value string `xml:"value,attr"`
}

// JUnitCase is one check.
type JUnitCase struct {
	ClassName string        `xml:"classname,attr"`
	Name      string        `xml:"name,attr"`
	Time      string        `xml:"time,attr"`
	Failure   *JUnitFailure `xml:"failure"`
	SystemOut string        `xml:"system-out,omitempty"`
}

// JUnitFailure carries the observed value.
type JUnitFailure struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr"`
	Text    string `xml:",chardata"`
}

// JUnit builds the JUnit document of a judged summary.
func JUnit(s *Summary) *JUnitSuites {
	secs := strconv.FormatFloat(float64(s.DurationUS)/1e6, 'f', 3, 64)
	suite := JUnitSuite{
		Name: "portstorm " + s.Name, Time: secs, Timestamp: s.StartedAt.UTC().Format("2006-01-02T15:04:05"),
		Properties: []JUnitProperty{
			{"verdict", s.Verdict}, {"interrupted", strconv.FormatBool(s.Interrupted)},
			{"attempted", strconv.FormatUint(s.Connections.Attempted, 10)},
			{"established", strconv.FormatUint(s.Connections.Established, 10)},
			{"peak_concurrent", strconv.FormatInt(s.Connections.PeakConcurrent, 10)},
		},
	}
	class := "portstorm." + s.Name
	suite.Cases = append(suite.Cases, runCase(s, class, secs))
	suite.Cases = append(suite.Cases, thresholdCases(s, class)...)
	suite.Cases = append(suite.Cases, baselineCases(s, class)...)
	suite.Tests = len(suite.Cases)
	for _, tc := range suite.Cases {
		if tc.Failure != nil {
			suite.Failures++
		}
	}
	var text bytes.Buffer
	WriteText(&text, s, "")
	suite.SystemOut = text.String()
	return &JUnitSuites{Name: "portstorm", Tests: suite.Tests, Failures: suite.Failures, Time: secs, Suites: []JUnitSuite{suite}}
}

// runCase is the run itself: it fails when the run was interrupted, stopped, gave up, left files
// unwritten, reached nothing or cannot be trusted.
func runCase(s *Summary, class, secs string) JUnitCase {
	run := JUnitCase{ClassName: class + ".run", Name: "run completed", Time: secs}
	c := s.Connections
	switch {
	case s.Interrupted:
		run.Failure = &JUnitFailure{Message: "the run was interrupted", Type: "interrupted",
			Text: "interrupted by a signal; the figures cover only part of the plan"}
	case s.Stopped != nil:
		run.Failure = &JUnitFailure{Type: "stopped",
			Message: fmt.Sprintf("stopped at %.2fs by abort_on_fail threshold %s (observed %s)", s.Stopped.AtS, s.Stopped.Threshold, s.Stopped.Observed),
			Text:    "an abort_on_fail threshold failed on the running totals and stopped the run"}
	case s.Unreachable != nil:
		run.Failure = &JUnitFailure{Type: "unreachable", Message: s.Unreachable.Message(),
			Text: "nothing was ever established, so the run stopped instead of storming a dead target (connection.on_connect_failure)"}
	case len(s.OutputsIncomplete) > 0:
		run.Failure = &JUnitFailure{Type: "incomplete",
			Message: "result file(s) not written: " + strings.Join(s.OutputsIncomplete, ", "),
			Text:    "the run's results are incomplete; its verdict is error"}
	case c.Attempted > 0 && c.Established == 0:
		run.Failure = &JUnitFailure{Type: "unreachable",
			Message: fmt.Sprintf("target unreachable: none of %d connection attempts succeeded", c.Attempted)}
	case s.Verdict == VerdictError:
		run.Failure = &JUnitFailure{Type: "error", Message: Untrusted(s),
			Text: "the run's result cannot be trusted; its verdict is error"}
	}
	run.SystemOut = fmt.Sprintf("attempted %d, established %d, failed %d, dropped %d, peak %d, errors %d (%s)",
		c.Attempted, c.Established, c.Failed, c.Dropped, c.PeakConcurrent, s.Errors.Count,
		strconv.FormatFloat(100*s.Errors.Rate, 'f', 3, 64)+"%")
	return run
}

// thresholdCases are one case per threshold.
func thresholdCases(s *Summary, class string) []JUnitCase {
	var out []JUnitCase
	for _, t := range s.Thresholds {
		tc := JUnitCase{ClassName: class + ".thresholds", Name: t.Expr, Time: "0"}
		if !t.Pass {
			tc.Failure = &JUnitFailure{Type: "threshold",
				Message: fmt.Sprintf("%s: observed %s", t.Expr, t.Observed),
				Text:    fmt.Sprintf("threshold %s failed: observed %s", t.Expr, t.Observed)}
		} else {
			tc.SystemOut = "observed " + t.Observed
		}
		out = append(out, tc)
	}
	return out
}

// baselineCases are one case per baseline check.
func baselineCases(s *Summary, class string) []JUnitCase {
	var out []JUnitCase
	if b := s.Baseline; b != nil {
		for _, ch := range b.Checks {
			name := fmt.Sprintf("%s vs baseline (%s)", ch.Metric, ch.Tolerance)
			tc := JUnitCase{ClassName: class + ".baseline", Name: name, Time: "0"}
			detail := fmt.Sprintf("%s: baseline %s, observed %s", ch.Metric, ch.Base, ch.New)
			if ch.Delta != "" {
				detail += " (" + ch.Delta + ")"
			}
			if !ch.Pass {
				tc.Failure = &JUnitFailure{Type: "regression", Message: detail,
					Text: fmt.Sprintf("%s regressed beyond %s against %s", ch.Metric, ch.Tolerance, b.File)}
			} else {
				tc.SystemOut = detail
			}
			out = append(out, tc)
		}
	}
	return out
}

// WriteJUnit writes junit.xml into dir.
func WriteJUnit(dir string, s *Summary) error {
	b, err := xml.MarshalIndent(JUnit(s), "", "  ")
	if err != nil {
		return err
	}
	return WriteFileAtomic(filepath.Join(dir, JUnitFile), append([]byte(xml.Header), append(b, '\n')...))
}
