package main

import (
	"fmt"
	"io"
	"time"

	"github.com/portstorm/portstorm/loadgen/coordinator"
)

// progress shows one updating line on a terminal, and a plain line every 5 s otherwise (CI logs).
type progress struct {
	w        io.Writer
	terminal bool
	quiet    bool
	last     time.Duration
	drawn    bool
}

func newProgress(w io.Writer, terminal, quiet bool) *progress {
	return &progress{w: w, terminal: terminal, quiet: quiet, last: -1}
}

func (p *progress) update(pr coordinator.Progress) {
	if p.quiet {
		return
	}
	line := progressLine(pr)
	if p.terminal {
		fmt.Fprintf(p.w, "\r\033[K%s", line)
		p.drawn = true
		return
	}
	if p.last < 0 || pr.Elapsed-p.last >= 5*time.Second {
		fmt.Fprintln(p.w, line)
		p.last = pr.Elapsed
	}
}

// progressLine is the line's text. A run about requests (keep-alive, or rated) shows requests per
// second and the request latency's p99 (request_intended when rated, else rtt) in place of the
// connection figures, which stay at zero once its connections are open.
func progressLine(pr coordinator.Progress) string {
	head := fmt.Sprintf("%s  %s/%s  active %d", stageLabel(pr), pr.Elapsed.Truncate(time.Second), pr.Total, pr.Active)
	if pr.Requests {
		lat := "rtt"
		if pr.Rated {
			lat = "request_intended"
		}
		return fmt.Sprintf("%s  requests %.0f/s  errors %d  %s p99 %s  opened %.0f/s", head, pr.RequestsPerSecond,
			pr.Errors, lat, pr.RequestP99, pr.OpenedPerSecond)
	}
	return fmt.Sprintf("%s  opened %.0f/s  errors %d  connect p99 %s", head, pr.OpenedPerSecond, pr.Errors, pr.ConnectP99)
}

// stageLabel names the running stage as thresholds and the results do, counted from 0:
// "stage[1] of 3" is load.stages[1], the second of three; "stopping" is the graceful stop after
// the last (docs/results.md "Stage numbering").
func stageLabel(pr coordinator.Progress) string {
	if pr.Stage >= pr.Stages {
		return "stopping"
	}
	return fmt.Sprintf("stage[%d] of %d", pr.Stage, pr.Stages)
}

func (p *progress) finish() {
	if p.drawn {
		fmt.Fprintln(p.w)
	}
}
