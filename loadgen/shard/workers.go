package shard

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os/exec"
	"sync"
	"syscall"
	"time"

	"github.com/portstorm/portstorm/loadgen/metrics"
	"github.com/portstorm/portstorm/loadgen/ports"
)

// WorkerSpec is how to start one worker process.
type WorkerSpec struct {
	Label   string // e.g. "worker 2/4"
	Segment string // "2/4"
	Path    string
	Args    []string
	Env     []string
}

// Failure is a worker that ended without finishing its segment.
type Failure struct {
	Worker  string  `json:"worker"`
	PID     int     `json:"pid"`
	AtS     float64 `json:"at_s"`
	Status  string  `json:"status"`
	Message string  `json:"message,omitempty"`
}

func (f Failure) String() string {
	s := fmt.Sprintf("%s (pid %d) ended at %.1fs: %s", f.Worker, f.PID, f.AtS, f.Status)
	if f.Message != "" {
		s += ": " + f.Message
	}
	return s
}

// RunResult is the merged outcome of all workers.
type RunResult struct {
	Total       *metrics.Snapshot
	Start, End  time.Time
	Interrupted bool
	Aborted     bool
	Failures    []Failure
	// Ports holds each finished worker's port report, by worker label.
	Ports []WorkerPorts
}

// WorkerPorts is one worker's port report.
type WorkerPorts struct {
	Segment string
	Ports   *ports.Report
}

type worker struct {
	spec WorkerSpec
	cmd  *exec.Cmd
	out  io.ReadCloser
	done *Done
	msg  string
}

// Run starts the workers, merges their snapshots into emit (in order, one call at a time), and
// returns when all have exited. Cancelling ctx asks every worker to stop gracefully (SIGTERM);
// closing abort asks them to cut in-flight work (a second SIGTERM). A worker that dies without
// finishing is reported (which, when, exit status), the others are stopped gracefully, and
// everything measured so far is kept. Workers run in their own process group, so a terminal's
// Ctrl-C reaches only the coordinator, which forwards it once; Pdeathsig kills them if the
// coordinator dies.
//
// deadline, when not zero, is when every worker must have ended (its schedule, graceful stop and
// a margin): a worker still running then is killed and reported, so a hung worker cannot hang
// the run.
func Run(ctx context.Context, abort <-chan struct{}, specs []WorkerSpec, emit func(*metrics.Snapshot), stderr io.Writer, deadline time.Time) (*RunResult, error) {
	res := &RunResult{Total: metrics.NewSnapshot(), Start: time.Now()}
	var mergeErr error
	merger := NewMerger(len(specs), func(s *metrics.Snapshot) {
		if err := res.Total.Add(s); err != nil && mergeErr == nil {
			mergeErr = err
		}
		emit(s)
	})

	workers := make([]*worker, 0, len(specs))
	for _, sp := range specs {
		cmd := exec.Command(sp.Path, sp.Args...)
		cmd.Env = sp.Env
		cmd.Stderr = &prefixWriter{w: stderr, prefix: "[" + sp.Label + "] "}
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
		out, err := cmd.StdoutPipe()
		if err == nil {
			err = cmd.Start()
		}
		if err != nil {
			for _, w := range workers {
				w.cmd.Process.Kill()
				w.cmd.Wait()
			}
			return nil, fmt.Errorf("starting %s: %w", sp.Label, err)
		}
		workers = append(workers, &worker{spec: sp, cmd: cmd, out: out})
	}

	var mu sync.Mutex // guards res.Failures
	failed := make(chan struct{})
	var failOnce sync.Once
	var wg sync.WaitGroup
	for i, w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rerr := Read(w.out, func(m Message) error {
				switch {
				case m.Snapshot != nil:
					return merger.Add(i, m.Snapshot)
				case m.Done != nil:
					w.done = m.Done
				default:
					w.msg = m.Error
				}
				return nil
			})
			if rerr != nil {
				w.msg = rerr.Error()
				io.Copy(io.Discard, w.out) // let the worker finish writing
			}
			werr := w.cmd.Wait()
			merger.Finish(i)
			if w.done != nil && werr == nil && rerr == nil {
				return
			}
			status := "exited before finishing its segment"
			if werr != nil {
				status = werr.Error()
			}
			mu.Lock()
			res.Failures = append(res.Failures, Failure{
				Worker: w.spec.Label, PID: w.cmd.Process.Pid, AtS: time.Since(res.Start).Seconds(),
				Status: status, Message: w.msg,
			})
			mu.Unlock()
			failOnce.Do(func() { close(failed) })
		}()
	}

	allDone := make(chan struct{})
	signal := func() {
		for _, w := range workers {
			w.cmd.Process.Signal(syscall.SIGTERM) // an exited worker just returns an error
		}
	}
	go func() {
		select {
		case <-ctx.Done():
		case <-failed:
		case <-abort:
			signal()
		case <-allDone:
			return
		}
		signal()
		select {
		case <-abort:
			signal()
		case <-allDone:
		}
	}()
	if !deadline.IsZero() {
		watchdog := time.AfterFunc(time.Until(deadline), func() {
			for _, w := range workers {
				w.cmd.Process.Kill() // an exited worker just returns an error
			}
		})
		defer watchdog.Stop()
	}
	wg.Wait()
	close(allDone)

	res.End = time.Now()
	first := true
	for _, w := range workers {
		if w.done == nil {
			continue
		}
		if first || w.done.Start.Before(res.Start) {
			res.Start = w.done.Start
		}
		first = false
		res.Interrupted = res.Interrupted || w.done.Interrupted
		res.Aborted = res.Aborted || w.done.Aborted
		if w.done.Ports != nil {
			res.Ports = append(res.Ports, WorkerPorts{Segment: w.spec.Segment, Ports: w.done.Ports})
		}
	}
	if ctx.Err() != nil {
		res.Interrupted = true
	}
	return res, mergeErr
}

// prefixWriter labels every line a worker writes to stderr.
type prefixWriter struct {
	mu     sync.Mutex
	w      io.Writer
	prefix string
	buf    []byte
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.buf = append(p.buf, b...)
	for {
		i := bytes.IndexByte(p.buf, '\n')
		if i < 0 {
			return len(b), nil
		}
		fmt.Fprintf(p.w, "%s%s", p.prefix, p.buf[:i+1])
		p.buf = p.buf[i+1:]
	}
}
