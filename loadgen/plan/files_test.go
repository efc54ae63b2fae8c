//go:build linux

package plan

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

const pipedPlan = "version: 1\nname: piped\ntarget: {builtin: {}}\nload: {stages: [{duration: 1s, target: 1}]}\n"

// fifo makes a named pipe at path with a writer waiting on it: when something opens the pipe for
// reading, the writer writes data (less than a pipe's buffer) and closes, so that the reader gets
// data and then end of file instead of waiting for ever. A loader that opens the pipe therefore
// accepts or refuses what it reads, and the test sees that, rather than hanging. When nothing
// opened the pipe, the cleanup opens it without waiting, which lets the writer end.
func fifo(t *testing.T, path string, data string) {
	t.Helper()
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		f, err := os.OpenFile(path, os.O_WRONLY, 0)
		if err != nil {
			done <- err
			return
		}
		_, err = f.Write([]byte(data))
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		done <- err
	}()
	t.Cleanup(func() {
		r, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
		if err != nil {
			t.Errorf("releasing the pipe's writer: %v", err)
			return
		}
		if err := <-done; err != nil {
			t.Errorf("the pipe's writer: %v", err)
		}
		r.Close()
	})
}

func TestLoadFileRefusesNonRegular(t *testing.T) {
	tests := []struct {
		name string
		make func(t *testing.T, dir string) string // returns the plan path
		want string
	}{
		{"folder", func(t *testing.T, dir string) string { return dir }, "is a folder; want a regular file"},
		{"named pipe", func(t *testing.T, dir string) string {
			p := filepath.Join(dir, "plan.yaml")
			fifo(t, p, pipedPlan)
			return p
		}, "is a named pipe (FIFO); want a regular file"},
		{"symbolic link to a named pipe", func(t *testing.T, dir string) string {
			p := filepath.Join(dir, "pipe")
			fifo(t, p, pipedPlan)
			l := filepath.Join(dir, "plan.yaml")
			if err := os.Symlink(p, l); err != nil {
				t.Fatal(err)
			}
			return l
		}, "is a named pipe (FIFO)"},
		{"character device", func(t *testing.T, dir string) string { return "/dev/null" }, "/dev/null is a character device"},
		{"socket", func(t *testing.T, dir string) string {
			p := filepath.Join(dir, "plan.sock")
			l, err := net.Listen("unix", p)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { l.Close() })
			return p
		}, "is a socket"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := tc.make(t, t.TempDir())
			p, err := LoadFile(path, Overrides{})
			if err == nil {
				t.Fatalf("accepted (plan %q), want a refusal", p.Name)
			}
			if !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), path) {
				t.Errorf("got %q, want the path and %q", err, tc.want)
			}
		})
	}
}

// TestOpenDoesNotWaitOnFIFO: a named pipe put where the plan was after LoadFile's stat (the open is
// the race's second half) is refused at once, not waited on. No writer ever comes: an open that
// waited would hang until the test binary's -timeout, which is this test's failure.
func TestOpenDoesNotWaitOnFIFO(t *testing.T) {
	path := filepath.Join(t.TempDir(), "plan.yaml")
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		t.Fatal(err)
	}
	f, _, err := openRegular(path)
	if err == nil {
		f.Close()
		t.Fatal("opened a named pipe, want a refusal")
	}
	if !strings.Contains(err.Error(), "named pipe") {
		t.Errorf("got %q, want it to name the named pipe", err)
	}
}

// selfSignedPEM is a CA certificate in PEM.
func selfSignedPEM(t *testing.T) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Unix(0, 0), NotAfter: time.Unix(1<<33, 0),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}

// TestValidateReadsNamedFiles: a file the plan names that the run could not use is refused by
// Validate, at the file:line of its key, so that validate catches it and run stops before it
// makes a results folder.
func TestValidateReadsNamedFiles(t *testing.T) {
	const tlsPlan = "version: 1\nname: files\ntarget: {addresses: [\"127.0.0.1:9\"]}\nconnection:\n  tls:\n    # the CA\n    ca_file: %s\nload: {stages: [{duration: 1s, target: 1}]}\n"
	const sendPlan = "version: 1\nname: files\ntarget: {addresses: [\"127.0.0.1:9\"]}\nconnection:\n  send:\n    # the request\n    file: %s\nload: {stages: [{duration: 1s, target: 1}]}\n"
	file := func(body string) func(t *testing.T, dir string) string {
		return func(t *testing.T, dir string) string {
			if err := os.WriteFile(filepath.Join(dir, "named"), []byte(body), 0o600); err != nil {
				t.Fatal(err)
			}
			return "named"
		}
	}
	pipe := func(body string) func(t *testing.T, dir string) string {
		return func(t *testing.T, dir string) string {
			fifo(t, filepath.Join(dir, "named"), body)
			return "named"
		}
	}
	folder := func(t *testing.T, dir string) string {
		if err := os.Mkdir(filepath.Join(dir, "named"), 0o700); err != nil {
			t.Fatal(err)
		}
		return "named"
	}
	tests := []struct {
		name  string
		plan  string
		named func(t *testing.T, dir string) string // makes the named file; returns the path to write in the plan
		want  string                                // "" for a valid plan
	}{
		{"ca_file that is not PEM", tlsPlan, file("just some text\n"), "is not PEM"},
		{"ca_file that is a folder", tlsPlan, folder, "is a folder"},
		{"ca_file that is a named pipe", tlsPlan, pipe(selfSignedPEM(t)), "is a named pipe"},
		{"ca_file with a key and no certificate", tlsPlan, file("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"), "1 PEM block(s) but no CERTIFICATE"},
		{"ca_file whose certificate does not parse", tlsPlan, file("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"), "none parses"},
		{"ca_file over the limit", tlsPlan, file(strings.Repeat("x", MaxCAFile+1)), fmt.Sprintf("holds %d bytes; the limit is %d bytes", MaxCAFile+1, MaxCAFile)},
		{"ca_file missing", tlsPlan, func(*testing.T, string) string { return "absent.pem" }, "no such file"},
		{"ca_file with a certificate", tlsPlan, file(selfSignedPEM(t)), ""},
		{"send.file that is a folder", sendPlan, folder, "is a folder"},
		{"send.file that is a named pipe", sendPlan, pipe("GET / HTTP/1.0\r\n\r\n"), "is a named pipe"},
		{"send.file empty", sendPlan, file(""), "is empty"},
		{"send.file with a request", sendPlan, file("PING\r\n"), ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "plan.yaml")
			if err := os.WriteFile(path, fmt.Appendf(nil, tc.plan, tc.named(t, dir)), 0o600); err != nil {
				t.Fatal(err)
			}
			_, errs := loadAll(path, Overrides{})
			if tc.want == "" {
				if len(errs) > 0 {
					t.Fatalf("refused: %v", errors.Join(errs...))
				}
				return
			}
			if len(errs) != 1 {
				t.Fatalf("got %d errors, want 1: %v", len(errs), errors.Join(errs...))
			}
			at := path + ":7: connection."
			if msg := errs[0].Error(); !strings.HasPrefix(msg, at) || !strings.Contains(msg, tc.want) {
				t.Errorf("got %q, want %q... with %q", msg, at, tc.want)
			}
		})
	}
}

func TestSetValueIsOneDocument(t *testing.T) {
	tests := []struct {
		name, set string
		want      string // the error, or "" when the value is accepted
		value     func(*Plan) any
		wantValue any
	}{
		{name: "second document after ---", set: "name=a\n---\nb", want: "--set name: the value holds more than one YAML document"},
		{name: "text after an end marker", set: "name=a\n...\nb", want: "--set name: the value holds more than one YAML document"},
		{name: "integer then a second document", set: "load.max_in_flight=5\n---\n6", want: "--set load.max_in_flight: the value holds more than one YAML document"},
		{name: "a list then a second document", set: "load.stages=[{duration: 1s, target: 1}]\n--- x", want: "--set load.stages: the value holds more than one YAML document"},
		{name: "one document after a start marker", set: "name=---\nok", value: func(p *Plan) any { return p.Name }, wantValue: "ok"},
		{name: "one document with an end marker", set: "load.max_in_flight=7\n...\n", value: func(p *Plan) any { return p.Load.MaxInFlight }, wantValue: 7},
		{name: "dashes inside a value", set: "name=a---b", value: func(p *Plan) any { return p.Name }, wantValue: "a---b"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Parse("p.yaml", []byte(overrideBase), Overrides{Sets: []string{tc.set}})
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				if got := tc.value(p); got != tc.wantValue {
					t.Errorf("got %v, want %v", got, tc.wantValue)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want %q", err, tc.want)
			}
		})
	}
}

// TestLongValuesEchoedShort: a message quotes the start of a long value and its length, not the
// value whole.
func TestLongValuesEchoedShort(t *testing.T) {
	long := strings.Repeat("a", 100_000)
	file := func(line string) string {
		return "version: 1\ntarget: {addresses: [\"127.0.0.1:9\"]}\nload: {stages: [{duration: 1s, target: 1}]}\n" + line + "\n"
	}
	tests := []struct {
		name, src string
		sets      []string
		size      int // of the value echoed
	}{
		{"--set name", file(""), []string{"name=" + long}, len(long)},
		{"--set enumerated value", file(""), []string{"load.model=" + long}, len(long)},
		{"--set duration", file(""), []string{"connection.connect_timeout=" + long}, len(long)},
		{"--set unknown key", file(""), []string{long + "=1"}, len(long)},
		{"--set ca_file path", file(""), []string{"connection.tls.ca_file=" + long}, len(long)},
		{"file name", file("name: " + long), nil, len(long)},
		// A YAML key is at most 1024 characters (YAML 1.2 section 7.4.2); a longer one is a syntax error.
		{"file unknown key", file(long[:1000] + ": 1"), nil, 1000},
		{"file header in a list", file("connection: {send: {protocol: http, http: {headers: [\"" + long + "\"]}}}"), nil, len(long)},
		{"file baseline path", file("baseline: {file: \"" + long + "\\t\"}"), nil, len(long) + 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Parse("long.yaml", []byte(tc.src), Overrides{Sets: tc.sets})
			var errs []error
			if err != nil {
				errs = append(errs, err)
			}
			if p != nil {
				p.Defaults()
				errs = append(errs, p.Validate()...)
			}
			if len(errs) == 0 {
				t.Fatal("accepted")
			}
			cut := fmt.Sprintf("... (%d bytes)", tc.size)
			for _, e := range errs {
				msg := e.Error()
				if len(msg) > 400 || !strings.Contains(msg, cut) {
					t.Errorf("message of %d bytes, want at most 400 with the value cut and %q: %.500s", len(msg), cut, msg)
				}
			}
		})
	}
}

func TestJunkGetsALine(t *testing.T) {
	tests := []struct {
		name, src, want string
	}{
		{"NUL", "version: 1\nname: x\nload: \x00\n", "junk.yaml:3: invalid YAML: control characters are not allowed (control character U+0000 at column 7)"},
		{"not UTF-8", "version: 1\nname: \xff\xfe\n", "junk.yaml:2: invalid YAML: invalid leading UTF-8 octet (byte 0xff, not UTF-8, at column 7)"},
		{"cut UTF-8 sequence", "version: 1\n# é\nname: \xe2\x82", "junk.yaml:3: invalid YAML: "},
		{"bell on the first line", "\x07version: 1\n", "junk.yaml:1: invalid YAML: control characters are not allowed (control character U+0007 at column 1)"},
		{"DEL after text", "version: 1\nname: \"héllo\x7f\"\n", "junk.yaml:2: invalid YAML: control characters are not allowed (control character U+007F at column 13)"},
		{"syntax error on the first line", "version: 1: 2\n", "junk.yaml:1: invalid YAML: mapping values are not allowed"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("junk.yaml", []byte(tc.src), Overrides{})
			if err == nil {
				t.Fatal("accepted")
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, tc.want) {
				t.Errorf("got %q, want it to start %q", msg, tc.want)
			}
			if strings.Count(msg, "YAML:") != 1 || strings.Contains(msg, "yaml: ") {
				t.Errorf("got %q, want one \"YAML:\" prefix", msg)
			}
		})
	}
}

// TestOnePass: a plan with problems in both passes gets all of them, each at its line, and none
// that only repeats a strict-pass problem (a field left unset by it is not "missing").
func TestOnePass(t *testing.T) {
	tests := []struct {
		name, src string
		sets      []string
		want      []string // every error, in order, by its start
	}{
		{
			name: "wrong type and bad value",
			src:  "version: 1\nname: [x]\ntarget: {builtin: {}}\nload:\n  max_in_flight: -5\n  stages: [{duration: 1s, target: 1}]\n",
			want: []string{"p.yaml:2: name: want a string", "p.yaml:5: load.max_in_flight: want 1 to"},
		},
		{
			name: "unreadable version is not also missing",
			src:  "version: one\ntarget: {builtin: {}}\nload:\n  model: storm\n  stages: [{duration: 1s, target: 1}]\n",
			want: []string{"p.yaml:1: version: want an integer", "p.yaml:4: load.model: want one of"},
		},
		{
			name: "unreadable addresses are not also no target",
			src:  "version: 1\ntarget: {addresses: {a: b}}\nconnection: {io_timeout: 1h}\nload: {stages: [{duration: 1s, target: 1}]}\n",
			want: []string{"p.yaml:2: target.addresses: want a list", "p.yaml:3: connection.io_timeout: want more than 0s"},
		},
		{
			name: "unreadable stage is not also an empty ramp",
			src:  "version: 1\ntarget: {builtin: {}}\nload:\n  max_in_flight: -1\n  stages:\n    - {duration: 5, target: 1}\n",
			want: []string{"p.yaml:6: load.stages[0].duration: want a duration", "p.yaml:4: load.max_in_flight: want 1 to"},
		},
		{
			name: "unreadable group is not given",
			src:  "version: 1\ntarget: {builtin: [x], addresses: [\"127.0.0.1:9\"]}\nconnection: {tls: {server_name: a b}}\nload: {stages: [{duration: 1s, target: 1}]}\n",
			want: []string{"p.yaml:2: target.builtin: want a mapping", "p.yaml:3: connection.tls.server_name: want a host name"},
		},
		{
			name: "unknown key and bad value",
			src:  "version: 1\ntarget: {builtin: {mode: mirror}}\nlaod: {}\nload: {stages: [{duration: 1s, target: 1}]}\n",
			want: []string{"p.yaml:3: laod: unknown key", "p.yaml:2: target.builtin.mode: want one of"},
		},
		{
			name: "bad override value and bad file value",
			src:  "version: 1\ntarget: {builtin: {}}\nload: {stages: [{duration: 1s, target: 1}]}\noutput: {interval: 1ms}\n",
			sets: []string{"load.max_in_flight=[1"},
			want: []string{"--set load.max_in_flight: the value is not valid YAML", "p.yaml:4: output.interval: want 100ms to"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Parse("p.yaml", []byte(tc.src), Overrides{Sets: tc.sets})
			var strict Errors
			if !errors.As(err, &strict) || p == nil {
				t.Fatalf("got plan %v and error %v, want the partial plan and the strict pass's errors", p, err)
			}
			errs := strict.Unwrap()
			p.Defaults()
			errs = append(errs, p.Validate()...)
			if len(errs) != len(tc.want) {
				t.Fatalf("got %d errors, want %d:\n%v", len(errs), len(tc.want), errors.Join(errs...))
			}
			for i, w := range tc.want {
				if !strings.HasPrefix(errs[i].Error(), w) {
					t.Errorf("error %d is %q, want it to start %q", i, errs[i], w)
				}
			}
		})
	}
}
