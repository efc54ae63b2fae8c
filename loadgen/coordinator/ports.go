package coordinator

import (
	"fmt"
	"net"
	"net/netip"
	"strings"

	"github.com/portstorm/portstorm/loadgen/dial"
	"github.com/portstorm/portstorm/loadgen/plan"
	"github.com/portstorm/portstorm/loadgen/ports"
	"github.com/portstorm/portstorm/loadgen/preflight"
	"github.com/portstorm/portstorm/target"
)

// portRun is the port side of a run: the preflight forecast, source-address pairs, the strategy's
// dialer and the observatory.
type portRun struct {
	p        *plan.Plan
	host     preflight.Host
	forecast *preflight.Forecast
	obs      *ports.Observatory
	dialer   dial.Dialer
	warnings []string
	// workers and targetProcs are the run's process layout, for the open-files forecast.
	workers, targetProcs int
	// tls is the built-in target's certificate, when it serves TLS.
	tls *builtinTLS
	// segmentOnly is set in a worker process: the coordinator already checked the whole plan, and a
	// segment is not judged against the whole plan's demand.
	segmentOnly bool
}

func newPortRun(p *plan.Plan) *portRun {
	return &portRun{p: p, host: preflight.ReadHost()}
}

// layout decides the run's processes and keeps the counts the open-files forecast needs.
func (r *portRun) layout(procsSet bool) layout {
	l := planLayout(r.p, r.host, procsSet)
	r.workers, r.targetProcs = l.workers, l.targets
	return l
}

// close removes what the run made on disk for the built-in target.
func (r *portRun) close() { r.tls.close() }

// builtinTarget is the built-in target's configuration from the plan: one ephemeral loopback
// listener per target.builtin.listeners, plus what the port side needs (targetConfig).
func (r *portRun) builtinTarget() (target.Config, error) {
	b := r.p.Target.Builtin
	mode, err := target.ParseMode(b.Mode)
	if err != nil {
		return target.Config{}, fmt.Errorf("%w: target.builtin.mode: %w", ErrInvalid, err)
	}
	addr := b.Address
	if addr == "" {
		addr = "127.0.0.1"
	}
	listen := make([]string, max(b.Listeners, 1))
	for i := range listen {
		listen[i] = net.JoinHostPort(addr, "0")
	}
	cfg := target.Config{
		Listen: listen, Mode: mode, IdleTimeout: b.IdleTimeout.D(), MaxFrame: int(b.MaxFrame), MaxConns: b.MaxConns,
		HTTPStatus: b.HTTPStatus, HeaderTimeout: b.HeaderTimeout.D(),
	}
	if b.TLS {
		if r.tls == nil {
			if r.tls, err = newBuiltinTLS(addr); err != nil {
				return target.Config{}, fmt.Errorf("%w: %w", ErrCannotRun, err)
			}
		}
		if cfg.TLS, err = target.TLSConfig(r.tls.certPEM, r.tls.keyPEM); err != nil {
			return target.Config{}, fmt.Errorf("%w: %w", ErrCannotRun, err)
		}
	}
	return r.targetConfig(cfg)
}

// targetConfig adds to the built-in target's configuration what the port side needs: listeners
// kept below the client's port range (a listening port inside it is a port no client can use), and
// the target's side of close: server (it closes first, after answering).
func (r *portRun) targetConfig(c target.Config) (target.Config, error) {
	sys := preflight.SysctlRange(r.p, r.host)
	below := sys.Lo
	if w := preflight.PortWindow(r.p); w.Lo > 0 && int(w.Lo) < below {
		below = int(w.Lo)
	}
	c.PortBelow = below
	if r.p.Connection.Close == "server" {
		c.CloseFirst = true
		if s := r.p.Connection.Send; s != nil {
			n, err := s.RequestBytes()
			if err != nil {
				return c, fmt.Errorf("%w: %w", ErrInvalid, err)
			}
			c.CloseAfter = n * int64(s.Count)
		}
	}
	return c, nil
}

// setup checks the plan against the host (refusing what cannot be carried out), pairs every
// destination with the source addresses of its family, and builds the dialer and the observatory.
// override is the caller's dialer (tests), or nil.
func (r *portRun) setup(dsts []dial.Destination, override dial.Dialer) ([]dial.Destination, error) {
	p := r.p
	strategy, err := dial.ParseStrategy(p.Source.Ports.Strategy)
	if err != nil {
		return nil, fmt.Errorf("%w: source.ports.strategy: %w", ErrInvalid, err)
	}
	sources, err := p.Source.SourceAddrs()
	if err != nil {
		return nil, fmt.Errorf("%w: source.addresses: %w", ErrInvalid, err)
	}
	if err := preflight.CheckSources(sources); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCannotRun, err)
	}
	if w := preflight.PortWindow(p); strategy == dial.StrategyRange {
		if err := preflight.ProbePortRange(w.Lo, w.Hi); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrCannotRun, err)
		}
	}
	in := preflight.Inputs{Loopback: true, Workers: r.workers, TargetProcesses: r.targetProcs}
	for _, d := range dsts {
		in.Destinations = append(in.Destinations, d.String())
		in.Loopback = in.Loopback && dial.IsLoopback(d.AddrPort.Addr())
	}
	// The census reads the range the forecast will use; a first forecast gives it.
	f0 := preflight.Plan(p, r.host, in)
	if f0.Range.Size > 0 {
		l, h, err := preflight.Census(f0.Range.Lo, f0.Range.Hi, sources)
		if err == nil {
			in.ListenersInRange, in.HeldAtStart = l, h
		}
	}
	f := preflight.Plan(p, r.host, in)
	r.forecast = f
	if f.Refuse && !r.segmentOnly {
		var b strings.Builder
		f.WriteText(&b, p.Name)
		return nil, fmt.Errorf("%w: the preflight refuses the plan (portstorm doctor shows the same):%s", ErrCannotRun, indent(b.String()))
	}
	r.warnings = append(r.warnings, f.Warnings...)

	// Pair every destination with each source address of its family, round-robin over the pairs.
	pairs := dsts
	if len(sources) > 0 {
		pairs = nil
		used := make(map[netip.Addr]bool)
		for _, s := range sources {
			for _, d := range dsts {
				if s.Is4() == d.AddrPort.Addr().Is4() {
					pairs = append(pairs, d.From(s))
					used[s] = true
				}
			}
		}
		for _, d := range dsts {
			if !hasFamily(sources, d.AddrPort.Addr()) {
				return nil, fmt.Errorf("%w: destination %s: no source address of its family in source.addresses", ErrInvalid, d)
			}
		}
		for _, s := range sources {
			if !used[s] {
				r.warnings = append(r.warnings, fmt.Sprintf("source address %s is not used: no destination of its address family", s))
			}
		}
	}

	if override != nil {
		r.dialer = override
	} else {
		d, err := dial.New(dial.Options{ConnectTimeout: p.Connection.ConnectTimeout.D(), Strategy: strategy, Window: f.Window})
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
		}
		r.dialer = d
	}
	cfg := ports.Config{
		Strategy: strategy, Range: f.Range, Capacity: f.Capacity, TWReuseDelay: f.TWReuseDelay, TWReuse: r.host.TWReuse,
		ClientHoldsTW: p.Connection.Close == "fin" || p.Connection.Close == "half",
		Interval:      p.Output.Interval.D(),
	}
	for _, d := range dsts {
		cfg.Destinations = append(cfg.Destinations, d.AddrPort)
	}
	r.obs = ports.New(cfg)
	r.obs.Baseline()
	return pairs, nil
}

func hasFamily(as []netip.Addr, a netip.Addr) bool {
	for _, s := range as {
		if s.Is4() == a.Is4() {
			return true
		}
	}
	return false
}

func indent(s string) string {
	return "\n  " + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n  ")
}

// sample is the interval's port figures for the timeline (nil without an observatory).
func (r *portRun) sample() *ports.Sample {
	if r == nil || r.obs == nil {
		return nil
	}
	s := r.obs.Sample()
	return &s
}

// report is summary.json's ports, with the run's port warnings.
func (r *portRun) report() *ports.Report {
	if r == nil || r.obs == nil {
		return nil
	}
	rep := r.obs.Report()
	rep.Warnings = append(r.warnings, rep.Warnings...)
	return rep
}
