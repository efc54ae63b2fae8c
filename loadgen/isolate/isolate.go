// Package isolate runs portstorm in a private network namespace, so that the port space, TIME_WAIT
// state, sysctls and kernel counters belong to the run alone and the host is never changed.
//
// Why a re-exec rather than unshare(CLONE_NEWNET) in place: a network namespace belongs to a
// thread, and unshare moves only the calling one. The Go runtime runs goroutines (dialers, the
// target's accept loops, the poller) on any of its threads, and net.Dialer opens sockets on
// whichever thread runs the goroutine, so a namespace entered on one locked thread would catch only
// the sockets made on it. Starting portstorm again as a child created with CLONE_NEWNET puts every
// thread of the child in the namespace from its first instruction.
package isolate

import (
	"os"
	"slices"
)

// ChildEnv marks a process started by Command, inside its private namespace. It has no PORTSTORM_
// prefix, so the plan's environment overrides never see it.
const ChildEnv = "_PORTSTORM_NETNS_CHILD"

// InChild reports whether this process runs inside a namespace made by Command.
func InChild() bool { return IsChild(os.Environ()) }

// IsChild reports whether env (os.Environ style) is the environment of a process started by
// Command: for a caller given its environment rather than reading the process's own.
func IsChild(env []string) bool { return slices.Contains(env, ChildEnv+"=1") }

// childEnv is env for the child: env once, with ChildEnv set.
func childEnv(env []string) []string {
	return append(slices.Clone(env), ChildEnv+"=1")
}

// unavailable opens Explain's errors. The caller only reports them (exit 3), so they carry no sentinel.
const unavailable = "a private network namespace cannot be created here"

// Sysctls are the namespace's own settings; zero values leave the namespace's defaults.
type Sysctls struct {
	PortRange      string // "lo-hi" or "lo hi"
	TWReuse        string // "0", "1", "2"
	TWReuseDelayMS int
	MaxTWBuckets   int
}
