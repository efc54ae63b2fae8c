package coordinator

import (
	"time"

	"github.com/portstorm/portstorm/loadgen/report"
)

// outputs is the results folder of one run (Run, RunSegment or Merge: each opens and writes its
// results through these steps, so that a step added here is in all three): the folder claimed,
// one run per folder, and the files written while the run goes on.
type outputs struct {
	dir     string
	release func()
	// hlog is latency.hlog, written as intervals are cut, so that a killed run keeps them.
	hlog *report.HLog
}

// openOutputs claims dir and opens what is written during the run, its time zero start. first,
// when set, writes what must be in the folder before anything is measured (a segment's plan and
// snapshots file).
func openOutputs(dir string, start time.Time, first func() error) (*outputs, error) {
	release, err := report.ClaimDir(dir)
	if err != nil {
		return nil, err
	}
	if first != nil {
		if err := first(); err != nil {
			release()
			return nil, err
		}
	}
	hlog, err := report.CreateHLog(dir, start)
	if err != nil {
		release()
		return nil, err
	}
	return &outputs{dir: dir, release: release, hlog: hlog}, nil
}

// close closes the files and gives the folder up.
func (o *outputs) close() {
	o.hlog.Close()
	o.release()
}

// write writes the result files of sum and its timeline: the run's outcome, which is returned
// with the error when a file could not be written (the summary says which in outputs_incomplete).
func (o *outputs) write(sum *report.Summary, rows []report.TimelineRow) (*Outcome, error) {
	out := &Outcome{Summary: sum, Dir: o.dir}
	if err := report.WriteResults(o.dir, sum, rows, o.hlog); err != nil {
		return out, err
	}
	return out, nil
}
