package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/portstorm/portstorm/loadgen/coordinator"
	"github.com/portstorm/portstorm/loadgen/dial"
	"github.com/portstorm/portstorm/loadgen/preflight"
	"github.com/portstorm/portstorm/loadgen/spec"
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
			host := preflight.ReadHost(e.environ)
			preflight.WriteHost(e.stdout, host)
			if len(args) == 0 {
				return nil
			}
			p, err := pf.loadPlan(e, args[0])
			if err != nil {
				return err
			}
			facts := coordinator.Facts(e.environ)
			facts.Host = host
			s, err := spec.Compile(p, facts)
			if err != nil {
				return exitWith(exitInvalid, fmt.Errorf("%w: %w", coordinator.ErrInvalid, err))
			}
			f, layout, err := coordinator.Forecast(s)
			if err != nil {
				return exitWith(exitInvalid, err)
			}
			fmt.Fprintf(e.stdout, "processes           %s\n", layout)
			f.WriteText(e.stdout, s.Name)
			if len(s.Sources) > 0 && s.Isolate == nil {
				if err := preflight.CheckSources(s.Sources); err != nil {
					return exitWith(exitCannotRun, err)
				}
			}
			if w := s.Window; s.Strategy == dial.StrategyRange {
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
