// Package fdcheck lets tests check that they leave no file descriptor open.
package fdcheck

import (
	"os"
	"testing"
)

// Count is this process's number of open file descriptors.
func Count(t testing.TB) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// Check fails the test if it ends with another number of descriptors open than it started with.
// Register it first, so that it runs after every other cleanup has closed what it opened.
func Check(t *testing.T) {
	t.Helper()
	before := Count(t)
	t.Cleanup(func() {
		if after := Count(t); after != before {
			t.Errorf("%d open fds after the test, %d before: descriptors leaked", after, before)
		}
	})
}
