package coordinator

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/portstorm/portstorm/loadgen/dial"
	"github.com/portstorm/portstorm/loadgen/ports"
	"github.com/portstorm/portstorm/loadgen/preflight"
	"github.com/portstorm/portstorm/loadgen/spec"
	"github.com/portstorm/portstorm/target"
)

// portRun is the port side of a run: the preflight forecast, source-address pairs, the strategy's
// dialer and the observatory.
type portRun struct {
	s        *spec.Spec
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

func newPortRun(s *spec.Spec) *portRun {
	return &portRun{s: s, host: s.Host, workers: s.Layout.Workers, targetProcs: s.Layout.Targets}
}

// close removes what the run made on disk for the built-in target.
func (r *portRun) close() { r.tls.close() }

// builtinTarget is the built-in target's configuration from the spec, with its certificate made
// for this run when it serves TLS.
func (r *portRun) builtinTarget() (target.Config, error) {
	t := r.s.Target
	cfg := t.Config
	cfg.Listen = slices.Clone(cfg.Listen)
	if t.TLS {
		var err error
		if r.tls == nil {
			if r.tls, err = newBuiltinTLS(t.Address); err != nil {
				return target.Config{}, fmt.Errorf("%w: %w", ErrCannotRun, err)
			}
		}
		if cfg.TLS, err = target.TLSConfig(r.tls.certPEM, r.tls.keyPEM); err != nil {
			return target.Config{}, fmt.Errorf("%w: %w", ErrCannotRun, err)
		}
	}
	return cfg, nil
}

// setup checks the plan against the host (refusing what cannot be carried out), pairs every
// destination with the source addresses of its family, and builds the dialer and the observatory.
// override is the caller's dialer (tests), or nil.
func (r *portRun) setup(dsts []dial.Destination, override dial.Dialer) ([]dial.Destination, error) {
	s := r.s
	sources := s.Sources
	if err := preflight.CheckSources(sources); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCannotRun, err)
	}
	if s.Strategy == dial.StrategyRange {
		if err := preflight.ProbePortRange(s.Window.Lo, s.Window.Hi); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrCannotRun, err)
		}
	}
	in := preflight.Inputs{Loopback: true, Workers: r.workers, TargetProcesses: r.targetProcs}
	for _, d := range dsts {
		in.Destinations = append(in.Destinations, d.String())
		in.Loopback = in.Loopback && dial.IsLoopback(d.AddrPort.Addr())
	}
	// The census reads the range the forecast will use.
	if rng, _ := preflight.EffectiveRange(s.Preflight, r.host, in); rng.Size > 0 {
		l, h, err := preflight.Census(rng.Lo, rng.Hi, sources)
		if err == nil {
			in.ListenersInRange, in.HeldAtStart = l, h
		}
	}
	f := preflight.Plan(s.Preflight, r.host, in)
	r.forecast = f
	if f.Refuse && !r.segmentOnly {
		var b strings.Builder
		f.WriteText(&b, s.Name)
		return nil, &Refused{Forecast: f,
			err: fmt.Errorf("%w: the preflight refuses the plan (portstorm doctor shows the same):%s", ErrCannotRun, indent(b.String()))}
	}
	r.warnings = append(r.warnings, f.Warnings...)

	// Pair every destination with each source address of its family, round-robin over the pairs.
	pairs := dsts
	if len(sources) > 0 {
		pairs = nil
		used := make(map[netip.Addr]bool)
		for _, src := range sources {
			for _, d := range dsts {
				if src.Is4() == d.AddrPort.Addr().Is4() {
					pairs = append(pairs, d.From(src))
					used[src] = true
				}
			}
		}
		for _, d := range dsts {
			if !hasFamily(sources, d.AddrPort.Addr()) {
				return nil, fmt.Errorf("%w: destination %s: no source address of its family in source.addresses", ErrInvalid, d)
			}
		}
		for _, src := range sources {
			if !used[src] {
				r.warnings = append(r.warnings, fmt.Sprintf("source address %s is not used: no destination of its address family", src))
			}
		}
	}

	if override != nil {
		r.dialer = override
	} else {
		d, err := dial.New(dial.Options{ConnectTimeout: s.ConnectTimeout, Strategy: s.Strategy, Window: f.Window})
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
		}
		r.dialer = d
	}
	cfg := ports.Config{
		Strategy: s.Strategy, Range: f.Range, Capacity: f.Capacity, TWReuseDelay: f.TWReuseDelay, TWReuse: r.host.TWReuse,
		ClientHoldsTW: s.Close.ClientHoldsTimeWait(),
		Interval:      s.Interval,
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
