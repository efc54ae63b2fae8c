package plan

import (
	"errors"
	"path/filepath"
	"testing"
)

// TestConfigs holds every example plan in configs/ to the same bar as a user's: strict load,
// defaults, validate.
func TestConfigs(t *testing.T) {
	files, err := filepath.Glob("../../configs/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no plans in configs/: the examples are part of the product")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			if _, errs := loadAll(f, Overrides{}); len(errs) > 0 {
				t.Fatalf("refused:\n%v", errors.Join(errs...))
			}
		})
	}
}
