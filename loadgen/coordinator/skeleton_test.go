//go:build linux

package coordinator

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/portstorm/portstorm/internal/loopback"
	"github.com/portstorm/portstorm/loadgen/plan"
	"github.com/portstorm/portstorm/loadgen/report"
	"github.com/portstorm/portstorm/loadgen/schedule"
	"github.com/portstorm/portstorm/loadgen/shard"
	"github.com/portstorm/portstorm/loadgen/spec"
)

// TestEveryVerbHasEveryStep: Run, RunSegment and Merge are configurations of one skeleton
// (runner), so a step of it is in all three. A plan against a closed port gives up on the
// unreachable target: the summarise step's unreachable is in every verb's summary, every verb
// writes the same result files (open, write), and the port report is this process's (Run,
// RunSegment) or per host (Merge, from its segment's). The calibration step is Run's alone: a
// spec that calibrates (baseline.normalize: calibration) has its calibration in Run's summary,
// never in a segment's (a merged result keeps none) or a merge's.
func TestEveryVerbHasEveryStep(t *testing.T) {
	checkFDs(t)
	file := filepath.Join(t.TempDir(), "plan.yaml")
	src := fmt.Sprintf(`version: 1
name: skeleton
target: {addresses: [%q]}
connection: {connect_timeout: 1s, on_connect_failure: {give_up_after: 300ms}}
load:
  model: concurrency
  start: 5
  stages: [{duration: 20s, target: 5}]
output: {interval: 100ms}
`, loopback.ClosedPort(t))
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
	ctx := context.Background()
	root := t.TempDir()
	segDir := filepath.Join(root, "segment")
	var segGaveUp *report.Unreachable // the segment's give-up, which its merge says again
	for _, tt := range []struct {
		verb    string
		outcome func(dir string) (*Outcome, error)
	}{
		{"run", func(dir string) (*Outcome, error) {
			return Run(ctx, calibrating(t, p), Options{OutDir: dir, Stderr: testWriter{t}})
		}},
		{"segment", func(string) (*Outcome, error) {
			return RunSegment(ctx, calibrating(t, p), schedule.Segment{Index: 0, Count: 1},
				SegmentOptions{OutDir: segDir, Host: "gen-0", Stderr: testWriter{t}})
		}},
		{"merge", func(dir string) (*Outcome, error) { return Merge([]string{segDir}, dir) }},
	} {
		t.Run(tt.verb, func(t *testing.T) {
			dir := filepath.Join(root, tt.verb)
			res, err := tt.outcome(dir)
			if err != nil {
				t.Fatal(err)
			}
			s := res.Summary
			if s.Unreachable == nil || s.Unreachable.Outcome != "ECONNREFUSED" {
				t.Errorf("unreachable %+v, want the give-up on the refused target", s.Unreachable)
			}
			if s.Interrupted {
				t.Error("a give-up is not an interruption")
			}
			if calibrated := s.Calibration != nil; calibrated != (tt.verb == "run") {
				t.Errorf("%s: calibration %+v; want one in run's summary alone", tt.verb, s.Calibration)
			}
			switch tt.verb {
			case "segment":
				// The segment's last word is how it ended, the give-up included, as a worker's is.
				segGaveUp = s.Unreachable
				sr, err := shard.ReadResult(res.Dir)
				if err != nil {
					t.Fatal(err)
				}
				if sr.Done == nil || sr.Done.Unreachable == nil || sr.Done.Unreachable.Error != s.Unreachable.Error {
					t.Errorf("segment's done %+v, want its give-up", sr.Done)
				}
			case "merge":
				// One segment: the merged give-up is the segment's, at the same times.
				if g := segGaveUp; g != nil && s.Unreachable != nil && (math.Abs(s.Unreachable.AtS-g.AtS) > 1e-9 ||
					math.Abs(s.Unreachable.FirstAtS-g.FirstAtS) > 1e-9 || s.Unreachable.Error != g.Error) {
					t.Errorf("merged give-up %+v, want the segment's %+v", s.Unreachable, g)
				}
			}
			if tt.verb == "merge" {
				if s.Ports != nil || len(s.PortsByHost) != 1 || s.PortsByHost[0].Host != "gen-0" {
					t.Errorf("merge: ports %v, ports_by_host %+v; want the segment's, per host", s.Ports, s.PortsByHost)
				}
			} else if s.Ports == nil {
				t.Errorf("%s: no port report", tt.verb)
			}
			for _, f := range []string{report.SummaryFile, report.TimelineFile, report.HLogFile, report.HTMLFile, report.JUnitFile} {
				if _, err := os.Stat(filepath.Join(res.Dir, f)); err != nil {
					t.Errorf("%s: %v", tt.verb, err)
				}
			}
			if tt.verb == "segment" {
				entries, _ := os.ReadDir(res.Dir)
				var names []string
				for _, e := range entries {
					names = append(names, e.Name())
				}
				if !slices.Contains(names, shard.SpecFile) || !slices.Contains(names, "shard.json") {
					t.Errorf("shard folder %v, want %s and shard.json", names, shard.SpecFile)
				}
			}
		})
	}
}

// calibrating is p's spec, as baseline.normalize: calibration (or run --calibrate) compiles it.
func calibrating(t *testing.T, p *plan.Plan) *spec.Spec {
	s := compile(t, p)
	s.Calibrate = true
	return s
}
