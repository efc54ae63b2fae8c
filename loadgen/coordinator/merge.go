package coordinator

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/portstorm/portstorm/loadgen/report"
	"github.com/portstorm/portstorm/loadgen/shard"
	"github.com/portstorm/portstorm/loadgen/spec"
	"github.com/portstorm/portstorm/target"
)

// ErrShards wraps shard folders that do not make one run (mixed plans, overlapping or missing
// segments): nothing is merged (exit code 2).
var ErrShards = shard.ErrShards

func jsonIndent(v any) ([]byte, error) {
	b, err := json.MarshalIndent(v, "", "  ")
	return append(b, '\n'), err
}

// WaitForShards waits until every folder holds a shard.json (segments write it last), checking
// every poll, for at most timeout. It returns the folders still missing one when time is up, and
// ErrInterrupted at once when ctx is cancelled (a signal).
func WaitForShards(ctx context.Context, dirs []string, timeout, poll time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		var missing []string
		for _, d := range dirs {
			if _, err := os.Stat(filepath.Join(d, shard.InfoFile)); err != nil {
				missing = append(missing, d)
			}
		}
		if len(missing) == 0 {
			return nil
		}
		if !time.Now().Before(deadline) {
			return fmt.Errorf("%w: after %s, no %s yet in %v", ErrShards, timeout, shard.InfoFile, missing)
		}
		t := time.NewTimer(min(poll, time.Until(deadline)) + time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return ErrInterrupted
		case <-t.C:
		}
	}
}

// Merge makes one result from the shard result folders of a distributed run (docs/architecture.md):
// the segments' interval snapshots merge exactly, through the merger local worker processes use,
// into the timeline, latency log, stages and totals; the run's thresholds and baseline (from the
// spec in the first folder, shard.SpecFile) are judged on the merged result only; every result
// file of a normal run is written to outDir. Port reports stay per host (ports_by_host); ports itself is
// null, as in a worker-process run.
func Merge(dirs []string, outDir string) (*Outcome, error) {
	var rs []*shard.Result
	for _, d := range dirs {
		r, err := shard.ReadResult(d)
		if err != nil {
			return nil, err
		}
		rs = append(rs, r)
	}
	if err := shard.CheckSet(rs); err != nil {
		return nil, err
	}
	slices.SortFunc(rs, func(a, b *shard.Result) int { return a.Info.Index - b.Info.Index })
	s, err := spec.ReadFile(filepath.Join(rs[0].Dir, shard.SpecFile))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrShards, err)
	}
	if hash, err := s.Hash(); err != nil || hash != rs[0].Info.PlanHash {
		return nil, fmt.Errorf("%w: %s does not match the plan hash in %s", ErrShards, shard.SpecFile, rs[0].Dir)
	}
	// The segments' own summaries carry what snapshots do not: the host and the port reports.
	m := &mergeRun{rs: rs, sums: make([]*report.Summary, len(rs))}
	for i, r := range rs {
		if s, err := report.ReadSummary(filepath.Join(r.Dir, "summary.json")); err == nil {
			m.sums[i] = s
		}
	}
	start := rs[0].Info.Start
	for _, r := range rs {
		if r.Info.Start.Before(start) {
			start = r.Info.Start
		}
	}
	pr := &portRun{s: s}
	if m.sums[0] != nil {
		pr.host = m.sums[0].Host
	}
	// Nothing runs here: the segments did (no target, no destinations, no set-up).
	r := &runner{s: s, o: Options{OutDir: outDir}, pr: pr, start: start, judge: true,
		exec: m.exec, finish: m.finish}
	return r.do(context.Background())
}

// mergeRun is what Merge adds to the skeleton: the shard folders and their summaries.
type mergeRun struct {
	rs   []*shard.Result
	sums []*report.Summary
}

// exec merges the segments' snapshots, and gathers from their summaries what snapshots do not
// carry: failures, port reports, the target's counters, a give-up.
func (m *mergeRun) exec(_ context.Context, r *runner) (*ended, error) {
	mr, err := shard.MergeResults(m.rs, r.col.take)
	if err == nil {
		err = r.col.err
	}
	if err != nil {
		return nil, fmt.Errorf("%w: merging: %w", ErrShards, err)
	}
	res := &ended{Ending: mr.Ending, Total: mr.Total, Segments: len(m.rs)}
	for i, sr := range m.rs {
		in := sr.Info
		if in.Error != "" || sr.Done == nil {
			msg := in.Error
			if msg == "" {
				msg = "no end of segment in " + shard.SnapshotsFile
			}
			res.Failures = append(res.Failures, report.WorkerFailure{
				Worker: "segment " + in.Segment + " on " + in.Host, AtS: in.End.Sub(mr.Start).Seconds(),
				Status: "failed", Message: msg})
		}
		s := m.sums[i]
		if s == nil {
			res.Warnings = append(res.Warnings, fmt.Sprintf("%s: no readable summary.json; its port report is missing", sr.Dir))
			continue
		}
		// The merged lateness is judged against the coarsest of the segments' machines.
		if s.Pacing != nil {
			res.PacingFloor = max(res.PacingFloor, time.Duration(s.Pacing.FloorP99US)*time.Microsecond)
		}
		if s.Ports != nil {
			res.PortsByHost = append(res.PortsByHost, report.HostPorts{Host: in.Host, Segment: in.Segment, Ports: s.Ports})
		}
		// A segment's own failed processes fail the merged run too (exit 3), named by segment, at
		// the merged run's time.
		shift := in.Start.Sub(mr.Start).Seconds()
		for _, f := range s.WorkerFailures {
			f.Worker = "segment " + in.Segment + " on " + in.Host + ": " + f.Worker
			f.AtS += shift
			res.Failures = append(res.Failures, f)
		}
		for _, f := range s.TargetFailures {
			f.Target = "segment " + in.Segment + " on " + in.Host + ": " + f.Target
			f.AtS += shift
			res.TargetFailures = append(res.TargetFailures, f)
		}
		// A segment that gave up on an unreachable target: the merged run gave up at the first.
		if u := giveUp(s.Unreachable, in.Start); u != nil && (res.Unreachable == nil || u.At.Before(res.Unreachable.At)) {
			res.Unreachable = u
		}
		if t := s.Target; t != nil {
			if res.Target == nil {
				res.Target = &target.Stats{}
			}
			res.Target.Add(*t)
		}
	}
	res.Warnings = append(res.Warnings, fmt.Sprintf("merged %d segment(s); port statistics stay per host in ports_by_host (ports is null)", len(m.rs)))
	return res, nil
}

// finish lists the shards the result is made of.
func (m *mergeRun) finish(_ *runner, _ *ended, sum *report.Summary) {
	sum.PlanHash = m.rs[0].Info.PlanHash
	for _, r := range m.rs {
		in := r.Info
		sum.Shards = append(sum.Shards, report.ShardSummary{Segment: in.Segment, Host: in.Host, Dir: r.Dir,
			StartedAt: in.Start.UTC(), EndedAt: in.End.UTC(), Interrupted: in.Interrupted, Aborted: in.Aborted, Error: in.Error})
	}
}

// giveUp is a segment's give-up as its summary.json says it (its times from start, the segment's
// start) back at its instants.
func giveUp(u *report.Unreachable, start time.Time) *shard.Unreachable {
	if u == nil {
		return nil
	}
	at := func(s float64) time.Time { return start.Add(time.Duration(math.Round(s * float64(time.Second)))) }
	return &shard.Unreachable{First: at(u.FirstAtS), At: at(u.AtS), Failed: u.Failed, Destination: u.Destination,
		Outcome: u.Outcome, Error: u.Error}
}
