package exporter

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/portstorm/portstorm/loadgen/metrics"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestCheckAddr(t *testing.T) {
	tests := []struct {
		addr   string
		remote bool
		err    error
		msg    string
	}{
		{"127.0.0.1:9464", false, nil, ""},
		{"127.1.2.3:0", false, nil, ""},
		{"[::1]:9464", false, nil, ""},
		{"localhost:9464", false, nil, ""},
		{":9464", false, ErrRemote, ""},
		{"0.0.0.0:9464", false, ErrRemote, ""},
		{"192.0.2.1:9464", false, ErrRemote, ""},
		{"example.com:9464", false, ErrRemote, ""},
		{"0.0.0.0:9464", true, nil, ""},
		{"127.0.0.1", false, nil, "want host:port"},
		{"127.0.0.1:", false, nil, "no port"},
	}
	for _, tt := range tests {
		t.Run(tt.addr, func(t *testing.T) {
			err := CheckAddr(tt.addr, tt.remote)
			switch {
			case tt.err != nil && !errors.Is(err, tt.err):
				t.Errorf("error %v, want %v", err, tt.err)
			case tt.msg != "" && (err == nil || !strings.Contains(err.Error(), tt.msg)):
				t.Errorf("error %v, want %q", err, tt.msg)
			case tt.err == nil && tt.msg == "" && err != nil:
				t.Errorf("error %v", err)
			}
		})
	}
}

func scrape(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// serveMetrics serves e's metrics on a loopback port until the test ends and returns their URL.
func serveMetrics(t *testing.T, e *Exporter) string {
	t.Helper()
	srv, err := Serve("127.0.0.1:0", false, e.Handler())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return "http://" + srv.Addr() + "/metrics"
}

func TestServeAndMove(t *testing.T) {
	e := New("p")
	srv, err := Serve("127.0.0.1:0", false, e.Handler())
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	url := "http://" + srv.Addr() + "/metrics"
	before := scrape(t, url)
	if !strings.Contains(before, `portstorm_connections_attempted_total{plan="p"} 0`) {
		t.Errorf("no zero counter before the first interval:\n%s", before)
	}
	s := metrics.NewSnapshot()
	s.Stage, s.EndUS = 1, 2_000_000
	s.Attempted, s.Established, s.Active, s.PeakActive = 3, 3, 2, 3
	s.Outcomes[metrics.OK] = 1
	for _, v := range []int64{40, 400, 4000} {
		s.Hist[metrics.Connect].RecordValue(v)
	}
	// A target stall under the arrival model: slot_wait is a series of its own.
	s.Hist[metrics.SlotWait].RecordValue(900_000)
	// Requests: 5 written at a rate (7 offered), one failed with ECONNRESET; the request
	// histograms are series of their own.
	s.Requests, s.RequestsOffered = 5, 7
	s.RequestOutcomes[metrics.OK], s.RequestOutcomes[metrics.ECONNRESET] = 4, 1
	for _, l := range []metrics.Latency{metrics.RTT, metrics.RequestIntended, metrics.RequestLag, metrics.WindowWait} {
		s.Hist[l].RecordValue(300)
	}
	e.Observe(s)
	e.Observe(s)
	after := scrape(t, url)
	for _, want := range []string{
		`portstorm_connections_attempted_total{plan="p"} 6`,
		`portstorm_connections_active{plan="p"} 2`,
		`portstorm_stage{plan="p"} 1`,
		`portstorm_elapsed_seconds{plan="p"} 2`,
		`portstorm_outcomes_total{outcome="ok",plan="p"} 2`,
		`portstorm_latency_seconds_bucket{latency="connect",plan="p",le="5e-05"} 2`,
		`portstorm_latency_seconds_bucket{latency="connect",plan="p",le="0.0005"} 4`,
		`portstorm_latency_seconds_bucket{latency="connect",plan="p",le="0.005"} 6`,
		`portstorm_latency_seconds_count{latency="connect",plan="p"} 6`,
		`portstorm_latency_seconds_count{latency="slot_wait",plan="p"} 2`,
		`portstorm_requests_total{outcome="ok",plan="p"} 8`,
		`portstorm_requests_total{outcome="ECONNRESET",plan="p"} 2`,
		`portstorm_requests_total{outcome="EOF",plan="p"} 0`,
		`portstorm_requests_offered_total{plan="p"} 14`,
		`portstorm_latency_seconds_count{latency="request_intended",plan="p"} 2`,
		`portstorm_latency_seconds_bucket{latency="request_lag",plan="p",le="0.0005"} 2`,
		`portstorm_latency_seconds_count{latency="window_wait",plan="p"} 2`,
		`portstorm_latency_seconds_count{latency="rtt",plan="p"} 2`,
	} {
		if !strings.Contains(after, want) {
			t.Errorf("missing %s", want)
		}
	}
	if err := srv.Close(); err != nil {
		t.Error(err)
	}
	http.DefaultClient.CloseIdleConnections()
}
