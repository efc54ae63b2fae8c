//go:build linux

package coordinator

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"
	"syscall"
	"testing"

	"github.com/portstorm/portstorm/loadgen/plan"
)

// blockingResolver blocks every lookup until its context ends, after calling started.
type blockingResolver struct{ started func() }

func (r blockingResolver) LookupNetIP(ctx context.Context, _, _ string) ([]netip.Addr, error) {
	r.started()
	<-ctx.Done()
	return nil, ctx.Err()
}

// pidWriter collects the PIDs fake target processes announce on stderr and calls seen after each
// one.
type pidWriter struct {
	mu   sync.Mutex
	pids []int
	seen func()
}

var fakeTargetLine = regexp.MustCompile(`fake target (\d+)`)

func (w *pidWriter) Write(b []byte) (int, error) {
	for _, m := range fakeTargetLine.FindAllSubmatch(b, -1) {
		pid, _ := strconv.Atoi(string(m[1]))
		w.mu.Lock()
		w.pids = append(w.pids, pid)
		w.mu.Unlock()
		if w.seen != nil {
			w.seen()
		}
	}
	return len(b), nil
}

// TestInterruptedWhileSettingUp: a signal (a cancelled context) that comes before the run begins,
// while the built-in target's processes start or a name resolves, ends Run at once with
// ErrInterrupted: the processes it started are gone, and no results folder was made.
func TestInterruptedWhileSettingUp(t *testing.T) {
	// A target process that never reports its addresses: it says who it is and waits.
	fake := filepath.Join(t.TempDir(), "fake-portstorm")
	if err := os.WriteFile(fake, []byte("#!/bin/sh\necho \"fake target $$\" >&2\nexec sleep 600\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	stage := []plan.Stage{{Duration: plan.Duration(200e6), Target: 20}}
	tests := []struct {
		name  string
		plan  plan.Plan
		setup func(cancel func(), o *Options, w *pidWriter)
	}{
		{"already cancelled", plan.Plan{Target: plan.Target{Builtin: &plan.Builtin{Mode: "echo"}}},
			func(cancel func(), o *Options, w *pidWriter) { cancel() }},
		{"while target processes start", plan.Plan{Target: plan.Target{Builtin: &plan.Builtin{Mode: "echo", Processes: 2}}},
			func(cancel func(), o *Options, w *pidWriter) { o.Exe, w.seen = fake, cancel }},
		{"while the target's name resolves", plan.Plan{Target: plan.Target{Addresses: []string{"target.example:80"}}},
			func(cancel func(), o *Options, w *pidWriter) { o.Resolver = blockingResolver{started: cancel} }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := tt.plan
			p.Version, p.Name = 1, "setup"
			p.Load = plan.Load{Model: "arrival", Start: 20, Stages: stage, Workers: 1}
			p.Defaults()
			if errs := p.Validate(); len(errs) > 0 {
				t.Fatal(errs)
			}
			dir := filepath.Join(t.TempDir(), "r")
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			w := &pidWriter{}
			o := Options{OutDir: dir, Stderr: w}
			tt.setup(cancel, &o, w)
			res, err := Run(ctx, compile(t, &p), o)
			if !errors.Is(err, ErrInterrupted) || res != nil {
				t.Fatalf("Run: %v, %v; want ErrInterrupted and no outcome", res, err)
			}
			if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("results folder: %v; want none", err)
			}
			w.mu.Lock()
			defer w.mu.Unlock()
			if o.Exe != "" && len(w.pids) == 0 {
				t.Fatal("no target process started")
			}
			for _, pid := range w.pids {
				if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
					t.Errorf("target process %d outlived the interrupted set-up: kill(0) = %v", pid, err)
				}
			}
		})
	}
}
