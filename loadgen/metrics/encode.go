package metrics

import (
	"bytes"
	"compress/zlib"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"math"
	"sync"

	hdr "github.com/HdrHistogram/hdrhistogram-go"
)

// The HdrHistogram V2 encoding's cookies: the compressed form wraps the plain one.
const (
	v2Cookie           = hdr.V2EncodingCookieBase | 0x10
	v2CompressedCookie = hdr.V2CompressedEncodingCookieBase | 0x10
)

// encoder writes the HdrHistogram V2 compressed encoding with buffers and a zlib writer it keeps.
// hdrhistogram-go's Encode makes a new zlib writer at its best compression for every histogram:
// 845 KB of allocation and 0.42 ms each (BenchmarkEncodeHistogram). An interval's histograms are
// encoded together, for the interval log and a worker's snapshot: a burst of CPU at each interval
// boundary, on whichever core is free, in the same process as the requests it times and often on
// the core the target needs (docs/measurements.md "The interval's encoding"). So the encoder keeps
// its writer and buffers, appends the counts' varints to a slice, and compresses at zlib's best
// speed: a level-9 writer clears 640 KB of hash tables at every reset and searches its chains
// longest, for lines a few percent shorter. The bytes compressed are hdr's, byte for byte, and any
// zlib reader inflates them (HdrHistogram's Java and Go log readers: TestEncodeReadsAsHdr).
type encoder struct {
	raw  []byte
	zbuf bytes.Buffer
	zw   *zlib.Writer
	out  []byte
}

// theEncoder is the process's one encoder, kept for its life (zlib's window and tables, and
// buffers as large as the largest histogram). Not a sync.Pool: a pool is emptied by two
// garbage collections in a row, and at a small GOGC several run between two interval cuts, so each
// cut made a new zlib writer again. Encodes are an interval's few histograms, ~0.1 ms each: taking
// turns costs nothing measurable.
var theEncoder struct {
	sync.Mutex
	e *encoder
}

func newEncoder() *encoder {
	e := &encoder{}
	e.zw, _ = zlib.NewWriterLevel(&e.zbuf, zlib.BestSpeed) // a valid level: never an error
	return e
}

// encode returns base64 of h's V2 compressed encoding.
func (e *encoder) encode(h *hdr.Histogram) (string, error) {
	s := h.Export()
	ratio := s.IntegerToDoubleConversionRatio
	if ratio == 0 {
		ratio = 1
	}
	// The counts up to the last one not zero (hdr writes up to the bucket of Max, the same bucket;
	// at least one count), each a zig-zag LEB128 varint; a run of zeros is its negated length.
	limit := 1
	for i := len(s.Counts) - 1; i > 0; i-- {
		if s.Counts[i] != 0 {
			limit = i + 1
			break
		}
	}
	var head [40]byte
	raw := append(e.raw[:0], head[:]...) // filled in below, once the payload's length is known
	for i := 0; i < limit; {
		c := s.Counts[i]
		i++
		if c == 0 {
			zeros := int64(1)
			for i < limit && s.Counts[i] == 0 {
				zeros++
				i++
			}
			if zeros > 1 {
				c = -zeros
			}
		}
		raw = appendZigZag(raw, c)
	}
	e.raw = raw
	binary.BigEndian.PutUint32(raw[0:], uint32(v2Cookie))
	binary.BigEndian.PutUint32(raw[4:], uint32(len(raw)-40))
	binary.BigEndian.PutUint32(raw[8:], 0) // normalizing index offset: counts are written in order
	binary.BigEndian.PutUint32(raw[12:], uint32(int32(s.SignificantFigures)))
	binary.BigEndian.PutUint64(raw[16:], uint64(s.LowestTrackableValue))
	binary.BigEndian.PutUint64(raw[24:], uint64(s.HighestTrackableValue))
	binary.BigEndian.PutUint64(raw[32:], math.Float64bits(ratio))

	e.zbuf.Reset()
	e.zw.Reset(&e.zbuf)
	if _, err := e.zw.Write(raw); err != nil {
		return "", fmt.Errorf("encoding histogram: %w", err)
	}
	if err := e.zw.Close(); err != nil {
		return "", fmt.Errorf("encoding histogram: %w", err)
	}
	out := binary.BigEndian.AppendUint32(e.out[:0], uint32(v2CompressedCookie))
	out = binary.BigEndian.AppendUint32(out, uint32(e.zbuf.Len()))
	e.out = append(out, e.zbuf.Bytes()...)
	return base64.StdEncoding.EncodeToString(e.out), nil
}

// appendZigZag appends v as HdrHistogram's zig-zag LEB128-64b9B varint: seven bits a byte for the
// first eight bytes, all eight bits in a ninth.
func appendZigZag(b []byte, v int64) []byte {
	u := uint64((v << 1) ^ (v >> 63))
	for range 8 {
		if u>>7 == 0 {
			return append(b, byte(u))
		}
		b = append(b, byte(u&0x7f)|0x80)
		u >>= 7
	}
	return append(b, byte(u))
}
