package main

import (
	"os"
	"os/signal"
	"syscall"

	"github.com/portstorm/portstorm/loadgen/isolate"
)

// A test binary started by `run --netns` (the isolate child) is portstorm itself: it runs Main
// before any test, as the real binary's main would.
func init() {
	if isolate.InChild() && os.Getenv(mainEnv) == "1" {
		sig := make(chan os.Signal, 2)
		signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
		os.Exit(Main(os.Args[1:], os.Environ(), os.Stdout, os.Stderr, sig))
	}
}
