package metrics

import (
	"bytes"
	"compress/zlib"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"io"
	"math"
	"slices"
	"syscall"
	"testing"
	"time"

	hdr "github.com/HdrHistogram/hdrhistogram-go"
)

// sampleSnapshot is an interval in which every kind of measurement happened.
func sampleSnapshot(t testing.TB) *Snapshot {
	t.Helper()
	rec := NewRecorder(t0, 2)
	for i := range 40 {
		s := rec.Shard(uint64(i))
		tm := Timing{Lag: time.Duration(i) * 37 * time.Microsecond, Connect: time.Duration(i*i+1) * time.Microsecond, Intended: true}
		switch i % 5 {
		case 0:
			s.Drop()
		case 1:
			s.Attempt()
			s.ConnectFailed(at(int64(i)), tm, opErr("dial", "connect", syscall.ECONNREFUSED))
		default:
			s.Attempt()
			s.Connected(tm)
			s.Exchanged(-1, time.Duration(i)*time.Millisecond, 64, 64)
			var err error
			if i%5 == 4 {
				err = io.EOF
			}
			if i < 35 {
				s.Closed(at(int64(i)), time.Duration(i)*time.Second, err)
			}
		}
	}
	rec.Shard(0).Closed(at(50), 3*time.Hour, ErrEchoMismatch) // clamped
	snap := rec.Cut(at(100), 2)
	snap.Segment = "2/3"
	return snap
}

// sameSnapshot reports every field in which got differs from want.
func sameSnapshot(t testing.TB, got, want *Snapshot) {
	t.Helper()
	if got.Segment != want.Segment || got.Seq != want.Seq || got.Stage != want.Stage ||
		got.StartUS != want.StartUS || got.EndUS != want.EndUS || got.Active != want.Active || got.PeakActive != want.PeakActive {
		t.Errorf("header\n got %v\nwant %v", got, want)
	}
	if got.Counts != want.Counts {
		t.Errorf("counts\n got %+v\nwant %+v", got.Counts, want.Counts)
	}
	for o := range NumOutcomes {
		g, w := got.First[o], want.First[o]
		if (g == nil) != (w == nil) || g != nil && *g != *w {
			t.Errorf("first %v: got %v, want %v", o, g, w)
		}
		if !slices.Equal(got.Examples[o], want.Examples[o]) {
			t.Errorf("examples %v: got %q, want %q", o, got.Examples[o], want.Examples[o])
		}
	}
	for l := range NumLatencies {
		if !histOrEmpty(got.Hist[l]).Equals(histOrEmpty(want.Hist[l])) {
			t.Errorf("histogram %v differs: %d values vs %d", l, histOrEmpty(got.Hist[l]).TotalCount(), histOrEmpty(want.Hist[l]).TotalCount())
		}
	}
}

func histOrEmpty(h *hdr.Histogram) *hdr.Histogram {
	if h == nil {
		return NewHistogram()
	}
	return h
}

func TestSnapshotJSONRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		snap func(testing.TB) *Snapshot
	}{
		{"empty", func(testing.TB) *Snapshot { return NewSnapshot() }},
		{"zero value", func(testing.TB) *Snapshot { return &Snapshot{} }},
		{"one interval", sampleSnapshot},
		{"a whole run", func(t testing.TB) *Snapshot {
			total := NewSnapshot()
			for range 3 {
				if err := total.Add(sampleSnapshot(t)); err != nil {
					t.Fatal(err)
				}
			}
			return total
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := tt.snap(t)
			b, err := json.Marshal(want)
			if err != nil {
				t.Fatal(err)
			}
			var got Snapshot
			if err := json.Unmarshal(b, &got); err != nil {
				t.Fatalf("Unmarshal(%s): %v", b, err)
			}
			sameSnapshot(t, &got, want)
		})
	}
}

// TestHistogramWire checks that the hdr field is what the HdrHistogram tools read: base64 of the
// compressed V2 encoding, once.
func TestHistogramWire(t *testing.T) {
	h := NewHistogram()
	for v := range int64(1000) {
		_ = h.RecordValue(v * v)
	}
	enc, err := EncodeHistogram(h)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := base64.StdEncoding.DecodeString(enc)
	if err != nil {
		t.Fatal(err)
	}
	if len(raw) < 8 || binary.BigEndian.Uint32(raw)&^0xf0 != uint32(hdr.V2CompressedEncodingCookieBase) {
		t.Fatalf("the hdr field does not decode to a V2 compressed histogram: % x", raw[:min(8, len(raw))])
	}
	other, err := hdr.Decode([]byte(enc)) // what any other reader of the format does
	if err != nil {
		t.Fatalf("hdrhistogram cannot read it: %v", err)
	}
	if !other.Equals(h) {
		t.Error("hdrhistogram reads a different histogram")
	}
	back, err := DecodeHistogram(enc)
	if err != nil {
		t.Fatal(err)
	}
	if !back.Equals(h) {
		t.Error("DecodeHistogram reads a different histogram")
	}
}

// encoded returns the wire form of a histogram built by build, however it is bounded.
func encoded(t testing.TB, h *hdr.Histogram) string {
	t.Helper()
	b, err := h.Encode(hdr.V2CompressedEncodingCookieBase)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestSnapshotRefused(t *testing.T) {
	valid, err := json.Marshal(sampleSnapshot(t))
	if err != nil {
		t.Fatal(err)
	}
	with := func(key string, v any) string {
		var m map[string]any
		if err := json.Unmarshal(valid, &m); err != nil {
			t.Fatal(err)
		}
		m[key] = v
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	wide := hdr.New(1, 1_000_000_000_000, 3)
	_ = wide.RecordValue(500_000_000_000)
	narrow := hdr.New(1, 1000, 3)
	_ = narrow.RecordValue(5)
	precise := hdr.New(1, HistHighest, 5)
	_ = precise.RecordValue(5)
	tests := []struct {
		name string
		json string
	}{
		{"not JSON", `{"seq":`},
		{"wrong type", `{"attempted":-1}`},
		{"unknown outcome", with("outcomes", map[string]uint64{"ENOBUFS": 1})},
		{"outcome in other case", with("outcomes", map[string]uint64{"OK": 1})},
		{"unknown outcome in first", with("first", map[string]FirstSeen{"ENOBUFS": {}})},
		{"unknown outcome in examples", with("examples", map[string][]string{"ENOBUFS": {"x"}})},
		{"unknown histogram", with("hdr", map[string]string{"time_to_coffee": encoded(t, NewHistogram())})},
		{"histogram not base64", with("hdr", map[string]string{"rtt": "!!!"})},
		{"histogram empty", with("hdr", map[string]string{"rtt": ""})},
		{"histogram not a histogram", with("hdr", map[string]string{"rtt": base64.StdEncoding.EncodeToString([]byte("hello, world"))})},
		{"histogram truncated", with("hdr", map[string]string{"rtt": encoded(t, NewHistogram())[:20]})},
		{"histogram with values beyond the bounds", with("hdr", map[string]string{"rtt": encoded(t, wide)})},
		{"histogram with narrower bounds", with("hdr", map[string]string{"rtt": encoded(t, narrow)})},
		{"histogram with more significant figures", with("hdr", map[string]string{"rtt": encoded(t, precise)})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := sampleSnapshot(t)
			before := s.Clone()
			if err := json.Unmarshal([]byte(tt.json), s); err == nil {
				t.Fatalf("Unmarshal(%.200s) accepted it", tt.json)
			}
			sameSnapshot(t, s, before) // a refused snapshot is not half read
		})
	}
}

func TestAddCombine(t *testing.T) {
	interval := func(startUS, endUS, active, peak int64, seq, stage int) *Snapshot {
		s := sampleSnapshot(t)
		s.StartUS, s.EndUS, s.Active, s.PeakActive, s.Seq, s.Stage = startUS, endUS, active, peak, seq, stage
		return s
	}
	a := interval(1_000, 2_000, 3, 5, 7, 0)
	b := interval(2_000, 3_000, 2, 4, 8, 1)
	tests := []struct {
		name                 string
		into                 *Snapshot
		combine              bool
		parts                []*Snapshot
		wantStart, wantEnd   int64
		wantActive, wantPeak int64
		wantSeq, wantStage   int
	}{
		{"Add takes the later gauge and the larger peak", NewSnapshot(), false, []*Snapshot{a, b}, 1_000, 3_000, 2, 5, 8, 1},
		{"Add into a fresh snapshot takes the other's non-zero start", NewSnapshot(), false, []*Snapshot{b}, 2_000, 3_000, 2, 4, 8, 1},
		{"Add into a zero Snapshot", &Snapshot{}, false, []*Snapshot{b, a}, 1_000, 3_000, 3, 5, 7, 0},
		{"Combine sums the gauges", NewSnapshot(), true, []*Snapshot{a, b}, 1_000, 3_000, 5, 9, 0, 0},
		{"Combine into a zero Snapshot", &Snapshot{}, true, []*Snapshot{b}, 2_000, 3_000, 2, 4, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := tt.into
			var want Counts
			var wantHist [NumLatencies]int64
			for _, p := range tt.parts {
				var err error
				if tt.combine {
					err = s.Combine(p)
				} else {
					err = s.Add(p)
				}
				if err != nil {
					t.Fatal(err)
				}
				want.add(&p.Counts)
				for l, h := range p.Hist {
					wantHist[l] += histOrEmpty(h).TotalCount()
				}
			}
			if s.StartUS != tt.wantStart || s.EndUS != tt.wantEnd {
				t.Errorf("span [%d, %d), want [%d, %d)", s.StartUS, s.EndUS, tt.wantStart, tt.wantEnd)
			}
			if s.Active != tt.wantActive || s.PeakActive != tt.wantPeak {
				t.Errorf("Active %d PeakActive %d, want %d and %d", s.Active, s.PeakActive, tt.wantActive, tt.wantPeak)
			}
			if s.Seq != tt.wantSeq || s.Stage != tt.wantStage {
				t.Errorf("Seq %d Stage %d, want %d and %d", s.Seq, s.Stage, tt.wantSeq, tt.wantStage)
			}
			if s.Counts != want {
				t.Errorf("counts\n got %+v\nwant %+v", s.Counts, want)
			}
			for l, h := range s.Hist {
				if histOrEmpty(h).TotalCount() != wantHist[l] {
					t.Errorf("%s holds %d values, want %d", Latency(l), histOrEmpty(h).TotalCount(), wantHist[l])
				}
			}
		})
	}
}

// TestMergeRefused checks that a merge that would lose values is an error and changes nothing.
func TestMergeRefused(t *testing.T) {
	tests := []struct {
		name  string
		other func() *Snapshot
		into  func() *Snapshot
	}{
		{"histogram with other bounds", func() *Snapshot {
			s := sampleSnapshot(t)
			s.Hist[Lifetime] = hdr.New(1, 1_000_000_000_000, 3)
			_ = s.Hist[Lifetime].RecordValue(500_000_000_000)
			return s
		}, func() *Snapshot { return sampleSnapshot(t) }},
		{"counts past int64", func() *Snapshot {
			s := sampleSnapshot(t)
			_ = s.Hist[RTT].RecordValues(10, math.MaxInt64-s.Hist[RTT].TotalCount())
			return s
		}, func() *Snapshot { return sampleSnapshot(t) }},
	}
	for _, tt := range tests {
		for _, op := range []string{"Add", "Combine"} {
			t.Run(tt.name+"/"+op, func(t *testing.T) {
				s := tt.into()
				before := s.Clone()
				var err error
				if op == "Add" {
					err = s.Add(tt.other())
				} else {
					err = s.Combine(tt.other())
				}
				if err == nil {
					t.Fatal("merge accepted")
				}
				sameSnapshot(t, s, before)
			})
		}
	}
}

func TestClone(t *testing.T) {
	orig := sampleSnapshot(t)
	keep, err := json.Marshal(orig)
	if err != nil {
		t.Fatal(err)
	}
	c := orig.Clone()
	sameSnapshot(t, c, orig)

	c.Attempted++
	c.Outcomes[OK]++
	c.First[ECONNREFUSED].AtUS = -1
	c.First[ETIMEDOUT] = &FirstSeen{AtUS: 1}
	c.Examples[ECONNREFUSED][0] = "changed"
	c.Examples[EOF] = append(c.Examples[EOF], "more")
	for _, h := range c.Hist {
		_ = h.RecordValue(42)
	}
	if err := c.Add(sampleSnapshot(t)); err != nil {
		t.Fatal(err)
	}

	var want Snapshot
	if err := json.Unmarshal(keep, &want); err != nil {
		t.Fatal(err)
	}
	sameSnapshot(t, orig, &want)
}

func TestSnapshotString(t *testing.T) {
	s := sampleSnapshot(t)
	if got := s.String(); got == "" {
		t.Error("empty String")
	}
}

// v2 builds a compressed V2 histogram by hand, so headers no encoder would write can be tried.
type v2 struct {
	cookie, innerCookie uint32
	lengthDelta         int32 // added to the true compressed length in the outer header
	payloadDelta        int32 // added to the true payload length in the inner header
	sig                 int32
	lo, hi              int64
	counts              []byte
}

func (h v2) String() string {
	var in bytes.Buffer
	_ = binary.Write(&in, binary.BigEndian, h.innerCookie)
	_ = binary.Write(&in, binary.BigEndian, int32(len(h.counts))+h.payloadDelta)
	_ = binary.Write(&in, binary.BigEndian, int32(0))
	_ = binary.Write(&in, binary.BigEndian, h.sig)
	_ = binary.Write(&in, binary.BigEndian, h.lo)
	_ = binary.Write(&in, binary.BigEndian, h.hi)
	_ = binary.Write(&in, binary.BigEndian, 1.0)
	in.Write(h.counts)
	var z bytes.Buffer
	zw := zlib.NewWriter(&z)
	_, _ = zw.Write(in.Bytes())
	_ = zw.Close()
	var out bytes.Buffer
	_ = binary.Write(&out, binary.BigEndian, h.cookie)
	_ = binary.Write(&out, binary.BigEndian, int32(z.Len())+h.lengthDelta)
	out.Write(z.Bytes())
	return base64.StdEncoding.EncodeToString(out.Bytes())
}

func TestDecodeHistogram(t *testing.T) {
	ok := v2{
		cookie: uint32(hdr.V2CompressedEncodingCookieBase) | 0x10, innerCookie: uint32(hdr.V2EncodingCookieBase) | 0x10,
		sig: HistSigFigs, lo: HistLowest, hi: HistHighest,
		counts: []byte{0x01, 0x02}, // zig-zag LEB128: a zero run of one, then a count of one
	}
	with := func(f func(*v2)) string { h := ok; f(&h); return h.String() }
	tests := []struct {
		name   string
		enc    string
		wantOK bool
	}{
		{"hand-built", ok.String(), true},
		{"cookie without the word-size bits", with(func(h *v2) { h.cookie &^= 0xf0; h.innerCookie &^= 0xf0 }), true},
		{"uncompressed V2 cookie", with(func(h *v2) { h.cookie = uint32(hdr.V2EncodingCookieBase) }), false},
		{"V1 inner cookie", with(func(h *v2) { h.innerCookie = 0x1c849301 }), false},
		{"compressed length past the end", with(func(h *v2) { h.lengthDelta = 1 }), false},
		{"compressed length short", with(func(h *v2) { h.lengthDelta = -4 }), false},
		{"negative compressed length", with(func(h *v2) { h.lengthDelta = -1 << 30 }), false},
		{"payload length longer than the payload", with(func(h *v2) { h.payloadDelta = 1 }), false},
		{"negative payload length", with(func(h *v2) { h.payloadDelta = -100 }), false},
		{"highest near int64", with(func(h *v2) { h.hi = math.MaxInt64 / 2 }), false},
		{"five significant figures", with(func(h *v2) { h.sig = 5 }), false},
		{"significant figures out of range", with(func(h *v2) { h.sig = 1 << 20 }), false},
		{"lowest of zero", with(func(h *v2) { h.lo = 0 }), false},
		{"inflates past the cap", with(func(h *v2) { h.counts = make([]byte, maxInflated) }), false},
		{"count index past the array", with(func(h *v2) { h.counts = []byte{0x81, 0x80, 0x80, 0x80, 0x01, 0x02} }), false},
		{"too short", base64.StdEncoding.EncodeToString([]byte{0x1c, 0x84}), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := DecodeHistogram(tt.enc)
			if tt.wantOK {
				if err != nil || h.TotalCount() != 1 || !h.ValuesAreEquivalent(h.Max(), 1) {
					t.Fatalf("DecodeHistogram = %v, %v; want one value of 1", h, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("DecodeHistogram accepted it: %d values", h.TotalCount())
			}
		})
	}
}
