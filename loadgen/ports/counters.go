package ports

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Counter is one of the kernel's TCP counters sampled each interval (TcpExt from /proc/net/netstat,
// Tcp from /proc/net/snmp): cheap to read, and each explains something the observatory sees.
type Counter uint8

const (
	TW                  Counter = iota // TcpExt TW: TIME_WAIT sockets that ended by the timer
	TWRecycled                         // TcpExt TWRecycled: TIME_WAIT 4-tuples taken over by connect()
	TWKilled                           // TcpExt TWKilled
	TCPTimeWaitOverflow                // TcpExt TCPTimeWaitOverflow: not kept, tcp_max_tw_buckets full
	ListenOverflows                    // TcpExt ListenOverflows: accept queue full
	ListenDrops                        // TcpExt ListenDrops
	ActiveOpens                        // Tcp ActiveOpens: connect() calls that sent a SYN
	AttemptFails                       // Tcp AttemptFails
	EstabResets                        // Tcp EstabResets
	OutRsts                            // Tcp OutRsts
	NumCounters
)

var counterNames = [NumCounters]string{"TW", "TWRecycled", "TWKilled", "TCPTimeWaitOverflow",
	"ListenOverflows", "ListenDrops", "ActiveOpens", "AttemptFails", "EstabResets", "OutRsts"}

func (c Counter) String() string {
	if c < NumCounters {
		return counterNames[c]
	}
	return "invalid"
}

// Counters holds one reading; Valid is false when /proc could not be read.
type Counters struct {
	V     [NumCounters]uint64
	Valid bool
}

// Sub returns c - prev, counter by counter (a counter that went down reads as 0).
func (c Counters) Sub(prev Counters) Counters {
	out := Counters{Valid: c.Valid && prev.Valid}
	for i := range c.V {
		if c.V[i] > prev.V[i] {
			out.V[i] = c.V[i] - prev.V[i]
		}
	}
	return out
}

// ReadCounters reads the counters of this network namespace under proc ("/proc").
func ReadCounters(proc string) Counters {
	var c Counters
	ext, err1 := readPairs(filepath.Join(proc, "net/netstat"), "TcpExt:")
	tcp, err2 := readPairs(filepath.Join(proc, "net/snmp"), "Tcp:")
	if err1 != nil || err2 != nil {
		return c
	}
	c.Valid = true
	for i := range NumCounters {
		src := ext
		if i >= ActiveOpens {
			src = tcp
		}
		c.V[i] = src[Counter(i).String()]
	}
	return c
}

// readPairs reads the header and value lines that start with prefix ("TcpExt: a b" / "TcpExt: 1 2").
func readPairs(path, prefix string) (map[string]uint64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	out := map[string]uint64{}
	var head []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, prefix) {
			continue
		}
		f := strings.Fields(line[len(prefix):])
		if head == nil {
			head = f
			continue
		}
		for i, v := range f {
			if i < len(head) {
				n, _ := strconv.ParseUint(v, 10, 64)
				out[head[i]] = n
			}
		}
		head = nil
	}
	return out, sc.Err()
}

// noTimeWait reports whether the network namespace has no TIME_WAIT socket at all, IPv4 or IPv6:
// the "tw" count of proc/net/sockstat's TCP line, which the kernel keeps per namespace, read
// without walking its table of connections. false when the count cannot be read.
func noTimeWait(proc string) bool {
	b, err := os.ReadFile(filepath.Join(proc, "net/sockstat"))
	if err != nil {
		return false
	}
	n, ok := sockstatTimeWait(b)
	return ok && n == 0
}

// sockstatTimeWait is the "tw" count of a sockstat file's TCP line
// ("TCP: inuse 5 orphan 0 tw 2 alloc 6 mem 1"); false when there is none.
func sockstatTimeWait(b []byte) (int64, bool) {
	for line := range strings.SplitSeq(string(b), "\n") {
		rest, ok := strings.CutPrefix(line, "TCP: ")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		for i := 0; i+1 < len(f); i += 2 {
			if f[i] == "tw" {
				n, err := strconv.ParseInt(f[i+1], 10, 64)
				if err != nil || n < 0 {
					return 0, false
				}
				return n, true
			}
		}
		return 0, false
	}
	return 0, false
}

// dumpStep, set by tests only, runs before each TIME_WAIT sample's dump.
var dumpStep func()
