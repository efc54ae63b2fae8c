package memory

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const slabHead = "slabinfo - version: 2.1\n" +
	"# name            <active_objs> <num_objs> <objsize> <objperslab> <pagesperslab> : tunables <limit> <batchcount> <sharedfactor> : slabdata <active_slabs> <num_slabs> <sharedavail>\n"

func TestParseSlabinfo(t *testing.T) {
	tests := []struct {
		name string
		text string
		want map[string]Cache // nil: an error
	}{
		{"two caches", slabHead +
			"TCP               697603 778401   2368   13    8 : tunables    0    0    0 : slabdata  59877  59877      0\n" +
			"filp                 819    819    192   21    1 : tunables    0    0    0 : slabdata     39     39      0\n",
			map[string]Cache{"TCP": {Objects: 697603, ObjSize: 2368, Bytes: 59877 * 8 * 4096}, "filp": {Objects: 819, ObjSize: 192, Bytes: 39 * 4096}}},
		{"header only", slabHead, map[string]Cache{}},
		{"another version", "slabinfo - version: 1.1\n", nil},
		{"empty", "", nil},
		{"no slabdata", slabHead + "TCP 1 2 3 4 5\n", nil},
		{"not a number", slabHead + "TCP x 2 3 4 5 : tunables 0 0 0 : slabdata 1 1 0\n", nil},
		{"negative", slabHead + "TCP 1 2 3 4 -5 : tunables 0 0 0 : slabdata 1 1 0\n", nil},
	}
	for _, tt := range tests {
		got, err := ParseSlabinfo(tt.text, 4096, nil)
		switch {
		case tt.want == nil && err == nil:
			t.Errorf("%s: accepted as %v", tt.name, got)
		case tt.want != nil && err != nil:
			t.Errorf("%s: %v", tt.name, err)
		case tt.want != nil && !reflect.DeepEqual(got.Map(), tt.want):
			t.Errorf("%s: %v, want %v", tt.name, got.Map(), tt.want)
		}
	}
}

// TestSlabNamesShared: samples of the same caches share one slice of names (a run keeps a ring of
// samples; each used to keep its own map and the text its names were cut from), and a changed list
// of caches gets names of its own.
func TestSlabNamesShared(t *testing.T) {
	line := func(name string, objs int) string {
		return name + " " + strconv.Itoa(objs) + " 10 64 64 1 : tunables 0 0 0 : slabdata 1 1 0\n"
	}
	first, err := ParseSlabinfo(slabHead+line("TCP", 1)+line("filp", 2), 4096, nil)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		text   string
		shared bool
	}{
		{"same caches, other counts", slabHead + line("TCP", 5) + line("filp", 9), true},
		{"a cache more", slabHead + line("TCP", 5) + line("filp", 9) + line("dentry", 3), false},
		{"another order", slabHead + line("filp", 9) + line("TCP", 5), false},
		{"a cache fewer", slabHead + line("TCP", 5), false},
	}
	for _, tt := range tests {
		got, err := ParseSlabinfo(tt.text, 4096, first.Names)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if shared := len(got.Names) > 0 && &got.Names[0] == &first.Names[0]; shared != tt.shared {
			t.Errorf("%s: names shared %v, want %v", tt.name, shared, tt.shared)
		}
		if len(got.Names) != len(got.Caches) {
			t.Errorf("%s: %d names for %d caches", tt.name, len(got.Names), len(got.Caches))
		}
	}
	if first.Map()["filp"].Objects != 2 {
		t.Errorf("the first sample changed: %v", first.Map())
	}
}

func TestParseMeminfoStatm(t *testing.T) {
	meminfo := "MemTotal:       24684000 kB\nSlab:             422856 kB\nHugePages_Total:       0\n"
	tests := []struct {
		name, text, key string
		want            int64
		ok              bool
	}{
		{"kB", meminfo, "Slab", 422856 * 1024, true},
		{"a count", meminfo, "HugePages_Total", 0, true},
		{"absent", meminfo, "SUnreclaim", 0, false},
		{"a prefix is not the key", meminfo, "Sla", 0, false},
		{"no value", "Slab:\n", "Slab", 0, false},
		{"not a number", "Slab: many kB\n", "Slab", 0, false},
	}
	for _, tt := range tests {
		got, ok := ParseMeminfo(tt.text, tt.key)
		if got != tt.want || ok != tt.ok {
			t.Errorf("%s: %d %v, want %d %v", tt.name, got, ok, tt.want, tt.ok)
		}
	}
	statm := []struct {
		text string
		want int64
		ok   bool
	}{
		{"5000 1200 800 3000 0 900 0\n", 1200 * 4096, true},
		{"5000\n", 0, false},
		{"5000 x\n", 0, false},
	}
	for _, tt := range statm {
		got, ok := ParseStatm(tt.text, 4096)
		if got != tt.want || ok != tt.ok {
			t.Errorf("statm %q: %d %v, want %d %v", tt.text, got, ok, tt.want, tt.ok)
		}
	}
}

// fakeProc writes a proc tree: meminfo with slab kB, slabinfo with a TCP cache of tcpObjects
// 2048-byte objects, two to a page (unless noSlabinfo), and a statm of rss pages per pid.
func fakeProc(t *testing.T, dir string, slabKB int64, tcpObjects int64, noSlabinfo bool, rss map[int]int64) {
	t.Helper()
	write := func(rel, text string) {
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("meminfo", "MemTotal: 1000000 kB\nSlab: "+strconv.FormatInt(slabKB, 10)+" kB\n")
	if noSlabinfo {
		os.Remove(filepath.Join(dir, "slabinfo"))
	} else {
		n, slabs := strconv.FormatInt(tcpObjects, 10), strconv.FormatInt(tcpObjects/2, 10)
		write("slabinfo", slabHead+"TCP "+n+" "+n+" 2048 2 1 : tunables 0 0 0 : slabdata "+slabs+" "+slabs+" 0\n"+
			"filp 10 10 192 21 1 : tunables 0 0 0 : slabdata 1 1 0\n")
	}
	for pid, pages := range rss {
		write(filepath.Join(strconv.Itoa(pid), "statm"), "9999 "+strconv.FormatInt(pages, 10)+" 0 0 0 0 0\n")
	}
}

// TestReport reads samples from a fake /proc before and at a plateau and checks the report: the
// slab's growth per connection, the caches that grew, the processes' RSS growth per connection.
func TestReport(t *testing.T) {
	start := time.Date(2026, 12, 7, 5, 0, 0, 0, time.UTC)
	tests := []struct {
		name       string
		held       int64
		noSlabinfo bool
		targets    bool // the target has processes of its own
		want       *Report
	}{
		{"workers and target processes", 10000, false, true, &Report{Connections: 10000,
			Kernel: &Kernel{SlabBytes: 40960000, PerConnection: 4096, Caches: []CacheGrowth{
				{Name: "TCP", Objects: 10000, ObjSize: 2048, Bytes: 20480000, PerConnection: 2048}}},
			Generator: &Process{Processes: 2, BaseRSS: 2 * 1000 * 4096, RSS: 2*1000*4096 + 10000*512, PerConnection: 512},
			Target:    &Process{Processes: 1, BaseRSS: 500 * 4096, RSS: 500*4096 + 10000*256, PerConnection: 256}}},
		{"no slabinfo (not root): the slab's total alone", 10000, true, false, &Report{Connections: 10000,
			Kernel:    &Kernel{SlabBytes: 40960000, PerConnection: 4096, Caches: []CacheGrowth{}},
			Generator: &Process{Processes: 2, BaseRSS: 2 * 1000 * 4096, RSS: 2*1000*4096 + 10000*512, PerConnection: 512}}},
		{"too few connections", MinConnections - 1, false, true, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			r := &Reader{Proc: dir, PageSize: 4096}
			gen, tgt := []int{10, 11}, []int(nil)
			base := map[int]int64{10: 1000, 11: 1000}
			if tt.targets {
				tgt = []int{20}
				base[20] = 500
			}
			fakeProc(t, dir, 100000, 0, tt.noSlabinfo, base)
			var p Plateau
			p.Base = r.Read(0, gen, tgt)
			// The plateau: TCP grows by one 4096-byte slab per two connections (2048-byte objects),
			// the generator by 512 B per connection over its two processes, the target by 256 B.
			peak := map[int]int64{10: 1000 + tt.held*512/4096/2, 11: 1000 + tt.held*512/4096/2}
			if tt.targets {
				peak[20] = 500 + tt.held*256/4096
			}
			fakeProc(t, dir, 100000+tt.held*4, tt.held, tt.noSlabinfo, peak)
			s := r.Read(tt.held, gen, tgt)
			s.At = start.Add(30 * time.Second)
			p.Offer(s)
			// A later sample at fewer connections (the ramp-down) is not kept.
			p.Offer(Sample{At: start.Add(40 * time.Second), Active: tt.held - 1})
			got := p.Report(start)
			if tt.want != nil {
				tt.want.AtS = 30
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("report\n%s\nwant\n%s", deref(got), deref(tt.want))
			}
		})
	}
}

func deref(r *Report) string {
	b, _ := json.Marshal(r)
	return string(b)
}

// TestPlateau keeps the last sample at the most connections: the plateau's last interval, not the
// first to reach it nor a ramp-down's.
func TestPlateau(t *testing.T) {
	var p Plateau
	if p.Report(time.Time{}) != nil {
		t.Fatal("a report with no sample")
	}
	for i, active := range []int64{1000, 5000, 5000, 4000, 5000, 100} {
		p.Offer(Sample{Active: active, Slab: int64(i)})
	}
	if p.Peak.Active != 5000 || p.Peak.Slab != 4 {
		t.Errorf("kept %+v, want the fifth sample (5000 held, the last at the most)", p.Peak)
	}
	if p.Want(4999) || !p.Want(5000) {
		t.Error("Want")
	}
}
