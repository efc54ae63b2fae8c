//go:build linux

package main

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/portstorm/portstorm/loadgen/coordinator"
)

// TestFlagSuggestions: an unknown flag near one of the command's own names it.
func TestFlagSuggestions(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"run", "--quite", "p.yaml"}, "unknown flag: --quite (did you mean --quiet?)\nsee 'portstorm run --help'"},
		{[]string{"run", "--ou", "x", "p.yaml"}, "unknown flag: --ou (did you mean --out?)"},
		{[]string{"run", "--alow-remote", "p.yaml"}, "unknown flag: --alow-remote (did you mean --allow-remote?)"},
		{[]string{"target", "--mod", "echo"}, "unknown flag: --mod (did you mean --mode?)"},
		{[]string{"validate", "--sett", "a=b", "p.yaml"}, "unknown flag: --sett (did you mean --set?)"},
		{[]string{"run", "--worke", "p.yaml"}, "unknown flag: --worke\n"}, // hidden flags are not offered
		{[]string{"validate", "--quiet", "p.yaml"}, "unknown flag: --quiet\n"},
		{[]string{"run", "--zzzzzz", "p.yaml"}, "unknown flag: --zzzzzz\n"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			code, _, stderr := runMain(t, nil, tc.args...)
			if code != exitInvalid {
				t.Errorf("exit %d, want %d", code, exitInvalid)
			}
			if !strings.Contains(stderr, tc.want) {
				t.Errorf("stderr lacks %q:\n%s", tc.want, stderr)
			}
		})
	}
}

// TestCompletion: `portstorm __complete` (what the completion scripts call) offers plan keys and
// their values for --set, the target's modes for --mode, plan files for PLAN.
func TestCompletion(t *testing.T) {
	for _, tc := range []struct {
		name      string
		args      []string
		want      []string // every candidate, in order
		directive string
	}{
		{"plan keys", []string{"run", "p.yaml", "--set", "load.mo"}, []string{"load.model="}, "ShellCompDirectiveNoSpace, ShellCompDirectiveNoFileComp"},
		{"plan keys of a group", []string{"validate", "p.yaml", "--set", "connection.on_connect_failure.give"},
			[]string{"connection.on_connect_failure.give_up_after=", "connection.on_connect_failure.give_up_attempts="}, "ShellCompDirectiveNoSpace, ShellCompDirectiveNoFileComp"},
		{"load.model values", []string{"run", "p.yaml", "--set", "load.model="}, []string{"load.model=concurrency", "load.model=arrival"}, "ShellCompDirectiveNoFileComp"},
		{"close values", []string{"run", "--set", "connection.close="},
			[]string{"connection.close=fin", "connection.close=rst", "connection.close=half", "connection.close=server"}, "ShellCompDirectiveNoFileComp"},
		{"values by prefix", []string{"doctor", "p.yaml", "--set", "target.builtin.mode=h"}, []string{"target.builtin.mode=hold", "target.builtin.mode=http"}, "ShellCompDirectiveNoFileComp"},
		{"a bool", []string{"run", "p.yaml", "--set", "isolate="}, []string{"isolate=true", "isolate=false"}, "ShellCompDirectiveNoFileComp"},
		{"a setting without words", []string{"run", "p.yaml", "--set", "name="}, nil, "ShellCompDirectiveNoFileComp"},
		{"target modes", []string{"target", "--mode", ""}, []string{"echo", "sink", "hold", "close", "rst", "http", "websocket"}, "ShellCompDirectiveNoFileComp"},
		{"plan file", []string{"run", ""}, []string{"yaml", "yml"}, "ShellCompDirectiveFilterFileExt"},
		{"one plan only", []string{"validate", "p.yaml", ""}, nil, "ShellCompDirectiveNoFileComp"},
		{"doctor's plan file", []string{"doctor", ""}, []string{"yaml", "yml"}, "ShellCompDirectiveFilterFileExt"},
		{"result folders", []string{"report", ""}, nil, "ShellCompDirectiveFilterDirs"},
		{"shard folders", []string{"merge", "a", ""}, nil, "ShellCompDirectiveFilterDirs"},
		{"--out folder", []string{"run", "p.yaml", "--out", ""}, nil, "ShellCompDirectiveFilterDirs"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := runMain(t, nil, append([]string{"__complete"}, tc.args...)...)
			if code != exitPass {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			lines := strings.Split(strings.TrimSpace(stdout), "\n")
			got := lines[:len(lines)-1] // the last line is the directive, ":N"
			if !slices.Equal(got, tc.want) && !(len(got) == 0 && tc.want == nil) {
				t.Errorf("candidates %q, want %q", got, tc.want)
			}
			if !strings.Contains(stderr, "Completion ended with directive: "+tc.directive+"\n") {
				t.Errorf("directive: %s, want %s", stderr, tc.directive)
			}
		})
	}
	for _, shell := range []string{"bash", "zsh", "fish"} {
		t.Run("completion "+shell, func(t *testing.T) {
			code, stdout, stderr := runMain(t, nil, "completion", shell)
			if code != exitPass || !strings.Contains(stdout, "__complete") {
				t.Errorf("exit %d, script %d bytes lacks __complete: %s", code, len(stdout), stderr)
			}
		})
	}
}

// TestUnknownEnvWarning: a PORTSTORM_ variable that names no setting is warned about, with the
// setting it was probably meant to be; the plan is still loaded. portstorm's own variables are not.
func TestUnknownEnvWarning(t *testing.T) {
	p := writePlan(t, "version: 1\nname: env\ntarget: {builtin: {mode: echo}}\nload: {stages: [{duration: 1s, target: 1}]}\n")
	for _, tc := range []struct {
		name    string
		environ []string
		want    string // "" for no warning
	}{
		{"a typo", []string{"PORTSTORM_LOAD_MODLE=arrival"},
			"portstorm: warning: PORTSTORM_LOAD_MODLE names no plan setting and is ignored (did you mean PORTSTORM_LOAD_MODEL?)\n"},
		{"a setting", []string{"PORTSTORM_LOAD_MODEL=arrival"}, ""},
		{"portstorm's own", []string{"PORTSTORM_CPUPROFILE=", "PORTSTORM_LONG_TESTS=1", "PORTSTORM_REAL_SERVERS=1"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := Main([]string{"validate", p}, tc.environ, &out, &errb, make(chan os.Signal))
			if code != exitPass {
				t.Fatalf("exit %d: %s", code, errb.String())
			}
			if errb.String() != tc.want {
				t.Errorf("stderr %q, want %q", errb.String(), tc.want)
			}
		})
	}
}

// TestOverridesFromTheCommandLine: the --set forms a user types, end to end through validate.
func TestOverridesFromTheCommandLine(t *testing.T) {
	p := writePlan(t, `version: 1
name: sets
target: {builtin: {mode: echo}}
load: {model: arrival, stages: [{duration: 1s, target: 10}, {duration: 2s, target: 20}]}
baseline: {file: missing.json}
`)
	for _, tc := range []struct {
		name string
		sets []string
		code int
		want string
	}{
		{"baseline removed", []string{"baseline=null"}, exitPass, `valid plan "sets" (arrival model, 2 stage(s), 3s)`},
		{"built-in target to addresses", []string{"baseline=null", "target.addresses=[127.0.0.1:8080]"}, exitPass, `valid plan "sets"`},
		{"a stage's duration", []string{"baseline=", "load.stages[1].duration=10s"}, exitPass, `(arrival model, 2 stage(s), 11s)`},
		{"a stage removed", []string{"baseline=~", "load.stages[0]=null"}, exitPass, `(arrival model, 1 stage(s), 2s)`},
		{"a stage out of range", []string{"baseline=null", "load.stages[2].target=5"}, exitInvalid,
			"--set load.stages[2].target: index 2 is out of range: load.stages has 2 element(s) (load.stages[0] to load.stages[1])"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := []string{"validate", p}
			for _, s := range tc.sets {
				args = append(args, "--set", s)
			}
			code, stdout, stderr := runMain(t, nil, args...)
			if code != tc.code {
				t.Fatalf("exit %d, want %d\n%s%s", code, tc.code, stdout, stderr)
			}
			if !strings.Contains(stdout+stderr, tc.want) {
				t.Errorf("output lacks %q:\n%s%s", tc.want, stdout, stderr)
			}
		})
	}
}

// TestProgressLine: the progress line numbers stages from 0, as load.stages[N], the thresholds'
// stage[N] and summary.json's stages[].index do.
func TestProgressLine(t *testing.T) {
	for _, tc := range []struct {
		pr   coordinator.Progress
		want string
	}{
		{coordinator.Progress{Stage: 0, Stages: 3, Elapsed: 1500 * time.Millisecond, Total: 9 * time.Second, Active: 5},
			"stage[0] of 3  1s/9s  active 5  opened 0/s  errors 0  connect p99 0s\n"},
		{coordinator.Progress{Stage: 2, Stages: 3, Elapsed: 8 * time.Second, Total: 9 * time.Second}, "stage[2] of 3  8s/9s"},
		{coordinator.Progress{Stage: 3, Stages: 3, Elapsed: 10 * time.Second, Total: 9 * time.Second}, "stopping  10s/9s"},
	} {
		var b bytes.Buffer
		newProgress(&b, false, false).update(tc.pr)
		if !strings.HasPrefix(b.String(), tc.want) {
			t.Errorf("line %q, want it to start %q", b.String(), tc.want)
		}
	}
}

// TestProgressStageOfARun: a real run's first progress line is stage[0], the stage its
// thresholds call stage[0] (the line said "stage 1/2").
func TestProgressStageOfARun(t *testing.T) {
	checkFDs(t)
	p := writePlan(t, `version: 1
name: progress
target: {builtin: {mode: echo}}
load: {model: concurrency, stages: [{duration: 300ms, target: 2}, {duration: 300ms, target: 2}]}
thresholds: ["stage[0].connections.established >= 0"]
output: {interval: 100ms}
`)
	code, stdout, stderr := runMain(t, nil, "run", p, "--out", filepath.Join(t.TempDir(), "r"))
	if code != exitPass {
		t.Fatalf("exit %d\n%s%s", code, stdout, stderr)
	}
	if first, _, _ := strings.Cut(stdout, "\n"); !strings.HasPrefix(first, "stage[0] of 2  ") {
		t.Errorf("first progress line %q, want stage[0] of 2", first)
	}
}
