package metrics

import (
	"context"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	hdr "github.com/HdrHistogram/hdrhistogram-go"
)

var t0 = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

// at is the instant ms milliseconds after t0.
func at(ms int64) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }

func TestRecorderConcurrent(t *testing.T) {
	const (
		workers = 8
		conns   = 1000
	)
	closeErrs := []error{nil, nil, opErr("read", "read", syscall.ECONNRESET), io.EOF, ErrEchoMismatch}
	failErrs := []error{opErr("dial", "connect", syscall.ECONNREFUSED), opErr("dial", "connect", syscall.EADDRNOTAVAIL), context.DeadlineExceeded}

	// What each worker does with connection i, decided up front so the totals are known exactly.
	const (
		doEstablish = iota
		doFail
		doDrop
	)
	kind := func(i int) int {
		switch i % 7 {
		case 5:
			return doFail
		case 6:
			return doDrop
		}
		return doEstablish
	}
	var want Counts
	var wantIntended, wantLag uint64
	wantFirst := map[Outcome]int64{} // µs
	first := func(err error, i int) {
		o := Classify(err)
		want.Outcomes[o]++
		if _, ok := wantFirst[o]; !ok && o != OK {
			wantFirst[o] = at(int64(i)).Sub(t0).Microseconds()
		}
	}
	for range workers {
		for i := range conns {
			want.Attempted++
			switch kind(i) {
			case doEstablish:
				want.Established++
				want.Closed++
				want.BytesOut += 64
				want.BytesIn += 64
				want.Requests++
				want.RequestsOffered++
				want.RequestOutcomes[OK]++
				first(closeErrs[i%len(closeErrs)], i)
				if i%2 == 0 {
					wantIntended++
					wantLag++
				}
			case doFail:
				want.Failed++
				first(failErrs[i%len(failErrs)], i)
				if i%2 == 0 {
					wantLag++
				}
			case doDrop:
				want.Dropped++
			}
		}
	}

	rec := NewRecorder(t0, 4)
	var (
		snaps  []*Snapshot
		stop   atomic.Bool
		cutter sync.WaitGroup
		cuts   int64
	)
	cutter.Go(func() {
		for !stop.Load() {
			cuts++
			snaps = append(snaps, rec.Cut(at(cuts), 0))
			runtime.Gosched()
		}
	})
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range conns {
				s := rec.Shard(uint64(w*conns + i))
				tm := Timing{Lag: time.Duration(i) * time.Microsecond, Connect: time.Duration(100+i) * time.Microsecond, Intended: i%2 == 0}
				switch kind(i) {
				case doEstablish:
					s.Attempt()
					s.Connected(tm)
					s.Exchanged(-1, 50*time.Microsecond, 64, 64)
					s.Closed(at(int64(i)), time.Duration(i)*time.Millisecond, closeErrs[i%len(closeErrs)])
				case doFail:
					s.Attempt()
					s.ConnectFailed(at(int64(i)), tm, failErrs[i%len(failErrs)])
				case doDrop:
					s.Drop()
				}
			}
		})
	}
	wg.Wait()
	stop.Store(true)
	cutter.Wait()
	snaps = append(snaps, rec.Cut(at(cuts+1), 1))

	total := NewSnapshot()
	for i, s := range snaps {
		if s.Seq != i {
			t.Errorf("snapshot %d has Seq %d", i, s.Seq)
		}
		if i > 0 && s.StartUS != snaps[i-1].EndUS {
			t.Errorf("snapshot %d starts at %d µs, the previous ended at %d µs", i, s.StartUS, snaps[i-1].EndUS)
		}
		if s.PeakActive < s.Active || s.PeakActive > workers {
			t.Errorf("snapshot %d: PeakActive %d, Active %d; want Active <= PeakActive <= %d", i, s.PeakActive, s.Active, workers)
		}
		if err := total.Add(s); err != nil {
			t.Fatalf("Add snapshot %d: %v", i, err)
		}
	}
	t.Logf("%d snapshots", len(snaps))

	if total.Counts != want {
		t.Errorf("counts\n got %+v\nwant %+v", total.Counts, want)
	}
	if total.Attempted != total.Established+total.Failed+total.Dropped {
		t.Errorf("attempted %d != established %d + failed %d + dropped %d", total.Attempted, total.Established, total.Failed, total.Dropped)
	}
	var outcomes uint64
	for _, n := range total.Outcomes {
		outcomes += n
	}
	if outcomes != total.Failed+total.Closed {
		t.Errorf("outcomes sum to %d, want failed+closed = %d", outcomes, total.Failed+total.Closed)
	}
	for _, c := range []struct {
		l    Latency
		want uint64
	}{
		{Connect, want.Established},
		{ConnectIntended, wantIntended},
		{ScheduleLag, wantLag},
		{RTT, want.Established},
		{Lifetime, want.Closed},
	} {
		if got := total.Hist[c.l].TotalCount(); got != int64(c.want) {
			t.Errorf("%s histogram holds %d values, want %d", c.l, got, c.want)
		}
	}
	if total.Active != 0 || rec.Active() != 0 {
		t.Errorf("Active at the end: snapshot %d, recorder %d; want 0", total.Active, rec.Active())
	}
	if total.PeakActive < 1 || total.PeakActive > workers {
		t.Errorf("PeakActive %d, want within [1, %d]", total.PeakActive, workers)
	}
	if total.StartUS != 0 || total.EndUS != at(cuts+1).Sub(t0).Microseconds() {
		t.Errorf("span [%d, %d) µs, want [0, %d)", total.StartUS, total.EndUS, at(cuts+1).Sub(t0).Microseconds())
	}
	for o := range NumOutcomes {
		wantAt, failed := wantFirst[o]
		if !failed {
			if total.First[o] != nil || len(total.Examples[o]) != 0 {
				t.Errorf("%v: first %v, examples %q; want none", o, total.First[o], total.Examples[o])
			}
			continue
		}
		// Workers race, so a shard may see a later failure before an earlier one: the earliest wins.
		if f := total.First[o]; f == nil || f.AtUS != wantAt || f.Concurrency < 0 || f.Concurrency > workers {
			t.Errorf("%v: first %+v, want at %d µs with concurrency within [0, %d]", o, f, wantAt, workers)
		}
		if n := len(total.Examples[o]); n < 1 || n > maxExamples {
			t.Errorf("%v: %d examples, want 1 to %d", o, n, maxExamples)
		}
	}
}

func TestFirstSeen(t *testing.T) {
	refused := opErr("dial", "connect", syscall.ECONNREFUSED)
	rec := NewRecorder(t0, 2)
	a, b := rec.Shard(0), rec.Shard(1)
	b.Connected(Timing{Connect: time.Millisecond})
	// Connections finish out of order: the one that failed at 2 ms is recorded after the one at 5 ms.
	a.ConnectFailed(at(5), Timing{}, refused)
	b.Connected(Timing{Connect: time.Millisecond})
	a.ConnectFailed(at(2), Timing{}, refused)
	b.ConnectFailed(at(3), Timing{}, refused)
	first := rec.Cut(at(10), 0)

	want := FirstSeen{AtUS: 2000, Concurrency: 2}
	if f := first.First[ECONNREFUSED]; f == nil || *f != want {
		t.Errorf("first ECONNREFUSED = %+v, want %+v", f, want)
	}
	if f := first.First[OK]; f != nil {
		t.Errorf("first ok = %+v, want none: ok is not a failure", f)
	}

	// A later interval's first does not replace an earlier one; an earlier one does.
	a.ConnectFailed(at(11), Timing{}, refused)
	b.Closed(at(12), time.Millisecond, io.EOF)
	second := rec.Cut(at(20), 0)
	total := NewSnapshot()
	for _, s := range []*Snapshot{first, second} {
		if err := total.Add(s); err != nil {
			t.Fatal(err)
		}
	}
	if f := total.First[ECONNREFUSED]; f == nil || *f != want {
		t.Errorf("total first ECONNREFUSED = %+v, want %+v", f, want)
	}
	if f, want := total.First[EOF], (FirstSeen{AtUS: 12000, Concurrency: 2}); f == nil || *f != want {
		t.Errorf("total first EOF = %+v, want %+v (concurrency counts the closing connection)", f, want)
	}
}

func TestExamplesCapped(t *testing.T) {
	rec := NewRecorder(t0, 2)
	var msgs []string
	record := func(n int) *Snapshot {
		for i := range n {
			err := fmt.Errorf("connection %d: %w", len(msgs), opErr("dial", "connect", syscall.ECONNREFUSED))
			msgs = append(msgs, err.Error())
			rec.Shard(uint64(i)).ConnectFailed(at(int64(len(msgs))), Timing{}, err)
		}
		rec.Shard(0).Closed(at(1), time.Millisecond, nil)
		return rec.Cut(at(100), 0)
	}
	first := record(5)
	if got := first.Examples[ECONNREFUSED]; len(got) != maxExamples {
		t.Errorf("interval examples %q, want %d", got, maxExamples)
	}
	second := record(5)
	total := NewSnapshot()
	for _, s := range []*Snapshot{first, second} {
		if err := total.Add(s); err != nil {
			t.Fatal(err)
		}
	}
	got := total.Examples[ECONNREFUSED]
	if len(got) != maxExamples {
		t.Fatalf("total examples %q, want %d", got, maxExamples)
	}
	for _, m := range got {
		if !slices.Contains(msgs[:5], m) {
			t.Errorf("example %q is not from the first interval", m)
		}
	}
	if ex := total.Examples[OK]; len(ex) != 0 {
		t.Errorf("examples for ok: %q, want none", ex)
	}
}

func TestRecordClamps(t *testing.T) {
	tests := []struct {
		name        string
		d           time.Duration
		wantUS      int64
		wantClamped uint64
	}{
		{"zero is the lowest bound", 0, HistLowest, 0},
		{"sub-microsecond is the lowest bound", 400 * time.Nanosecond, HistLowest, 0},
		{"one microsecond", time.Microsecond, 1, 0},
		{"1.5 ms", 1500 * time.Microsecond, 1500, 0},
		{"one hour is the highest bound", time.Hour, HistHighest, 0},
		{"two hours are clamped", 2 * time.Hour, HistHighest, 1},
		{"the longest duration is clamped", time.Duration(1<<63 - 1), HistHighest, 1},
		{"negative (clock stepped back) is clamped", -time.Millisecond, HistLowest, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := NewRecorder(t0, 1)
			s := rec.Shard(0)
			s.Connected(Timing{Connect: tt.d})
			s.Closed(at(1), tt.d, nil)
			snap := rec.Cut(at(2), 0)
			for _, l := range []Latency{Connect, Lifetime} {
				h := snap.Hist[l]
				if h.TotalCount() != 1 || !h.ValuesAreEquivalent(h.Max(), tt.wantUS) {
					t.Errorf("%s: %d values, max %d; want one at %d", l, h.TotalCount(), h.Max(), tt.wantUS)
				}
			}
			if want := 2 * tt.wantClamped; snap.Clamped != want {
				t.Errorf("Clamped = %d, want %d", snap.Clamped, want)
			}
		})
	}
}

func TestTiming(t *testing.T) {
	tests := []struct {
		name                  string
		tm                    Timing
		wantLag, wantIntended int64 // µs; 0 for not recorded
	}{
		{"concurrency model records connect only", Timing{Lag: 7 * time.Millisecond, Connect: 3 * time.Millisecond}, 0, 0},
		{"arrival model adds lag to connect", Timing{Lag: 7 * time.Millisecond, Connect: 3 * time.Millisecond, Intended: true}, 7000, 10000},
		{"arrival model on time", Timing{Connect: 3 * time.Millisecond, Intended: true}, HistLowest, 3000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := NewRecorder(t0, 1)
			rec.Shard(0).Connected(tt.tm)
			snap := rec.Cut(at(1), 0)
			for _, c := range []struct {
				l    Latency
				want int64
			}{{Connect, tt.tm.Connect.Microseconds()}, {ScheduleLag, tt.wantLag}, {ConnectIntended, tt.wantIntended}} {
				h := snap.Hist[c.l]
				if c.want == 0 {
					if h.TotalCount() != 0 {
						t.Errorf("%s: %d values, want none", c.l, h.TotalCount())
					}
					continue
				}
				if h.TotalCount() != 1 || !h.ValuesAreEquivalent(h.Max(), c.want) {
					t.Errorf("%s: %d values, max %d; want one at %d", c.l, h.TotalCount(), h.Max(), c.want)
				}
			}
		})
	}
}

func TestExchanged(t *testing.T) {
	rec := NewRecorder(t0, 1)
	s := rec.Shard(0)
	s.Exchanged(120*time.Microsecond, 250*time.Microsecond, 100, 90)
	s.Exchanged(-1, -1, 10, 0) // no answer read: bytes count, the histograms do not
	s.Handshaked(3 * time.Millisecond)
	snap := rec.Cut(at(1), 0)
	if snap.BytesOut != 110 || snap.BytesIn != 90 {
		t.Errorf("bytes out %d in %d, want 110 and 90", snap.BytesOut, snap.BytesIn)
	}
	for _, c := range []struct {
		l    Latency
		want int64
	}{{RTT, 250}, {FirstByte, 120}, {TLSHandshake, 3000}} {
		if h := snap.Hist[c.l]; h.TotalCount() != 1 || h.Max() < c.want || h.Max() > c.want+c.want/100 {
			t.Errorf("%s holds %d values, max %d µs; want one of %d µs", c.l, h.TotalCount(), h.Max(), c.want)
		}
	}
}

func TestRequest(t *testing.T) {
	ms := time.Millisecond
	tests := []struct {
		name         string
		t            RequestTiming
		err          error
		want         Outcome
		wantOffered  uint64
		wantIntended int64 // µs recorded in request_intended; 0: none
		wantRTT      bool
	}{
		{"unrated, answered", RequestTiming{FirstByte: ms, Service: 2 * ms, Out: 64, In: 64}, nil, OK, 1, 0, true},
		{"unrated, written only", RequestTiming{FirstByte: -1, Service: -1, Out: 64}, nil, OK, 1, 0, false},
		{"rated, late and held by the window", RequestTiming{Intended: true, WindowWait: 3 * ms, Lag: ms, FirstByte: ms, Service: 2 * ms, Out: 64, In: 64}, nil, OK, 0, 6000, true},
		{"rated, wrong answer", RequestTiming{Intended: true, FirstByte: ms, Service: 2 * ms, Out: 64, In: 64}, fmt.Errorf("x: %w", ErrEchoMismatch), EchoMismatch, 0, 2000, true},
		{"rated, timed out", RequestTiming{Intended: true, Lag: ms, FirstByte: -1, Service: -1, Out: 64}, os.ErrDeadlineExceeded, ETIMEDOUT, 0, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := NewRecorder(t0, 1)
			s := rec.Shard(0)
			if o := s.Request(tt.t, tt.err); o != tt.want {
				t.Errorf("outcome %s, want %s", o, tt.want)
			}
			snap := rec.Cut(at(1), 0)
			if snap.Requests != 1 || snap.RequestOutcomes[tt.want] != 1 || snap.RequestErrors() != map[bool]uint64{true: 0, false: 1}[tt.want == OK] {
				t.Errorf("requests %d, outcomes %v", snap.Requests, snap.RequestOutcomes)
			}
			if snap.RequestsOffered != tt.wantOffered {
				t.Errorf("offered %d, want %d", snap.RequestsOffered, tt.wantOffered)
			}
			if snap.Outcomes[tt.want] != 0 {
				t.Errorf("a request counted as a connection outcome: %v", snap.Outcomes)
			}
			h := snap.Hist[RequestIntended]
			if got := h.TotalCount(); (got == 1) != (tt.wantIntended > 0) || got == 1 && (h.Max() < tt.wantIntended || h.Max() > tt.wantIntended+tt.wantIntended/100) {
				t.Errorf("request_intended holds %d values, max %d µs; want %d µs", got, h.Max(), tt.wantIntended)
			}
			if got := snap.Hist[RequestLag].TotalCount() + snap.Hist[WindowWait].TotalCount(); (got == 2) != tt.t.Intended {
				t.Errorf("request_lag and window_wait hold %d values, intended %v", got, tt.t.Intended)
			}
			if got := snap.Hist[RTT].TotalCount(); (got == 1) != tt.wantRTT {
				t.Errorf("rtt holds %d values", got)
			}
			if snap.BytesOut != uint64(tt.t.Out) || snap.BytesIn != uint64(tt.t.In) {
				t.Errorf("bytes %d/%d", snap.BytesOut, snap.BytesIn)
			}
		})
	}
}

func TestOfferAndRoundTrip(t *testing.T) {
	rec := NewRecorder(t0, 2)
	rec.Shard(0).Offer(5)
	rec.Shard(1).Request(RequestTiming{Intended: true, Service: time.Millisecond, FirstByte: -1}, nil)
	rec.Shard(1).Request(RequestTiming{Intended: true, Service: -1, FirstByte: -1}, io.EOF)
	snap := rec.Cut(at(1), 0)
	b, err := snap.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	var back Snapshot
	if err := back.UnmarshalJSON(b); err != nil {
		t.Fatal(err)
	}
	if back.Requests != 2 || back.RequestsOffered != 5 || back.RequestOutcomes[OK] != 1 || back.RequestOutcomes[EOF] != 1 {
		t.Errorf("round trip: requests %d offered %d outcomes %v", back.Requests, back.RequestsOffered, back.RequestOutcomes)
	}
	if err := back.UnmarshalJSON([]byte(`{"request_outcomes":{"nope":1}}`)); err == nil {
		t.Error("an unknown request outcome was accepted")
	}
}

func TestPeakActive(t *testing.T) {
	rec := NewRecorder(t0, 2)
	s := rec.Shard(0)
	steps := []struct {
		name                 string
		open, close          int
		wantActive, wantPeak int64
	}{
		{"three open, two close", 3, 2, 1, 3},
		{"nothing happens: the one still open is the peak", 0, 0, 1, 1},
		{"the last closes: it was open during the interval", 0, 1, 0, 1},
		{"idle", 0, 0, 0, 0},
	}
	for i, st := range steps {
		for range st.open {
			s.Connected(Timing{})
		}
		for range st.close {
			s.Closed(at(int64(i)), time.Millisecond, nil)
		}
		snap := rec.Cut(at(int64(i+1)), 0)
		if snap.Active != st.wantActive || snap.PeakActive != st.wantPeak {
			t.Errorf("%s: Active %d PeakActive %d, want %d and %d", st.name, snap.Active, snap.PeakActive, st.wantActive, st.wantPeak)
		}
	}
}

func TestRecorderShards(t *testing.T) {
	for _, n := range []int{-1, 0, 1, 3} {
		rec := NewRecorder(t0, n)
		for id := range uint64(10) {
			rec.Shard(id).Attempt()
		}
		if got := rec.Cut(at(1), 0).Attempted; got != 10 {
			t.Errorf("NewRecorder(n=%d): %d attempted, want 10", n, got)
		}
	}
	if !NewRecorder(t0, 1).Start().Equal(t0) {
		t.Error("Start is not the start given")
	}
}

// TestConnectionPathAllocs holds the hot path to zero allocations; BenchmarkConnectionPath measures it.
func TestConnectionPathAllocs(t *testing.T) {
	rec := NewRecorder(t0, 1)
	s := rec.Shard(0)
	tm := Timing{Lag: 20 * time.Microsecond, Connect: 150 * time.Microsecond, Intended: true}
	if n := testing.AllocsPerRun(1000, func() {
		s.Attempt()
		s.Connected(tm)
		s.Exchanged(-1, 80*time.Microsecond, 64, 64)
		s.Closed(at(1), time.Second, nil)
	}); n != 0 {
		t.Errorf("a clean connection allocates %v times, want 0", n)
	}
}

func BenchmarkConnectionPath(b *testing.B) {
	rec := NewRecorder(t0, 1)
	s := rec.Shard(0)
	tm := Timing{Lag: 20 * time.Microsecond, Connect: 150 * time.Microsecond, Intended: true}
	end := at(1)
	b.ReportAllocs()
	for b.Loop() {
		s.Attempt()
		s.Connected(tm)
		s.Exchanged(-1, 80*time.Microsecond, 64, 64)
		s.Closed(end, time.Second, nil)
	}
}

// BenchmarkCut is one interval boundary of a recorder with 8 sub-recorders, each of which saw one
// connection under the concurrency model (schedule_lag and connect_intended stay empty).
func BenchmarkCut(b *testing.B) {
	const shards = 8
	rec := NewRecorder(t0, shards)
	var n int64
	b.ReportAllocs()
	for b.Loop() {
		for id := range uint64(shards) {
			s := rec.Shard(id)
			s.Attempt()
			s.Connected(Timing{Connect: time.Millisecond})
			s.Exchanged(-1, time.Millisecond, 64, 64)
			s.Closed(at(n), time.Second, nil)
		}
		n++
		_ = rec.Cut(at(n), 0)
	}
}

// TestCutMergesOutsideShardLock: Cut merges a shard's histograms into the snapshot once it has
// released the shard's lock, so a connection (or a rated loop) recording meanwhile never waits for
// a merge, which walks every bucket. The values still all reach the snapshot, and the shard records
// on into a fresh histogram.
func TestCutMergesOutsideShardLock(t *testing.T) {
	rec := NewRecorder(t0, 4)
	for id := range uint64(4) {
		s := rec.Shard(id)
		for i := range 100 {
			s.Request(RequestTiming{Intended: true, Lag: time.Microsecond, Service: time.Duration(10+i) * time.Microsecond}, nil)
		}
	}
	merges, locked := 0, 0
	mergeStep = func(s *Shard) {
		merges++
		if !s.mu.TryLock() {
			locked++
			return
		}
		s.mu.Unlock()
	}
	defer func() { mergeStep = nil }()
	snap := rec.Cut(at(1000), 0)
	if merges == 0 {
		t.Fatal("no merge: the test no longer exercises one")
	}
	if locked > 0 {
		t.Errorf("%d of %d merges ran under the shard's lock", locked, merges)
	}
	for _, l := range []Latency{RTT, RequestLag, RequestIntended} {
		if got := snap.Hist[l].TotalCount(); got != 400 {
			t.Errorf("%v: %d values in the snapshot, want 400", l, got)
		}
	}
	rec.Shard(0).Request(RequestTiming{Intended: true, Service: 5 * time.Microsecond}, nil)
	if got := rec.Cut(at(2000), 0).Hist[RTT].TotalCount(); got != 1 {
		t.Errorf("after the cut: %d values in the next snapshot, want 1", got)
	}
	// The histograms merged are given back to the shards at the next cut, not left to a pool the
	// garbage collector empties.
	merged := map[*hdr.Histogram]bool{}
	for _, h := range rec.spare {
		merged[h] = true
	}
	for id := range uint64(4) {
		rec.Shard(id).Request(RequestTiming{Intended: true, Service: time.Microsecond}, nil)
	}
	rec.Cut(at(3000), 0)
	reused := 0
	for i := range rec.shards {
		for _, h := range rec.shards[i].hist {
			if merged[h] {
				reused++
			}
		}
	}
	if len(merged) == 0 || reused == 0 {
		t.Errorf("%d histograms merged at the first cut, %d of them back in the shards after the third", len(merged), reused)
	}
}
