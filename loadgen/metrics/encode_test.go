package metrics

import (
	"math/rand/v2"
	"testing"

	hdr "github.com/HdrHistogram/hdrhistogram-go"
)

// TestEncodeMatchesHdr: the pooled encoder writes what hdrhistogram-go's Encode writes, byte for
// byte, for portstorm's histograms and for other bounds; an encoder used before leaves nothing
// behind in the next histogram's encoding.
func TestEncodeMatchesHdr(t *testing.T) {
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
		if got != string(want) {
			t.Errorf("%s: encoded\n%s\nhdr's Encode\n%s", tt.name, got, want)
		}
		back, err := hdr.Decode([]byte(got))
		if err != nil || !back.Equals(tt.h) {
			t.Errorf("%s: decodes to a different histogram (%v)", tt.name, err)
		}
	}
}

func BenchmarkEncodeHistogram(b *testing.B) {
	h := NewHistogram()
	for i := range int64(30_000) {
		h.RecordValue(50 + i%3000)
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
