//go:build linux

package main

import (
	"encoding/json"
	"io"
	"os"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/portstorm/portstorm/loadgen/spec"
	"github.com/portstorm/portstorm/target"
)

// TestTargetFlags: `portstorm target` refuses out-of-range flags with exit 2 and an error in the
// flags' own names, never the library's field names, and accepts the bounds themselves. Every case
// gets a stop signal ahead of time, so that a flag accepted by mistake ends the target at once
// (exit 0) instead of serving until the test times out.
func TestTargetFlags(t *testing.T) {
	internal := []string{"MaxFrame", "AllowRemote", "IdleTimeout", "HeaderTimeout", "MaxConns", "CloseAfter", "HTTPStatus", "PortBelow"}
	tests := []struct {
		name string
		args []string
		code int
		want []string // each must be in stderr
	}{
		{"max frame above 16 MiB", []string{"--max-frame", "16777217"}, 2, []string{"--max-frame 16777217", "16 MiB"}},
		{"max frame zero", []string{"--max-frame", "0"}, 2, []string{"--max-frame 0"}},
		{"max frame negative", []string{"--max-frame", "-1"}, 2, []string{"--max-frame -1"}},
		{"max frame at 16 MiB", []string{"--max-frame", "16777216"}, 0, nil},
		{"idle timeout zero", []string{"--idle-timeout", "0s"}, 2, []string{"--idle-timeout 0s"}},
		{"idle timeout negative", []string{"--idle-timeout", "-1s"}, 2, []string{"--idle-timeout -1s"}},
		{"header timeout negative", []string{"--mode", "http", "--header-timeout", "-1s"}, 2, []string{"--header-timeout -1s"}},
		{"header timeout outside http", []string{"--header-timeout", "1s"}, 2, []string{"--header-timeout applies to --mode http"}},
		{"header timeout in http", []string{"--mode", "http", "--header-timeout", "1s"}, 0, nil},
		{"max conns negative", []string{"--max-conns", "-1"}, 2, []string{"--max-conns -1"}},
		{"procs negative", []string{"--procs", "-1"}, 2, []string{"--procs -1", "1 to 1024"}},
		{"procs above the cap", []string{"--procs", "1025"}, 2, []string{"--procs 1025"}},
		{"procs one", []string{"--procs", "1"}, 0, nil},
		{"close after negative", []string{"--close-first", "--close-after", "-1"}, 2, []string{"--close-after -1"}},
		{"http status below 200", []string{"--mode", "http", "--http-status", "199"}, 2, []string{"--http-status 199"}},
		{"port below out of range", []string{"--port-below", "70000"}, 2, []string{"--port-below 70000"}},
		{"listen off loopback", []string{"--listen", "0.0.0.0:0"}, 2, []string{`--listen "0.0.0.0:0"`, "--allow-remote"}},
		{"listen without port", []string{"--listen", "127.0.0.1"}, 2, []string{`--listen "127.0.0.1"`, "host:port"}},
		{"every problem at once", []string{"--max-frame", "0", "--idle-timeout", "0s", "--listen", "10.0.0.1:0"}, 2,
			[]string{"--max-frame 0", "--idle-timeout 0s", `--listen "10.0.0.1:0"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sig := make(chan os.Signal, 1)
			sig <- syscall.SIGTERM
			code, _, stderr := runMain(t, sig, append([]string{"target"}, tt.args...)...)
			if code != tt.code {
				t.Fatalf("exit %d, want %d\n%s", code, tt.code, stderr)
			}
			for _, w := range tt.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr lacks %q:\n%s", w, stderr)
				}
			}
			for _, n := range internal {
				if strings.Contains(stderr, n) {
					t.Errorf("stderr names the internal field %s:\n%s", n, stderr)
				}
			}
		})
	}
}

// TestTargetConfigStdin: a target process started by a coordinator takes its configuration as JSON
// on stdin (spec.TargetProcess) and reports its addresses and counters as JSON lines; a bad
// configuration is refused (exit 2) naming --config-stdin.
func TestTargetConfigStdin(t *testing.T) {
	cert, key, err := target.SelfSigned([]string{"localhost"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	good := func(tls bool) string {
		tp := spec.TargetProcess{Config: target.Config{Listen: []string{"127.0.0.1:0"}, Mode: target.ModeHTTP, ReusePort: true}}
		if tls {
			tp.CertPEM, tp.KeyPEM = cert, key
		}
		b, err := json.Marshal(tp)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	for _, tt := range []struct {
		name, in string
		wantErr  string
	}{
		{"plain", good(false), ""},
		{"tls", good(true), ""},
		{"not JSON", "--mode http", "--config-stdin"},
		{"bad certificate", `{"Config":{"Listen":["127.0.0.1:0"]},"CertPEM":"eA==","KeyPEM":"eA=="}`, "--config-stdin"},
		{"off loopback", `{"Config":{"Listen":["0.0.0.0:0"]}}`, "loopback"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			sig := make(chan os.Signal, 1)
			sig <- syscall.SIGTERM
			var out strings.Builder
			e := &env{stdin: strings.NewReader(tt.in), stdout: &out, stderr: io.Discard, signals: sig}
			err := e.targetFromStdin(true)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err %v, want one naming %s", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			lines := strings.Split(strings.TrimSpace(out.String()), "\n")
			var addrs, stats target.Message
			if len(lines) != 2 || json.Unmarshal([]byte(lines[0]), &addrs) != nil || json.Unmarshal([]byte(lines[1]), &stats) != nil ||
				len(addrs.Addrs) != 1 || stats.Stats == nil {
				t.Fatalf("output %q, want an addresses line and a counters line", out.String())
			}
		})
	}
}

// TestTargetProcs: a standalone target's GOMAXPROCS is --procs when set, else the environment's
// GOMAXPROCS when set (a coordinator's target processes), else half the cores.
func TestTargetProcs(t *testing.T) {
	for _, tt := range []struct {
		name    string
		flag    int
		environ []string
		want    int
	}{
		{"flag", 3, []string{"GOMAXPROCS=7"}, 3},
		{"environment", 0, []string{"HOME=/", "GOMAXPROCS=7"}, runtime.GOMAXPROCS(0)},
		{"default", 0, []string{"HOME=/"}, target.DefaultProcs(runtime.NumCPU())},
		{"empty GOMAXPROCS is unset", 0, []string{"GOMAXPROCS="}, target.DefaultProcs(runtime.NumCPU())},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := &env{environ: tt.environ}
			if got := e.targetProcs(tt.flag); got != tt.want {
				t.Errorf("targetProcs(%d) with %q = %d, want %d", tt.flag, tt.environ, got, tt.want)
			}
		})
	}
	for cores, want := range map[int]int{1: 1, 2: 1, 3: 1, 8: 4, 64: 32} {
		if got := target.DefaultProcs(cores); got != want {
			t.Errorf("DefaultProcs(%d) = %d, want %d", cores, got, want)
		}
	}
}
