package main

import (
	"errors"
	"os"
	"os/exec"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/portstorm/portstorm/loadgen/isolate"
)

// mainEnv tells a test binary started by isolate (see netns_test.go) to run Main, as portstorm would.
const mainEnv = "_PORTSTORM_MAIN"

// isolate carries out --netns / isolate: true (the spec's Isolate, nil: not isolated). Outside
// the namespace it starts portstorm again in a new one with the same arguments, forwards signals,
// and returns the child's exit code (done is true). Inside it brings lo up and applies the
// namespace's sysctls, and the run goes on here.
func (e *env) isolate(in *interrupts, c *cobra.Command, args []string, sysctls *isolate.Sysctls) (done bool, err error) {
	if sysctls == nil {
		return false, nil
	}
	if isolate.IsChild(e.environ) {
		if err := isolate.SetUp(*sysctls); err != nil {
			return true, exitWith(exitCannotRun, err)
		}
		return false, nil
	}
	exe, err := os.Executable()
	if err != nil {
		return true, exitWith(exitCannotRun, err)
	}
	// The child gets the environment Main was given, once.
	cmd := isolate.Command(exe, append(slices.Clone(e.environ), mainEnv+"=1"), childArgs(c, args)...)
	cmd.Stdout, cmd.Stderr = e.stdout, e.stderr
	if err := cmd.Start(); err != nil {
		return true, exitWith(exitCannotRun, isolate.Explain(err))
	}
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	for {
		select {
		case s := <-in.got:
			// The child stops gracefully on the first signal and cuts on the second, as a run does.
			_ = cmd.Process.Signal(s)
		case err := <-waited:
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				return true, exitWith(ee.ExitCode(), nil)
			}
			if err != nil {
				return true, exitWith(exitCannotRun, err)
			}
			return true, nil
		}
	}
}

// childArgs rebuilds the command line of c for the child: its path below the root, the flags that
// were set, then the arguments.
func childArgs(c *cobra.Command, args []string) []string {
	path := strings.Fields(c.CommandPath())[1:]
	out := append([]string(nil), path...)
	c.Flags().Visit(func(f *pflag.Flag) {
		if sv, ok := f.Value.(pflag.SliceValue); ok {
			for _, v := range sv.GetSlice() {
				out = append(out, "--"+f.Name+"="+v)
			}
			return
		}
		out = append(out, "--"+f.Name+"="+f.Value.String())
	})
	return append(append(out, "--"), args...)
}
