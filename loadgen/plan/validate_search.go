package plan

import (
	"math"
	"time"
)

// Limits of a search (docs/search.md).
const (
	MaxSearchProbes = 1000
	MaxSearchGrowth = 100.0
	// MinSearchTolerance is the finest tolerance: below it, probes' own noise decides.
	MinSearchTolerance = Percent(0.001)
	maxProbeLength     = Duration(time.Hour)
)

// search checks the search: section and what it changes in the rest of the plan: the probes
// are the load stages, the thresholds say whether a probe holds, and a baseline has no place.
func (c *checker) search() {
	sr := c.p.Search
	if sr == nil {
		return
	}
	l := c.p.Load
	c.oneOf("search.dimension", sr.Dimension, Dimensions)
	if m := ModelOf(sr.Dimension); m != "" && l.Model != "" && m != l.Model {
		c.fail("search.dimension", "%s is searched under load.model %s, but the model is %s; want load.model: %s, or leave it out", sr.Dimension, m, l.Model, m)
	}
	if len(l.Stages) > 0 {
		c.fail("load.stages", "a search runs each probe as one stage at its level; remove load.stages (search.min and search.max give the levels)")
	}
	if l.Start != 0 {
		c.fail("load.start", "a search starts each probe at its level; remove load.start")
	}
	unit := "concurrent connections"
	if ModelOf(sr.Dimension) == "arrival" || sr.Dimension == "" && l.Model == "arrival" {
		unit = "connections per second"
	}
	whole := sr.Dimension == "concurrency" || sr.Dimension == "" && l.Model != "arrival"
	level := func(path string, v float64, required bool) bool {
		switch {
		case v == 0 && required:
			c.fail(path, "missing; want a level above 0, at most %d %s", MaxTarget, unit)
		case v == 0:
		case math.IsNaN(v) || v < 0 || v > MaxTarget:
			c.fail(path, "want a level above 0, at most %d %s, got %v", MaxTarget, unit, v)
		case whole && v != math.Trunc(v):
			c.fail(path, "want a whole number of %s, got %v", unit, v)
		default:
			return true
		}
		return false
	}
	minOK := level("search.min", sr.Min, true)
	maxOK := level("search.max", sr.Max, true)
	if minOK && maxOK && sr.Max < sr.Min {
		c.fail("search.max", "want at least search.min (%v), got %v", sr.Min, sr.Max)
	}
	if level("search.require", sr.Require, false) && maxOK && sr.Require > sr.Max {
		c.fail("search.require", "the search never tries more than search.max (%v), so it could never reach %v; want at most %v", sr.Max, sr.Require, sr.Max)
	}
	if g := sr.Growth; g != 0 && !(g > 1 && g <= MaxSearchGrowth) {
		c.fail("search.growth", "want a factor above 1, at most %v, like 2, got %v", MaxSearchGrowth, g)
	}
	// Checked against the values Defaults would give, so that the verdict is the same before and
	// after it.
	probe, interval := sr.Probe, c.p.Output.Interval
	if probe == 0 {
		probe = DefaultSearchProbe
	}
	if interval == 0 {
		interval = DefaultInterval
	}
	if sr.Probe != 0 {
		c.duration("search.probe", sr.Probe, MinInterval, maxProbeLength)
	}
	if probe >= MinInterval && interval >= MinInterval && probe < interval {
		c.fail("search.probe", "want at least output.interval (%s): a probe is judged on its snapshots, got %s", interval, probe)
	}
	c.duration("search.settle", sr.Settle, 0, maxPause)
	if sr.Confirm != 0 {
		c.duration("search.confirm", sr.Confirm, MinInterval, MaxStage)
		if sr.Confirm < probe {
			c.fail("search.confirm", "the confirming probe is the longer one; want at least search.probe (%s), got %s", probe, sr.Confirm)
		}
	}
	if t := sr.Tolerance; t != 0 && !(t >= MinSearchTolerance && t <= 1) {
		c.fail("search.tolerance", "want %s to 100%%, like 5%%, got %s", MinSearchTolerance, t)
	}
	if n := sr.MaxProbes; n != 0 && (n < 2 || n > MaxSearchProbes) {
		c.fail("search.max_probes", "want 2 to %d (a probe and the confirming one at least), got %d", MaxSearchProbes, n)
	}
	if d := sr.MaxTime; d != 0 {
		c.duration("search.max_time", d, MinInterval, MaxTotal)
	}
	if len(c.p.Thresholds) == 0 {
		c.fail("search", `a search needs the thresholds that say whether a level holds; want thresholds like ["latency.p99 < 10ms", "errors.rate < 0.1%%"]`)
	}
	if c.p.Baseline != nil {
		c.fail("baseline", "a search judges each probe by its thresholds, not against a baseline; remove baseline")
	}
}
