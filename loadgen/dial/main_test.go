package dial

import (
	"github.com/portstorm/portstorm/internal/fdcheck"
	"net"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	// The first socket makes the runtime open its poller's descriptors (epoll, eventfd); open one
	// here so that the per-test descriptor counts start from a settled baseline.
	if ln, err := net.Listen("tcp", "127.0.0.1:0"); err == nil {
		ln.Close()
	}
	goleak.VerifyTestMain(m)
}

// checkFDs fails the test if it ends with more or fewer descriptors open than it started with.
func checkFDs(t *testing.T) { t.Helper(); fdcheck.Check(t) }
