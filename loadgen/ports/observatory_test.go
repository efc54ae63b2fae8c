//go:build linux

package ports

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/portstorm/portstorm/loadgen/dial"
)

var (
	dstA = dial.NewDestination(netip.MustParseAddrPort("127.0.0.1:7001"))
	dstB = dial.NewDestination(netip.MustParseAddrPort("127.0.0.1:7002"))
)

func local(ip string, port int) netip.AddrPort {
	return netip.AddrPortFrom(netip.MustParseAddr(ip), uint16(port))
}

func newTestObservatory(s dial.Strategy) (*Observatory, time.Time) {
	start := time.Unix(1000, 0)
	o := New(Config{Strategy: s, Range: Range{Lo: 40000, Hi: 40009, Size: 10, Effective: 10}, Capacity: 10,
		TWReuseDelay: time.Second, ClientHoldsTW: true, NoSockDiag: true, Proc: "/nonexistent",
		Destinations: []netip.AddrPort{dstA.AddrPort, dstB.AddrPort}})
	o.Begin(start)
	return o, start
}

// TestObservatory plays connections through the observatory and checks each figure of docs/ports.md.
func TestObservatory(t *testing.T) {
	o, t0 := newTestObservatory(dial.StrategyKernel)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	c1 := o.Opened(dstA, local("127.0.0.1", 40000), at(0), 10*time.Microsecond)
	c2 := o.Opened(dstB, local("127.0.0.1", 40000), at(1), 10*time.Microsecond) // shared with dstA
	c3 := o.Opened(dstA, local("127.0.0.1", 40002), at(2), 10*time.Microsecond)
	o.Closed(c1, at(10), at(10), true)  // TIME_WAIT on the client
	o.Closed(c2, at(10), at(10), false) // RST
	// Reused 4-tuples: A:40000 after 5 ms (early: TIME_WAIT younger than 1 s); B:40000 after 1.5 s
	// (closed with RST: not early).
	c4 := o.Opened(dstA, local("127.0.0.1", 40000), at(15), 10*time.Microsecond)
	c5 := o.Opened(dstB, local("127.0.0.1", 40000), at(1510), 10*time.Microsecond)
	c6 := o.Opened(dstA, local("127.0.0.1", 40001), at(1600), 10*time.Microsecond) // second parity
	o.Failed(dstA, &net.OpError{Op: "dial", Err: os.NewSyscallError("connect", syscall.EADDRNOTAVAIL)}, at(1700))
	o.Failed(dstA, errors.New("something else"), at(1650))
	for _, c := range []Conn{c3, c4, c5, c6} {
		o.Closed(c, at(2000), at(2000), false)
	}
	r := o.Report()

	if len(r.Sources) != 1 {
		t.Fatalf("sources %+v", r.Sources)
	}
	s := r.Sources[0]
	if s.Address != "127.0.0.1" || s.Connections != 6 || s.UniquePorts != 3 || s.Reuse != 3 {
		t.Errorf("source %+v, want 6 connections, 3 unique ports, 3 reused", s)
	}
	if s.Parity.Even != 5 || s.Parity.Odd != 1 || s.Parity.SecondPass == nil || s.Parity.SecondPass.AtS != 1.6 {
		t.Errorf("parity %+v, want 5 even, 1 odd, second pass at 1.6 s", s.Parity)
	}
	if r.SharedPorts.Ports != 1 || r.SharedPorts.Peak != 1 {
		t.Errorf("shared %+v, want 1 port, peak 1", r.SharedPorts)
	}
	if r.Reuse.FourTuples != 2 || r.Reuse.Early != 1 || r.Reuse.TupleInterval.Min < 5000 || r.Reuse.TupleInterval.Min > 5100 {
		t.Errorf("reuse %+v, want 2 4-tuples, 1 early, the shortest after 5 ms", r.Reuse)
	}
	if len(r.Destinations) != 2 || r.Destinations[0].PeakConcurrent != 3 || r.Destinations[1].PeakConcurrent != 1 ||
		r.Destinations[0].Occupancy != 0.3 || r.Destinations[0].EarlyReuse != 1 {
		t.Errorf("destinations %+v", r.Destinations)
	}
	x := r.Exhaustion
	if x == nil || x.Errno != "EADDRNOTAVAIL" || x.Syscall != "connect" || x.AtS != 1.7 || x.Concurrency != 4 ||
		x.Source != "127.0.0.1" || x.Destination != "127.0.0.1:7001" || x.Open != 3 || x.Occupancy != 0.3 {
		t.Errorf("exhaustion %+v", x)
	}
	if len(r.Failures) != 1 || r.Failures[0] != (Failure{Syscall: "connect", Errno: "EADDRNOTAVAIL", Count: 1}) {
		t.Errorf("failures %+v", r.Failures)
	}
	var deciles int64
	for _, d := range r.ConnectByOccupancy {
		deciles += d.Count
	}
	if deciles != 6 || r.ConnectByOccupancy[0].Count != 3 || r.ConnectByOccupancy[1].Count != 2 {
		t.Errorf("connect by occupancy %+v, want 6 connections, 3 below 10%%, 2 below 20%%", r.ConnectByOccupancy)
	}
	if len(r.Warnings) != 1 {
		t.Errorf("warnings %q, want the early reuse one", r.Warnings)
	}
}

// TestSampleLive checks the live figures of a sample (the metrics exporter's): occupancy now, the
// port failures so far and whether the ports ran out; TIME_WAIT is -1 without sock_diag.
func TestSampleLive(t *testing.T) {
	o, t0 := newTestObservatory(dial.StrategyKernel)
	fail := &net.OpError{Op: "dial", Err: os.NewSyscallError("connect", syscall.EADDRNOTAVAIL)}
	var open []Conn
	steps := []struct {
		name      string
		do        func()
		occupancy float64
		failures  uint64
		exhausted bool
	}{
		{"nothing yet", func() {}, 0, 0, false},
		{"three to A, one to B", func() {
			for i, d := range []dial.Destination{dstA, dstA, dstA, dstB} {
				open = append(open, o.Opened(d, local("127.0.0.1", 40000+i), t0, time.Microsecond))
			}
		}, 0.3, 0, false},
		{"A runs out", func() {
			o.Failed(dstA, fail, t0.Add(time.Millisecond))
			o.Failed(dstA, fail, t0.Add(2*time.Millisecond))
		}, 0.3, 2, true},
		{"closed again", func() {
			for _, c := range open {
				o.Closed(c, t0.Add(time.Second), t0.Add(time.Second), false)
			}
		}, 0, 2, true},
	}
	for _, st := range steps {
		st.do()
		s := o.Sample()
		if s.Occupancy != st.occupancy || s.PortFailures != st.failures || s.Exhausted != st.exhausted ||
			s.TimeWait != -1 || s.TimeWaitOthers != -1 {
			t.Errorf("%s: sample %+v, want occupancy %v, %d port failures, exhausted %v, TIME_WAIT -1",
				st.name, s, st.occupancy, st.failures, st.exhausted)
		}
	}
}

// TestExhaustionFixUp: a connect that completed before the first failure but is recorded after it
// is counted into the exhaustion record.
func TestExhaustionFixUp(t *testing.T) {
	o, t0 := newTestObservatory(dial.StrategyRange)
	fail := &net.OpError{Op: "dial", Err: os.NewSyscallError("connect", syscall.EADDRNOTAVAIL)}
	o.Opened(dstA, local("127.0.0.1", 40000), t0, time.Millisecond)
	o.Failed(dstA, fail, t0.Add(5*time.Millisecond))
	o.Opened(dstA, local("127.0.0.1", 40001), t0.Add(time.Millisecond), time.Millisecond)   // done at 2 ms: counted
	o.Opened(dstA, local("127.0.0.1", 40002), t0.Add(6*time.Millisecond), time.Millisecond) // after: not
	x := o.Report().Exhaustion
	if x.Open != 2 || x.Concurrency != 2 || x.Occupancy != 0.2 {
		t.Errorf("exhaustion %+v, want 2 open, concurrency 2, occupancy 0.2", x)
	}
	// An earlier failure replaces the record.
	o.Failed(dstA, fail, t0.Add(500*time.Microsecond))
	if x := o.Report().Exhaustion; x.AtS != 0.0005 {
		t.Errorf("exhaustion at %v s, want the earliest 0.0005", x.AtS)
	}
}

// TestObservatoryBadInput: an unknown local address (a failed getsockname, a connection that is
// not TCP), and a Conn from nowhere, change nothing.
func TestObservatoryBadInput(t *testing.T) {
	o, t0 := newTestObservatory(dial.StrategyKernel)
	c := o.Opened(dstA, netip.AddrPort{}, t0, 0)
	o.Closed(c, t0, t0, true)
	o.Closed(Conn{}, t0, t0, true)
	if r := o.Report(); len(r.Sources) != 0 {
		t.Errorf("sources %+v from bad input", r.Sources)
	}
}

func TestReadCounters(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "net"), 0o755)
	os.WriteFile(filepath.Join(dir, "net/netstat"), []byte("TcpExt: SyncookiesSent TW TWRecycled TWKilled ListenOverflows ListenDrops TCPTimeWaitOverflow\n"+
		"TcpExt: 0 11 12 13 14 15 16\nIpExt: InNoRoutes\nIpExt: 1\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "net/snmp"), []byte("Tcp: RtoAlgorithm MaxConn ActiveOpens AttemptFails EstabResets OutRsts\n"+
		"Tcp: 1 -1 21 22 23 24\n"), 0o644)
	c := ReadCounters(dir)
	want := [NumCounters]uint64{11, 12, 13, 16, 14, 15, 21, 22, 23, 24}
	if !c.Valid || c.V != want {
		t.Errorf("counters %+v, want %v", c, want)
	}
	d := c.Sub(Counters{Valid: true, V: [NumCounters]uint64{1, 2, 3, 100}})
	if d.V[TW] != 10 || d.V[TCPTimeWaitOverflow] != 0 {
		t.Errorf("delta %v", d.V)
	}
	if ReadCounters(filepath.Join(dir, "missing")).Valid {
		t.Error("a missing /proc reads as valid")
	}
}

// diagMsg builds one netlink message of a sock_diag answer.
func diagMsg(typ uint16, payload []byte) []byte {
	b := make([]byte, nlmsgHdrLen+len(payload))
	binary.NativeEndian.PutUint32(b, uint32(len(b)))
	binary.NativeEndian.PutUint16(b[4:], typ)
	copy(b[nlmsgHdrLen:], payload)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

func TestParseDump(t *testing.T) {
	sock := make([]byte, diagMsgLen)
	sock[0], sock[1] = unix.AF_INET, StateTimeWait
	binary.BigEndian.PutUint16(sock[4:], 40000)
	binary.BigEndian.PutUint16(sock[6:], 7001)
	copy(sock[8:], []byte{127, 0, 0, 2})
	copy(sock[24:], []byte{127, 0, 0, 1})
	errMsg := make([]byte, 4)
	binary.NativeEndian.PutUint32(errMsg, uint32(0xffffffff-uint32(unix.EPERM)+1))
	tests := []struct {
		name    string
		data    []byte
		n       int
		done    bool
		wantErr bool
	}{
		{"one socket", diagMsg(unix.SOCK_DIAG_BY_FAMILY, sock), 1, false, false},
		{"two then done", append(append(diagMsg(unix.SOCK_DIAG_BY_FAMILY, sock), diagMsg(unix.SOCK_DIAG_BY_FAMILY, sock)...), diagMsg(unix.NLMSG_DONE, []byte{0, 0, 0, 0})...), 2, true, false},
		{"error", diagMsg(unix.NLMSG_ERROR, errMsg), 0, true, true},
		{"short socket", diagMsg(unix.SOCK_DIAG_BY_FAMILY, sock[:10]), 0, false, true},
		{"length past the end", func() []byte {
			b := diagMsg(unix.SOCK_DIAG_BY_FAMILY, sock)
			binary.NativeEndian.PutUint32(b, 9999)
			return b
		}(), 0, false, true},
		{"length below the header", func() []byte {
			b := diagMsg(unix.SOCK_DIAG_BY_FAMILY, sock)
			binary.NativeEndian.PutUint32(b, 3)
			return b
		}(), 0, false, true},
		{"empty", nil, 0, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []Socket
			done, err := parseDump(tt.data, unix.AF_INET, func(s Socket) { got = append(got, s) })
			if (err != nil) != tt.wantErr || done != tt.done || len(got) != tt.n {
				t.Fatalf("got %d sockets, done %v, err %v; want %d, %v, error %v", len(got), done, err, tt.n, tt.done, tt.wantErr)
			}
			if tt.n > 0 && (got[0].State != StateTimeWait || got[0].Local.String() != "127.0.0.2:40000" || got[0].Remote.String() != "127.0.0.1:7001") {
				t.Errorf("socket %+v", got[0])
			}
		})
	}
}

func FuzzParseDump(f *testing.F) {
	f.Add([]byte{})
	f.Add(diagMsg(unix.SOCK_DIAG_BY_FAMILY, make([]byte, diagMsgLen)))
	f.Add(diagMsg(unix.NLMSG_ERROR, []byte{1, 2, 3, 4}))
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, fam := range []int{unix.AF_INET, unix.AF_INET6} {
			parseDump(b, fam, func(Socket) {})
		}
	})
}

// BenchmarkOpenedClosed is the observatory's per-connection cost: one Opened and one Closed.
func BenchmarkOpenedClosed(b *testing.B) {
	o, t0 := newTestObservatory(dial.StrategyKernel)
	o.cfg.Range = Range{Lo: 32768, Hi: 60999, Size: 28232, Effective: 28232}
	o.cfg.Capacity = 28232
	addrs := make([]netip.AddrPort, 28232)
	for i := range addrs {
		addrs[i] = local("127.0.0.1", 32768+i)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		c := o.Opened(dstA, addrs[i%len(addrs)], t0, 20*time.Microsecond)
		o.Closed(c, t0, t0, true)
		i++
	}
}

// TestClosing: a port taken out of use by Closing, before close(2) frees it, is not shared with
// the connection that takes it next, whenever Closed comes; the exhaustion record still counts the
// closing connection open until its close returned (Closed's times).
func TestClosing(t *testing.T) {
	for _, s := range []dial.Strategy{dial.StrategyKernel, dial.StrategyBind} {
		t.Run(s.String(), func(t *testing.T) {
			o, t0 := newTestObservatory(s)
			at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
			c1 := o.Opened(dstA, local("127.0.0.1", 40000), at(0), 10*time.Microsecond)
			o.Opened(dstA, local("127.0.0.1", 40002), at(0), 10*time.Microsecond)
			o.Closing(&c1)
			o.Closing(&c1) // once only
			// Failed at 4 ms, recorded before Closed: c1 was open then (its close returned at 5 ms).
			o.Failed(dstA, &net.OpError{Op: "dial", Err: os.NewSyscallError("connect", syscall.EADDRNOTAVAIL)}, at(4))
			o.Opened(dstB, local("127.0.0.1", 40000), at(6), 10*time.Microsecond)
			o.Closed(c1, at(3), at(5), false)
			r := o.Report()
			if r.SharedPorts.Ports != 0 || r.Destinations[0].PeakConcurrent != 2 || r.Destinations[1].PeakConcurrent != 1 {
				t.Errorf("shared %+v, destinations %+v: want none shared, peaks 2 and 1", r.SharedPorts, r.Destinations)
			}
			if x := r.Exhaustion; x == nil || x.Open != 2 || x.Concurrency != 2 {
				t.Errorf("exhaustion %+v, want 2 open", x)
			}
			if r.Sources[0].Reuse != 1 || r.Sources[0].UniquePorts != 2 {
				t.Errorf("source %+v, want 2 unique ports, 1 reused", r.Sources[0])
			}
		})
	}
}

// TestTableShare: a worker's observatory takes its share of the run's 64 MiB table budget, so
// that 53 workers take 64 MiB between them, not 64 MiB each; the warning names its own budget.
func TestTableShare(t *testing.T) {
	tests := []struct {
		share    float64
		chunks   int
		warnsMiB string
	}{
		{0, 8192, "64 MiB"},
		{1, 8192, "64 MiB"},
		{0.25, 2048, "16 MiB"},
		{1.0 / 53, 256, "2 MiB"}, // 154 chunks, raised to the floor
	}
	for _, tt := range tests {
		o := New(Config{Strategy: dial.StrategyKernel, Range: Range{Lo: 1024, Hi: 65535, Size: 64512, Effective: 64512},
			Capacity: 64512, NoSockDiag: true, Proc: "/nonexistent", Share: tt.share,
			Destinations: []netip.AddrPort{dstA.AddrPort}})
		o.Begin(time.Unix(1000, 0))
		if o.budget != tt.chunks {
			t.Errorf("share %v: %d chunks, want %d", tt.share, o.budget, tt.chunks)
		}
		// One connection per 1024-port chunk of a source (one chunk of its table each), one more
		// than the budget holds.
		for i := 0; i <= tt.chunks; i++ {
			src := fmt.Sprintf("127.0.%d.%d", i/63/250, i/63%250+1)
			o.Opened(dstA, local(src, 1024+(i%63)*1024), time.Unix(1000, 0), time.Microsecond)
		}
		if w := strings.Join(o.Report().Warnings, "\n"); !strings.Contains(w, "reached their "+tt.warnsMiB+" budget") {
			t.Errorf("share %v: warnings %q, want the %s budget reached", tt.share, w, tt.warnsMiB)
		}
	}
}

// TestSkipsAfter: a TIME_WAIT dump over a tenth of the interval makes the sampling skip enough
// intervals to keep it to a tenth of the time (it skipped one at most, half the time in dumps); in
// one of N worker processes, to a tenth over N.
func TestSkipsAfter(t *testing.T) {
	tests := []struct {
		cost, interval time.Duration
		share          float64
		want           int
	}{
		{50 * time.Millisecond, time.Second, 0, 0},
		{100 * time.Millisecond, time.Second, 0, 0},
		{101 * time.Millisecond, time.Second, 0, 1},
		{200 * time.Millisecond, time.Second, 0, 1},
		{400 * time.Millisecond, time.Second, 0, 3},
		{2 * time.Second, time.Second, 0, 19},
		{time.Millisecond, 0, 0, 0},
		{400 * time.Millisecond, time.Second, 1, 3},
		// One of 4 worker processes dumping the same namespace: a tenth of the time over 4.
		{20 * time.Millisecond, time.Second, 0.25, 0},
		{25 * time.Millisecond, time.Second, 0.25, 0},
		{50 * time.Millisecond, time.Second, 0.25, 1},
		{100 * time.Millisecond, time.Second, 0.25, 3},
	}
	for _, tt := range tests {
		if got := skipsAfter(tt.cost, tt.interval, tt.share); got != tt.want {
			t.Errorf("skipsAfter(%v, %v, %v) = %d, want %d", tt.cost, tt.interval, tt.share, got, tt.want)
		}
	}
}
