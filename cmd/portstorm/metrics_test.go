//go:build linux

package main

import (
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// TestMetricsLingerAndPush runs a short plan with the endpoint, a linger of an hour and a push to a
// test Pushgateway: after the run the final figures (ports, requests, the verdict) are pushed and
// still served, until a signal ends the linger; the exit code stays the run's (0).
func TestMetricsLingerAndPush(t *testing.T) {
	checkFDs(t)
	type push struct{ method, path, body string }
	pushes := make(chan push, 64)
	gw := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		pushes <- push{r.Method, r.URL.Path, string(b)}
	}))
	defer gw.Close()
	p := tinyPlan(t, "linger", `thresholds: ["errors.count == 0"]`)
	dir := filepath.Join(t.TempDir(), "r")
	var out syncBuffer
	errb := &syncBuffer{want: "for 1h0m0s (a signal ends it)", seen: make(chan struct{})}
	sig := make(chan os.Signal, 1)
	done := make(chan int, 1)
	go func() {
		done <- Main([]string{"run", p, "-q", "--out", dir, "--metrics-listen", "127.0.0.1:0", "--metrics-linger", "1h",
			"--metrics-push", gw.URL, "--metrics-push-label", "instance=ci"}, nil, &out, errb, sig)
	}()
	select {
	case <-errb.seen:
	case code := <-done:
		t.Fatalf("exit %d before lingering:\n%s", code, errb.String())
	}
	// The final push came before the linger began.
	var last push
	for len(pushes) > 0 {
		last = <-pushes
	}
	// The grouping labels come in any order (client_golang keeps them in a map).
	parts := strings.Split(strings.TrimPrefix(last.path, "/metrics/"), "/")
	group := map[string]string{}
	for i := 0; i+1 < len(parts); i += 2 {
		group[parts[i]] = parts[i+1]
	}
	if last.method != http.MethodPut || len(parts) != 6 || parts[0] != "job" ||
		!maps.Equal(group, map[string]string{"job": "portstorm", "plan": "linger", "instance": "ci"}) ||
		!strings.Contains(last.body, "portstorm_run_finished 1\n") || !strings.Contains(last.body, `portstorm_verdict{verdict="pass"} 1`) {
		t.Errorf("final push %s %s:\n%s", last.method, last.path, last.body)
	}
	url := regexp.MustCompile(`http://\S+/metrics`).FindString(errb.String())
	client := &http.Client{}
	resp, err := client.Get(url)
	if err != nil {
		t.Fatalf("the endpoint does not answer while it lingers: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	page := string(b)
	s := readSummary(t, dir)
	for _, w := range []string{
		`portstorm_run_finished{plan="linger"} 1`,
		`portstorm_verdict{plan="linger",verdict="pass"} 1`,
		`portstorm_connections_attempted_total{plan="linger"} ` + strconv.FormatUint(s.Connections.Attempted, 10),
		`portstorm_ports_unique{plan="linger"} `,
		`portstorm_time_wait_peak_sockets{plan="linger",side="ours"} `,
		`portstorm_requests_written_total{plan="linger"} `,
		`portstorm_latency_quantiles_seconds{latency="connect",plan="linger",quantile="0.99"} `,
	} {
		if !strings.Contains(page, w) {
			t.Errorf("lingering endpoint lacks %s", w)
		}
	}
	sig <- syscall.SIGINT
	if code := <-done; code != 0 {
		t.Errorf("exit %d after a signal ended the linger, want the run's 0\n%s", code, errb.String())
	}
	client.CloseIdleConnections()
	if resp, err := client.Get(url); err == nil {
		resp.Body.Close()
		t.Error("the endpoint still answers after the linger")
	}
	client.CloseIdleConnections()
}

// tinyPlan is a run of a few connections to the built-in echo target in a fifth of a second.
func tinyPlan(t *testing.T, name, extra string) string {
	t.Helper()
	return writePlan(t, `version: 1
name: `+name+`
target: {builtin: {mode: echo}}
connection: {send: {bytes: 32B, count: 1}, close: rst, connect_timeout: 2m, io_timeout: 2m}
load: {model: arrival, graceful_stop: 2m, stages: [{duration: 200ms, target: 50}]}
output: {interval: 100ms}
`+extra)
}

// TestMetricsFlagsGuard: the new flags are checked before anything runs (exit 2, naming the flag).
func TestMetricsFlagsGuard(t *testing.T) {
	p := tinyPlan(t, "guard", "")
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"linger without an endpoint", []string{"--metrics-linger", "30s"}, "needs --metrics-listen"},
		{"a negative linger", []string{"--metrics-listen", "127.0.0.1:0", "--metrics-linger", "-1s"}, "want 0 or more"},
		{"push options without a push", []string{"--metrics-push-interval", "5s"}, "need --metrics-push"},
		{"a push URL without a scheme", []string{"--metrics-push", "127.0.0.1:9091"}, "http(s) URL"},
		{"a bad grouping label", []string{"--metrics-push", "http://127.0.0.1:9", "--metrics-push-label", "a-b=1"}, "not a label name"},
		{"the plan label", []string{"--metrics-push", "http://127.0.0.1:9", "--metrics-push-label", "plan=x"}, "set by portstorm"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "r")
			code, _, stderr := runMain(t, nil, append([]string{"run", p, "-q", "--out", out}, tt.args...)...)
			if code != 2 || !strings.Contains(stderr, tt.want) {
				t.Errorf("exit %d, stderr %s", code, stderr)
			}
			if _, err := os.Stat(out); err == nil {
				t.Error("the run started")
			}
		})
	}
}
