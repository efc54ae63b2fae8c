// Package nstest runs a test in a fresh private network namespace: the test binary starts itself
// again, as a child created with CLONE_NEWNET, running only that test. Port-counting tests use it so
// that nothing else on the machine can skew them, and so that they may set the namespace's sysctls.
package nstest

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/portstorm/portstorm/loadgen/isolate"
)

var setUp = sync.OnceValue(func() error { return isolate.SetUp(isolate.Sysctls{}) })

// Run returns true inside the namespace, where the test body goes on. Outside, it runs the test
// again in a new namespace, reports the child's result as this test's and returns false; it skips
// the test when no namespace can be made here.
//
//	func TestX(t *testing.T) {
//		if !nstest.Run(t) {
//			return
//		}
//		...
//	}
func Run(t *testing.T) bool {
	t.Helper()
	if isolate.InChild() {
		if err := setUp(); err != nil {
			t.Fatal(err)
		}
		return true
	}
	parts := strings.Split(t.Name(), "/")
	for i, p := range parts {
		parts[i] = "^" + regexp.QuoteMeta(p) + "$"
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := isolate.Command(exe, os.Environ(), "-test.run="+strings.Join(parts, "/"), "-test.count=1", "-test.v", "-test.timeout=3m")
	out, err := cmd.CombinedOutput()
	if err != nil && cmd.ProcessState == nil {
		t.Skipf("no private network namespace: %v", isolate.Explain(err))
	}
	text := string(out)
	switch {
	case err != nil:
		t.Fatalf("in a private network namespace: %v\n%s", err, text)
	case strings.Contains(text, "testing: warning: no tests to run"):
		t.Fatalf("the child ran no test for %q:\n%s", t.Name(), text)
	case testing.Verbose():
		t.Logf("in a private network namespace:\n%s", text)
	}
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, "--- SKIP") && strings.Contains(l, t.Name()) {
			t.Skipf("skipped in the namespace:\n%s", text)
		}
	}
	return false
}

// Sysctl sets net.ipv4.<name> inside the test's namespace. It fails the test when called outside
// one made by Run: tests never change the host's sysctls.
func Sysctl(t testing.TB, name, value string) {
	t.Helper()
	if !isolate.InChild() {
		t.Fatalf("nstest.Sysctl(%s) outside a private network namespace", name)
	}
	self, err1 := os.Readlink("/proc/self/ns/net")
	host, err2 := os.Readlink("/proc/1/ns/net")
	if err1 != nil || (err2 == nil && self == host) {
		t.Fatalf("nstest.Sysctl(%s): this process shares the host's network namespace (%s)", name, self)
	}
	if err := os.WriteFile(filepath.Join("/proc/sys/net/ipv4", name), []byte(value), 0o644); err != nil {
		t.Fatal(fmt.Errorf("net.ipv4.%s=%s: %w", name, value, err))
	}
}

// Bench is Run for benchmarks: in the namespace it returns true and the benchmark runs; outside it
// runs the benchmark in a new namespace, logs the child's result lines and returns false.
func Bench(b *testing.B) bool {
	b.Helper()
	if isolate.InChild() {
		if err := setUp(); err != nil {
			b.Fatal(err)
		}
		return true
	}
	// The testing package calls a benchmark function more than once (to find b.N, and once more
	// when it has sub-benchmarks); the namespace runs it once.
	benchMu.Lock()
	ran := benchRan[b.Name()]
	benchRan[b.Name()] = true
	benchMu.Unlock()
	if ran {
		return false
	}
	parts := strings.Split(b.Name(), "/")
	for i, p := range parts {
		parts[i] = "^" + regexp.QuoteMeta(p) + "$"
	}
	exe, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	args := []string{"-test.run=^$", "-test.bench=" + strings.Join(parts, "/"), "-test.benchmem", "-test.timeout=5m"}
	if f := flagValue("test.benchtime"); f != "" {
		args = append(args, "-test.benchtime="+f)
	}
	cmd := isolate.Command(exe, os.Environ(), args...)
	out, err := cmd.CombinedOutput()
	if err != nil && cmd.ProcessState == nil {
		b.Skipf("no private network namespace: %v", isolate.Explain(err))
	}
	if err != nil {
		b.Fatalf("in a private network namespace: %v\n%s", err, out)
	}
	var lines []string
	for _, l := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(l, "Benchmark") || strings.Contains(l, ".go:") {
			lines = append(lines, l)
		}
	}
	b.Logf("in a private network namespace:\n%s", strings.Join(lines, "\n"))
	return false
}

var (
	benchMu  sync.Mutex
	benchRan = map[string]bool{}
)

func flagValue(name string) string {
	if f := flag.Lookup(name); f != nil {
		return f.Value.String()
	}
	return ""
}
