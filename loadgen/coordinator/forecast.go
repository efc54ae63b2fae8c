package coordinator

import (
	"context"
	"fmt"
	"os"

	"github.com/portstorm/portstorm/loadgen/dial"
	"github.com/portstorm/portstorm/loadgen/plan"
	"github.com/portstorm/portstorm/loadgen/preflight"
)

// Forecast is the preflight of p on host h as run makes it, before any target starts (portstorm
// doctor shows it): the same process layout as run's (workers: auto included), so that the
// open-files limit is judged per process as run will start them; the built-in target's listeners
// are counted but their ports are not known yet. why is the layout as run prints it.
func Forecast(p *plan.Plan, h preflight.Host) (f *preflight.Forecast, why string, err error) {
	lay := planLayout(p, h, os.Getenv("GOMAXPROCS") != "")
	in := preflight.Inputs{Loopback: true, Workers: lay.workers, TargetProcesses: lay.targets}
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
		r, _ := preflight.EffectiveRange(p, h, in)
		srcs, _ := p.Source.SourceAddrs()
		if l, held, err := preflight.Census(r.Lo, r.Hi, srcs); err == nil {
			in.ListenersInRange, in.HeldAtStart = l, held
		}
	}
	return preflight.Plan(p, h, in), lay.why, nil
}
