package calibrate

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func openFDs() int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return -1
	}
	return len(ents)
}

func TestRun(t *testing.T) {
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name string
		ctx  context.Context
		o    Options
		want int    // reference connections timed
		err  string // error wanted
	}{
		{"a small calibration", context.Background(), Options{Connections: 200, Warmup: 10}, 200, ""},
		{"IPv6 loopback", context.Background(), Options{Connections: 20, Warmup: -1, Address: "::1"}, 20, ""},
		{"a signal before it ends", cancelled, Options{Connections: 200}, 0, "canceled"},
		// Bounded in time: a host that cannot make MinConnections within MaxTime refuses to guess.
		{"no time to calibrate", context.Background(), Options{Connections: 5000, MaxTime: time.Nanosecond}, 0, "too loaded to calibrate"},
		{"no such address", context.Background(), Options{Connections: 10, Address: "192.0.2.1"}, 0, "calibration"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.o.Address == "::1" {
				if _, err := os.Stat("/proc/net/if_inet6"); err != nil {
					t.Skip("no IPv6")
				}
			}
			before := openFDs()
			c, err := Run(tt.ctx, tt.o)
			if after := openFDs(); after > before {
				t.Errorf("open fds %d after, %d before", after, before)
			}
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.Connections != tt.want || c.UnitUS <= 0 || c.ConnectP50US <= 0 || c.EchoP50US <= 0 || c.DurationUS <= 0 {
				t.Errorf("calibration %+v, want %d connections and positive times", c, tt.want)
			}
			// The unit is the median of connect + exchange: at least each part's median, roughly.
			if c.UnitUS < c.ConnectP50US || c.UnitUS < c.EchoP50US {
				t.Errorf("unit %.2fµs below a part's median (connect %.2fµs, echo %.2fµs)", c.UnitUS, c.ConnectP50US, c.EchoP50US)
			}
		})
	}
}

func TestMedian(t *testing.T) {
	us := time.Microsecond
	tests := []struct {
		in   []time.Duration
		want float64
	}{
		{[]time.Duration{3 * us}, 3},
		{[]time.Duration{5 * us, 1 * us, 3 * us}, 3},
		{[]time.Duration{4 * us, 1 * us, 2 * us, 3 * us}, 2.5},
		{[]time.Duration{1234567 * time.Nanosecond}, 1234.56},
	}
	for _, tt := range tests {
		if got := median(tt.in); got != tt.want {
			t.Errorf("median(%v) = %v, want %v", tt.in, got, tt.want)
		}
	}
}
