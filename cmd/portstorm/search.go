package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/portstorm/portstorm/loadgen/coordinator"
	"github.com/portstorm/portstorm/loadgen/report"
	"github.com/portstorm/portstorm/loadgen/search"
	"github.com/portstorm/portstorm/loadgen/spec"
)

// searchCmd is `portstorm search PLAN`: the capacity search of a plan's search: section
// (docs/search.md).
func searchCmd(e *env) *cobra.Command {
	var pf planFlags
	var out string
	var allowRemote, netns bool
	c := &cobra.Command{
		Use:   "search PLAN",
		Short: "Find the highest level the plan's thresholds hold at (exit 0 found, at least search.require; 1 not; 2 invalid; 3 could not search; 130 interrupted)",
		Args:  exactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			in := e.watchSignals()
			defer in.stop()
			if netns {
				pf.sets = append(pf.sets, "isolate=true")
			}
			p, err := pf.loadPlan(e, args[0])
			if err != nil {
				return err
			}
			if p.Search == nil {
				return exitWith(exitInvalid, fmt.Errorf("%s has no search: section; portstorm run runs it, or add one (docs/search.md)", args[0]))
			}
			if err := in.beforeRun(); err != nil {
				return err
			}
			s, done, err := e.isolated(in, c, args, p)
			if done {
				return err
			}
			return e.search(in, s, out, allowRemote)
		},
	}
	pf.add(c)
	c.Flags().StringVar(&out, "out", "", "results folder (default <output.dir>/<name>-search-<UTC time>)")
	c.Flags().BoolVar(&allowRemote, "allow-remote", false, "permit targets outside loopback (the plan must say target.allow_remote: true too)")
	c.Flags().BoolVar(&netns, "netns", false, "run generator and built-in target in a private network namespace (as isolate: true)")
	return c
}

func (e *env) search(in *interrupts, s *spec.Spec, out string, allowRemote bool) error {
	res, err := coordinator.Search(in.ctx, s, coordinator.SearchOptions{OutDir: out, Log: e.stderr, Run: coordinator.Options{
		AllowRemote: allowRemote, Abort: in.abort, OnSnapshot: e.onSnapshot, Stderr: e.stderr, Env: e.environ,
	}})
	if res != nil && res.Summary != nil {
		report.WriteText(e.stdout, res.Summary, res.Dir)
		report.WriteSearchText(e.stdout, res.Summary.Search)
	}
	return searchExit(res, err)
}

// searchExit maps a search's outcome to its exit code: 0 when a level held (at least
// search.require), 1 when none did, 3 when the search could not be carried out, 130 when a signal
// stopped it.
func searchExit(res *coordinator.SearchOutcome, err error) error {
	switch {
	case errors.Is(err, coordinator.ErrInvalid):
		return exitWith(exitInvalid, err)
	case res != nil && res.Answer.Status == search.Stopped:
		return exitWith(exitInterrupted, errors.New("interrupted; the results so far written, marked interrupted"))
	case err != nil:
		return exitWith(exitCannotRun, err)
	}
	sr := res.Summary.Search
	if sr.Pass {
		return nil
	}
	if sr.Held == nil {
		msg := "no level held"
		if sr.Failure != nil {
			msg += fmt.Sprintf(": %s fails: %s", sr.Level(*sr.Failed), sr.Failure.Message)
		}
		return exitWith(exitFail, errors.New(msg))
	}
	return exitWith(exitFail, fmt.Errorf("search.require not reached: %s", sr.Answer()))
}
