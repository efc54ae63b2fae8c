package coordinator

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/portstorm/portstorm/loadgen/metrics"
	"github.com/portstorm/portstorm/loadgen/plan"
	"github.com/portstorm/portstorm/loadgen/report"
	"github.com/portstorm/portstorm/loadgen/schedule"
	"github.com/portstorm/portstorm/loadgen/shard"
	"github.com/portstorm/portstorm/target"
)

// segmentPlan is a short arrival plan against addr, loaded as the CLI loads plans.
func segmentPlan(t *testing.T, addr string) *plan.Plan {
	t.Helper()
	file := filepath.Join(t.TempDir(), "plan.yaml")
	src := fmt.Sprintf(`version: 1
name: split
target: {addresses: [%q]}
connection: {connect_timeout: 2s, send: {bytes: 16B, count: 1}, hold: 50ms, close: fin}
load:
  model: arrival
  start: 40
  stages: [{duration: 1500ms, target: 40}]
thresholds: ["connect.p99 < 10s"]
output: {interval: 250ms}
`, addr)
	if err := os.WriteFile(file, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	p, err := plan.LoadFile(file, plan.Overrides{})
	if err != nil {
		t.Fatal(err)
	}
	p.Defaults()
	if errs := p.Validate(); len(errs) > 0 {
		t.Fatal(errs)
	}
	return p
}

// runSegments runs the n segments of p concurrently in this process, from one start instant, and
// returns their shard folders.
func runSegments(t *testing.T, p *plan.Plan, n int) []string {
	t.Helper()
	dirs := make([]string, n)
	errs := make([]error, n)
	start := time.Now().Add(200 * time.Millisecond)
	var wg sync.WaitGroup
	for i := range n {
		dirs[i] = filepath.Join(t.TempDir(), fmt.Sprintf("segment-%d", i))
		s := compile(t, p)
		wg.Go(func() {
			_, errs[i] = RunSegment(context.Background(), s, schedule.Segment{Index: i, Count: n},
				SegmentOptions{OutDir: dirs[i], StartAt: start, Host: fmt.Sprintf("gen-%d", i), Stderr: testWriter{t}})
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	return dirs
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) { w.t.Log(string(b)); return len(b), nil }

// TestSegmentsMergeExactly is the acceptance test of distributed runs: a run split into 4 segments
// and merged from their files equals the same snapshots merged in-process (counts, peak and
// percentiles exactly, histograms bit for bit), and the segments add up to the plan's arrivals.
func TestSegmentsMergeExactly(t *testing.T) {
	srv, err := target.Start(context.Background(), target.Config{Listen: []string{"127.0.0.1:0"}})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	p := segmentPlan(t, srv.Addrs()[0])
	const n = 4
	dirs := runSegments(t, p, n)

	out := filepath.Join(t.TempDir(), "merged")
	res, err := Merge([]string{dirs[2], dirs[0], dirs[3], dirs[1]}, out) // folder order does not matter
	if err != nil {
		t.Fatal(err)
	}
	got := res.Summary

	// The same snapshots, merged in-process with the merger local workers use.
	want := metrics.NewSnapshot()
	m := shard.NewMerger(n, func(s *metrics.Snapshot) {
		if err := want.Add(s); err != nil {
			t.Error(err)
		}
	})
	var attempted uint64
	var floor int64 // the coarsest segment's pacing floor
	for i, d := range dirs {
		r, err := shard.ReadResult(d)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range r.Snapshots {
			if err := m.Add(i, s); err != nil {
				t.Fatal(err)
			}
		}
		m.Finish(i)
		seg, err := report.ReadSummary(filepath.Join(d, "summary.json"))
		if err != nil {
			t.Fatal(err)
		}
		attempted += seg.Connections.Attempted
		if seg.Pacing == nil {
			t.Errorf("segment %d summary has no pacing calibration (arrival model)", i)
		} else {
			floor = max(floor, seg.Pacing.FloorP99US)
		}
		if seg.Segment != fmt.Sprintf("%d/%d", i, n) || seg.Ports == nil {
			t.Errorf("segment %d summary: segment %q, ports %v", i, seg.Segment, seg.Ports)
		}
	}
	wantLat, err := report.Latencies(want)
	if err != nil {
		t.Fatal(err)
	}
	wc := want.Counts
	gc := got.Connections
	if gc.Attempted != wc.Attempted || gc.Established != wc.Established || gc.Failed != wc.Failed ||
		gc.Closed != wc.Closed || gc.Dropped != wc.Dropped || gc.PeakConcurrent != want.PeakActive {
		t.Errorf("merged connections %+v, in-process %+v peak %d", gc, wc, want.PeakActive)
	}
	if gc.Attempted != attempted || attempted == 0 {
		t.Errorf("merged attempted %d, segments' sum %d", gc.Attempted, attempted)
	}
	if gc.Established == 0 || gc.Failed != 0 {
		t.Errorf("merged run: %+v (examples %v)", gc, got.Examples)
	}
	for name, w := range wantLat {
		g := got.Latency[name]
		if g.Count != w.Count || g.Min != w.Min || g.P50 != w.P50 || g.P90 != w.P90 || g.P99 != w.P99 ||
			g.P999 != w.P999 || g.Max != w.Max || g.HDR != w.HDR {
			t.Errorf("%s: merged %+v, in-process %+v", name, g, w)
		}
	}
	// The merged lateness is judged against the coarsest segment's machine.
	if got.Pacing == nil || got.Pacing.FloorP99US != floor {
		t.Errorf("merged pacing %+v, want the segments' largest floor %dµs", got.Pacing, floor)
	}
	if got.Segments != n || len(got.Shards) != n || len(got.PortsByHost) != n || got.Ports != nil {
		t.Errorf("segments %d, shards %d, ports_by_host %d, ports %v", got.Segments, len(got.Shards), len(got.PortsByHost), got.Ports)
	}
	if len(got.Thresholds) != 1 || got.Verdict != "pass" {
		t.Errorf("thresholds %+v, verdict %s: judged on the merged result", got.Thresholds, got.Verdict)
	}
	for _, f := range []string{"summary.json", report.HLogFile, report.JUnitFile, report.HTMLFile, "timeline.csv"} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Errorf("merged result: %v", err)
		}
	}

	t.Run("refusals", func(t *testing.T) {
		// A first folder whose spec.json is not the run its plan hash names.
		tampered := filepath.Join(t.TempDir(), "segment-0")
		if err := os.CopyFS(tampered, os.DirFS(dirs[0])); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(filepath.Join(tampered, shard.SpecFile))
		if err != nil {
			t.Fatal(err)
		}
		b = bytes.Replace(b, []byte(`"Name":"split"`), []byte(`"Name":"other"`), 1)
		if err := os.WriteFile(filepath.Join(tampered, shard.SpecFile), b, 0o600); err != nil {
			t.Fatal(err)
		}
		tests := []struct {
			name string
			dirs []string
		}{
			{"spec not the hashed one", []string{tampered, dirs[1], dirs[2], dirs[3]}},
			{"missing segment", dirs[:3]},
			{"overlapping segments", []string{dirs[0], dirs[1], dirs[2], dirs[2]}},
			{"not a shard folder", []string{dirs[0], dirs[1], dirs[2], out}},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				if _, err := Merge(tt.dirs, filepath.Join(t.TempDir(), "m")); !errors.Is(err, ErrShards) {
					t.Fatalf("err = %v, want ErrShards", err)
				}
			})
		}
	})

	// A segment whose own worker or target process failed fails the merged run too.
	t.Run("failures carried", func(t *testing.T) {
		seg, err := report.ReadSummary(filepath.Join(dirs[1], "summary.json"))
		if err != nil {
			t.Fatal(err)
		}
		seg.WorkerFailures = []report.WorkerFailure{{Worker: "worker 0/2", PID: 11, AtS: 0.5, Status: "signal: killed"}}
		seg.TargetFailures = []report.TargetFailure{{Target: "target process 1/2", PID: 12, AtS: 0.5, Status: "signal: killed"}}
		if err := report.WriteSummary(dirs[1], seg); err != nil {
			t.Fatal(err)
		}
		res, err := Merge(dirs, filepath.Join(t.TempDir(), "m"))
		if err != nil {
			t.Fatal(err)
		}
		wf, tf := res.Summary.WorkerFailures, res.Summary.TargetFailures
		if len(wf) != 1 || wf[0].PID != 11 || wf[0].Worker != "segment 1/4 on gen-1: worker 0/2" || wf[0].AtS < 0.5 {
			t.Errorf("merged worker failures %+v", wf)
		}
		if len(tf) != 1 || tf[0].PID != 12 || tf[0].Target != "segment 1/4 on gen-1: target process 1/2" || tf[0].AtS < 0.5 {
			t.Errorf("merged target failures %+v", tf)
		}
	})

	// A segment that gave up on an unreachable target makes the merged run one that gave up, at
	// the earliest segment's give-up, on the merged run's clock.
	t.Run("give-up carried", func(t *testing.T) {
		for i, at := range map[int]float64{2: 0.9, 3: 0.4} {
			seg, err := report.ReadSummary(filepath.Join(dirs[i], "summary.json"))
			if err != nil {
				t.Fatal(err)
			}
			seg.Unreachable = &report.Unreachable{AtS: at, FirstAtS: 0.1, Failed: 12, Destination: "127.0.0.1:9", Outcome: "ECONNREFUSED", Error: fmt.Sprint("refused ", i)}
			if err := report.WriteSummary(dirs[i], seg); err != nil {
				t.Fatal(err)
			}
		}
		res, err := Merge(dirs, filepath.Join(t.TempDir(), "m"))
		if err != nil {
			t.Fatal(err)
		}
		u := res.Summary.Unreachable
		if u == nil || u.Error != "refused 3" || u.AtS < 0.4 || u.FirstAtS < 0.1 || u.FirstAtS > u.AtS {
			t.Fatalf("merged unreachable %+v, want segment 3's", u)
		}
		if res.Summary.Verdict != report.VerdictError {
			t.Errorf("verdict %s, want error", res.Summary.Verdict)
		}
	})

	// A merge writes the files a run does: never into a folder that already holds a run, such as
	// an earlier merge's or a shard's own.
	t.Run("into a folder holding a run", func(t *testing.T) {
		for _, into := range []string{out, dirs[0]} {
			before, err := os.ReadFile(filepath.Join(into, report.SummaryFile))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := Merge(dirs, into); !errors.Is(err, report.ErrFolderTaken) {
				t.Fatalf("merge into %s: err = %v, want ErrFolderTaken", into, err)
			}
			if after, _ := os.ReadFile(filepath.Join(into, report.SummaryFile)); string(after) != string(before) {
				t.Errorf("%s: summary.json changed by a refused merge", into)
			}
		}
	})
}
