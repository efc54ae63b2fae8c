package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/portstorm/portstorm/loadgen/coordinator"
	"github.com/portstorm/portstorm/loadgen/schedule"
	"github.com/portstorm/portstorm/loadgen/shard"
	"github.com/portstorm/portstorm/loadgen/spec"
)

// segmentFlags are run's flags for one segment of a distributed run (docs/architecture.md).
type segmentFlags struct {
	segment string
	count   int
	host    string
	// upload sends the finished shard folder to a merge's --receive (portstorm k8s --results upload).
	upload     string
	uploadWait time.Duration
}

func (f *segmentFlags) add(c *cobra.Command) {
	c.Flags().StringVar(&f.segment, "segment", "", "run only segment i/N of the plan (0-based, as JOB_COMPLETION_INDEX) and write a shard result folder for portstorm merge")
	c.Flags().IntVar(&f.count, "segment-count", 0, "N, with --segment i, or alone: the segment index is then $JOB_COMPLETION_INDEX")
	c.Flags().StringVar(&f.host, "host", "", "with --segment, this generator's name in the merged result (default the host name)")
	c.Flags().StringVar(&f.upload, "upload", "", "with --segment, send the finished shard folder to this URL: a `portstorm merge --receive` (http://HOST:PORT/shard/i)")
	c.Flags().DurationVar(&f.uploadWait, "upload-wait", 10*time.Minute, "with --upload, how long to retry while the merge cannot be reached")
}

func (f *segmentFlags) asked() bool { return f.segment != "" || f.count > 0 }

// parse reads --segment i/N, --segment i --segment-count N, or --segment-count N with the index
// from JOB_COMPLETION_INDEX (a Kubernetes Indexed Job's pod).
func (f *segmentFlags) parse(environ []string) (schedule.Segment, error) {
	s := f.segment
	if f.count > 0 {
		if strings.Contains(s, "/") {
			return schedule.Segment{}, errors.New("--segment i/N already says N: drop --segment-count")
		}
		if s == "" {
			for _, kv := range environ {
				if v, ok := strings.CutPrefix(kv, "JOB_COMPLETION_INDEX="); ok {
					s = v
				}
			}
			if s == "" {
				return schedule.Segment{}, errors.New("--segment-count without --segment needs JOB_COMPLETION_INDEX in the environment")
			}
		}
		s += "/" + strconv.Itoa(f.count)
	}
	return schedule.ParseSegment(s)
}

// runSegment runs one segment of a distributed run and writes its shard result folder. Thresholds
// and baseline wait for portstorm merge, so the exit code is 0 unless the segment could not run.
//
// Its live metrics (--metrics-listen, --metrics-push) are the segment's own; pushes carry the
// grouping label segment="i/N", so that each segment's figures are a group of their own.
func (e *env) runSegment(in *interrupts, s *spec.Spec, f *segmentFlags, lf *liveFlags, out, startAt string, quiet, allowRemote bool) error {
	seg, err := f.parse(e.environ)
	if err != nil {
		return exitWith(exitInvalid, fmt.Errorf("--segment: %w", err))
	}
	var at time.Time
	if startAt != "" {
		if at, err = time.Parse(time.RFC3339Nano, startAt); err != nil {
			return exitWith(exitInvalid, fmt.Errorf("--start-at %q: want an RFC 3339 time: %w", startAt, err))
		}
		if late := time.Since(at); late > time.Second {
			fmt.Fprintf(e.stderr, "portstorm: segment %s starts %s after --start-at: its overdue load starts at once (see schedule_lag)\n", seg, late.Round(time.Millisecond))
		}
	}
	lv, err := lf.start(e, s.Name, [2]string{"segment", seg.String()})
	if err != nil {
		return err
	}
	prog := newProgress(e.stdout, e.isTerminal, quiet)
	res, err := coordinator.RunSegment(in.ctx, s, seg, coordinator.SegmentOptions{
		OutDir: out, StartAt: at, Host: f.host, AllowRemote: allowRemote, Abort: in.abort,
		Progress: prog.update, OnSnapshot: e.onSnapshot, OnPorts: e.onPorts, Stderr: e.stderr,
	})
	prog.finish()
	e.writeOutcome(res)
	defer lv.end(in.ctx, res) // after the upload: a linger does not hold up the merge
	if f.upload != "" && res != nil {
		// Whatever the segment's end, a folder with its shard.json goes to the merge, which judges it.
		if uerr := shard.Upload(in.ctx, http.DefaultClient, f.upload, res.Dir, f.uploadWait, time.Second); uerr != nil {
			return exitWith(exitCannotRun, fmt.Errorf("--upload: %w (the shard folder is in %s)", uerr, res.Dir))
		}
		fmt.Fprintf(e.stderr, "portstorm: sent %s to %s\n", res.Dir, f.upload)
	}
	switch {
	case errors.Is(err, coordinator.ErrInvalid):
		return exitWith(exitInvalid, err)
	case errors.Is(err, coordinator.ErrInterrupted):
		return exitWith(exitInterrupted, err)
	case err != nil:
		return exitWith(exitCannotRun, err)
	case res.Summary.Interrupted:
		return exitWith(exitInterrupted, errors.New("interrupted; shard result written, marked interrupted"))
	case res.Summary.Unreachable != nil:
		return exitWith(exitCannotRun, fmt.Errorf("%s; shard result written", res.Summary.Unreachable.Message()))
	case res.Summary.Connections.Attempted > 0 && res.Summary.Connections.Established == 0:
		return exitWith(exitCannotRun, fmt.Errorf("target unreachable: none of %d connection attempts succeeded", res.Summary.Connections.Attempted))
	}
	return nil
}

func mergeCmd(e *env) *cobra.Command {
	var out, receive string
	var wait, linger time.Duration
	c := &cobra.Command{
		Use:   "merge SHARD_DIR... --out DIR",
		Short: "Merge the shard result folders of a distributed run into one result (exit codes as run)",
		Long: `Merge the shard result folders written by 'portstorm run PLAN --segment i/N' into one result:
interval snapshots merge exactly (histograms too), thresholds and baseline are judged on the merged
result, and every result file of a normal run is written to --out. Folders of different plans,
the same segment twice or missing segments are refused (exit 2).`,
		Args: func(c *cobra.Command, args []string) error {
			if len(args) == 0 {
				return exitWith(exitInvalid, fmt.Errorf("merge takes one or more shard folders\nusage: %s", c.UseLine()))
			}
			return nil
		},
		RunE: func(c *cobra.Command, args []string) error {
			if out == "" {
				return exitWith(exitInvalid, errors.New("merge: --out DIR is required"))
			}
			in := e.watchSignals()
			defer in.stop()
			if receive != "" {
				if wait <= 0 {
					return exitWith(exitInvalid, errors.New("merge --receive: give --wait, how long to wait for the segments' uploads"))
				}
				stop, err := serveMerge(e, receive, args, out)
				if err != nil {
					return exitWith(exitCannotRun, fmt.Errorf("--receive %s: %w", receive, err))
				}
				defer func() {
					if linger > 0 {
						fmt.Fprintf(e.stderr, "portstorm: serving the merged result on %s/merged/ for %s\n", receive, linger)
						t := time.NewTimer(linger)
						select {
						case <-t.C:
						case <-in.ctx.Done():
							t.Stop()
						}
					}
					stop()
				}()
			}
			if wait > 0 {
				err := coordinator.WaitForShards(in.ctx, args, wait, 2*time.Second)
				if errors.Is(err, coordinator.ErrInterrupted) {
					return exitWith(exitInterrupted, err)
				}
				if err != nil {
					return exitWith(exitCannotRun, err)
				}
			}
			if err := in.beforeRun(); err != nil {
				return err
			}
			res, err := coordinator.Merge(args, out)
			e.writeOutcome(res)
			return outcomeExit(res, err)
		},
	}
	c.Flags().StringVar(&out, "out", "", "the merged results folder (required)")
	c.Flags().DurationVar(&wait, "wait", 0, "wait up to this long for every folder's shard.json (segments still running), e.g. 30m")
	c.Flags().StringVar(&receive, "receive", "", "listen on ADDR (e.g. :7070) for the segments' --upload: PUT /shard/i fills the i-th folder (needs --wait)")
	c.Flags().DurationVar(&linger, "linger", 0, "with --receive, serve the merged folder at /merged/ this long after the merge (kubectl port-forward)")
	return c
}

// serveMerge serves a merge's --receive: PUT /shard/i unpacks segment i's upload into dirs[i];
// GET /merged/FILE serves the merged folder once it is written.
func serveMerge(e *env, addr string, dirs []string, out string) (stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("/shard/", &shard.Receiver{Dirs: dirs})
	mux.Handle("GET /merged/", http.StripPrefix("/merged/", http.FileServer(http.Dir(out))))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(ln)
	}()
	fmt.Fprintf(e.stderr, "portstorm: receiving %d shard folder(s) on %s\n", len(dirs), ln.Addr())
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		<-done
	}, nil
}
