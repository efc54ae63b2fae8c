package coordinator

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/portstorm/portstorm/loadgen/dial"
	"github.com/portstorm/portstorm/loadgen/engine"
	"github.com/portstorm/portstorm/loadgen/gate"
	"github.com/portstorm/portstorm/loadgen/metrics"
	"github.com/portstorm/portstorm/loadgen/plan"
	"github.com/portstorm/portstorm/loadgen/ports"
	"github.com/portstorm/portstorm/loadgen/report"
	"github.com/portstorm/portstorm/loadgen/schedule"
	"github.com/portstorm/portstorm/loadgen/shard"
	"github.com/portstorm/portstorm/loadgen/spec"
	"github.com/portstorm/portstorm/target"
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

// PlanHash identifies a resolved plan: the SHA-256 of its YAML. Segments of one run share it, and a
// merge refuses shards whose hashes differ.
func PlanHash(p *plan.Plan) (string, []byte, error) {
	b, err := yaml.Marshal(p)
	if err != nil {
		return "", nil, err
	}
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:]), b, nil
}

// RunSegment runs segment seg of the compiled plan whole on this machine, as one generator of a distributed run, and
// writes a shard result folder: snapshots.jsonl (the interval snapshots in the worker protocol,
// everything an exact merge needs), shard.json, plan.yaml (the whole plan) and the segment's own
// summary, timeline and reports. The segment's load, source addresses and port window are cut as
// for local worker processes (workerPlan). Thresholds and baseline are not judged here: they
// belong to the merged result. With a built-in target, every segment starts its own, in this
// process, on loopback.
func RunSegment(ctx context.Context, whole *spec.Spec, seg schedule.Segment, o SegmentOptions) (*Outcome, error) {
	p := whole.Plan
	if seg.Count < 1 {
		seg = schedule.Segment{Index: 0, Count: 1}
	}
	if o.Stderr == nil {
		o.Stderr = os.Stderr
	}
	if o.Host == "" {
		o.Host, _ = os.Hostname()
	}
	hash, planYAML, err := PlanHash(p)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	var dsts []dial.Destination
	var tgt *target.Server
	bpr := newPortRun(whole) // the built-in target's side: its certificate, when it serves TLS
	defer bpr.close()
	if whole.Target != nil {
		tcfg, err := bpr.builtinTarget()
		if err != nil {
			return nil, err
		}
		if tgt, err = target.Start(context.Background(), tcfg); err != nil {
			return nil, fmt.Errorf("%w: starting the built-in target: %w", ErrCannotRun, err)
		}
		defer tgt.Close()
		if dsts, err = dial.Resolve(ctx, nil, tgt.Addrs(), false); err != nil {
			return nil, beforeRun(ctx, fmt.Errorf("%w: %w", ErrCannotRun, err))
		}
	} else if dsts, err = dial.Resolve(ctx, nil, whole.Addresses, whole.AllowRemote && o.AllowRemote); err != nil {
		return nil, beforeRun(ctx, fmt.Errorf("%w: %w", ErrInvalid, err))
	}
	sp, err := workerPlan(p, seg.Index, seg.Count, dsts)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	var caFile string
	if bpr.tls != nil {
		caFile = bpr.tls.certFile
	}
	namesForWorkers(sp, p, caFile)
	ss, err := spec.Compile(sp, spec.Facts{Host: whole.Host})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	pr := newPortRun(ss)
	// The whole plan's demand is not this host's: the preflight warns but does not refuse.
	pr.workers, pr.targetProcs, pr.segmentOnly = 1, 0, true
	if dsts, err = pr.setup(dsts, o.Dialer); err != nil {
		return nil, err
	}
	ramp := ss.Ramp
	cfg, err := engineConfig(ss, dsts, pr)
	if err != nil {
		return nil, err
	}

	dir := o.OutDir
	if dir == "" {
		dir = filepath.Join(p.Output.Dir, fmt.Sprintf("%s-segment-%d-of-%d", p.Name, seg.Index, seg.Count))
	}
	if err := beforeRun(ctx, nil); err != nil {
		return nil, err
	}
	start := o.StartAt
	if start.IsZero() {
		start = time.Now()
	}
	var snaps *os.File
	out, err := openOutputs(dir, start, func() error {
		if err := report.WriteFileAtomic(filepath.Join(dir, shard.PlanFile), planYAML); err != nil {
			return err
		}
		snaps, err = report.CreateFresh(filepath.Join(dir, shard.SnapshotsFile))
		return err
	})
	if err != nil {
		if snaps != nil {
			snaps.Close()
		}
		return nil, err
	}
	defer out.close()
	defer snaps.Close()
	hlog := out.hlog
	w := shard.NewWriter(snaps)
	verdict, err := gate.Compile(sp) // no thresholds, no baseline: workerPlan dropped them
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	col := newCollector(sp, ramp, pr, verdict, hlog, Options{Progress: o.Progress, OnSnapshot: o.OnSnapshot, OnPorts: o.OnPorts}, func() {})
	var werr error
	cfg.Segment, cfg.Start, cfg.Abort = seg, start, o.Abort
	cfg.OnSnapshot = func(s *metrics.Snapshot) {
		if err := w.Snapshot(s); err != nil && werr == nil {
			werr = err
		}
		col.take(s)
	}
	info := shard.Info{Schema: shard.InfoSchema, PlanHash: hash, Segment: fmt.Sprintf("%d/%d", seg.Index, seg.Count),
		Index: seg.Index, Count: seg.Count, Host: o.Host}
	floor := ss.PacingFloor()
	res, err := engine.Run(ctx, cfg)
	if err == nil {
		err = errors.Join(werr, col.err)
	}
	if err != nil {
		// What was measured stays in snapshots.jsonl; shard.json says the segment failed.
		w.Fail(err)
		info.Error, info.Start, info.End = err.Error(), start, time.Now()
		if res != nil {
			info.Start, info.End = res.Start, res.End
		}
		writeInfo(dir, info)
		return nil, fmt.Errorf("%w: segment %s: %w", ErrCannotRun, info.Segment, err)
	}
	info.Start, info.End, info.Interrupted, info.Aborted = res.Start, res.End, res.Interrupted, res.Aborted
	if err := w.Done(shard.Done{Start: res.Start, End: res.End, Interrupted: res.Interrupted, Aborted: res.Aborted}); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCannotRun, err)
	}
	if err := snaps.Sync(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCannotRun, err)
	}
	sum, err := report.Build(report.Input{
		Plan: sp, Host: pr.host, Segments: 1, Start: res.Start, End: res.End,
		Interrupted: res.Interrupted, Aborted: res.Aborted, Total: res.Total, Stages: col.stages[:len(ramp.Stages)],
		Ports: pr.report(), PacingFloor: floor,
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCannotRun, err)
	}
	if tgt != nil {
		tgt.Close()
		st := tgt.Stats()
		st.Processes = 1
		sum.Target = &st
	}
	sum.Segment, sum.PlanHash = info.Segment, hash
	sum.Unreachable = unreachable(res.Unreachable).summary(res.Start)
	sum.Warnings = append(sum.Warnings, fmt.Sprintf("segment %s of plan %.12s on %s: thresholds and baseline are judged by portstorm merge", info.Segment, hash, o.Host))
	report.Settle(sum)
	if res, err := out.write(sum, col.rows); err != nil {
		return res, err
	}
	// shard.json last: its presence says the folder is complete (merge --wait polls for it).
	if err := writeInfo(dir, info); err != nil {
		return &Outcome{Summary: sum, Dir: dir}, fmt.Errorf("%w: %w", ErrCannotRun, err)
	}
	return &Outcome{Summary: sum, Dir: dir}, nil
}

func writeInfo(dir string, in shard.Info) error {
	b, err := jsonIndent(in)
	if err != nil {
		return err
	}
	return report.WriteFileAtomic(filepath.Join(dir, shard.InfoFile), b)
}
