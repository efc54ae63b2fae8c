package plan

import (
	"strings"
	"testing"
)

func TestCountFields(t *testing.T) {
	base := `version: 1
target: {builtin: {mode: echo, processes: %P}}
load: {workers: %W, stages: [{duration: 1s, target: 10}]}
`
	tests := []struct {
		name      string
		w, p      string
		workers   Count
		processes Count
		errField  string
	}{
		{"auto", "auto", "auto", 0, 0, ""},
		{"numbers", "4", "2", 4, 2, ""},
		{"zero", "0", "auto", 0, 0, "load.workers"},
		{"too many", "auto", "257", 0, 0, "target.builtin.processes"},
		{"words", "many", "auto", 0, 0, "load.workers"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := strings.NewReplacer("%W", tt.w, "%P", tt.p).Replace(base)
			p, err := Parse("count.yaml", []byte(src), Overrides{})
			if tt.errField != "" {
				if err == nil || !strings.Contains(err.Error(), tt.errField) || !strings.Contains(err.Error(), "count.yaml:") {
					t.Fatalf("err = %v, want one naming %s with file:line", err, tt.errField)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if p.Load.Workers != tt.workers || p.Target.Builtin.Processes != tt.processes {
				t.Fatalf("workers %v processes %v", p.Load.Workers, p.Target.Builtin.Processes)
			}
		})
	}
	if _, err := Parse("o.yaml", []byte(strings.NewReplacer("%W", "auto", "%P", "auto").Replace(base)),
		Overrides{Sets: []string{"load.workers=3"}}); err != nil {
		t.Fatal(err)
	}
}
