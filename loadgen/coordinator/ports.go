package coordinator

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/portstorm/portstorm/loadgen/dial"
	"github.com/portstorm/portstorm/loadgen/ports"
	"github.com/portstorm/portstorm/loadgen/preflight"
	"github.com/portstorm/portstorm/loadgen/spec"
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
	// segmentOnly is set in a worker process: the coordinator already checked the whole plan, and a
	// segment is not judged against the whole plan's demand.
	segmentOnly bool
}

func newPortRun(s *spec.Spec) *portRun {
	return &portRun{s: s, host: s.Host, workers: s.Layout.Workers, targetProcs: s.Layout.Targets}
}

// setup checks the spec against the host (refusing what cannot be carried out), pairs every
// destination with the source addresses of its family, and builds the dialer and the observatory.
// override is the caller's dialer (tests), or nil.
func (r *portRun) setup(dsts []dial.Destination, override dial.Dialer) ([]dial.Destination, error) {
	if err := r.checkHost(); err != nil {
		return nil, err
	}
	f, err := r.preflight(dsts)
	if err != nil {
		return nil, err
	}
	pairs, err := r.pair(dsts)
	if err != nil {
		return nil, err
	}
	if r.dialer = override; r.dialer == nil {
		d, err := dial.New(dial.Options{ConnectTimeout: r.s.ConnectTimeout, Strategy: r.s.Strategy, Window: f.Window})
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
		}
		r.dialer = d
	}
	r.observe(dsts, f)
	return pairs, nil
}

// checkHost checks that the source addresses are this host's and, under the range strategy, that
// the kernel binds inside the window.
func (r *portRun) checkHost() error {
	if err := preflight.CheckSources(r.s.Sources); err != nil {
		return err
	}
	if r.s.Strategy == dial.StrategyRange {
		if err := preflight.ProbePortRange(r.s.Window.Lo, r.s.Window.Hi); err != nil {
			return err
		}
	}
	return nil
}

// preflight forecasts the spec against the host for dsts, with a census of the sockets already in
// the port range, and refuses what cannot be carried out (unless segmentOnly).
func (r *portRun) preflight(dsts []dial.Destination) (*preflight.Forecast, error) {
	s := r.s
	in := preflight.Inputs{Loopback: true, Workers: r.workers, TargetProcesses: r.targetProcs}
	for _, d := range dsts {
		in.Destinations = append(in.Destinations, d.String())
		in.Loopback = in.Loopback && dial.IsLoopback(d.AddrPort.Addr())
	}
	// The census reads the range the forecast will use.
	if rng, _ := preflight.EffectiveRange(s.Preflight, r.host, in); rng.Size > 0 {
		l, h, err := preflight.Census(rng.Lo, rng.Hi, s.Sources)
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
			err: fmt.Errorf("the preflight refuses the plan (portstorm doctor shows the same):%s", indent(b.String()))}
	}
	r.warnings = append(r.warnings, f.Warnings...)
	return f, nil
}

// pair pairs every destination with each source address of its family, round-robin over the
// pairs (dsts as they are without source addresses).
func (r *portRun) pair(dsts []dial.Destination) ([]dial.Destination, error) {
	sources := r.s.Sources
	if len(sources) == 0 {
		return dsts, nil
	}
	var pairs []dial.Destination
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
	return pairs, nil
}

// observe starts the port observatory for dsts as forecast by f, with its baseline of the
// kernel's counters.
func (r *portRun) observe(dsts []dial.Destination, f *preflight.Forecast) {
	s := r.s
	cfg := ports.Config{
		Strategy: s.Strategy, Range: f.Range, Capacity: f.Capacity, TWReuseDelay: f.TWReuseDelay, TWReuse: r.host.TWReuse,
		ClientHoldsTW: s.Close.ClientHoldsTimeWait(),
		Interval:      s.Interval,
	}
	if r.workers > 1 {
		cfg.Share = 1 / float64(r.workers) // each worker process its part of the run's table budget
	}
	if s.Layout.Workers > 1 {
		// The coordinator of worker processes makes no connection: its observatory reads the
		// kernel counters (timeline.csv's kernel_ columns, the namespace's) but has no 4-tuple of
		// its own to find in TIME_WAIT, so it does not dump them (its dumps found none and the
		// timeline said 0); each worker samples its own (ports_by_host).
		cfg.NoSockDiag = true
	}
	for _, d := range dsts {
		cfg.Destinations = append(cfg.Destinations, d.AddrPort)
	}
	r.obs = ports.New(cfg)
	r.obs.Baseline()
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
