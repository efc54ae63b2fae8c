package shard

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

func results(specs ...string) []*Result {
	var rs []*Result
	for k, s := range specs { // "hash:i/N"
		var hash string
		var i, n int
		fmt.Sscanf(strings.Replace(s, ":", " ", 1), "%s %d/%d", &hash, &i, &n)
		rs = append(rs, &Result{Dir: fmt.Sprintf("dir%d", k), Info: Info{PlanHash: hash, Index: i, Count: n, Segment: fmt.Sprintf("%d/%d", i, n)}})
	}
	return rs
}

// TestCheckSet: only the segments 0..N-1 of one plan, each once, make a run.
func TestCheckSet(t *testing.T) {
	tests := []struct {
		name  string
		rs    []*Result
		ok    bool
		about string
	}{
		{"complete", results("a:1/3", "a:0/3", "a:2/3"), true, ""},
		{"single segment", results("a:0/1"), true, ""},
		{"mixed plans", results("a:0/2", "b:1/2"), false, "mixed plans"},
		{"overlapping", results("a:0/2", "a:0/2", "a:1/2"), false, "overlapping"},
		{"missing", results("a:0/3", "a:2/3"), false, "missing segments: 1/3"},
		{"different N", results("a:0/2", "a:1/3"), false, "different segment counts"},
		{"none", nil, false, "no shard folders"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckSet(tt.rs)
			if tt.ok {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, ErrShards) || !strings.Contains(err.Error(), tt.about) {
				t.Fatalf("err = %v, want ErrShards about %q", err, tt.about)
			}
		})
	}
}
