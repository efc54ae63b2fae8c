// Command portstorm stress-tests TCP connection capacity: it opens large numbers of concurrent
// connections by a YAML plan and reports latency, outcomes and what the kernel did with ports.
//
// This package is the only place that touches os.Exit, signal.Notify and the terminal.
package main

import (
	"fmt"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"
)

func main() {
	sig := make(chan os.Signal, 2)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	stop := startProfile(os.Getenv(cpuProfileEnv))
	code := Main(os.Args[1:], os.Environ(), os.Stdout, os.Stderr, sig)
	stop()
	os.Exit(code)
}

// cpuProfileEnv names the file startProfile writes to.
const cpuProfileEnv = "PORTSTORM_CPUPROFILE"

// startProfile writes a Go CPU profile of this process to path (PORTSTORM_CPUPROFILE, for
// `go tool pprof`: where a run's time goes); nothing when path is empty. Worker and target
// processes inherit the variable: each appends its PID to the name.
func startProfile(path string) (stop func()) {
	if path == "" {
		return func() {}
	}
	f, err := os.Create(fmt.Sprintf("%s.%d", path, os.Getpid()))
	if err == nil {
		err = pprof.StartCPUProfile(f)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "portstorm: PORTSTORM_CPUPROFILE: %v\n", err)
		return func() {}
	}
	return func() { pprof.StopCPUProfile(); f.Close() }
}
