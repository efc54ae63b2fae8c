//go:build linux

package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestK8sCommand runs `portstorm k8s` in-process: what it refuses (exit 2, saying why), what it
// warns about, and what it renders by default.
func TestK8sCommand(t *testing.T) {
	remote := writePlan(t, "version: 1\nname: web\ntarget: {addresses: [\"10.0.0.1:80\"], allow_remote: true}\nload: {stages: [{duration: 1s, target: 10}]}\n")
	builtin := writePlan(t, "version: 1\nname: self\ntarget: {builtin: {mode: echo}}\nload: {stages: [{duration: 1s, target: 10}]}\n")
	baseline := writePlan(t, "version: 1\nname: b\ntarget: {addresses: [\"10.0.0.1:80\"], allow_remote: true}\nbaseline: {file: no-such-baseline.json}\nload: {stages: [{duration: 1s, target: 10}]}\n")
	out := filepath.Join(t.TempDir(), "run.yaml")
	tests := []struct {
		name           string
		args           []string
		code           int
		stdout, stderr []string
		notStdout      []string
	}{
		{"renders", []string{"k8s", remote, "--parallelism", "2"}, 0,
			[]string{"image: \"portstorm:", "imagePullPolicy: IfNotPresent", "readOnlyRootFilesystem: true", "name: portstorm-web-segments"},
			[]string{"development build"}, []string{":latest"}},
		{"--set reaches the pods' plan", []string{"k8s", remote, "--parallelism", "2", "--image", "r/p:v1", "--set", "load.stages=[{duration: 1s, target: 40}]", "--pull-policy", "Always"}, 0,
			[]string{"target: 40", "imagePullPolicy: Always"}, nil, nil},
		{"built-in target refused", []string{"k8s", builtin, "--parallelism", "2", "--image", "r/p:v1"}, 2, nil,
			[]string{"cannot run as Kubernetes pods", "target.builtin", "--allow-builtin-target"}, nil},
		{"built-in target allowed, warned", []string{"k8s", builtin, "--parallelism", "2", "--image", "r/p:v1", "--allow-builtin-target"}, 0,
			[]string{"kind: Job"}, []string{"warning: target.builtin"}, nil},
		{"a baseline that is not there", []string{"k8s", baseline, "--parallelism", "2", "--image", "r/p:v1"}, 2, nil, []string{"baseline.file"}, nil},
		{"bad access mode", []string{"k8s", remote, "--parallelism", "2", "--image", "r/p:v1", "--access-mode", "ReadWriteOnce"}, 2, nil,
			[]string{"access mode ReadWriteOnce", "want ReadWriteMany"}, nil},
		{"bad results mode", []string{"k8s", remote, "--parallelism", "2", "--image", "r/p:v1", "--results", "s3"}, 2, nil, []string{"results \"s3\""}, nil},
		{"to a file", []string{"k8s", remote, "--parallelism", "1", "--image", "r/p:v1", "-o", out}, 0, nil, []string{"wrote " + out}, nil},
		{"--upload without --segment", []string{"run", remote, "--upload", "http://x/shard/0"}, 2, nil, []string{"--upload", "needs --segment"}, nil},
		{"--receive without --wait", []string{"merge", "a", "b", "--out", t.TempDir() + "/m", "--receive", "127.0.0.1:0"}, 2, nil, []string{"--receive", "--wait"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runMain(t, nil, tt.args...)
			if code != tt.code {
				t.Fatalf("exit %d, want %d\nstdout %s\nstderr %s", code, tt.code, stdout, stderr)
			}
			for _, s := range tt.stdout {
				if !strings.Contains(stdout, s) {
					t.Errorf("stdout does not say %q", s)
				}
			}
			for _, s := range tt.notStdout {
				if strings.Contains(stdout, s) {
					t.Errorf("stdout says %q", s)
				}
			}
			for _, s := range tt.stderr {
				if !strings.Contains(stderr, s) {
					t.Errorf("stderr %q does not say %q", stderr, s)
				}
			}
		})
	}
	if b, err := os.ReadFile(out); err != nil || !strings.Contains(string(b), "kind: ConfigMap") {
		t.Errorf("-o: %v", err)
	}
}
