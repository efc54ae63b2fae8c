package coordinator

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"

	"github.com/portstorm/portstorm/target"
)

// targetProcs is the built-in target run as several `portstorm target` processes that share their
// listeners with SO_REUSEPORT, each under its own open-files limit; the kernel spreads connections
// over them.
type targetProcs struct {
	cmds  []*exec.Cmd
	outs  []*bufio.Scanner
	addrs []string
}

// targetMsg mirrors what `portstorm target --json` prints.
type targetMsg struct {
	Addrs []string      `json:"addrs"`
	Stats *target.Stats `json:"stats"`
}

func targetArgs(cfg target.Config, cert *builtinTLS, listen []string, first bool) []string {
	args := []string{"target", "--json", "--reuseport", "--mode", string(cfg.Mode),
		"--idle-timeout", cfg.IdleTimeout.String(), "--max-frame", strconv.Itoa(cfg.MaxFrame)}
	if cfg.HTTPStatus > 0 {
		args = append(args, "--http-status", strconv.Itoa(cfg.HTTPStatus))
	}
	if cert != nil {
		// Every process serves the run's one certificate, so clients trust them all alike.
		args = append(args, "--tls-cert", cert.certFile, "--tls-key", cert.keyFile)
	}
	if first && cfg.PortBelow > 0 {
		args = append(args, "--port-below", strconv.Itoa(cfg.PortBelow))
	}
	if cfg.MaxConns > 0 {
		args = append(args, "--max-conns", strconv.Itoa(cfg.MaxConns))
	}
	if cfg.CloseFirst {
		args = append(args, "--close-first", "--close-after", strconv.FormatInt(cfg.CloseAfter, 10))
	}
	for _, l := range listen {
		args = append(args, "--listen", l)
	}
	return args
}

// startTargetProcs starts n target processes: the first picks the ports, the others listen on the
// same addresses. Cancelling ctx while they start kills those started (their address lines are then
// never coming) and returns ctx's error.
func startTargetProcs(ctx context.Context, exe string, cfg target.Config, cert *builtinTLS, n, procs int, stderr io.Writer) (*targetProcs, error) {
	t := &targetProcs{}
	var mu sync.Mutex
	cancelled := false
	stop := context.AfterFunc(ctx, func() {
		mu.Lock()
		defer mu.Unlock()
		cancelled = true
		for _, c := range t.cmds {
			c.Process.Kill()
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
		cmd := exec.Command(exe, targetArgs(cfg, cert, listen, i == 0)...)
		cmd.Stderr = stderr
		cmd.Env = procsEnv(os.Environ(), procs)
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
		out, err := cmd.StdoutPipe()
		mu.Lock()
		if err == nil && cancelled {
			err = ctx.Err()
		}
		if err == nil {
			err = cmd.Start()
		}
		if err == nil {
			t.cmds = append(t.cmds, cmd)
		}
		mu.Unlock()
		if err != nil {
			return fail(fmt.Errorf("starting target process %d: %w", i+1, err))
		}
		sc := bufio.NewScanner(out)
		t.outs = append(t.outs, sc)
		var m targetMsg
		if !sc.Scan() || json.Unmarshal(sc.Bytes(), &m) != nil || len(m.Addrs) != len(cfg.Listen) {
			return fail(fmt.Errorf("target process %d did not report its addresses (see its messages above)", i+1))
		}
		if i == 0 {
			t.addrs = m.Addrs
		}
	}
	if !stop() {
		// ctx was cancelled after the last address line: the processes are being killed.
		return fail(ctx.Err())
	}
	return t, nil
}

func (t *targetProcs) kill() {
	for _, c := range t.cmds {
		c.Process.Kill()
		c.Wait()
	}
}

// stop ends every target process and adds up their counters. Peak becomes the sum of the
// processes' peaks, an upper bound of the true combined peak.
func (t *targetProcs) stop() (target.Stats, error) {
	var sum target.Stats
	var errs []error
	for _, c := range t.cmds {
		c.Process.Signal(syscall.SIGTERM)
	}
	for i, c := range t.cmds {
		var m targetMsg
		for t.outs[i].Scan() {
			if json.Unmarshal(t.outs[i].Bytes(), &m) == nil && m.Stats != nil {
				break
			}
		}
		if err := c.Wait(); err != nil || m.Stats == nil {
			errs = append(errs, fmt.Errorf("target process %d (pid %d) ended without its counters: %v", i+1, c.Process.Pid, err))
			continue
		}
		sum.Add(*m.Stats)
	}
	return sum, errors.Join(errs...)
}
