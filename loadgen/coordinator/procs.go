package coordinator

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"

	"github.com/portstorm/portstorm/loadgen/report"
	"github.com/portstorm/portstorm/loadgen/spec"
	"github.com/portstorm/portstorm/target"
)

// targetProcs is the built-in target run as several `portstorm target` processes that share their
// listeners with SO_REUSEPORT, each under its own open-files limit; the kernel spreads connections
// over them. A watcher per process reads its messages and waits for its end, so that a process
// that ends before it is asked to (killed, crashed) is known at once: died is closed then.
type targetProcs struct {
	procs []*targetProc
	addrs []string
	died  chan struct{} // closed when the first process ends unasked

	mu       sync.Mutex // guards stopping, diedSet
	stopping bool       // stop or kill was called: the processes' ends are asked for
	diedSet  bool
}

// targetProc is one target process and what its watcher saw.
type targetProc struct {
	cmd   *exec.Cmd
	addrs chan []string // its first message, the addresses it listens on
	ended chan struct{} // closed once it has exited and its output is read; the fields below are then set
	stats *target.Stats
	err   error     // its exit status
	at    time.Time // when it ended
	// unasked: it ended before stop or kill was called, and its counters since the last are lost.
	unasked bool
}

// targetInput is one target process's configuration: cfg listening on listen, sharing the
// listeners (SO_REUSEPORT), with the run's certificate; only the first picks its ports (below the
// clients' range), the others listen on the first's.
func targetInput(cfg target.Config, cert *builtinTLS, listen []string, first bool) ([]byte, error) {
	cfg.Listen, cfg.ReusePort, cfg.TLS = listen, true, nil
	if !first {
		cfg.PortBelow = 0
	}
	tp := spec.TargetProcess{Config: cfg}
	if cert != nil {
		tp.CertPEM, tp.KeyPEM = cert.certPEM, cert.keyPEM
	}
	return json.Marshal(tp)
}

// targetArgs start a target process that reads its configuration (targetInput) from stdin and
// reports on stdout.
var targetArgs = []string{"target", "--json", "--config-stdin"}

// startTargetProcs starts n target processes: the first picks the ports, the others listen on the
// same addresses. Cancelling ctx while they start kills those started (their address lines are then
// never coming) and returns ctx's error.
func startTargetProcs(ctx context.Context, exe string, cfg target.Config, cert *builtinTLS, n, procs int, env []string, stderr io.Writer) (*targetProcs, error) {
	t := &targetProcs{died: make(chan struct{})}
	var mu sync.Mutex
	cancelled := false
	stop := context.AfterFunc(ctx, func() {
		mu.Lock()
		defer mu.Unlock()
		cancelled = true
		for _, p := range t.procs {
			p.cmd.Process.Kill()
		}
	})
	defer stop()
	fail := func(err error) (*targetProcs, error) {
		stop()
		t.kill()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, err
	}
	for i := range n {
		listen := cfg.Listen
		if i > 0 {
			listen = t.addrs
		}
		in, err := targetInput(cfg, cert, listen, i == 0)
		if err != nil {
			return fail(fmt.Errorf("target process %d's configuration: %w", i+1, err))
		}
		cmd := exec.Command(exe, targetArgs...)
		cmd.Stdin = bytes.NewReader(in)
		cmd.Stderr = stderr
		cmd.Env = procsEnv(env, procs)
		cmd.SysProcAttr = procAttr()
		out, err := cmd.StdoutPipe()
		mu.Lock()
		if err == nil && cancelled {
			err = ctx.Err()
		}
		if err == nil {
			err = cmd.Start()
		}
		var p *targetProc
		if err == nil {
			p = &targetProc{cmd: cmd, addrs: make(chan []string, 1), ended: make(chan struct{})}
			t.procs = append(t.procs, p)
			go t.watch(p, out)
		}
		mu.Unlock()
		if err != nil {
			return fail(fmt.Errorf("starting target process %d: %w", i+1, err))
		}
		var addrs []string
		select {
		case addrs = <-p.addrs:
		case <-p.ended:
		}
		if len(addrs) != len(cfg.Listen) {
			return fail(fmt.Errorf("target process %d did not report its addresses (see its messages above)", i+1))
		}
		if i == 0 {
			t.addrs = addrs
		}
	}
	if !stop() {
		// ctx was cancelled after the last address line: the processes are being killed.
		return fail(ctx.Err())
	}
	return t, nil
}

// watch reads p's messages until its output ends, then waits for it. An end before stop or kill
// is a failure of the run's set-up: the connections that process held are reset, and its counters
// are lost.
func (t *targetProcs) watch(p *targetProc, out io.Reader) {
	defer close(p.ended)
	sc := bufio.NewScanner(out)
	sentAddrs := false
	for sc.Scan() {
		var m target.Message
		if json.Unmarshal(sc.Bytes(), &m) != nil {
			continue
		}
		switch {
		case !sentAddrs:
			p.addrs <- m.Addrs
			sentAddrs = true
		case m.Stats != nil:
			p.stats = m.Stats
		}
	}
	io.Copy(io.Discard, out) // a line too long for the scanner: let the process finish writing
	p.err = p.cmd.Wait()
	p.at = time.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	if p.unasked = !t.stopping; p.unasked && !t.diedSet {
		t.diedSet = true
		close(t.died)
	}
}

// endAll asks every process to end with sig and waits for them all.
func (t *targetProcs) endAll(sig os.Signal) {
	t.mu.Lock()
	t.stopping = true
	t.mu.Unlock()
	for _, p := range t.procs {
		p.cmd.Process.Signal(sig) // an exited process just returns an error
	}
	for _, p := range t.procs {
		<-p.ended
	}
}

func (t *targetProcs) kill() { t.endAll(syscall.SIGKILL) }

// stop ends every target process and adds up their counters. Peak becomes the sum of the
// processes' peaks, an upper bound of the true combined peak. A process that had already ended
// unasked, or that ended without its counters, is a failure (its time from start); the sum holds
// the others'.
func (t *targetProcs) stop(start time.Time) (target.Stats, []report.TargetFailure) {
	var sum target.Stats
	var fails []report.TargetFailure
	t.endAll(syscall.SIGTERM)
	for i, p := range t.procs {
		f := report.TargetFailure{Target: fmt.Sprintf("target process %d/%d", i+1, len(t.procs)), PID: p.cmd.Process.Pid,
			AtS: p.at.Sub(start).Seconds()}
		switch {
		case p.unasked:
			f.Status = "exited before it was asked to stop"
			if p.err != nil {
				f.Status = p.err.Error()
			}
			f.Message = "its connections were cut and its counters are lost; the run was stopped"
		case p.err != nil || p.stats == nil:
			f.Status = "ended without its counters"
			if p.err != nil {
				f.Status = p.err.Error()
			}
			f.Message = "its counters are lost"
		default:
			sum.Add(*p.stats)
			continue
		}
		fails = append(fails, f)
	}
	return sum, fails
}
