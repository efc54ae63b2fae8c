package shard

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/portstorm/portstorm/loadgen/metrics"
	"github.com/portstorm/portstorm/loadgen/ports"
	"github.com/portstorm/portstorm/loadgen/report"
)

// WorkerSpec is how to start one worker process.
type WorkerSpec struct {
	Label   string // e.g. "worker 2/4"
	Segment string // "2/4"
	Path    string
	Args    []string
	Env     []string
}

// RunResult is the merged outcome of all workers: how they ended together (the earliest start,
// the last end, interrupted or aborted when any was, and the earliest give-up of a worker on a
// target that never accepted a connection, the others then stopped), the merged snapshot, the
// failures and each finished worker's port report.
type RunResult struct {
	Ending
	Total    *metrics.Snapshot
	Failures []report.WorkerFailure
	// Ports holds each finished worker's port report, by worker label.
	Ports []WorkerPorts
}

// WorkerPorts is one worker's port report.
type WorkerPorts struct {
	Segment string
	Ports   *ports.Report
}

// Timing is when the workers start their schedules and how long Run lets them take.
type Timing struct {
	// Handshake makes every worker say when it is set up ({"ready":true}, see Writer.Ready) and
	// then wait for its start instant on stdin, which Run writes, the same to all, as soon as the
	// last one is ready. A start instant fixed in advance has to guess the slowest worker's setup:
	// it was 500 ms + 50 ms per worker (700 ms for 4, of the 1.7 s it took to hold 60,000
	// connections), while workers are ready in tens of milliseconds.
	Handshake bool
	// StartMargin is how far after the last ready the start instant lies (default
	// DefaultStartMargin): the time to write the start lines and for every worker to wake up and
	// read its own. A worker that reads it late still keeps the common schedule: its overdue
	// arrivals start at once and show in schedule_lag.
	StartMargin time.Duration
	// ReadyWithin bounds the wait for every worker's ready (default DefaultReadyWithin): past it,
	// every worker is killed and those not ready are reported, so a worker stuck in its setup
	// cannot hang the run.
	ReadyWithin time.Duration
	// RunFor, when not zero, is how long after the start (the handshake's instant, or Run's call
	// without a handshake) every worker must have ended: its schedule, graceful stop and a margin.
	// A worker still running then is killed and reported, so a hung worker cannot hang the run.
	RunFor time.Duration
	// Ready, when set, is called with the workers' process ids once every worker is ready, before
	// the start instant is sent (with Handshake): the moment they are set up and have opened no
	// connection (the coordinator samples their memory then, loadgen/memory).
	Ready func(pids []int)
}

const (
	// DefaultStartMargin is Timing.StartMargin's default: writing a line to a pipe and waking the
	// reader take well under a millisecond, a busy core's scheduler a few more.
	DefaultStartMargin = 20 * time.Millisecond
	// DefaultReadyWithin is Timing.ReadyWithin's default, three orders of magnitude above a
	// worker's usual setup.
	DefaultReadyWithin = 30 * time.Second
)

type worker struct {
	spec  WorkerSpec
	cmd   *exec.Cmd
	out   io.ReadCloser
	in    io.WriteCloser // the start line's way in (Timing.Handshake only)
	ready bool
	done  *Done
	msg   string
}

// Run starts the workers, merges their snapshots into emit (in order, one call at a time; emit
// must not keep the snapshot, whose histograms go back to metrics' pool when it returns), and
// returns when all have exited. Cancelling ctx asks every worker to stop gracefully (SIGTERM);
// closing abort asks them to cut in-flight work (a second SIGTERM). A worker that dies without
// finishing is reported (which, when, exit status), the others are stopped gracefully, and
// everything measured so far is kept. So is a worker that ends its segment early, interrupted or
// cut, when Run did not ask it to: it was stopped from outside (a SIGTERM of its own, an OOM
// killer's or an operator's), which its graceful stop cannot tell from Run's. The others are
// stopped then too: a run missing one segment's load is not the plan's run, and carrying on would
// only measure more of it. Workers run in their own process group, so a terminal's
// Ctrl-C reaches only the coordinator, which forwards it once; Pdeathsig kills them if the
// coordinator dies.
//
// With tm.Handshake, a run that ends before its start (a worker failed before it was ready,
// ctx was cancelled, or the ready bound passed) closes every worker's stdin and stops them; the
// workers that were only told to stop are not failures of their own, and are not reported.
func Run(ctx context.Context, abort <-chan struct{}, specs []WorkerSpec, emit func(*metrics.Snapshot), stderr io.Writer, tm Timing) (*RunResult, error) {
	s := newSupervisor(ctx, abort, len(specs), emit, tm)
	if err := s.start(specs, stderr); err != nil {
		return nil, err
	}
	var wg sync.WaitGroup
	for i, w := range s.workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.read(i, w)
		}()
	}
	supervised := make(chan struct{})
	go func() {
		defer close(supervised)
		s.supervise()
	}()
	wg.Wait()
	close(s.allDone)
	<-supervised
	s.collect()
	return s.res, s.mergeErr
}

// supervisor is one Run: its states are start (the processes), read (one per worker: its messages,
// then its end), handshake (the start instant, with Timing.Handshake), supervise (stops, failures,
// the deadline) and collect (the merged result).
type supervisor struct {
	ctx     context.Context
	abort   <-chan struct{}
	tm      Timing
	res     *RunResult
	merger  *Merger
	workers []*worker
	// mergeErr is the first merge failure; written by the merger's emit, one call at a time, and
	// read after every reader has finished.
	mergeErr error

	mu     sync.Mutex // guards res.Failures, nReady, calledOff, readyTimedOut, asked
	nReady int
	// calledOff: the run ended before its start, and every worker was told to stop;
	// readyTimedOut: because the ready bound passed.
	calledOff, readyTimedOut bool
	// asked: Run has told the workers to stop (signal or kill); a segment that ends interrupted or
	// cut before that was stopped by someone else.
	asked bool

	allReady chan struct{} // every worker is ready (Timing.Handshake)
	failed   chan struct{} // a worker failed
	failOnce sync.Once
	// gaveUp: a worker gave up on an unreachable target; the others stop as on a failure, but
	// it is no failure of a worker.
	gaveUp     chan struct{}
	gaveUpOnce sync.Once
	allDone    chan struct{} // every reader has finished: every worker has exited
	startedAt  time.Time     // the handshake's start instant; read after supervise returns
}

func newSupervisor(ctx context.Context, abort <-chan struct{}, n int, emit func(*metrics.Snapshot), tm Timing) *supervisor {
	if tm.StartMargin <= 0 {
		tm.StartMargin = DefaultStartMargin
	}
	if tm.ReadyWithin <= 0 {
		tm.ReadyWithin = DefaultReadyWithin
	}
	s := &supervisor{ctx: ctx, abort: abort, tm: tm, res: &RunResult{Total: metrics.NewSnapshot(), Ending: Ending{Start: time.Now()}},
		allReady: make(chan struct{}), failed: make(chan struct{}), gaveUp: make(chan struct{}), allDone: make(chan struct{})}
	s.merger = NewMerger(n, func(snap *metrics.Snapshot) {
		if err := s.res.Total.Add(snap); err != nil && s.mergeErr == nil {
			s.mergeErr = err
		}
		emit(snap)
		snap.Release()
	})
	return s
}

// start starts every worker in its own process group; on a failure it kills those started.
func (s *supervisor) start(specs []WorkerSpec, stderr io.Writer) error {
	s.workers = make([]*worker, 0, len(specs))
	var stderrMu sync.Mutex // stderr need not be safe for concurrent use
	for _, sp := range specs {
		cmd := exec.Command(sp.Path, sp.Args...)
		cmd.Env = sp.Env
		cmd.Stderr = &prefixWriter{mu: &stderrMu, w: stderr, prefix: "[" + sp.Label + "] "}
		cmd.SysProcAttr = procAttr()
		w := &worker{spec: sp, cmd: cmd}
		var err error
		w.out, err = cmd.StdoutPipe()
		if err == nil && s.tm.Handshake {
			w.in, err = cmd.StdinPipe()
		}
		if err == nil {
			err = cmd.Start()
		}
		if err != nil {
			for _, w := range s.workers {
				w.cmd.Process.Kill()
				w.cmd.Wait()
			}
			return fmt.Errorf("starting %s: %w", sp.Label, err)
		}
		s.workers = append(s.workers, w)
	}
	return nil
}

// read takes worker i's messages until its output ends, waits for it, and reports it when it
// failed.
func (s *supervisor) read(i int, w *worker) {
	rerr := Read(w.out, func(m Message) error { return s.message(i, w, m) })
	if rerr != nil {
		w.msg = rerr.Error()
		io.Copy(io.Discard, w.out) // let the worker finish writing
	}
	werr := w.cmd.Wait()
	s.merger.Finish(i)
	if f, failed := s.ended(w, werr, rerr); failed {
		s.fail(w, f)
	}
}

// message takes one message of worker i.
func (s *supervisor) message(i int, w *worker, m Message) error {
	switch {
	case m.Snapshot != nil:
		err := s.merger.Add(i, m.Snapshot)
		m.Snapshot.Release() // combined into the merger's interval (or refused): decoded for this only
		return err
	case m.Done != nil:
		w.done = m.Done
		if m.Done.Unreachable != nil {
			s.gaveUpOnce.Do(func() { close(s.gaveUp) })
		}
	case m.Ready:
		if !s.tm.Handshake || w.ready {
			return fmt.Errorf("worker protocol: unexpected ready")
		}
		w.ready = true
		s.mu.Lock()
		if s.nReady++; s.nReady == len(s.workers) {
			close(s.allReady)
		}
		s.mu.Unlock()
	default:
		w.msg = m.Error
	}
	return nil
}

// ended judges how w ended: a failure unless it finished its segment, or was stopped when asked.
func (s *supervisor) ended(w *worker, werr, rerr error) (report.WorkerFailure, bool) {
	status := "exited before finishing its segment"
	if w.done != nil && werr == nil && rerr == nil {
		s.mu.Lock()
		unasked := !s.asked && (w.done.Interrupted || w.done.Aborted)
		s.mu.Unlock()
		if !unasked {
			return report.WorkerFailure{}, false
		}
		status = "stopped early without being asked"
		if w.msg == "" {
			w.msg = "its segment ended interrupted, but the coordinator sent no stop: a signal from outside (SIGTERM, SIGINT)?"
		}
	} else if werr != nil {
		status = werr.Error()
	}
	return report.WorkerFailure{
		Worker: w.spec.Label, PID: w.cmd.Process.Pid, AtS: time.Since(s.res.Start).Seconds(),
		Status: status, Message: w.msg,
	}, true
}

// fail records f, unless the run was called off before its start and w was only told to stop.
func (s *supervisor) fail(w *worker, f report.WorkerFailure) {
	s.mu.Lock()
	switch {
	case s.calledOff && s.readyTimedOut && !w.ready:
		f.Message = strings.TrimSuffix(fmt.Sprintf("not ready within %v; %s", s.tm.ReadyWithin, f.Message), "; ")
	case s.calledOff:
		s.mu.Unlock()
		return
	}
	s.res.Failures = append(s.res.Failures, f)
	s.mu.Unlock()
	s.failOnce.Do(func() { close(s.failed) })
}

// signal asks every worker to stop (SIGTERM): the first is the graceful stop, a second the cut.
func (s *supervisor) signal() {
	s.mu.Lock()
	s.asked = true
	s.mu.Unlock()
	for _, w := range s.workers {
		w.cmd.Process.Signal(syscall.SIGTERM) // an exited worker just returns an error
	}
}

func (s *supervisor) kill() {
	s.mu.Lock()
	s.asked = true
	s.mu.Unlock()
	for _, w := range s.workers {
		w.cmd.Process.Kill() // an exited worker just returns an error
	}
}

// callOff ends a run before its start: the flag first, so that no worker told to stop is
// reported as a failure of its own; then EOF on stdin for workers waiting there.
func (s *supervisor) callOff(timedOut bool) {
	s.mu.Lock()
	s.calledOff, s.readyTimedOut = true, timedOut
	s.mu.Unlock()
	for _, w := range s.workers {
		w.in.Close()
	}
}

// handshake waits for every worker's ready and sends them all one start instant; false when
// the run ended before it.
func (s *supervisor) handshake() (time.Time, bool) {
	bound := time.NewTimer(s.tm.ReadyWithin)
	defer bound.Stop()
	select {
	case <-s.allReady:
		if s.tm.Ready != nil {
			pids := make([]int, len(s.workers))
			for i, w := range s.workers {
				pids[i] = w.cmd.Process.Pid
			}
			s.tm.Ready(pids)
		}
		start := time.Now().Add(s.tm.StartMargin)
		for _, w := range s.workers {
			WriteStart(w.in, start) // a worker that has just died is reported by its reader
			w.in.Close()
		}
		return start, true
	case <-bound.C:
		s.callOff(true)
		s.kill()
		return time.Time{}, false
	case <-s.failed:
	case <-s.ctx.Done():
	case <-s.abort:
	case <-s.allDone: // every worker ended on its own, none failing: nothing to start
		return time.Time{}, false
	}
	s.callOff(false)
	s.signal()
	// Workers still setting up may not look at stdin for a while: the ready bound still holds.
	select {
	case <-bound.C:
		s.kill()
	case <-s.allDone:
	}
	return time.Time{}, false
}

// supervise runs the handshake (with Timing.Handshake), then stops the workers on ctx, a failure,
// a give-up or abort, and kills them at the RunFor deadline, until every worker has exited.
func (s *supervisor) supervise() {
	start := s.res.Start
	if s.tm.Handshake {
		var ok bool
		if start, ok = s.handshake(); !ok {
			return
		}
		s.startedAt = start
	}
	var deadline <-chan time.Time
	if s.tm.RunFor > 0 {
		t := time.NewTimer(time.Until(start.Add(s.tm.RunFor)))
		defer t.Stop()
		deadline = t.C
	}
	stop, fail, cut, giveUp := s.ctx.Done(), (<-chan struct{})(s.failed), s.abort, (<-chan struct{})(s.gaveUp)
	stopped := false
	stopAll := func() {
		if stopped {
			return
		}
		stopped = true
		if s.tm.Handshake && time.Now().Before(start) {
			// Still before the start: as for callOff, the workers told to stop did not fail.
			s.mu.Lock()
			s.calledOff = true
			s.mu.Unlock()
		}
		s.signal()
	}
	for {
		select {
		case <-s.allDone:
			return
		case <-deadline:
			deadline = nil
			s.kill()
		case <-stop:
			stop, fail = nil, nil
			stopAll()
		case <-fail:
			stop, fail = nil, nil
			stopAll()
		case <-giveUp:
			giveUp = nil
			stopAll()
		case <-cut:
			// The first SIGTERM is the graceful stop (unless already sent), the second the cut.
			cut, stop, fail = nil, nil, nil
			stopAll()
			s.signal()
		}
	}
}

// collect puts the workers' ends together: the run's span (the earliest segment start), whether
// any was interrupted or cut, their port reports and the earliest give-up.
func (s *supervisor) collect() {
	res := s.res
	res.End = time.Now()
	if !s.startedAt.IsZero() {
		res.Start = s.startedAt
	}
	first := true
	for _, w := range s.workers {
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
		if u := w.done.Unreachable; u != nil && (res.Unreachable == nil || u.At.Before(res.Unreachable.At)) {
			res.Unreachable = u
		}
	}
	if s.ctx.Err() != nil {
		res.Interrupted = true
	}
}

// prefixWriter labels every line a worker writes to stderr.
type prefixWriter struct {
	mu     *sync.Mutex // shared by every worker's prefixWriter on one w
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
