//go:build !linux

package isolate

import (
	"fmt"
	"os/exec"

	"github.com/portstorm/portstorm/loadgen/platform"
)

// Command returns a command that fails to start: network namespaces are a Linux feature.
func Command(exe string, env []string, args ...string) *exec.Cmd {
	cmd := exec.Command(exe, args...)
	cmd.Env = childEnv(env)
	cmd.Err = platform.Unsupported("a private network namespace")
	return cmd
}

// Explain turns a failure to start a Command into an error that says why and what to do.
func Explain(err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s: %w; run without --netns / isolate", unavailable, err)
}

// UserNamespaces says that there are none here.
func UserNamespaces() string {
	return "not available: " + platform.Unsupported("user namespaces").Error()
}

// SetUp cannot run: no namespace was made.
func SetUp(Sysctls) error { return platform.Unsupported("isolate: a private network namespace") }
