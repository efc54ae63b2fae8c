package metrics

import (
	"bytes"
	"compress/zlib"
	"encoding/base64"
	"encoding/binary"
	"io"
	"math/rand/v2"
	"testing"

	hdr "github.com/HdrHistogram/hdrhistogram-go"
)

// TestEncodeReadsAsHdr: the kept encoder compresses what hdrhistogram-go's Encode compresses, byte
// for byte, for portstorm's histograms and for other bounds, in the same envelope (cookie, length,
// zlib stream), and hdrhistogram-go decodes it to the histogram encoded; an encoder used before
// leaves nothing behind in the next histogram's encoding. Only the compression level differs
// (zlib's best speed, against hdr's best compression), which no zlib reader needs to know.
func TestEncodeReadsAsHdr(t *testing.T) {
	record := func(h *hdr.Histogram, vs ...int64) *hdr.Histogram {
		for _, v := range vs {
			if err := h.RecordValue(v); err != nil {
				t.Fatal(err)
			}
		}
		return h
	}
	rng := rand.New(rand.NewPCG(1, 2))
	spread := NewHistogram()
	for range 100_000 {
		spread.RecordValue(1 + rng.Int64N(50_000)*rng.Int64N(3)) // many buckets, runs of zeros
	}
	huge := NewHistogram()
	huge.RecordValues(42, 1<<62) // a count whose varint takes the ninth byte
	huge.RecordValues(43, 1<<20)
	tests := []struct {
		name string
		h    *hdr.Histogram
	}{
		{"empty", NewHistogram()},
		{"one value", record(NewHistogram(), 117)},
		{"lowest value", record(NewHistogram(), HistLowest)},
		{"highest value", record(NewHistogram(), HistHighest)},
		{"two far apart", record(NewHistogram(), 3, 2_000_000_000)},
		{"a spread", spread},
		{"a huge count", huge},
		{"other bounds", record(hdr.New(10, 1_000_000, 2), 10, 11, 999_999)},
		{"five digits", record(hdr.New(1, 1<<40, 5), 1, 1<<39, 12345)},
	}
	e := newEncoder()
	for _, tt := range tests {
		want, err := tt.h.Encode(hdr.V2CompressedEncodingCookieBase)
		if err != nil {
			t.Fatal(err)
		}
		got, err := e.encode(tt.h)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		gotRaw, err := inflated(got)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		wantRaw, err := inflated(string(want))
		if err != nil {
			t.Fatalf("%s: hdr's Encode: %v", tt.name, err)
		}
		if !bytes.Equal(gotRaw, wantRaw) {
			t.Errorf("%s: compressed\n%x\nhdr's Encode compressed\n%x", tt.name, gotRaw, wantRaw)
		}
		back, err := hdr.Decode([]byte(got))
		if err != nil || !back.Equals(tt.h) {
			t.Errorf("%s: decodes to a different histogram (%v)", tt.name, err)
		}
	}
}

// inflated is what the zlib stream of base64 enc, a V2 compressed encoding, inflates to.
func inflated(enc string) ([]byte, error) {
	b, err := base64.StdEncoding.DecodeString(enc)
	if err != nil {
		return nil, err
	}
	if len(b) < 8 || binary.BigEndian.Uint32(b) != uint32(v2CompressedCookie) || int(binary.BigEndian.Uint32(b[4:])) != len(b)-8 {
		return nil, io.ErrUnexpectedEOF
	}
	z, err := zlib.NewReader(bytes.NewReader(b[8:]))
	if err != nil {
		return nil, err
	}
	return io.ReadAll(z)
}

// BenchmarkEncodeHistogram encodes a second of requests at 30,000/s: most between 50 µs and 3 ms,
// a tail to ~60 ms (about 2,000 buckets with counts, runs of zeros between them).
func BenchmarkEncodeHistogram(b *testing.B) {
	h := NewHistogram()
	for i := range int64(30_000) {
		h.RecordValue(50 + (i*7919)%3000 + (i%100)*(i%7)*100)
	}
	b.Run("hdr", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			h.Encode(hdr.V2CompressedEncodingCookieBase)
		}
	})
	b.Run("pooled", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			EncodeHistogram(h)
		}
	})
}
