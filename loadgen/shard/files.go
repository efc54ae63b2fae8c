package shard

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/portstorm/portstorm/loadgen/metrics"
)

// A distributed segment writes a shard result folder: its interval snapshots, in the protocol
// worker processes speak, and a description of the shard. `portstorm merge` reads them back.
const (
	// SnapshotsFile holds the shard's protocol lines: every interval snapshot, then done or error.
	SnapshotsFile = "snapshots.jsonl"
	// InfoFile describes the shard: which run, which segment, which host, how it ended.
	InfoFile = "shard.json"
	// SpecFile is the whole run's spec (JSON, spec.Write) the segment was cut from: what a merge
	// reads, the plan to write as the merged run's plan and the thresholds and baseline to judge it
	// by included, so that it needs no plan file. Its hash (spec.Hash) is the folder's plan hash.
	SpecFile = "spec.json"
	// PlanFile is the whole resolved plan (YAML) the segment was cut from, for people: nothing
	// reads it back (a merge reads SpecFile).
	PlanFile = "plan.yaml"
	// InfoSchema names shard.json's contract.
	InfoSchema = "portstorm/shard/v1"
)

// Info is shard.json.
type Info struct {
	Schema string `json:"schema"`
	// PlanHash is the hash of the whole run's spec (spec.Hash, SpecFile's): shards of one run share
	// it. The key keeps its name.
	PlanHash string `json:"plan_hash"`
	// Segment is "i/N"; Index and Count are its parts.
	Segment string `json:"segment"`
	Index   int    `json:"index"`
	Count   int    `json:"count"`
	// Host is the generator's name (--host; default the host name): port statistics stay per host.
	Host        string    `json:"host"`
	Start       time.Time `json:"start"`
	End         time.Time `json:"end"`
	Interrupted bool      `json:"interrupted"`
	Aborted     bool      `json:"aborted"`
	// Error is what stopped the segment early, "" when it ran to its end.
	Error string `json:"error,omitempty"`
}

// ErrShards wraps shard folders that do not make one run: mixed plans, overlapping or missing
// segments, unreadable files.
var ErrShards = errors.New("shard results")

// Result is one shard folder read back.
type Result struct {
	Dir       string
	Info      Info
	Snapshots []*metrics.Snapshot
	// Done is the segment's last protocol word; nil when it wrote none (it died).
	Done *Done
}

// ReadResult reads a shard result folder.
func ReadResult(dir string) (*Result, error) {
	r := &Result{Dir: dir}
	b, err := os.ReadFile(filepath.Join(dir, InfoFile))
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w (is it a folder written by `portstorm run --segment`?)", ErrShards, dir, err)
	}
	if err := json.Unmarshal(b, &r.Info); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrShards, filepath.Join(dir, InfoFile), err)
	}
	if r.Info.Schema != InfoSchema {
		return nil, fmt.Errorf("%w: %s: schema %q, want %q", ErrShards, filepath.Join(dir, InfoFile), r.Info.Schema, InfoSchema)
	}
	f, err := os.Open(filepath.Join(dir, SnapshotsFile))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrShards, err)
	}
	defer f.Close()
	err = Read(f, func(m Message) error {
		switch {
		case m.Snapshot != nil:
			r.Snapshots = append(r.Snapshots, m.Snapshot)
		case m.Done != nil:
			r.Done = m.Done
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrShards, filepath.Join(dir, SnapshotsFile), err)
	}
	return r, nil
}

// CheckSet refuses shard results that are not exactly the segments 0..N-1 of one plan, each once.
// Every problem is reported at once.
func CheckSet(rs []*Result) error {
	if len(rs) == 0 {
		return fmt.Errorf("%w: no shard folders", ErrShards)
	}
	var problems []string
	first := rs[0].Info
	n := first.Count
	seen := make(map[int]string)
	for _, r := range rs {
		in := r.Info
		if in.PlanHash != first.PlanHash {
			problems = append(problems, fmt.Sprintf("mixed plans: %s has plan %.12s, %s has %.12s", r.Dir, in.PlanHash, rs[0].Dir, first.PlanHash))
		}
		if in.Count != n {
			problems = append(problems, fmt.Sprintf("different segment counts: %s is segment %s, %s is %s", r.Dir, in.Segment, rs[0].Dir, first.Segment))
			continue
		}
		if in.Index < 0 || in.Index >= n {
			problems = append(problems, fmt.Sprintf("%s: segment %d of %d is out of range", r.Dir, in.Index, n))
			continue
		}
		if d, dup := seen[in.Index]; dup {
			problems = append(problems, fmt.Sprintf("overlapping segments: %s and %s are both segment %d/%d", d, r.Dir, in.Index, n))
			continue
		}
		seen[in.Index] = r.Dir
	}
	var missing []string
	for i := range n {
		if _, ok := seen[i]; !ok {
			missing = append(missing, fmt.Sprintf("%d/%d", i, n))
		}
	}
	if len(missing) > 0 && len(problems) == 0 {
		problems = append(problems, fmt.Sprintf("missing segments: %s", strings.Join(missing, ", ")))
	}
	if len(problems) > 0 {
		return fmt.Errorf("%w: %s", ErrShards, strings.Join(problems, "; "))
	}
	return nil
}

// Merged is the merge of a run's shard results: how they ended together (the earliest start, the
// last end, interrupted or aborted when any was; the give-ups are in the segments' summaries)
// and the merged snapshot.
type Merged struct {
	Ending
	Total *metrics.Snapshot
}

// MergeResults merges checked shard results with the Merger that local workers use: interval k of
// every shard adds up (histograms exactly, a dropped value is an error), and emit receives every
// merged interval in order. The shards are ordered by segment index first, so the merge does not
// depend on the order of the folders given.
func MergeResults(rs []*Result, emit func(*metrics.Snapshot)) (*Merged, error) {
	if err := CheckSet(rs); err != nil {
		return nil, err
	}
	rs = slices.Clone(rs)
	slices.SortFunc(rs, func(a, b *Result) int { return a.Info.Index - b.Info.Index })
	res := &Merged{Total: metrics.NewSnapshot()}
	var mergeErr error
	m := NewMerger(len(rs), func(s *metrics.Snapshot) {
		if err := res.Total.Add(s); err != nil && mergeErr == nil {
			mergeErr = err
		}
		if emit != nil {
			emit(s)
		}
	})
	for i, r := range rs {
		for _, s := range r.Snapshots {
			if err := m.Add(i, s); err != nil {
				return nil, fmt.Errorf("%w: %s: %w", ErrShards, r.Dir, err)
			}
		}
		m.Finish(i)
		in := r.Info
		if i == 0 || in.Start.Before(res.Start) {
			res.Start = in.Start
		}
		if in.End.After(res.End) {
			res.End = in.End
		}
		res.Interrupted = res.Interrupted || in.Interrupted
		res.Aborted = res.Aborted || in.Aborted
	}
	if mergeErr != nil {
		return nil, fmt.Errorf("%w: %w", ErrShards, mergeErr)
	}
	return res, nil
}
