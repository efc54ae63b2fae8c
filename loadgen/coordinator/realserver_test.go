//go:build linux

package coordinator

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/portstorm/portstorm/loadgen/plan"
	"github.com/portstorm/portstorm/loadgen/report"
)

// The real-server tests run configs/nginx.yaml and configs/redis.yaml, shortened, against nginx
// and redis-server started here on a loopback port and stopped after the test. .ci/run installs
// both from Debian and sets PORTSTORM_REAL_SERVERS=1, which turns a missing server into a failure
// instead of a skip.

// serverBinary finds a server's executable, or skips (fails under PORTSTORM_REAL_SERVERS=1).
func serverBinary(t *testing.T, name string) string {
	t.Helper()
	for _, dir := range []string{"", "/usr/sbin/", "/usr/bin/"} {
		if p, err := exec.LookPath(dir + name); err == nil {
			return p
		}
	}
	if os.Getenv("PORTSTORM_REAL_SERVERS") == "1" {
		t.Fatalf("%s is not installed (PORTSTORM_REAL_SERVERS=1 wants the real-server tests)", name)
	}
	t.Skipf("%s is not installed; apt-get install nginx-light redis-server to run this test", name)
	return ""
}

// freePort returns a loopback port nothing listens on right now.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startServer runs cmd until the test ends (stopped by its PID) and waits until addr accepts
// connections: the server says nothing when it is ready, so readiness is a bounded dial loop.
func startServer(t *testing.T, cmd *exec.Cmd, addr string) {
	t.Helper()
	var stderr strings.Builder
	cmd.Stderr = &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", cmd.Path, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("%s exited before listening on %s: %v\n%s", cmd.Path, addr, err, stderr.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not listen on %s within 10 s: %v\n%s", cmd.Path, addr, err, stderr.String())
		}
	}
}

// startNginx starts nginx on a loopback port with its own prefix, an access log that records
// each request's connection and its number on that connection, and a gzip location whose
// responses are chunked.
func startNginx(t *testing.T) (addr, accessLog string) {
	bin := serverBinary(t, "nginx")
	dir := t.TempDir()
	port := freePort(t)
	addr = fmt.Sprintf("127.0.0.1:%d", port)
	accessLog = filepath.Join(dir, "access.log")
	if err := os.WriteFile(filepath.Join(dir, "index.html"), []byte(strings.Repeat("portstorm\n", 100)), 0o644); err != nil {
		t.Fatal(err)
	}
	// user: as root, nginx's workers would otherwise run as nobody, who cannot read the test's
	// private temporary folder.
	conf := fmt.Sprintf(`worker_processes 1;
user root;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log;
daemon off;
events { worker_connections 4096; }
http {
  log_format reqs '$connection $connection_requests $status $request_method';
  access_log %[2]s reqs;
  client_body_temp_path %[1]s/body;
  proxy_temp_path %[1]s/proxy;
  fastcgi_temp_path %[1]s/fastcgi;
  uwsgi_temp_path %[1]s/uwsgi;
  scgi_temp_path %[1]s/scgi;
  keepalive_requests 1000;
  server {
    listen %[3]s;
    root %[1]s;
    location = /gzip { default_type text/plain; gzip on; gzip_min_length 1; gzip_types text/plain; alias %[1]s/index.html; }
  }
}
`, dir, accessLog, addr)
	cf := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(cf, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	startServer(t, exec.Command(bin, "-p", dir, "-c", cf), addr)
	return addr, accessLog
}

// requestsPerConnection reads nginx's access log: how many requests each connection carried, and
// how many requests there were.
func requestsPerConnection(t *testing.T, log string) (map[string]int, int) {
	t.Helper()
	f, err := os.Open(log)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]int{}
	total := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 {
			continue
		}
		total++
		n, _ := strconv.Atoi(fields[1])
		out[fields[0]] = max(out[fields[0]], n)
	}
	return out, total
}

// shortPlan loads a config with overrides and shortens its stages.
func shortPlan(t *testing.T, file string, sets ...string) *plan.Plan {
	t.Helper()
	p, err := plan.LoadFile(filepath.Join("..", "..", "configs", file), plan.Overrides{Sets: sets})
	if err != nil {
		t.Fatal(err)
	}
	p.Defaults()
	if errs := p.Validate(); len(errs) > 0 {
		t.Fatalf("%s: %v", file, errors.Join(errs...))
	}
	return p
}

func TestNginx(t *testing.T) {
	addr, accessLog := startNginx(t)
	target := fmt.Sprintf(`target.addresses=["%s"]`, addr)
	stages := `load.stages=[{duration: 1s, target: 50}, {duration: 1s, target: 50}]`
	tests := []struct {
		name        string
		sets        []string
		perConn     int    // requests nginx saw on each connection (0: not checked)
		outcome     string // the outcome every connection ends in
		thresholdOK bool
	}{
		{"keep-alive", nil, 10, "ok", true},
		{"chunked gzip", []string{`connection.send.http.path=/gzip`, `connection.send.http.headers=["Accept-Encoding: gzip"]`}, 10, "ok", true},
		{"connection close", []string{`connection.send.http.headers=["Connection: close"]`}, 1, "ok", true},
		{"HEAD", []string{`connection.send.http.method=HEAD`}, 10, "ok", true},
		// A deliberately wrong expectation: its own outcome, and the plan's threshold fails.
		{"404 expected, 200 received", []string{`connection.send.http.status=404`}, 1, "status_mismatch", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := os.Truncate(accessLog, 0); err != nil {
				t.Fatal(err)
			}
			p := shortPlan(t, "nginx.yaml", append([]string{target, stages}, tt.sets...)...)
			// The config's "first_byte.p99 < 50ms" judges the machine's speed, not the real-server
			// path this test is about: at load 15-20 on 2 cores nginx's first byte p99 was 60-150 ms
			// (nginx, portstorm and other suites share the cores). Its place takes a latency
			// threshold that holds at any speed and still needs the real run's figure: a p99 above
			// zero exists only when first bytes were timed (a missing figure fails the final
			// judgement), and the observed value must be this run's p99 (checked below).
			latency := -1
			for i, th := range p.Thresholds {
				if strings.HasPrefix(th.Expr, "first_byte.p99") {
					p.Thresholds[i].Expr, latency = "first_byte.p99 > 0ms", i
				}
			}
			if latency < 0 {
				t.Fatalf("configs/nginx.yaml has no first_byte.p99 threshold: %+v", p.Thresholds)
			}
			s := runPlan(t, p, Options{})
			c := s.Connections
			t.Logf("connections %d, rtt p50 %d µs p99 %d µs, first byte p99 %d µs", c.Established,
				s.Latency["rtt"].P50, s.Latency["rtt"].P99, s.Latency["first_byte"].P99)
			if len(s.Thresholds) != len(p.Thresholds) {
				t.Fatalf("thresholds %+v, want the plan's %d judged", s.Thresholds, len(p.Thresholds))
			}
			// The gate judged this run's first bytes: what it observed is the summary's p99 (to the
			// gate's rounding, three significant digits at most).
			fb := s.Thresholds[latency]
			obs, err := time.ParseDuration(fb.Observed)
			want := time.Duration(s.Latency["first_byte"].P99) * time.Microsecond
			if err != nil || !fb.Pass || want <= 0 || obs < want*99/100-time.Microsecond || obs > want*101/100+time.Microsecond {
				t.Errorf("threshold %+v (observed %v, %v): want it passed on the run's first byte p99 %v", fb, obs, err, want)
			}
			if c.Established == 0 || c.Failed != 0 || s.Outcomes[tt.outcome] != c.Established {
				t.Fatalf("connections %+v, outcomes %v (examples %v): want every connection %s", c, s.Outcomes, s.Examples, tt.outcome)
			}
			// Every request nginx answered was read and timed, first byte and full response. (The
			// end of the schedule cuts conversations between requests, so some connections carry
			// fewer than count.)
			perConn, requests := requestsPerConnection(t, accessLog)
			if rtt := s.Latency["rtt"]; rtt.Count != int64(requests) || s.Latency["first_byte"].Count != int64(requests) {
				t.Errorf("rtt %d and first byte %d answers timed; nginx answered %d requests", rtt.Count, s.Latency["first_byte"].Count, requests)
			}
			most := 0
			for _, n := range perConn {
				most = max(most, n)
			}
			if most != tt.perConn || len(perConn) != int(c.Established) {
				t.Errorf("nginx saw %d connections carrying up to %d requests; want %d connections, up to %d", len(perConn), most, c.Established, tt.perConn)
			}
			if got := s.Verdict == "pass"; got != tt.thresholdOK {
				t.Errorf("verdict %s, thresholds %+v; want pass=%v", s.Verdict, s.Thresholds, tt.thresholdOK)
			}
		})
	}
}

func TestRedis(t *testing.T) {
	bin := serverBinary(t, "redis-server")
	port := freePort(t)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	startServer(t, exec.Command(bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--dir", t.TempDir(), "--maxclients", "4000"), addr)
	target := fmt.Sprintf(`target.addresses=["%s"]`, addr)
	stages := `load.stages=[{duration: 2s, target: 300}]`
	tests := []struct {
		name    string
		sets    []string
		outcome string
		// stat is the INFO section and field that count what Redis answered.
		section, stat string
	}{
		{"PING", nil, "ok", "commandstats", "cmdstat_ping:calls="},
		{"SET", []string{`connection.send.redis.command=[SET, portstorm, "1"]`, `connection.send.redis.reply=OK`}, "ok", "commandstats", "cmdstat_set:calls="},
		{"INCR, any reply", []string{`connection.send.redis.command=[INCR, counter]`, `connection.send.redis.reply=`}, "ok", "commandstats", "cmdstat_incr:calls="},
		{"unknown command", []string{`connection.send.redis.command=[NOSUCHCOMMAND]`, `connection.send.redis.reply=`}, "reply_mismatch", "errorstats", "errorstat_ERR:count="},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := shortPlan(t, "redis.yaml", append([]string{target, stages}, tt.sets...)...)
			s := runPlan(t, p, Options{})
			c := s.Connections
			if c.Established == 0 || c.Failed != 0 || s.Outcomes[tt.outcome] != c.Established {
				t.Fatalf("connections %+v, outcomes %v (examples %v): want every connection %s", c, s.Outcomes, s.Examples, tt.outcome)
			}
			// Every command Redis answered was read and timed.
			calls := redisStat(t, addr, tt.section, tt.stat)
			if n := s.Latency["rtt"].Count; n != calls || n < int64(c.Established) {
				t.Errorf("%d replies timed; Redis counts %s%d on %d connections", n, tt.stat, calls, c.Established)
			}
		})
	}
}

// redisStat reads a counter from Redis (INFO section, the number after stat), then resets the
// counters (CONFIG RESETSTAT), so that each subtest counts its own.
func redisStat(t *testing.T, addr, section, stat string) int64 {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	r := bufio.NewReader(c)
	send := func(args ...string) string {
		fmt.Fprintf(c, "*%d\r\n", len(args))
		for _, a := range args {
			fmt.Fprintf(c, "$%d\r\n%s\r\n", len(a), a)
		}
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(line, "$") {
			return line
		}
		n, _ := strconv.Atoi(strings.TrimSpace(line[1:]))
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(r, buf); err != nil {
			t.Fatal(err)
		}
		return string(buf)
	}
	info := send("INFO", section)
	send("CONFIG", "RESETSTAT")
	for _, l := range strings.Split(info, "\n") {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(l), stat); ok {
			n, _ := strconv.ParseInt(strings.Split(rest, ",")[0], 10, 64)
			return n
		}
	}
	t.Fatalf("INFO %s has no %s:\n%s", section, stat, info)
	return 0
}

// TestBuiltinProtocols runs the configs that need nothing else: HTTP against the built-in http
// target, TLS handshakes against the built-in TLS target, IPv6 on ::1.
func TestBuiltinProtocols(t *testing.T) {
	tests := []struct {
		file  string
		check func(t *testing.T, s *report.Summary)
	}{
		{"http.yaml", func(t *testing.T, s *report.Summary) {
			if s.Target == nil || s.Target.Requests != uint64(s.Latency["rtt"].Count) || s.Target.Accepted != s.Connections.Established {
				t.Errorf("target %+v answered, %d answers timed, %d connections", s.Target, s.Latency["rtt"].Count, s.Connections.Established)
			}
		}},
		{"tls.yaml", func(t *testing.T, s *report.Summary) {
			h := s.Latency["tls_handshake"]
			if h.Count != int64(s.Connections.Established) || h.P50 <= 0 || h.P99 < h.P50 {
				t.Errorf("tls_handshake %+v for %d connections", h, s.Connections.Established)
			}
			if s.Target == nil || s.Target.TLSHandshakes != s.Connections.Established || s.Target.TLSFailed != 0 {
				t.Errorf("target %+v", s.Target)
			}
		}},
		{"ipv6.yaml", func(t *testing.T, s *report.Summary) {
			if len(s.Ports.Sources) != 1 || s.Ports.Sources[0].Address != "::1" {
				t.Errorf("port sources %+v, want ::1", s.Ports.Sources)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			// The examples' latency limits (tls_handshake.p99 < 50ms) are for a quiet machine; here
			// the verdict keeps what holds at any speed, with minute timeouts: slow is not failed.
			p := shortPlan(t, tt.file, `load.stages=[{duration: 1s, target: 100}]`, `thresholds=["errors.rate == 0"]`,
				"connection.connect_timeout=2m", "connection.io_timeout=2m", "load.graceful_stop=2m")
			if tt.file == "ipv6.yaml" {
				if l, err := net.Listen("tcp", "[::1]:0"); err != nil {
					t.Skipf("no IPv6 loopback here: %v", err)
				} else {
					l.Close()
				}
			}
			s := runPlan(t, p, Options{})
			if c := s.Connections; c.Established == 0 || c.Failed != 0 || s.Errors.Count != 0 || s.Verdict != "pass" {
				t.Fatalf("connections %+v, outcomes %v (examples %v), verdict %s", c, s.Outcomes, s.Examples, s.Verdict)
			}
			tt.check(t, s)
		})
	}
}

// TestTLSFailures: a client that does not trust the server's certificate fails every handshake
// as tls_handshake, and the connect latency is not affected.
func TestTLSFailures(t *testing.T) {
	p := shortPlan(t, "tls.yaml", `load.stages=[{duration: 500ms, target: 100}]`, `connection.tls.server_name=not-the-name.example`)
	s := runPlan(t, p, Options{})
	c := s.Connections
	if c.Established == 0 || s.Outcomes["tls_handshake"] != c.Established || s.Latency["tls_handshake"].Count != 0 {
		t.Fatalf("connections %+v, outcomes %v (examples %v), tls_handshake %+v: want every handshake failed",
			c, s.Outcomes, s.Examples, s.Latency["tls_handshake"])
	}
}
