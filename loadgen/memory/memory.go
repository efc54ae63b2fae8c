// Package memory measures what held connections cost in memory: the kernel's (its slab caches,
// where every socket, inode, file and epoll entry lives) next to portstorm's own processes'
// (generator and built-in target resident set sizes). A run samples it before its first
// connection and at its plateau; the difference divided by the connections held is the cost of one
// connection (summary.json's `memory`, docs/results.md and docs/measurements.md).
package memory

import (
	"cmp"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// MinConnections is the fewest connections held at the plateau for which a run reports its memory
// per connection: below it, the kernel's and the processes' own noise (other processes' slab
// allocations, a heap that grows by a chunk at a time) outweighs what the connections cost.
const MinConnections = 1000

// Cache is one slab cache, from /proc/slabinfo.
type Cache struct {
	// Objects is active_objs; ObjSize the size of one object in bytes.
	Objects int64
	ObjSize int64
	// Bytes is what the cache takes in whole slabs (num_slabs x pagesperslab x page size), as
	// /proc/meminfo's Slab counts it.
	Bytes int64
}

// Sample is the memory of the kernel and of the run's processes at one moment. A figure that could
// not be read is -1 (Caches empty).
type Sample struct {
	At time.Time
	// Active is the connections held when it was taken.
	Active int64
	// Slab is /proc/meminfo's Slab, in bytes: the kernel's slab caches, every one of them.
	Slab int64
	// Caches are /proc/slabinfo's caches (root only: empty when it cannot be read).
	Caches Slabs
	// Generator and Target are the resident set sizes of the generator's processes (this one and
	// its worker processes) and of the built-in target's own processes, summed, in bytes.
	Generator, Target Procs
}

// Procs is the summed resident set of a group of processes.
type Procs struct {
	Count int
	RSS   int64
}

// Reader reads samples from a proc file system.
type Reader struct {
	// Proc is the proc file system's root ("/proc").
	Proc string
	// PageSize is the size of a page in bytes (os.Getpagesize()).
	PageSize int64

	mu    sync.Mutex
	names []string // the slab caches' names of the last sample (shared by the samples)
}

// NewReader reads the system's /proc.
func NewReader() *Reader { return &Reader{Proc: "/proc", PageSize: int64(os.Getpagesize())} }

// Read takes a sample: the kernel's slab and the summed RSS of the processes gen and tgt (pids; a
// process that has ended counts for nothing).
func (r *Reader) Read(active int64, gen, tgt []int) Sample {
	s := Sample{At: time.Now(), Active: active, Slab: -1}
	if b, err := os.ReadFile(filepath.Join(r.Proc, "meminfo")); err == nil {
		if v, ok := ParseMeminfo(string(b), "Slab"); ok {
			s.Slab = v
		}
	}
	if b, err := os.ReadFile(filepath.Join(r.Proc, "slabinfo")); err == nil {
		r.mu.Lock()
		if c, err := ParseSlabinfo(string(b), r.PageSize, r.names); err == nil {
			s.Caches, r.names = c, c.Names
		}
		r.mu.Unlock()
	}
	s.Generator, s.Target = r.procs(gen), r.procs(tgt)
	return s
}

func (r *Reader) procs(pids []int) Procs {
	p := Procs{RSS: -1}
	for _, pid := range pids {
		b, err := os.ReadFile(filepath.Join(r.Proc, strconv.Itoa(pid), "statm"))
		if err != nil {
			continue
		}
		rss, ok := ParseStatm(string(b), r.PageSize)
		if !ok {
			continue
		}
		p.Count++
		p.RSS = max(p.RSS, 0) + rss
	}
	return p
}

// ParseMeminfo returns the field key of /proc/meminfo ("Slab:  422856 kB") in bytes.
func ParseMeminfo(text, key string) (int64, bool) {
	for line := range strings.Lines(text) {
		name, rest, ok := strings.Cut(line, ":")
		if !ok || name != key {
			continue
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			return 0, false
		}
		v, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil || v < 0 {
			return 0, false
		}
		if len(f) > 1 && f[1] == "kB" {
			v *= 1024
		}
		return v, true
	}
	return 0, false
}

// ParseStatm returns the resident set size of /proc/PID/statm (its second field, in pages) in bytes.
func ParseStatm(text string, pageSize int64) (int64, bool) {
	f := strings.Fields(text)
	if len(f) < 2 {
		return 0, false
	}
	v, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil || v < 0 {
		return 0, false
	}
	return v * pageSize, true
}

// errSlabinfo is a /proc/slabinfo that is not version 2.x.
var errSlabinfo = errors.New("slabinfo: not the 2.x format")

// Slabs are /proc/slabinfo's caches: Caches[i] is the cache named Names[i]. Names is shared by
// the samples a Reader takes while the kernel's list of caches stays the same, so that a sample
// costs 24 bytes a cache (a run keeps a ring of them, one an interval: a map of each sample's lines
// kept ~40 KB a sample alive and made a 60 s run's resident memory grow by 13%).
type Slabs struct {
	Names  []string
	Caches []Cache
}

// Map is s by name.
func (s Slabs) Map() map[string]Cache {
	m := make(map[string]Cache, len(s.Names))
	for i, n := range s.Names {
		m[n] = s.Caches[i]
	}
	return m
}

// ParseSlabinfo reads /proc/slabinfo (version 2.x): per cache, its active objects, object size
// and the bytes its slabs take. names are the last sample's (nil: none): when this one's are the
// same, in the same order, the result shares them.
//
//	# name <active_objs> <num_objs> <objsize> <objperslab> <pagesperslab> : tunables ... : slabdata <active_slabs> <num_slabs> <sharedavail>
func ParseSlabinfo(text string, pageSize int64, names []string) (Slabs, error) {
	first, rest, _ := strings.Cut(text, "\n")
	if !strings.HasPrefix(first, "slabinfo - version: 2.") {
		return Slabs{}, errSlabinfo
	}
	var out Slabs
	seen := make([]string, 0, len(names)) // the names as cut from the text
	for line := range strings.Lines(rest) {
		if strings.HasPrefix(line, "#") || strings.TrimSpace(line) == "" {
			continue
		}
		head, data, ok := strings.Cut(line, ": slabdata")
		f, d := strings.Fields(head), strings.Fields(data)
		if !ok || len(f) < 6 || len(d) < 2 {
			return Slabs{}, fmt.Errorf("slabinfo: line %q: %w", strings.TrimSpace(line), errSlabinfo)
		}
		n := func(s string) int64 {
			v, err := strconv.ParseInt(s, 10, 64)
			if err != nil || v < 0 {
				ok = false
			}
			return v
		}
		c := Cache{Objects: n(f[1]), ObjSize: n(f[3])}
		c.Bytes = n(d[1]) * n(f[5]) * pageSize
		if !ok {
			return Slabs{}, fmt.Errorf("slabinfo: line %q: %w", strings.TrimSpace(line), errSlabinfo)
		}
		seen = append(seen, f[0])
		out.Caches = append(out.Caches, c)
	}
	if slices.Equal(seen, names) {
		out.Names = names
	} else {
		// Cloned: a name cut from the text would keep the whole text alive.
		out.Names = make([]string, len(seen))
		for i, n := range seen {
			out.Names[i] = strings.Clone(n)
		}
	}
	return out, nil
}

// Report is summary.json's `memory`: what the connections held at the plateau cost, as the
// difference between a sample taken at the plateau and one taken before the first connection.
// The kernel's figures are the whole host's (other processes' allocations meanwhile are in them);
// with the built-in target, or any target on this host, they count both ends of each connection.
type Report struct {
	// AtS is when the plateau sample was taken, in seconds since the run's start; Connections how
	// many connections were held then.
	AtS         float64 `json:"at_s"`
	Connections int64   `json:"connections"`
	// Kernel is nil when /proc/meminfo could not be read.
	Kernel *Kernel `json:"kernel"`
	// Generator is portstorm's generator: this process and its worker processes.
	Generator *Process `json:"generator"`
	// Target is the built-in target's own processes; nil when it runs inside the generator's (its
	// memory is then in Generator's) or the plan has none.
	Target *Process `json:"target,omitempty"`
}

// Kernel is the kernel's side of Report.
type Kernel struct {
	// SlabBytes is the growth of /proc/meminfo's Slab; PerConnection it divided by the connections.
	SlabBytes     int64 `json:"slab_bytes"`
	PerConnection int64 `json:"per_connection"`
	// Caches are the slab caches that grew by at least 1% of SlabBytes, largest first (empty when
	// /proc/slabinfo cannot be read: it is root's only).
	Caches []CacheGrowth `json:"caches"`
}

// CacheGrowth is one slab cache's growth.
type CacheGrowth struct {
	Name string `json:"name"`
	// Objects is the growth of its active objects, ObjSize the size of one.
	Objects int64 `json:"objects"`
	ObjSize int64 `json:"object_size"`
	// Bytes is the growth of its slabs; PerConnection it divided by the connections, as a float
	// (a cache of 64-byte objects adds less than one byte per connection on average at times).
	Bytes         int64   `json:"bytes"`
	PerConnection float64 `json:"per_connection"`
}

// Process is one group of processes' side of Report.
type Process struct {
	Processes int `json:"processes"`
	// BaseRSS and RSS are the summed resident set sizes before the first connection and at the
	// plateau; PerConnection is their difference divided by the connections.
	BaseRSS       int64 `json:"base_rss"`
	RSS           int64 `json:"rss"`
	PerConnection int64 `json:"per_connection"`
}

// Build is the report of base (before the first connection) and peak (at the plateau), start the
// run's start; nil when peak held fewer than MinConnections, or nothing could be read.
func Build(base, peak Sample, start time.Time) *Report {
	n := peak.Active
	if n < MinConnections {
		return nil
	}
	r := &Report{AtS: peak.At.Sub(start).Seconds(), Connections: n}
	if base.Slab >= 0 && peak.Slab >= 0 {
		k := &Kernel{SlabBytes: peak.Slab - base.Slab, Caches: []CacheGrowth{}}
		k.PerConnection = k.SlabBytes / n
		baseCaches := base.Caches.Map()
		for i, c := range peak.Caches.Caches {
			name := peak.Caches.Names[i]
			b, ok := baseCaches[name]
			if !ok {
				continue
			}
			g := CacheGrowth{Name: name, Objects: c.Objects - b.Objects, ObjSize: c.ObjSize, Bytes: c.Bytes - b.Bytes}
			if g.Bytes <= 0 || k.SlabBytes <= 0 || g.Bytes*100 < k.SlabBytes {
				continue
			}
			g.PerConnection = float64(g.Bytes) / float64(n)
			k.Caches = append(k.Caches, g)
		}
		slices.SortFunc(k.Caches, func(a, b CacheGrowth) int {
			return cmp.Or(cmp.Compare(b.Bytes, a.Bytes), cmp.Compare(a.Name, b.Name))
		})
		r.Kernel = k
	}
	r.Generator = process(base.Generator, peak.Generator, n)
	r.Target = process(base.Target, peak.Target, n)
	if r.Kernel == nil && r.Generator == nil {
		return nil
	}
	return r
}

func process(base, peak Procs, n int64) *Process {
	if base.Count == 0 || peak.Count == 0 || base.RSS < 0 || peak.RSS < 0 {
		return nil
	}
	return &Process{Processes: peak.Count, BaseRSS: base.RSS, RSS: peak.RSS, PerConnection: (peak.RSS - base.RSS) / n}
}

// Plateau keeps the sample taken at the most connections held: Offer replaces it with a sample
// at as many or more (the later of equals, so that a plateau's last sample, when the kernel's
// caches have settled, is the one kept).
type Plateau struct {
	Base, Peak Sample
	ok         bool
}

// Want says whether a sample at active connections would be kept.
func (p *Plateau) Want(active int64) bool { return !p.ok || active >= p.Peak.Active }

// Offer keeps s when Want(s.Active).
func (p *Plateau) Offer(s Sample) {
	if p.Want(s.Active) {
		p.Peak, p.ok = s, true
	}
}

// Report is Build(p.Base, p.Peak, start), nil when nothing was offered.
func (p *Plateau) Report(start time.Time) *Report {
	if !p.ok {
		return nil
	}
	return Build(p.Base, p.Peak, start)
}
