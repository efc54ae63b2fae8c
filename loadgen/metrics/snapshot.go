package metrics

import (
	"bytes"
	"compress/zlib"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"sync"

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

// NewSnapshot returns an empty snapshot with empty histograms, taken from the pool Release gives
// them back to. The zero Snapshot is empty too: its nil histograms read as empty and are created by
// the first Add or Combine.
func NewSnapshot() *Snapshot {
	s := &Snapshot{}
	for l := range s.Hist {
		s.Hist[l] = pooledHistogram()
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

// addCommon checks that every histogram merges whole before it changes anything, so that a refused
// merge leaves s as it was rather than with its counters added and half its histograms merged.
func (s *Snapshot) addCommon(o *Snapshot) error {
	for l := range s.Hist {
		if err := mergeable(s.Hist[l], o.Hist[l]); err != nil {
			return fmt.Errorf("merging %s histograms: %w", Latency(l), err)
		}
	}
	for l, h := range o.Hist {
		if h == nil || h.TotalCount() == 0 {
			continue
		}
		if s.Hist[l] == nil {
			s.Hist[l] = pooledHistogram()
		}
		if dropped := s.Hist[l].Merge(h); dropped != 0 {
			// Cannot happen after mergeable; if it does, say so rather than lose a run to a panic.
			return fmt.Errorf("merging %s histograms dropped %d values", Latency(l), dropped)
		}
	}
	s.Counts.add(&o.Counts)
	for i := range o.First {
		if o.First[i] != nil {
			s.noteFirst(Outcome(i), *o.First[i])
		}
		s.noteExamples(Outcome(i), o.Examples[i])
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

// mergeable reports why merging src into dst would drop values. Histograms with portstorm's bounds
// map every value to the same bucket, so only a total past int64 could drop one; other bounds are
// refused outright, as DecodeHistogram refuses them. A nil histogram is empty.
func mergeable(dst, src *hdr.Histogram) error {
	if src == nil || src.TotalCount() == 0 {
		return nil
	}
	for _, h := range []*hdr.Histogram{dst, src} {
		if h != nil && !hasBounds(h) {
			return fmt.Errorf("bounds [%d, %d] at %d significant figures differ from portstorm's [%d, %d] at %d",
				h.LowestTrackableValue(), h.HighestTrackableValue(), h.SignificantFigures(), HistLowest, HistHighest, HistSigFigs)
		}
	}
	if dst != nil && src.TotalCount() > math.MaxInt64-dst.TotalCount() {
		return fmt.Errorf("%d + %d values overflow the total count", dst.TotalCount(), src.TotalCount())
	}
	return nil
}

func hasBounds(h *hdr.Histogram) bool {
	return h.LowestTrackableValue() == HistLowest && h.HighestTrackableValue() == HistHighest && h.SignificantFigures() == HistSigFigs
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
	for l, h := range s.Hist {
		if h != nil {
			c.Hist[l] = h.Clone()
		}
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
	Requests    uint64               `json:"requests,omitempty"`
	Offered     uint64               `json:"requests_offered,omitempty"`
	ReqOutcomes map[string]uint64    `json:"request_outcomes,omitempty"`
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
		Active: s.Active, PeakActive: s.PeakActive, Requests: s.Requests, Offered: s.RequestsOffered,
		Outcomes: make(map[string]uint64, NumOutcomes), Hist: make(map[string]string, NumLatencies),
	}
	for i, n := range s.RequestOutcomes {
		if n > 0 {
			if w.ReqOutcomes == nil {
				w.ReqOutcomes = map[string]uint64{}
			}
			w.ReqOutcomes[Outcome(i).String()] = n
		}
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
		enc, err := emptyEncoding()
		if h != nil && h.TotalCount() > 0 {
			enc, err = EncodeHistogram(h)
		}
		if err != nil {
			return nil, err
		}
		w.Hist[Latency(l).String()] = enc
	}
	return json.Marshal(w)
}

// UnmarshalJSON decodes the wire form; unknown outcome or histogram names are errors, so that a
// snapshot from an incompatible build is refused rather than half read. On an error s is unchanged;
// JSON null leaves it unchanged too, as encoding/json does for other types.
func (s *Snapshot) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil
	}
	var w wireSnapshot
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	// The histograms are those decoded; the empty ones (most of an interval's) take one from the
	// pool rather than a decode of their own.
	n := &Snapshot{filled: true}
	n.Segment, n.Seq, n.Stage, n.StartUS, n.EndUS = w.Segment, w.Seq, w.Stage, w.StartUS, w.EndUS
	n.Attempted, n.Established, n.Failed, n.Dropped, n.Closed = w.Attempted, w.Established, w.Failed, w.Dropped, w.Closed
	n.BytesOut, n.BytesIn, n.Clamped, n.Active, n.PeakActive = w.BytesOut, w.BytesIn, w.Clamped, w.Active, w.PeakActive
	n.Requests, n.RequestsOffered = w.Requests, w.Offered
	for name, v := range w.ReqOutcomes {
		o, ok := ParseOutcome(name)
		if !ok {
			return fmt.Errorf("snapshot: unknown outcome %q in request_outcomes", name)
		}
		n.RequestOutcomes[o] = v
	}
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
	empty, err := emptyEncoding()
	if err != nil {
		return err
	}
	for name, enc := range w.Hist {
		l, ok := parseLatency(name)
		if !ok {
			n.Release()
			return fmt.Errorf("snapshot: unknown histogram %q", name)
		}
		if enc == empty {
			continue
		}
		h, err := DecodeHistogram(enc)
		if err != nil {
			n.Release()
			return fmt.Errorf("snapshot: %s: %w", name, err)
		}
		// DecodeHistogram refused any other bounds, so h can stand as the snapshot's own.
		recycle(n.Hist[l]) // a name given twice: the last one counts, as encoding/json's maps do
		n.Hist[l] = h
	}
	for l := range n.Hist {
		if n.Hist[l] == nil {
			n.Hist[l] = pooledHistogram()
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

// emptyEncoding is EncodeHistogram of an empty histogram, computed once: most of an interval's
// histograms are empty, and encoding one walks and compresses all its buckets.
var emptyEncoding = sync.OnceValues(func() (string, error) { return EncodeHistogram(NewHistogram()) })

// EncodeHistogram returns base64 of the compressed HdrHistogram V2 encoding, the form HdrHistogram's
// log readers and plotters take: what hdr's Encode returns, from one kept encoder (encode.go).
func EncodeHistogram(h *hdr.Histogram) (string, error) {
	theEncoder.Lock()
	defer theEncoder.Unlock()
	if theEncoder.e == nil {
		theEncoder.e = newEncoder()
	}
	return theEncoder.e.encode(h)
}

// maxInflated caps the inflated size of an encoded histogram. With portstorm's bounds the counts
// take at most 9 bytes (a zig-zag LEB128 varint) for each of 23,552 buckets, 207 KiB; the cap
// leaves room while keeping a zlib bomb from inflating without bound.
const maxInflated = 4 << 20

// The V2 format (HdrHistogram's "Histogram serialization" and hdrhistogram-go's hdr_encoding.go):
// a cookie and the big-endian length of a zlib stream, which inflates to a 40-byte header (cookie,
// payload length, normalizing index offset, significant figures as int32; lowest and highest
// trackable values as int64; integer-to-double ratio as float64) followed by the counts. Writers
// set bits 0xf0 of each cookie (Java's word-size marker, 0x10); readers mask them off.
const (
	v2HeaderSize = 40
	cookieMask   = 0xf0
)

// DecodeHistogram reverses EncodeHistogram. It refuses histograms whose bounds are not portstorm's
// (HistLowest, HistHighest, HistSigFigs): the header is checked before hdr.Decode sizes its counts
// array from it, so a hostile header cannot make it allocate gigabytes.
func DecodeHistogram(s string) (h *hdr.Histogram, err error) {
	if err := checkHistogramHeader(s); err != nil {
		return nil, fmt.Errorf("decoding histogram: %w", err)
	}
	// The decoder indexes into the payload it is given; a corrupt payload must be an error, not a crash.
	defer func() {
		if r := recover(); r != nil {
			h, err = nil, fmt.Errorf("corrupt histogram: %v", r)
		}
	}()
	return hdr.Decode([]byte(s))
}

func checkHistogramHeader(s string) error {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return err
	}
	if len(b) < 8 {
		return fmt.Errorf("%d bytes, too short for the V2 format", len(b))
	}
	if c := int32(binary.BigEndian.Uint32(b) &^ cookieMask); c != hdr.V2CompressedEncodingCookieBase {
		return fmt.Errorf("cookie %#x is not the compressed V2 format's %#x", c, hdr.V2CompressedEncodingCookieBase)
	}
	n := int64(int32(binary.BigEndian.Uint32(b[4:])))
	if n < 0 || n > int64(len(b)-8) {
		return fmt.Errorf("compressed length %d, but %d bytes follow", n, len(b)-8)
	}
	z, err := zlib.NewReader(bytes.NewReader(b[8 : 8+n]))
	if err != nil {
		return err
	}
	defer z.Close()
	data, err := io.ReadAll(io.LimitReader(z, maxInflated+1))
	if err != nil {
		return err
	}
	if len(data) > maxInflated {
		return fmt.Errorf("inflates past %d bytes", maxInflated)
	}
	if len(data) < v2HeaderSize {
		return fmt.Errorf("inflates to %d bytes, too short for the %d-byte header", len(data), v2HeaderSize)
	}
	if c := int32(binary.BigEndian.Uint32(data) &^ cookieMask); c != hdr.V2EncodingCookieBase {
		return fmt.Errorf("inner cookie %#x is not the V2 format's %#x", c, hdr.V2EncodingCookieBase)
	}
	if p := int64(int32(binary.BigEndian.Uint32(data[4:]))); p != int64(len(data)-v2HeaderSize) {
		return fmt.Errorf("payload length %d, but %d bytes follow the header", p, len(data)-v2HeaderSize)
	}
	sig := int32(binary.BigEndian.Uint32(data[12:]))
	lo := int64(binary.BigEndian.Uint64(data[16:]))
	hi := int64(binary.BigEndian.Uint64(data[24:]))
	if lo != HistLowest || hi != HistHighest || sig != HistSigFigs {
		return fmt.Errorf("bounds [%d, %d] at %d significant figures are not portstorm's [%d, %d] at %d",
			lo, hi, sig, HistLowest, HistHighest, HistSigFigs)
	}
	return nil
}
