package report

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
)

// TimelineFile is the per-interval timeline's name in a results folder.
const TimelineFile = "timeline.csv"

// Timeline is timeline.csv read back by column name, so that columns added by later builds (the
// port observatory's, say) are read too and reordering breaks nothing.
type Timeline struct {
	Header []string
	Rows   [][]float64
	index  map[string]int
}

// maxTimelineRows bounds what is read back: a week of 1 s intervals and stage cuts fits.
const maxTimelineRows = 1 << 20

// ReadTimeline parses a timeline.csv. Every cell must be a number; errors name the line and column.
func ReadTimeline(r io.Reader) (*Timeline, error) {
	cr := csv.NewReader(r)
	cr.ReuseRecord = true
	head, err := cr.Read()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%s: empty", TimelineFile)
		}
		return nil, fmt.Errorf("%s: %w", TimelineFile, err)
	}
	t := &Timeline{Header: append([]string(nil), head...), index: map[string]int{}}
	for i, h := range t.Header {
		t.index[h] = i
	}
	for line := 2; ; line++ {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return t, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", TimelineFile, err)
		}
		if len(t.Rows) >= maxTimelineRows {
			return nil, fmt.Errorf("%s: more than %d rows", TimelineFile, maxTimelineRows)
		}
		row := make([]float64, len(rec))
		for i, cell := range rec {
			v, err := strconv.ParseFloat(cell, 64)
			if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
				return nil, fmt.Errorf("%s:%d: column %s: want a number, got %q", TimelineFile, line, t.Header[i], cell)
			}
			row[i] = v
		}
		t.Rows = append(t.Rows, row)
	}
}

// Column returns one column's values, and whether the timeline has it.
func (t *Timeline) Column(name string) ([]float64, bool) {
	i, ok := t.index[name]
	if !ok {
		return nil, false
	}
	out := make([]float64, len(t.Rows))
	for r, row := range t.Rows {
		out[r] = row[i]
	}
	return out, true
}
