package main

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
)

func TestReadVersion(t *testing.T) {
	stamped := &debug.BuildInfo{GoVersion: "go1.26.1", Main: debug.Module{Version: "v0.3.1"}, Settings: []debug.BuildSetting{
		{Key: "vcs.revision", Value: "abc123"}, {Key: "vcs.time", Value: "2030-01-02T03:04:05Z"}, {Key: "vcs.modified", Value: "true"},
		{Key: "GOOS", Value: "linux"}, {Key: "GOARCH", Value: "arm64"}}}
	here := runtime.GOOS + "/" + runtime.GOARCH
	tests := []struct {
		name          string
		bi            *debug.BuildInfo
		ldV, ldC, ldD string
		want          string
	}{
		{"no build info", nil, "", "", "", "portstorm (devel)\ncommit:   unknown\nbuilt:    unknown\ngo:       " + runtime.Version() + "\nplatform: " + here + "\n"},
		{"go install @v0.3.1 in a clone with changes", stamped, "", "", "",
			"portstorm v0.3.1\ncommit:   abc123 (modified)\nbuilt:    2030-01-02T03:04:05Z\ngo:       go1.26.1\nplatform: linux/arm64\n"},
		{"release build: ldflags win", stamped, "v0.4.0", "def456", "2031-01-01T00:00:00Z",
			"portstorm v0.4.0\ncommit:   def456\nbuilt:    2031-01-01T00:00:00Z\ngo:       go1.26.1\nplatform: linux/arm64\n"},
		{"(devel) module, ldflags version only", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}}, "v0.1.0", "", "",
			"portstorm v0.1.0\ncommit:   unknown\nbuilt:    unknown\ngo:       " + runtime.Version() + "\nplatform: " + here + "\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b bytes.Buffer
			readVersion(tt.bi, tt.ldV, tt.ldC, tt.ldD).write(&b)
			if b.String() != tt.want {
				t.Errorf("got\n%s\nwant\n%s", b.String(), tt.want)
			}
		})
	}
}

// TestVersionLdflags builds the binary as a release does (-ldflags -X) and runs `portstorm version`.
func TestVersionLdflags(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "portstorm")
	ld := "-X main.version=v0.9.9 -X main.commit=0123abcd -X main.date=2030-01-02T03:04:05Z"
	if out, err := exec.Command("go", "build", "-ldflags", ld, "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, "version").CombinedOutput()
	if err != nil {
		t.Fatalf("version: %v\n%s", err, out)
	}
	want := "portstorm v0.9.9\ncommit:   0123abcd\nbuilt:    2030-01-02T03:04:05Z\ngo:       " + runtime.Version() + "\nplatform: " + runtime.GOOS + "/" + runtime.GOARCH + "\n"
	if string(out) != want {
		t.Errorf("got\n%s\nwant\n%s", out, want)
	}
}

// TestMakeRelease runs `make release` (the Go toolchain and make alone) and checks it gives static
// linux/amd64 and linux/arm64 binaries, stamped with the version, and a SHA256SUMS that matches
// them. Cross-compiling takes a minute: it runs with PORTSTORM_LONG_TESTS=1 (.ci/run sets it).
func TestMakeRelease(t *testing.T) {
	if os.Getenv("PORTSTORM_LONG_TESTS") != "1" {
		t.Skip("set PORTSTORM_LONG_TESTS=1 to run (cross-compiles two binaries, about a minute)")
	}
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("skipped: make is not installed")
	}
	dist := t.TempDir()
	cmd := exec.Command("make", "-C", "../..", "release", "VERSION=v0.0.0-test", "DIST="+dist)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make release: %v\n%s", err, out)
	}
	sums, err := os.ReadFile(filepath.Join(dist, "SHA256SUMS"))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]elf.Machine{"portstorm_v0.0.0-test_linux_amd64": elf.EM_X86_64, "portstorm_v0.0.0-test_linux_arm64": elf.EM_AARCH64}
	listed := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(sums))
	for sc.Scan() {
		sum, name, ok := strings.Cut(sc.Text(), "  ")
		if !ok {
			t.Fatalf("SHA256SUMS line %q", sc.Text())
		}
		b, err := os.ReadFile(filepath.Join(dist, name))
		if err != nil {
			t.Fatal(err)
		}
		if h := sha256.Sum256(b); hex.EncodeToString(h[:]) != sum {
			t.Errorf("%s: SHA256SUMS says %s, file is %x", name, sum, h)
		}
		listed[name] = true
	}
	for name, machine := range want {
		if !listed[name] {
			t.Errorf("%s not in SHA256SUMS:\n%s", name, sums)
			continue
		}
		f, err := elf.Open(filepath.Join(dist, name))
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range f.Progs {
			if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
				t.Errorf("%s is dynamically linked (%v)", name, p.Type)
			}
		}
		if f.Machine != machine {
			t.Errorf("%s: machine %v, want %v", name, f.Machine, machine)
		}
		f.Close()
	}
	if len(listed) != len(want) {
		t.Errorf("SHA256SUMS lists %d files, want %d:\n%s", len(listed), len(want), sums)
	}
	if runtime.GOOS == "linux" && runtime.GOARCH == "amd64" {
		out, err := exec.Command(filepath.Join(dist, "portstorm_v0.0.0-test_linux_amd64"), "version").CombinedOutput()
		if err != nil || !strings.HasPrefix(string(out), "portstorm v0.0.0-test\ncommit:   ") || strings.Contains(string(out), "unknown") {
			t.Errorf("version: %v\n%s", err, out)
		}
	}
}
