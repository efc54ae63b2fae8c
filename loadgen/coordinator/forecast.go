package coordinator

import (
	"context"
	"fmt"

	"github.com/portstorm/portstorm/loadgen/dial"
	"github.com/portstorm/portstorm/loadgen/plan"
	"github.com/portstorm/portstorm/loadgen/preflight"
	"github.com/portstorm/portstorm/loadgen/spec"
)

// Forecast is the preflight of p on host h as run makes it, before any target starts (portstorm
// doctor shows it): the same process layout as run's (workers: auto included), so that the
// open-files limit is judged per process as run will start them; the built-in target's listeners
// are counted but their ports are not known yet. why is the layout as run prints it. env is the
// environment portstorm was given (a GOMAXPROCS there is kept by every process).
func Forecast(p *plan.Plan, h preflight.Host, env []string) (f *preflight.Forecast, why string, err error) {
	lay := spec.PlanLayout(p, h, procsSet(env))
	load := spec.Preflight(p)
	in := preflight.Inputs{Loopback: true, Workers: lay.Workers, TargetProcesses: lay.Targets}
	if b := p.Target.Builtin; b != nil {
		for i := range max(b.Listeners, 1) {
			in.Destinations = append(in.Destinations, fmt.Sprintf("127.0.0.1:<listener %d>", i+1))
		}
	} else {
		dsts, err := dial.Resolve(context.Background(), nil, p.Target.Addresses, true)
		if err != nil {
			return nil, "", err
		}
		for _, d := range dsts {
			in.Destinations = append(in.Destinations, d.String())
			in.Loopback = in.Loopback && dial.IsLoopback(d.AddrPort.Addr())
		}
	}
	if !p.Isolate || h.Isolated { // a fresh namespace holds nothing yet: no census of the host's
		r, _ := preflight.EffectiveRange(load, h, in)
		if l, held, err := preflight.Census(r.Lo, r.Hi, load.Sources); err == nil {
			in.ListenersInRange, in.HeldAtStart = l, held
		}
	}
	return preflight.Plan(load, h, in), lay.Why, nil
}
