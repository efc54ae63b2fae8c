package coordinator

import (
	"context"
	"fmt"

	"github.com/portstorm/portstorm/loadgen/dial"
	"github.com/portstorm/portstorm/loadgen/preflight"
	"github.com/portstorm/portstorm/loadgen/spec"
)

// Forecast is the preflight of s on its host (s.Host) as run makes it, before any target starts
// (portstorm doctor shows it): the same process layout as run's (workers: auto included), so that
// the open-files limit is judged per process as run will start them; the built-in target's
// listeners are counted but their ports are not known yet. why is the layout as run prints it.
func Forecast(s *spec.Spec) (f *preflight.Forecast, why string, err error) {
	h, lay := s.Host, s.Layout
	in := preflight.Inputs{Loopback: true, Workers: lay.Workers, TargetProcesses: lay.Targets}
	if t := s.Target; t != nil {
		for i := range t.Config.Listen {
			in.Destinations = append(in.Destinations, fmt.Sprintf("127.0.0.1:<listener %d>", i+1))
		}
	} else {
		dsts, err := dial.Resolve(context.Background(), nil, s.Addresses, true)
		if err != nil {
			return nil, "", err
		}
		for _, d := range dsts {
			in.Destinations = append(in.Destinations, d.String())
			in.Loopback = in.Loopback && dial.IsLoopback(d.AddrPort.Addr())
		}
	}
	if s.Isolate == nil || h.Isolated { // a fresh namespace holds nothing yet: no census of the host's
		r, _ := preflight.EffectiveRange(s.Preflight, h, in)
		if l, held, err := preflight.Census(r.Lo, r.Hi, s.Sources); err == nil {
			in.ListenersInRange, in.HeldAtStart = l, held
		}
	}
	return preflight.Plan(s.Preflight, h, in), lay.Why, nil
}
