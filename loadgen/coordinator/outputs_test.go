package coordinator

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/portstorm/portstorm/loadgen/report"
)

// TestOpenOutputs: the shared first step of run, segment and merge claims the folder for one run,
// and a failure while opening gives it up again, with no latency.hlog left behind.
func TestOpenOutputs(t *testing.T) {
	for _, tt := range []struct {
		name    string
		first   func() error
		wantErr bool
	}{
		{"opened", nil, false},
		{"first step written", func() error { return nil }, false},
		{"first step fails", func() error { return errors.New("disk full") }, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "r")
			out, err := openOutputs(dir, time.Now(), tt.first)
			if tt.wantErr {
				if err == nil || errors.Is(err, ErrInvalid) || errors.Is(err, ErrInterrupted) {
					t.Fatalf("err %v, want a failure to run (exit 3)", err)
				}
				if _, err := os.Stat(filepath.Join(dir, "latency.hlog")); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("latency.hlog after a failed open: %v", err)
				}
				again, err := openOutputs(dir, time.Now(), nil)
				if err != nil {
					t.Fatalf("the folder was not given up: %v", err)
				}
				again.close()
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if _, err := openOutputs(dir, time.Now(), nil); !errors.Is(err, report.ErrFolderTaken) {
				t.Errorf("a second run in the same folder: %v, want ErrFolderTaken", err)
			}
			out.close()
		})
	}
}
