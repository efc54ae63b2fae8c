// Package platform says what portstorm can do on the system it runs on. The core (plans, load
// models, the poller's dial path, the built-in target, reports, gates) builds and runs wherever Go
// does; what rests on Linux interfaces (network namespaces, sock_diag, IP_BIND_ADDRESS_NO_PORT,
// IP_LOCAL_PORT_RANGE, blocking dials outside the poller, the epoll holder) exists on Linux only,
// and elsewhere answers with ErrLinuxOnly rather than doing nothing, which would give wrong figures.
package platform

import (
	"errors"
	"fmt"
	"runtime"
)

// ErrLinuxOnly is wrapped by every error saying that a feature needs Linux.
var ErrLinuxOnly = errors.New("needs Linux")

// Linux reports whether this build runs on Linux: a constant, so a check of it costs nothing.
const Linux = runtime.GOOS == "linux"

// Unsupported is the error of a Linux-only feature used on another system.
func Unsupported(feature string) error {
	return fmt.Errorf("%s %w (this is %s)", feature, ErrLinuxOnly, runtime.GOOS)
}
