// Package preflight reads the host's limits that shape a connection test (fds, port range, TIME_WAIT
// settings) so that results record them and impossible plans are refused before they start.
package preflight

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"

	"github.com/portstorm/portstorm/loadgen/isolate"
	"github.com/portstorm/portstorm/loadgen/memory"
)

// PortRange is an inclusive range of local ports.
type PortRange struct {
	Lo int `json:"lo"`
	Hi int `json:"hi"`
}

// Size is the number of ports in the range.
func (r PortRange) Size() int {
	if r.Hi < r.Lo {
		return 0
	}
	return r.Hi - r.Lo + 1
}

// Host is what summary.json records about the machine (docs/results.md). Values that could not be read
// are -1 (or empty), never guessed.
type Host struct {
	Hostname      string    `json:"hostname"`
	Kernel        string    `json:"kernel"`
	Cores         int       `json:"cores"`
	FDSoft        int64     `json:"fd_soft"`
	FDHard        int64     `json:"fd_hard"`
	PortRange     PortRange `json:"port_range"`
	ReservedPorts string    `json:"reserved_ports"`
	TWReuse       int       `json:"tw_reuse"`
	TWReuseDelay  int       `json:"tw_reuse_delay_ms"`
	MaxTWBuckets  int       `json:"max_tw_buckets"`
	Somaxconn     int       `json:"somaxconn"`
	Netns         string    `json:"netns"`
	// Syncookies is tcp_syncookies; TCPTimestamps tcp_timestamps (TIME_WAIT reuse needs them).
	Syncookies    int `json:"syncookies"`
	TCPTimestamps int `json:"tcp_timestamps"`
	// ConntrackMax and ConntrackCount are nf_conntrack_max and _count, -1 when conntrack is not loaded.
	ConntrackMax   int `json:"conntrack_max"`
	ConntrackCount int `json:"conntrack_count"`
	// Conntrack says whether conntrack tracks connections in this network namespace, from a probe
	// connection: ConntrackActive, ConntrackInactive, ConntrackNotLoaded or ConntrackUnknown.
	Conntrack string `json:"conntrack"`
	// UnprivilegedPortStart is ip_unprivileged_port_start: lower ports need CAP_NET_BIND_SERVICE.
	UnprivilegedPortStart int `json:"unprivileged_port_start"`
	// Root is true when running as uid 0.
	Root bool `json:"root"`
	// Isolated is true inside the run's private network namespace (--netns, isolate: true).
	Isolated bool `json:"isolated"`
	// UserNamespaces says whether unprivileged user namespaces (unshare -Urn) are allowed.
	UserNamespaces string `json:"user_namespaces"`
	// FileMax is fs.file-max, the open files of the whole host (every namespace's); FileNr the
	// ones allocated when the host was read (fs.file-nr's first field).
	FileMax int64 `json:"file_max"`
	FileNr  int64 `json:"file_nr"`
	// MemAvailable is /proc/meminfo's MemAvailable in bytes: what the kernel's sockets and the run's
	// processes can take before the host reclaims or swaps.
	MemAvailable int64 `json:"mem_available"`
}

// Proc is the root of the proc file system; tests point it elsewhere.
var Proc = "/proc"

func readProc(rel string) string {
	b, err := os.ReadFile(filepath.Join(Proc, rel))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

func readInt(rel string) int {
	v, err := strconv.Atoi(readProc(rel))
	if err != nil {
		return -1
	}
	return v
}

// ParsePortRange reads "lo hi" as in ip_local_port_range.
func ParsePortRange(s string) (PortRange, bool) {
	f := strings.Fields(s)
	if len(f) != 2 {
		return PortRange{}, false
	}
	lo, err1 := strconv.Atoi(f[0])
	hi, err2 := strconv.Atoi(f[1])
	if err1 != nil || err2 != nil || lo < 1 || hi > 65535 || lo > hi {
		return PortRange{}, false
	}
	return PortRange{lo, hi}, true
}

// ReadHost snapshots the host's limits as this process sees them (its network namespace included).
// env is the environment portstorm was given (os.Environ style): it says whether this process runs
// in the run's private namespace (isolate.IsChild); the process's own is not read.
func ReadHost(env []string) Host {
	h := Host{
		Cores:         runtime.NumCPU(),
		FDSoft:        -1,
		FDHard:        -1,
		PortRange:     PortRange{-1, -1},
		ReservedPorts: readProc("sys/net/ipv4/ip_local_reserved_ports"),
		TWReuse:       readInt("sys/net/ipv4/tcp_tw_reuse"),
		TWReuseDelay:  readInt("sys/net/ipv4/tcp_tw_reuse_delay"),
		MaxTWBuckets:  readInt("sys/net/ipv4/tcp_max_tw_buckets"),
		Somaxconn:     readInt("sys/net/core/somaxconn"),

		Syncookies:            readInt("sys/net/ipv4/tcp_syncookies"),
		TCPTimestamps:         readInt("sys/net/ipv4/tcp_timestamps"),
		ConntrackMax:          readInt("sys/net/netfilter/nf_conntrack_max"),
		ConntrackCount:        readInt("sys/net/netfilter/nf_conntrack_count"),
		UnprivilegedPortStart: readInt("sys/net/ipv4/ip_unprivileged_port_start"),
		Root:                  os.Geteuid() == 0,
		Isolated:              isolate.IsChild(env),
		UserNamespaces:        isolate.UserNamespaces(),
	}
	h.FileMax, h.FileNr = readFileMax()
	h.MemAvailable = readMemAvailable()
	h.Conntrack = probeConntrack()
	h.Hostname, _ = os.Hostname()
	readKernel(&h)
	if r, ok := ParsePortRange(readProc("sys/net/ipv4/ip_local_port_range")); ok {
		h.PortRange = r
	}
	if l, err := os.Readlink(filepath.Join(Proc, "self/ns/net")); err == nil {
		h.Netns = l
	}
	return h
}

// readFileMax reads fs.file-max and fs.file-nr's allocated handles, -1 each when unknown.
func readFileMax() (max, nr int64) {
	max, nr = -1, -1
	if v, err := strconv.ParseInt(readProc("sys/fs/file-max"), 10, 64); err == nil {
		max = v
	}
	if f := strings.Fields(readProc("sys/fs/file-nr")); len(f) == 3 {
		if v, err := strconv.ParseInt(f[0], 10, 64); err == nil {
			nr = v
		}
	}
	return max, nr
}

// readMemAvailable reads /proc/meminfo's MemAvailable in bytes, -1 when unknown.
func readMemAvailable() int64 {
	if v, ok := memory.ParseMeminfo(readProc("meminfo"), "MemAvailable"); ok {
		return v
	}
	return -1
}

// What Host.Conntrack says.
const (
	// ConntrackActive: a loopback probe connection in this namespace was tracked.
	ConntrackActive = "active"
	// ConntrackInactive: the module is loaded but tracked nothing of the probe here. Loading
	// nf_conntrack registers no hook: a namespace gets them only when a rule or another user asks
	// (nf_ct_netns_get, net/netfilter/nf_conntrack_proto.c), so a host with the module loaded and no
	// conntrack rule, or a fresh namespace, tracks nothing and nf_conntrack_max limits nothing.
	ConntrackInactive = "inactive"
	// ConntrackNotLoaded: no nf_conntrack_count, no conntrack.
	ConntrackNotLoaded = "not loaded"
	// ConntrackUnknown: the probe could not be made (no loopback here).
	ConntrackUnknown = "unknown"
)

// conntrackTableMax is the most entries read from /proc/net/nf_conntrack to find the probe; past
// it (a host busy with tracked connections), the count alone decides.
const conntrackTableMax = 65536

// probeConntrack tells whether conntrack tracks connections in this network namespace: it opens one
// loopback connection and looks for its 4-tuple in the namespace's conntrack table, or, when the
// table cannot be read, for the entry count (per namespace) to rise while it is open.
func probeConntrack() string {
	before := readInt("sys/net/netfilter/nf_conntrack_count")
	if before < 0 {
		return ConntrackNotLoaded
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return ConntrackUnknown
	}
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		return ConntrackUnknown
	}
	// The probe must leave no trace in the port space the run is about to measure: closed with a
	// RST from the client, neither end keeps a TIME_WAIT (a FIN close left one on the listener's
	// port, in the ephemeral range, and a bind-strategy run then found 999 of 1000 ports).
	defer func() {
		c.(*net.TCPConn).SetLinger(0)
		c.Close()
	}()
	// The handshake is complete once Dial returns: the connection waits in the accept queue.
	s, err := ln.Accept()
	if err != nil {
		return ConntrackUnknown
	}
	defer s.Close() // after the client's RST: nothing left to send
	during := readInt("sys/net/netfilter/nf_conntrack_count")
	seen := -1
	if during <= conntrackTableMax {
		cp, sp := c.LocalAddr().(*net.TCPAddr).Port, ln.Addr().(*net.TCPAddr).Port
		seen = conntrackHas(fmt.Sprintf(" sport=%d dport=%d ", cp, sp))
	}
	return conntrackState(before, during, seen)
}

// conntrackHas looks for tuple in /proc/net/nf_conntrack: 1 found, 0 not, -1 unreadable
// (CONFIG_NF_CONNTRACK_PROCFS off).
func conntrackHas(tuple string) int {
	f, err := os.Open(filepath.Join(Proc, "net/nf_conntrack"))
	if err != nil {
		return -1
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if strings.Contains(sc.Text(), tuple) {
			return 1
		}
	}
	if sc.Err() != nil {
		return -1
	}
	return 0
}

// conntrackState decides from the entry count before and during the probe connection and whether
// the table held its 4-tuple (seen: 1 yes, 0 no, -1 not read). The table is exact; the count is
// per namespace but may fall as other entries expire, so only a rise says anything.
func conntrackState(before, during, seen int) string {
	switch {
	case before < 0:
		return ConntrackNotLoaded
	case seen > 0:
		return ConntrackActive
	case seen == 0:
		return ConntrackInactive
	case during < 0:
		return ConntrackUnknown
	case during > before:
		return ConntrackActive
	default:
		return ConntrackInactive
	}
}
