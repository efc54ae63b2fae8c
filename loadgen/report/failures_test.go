package report

import (
	"encoding/json"
	"slices"
	"testing"
)

// TestFailureListsContract pins the keys of summary.json's failure lists, which CI scripts read to
// tell a failed set-up (exit 3) from a failed verdict: worker_failures[] and target_failures[],
// each absent when empty.
func TestFailureListsContract(t *testing.T) {
	for _, tt := range []struct {
		name    string
		s       *Summary
		key     string
		present bool
		want    []string
	}{
		{"worker failure", &Summary{WorkerFailures: []WorkerFailure{{Worker: "worker 1/2", PID: 7, AtS: 1.5, Status: "signal: killed", Message: "m"}}},
			"worker_failures", true, sorted("worker", "pid", "at_s", "status", "message")},
		{"target failure", &Summary{TargetFailures: []TargetFailure{{Target: "target process 2/2", PID: 8, AtS: 2.5, Status: "signal: killed", Message: "m"}}},
			"target_failures", true, sorted("target", "pid", "at_s", "status", "message")},
		{"no worker failures", &Summary{}, "worker_failures", false, nil},
		{"no target failures", &Summary{}, "target_failures", false, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			b, err := json.Marshal(tt.s)
			if err != nil {
				t.Fatal(err)
			}
			raw, ok := object(t, b)[tt.key]
			if ok != tt.present {
				t.Fatalf("%s present %v, want %v: %s", tt.key, ok, tt.present, b)
			}
			if !ok {
				return
			}
			var list []json.RawMessage
			if err := json.Unmarshal(raw, &list); err != nil || len(list) != 1 {
				t.Fatalf("%s = %s, want a list of one (%v)", tt.key, raw, err)
			}
			if got := keysOf(t, tt.key+"[]", list[0]); !slices.Equal(got, tt.want) {
				t.Errorf("%s[] keys %q, want %q", tt.key, got, tt.want)
			}
			var back Summary
			if err := json.Unmarshal(b, &back); err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(back.WorkerFailures, tt.s.WorkerFailures) || !slices.Equal(back.TargetFailures, tt.s.TargetFailures) {
				t.Errorf("read back %+v %+v", back.WorkerFailures, back.TargetFailures)
			}
		})
	}
}
