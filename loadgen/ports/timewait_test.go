//go:build linux

package ports

import (
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/portstorm/portstorm/internal/loopback"
	"github.com/portstorm/portstorm/loadgen/dial"
	"github.com/portstorm/portstorm/loadgen/isolate/nstest"
)

// TestTimeWaitOnlyOurs: another program's connections to the run's destination, closed before the
// run, leave TIME_WAIT sockets on the same source address; the run's TIME_WAIT count leaves them
// out and reports them apart, as sharing the port space.
func TestTimeWaitOnlyOurs(t *testing.T) {
	if !nstest.Run(t) {
		return
	}
	// A TIME_WAIT socket here ignores resets (RFC 1337). Loopback queues segments per CPU, so the
	// server's ACK of the client's FIN can arrive after its own FIN: the client, already in
	// TIME_WAIT, answers that stale ACK with one of its own, the server's socket is gone by then,
	// its listener resets, and the reset ends the TIME_WAIT early. That took one of this test's
	// sockets in 1 run of 5 (seen with the tcp:tcp_send_reset tracepoint: a reset from the
	// listener right after the server's socket was destroyed).
	nstest.Sysctl(t, "tcp_rfc1337", "1")
	// The run draws from 40000-40999; the other program binds its ports itself.
	const lo, hi = 40000, 40999
	for _, tt := range []struct {
		name   string
		others []int // the other program's local ports
		// sharing is how many of others share the run's port space (in its range)
		sharing, ours int
	}{
		{"others only", []int{40001, 40002, 40003, 40004, 40005}, 5, 0},
		{"others and ours", []int{40011, 40012, 40013, 40014, 40015}, 5, 3},
		{"ours only", nil, 0, 4},
		{"others outside the run's range", []int{41001, 41002, 40021}, 1, 2},
	} {
		t.Run(tt.name, func(t *testing.T) {
			// The peer reads to the client's FIN and closes: the client's end goes to TIME_WAIT.
			addr := loopback.Serve(t, func(c net.Conn) { io.Copy(io.Discard, c) })
			dst := dial.NewDestination(netip.MustParseAddrPort(addr))
			closeFirst := func(port int, record func(netip.AddrPort)) {
				d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port}}
				c, err := d.Dial("tcp", dst.AddrPort.String())
				if err != nil {
					t.Fatal(err)
				}
				la := c.LocalAddr().(*net.TCPAddr).AddrPort()
				if record != nil {
					record(la)
				}
				c.Close()
			}
			for _, port := range tt.others {
				closeFirst(port, nil) // another program: the observatory never hears of it
			}
			o := New(Config{Destinations: []netip.AddrPort{dst.AddrPort}, Interval: time.Hour, Proc: "/proc",
				Range: Range{Lo: lo, Hi: hi, Size: hi - lo + 1, Effective: hi - lo + 1}})
			o.Baseline()
			for range tt.ours {
				closeFirst(0, func(la netip.AddrPort) {
					now := time.Now()
					c := o.Opened(dst, la, now, 0)
					o.Closed(c, now, now, true)
				})
			}
			if tt.ours == 0 {
				// The observatory knows the run's source address from one connection still open.
				c, err := net.Dial("tcp", dst.AddrPort.String())
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				o.Opened(dst, c.LocalAddr().(*net.TCPAddr).AddrPort(), time.Now(), 0)
			}
			waitTimeWait(t, dst.AddrPort, len(tt.others)+tt.ours)

			s := o.Sample()
			if s.TimeWaitOthers != int64(tt.sharing) {
				t.Errorf("sample counted %d others' TIME_WAIT sockets, want the %d in the run's range", s.TimeWaitOthers, tt.sharing)
			}
			if s.TimeWait != int64(tt.ours) {
				t.Errorf("sample counted %d client TIME_WAIT sockets, want only the run's %d (another program left %d)", s.TimeWait, tt.ours, len(tt.others))
			}
			r := o.Report()
			if r.TimeWaitPeak != int64(tt.ours) || r.TimeWait.Peak != int64(tt.ours) || r.TimeWait.TargetPeak != 0 {
				t.Errorf("report TIME_WAIT %+v (time_wait_peak %d), want peak %d, none on the target's side", r.TimeWait, r.TimeWaitPeak, tt.ours)
			}
			if r.TimeWait.OthersPeak != int64(tt.sharing) {
				t.Errorf("others' TIME_WAIT %d, want the %d in the run's range", r.TimeWait.OthersPeak, tt.sharing)
			}
			warned := strings.Contains(strings.Join(r.Warnings, "\n"), "others' TIME_WAIT sockets sharing the port space: ")
			if warned != (tt.sharing > 0) {
				t.Errorf("warnings %q: want the others' TIME_WAIT one only when there are some", r.Warnings)
			}
		})
	}
}

// waitTimeWait dumps TIME_WAIT toward dst until n sockets are there: the peer's FIN that puts each
// client end into TIME_WAIT crosses loopback after close() returns. Bounded in dumps, not in time.
func waitTimeWait(t *testing.T, dst netip.AddrPort, n int) {
	t.Helper()
	got := -1
	for range 10000 {
		got = 0
		if err := Dump(unix.AF_INET, 1<<StateTimeWait, func(k Socket) {
			if k.Remote == dst {
				got++
			}
		}); err != nil {
			t.Fatal(err)
		}
		if got >= n {
			return
		}
	}
	var states []string
	Dump(unix.AF_INET, AllStates, func(k Socket) {
		states = append(states, fmt.Sprintf("%s->%s:%d", k.Local, k.Remote, k.State))
	})
	t.Fatalf("%d TIME_WAIT sockets toward %s, want %d; the namespace's sockets (state after the colon): %v", got, dst, n, states)
}

// TestTimeWaitDumpOnlyWhenAny: a TIME_WAIT sample dumps the kernel's sockets only when the
// namespace's own count (proc/net/sockstat's tw) says there are some, or cannot be read; with
// none, every count is 0 (sampled, not -1) without a dump. The cases with a sockstat of their own
// show which one the sample believed: a count of 0 beside real TIME_WAIT sockets is the dump left
// out.
func TestTimeWaitDumpOnlyWhenAny(t *testing.T) {
	if !nstest.Run(t) {
		return
	}
	nstest.Sysctl(t, "tcp_rfc1337", "1") // (see TestTimeWaitOnlyOurs)
	for _, tt := range []struct {
		name     string
		ours     int    // the run's connections closed first: TIME_WAIT on its side
		sockstat string // the sockstat the sample reads ("": the kernel's own, /proc)
		dumps    int
		want     int64
	}{
		{"none, the kernel's count", 0, "", 0, 0},
		{"two, the kernel's count", 2, "", 1, 2},
		{"two, a count of 0", 2, "sockets: used 9\nTCP: inuse 1 orphan 0 tw 0 alloc 3 mem 1\n", 0, 0},
		{"two, a count of 2", 2, "sockets: used 9\nTCP: inuse 1 orphan 0 tw 2 alloc 3 mem 1\n", 1, 2},
		{"two, no count", 2, "sockets: used 9\nTCP: inuse 1 orphan 0 alloc 3 mem 1\n", 1, 2},
		{"two, no sockstat", 2, "-", 1, 2},
	} {
		t.Run(tt.name, func(t *testing.T) {
			proc := "/proc"
			if tt.sockstat != "" {
				proc = t.TempDir()
				if tt.sockstat != "-" {
					if err := os.MkdirAll(filepath.Join(proc, "net"), 0o755); err != nil {
						t.Fatal(err)
					}
					if err := os.WriteFile(filepath.Join(proc, "net/sockstat"), []byte(tt.sockstat), 0o644); err != nil {
						t.Fatal(err)
					}
				}
			}
			addr := loopback.Serve(t, func(c net.Conn) { io.Copy(io.Discard, c) })
			dst := dial.NewDestination(netip.MustParseAddrPort(addr))
			o := New(Config{Destinations: []netip.AddrPort{dst.AddrPort}, Interval: time.Hour, Proc: proc,
				Range: Range{Lo: 40000, Hi: 40999, Size: 1000, Effective: 1000}})
			o.Baseline()
			// One connection open, so that the observatory knows the run's source address.
			c, err := net.Dial("tcp", dst.AddrPort.String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			o.Opened(dst, c.LocalAddr().(*net.TCPAddr).AddrPort(), time.Now(), 0)
			for range tt.ours {
				d := net.Dialer{}
				c, err := d.Dial("tcp", dst.AddrPort.String())
				if err != nil {
					t.Fatal(err)
				}
				now := time.Now()
				k := o.Opened(dst, c.LocalAddr().(*net.TCPAddr).AddrPort(), now, 0)
				c.Close()
				o.Closed(k, now, now, true)
			}
			waitTimeWait(t, dst.AddrPort, tt.ours)
			dumps := 0
			dumpStep = func() { dumps++ }
			defer func() { dumpStep = nil }()
			s := o.Sample()
			if dumps != tt.dumps || s.TimeWait != tt.want || s.TimeWaitTarget != 0 || s.TimeWaitOthers != 0 {
				t.Errorf("%d dumps, TIME_WAIT %d (target %d, others %d); want %d dumps, %d, 0, 0",
					dumps, s.TimeWait, s.TimeWaitTarget, s.TimeWaitOthers, tt.dumps, tt.want)
			}
		})
	}
}
