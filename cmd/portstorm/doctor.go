package main

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/portstorm/portstorm/loadgen/dial"
	"github.com/portstorm/portstorm/loadgen/plan"
	"github.com/portstorm/portstorm/loadgen/preflight"
)

// doctorCmd shows the host's limits and, for a plan, the capacity forecast that run checks before
// starting. Exit 0 when the plan can be carried out, 3 when run would refuse it, 2 for a bad plan.
func doctorCmd(e *env) *cobra.Command {
	var pf planFlags
	c := &cobra.Command{
		Use:   "doctor [PLAN]",
		Short: "Show the host's connection limits and, for a plan, how far it can go and what stops it (exit 3 when run would refuse it)",
		Args: func(c *cobra.Command, args []string) error {
			if len(args) > 1 {
				return exitWith(exitInvalid, fmt.Errorf("doctor takes at most one plan, got %d arguments\nusage: %s", len(args), c.UseLine()))
			}
			return nil
		},
		RunE: func(c *cobra.Command, args []string) error {
			host := preflight.ReadHost()
			preflight.WriteHost(e.stdout, host)
			if len(args) == 0 {
				return nil
			}
			p, err := pf.loadPlan(e, args[0])
			if err != nil {
				return err
			}
			f, err := forecast(p, host)
			if err != nil {
				return exitWith(exitInvalid, err)
			}
			f.WriteText(e.stdout, p.Name)
			if srcs, _ := p.Source.SourceAddrs(); len(srcs) > 0 && !p.Isolate {
				if err := preflight.CheckSources(srcs); err != nil {
					return exitWith(exitCannotRun, err)
				}
			}
			if w := preflight.PortWindow(p); p.Source.Ports.Strategy == "range" {
				if err := preflight.ProbePortRange(w.Lo, w.Hi); err != nil {
					return exitWith(exitCannotRun, err)
				}
			}
			if f.Refuse {
				return exitWith(exitCannotRun, fmt.Errorf("run would refuse %s", args[0]))
			}
			return nil
		},
	}
	pf.add(c)
	return c
}

// forecast runs the preflight on the plan as run would, before any target starts: the built-in
// target's listeners are counted but their ports are not known yet.
func forecast(p *plan.Plan, host preflight.Host) (*preflight.Forecast, error) {
	in := preflight.Inputs{Loopback: true}
	if b := p.Target.Builtin; b != nil {
		for i := range max(b.Listeners, 1) {
			in.Destinations = append(in.Destinations, fmt.Sprintf("127.0.0.1:<listener %d>", i+1))
		}
	} else {
		dsts, err := dial.Resolve(context.Background(), nil, p.Target.Addresses, true)
		if err != nil {
			return nil, err
		}
		for _, d := range dsts {
			in.Destinations = append(in.Destinations, d.String())
			in.Loopback = in.Loopback && dial.IsLoopback(d.AddrPort.Addr())
		}
	}
	f := preflight.Plan(p, host, in)
	if !p.Isolate || host.Isolated { // a fresh namespace holds nothing yet: no census of the host's
		srcs, _ := p.Source.SourceAddrs()
		if l, h, err := preflight.Census(f.Range.Lo, f.Range.Hi, srcs); err == nil {
			in.ListenersInRange, in.HeldAtStart = l, h
			f = preflight.Plan(p, host, in)
		}
	}
	return f, nil
}
