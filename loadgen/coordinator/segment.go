package coordinator

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/portstorm/portstorm/loadgen/dial"
	"github.com/portstorm/portstorm/loadgen/engine"
	"github.com/portstorm/portstorm/loadgen/metrics"
	"github.com/portstorm/portstorm/loadgen/ports"
	"github.com/portstorm/portstorm/loadgen/report"
	"github.com/portstorm/portstorm/loadgen/schedule"
	"github.com/portstorm/portstorm/loadgen/shard"
	"github.com/portstorm/portstorm/loadgen/spec"
	"go.yaml.in/yaml/v3"
)

// SegmentOptions are a distributed segment's settings that do not come from the plan.
type SegmentOptions struct {
	// OutDir is the shard result folder; "" means <plan output.dir>/<name>-segment-<i>-of-<N>.
	OutDir string
	// StartAt is the instant every segment of the run starts its schedule; zero means now.
	StartAt time.Time
	// Host names this generator in the merged result (default: the host name).
	Host string
	// AllowRemote is the --allow-remote flag.
	AllowRemote bool
	// Abort, when closed, cuts in-flight connections at once.
	Abort <-chan struct{}
	// Progress receives the segment's own progress after every interval.
	Progress func(Progress)
	// OnSnapshot and OnPorts receive the segment's interval snapshots and port samples, as
	// Options' do (live metrics exporters).
	OnSnapshot func(*metrics.Snapshot)
	OnPorts    func(*ports.Sample)
	// Dialer replaces the kernel dialer (tests).
	Dialer dial.Dialer
	// Stderr receives messages (default os.Stderr).
	Stderr io.Writer
}

// RunSegment runs segment seg of the compiled plan whole on this machine, as one generator of a
// distributed run, and writes a shard result folder: snapshots.jsonl (the interval snapshots in the
// worker protocol, everything an exact merge needs), shard.json, spec.json (the whole run's spec,
// shard.SpecFile), plan.yaml (the whole plan, for people) and the segment's own summary, timeline
// and reports. The segment's load, source addresses and port window are cut as for local worker
// processes (spec.Segment). Thresholds and baseline are not judged here: they belong to the merged
// result. With a built-in target, every segment starts its own, in this process, on loopback.
func RunSegment(ctx context.Context, whole *spec.Spec, seg schedule.Segment, o SegmentOptions) (*Outcome, error) {
	if seg.Count < 1 {
		seg = schedule.Segment{Index: 0, Count: 1}
	}
	if o.Host == "" {
		o.Host, _ = os.Hostname()
	}
	hash, err := whole.Hash()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	planYAML, err := yaml.Marshal(whole.Plan)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if o.OutDir == "" {
		o.OutDir = filepath.Join(whole.OutputDir, fmt.Sprintf("%s-segment-%d-of-%d", whole.Name, seg.Index, seg.Count))
	}
	start := o.StartAt
	if start.IsZero() {
		start = time.Now()
	}
	sg := &segmentRun{seg: seg, hash: hash, start: start,
		info: shard.Info{Schema: shard.InfoSchema, PlanHash: hash, Segment: fmt.Sprintf("%d/%d", seg.Index, seg.Count),
			Index: seg.Index, Count: seg.Count, Host: o.Host}}
	r := &runner{s: whole, o: Options{OutDir: o.OutDir, AllowRemote: o.AllowRemote, Abort: o.Abort, Progress: o.Progress,
		OnSnapshot: o.OnSnapshot, OnPorts: o.OnPorts, Dialer: o.Dialer, Stderr: o.Stderr}, local: true, segmentOnly: true, start: start,
		cut: func(dsts []dial.Destination, cert []byte) (*spec.Spec, error) {
			return whole.Segment(seg.Index, seg.Count, destinations(dsts), cert)
		},
		first: func(dir string) error {
			if err := whole.Write(filepath.Join(dir, shard.SpecFile)); err != nil {
				return err
			}
			if err := report.WriteFileAtomic(filepath.Join(dir, shard.PlanFile), planYAML); err != nil {
				return err
			}
			sg.snaps, err = report.CreateFresh(filepath.Join(dir, shard.SnapshotsFile))
			return err
		},
		exec: sg.exec, finish: sg.finish, written: sg.written,
	}
	defer func() {
		if sg.snaps != nil {
			sg.snaps.Close()
		}
	}()
	return r.do(ctx)
}

// segmentRun is what RunSegment adds to the skeleton: the snapshots file, the shard's identity.
type segmentRun struct {
	seg   schedule.Segment
	hash  string
	start time.Time
	info  shard.Info
	snaps *os.File
}

// exec runs the segment in this process, every snapshot written to snapshots.jsonl as it is cut.
// A failure leaves what was measured in snapshots.jsonl, and shard.json says the segment failed.
func (sg *segmentRun) exec(ctx context.Context, r *runner) (*ended, error) {
	w := shard.NewWriter(sg.snaps)
	var werr error
	floor := r.s.PacingFloor()
	res, err := runEngine(ctx, r.s, r.pairs, r.pr, r.tgt.cert(), func(c *engine.Config) {
		c.Segment, c.Start, c.Abort = sg.seg, sg.start, r.o.Abort
		c.OnSnapshot = func(s *metrics.Snapshot) {
			if err := w.Snapshot(s); err != nil && werr == nil {
				werr = err
			}
			r.col.take(s)
			s.Release() // written out and counted: its histograms go back to the pool
		}
	})
	if err == nil {
		err = errors.Join(werr, r.col.err)
	}
	if err != nil {
		w.Fail(err)
		sg.info.Error, sg.info.Start, sg.info.End = err.Error(), sg.start, time.Now()
		if res != nil {
			sg.info.Start, sg.info.End = res.Start, res.End
		}
		writeInfo(r.o.OutDir, sg.info)
		return nil, fmt.Errorf("segment %s: %w", sg.info.Segment, err)
	}
	sg.info.Start, sg.info.End, sg.info.Interrupted, sg.info.Aborted = res.Start, res.End, res.Interrupted, res.Aborted
	if err := w.Done(shard.Done{Ending: res.Ending}); err != nil {
		return nil, err
	}
	if err := sg.snaps.Sync(); err != nil {
		return nil, err
	}
	res.Segments, res.PacingFloor = 1, floor
	return res, nil
}

// finish names the segment and its run in the summary.
func (sg *segmentRun) finish(r *runner, _ *ended, sum *report.Summary) {
	sum.Segment, sum.PlanHash = sg.info.Segment, sg.hash
	sum.Warnings = append(sum.Warnings, fmt.Sprintf("segment %s of plan %.12s on %s: thresholds and baseline are judged by portstorm merge", sg.info.Segment, sg.hash, sg.info.Host))
}

// written writes shard.json last: its presence says the folder is complete (merge --wait polls
// for it).
func (sg *segmentRun) written(out *Outcome) error {
	if err := writeInfo(out.Dir, sg.info); err != nil {
		return err
	}
	return nil
}

func writeInfo(dir string, in shard.Info) error {
	b, err := jsonIndent(in)
	if err != nil {
		return err
	}
	return report.WriteFileAtomic(filepath.Join(dir, shard.InfoFile), b)
}
