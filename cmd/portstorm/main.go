// Command portstorm stress-tests TCP connection capacity: it opens large numbers of concurrent
// connections by a YAML plan and reports latency, outcomes and what the kernel did with ports.
//
// This package is the only place that touches os.Exit, signal.Notify and the terminal.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	sig := make(chan os.Signal, 2)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	os.Exit(Main(os.Args[1:], os.Environ(), os.Stdout, os.Stderr, sig))
}
