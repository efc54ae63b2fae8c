package metrics

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	hdr "github.com/HdrHistogram/hdrhistogram-go"
)

func FuzzSnapshotDecode(f *testing.F) {
	for _, s := range []*Snapshot{NewSnapshot(), sampleSnapshot(f)} {
		b, err := json.Marshal(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	// Hostile histograms: headers that would size a huge counts array, and a zlib bomb.
	good := v2{
		cookie: uint32(hdr.V2CompressedEncodingCookieBase) | 0x10, innerCookie: uint32(hdr.V2EncodingCookieBase) | 0x10,
		sig: HistSigFigs, lo: HistLowest, hi: HistHighest, counts: []byte{0x01, 0x02},
	}
	wide, precise, bomb := good, good, good
	wide.hi = 1 << 62
	precise.sig = 5
	bomb.counts = make([]byte, 2*maxInflated)
	for _, h := range []v2{good, wide, precise, bomb} {
		f.Add([]byte(`{"hdr":{"lifetime":"` + h.String() + `"}}`))
	}
	for _, s := range []string{
		``, `null`, `{}`, `[]`, `"x"`, `{"outcomes":{"ok":1}}`,
		`{"hdr":{"rtt":""}}`, `{"hdr":{"rtt":"HISTFAAAACB4nJNpmSzMwMDAxQABzFCaEUzOmgFhAAA2bwKW"}}`,
		`{"examples":{"EOF":["a","b","c","d","e"]},"first":{"EOF":{"at_us":-5,"concurrency":-1}}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var s Snapshot
		if err := json.Unmarshal(b, &s); err != nil {
			return
		}
		again, err := json.Marshal(&s)
		if err != nil {
			t.Fatalf("a decoded snapshot does not encode: %v", err)
		}
		var r Snapshot
		if err := json.Unmarshal(again, &r); err != nil {
			t.Fatalf("a snapshot this build wrote does not decode: %v\n%s", err, again)
		}
		sameSnapshot(t, &r, &s)
	})
}

// latencies reads b as little-endian int64 durations; a short tail is dropped.
func latencies(b []byte) []time.Duration {
	var ds []time.Duration
	for len(b) >= 8 {
		ds = append(ds, time.Duration(binary.LittleEndian.Uint64(b)))
		b = b[8:]
	}
	return ds
}

// intervalOf records one connection per latency: connect, exchange and close all take it.
func intervalOf(ds []time.Duration) *Snapshot {
	errs := []error{nil, io.EOF, errors.New("other"), opErr("read", "read", syscall.ECONNRESET)}
	rec := NewRecorder(t0, 1)
	for i, d := range ds {
		s := rec.Shard(uint64(i))
		s.Attempt()
		if d%7 == 0 {
			s.ConnectFailed(t0.Add(d), Timing{Lag: d / 3, Connect: d, Intended: true}, opErr("dial", "connect", syscall.ETIMEDOUT))
			continue
		}
		s.Connected(Timing{Lag: d / 3, Connect: d, Intended: d%2 == 0})
		s.Exchanged(d/2, d, i, i)
		s.Closed(t0.Add(d), d, errs[i%len(errs)])
	}
	return rec.Cut(t0.Add(time.Second), 0)
}

func FuzzMergeConserves(f *testing.F) {
	f.Add([]byte{}, []byte{})
	f.Add(binary.LittleEndian.AppendUint64(nil, 1500_000), binary.LittleEndian.AppendUint64(nil, uint64(2*time.Hour)))
	f.Add([]byte("\xff\xff\xff\xff\xff\xff\xff\x7f\x00\x00\x00\x00\x00\x00\x00\x80"), []byte("0123456789abcdef01234567"))
	f.Fuzz(func(t *testing.T, x, y []byte) {
		a, b := intervalOf(latencies(x)), intervalOf(latencies(y))
		var want Counts
		want.add(&a.Counts)
		want.add(&b.Counts)
		var added *Snapshot
		for _, op := range []string{"Add", "Combine"} {
			s := a.Clone()
			var err error
			if op == "Add" {
				err, added = s.Add(b), s
			} else {
				err = s.Combine(b)
			}
			if err != nil {
				t.Fatalf("%s: %v", op, err)
			}
			if s.Counts != want {
				t.Errorf("%s: counts\n got %+v\nwant %+v", op, s.Counts, want)
			}
			for l := range NumLatencies {
				if got := s.Hist[l].TotalCount(); got != a.Hist[l].TotalCount()+b.Hist[l].TotalCount() {
					t.Errorf("%s: %s holds %d values, want %d + %d", op, Latency(l), got, a.Hist[l].TotalCount(), b.Hist[l].TotalCount())
				}
			}
		}
		// The order of merging does not matter.
		ba := b.Clone()
		if err := ba.Add(a); err != nil {
			t.Fatal(err)
		}
		for l := range NumLatencies {
			if !added.Hist[l].Equals(ba.Hist[l]) {
				t.Errorf("%s: a+b differs from b+a", Latency(l))
			}
		}
	})
}

// FuzzClassify: any errno, wrapped any way, classifies without panicking, the same way every time,
// and the errnos the taxonomy names never fall to Other.
func FuzzClassify(f *testing.F) {
	for _, e := range []syscall.Errno{syscall.ECONNREFUSED, syscall.EADDRNOTAVAIL, syscall.ETIMEDOUT, syscall.EPIPE, syscall.ENETUNREACH, syscall.EHOSTUNREACH, 0, 9999} {
		f.Add(uint16(e), uint8(0), "connect")
		f.Add(uint16(e), uint8(3), "bind")
	}
	named := map[syscall.Errno]Outcome{
		syscall.EADDRNOTAVAIL: EADDRNOTAVAIL, syscall.EADDRINUSE: EADDRINUSE, syscall.ECONNREFUSED: ECONNREFUSED,
		syscall.ETIMEDOUT: ETIMEDOUT, syscall.ECONNRESET: ECONNRESET, syscall.EPIPE: ECONNRESET,
		syscall.EMFILE: EMFILE, syscall.ENFILE: EMFILE,
		syscall.ENETUNREACH: ENETUNREACH, syscall.EHOSTUNREACH: EHOSTUNREACH, syscall.EHOSTDOWN: EHOSTUNREACH,
		syscall.ENETDOWN: ENETDOWN,
	}
	f.Fuzz(func(t *testing.T, errno uint16, wrap uint8, op string) {
		var err error = syscall.Errno(errno)
		switch wrap % 4 {
		case 1:
			err = os.NewSyscallError(op, err)
		case 2:
			err = &net.OpError{Op: op, Net: "tcp", Err: os.NewSyscallError(op, err)}
		case 3:
			err = fmt.Errorf("%s: %w", op, &net.OpError{Op: op, Err: err})
		}
		o := Classify(err)
		if o >= NumOutcomes || o == OK {
			t.Fatalf("Classify(%v) = %v", err, o)
		}
		if again := Classify(err); again != o {
			t.Fatalf("Classify is not deterministic: %v then %v", o, again)
		}
		if want, ok := named[syscall.Errno(errno)]; ok && o != want {
			t.Fatalf("Classify(%v) = %v, want %v", err, o, want)
		}
	})
}
