package proto

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"testing/iotest"
)

// The seed corpora are in testdata/fuzz/<FuzzName>: well-formed responses of every framing, the
// hostile ones of the tests, and the crashers fuzzing found.

// FuzzHTTPResponse feeds arbitrary bytes as the server's response to a GET or a HEAD.
func FuzzHTTPResponse(f *testing.F) {
	f.Add([]byte("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"), false, uint16(1024))
	f.Fuzz(func(t *testing.T, data []byte, head bool, max uint16) {
		spec := Spec{Protocol: HTTP, HTTP: HTTPSpec{Host: "h"}, MaxResponse: int(max) + 1}
		if head {
			spec.HTTP.Method = "HEAD"
		}
		checkInvariants(t, spec, data, ErrStatus)
	})
}

// FuzzRESP feeds arbitrary bytes as a Redis server's reply, checked against expect.
func FuzzRESP(f *testing.F) {
	f.Add([]byte("+PONG\r\n"), "PONG", uint16(1024))
	f.Fuzz(func(t *testing.T, data []byte, expect string, max uint16) {
		spec := Spec{Protocol: Redis, Redis: RedisSpec{Command: []string{"PING"}, Expect: expect}, MaxResponse: int(max) + 1}
		checkInvariants(t, spec, data, ErrReply)
	})
}

// checkInvariants runs the exchange on data delivered whole and a byte at a time, and checks what
// must hold whatever the bytes:
//   - no panic; the Reader takes at most MaxResponse bytes, and In is what it took;
//   - every error is a verdict, ErrMalformed, ErrTooLarge, io.EOF (only for no bytes at all) or
//     io.ErrUnexpectedEOF;
//   - the outcome does not depend on how the bytes are cut, except that bytes read ahead past a
//     complete and right response are ErrMalformed (a wrong one stays the verdict);
//   - a response read to its end was not read past it: alone, it gives the same result.
func checkInvariants(t *testing.T, spec Spec, data []byte, verdict error) {
	x, err := Compile(spec)
	if err != nil {
		t.Fatal(err)
	}
	whole, wholeErr := fuzzRun(t, x, data, false)
	one, oneErr := fuzzRun(t, x, data, true)
	complete := func(err error) bool { return err == nil || errors.Is(err, verdict) }
	switch {
	case complete(wholeErr):
		a, b := one, whole
		if errors.Is(wholeErr, verdict) {
			// A wrong answer is reported whatever follows it, so what was read ahead may differ.
			a.In, b.In = 0, 0
		}
		if a != b || outcome(oneErr, verdict) != outcome(wholeErr, verdict) {
			t.Fatalf("whole: %+v %v; a byte at a time: %+v %v", whole, wholeErr, one, oneErr)
		}
	case complete(oneErr):
		if !errors.Is(wholeErr, ErrMalformed) {
			t.Fatalf("a byte at a time: %+v %v; whole: %v", one, oneErr, wholeErr)
		}
	case outcome(wholeErr, verdict) != outcome(oneErr, verdict):
		t.Fatalf("whole: %v; a byte at a time: %v", wholeErr, oneErr)
	}
	if complete(oneErr) {
		alone, err := fuzzRun(t, x, data[:one.In], false)
		if alone != one || outcome(err, verdict) != outcome(oneErr, verdict) {
			t.Fatalf("the response alone: %+v %v; followed by more bytes: %+v %v", alone, err, one, oneErr)
		}
	}
}

// fuzzReader is reused as the engine reuses Readers: a fuzz worker runs its inputs one by one.
var fuzzReader = NewReader()

// fuzzRun runs one exchange on data and returns its result without the timings.
func fuzzRun(t *testing.T, x *Exchange, data []byte, oneByte bool) (Result, error) {
	var src io.Reader = bytes.NewReader(data)
	if oneByte {
		src = iotest.OneByteReader(src)
	}
	c := &countingReader{r: src}
	r := fuzzReader
	r.Reset(c)
	res, err := x.Do(io.Discard, r)
	switch {
	case c.n > x.max:
		t.Fatalf("read %d bytes with a cap of %d", c.n, x.max)
	case res.In != c.n || res.In > len(data):
		t.Fatalf("In %d, read %d of %d bytes", res.In, c.n, len(data))
	case res.Out != len(x.request):
		t.Fatalf("Out %d, request of %d bytes", res.Out, len(x.request))
	case res.Full != 0 && res.Full < res.FirstByte:
		t.Fatalf("Full %v before FirstByte %v", res.Full, res.FirstByte)
	case errors.Is(err, io.EOF) && len(data) > 0:
		t.Fatalf("io.EOF after %d bytes", len(data))
	case err == nil && x.protocol == HTTP && (res.Status < 200 || res.Status > 299):
		t.Fatalf("status %d accepted", res.Status)
	}
	if outcome(err, nil) == "other" {
		t.Fatalf("error %v is not one of the package's outcomes", err)
	}
	res.FirstByte, res.Full = 0, 0
	return res, err
}

// outcome names the class of err, as a caller telling them apart with errors.Is would.
func outcome(err, verdict error) string {
	for _, e := range []error{verdict, ErrStatus, ErrReply, ErrMalformed, ErrTooLarge, io.ErrUnexpectedEOF, io.EOF} {
		if e != nil && errors.Is(err, e) {
			return e.Error()
		}
	}
	if err == nil {
		return "ok"
	}
	return "other"
}

type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}
