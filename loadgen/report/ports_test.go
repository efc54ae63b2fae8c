package report

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/portstorm/portstorm/loadgen/ports"
)

// TestTimelinePorts: rows with port figures add the port columns, readable by name; a row without
// them (a skipped sample) reads -1; a TIME_WAIT not sampled reads -1.
func TestTimelinePorts(t *testing.T) {
	k := ports.Counters{Valid: true}
	k.V[ports.TWRecycled] = 7
	rows := []TimelineRow{
		{EndS: 1, Ports: &ports.Sample{TimeWait: 12, TimeWaitTarget: 3, UniquePorts: 100, SharedNow: 2, PortReuse: 4, TupleReuse: 5, EarlyReuse: 1, Kernel: k}},
		{EndS: 2, Ports: &ports.Sample{TimeWait: -1, TimeWaitTarget: -1}},
		{EndS: 3},
	}
	dir := t.TempDir()
	if err := WriteTimeline(dir, rows); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "timeline.csv"))
	if err != nil {
		t.Fatal(err)
	}
	tl, err := ReadTimeline(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		col  string
		want []float64
	}{
		{"time_wait", []float64{12, -1, -1}},
		{"time_wait_target", []float64{3, -1, -1}},
		{"unique_ports", []float64{100, 0, -1}},
		{"shared_ports", []float64{2, 0, -1}},
		{"port_reuse", []float64{4, 0, -1}},
		{"four_tuple_reuse", []float64{5, 0, -1}},
		{"early_reuse", []float64{1, 0, -1}},
		{"kernel_TWRecycled", []float64{7, -1, -1}},
		{"kernel_OutRsts", []float64{0, -1, -1}},
	}
	for _, tt := range tests {
		got, ok := tl.Column(tt.col)
		if !ok {
			t.Errorf("no column %s in %v", tt.col, tl.Header)
			continue
		}
		for i := range got {
			if got[i] != tt.want[i] {
				t.Errorf("%s = %v, want %v", tt.col, got, tt.want)
				break
			}
		}
	}
}

// TestWritePortsText: the text summary shows the exhaustion with its system call, the parity pass
// and the TIME_WAIT peak; nothing when ports were not observed.
func TestWritePortsText(t *testing.T) {
	var none bytes.Buffer
	writePorts(&none, nil)
	if none.Len() != 0 {
		t.Errorf("wrote %q without a port report", none.String())
	}
	r := &ports.Report{Strategy: "bind", Range: ports.Range{Lo: 40000, Hi: 40999, Size: 1000, Effective: 1000, From: "ip_local_port_range"},
		Sources:      []ports.SourceReport{{Address: "127.0.0.1", Connections: 1000, UniquePorts: 1000, Parity: ports.Parity{Preferred: "even", SecondPass: &ports.Pass{AtS: 0.5, Occupancy: 0.5}}}},
		Destinations: []ports.PairReport{{Source: "127.0.0.1", Destination: "127.0.0.1:7", Capacity: 1000, PeakConcurrent: 1000, Occupancy: 1}},
		Exhaustion:   &ports.Exhaustion{AtS: 1.5, Concurrency: 1000, Occupancy: 1, Open: 1000, Errno: "EADDRINUSE", Syscall: "bind", Source: "127.0.0.1", Destination: "127.0.0.1:7"},
		Failures:     []ports.Failure{{Syscall: "bind", Errno: "EADDRINUSE", Count: 9}},
		TimeWait:     ports.TimeWait{Peak: 42, Samples: 3}, TimeWaitPeak: 42,
	}
	var b bytes.Buffer
	writePorts(&b, r)
	for _, w := range []string{"strategy bind", "EADDRINUSE from bind()", "100.0% of 1000", "second parity pass at 0.50s", "peak 42", "EADDRINUSE from bind: 9"} {
		if !strings.Contains(b.String(), w) {
			t.Errorf("text lacks %q:\n%s", w, b.String())
		}
	}
	const others = "others' sockets sharing the port space"
	if strings.Contains(b.String(), others) {
		t.Errorf("text names others' TIME_WAIT when there was none:\n%s", b.String())
	}
	r.TimeWait.OthersPeak = 148
	b.Reset()
	writePorts(&b, r)
	if !strings.Contains(b.String(), others+": 148") {
		t.Errorf("text lacks %q: 148:\n%s", others, b.String())
	}
}
