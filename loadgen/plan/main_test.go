package plan

import (
	"testing"

	"go.uber.org/goleak"
)

// The named-pipe tests start a writer goroutine per pipe; each must end with its test.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
