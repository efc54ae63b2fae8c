package coordinator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/portstorm/portstorm/loadgen/plan"
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

// Merge makes one result from the shard result folders of a distributed run (docs/architecture.md): the
// segments' interval snapshots merge exactly, through the merger local worker processes use, into
// the timeline, latency log, stages and totals; the plan's thresholds and baseline are judged on
// the merged result only; every result file of a normal run is written to outDir. Port reports stay
// per host (ports_by_host); ports itself is null, as in a worker-process run.
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
	p, err := plan.LoadFile(filepath.Join(rs[0].Dir, shard.PlanFile), plan.Overrides{})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrShards, err)
	}
	p.Defaults()
	if hash, _, err := PlanHash(p); err != nil || hash != rs[0].Info.PlanHash {
		return nil, fmt.Errorf("%w: %s does not match the plan hash in %s", ErrShards, shard.PlanFile, rs[0].Dir)
	}
	verdict, err := spec.Gate(p)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	// The segments' own summaries carry what snapshots do not: the host and the port reports.
	sums := make([]*report.Summary, len(rs))
	for i, r := range rs {
		if s, err := report.ReadSummary(filepath.Join(r.Dir, "summary.json")); err == nil {
			sums[i] = s
		}
	}
	pr := &portRun{}
	if sums[0] != nil {
		pr.host = sums[0].Host
	}
	// The merged lateness is judged against the coarsest of the segments' machines.
	var floor time.Duration
	for _, s := range sums {
		if s != nil && s.Pacing != nil {
			floor = max(floor, time.Duration(s.Pacing.FloorP99US)*time.Microsecond)
		}
	}
	start := rs[0].Info.Start
	for _, r := range rs {
		if r.Info.Start.Before(start) {
			start = r.Info.Start
		}
	}
	out, err := openOutputs(outDir, start, nil)
	if err != nil {
		return nil, err
	}
	defer out.close()
	hlog := out.hlog
	ramp := spec.Ramp(p)
	col := newCollector(p, ramp, pr, verdict, hlog, Options{}, func() {})
	// abort_on_fail cannot stop a run after the fact: the merged result is judged once, at the end.
	col.running = nil
	m, err := shard.MergeResults(rs, col.take)
	if err == nil {
		err = col.err
	}
	if err != nil {
		return nil, fmt.Errorf("%w: merging: %w", ErrShards, err)
	}
	sum, err := report.Build(report.Input{
		Plan: p, Host: pr.host, Segments: len(rs), Start: m.Start, End: m.End,
		Interrupted: m.Interrupted, Aborted: m.Aborted, Total: m.Total, Stages: col.stages[:len(ramp.Stages)],
		PacingFloor: floor,
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCannotRun, err)
	}
	sum.PlanHash = rs[0].Info.PlanHash
	var ts *target.Stats
	for i, r := range rs {
		in := r.Info
		sum.Shards = append(sum.Shards, report.ShardSummary{Segment: in.Segment, Host: in.Host, Dir: r.Dir,
			StartedAt: in.Start.UTC(), EndedAt: in.End.UTC(), Interrupted: in.Interrupted, Aborted: in.Aborted, Error: in.Error})
		if in.Error != "" || r.Done == nil {
			msg := in.Error
			if msg == "" {
				msg = "no end of segment in " + shard.SnapshotsFile
			}
			sum.WorkerFailures = append(sum.WorkerFailures, report.WorkerFailure{
				Worker: "segment " + in.Segment + " on " + in.Host, AtS: in.End.Sub(m.Start).Seconds(),
				Status: "failed", Message: msg})
		}
		s := sums[i]
		if s == nil {
			sum.Warnings = append(sum.Warnings, fmt.Sprintf("%s: no readable summary.json; its port report is missing", r.Dir))
			continue
		}
		if s.Ports != nil {
			sum.PortsByHost = append(sum.PortsByHost, report.HostPorts{Host: in.Host, Segment: in.Segment, Ports: s.Ports})
		}
		// A segment's own failed processes fail the merged run too (exit 3), named by segment, at
		// the merged run's time.
		shift := in.Start.Sub(m.Start).Seconds()
		for _, f := range s.WorkerFailures {
			f.Worker = "segment " + in.Segment + " on " + in.Host + ": " + f.Worker
			f.AtS += shift
			sum.WorkerFailures = append(sum.WorkerFailures, f)
		}
		for _, f := range s.TargetFailures {
			f.Target = "segment " + in.Segment + " on " + in.Host + ": " + f.Target
			f.AtS += shift
			sum.TargetFailures = append(sum.TargetFailures, f)
		}
		// A segment that gave up on an unreachable target: the merged run gave up at the first.
		if u := s.Unreachable; u != nil && (sum.Unreachable == nil || u.AtS+shift < sum.Unreachable.AtS) {
			c := *u
			c.AtS += shift
			c.FirstAtS += shift
			sum.Unreachable = &c
		}
		if t := s.Target; t != nil {
			if ts == nil {
				ts = &target.Stats{}
			}
			ts.Add(*t)
		}
	}
	sum.Target = ts
	sum.Warnings = append(sum.Warnings, fmt.Sprintf("merged %d segment(s); port statistics stay per host in ports_by_host (ports is null)", len(rs)))
	verdict.Judge(sum)
	return out.write(sum, col.rows)
}

// IsShardsError reports whether err refuses the shard folders themselves.
func IsShardsError(err error) bool { return errors.Is(err, shard.ErrShards) }
