package report

import (
	"bytes"
	"strings"
	"testing"

	"github.com/portstorm/portstorm/loadgen/memory"
	"github.com/portstorm/portstorm/loadgen/plan"
)

// TestHTMLMemory: report.html has its "Memory per held connection" section, with the figures of
// summary.json's memory (docs/results.md), only when the run measured it; a side not measured is
// said so or left out, as summary.json leaves it.
func TestHTMLMemory(t *testing.T) {
	million := func() *memory.Report {
		m := memoryFixture()
		m.Kernel.Caches = append(m.Kernel.Caches,
			memory.CacheGrowth{Name: "sock_inode_cache", Objects: 2000000, ObjSize: 832, Bytes: 1704984576, PerConnection: 1704.984576},
			memory.CacheGrowth{Name: "filp", Objects: 2000000, ObjSize: 192, Bytes: 385875968, PerConnection: 385.875968})
		return m
	}
	noSlabinfo := func() *memory.Report {
		m := memoryFixture()
		m.Kernel.Caches, m.Target = []memory.CacheGrowth{}, nil
		return m
	}
	manyCaches := func() *memory.Report {
		m := memoryFixture()
		for i := range 10 {
			m.Kernel.Caches = append(m.Kernel.Caches, memory.CacheGrowth{Name: "cache" + string(rune('a'+i)), Objects: -1200, ObjSize: 64, Bytes: 1 << 20, PerConnection: 1})
		}
		return m
	}
	noKernel := func() *memory.Report {
		m := memoryFixture()
		m.Kernel = nil
		return m
	}
	tests := []struct {
		name    string
		memory  *memory.Report
		builtin bool // the plan's target is the built-in one (the fixture's is an address)
		want    []string
		absent  []string
	}{
		{"a million held", million(), true, []string{
			`<section id="memory">`, "Memory per held connection", "1,000,000 connections held at 4m39.0s",
			`<td>kernel slab</td><td class="num">8.91 KiB</td><td class="num">+8.50 GiB</td>`,
			`<td>generator RSS</td><td class="num">1000 B</td><td class="num">+953.7 MiB</td><td>54 process(es): 882.6 MiB → 1.79 GiB</td>`,
			`<td>target RSS</td><td class="num">53 B</td><td class="num">+51.0 MiB</td><td>53 process(es)`,
			`<table id="memory_caches">`,
			`<td>TCP</td><td class="num">4.73 KiB</td><td class="num">+4.51 GiB</td><td class="num">2,000,000</td><td class="num">2.31 KiB</td>`,
			`<td>sock_inode_cache</td><td class="num">1.67 KiB</td>`, `<td>filp</td><td class="num">386 B</td>`,
		}, []string{"more cache(s)", "could not be read"}},
		{"no slabinfo, a target elsewhere", noSlabinfo(), false, []string{
			`<section id="memory">`, `<td>kernel slab</td><td class="num">8.91 KiB</td>`, `<td>generator RSS</td>`,
			"/proc/slabinfo could not be read",
		}, []string{`id="memory_caches"`, "target RSS"}},
		{"the built-in target in the generator's process", noSlabinfo(), true, []string{
			`<td>target RSS</td><td class="num">–</td><td class="num">–</td><td>the built-in target ran in the generator&#39;s process: in its RSS</td>`,
		}, nil},
		{"more caches than shown", manyCaches(), false, []string{
			`<td>cacheg</td><td class="num">1 B</td><td class="num">+1.0 MiB</td><td class="num">-1,200</td><td class="num">64 B</td>`,
			"3 more cache(s) grew by at least 1% of the slab",
		}, []string{"<td>cacheh</td>"}},
		{"no meminfo", noKernel(), false, []string{
			`<td>kernel slab</td><td class="num">–</td><td class="num">–</td><td>not measured: /proc/meminfo could not be read</td>`,
			`<td>generator RSS</td><td class="num">1000 B</td>`,
		}, []string{`id="memory_caches"`}},
		{"not measured", nil, true, nil, []string{`id="memory`, "Memory per held connection", "per connection"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := fixedSummary(t)
			s.Memory = tt.memory
			if tt.builtin {
				s.Plan.Target = plan.Target{Builtin: &plan.Builtin{Mode: "echo", Listeners: 1}}
			}
			var b bytes.Buffer
			if err := RenderHTML(&b, s, nil); err != nil {
				t.Fatal(err)
			}
			page := b.String()
			// html/template writes '+' as &#43; in text.
			esc := strings.NewReplacer("+", "&#43;")
			for _, w := range tt.want {
				if !strings.Contains(page, esc.Replace(w)) {
					t.Errorf("the page lacks %s", w)
				}
			}
			for _, a := range tt.absent {
				if strings.Contains(page, a) {
					t.Errorf("the page has %s", a)
				}
			}
			if t.Failed() {
				if i := strings.Index(page, `<section id="memory">`); i >= 0 {
					t.Logf("the section:\n%s", page[i:i+strings.Index(page[i:], "</section>")])
				}
			}
		})
	}
}
