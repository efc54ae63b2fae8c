package k8s

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/portstorm/portstorm/loadgen/plan"
)

// testCA is a PEM certificate, as connection.tls.ca_file names.
func testCA(t *testing.T) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"}, NotBefore: time.Unix(0, 0),
		NotAfter: time.Unix(0, 0).Add(100 * 365 * 24 * time.Hour), IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// loadPlan writes body as plan.yaml next to files, loads it as `portstorm k8s` does and checks it
// is valid.
func loadPlan(t *testing.T, body string, files map[string][]byte) *plan.Plan {
	t.Helper()
	dir := t.TempDir()
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	body = strings.ReplaceAll(body, "$DIR", dir)
	pf := filepath.Join(dir, "plan.yaml")
	if err := os.WriteFile(pf, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	p, err := plan.LoadFile(pf, plan.Overrides{})
	if err != nil {
		t.Fatal(err)
	}
	p.Defaults()
	if errs := p.Validate(); len(errs) > 0 {
		t.Fatalf("plan: %v", errs)
	}
	return p
}

const builtin = "version: 1\nname: b\ntarget: {builtin: {mode: echo}}\n"

const remote = "version: 1\nname: r\ntarget: {addresses: [\"10.0.0.1:7000\"], allow_remote: true}\n"

func TestFromPlan(t *testing.T) {
	ca := testCA(t)
	baseline, err := os.ReadFile("../../results/baseline/ci-gate.json")
	if err != nil {
		t.Fatal(err)
	}
	req := []byte{0x00, 0xff, 0x10, 0x80} // not UTF-8: binaryData
	hold := func(n int) string {
		return remote + "connection: {hold: 30s, close: rst}\nload: {model: concurrency, stages: [{duration: 1s, target: " + itoa(n) + "}]}\n"
	}
	tests := []struct {
		name     string
		body     string
		files    map[string][]byte
		n        int
		checks   Checks
		refuse   []string // substrings of the error; nil: rendered
		warn     string   // a substring of a warning
		sysctls  []Sysctl
		files2   map[string]string // ConfigMap key -> the plan field's new path
		memory   string
		planHas  []string // substrings of the pod plan
		planLost []string // substrings the pod plan must not hold
	}{
		{name: "files travel, paths rewritten", n: 2,
			body:   remote + "connection: {send: {file: req.bin, expect: none}, tls: {ca_file: ca.pem}}\nbaseline: {file: \"$DIR/base.json\"}\nload: {model: concurrency, stages: [{duration: 1s, target: 10}]}\n",
			files:  map[string][]byte{"req.bin": req, "ca.pem": ca, "base.json": baseline},
			files2: map[string]string{"send-req.bin": "file: /plan/send-req.bin", "ca-ca.pem": "ca_file: /plan/ca-ca.pem", "baseline-base.json": "file: /plan/baseline-base.json"},
			memory: "97Mi", planHas: []string{"name: r\n", "allow_remote: true"}},
		{name: "built-in target refused", n: 2, body: "version: 1\ntarget: {builtin: {mode: echo}}\nload: {stages: [{duration: 1s, target: 10}]}\n",
			refuse: []string{"target.builtin: every pod would start its own built-in target", "--allow-builtin-target"}},
		{name: "built-in target allowed, warned", n: 2, checks: Checks{AllowBuiltinTarget: true},
			body: "version: 1\ntarget: {builtin: {mode: echo}}\nload: {stages: [{duration: 1s, target: 10}]}\n", warn: "measures the generators"},
		{name: "loopback target refused", n: 1, body: "version: 1\ntarget: {addresses: [\"127.0.0.1:80\"]}\nload: {stages: [{duration: 1s, target: 10}]}\n",
			refuse: []string{"127.0.0.1:80 is on loopback, which in a pod is the pod itself"}},
		{name: "source addresses refused", n: 1, body: remote + "source: {addresses: [10.0.0.9]}\nload: {stages: [{duration: 1s, target: 10}]}\n",
			refuse: []string{"source.addresses [10.0.0.9]: a pod has one address"}},
		{name: "a baseline normalized by calibration refused: a merged result has none", n: 2,
			body:   remote + "baseline: {file: \"$DIR/base.json\", normalize: calibration}\nload: {stages: [{duration: 1s, target: 10}]}\n",
			files:  map[string][]byte{"base.json": baseline},
			refuse: []string{"baseline.normalize: calibration: the merge Job judges the merged result", "--set baseline.normalize=null"}},
		{name: "unreadable file refused", n: 1, body: remote + "baseline: {file: \"$DIR/missing.json\"}\nload: {stages: [{duration: 1s, target: 10}]}\n",
			refuse: []string{"baseline.file: ", "missing.json", "must be readable where you render"}},
		{name: "isolate: the pod's namespace, port range a pod sysctl", n: 2, checks: Checks{AllowBuiltinTarget: true},
			body:    builtin + "isolate: true\nnetns: {port_range: 2000-60000}\nload: {stages: [{duration: 1s, target: 10}]}\n",
			warn:    "a pod has a network namespace of its own",
			sysctls: []Sysctl{{"net.ipv4.ip_local_port_range", "2000 60000"}}, planLost: []string{"isolate: true", "port_range: 2000-60000"}},
		{name: "isolate: TIME_WAIT sysctls are unsafe: refused", n: 2, checks: Checks{AllowBuiltinTarget: true},
			body:   builtin + "isolate: true\nnetns: {tw_reuse: \"1\", max_tw_buckets: 5000}\nload: {stages: [{duration: 1s, target: 10}]}\n",
			refuse: []string{"net.ipv4.tcp_tw_reuse, net.ipv4.tcp_max_tw_buckets are unsafe sysctls", "--allowed-unsafe-sysctls=net.ipv4.tcp_tw_reuse,net.ipv4.tcp_max_tw_buckets", "--unsafe-sysctls"}},
		{name: "isolate: TIME_WAIT sysctls with --unsafe-sysctls", n: 2, checks: Checks{UnsafeSysctls: true, AllowBuiltinTarget: true},
			body:    builtin + "isolate: true\nnetns: {tw_reuse: \"1\", max_tw_buckets: 5000}\nload: {stages: [{duration: 1s, target: 10}]}\n",
			sysctls: []Sysctl{{"net.ipv4.tcp_tw_reuse", "1"}, {"net.ipv4.tcp_max_tw_buckets", "5000"}}},
		{name: "pod share fits the default port range", n: 2, body: hold(40000), memory: "175Mi"},
		{name: "pod share needs a wider port range", n: 1, body: hold(40000), sysctls: []Sysctl{{"net.ipv4.ip_local_port_range", "1024 65535"}}, memory: "253Mi"},
		{name: "pod share over every port", n: 1, body: hold(100000),
			refuse: []string{"local ports: each of 1 pods needs 100000 concurrent connections, over 64512", "larger --parallelism"}},
		{name: "over every port, expect_exhaustion", n: 1, body: strings.Replace(hold(100000), "connection:", "source: {ports: {expect_exhaustion: true}}\nconnection:", 1)},
		{name: "explicit ports below 1024: unprivileged in the pod", n: 1,
			body:    remote + "source: {ports: {strategy: explicit, range: 900-1900}}\nload: {stages: [{duration: 1s, target: 10}]}\n",
			sysctls: []Sysctl{{"net.ipv4.ip_unprivileged_port_start", "900"}}},
		{name: "memory per connection with requests", n: 4, body: remote + "connection: {send: {bytes: 64B, count: 5, interval: 1s}}\nload: {stages: [{duration: 1s, target: 4000}]}\n", memory: "112Mi"},
		{name: "memory per connection with TLS", n: 4, body: remote + "connection: {tls: {insecure: true}, hold: 10s}\nload: {stages: [{duration: 1s, target: 4000}]}\n", memory: "159Mi"},
		{name: "ConfigMap over 1 MiB", n: 1, body: remote + "connection: {send: {file: big.bin, expect: none}}\nload: {stages: [{duration: 1s, target: 10}]}\n",
			files: map[string][]byte{"big.bin": bytes.Repeat([]byte{0xff}, 900<<10)}, refuse: []string{"over the 1024000 a ConfigMap holds", "connection.send.file"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := loadPlan(t, tt.body, tt.files)
			o := Options{Parallelism: tt.n}
			warnings, err := FromPlan(p, &o, tt.checks)
			if tt.refuse != nil {
				if err == nil {
					t.Fatal("rendered")
				}
				for _, s := range tt.refuse {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("error %q\nwant it to say %q", err, s)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tt.warn != "" && !slices.ContainsFunc(warnings, func(w string) bool { return strings.Contains(w, tt.warn) }) {
				t.Errorf("warnings %q, want one saying %q", warnings, tt.warn)
			}
			if !slices.Equal(o.Sysctls, tt.sysctls) {
				t.Errorf("sysctls %v, want %v", o.Sysctls, tt.sysctls)
			}
			if tt.memory != "" && o.Memory != tt.memory {
				t.Errorf("memory %s, want %s", o.Memory, tt.memory)
			}
			keys := map[string]bool{}
			for _, f := range o.Files {
				keys[f.Key] = true
			}
			for key, field := range tt.files2 {
				if !keys[key] {
					t.Errorf("ConfigMap files %v: no %s", keys, key)
				}
				if !strings.Contains(string(o.Plan), field) {
					t.Errorf("pod plan does not say %q:\n%s", field, o.Plan)
				}
			}
			if len(keys) != len(tt.files2) {
				t.Errorf("ConfigMap files %v, want %v", keys, tt.files2)
			}
			for _, s := range tt.planHas {
				if !strings.Contains(string(o.Plan), s) {
					t.Errorf("pod plan does not say %q", s)
				}
			}
			for _, s := range tt.planLost {
				if strings.Contains(string(o.Plan), s) {
					t.Errorf("pod plan says %q", s)
				}
			}
			// A pod loads the plan as it is: valid, with the files where the plan now says.
			dir := t.TempDir()
			pf := filepath.Join(dir, PlanKey)
			if err := os.WriteFile(pf, o.Plan, 0o644); err != nil {
				t.Fatal(err)
			}
			q, err := plan.LoadFile(pf, plan.Overrides{})
			if err != nil {
				t.Fatalf("pod plan: %v\n%s", err, o.Plan)
			}
			q.Defaults()
			for _, err := range q.Validate() {
				if !strings.Contains(err.Error(), PlanDir+"/") { // the files are in the pod, not here
					t.Errorf("pod plan: %v", err)
				}
			}
			var b bytes.Buffer
			o.Image, o.StartAt = "i:v1", time.Now()
			if err := Render(&b, o); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func itoa(n int) string { return big.NewInt(int64(n)).String() }

// TestPodPlanValidates renders every example plan that can run as pods and loads the pod plan
// back as a pod does: valid, the same plan.
func TestPodPlanValidates(t *testing.T) {
	files, _ := filepath.Glob("../../configs/*.yaml")
	rendered := 0
	for _, f := range files {
		p, err := plan.LoadFile(f, plan.Overrides{})
		if err != nil {
			t.Fatal(err)
		}
		p.Defaults()
		o := Options{Parallelism: 3}
		if _, err := FromPlan(p, &o, Checks{AllowBuiltinTarget: true}); err != nil {
			continue // loopback targets and source addresses: refused, as TestFromPlan checks
		}
		rendered++
		pf := filepath.Join(t.TempDir(), "plan.yaml")
		if err := os.WriteFile(pf, o.Plan, 0o600); err != nil {
			t.Fatal(err)
		}
		q, err := plan.LoadFile(pf, plan.Overrides{})
		if err != nil {
			t.Fatalf("%s: %v\n%s", f, err, o.Plan)
		}
		q.Defaults()
		for _, err := range q.Validate() {
			t.Errorf("%s: pod plan: %v", f, err)
		}
		if q.Name != p.Name {
			t.Errorf("%s: pod plan named %q, want %q", f, q.Name, p.Name)
		}
	}
	if rendered == 0 {
		t.Error("no example plan rendered")
	}
}
