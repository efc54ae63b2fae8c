package metrics

import (
	"encoding/base64"
	"encoding/json"
	"fmt"

	hdr "github.com/HdrHistogram/hdrhistogram-go"
)

// Snapshot is what one shard measured over one interval, or, once added up, over a whole run. It is
// the unit shards exchange: worker processes stream it over a pipe, distributed segments write it to
// files, and the same Add and Combine read both.
type Snapshot struct {
	// Segment is "i/N" for a segment of a split plan, "" for a whole plan.
	Segment string
	Seq     int
	// Stage is the plan stage the interval belongs to; intervals are cut at stage boundaries.
	Stage   int
	StartUS int64
	EndUS   int64
	Counts
	// Active is the number of established connections open at EndUS.
	Active int64
	// PeakActive is the most established connections open at once within the interval.
	PeakActive int64
	First      [NumOutcomes]*FirstSeen
	Examples   [NumOutcomes][]string
	Hist       [NumLatencies]*hdr.Histogram

	// filled is false for a fresh NewSnapshot, so the first Add or Combine takes the other's span.
	filled bool
}

// NewSnapshot returns an empty snapshot with empty histograms.
func NewSnapshot() *Snapshot {
	s := &Snapshot{}
	for l := range s.Hist {
		s.Hist[l] = NewHistogram()
	}
	return s
}

func (s *Snapshot) noteFirst(o Outcome, f FirstSeen) {
	if s.First[o] == nil || f.AtUS < s.First[o].AtUS {
		c := f
		s.First[o] = &c
	}
}

func (s *Snapshot) noteExamples(o Outcome, ex []string) {
	for _, e := range ex {
		if len(s.Examples[o]) >= maxExamples {
			return
		}
		s.Examples[o] = append(s.Examples[o], e)
	}
}

func (s *Snapshot) addCommon(o *Snapshot) error {
	s.Counts.add(&o.Counts)
	for i := range o.First {
		if o.First[i] != nil {
			s.noteFirst(Outcome(i), *o.First[i])
		}
		s.noteExamples(Outcome(i), o.Examples[i])
	}
	for l := range s.Hist {
		if dropped := s.Hist[l].Merge(o.Hist[l]); dropped != 0 {
			return fmt.Errorf("merging %s histograms dropped %d values: histogram bounds differ", Latency(l), dropped)
		}
	}
	if !s.filled || o.StartUS < s.StartUS {
		s.StartUS = o.StartUS
	}
	if !s.filled || o.EndUS > s.EndUS {
		s.EndUS = o.EndUS
	}
	s.filled = true
	return nil
}

// Add appends a later interval of the same shard: counters and histograms add up, the gauge
// Active takes the later value and PeakActive the larger one.
func (s *Snapshot) Add(later *Snapshot) error {
	if err := s.addCommon(later); err != nil {
		return err
	}
	s.Active = later.Active
	s.PeakActive = max(s.PeakActive, later.PeakActive)
	s.Seq = later.Seq
	s.Stage = later.Stage
	return nil
}

// Combine merges the same interval of another, concurrent shard: everything adds up, gauges too.
// PeakActive becomes the sum of the shards' peaks, an upper bound of the true combined peak (the
// shards may have peaked at different moments of the interval).
func (s *Snapshot) Combine(other *Snapshot) error {
	if err := s.addCommon(other); err != nil {
		return err
	}
	s.Active += other.Active
	s.PeakActive += other.PeakActive
	return nil
}

// Clone returns a deep copy.
func (s *Snapshot) Clone() *Snapshot {
	c := *s
	for l := range s.Hist {
		c.Hist[l] = s.Hist[l].Clone()
	}
	for i := range s.First {
		if s.First[i] != nil {
			f := *s.First[i]
			c.First[i] = &f
		}
		c.Examples[i] = append([]string(nil), s.Examples[i]...)
	}
	return &c
}

// wireSnapshot is the JSON form: outcomes and histograms by name, histograms as base64 of the
// compressed HdrHistogram V2 encoding that every HdrHistogram implementation reads.
type wireSnapshot struct {
	Segment     string               `json:"segment,omitempty"`
	Seq         int                  `json:"seq"`
	Stage       int                  `json:"stage"`
	StartUS     int64                `json:"start_us"`
	EndUS       int64                `json:"end_us"`
	Attempted   uint64               `json:"attempted"`
	Established uint64               `json:"established"`
	Failed      uint64               `json:"failed"`
	Dropped     uint64               `json:"dropped"`
	Closed      uint64               `json:"closed"`
	BytesOut    uint64               `json:"bytes_out"`
	BytesIn     uint64               `json:"bytes_in"`
	Clamped     uint64               `json:"clamped,omitempty"`
	Active      int64                `json:"active"`
	PeakActive  int64                `json:"peak_active"`
	Outcomes    map[string]uint64    `json:"outcomes"`
	First       map[string]FirstSeen `json:"first,omitempty"`
	Examples    map[string][]string  `json:"examples,omitempty"`
	Hist        map[string]string    `json:"hdr"`
}

// MarshalJSON encodes the snapshot in its wire form.
func (s *Snapshot) MarshalJSON() ([]byte, error) {
	w := wireSnapshot{
		Segment: s.Segment, Seq: s.Seq, Stage: s.Stage, StartUS: s.StartUS, EndUS: s.EndUS,
		Attempted: s.Attempted, Established: s.Established, Failed: s.Failed, Dropped: s.Dropped,
		Closed: s.Closed, BytesOut: s.BytesOut, BytesIn: s.BytesIn, Clamped: s.Clamped,
		Active: s.Active, PeakActive: s.PeakActive,
		Outcomes: make(map[string]uint64, NumOutcomes), Hist: make(map[string]string, NumLatencies),
	}
	for i, n := range s.Outcomes {
		w.Outcomes[Outcome(i).String()] = n
		if s.First[i] != nil {
			if w.First == nil {
				w.First = map[string]FirstSeen{}
			}
			w.First[Outcome(i).String()] = *s.First[i]
		}
		if len(s.Examples[i]) > 0 {
			if w.Examples == nil {
				w.Examples = map[string][]string{}
			}
			w.Examples[Outcome(i).String()] = s.Examples[i]
		}
	}
	for l, h := range s.Hist {
		enc, err := EncodeHistogram(h)
		if err != nil {
			return nil, err
		}
		w.Hist[Latency(l).String()] = enc
	}
	return json.Marshal(w)
}

// UnmarshalJSON decodes the wire form; unknown outcome or histogram names are errors, so that a
// snapshot from an incompatible build is refused rather than half read.
func (s *Snapshot) UnmarshalJSON(b []byte) error {
	var w wireSnapshot
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	n := NewSnapshot()
	n.filled = true
	n.Segment, n.Seq, n.Stage, n.StartUS, n.EndUS = w.Segment, w.Seq, w.Stage, w.StartUS, w.EndUS
	n.Attempted, n.Established, n.Failed, n.Dropped, n.Closed = w.Attempted, w.Established, w.Failed, w.Dropped, w.Closed
	n.BytesOut, n.BytesIn, n.Clamped, n.Active, n.PeakActive = w.BytesOut, w.BytesIn, w.Clamped, w.Active, w.PeakActive
	for name, v := range w.Outcomes {
		o, ok := ParseOutcome(name)
		if !ok {
			return fmt.Errorf("snapshot: unknown outcome %q", name)
		}
		n.Outcomes[o] = v
	}
	for name, f := range w.First {
		o, ok := ParseOutcome(name)
		if !ok {
			return fmt.Errorf("snapshot: unknown outcome %q in first", name)
		}
		c := f
		n.First[o] = &c
	}
	for name, ex := range w.Examples {
		o, ok := ParseOutcome(name)
		if !ok {
			return fmt.Errorf("snapshot: unknown outcome %q in examples", name)
		}
		n.noteExamples(o, ex)
	}
	for name, enc := range w.Hist {
		l, ok := parseLatency(name)
		if !ok {
			return fmt.Errorf("snapshot: unknown histogram %q", name)
		}
		h, err := DecodeHistogram(enc)
		if err != nil {
			return fmt.Errorf("snapshot: histogram %s: %w", name, err)
		}
		if dropped := n.Hist[l].Merge(h); dropped != 0 {
			return fmt.Errorf("snapshot: histogram %s: %d values outside portstorm's bounds", name, dropped)
		}
	}
	*s = *n
	return nil
}

func parseLatency(s string) (Latency, bool) {
	for i, n := range latencyNames {
		if n == s {
			return Latency(i), true
		}
	}
	return 0, false
}

// EncodeHistogram returns base64 of the compressed HdrHistogram V2 encoding.
func EncodeHistogram(h *hdr.Histogram) (string, error) {
	b, err := h.Encode(hdr.V2CompressedEncodingCookieBase)
	if err != nil {
		return "", fmt.Errorf("encoding histogram: %w", err)
	}
	return base64.StdEncoding.EncodeToString(b), nil
}

// DecodeHistogram reverses EncodeHistogram.
func DecodeHistogram(s string) (h *hdr.Histogram, err error) {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, err
	}
	// The decoder indexes into the payload it is given; a corrupt payload must be an error, not a crash.
	defer func() {
		if r := recover(); r != nil {
			h, err = nil, fmt.Errorf("corrupt histogram: %v", r)
		}
	}()
	return hdr.Decode(b)
}
