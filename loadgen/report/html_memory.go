package report

import (
	"fmt"
	"strconv"

	"github.com/portstorm/portstorm/loadgen/memory"
)

// maxMemoryCaches is how many of the slab caches that grew most the report's memory section
// lists (summary.json's memory.kernel.caches holds every one that grew by 1% of the slab).
const maxMemoryCaches = 8

// memorySection is the report's "Memory per held connection": summary.json's memory
// (docs/results.md), shown only when the run measured it.
type memorySection struct {
	// Note says when and at how many connections it was measured, and against what.
	Note string
	// Figures are the kernel's slab and the processes' resident sets: per connection, growth.
	Figures *table
	// Caches are the slab caches that grew most (nil when none could be read); CachesNote says
	// why there are none, or how many more summary.json holds.
	Caches     *table
	CachesNote string
}

// newMemorySection is the section of s's memory; nil when the run measured none.
func newMemorySection(s *Summary) *memorySection {
	m := s.Memory
	if m == nil {
		return nil
	}
	sec := &memorySection{
		Note: fmt.Sprintf("%s connections held at %s (the plateau): growth from a sample taken before the first connection, divided by the connections held. "+
			"The kernel's slab is the whole host's: with the target on this host it counts both ends of each connection.",
			groupDigits(uint64(max(m.Connections, 0))), fmtSeconds(m.AtS)),
		Figures: &table{Head: []string{"memory", "per connection", "growth", "measured"}},
	}
	if k := m.Kernel; k != nil {
		sec.Figures.Rows = append(sec.Figures.Rows, row{Cells: []string{"kernel slab", fmtBytes(float64(k.PerConnection)),
			fmtGrowth(k.SlabBytes), "/proc/meminfo Slab"}})
	} else {
		sec.Figures.Rows = append(sec.Figures.Rows, row{Cells: []string{"kernel slab", "–", "–", "not measured: /proc/meminfo could not be read"}})
	}
	proc := func(name string, p *memory.Process) {
		sec.Figures.Rows = append(sec.Figures.Rows, row{Cells: []string{name + " RSS", fmtBytes(float64(p.PerConnection)),
			fmtGrowth(p.RSS - p.BaseRSS), fmt.Sprintf("%d process(es): %s → %s", p.Processes, fmtSize(p.BaseRSS), fmtSize(p.RSS))}})
	}
	if g := m.Generator; g != nil {
		proc("generator", g)
	} else {
		sec.Figures.Rows = append(sec.Figures.Rows, row{Cells: []string{"generator RSS", "–", "–", "not measured"}})
	}
	if t := m.Target; t != nil {
		proc("target", t)
	} else if s.Plan != nil && s.Plan.Target.Builtin != nil {
		sec.Figures.Rows = append(sec.Figures.Rows, row{Cells: []string{"target RSS", "–", "–", "the built-in target ran in the generator's process: in its RSS"}})
	}
	if m.Kernel == nil {
		return sec
	}
	if len(m.Kernel.Caches) == 0 {
		sec.CachesNote = "No slab cache figures: /proc/slabinfo could not be read (it is root's only)."
		return sec
	}
	sec.Caches = &table{Head: []string{"slab cache", "per connection", "grown by", "objects", "object size"}}
	for _, c := range m.Kernel.Caches[:min(len(m.Kernel.Caches), maxMemoryCaches)] {
		sec.Caches.Rows = append(sec.Caches.Rows, row{Cells: []string{c.Name, fmtBytes(c.PerConnection), fmtGrowth(c.Bytes),
			fmtCount(c.Objects), fmtBytes(float64(c.ObjSize))}})
	}
	if n := len(m.Kernel.Caches) - maxMemoryCaches; n > 0 {
		sec.CachesNote = fmt.Sprintf("%d more cache(s) grew by at least 1%% of the slab: summary.json's memory.kernel.caches.", n)
	}
	return sec
}

// fmtSize renders a size in bytes with the unit that suits it: B, KiB, MiB or GiB.
func fmtSize(b int64) string {
	v := float64(b)
	switch a := max(v, -v); {
	case a >= 1<<30:
		return strconv.FormatFloat(v/(1<<30), 'f', 2, 64) + " GiB"
	case a >= 1<<20:
		return strconv.FormatFloat(v/(1<<20), 'f', 1, 64) + " MiB"
	default:
		return fmtBytes(v)
	}
}

// fmtCount is groupDigits with a sign for a count that fell: "-1,200".
func fmtCount(n int64) string {
	if n < 0 {
		return "-" + groupDigits(uint64(-n))
	}
	return groupDigits(uint64(n))
}

// fmtGrowth is fmtSize with its sign: "+8.50 GiB".
func fmtGrowth(b int64) string {
	if b >= 0 {
		return "+" + fmtSize(b)
	}
	return fmtSize(b)
}
