package metrics

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	hdr "github.com/HdrHistogram/hdrhistogram-go"
)

// Latency names one of the latency histograms of docs/measurements.md.
type Latency uint8

const (
	// Connect is connect() started -> established.
	Connect Latency = iota
	// ConnectIntended is intended start -> established (arrival model): coordinated-omission free.
	ConnectIntended
	// ScheduleLag is intended start -> connect() started, less SlotWait (arrival model): how late
	// the generator was.
	ScheduleLag
	// SlotWait is the part of intended start -> connect() started spent waiting for a free
	// max_in_flight slot (arrival model): how long the target, or the window, held the load back.
	SlotWait
	// RTT is request write started -> full response read (the echo, the HTTP response, the reply).
	RTT
	// Lifetime is established -> closed.
	Lifetime
	// FirstByte is request write started -> first byte of the response.
	FirstByte
	// TLSHandshake is established -> TLS handshake complete.
	TLSHandshake
	// RequestIntended is a rated request's intended send time -> full response read: the request
	// latency free of coordinated omission (docs/measurements.md). RTT is its service time.
	RequestIntended
	// RequestLag is a rated request's intended send time -> write started, less WindowWait: how
	// late the generator was.
	RequestLag
	// WindowWait is the part of a rated request's intended send time -> write started spent
	// waiting for a free place in the connection's pipelining window: the target held it back.
	WindowWait
	NumLatencies
)

var latencyNames = [NumLatencies]string{"connect", "connect_intended", "schedule_lag", "slot_wait", "rtt", "lifetime", "first_byte", "tls_handshake",
	"request_intended", "request_lag", "window_wait"}

func (l Latency) String() string {
	if l < NumLatencies {
		return latencyNames[l]
	}
	return "invalid"
}

// Histogram bounds, in microseconds: 1 µs to 1 h at 3 significant digits (docs/measurements.md).
const (
	HistLowest  = 1
	HistHighest = 3_600_000_000
	HistSigFigs = 3
)

// NewHistogram returns an empty latency histogram with portstorm's bounds.
func NewHistogram() *hdr.Histogram { return hdr.New(HistLowest, HistHighest, HistSigFigs) }

// maxExamples is how many error messages are kept per outcome, to explain it without unbounded growth.
const maxExamples = 3

// Counts are the additive counters of a snapshot.
type Counts struct {
	Attempted   uint64
	Established uint64
	Failed      uint64
	Dropped     uint64
	Closed      uint64
	BytesOut    uint64
	BytesIn     uint64
	Outcomes    [NumOutcomes]uint64
	// Clamped counts latencies outside the histogram bounds, recorded at the nearest bound.
	Clamped uint64
	// Requests counts the requests written (messages, for raw sends without an answer), and
	// RequestOutcomes how each ended: ok when its answer was the one expected (or, with nothing to
	// read, when it was written), else the outcome of what went wrong.
	Requests        uint64
	RequestOutcomes [NumOutcomes]uint64
	// RequestsOffered counts the requests the schedule meant to send: for rated sends those whose
	// intended send time came, whether or not they were sent; for unrated (closed-loop) sends the
	// requests written, which is all such a send offers.
	RequestsOffered uint64
}

func (c *Counts) add(o *Counts) {
	c.Attempted += o.Attempted
	c.Established += o.Established
	c.Failed += o.Failed
	c.Dropped += o.Dropped
	c.Closed += o.Closed
	c.BytesOut += o.BytesOut
	c.BytesIn += o.BytesIn
	c.Clamped += o.Clamped
	c.Requests += o.Requests
	c.RequestsOffered += o.RequestsOffered
	for i := range c.Outcomes {
		c.Outcomes[i] += o.Outcomes[i]
		c.RequestOutcomes[i] += o.RequestOutcomes[i]
	}
}

// RequestErrors is the number of requests that ended in anything but OK.
func (c *Counts) RequestErrors() uint64 {
	var n uint64
	for i, v := range c.RequestOutcomes {
		if Outcome(i) != OK {
			n += v
		}
	}
	return n
}

// Errors is the number of connections that ended in anything but OK.
func (c *Counts) Errors() uint64 {
	var n uint64
	for i, v := range c.Outcomes {
		if Outcome(i) != OK {
			n += v
		}
	}
	return n
}

// FirstSeen is when an outcome first occurred: offset from the run's start and the number of
// established connections open at that moment.
type FirstSeen struct {
	AtUS        int64 `json:"at_us"`
	Concurrency int64 `json:"concurrency"`
}

// Recorder collects one shard's measurements. It is safe for concurrent use: connections record into
// one of several sub-recorders (HdrHistogram is not safe for concurrent use), and Cut moves their
// contents into an interval Snapshot. Nothing is stored per sample, so memory does not grow with time.
type Recorder struct {
	start  time.Time
	shards []shardRec
	active atomic.Int64
	peak   atomic.Int64

	cutMu   sync.Mutex
	seq     int
	lastCut time.Time
	// spare are empty histograms, under cutMu: those Cut merged and reset, given to the shards in
	// place of the ones it takes at the next cut. The same histograms cycle between the shards and
	// here, as when each shard kept its own and Cut reset it in place; a sync.Pool, emptied by the
	// garbage collector, had the shards allocate new ones after a collection.
	spare []*hdr.Histogram
}

// Shard is the part of a Recorder one connection writes to.
type Shard struct {
	rec *Recorder
	mu  sync.Mutex
	c   Counts
	// first is valid where firstSet is true.
	first    [NumOutcomes]FirstSeen
	firstSet [NumOutcomes]bool
	examples [NumOutcomes][]string
	hist     [NumLatencies]*hdr.Histogram
}

type shardRec struct {
	Shard
	_ [64]byte // keep neighbouring shards' locks off one cache line
}

// NewRecorder returns a recorder whose offsets count from start, with n sub-recorders (at least 1).
func NewRecorder(start time.Time, n int) *Recorder {
	if n < 1 {
		n = 1
	}
	r := &Recorder{start: start, shards: make([]shardRec, n), lastCut: start}
	for i := range r.shards {
		// A shard's histograms are taken from the pool when it first records into them: most
		// runs record into two or three of the NumLatencies, and the recorder has 4 shards per CPU.
		r.shards[i].Shard.rec = r
	}
	return r
}

// Start is the instant offsets count from.
func (r *Recorder) Start() time.Time { return r.start }

// Shard returns the sub-recorder for a connection id.
func (r *Recorder) Shard(id uint64) *Shard { return &r.shards[id%uint64(len(r.shards))].Shard }

// Active is the number of established connections open now.
func (r *Recorder) Active() int64 { return r.active.Load() }

func (r *Recorder) raisePeak(v int64) {
	for {
		p := r.peak.Load()
		if v <= p || r.peak.CompareAndSwap(p, v) {
			return
		}
	}
}

func (s *Shard) record(l Latency, d time.Duration) {
	us := d.Microseconds()
	if us < HistLowest || us > HistHighest {
		if us > HistHighest {
			us = HistHighest
		} else {
			us = HistLowest
		}
		if d >= time.Microsecond || d < 0 {
			s.c.Clamped++
		}
	}
	if s.hist[l] == nil {
		s.hist[l] = pooledHistogram()
	}
	_ = s.hist[l].RecordValue(us) // cannot fail: us is within bounds
}

func (s *Shard) outcome(at time.Time, err error) Outcome {
	o := Classify(err)
	s.c.Outcomes[o]++
	if o != OK {
		// Connections finish out of order (a connect timeout is recorded long after it began), so the
		// earliest occurrence is kept, not the first one recorded.
		if atUS := at.Sub(s.rec.start).Microseconds(); !s.firstSet[o] || atUS < s.first[o].AtUS {
			s.firstSet[o] = true
			s.first[o] = FirstSeen{AtUS: atUS, Concurrency: s.rec.active.Load()}
		}
		if len(s.examples[o]) < maxExamples {
			s.examples[o] = append(s.examples[o], err.Error())
		}
	}
	return o
}

// Attempt counts a connection the schedule started.
func (s *Shard) Attempt() {
	s.mu.Lock()
	s.c.Attempted++
	s.mu.Unlock()
}

// Drop counts an arrival that found no free slot under on_saturation: drop. It counts as attempted.
func (s *Shard) Drop() {
	s.mu.Lock()
	s.c.Attempted++
	s.c.Dropped++
	s.mu.Unlock()
}

// Withdraw counts a connection already counted by Attempt whose connect was never made: a stop
// came while it waited out its destination's backoff. It counts as dropped.
func (s *Shard) Withdraw() {
	s.mu.Lock()
	s.c.Dropped++
	s.mu.Unlock()
}

// Timing is the connect-phase timing of one connection.
type Timing struct {
	SlotWait time.Duration // intended start -> connect() started: waiting for a free slot
	Lag      time.Duration // intended start -> connect() started: the rest, the generator's lateness
	Connect  time.Duration // connect() started -> established (or failed)
	Intended bool          // the connection had an intended start (arrival model)
}

// Connected records an established connection.
func (s *Shard) Connected(t Timing) {
	n := s.rec.active.Add(1)
	s.rec.raisePeak(n)
	s.mu.Lock()
	s.c.Established++
	s.record(Connect, t.Connect)
	if t.Intended {
		s.record(SlotWait, t.SlotWait)
		s.record(ScheduleLag, t.Lag)
		s.record(ConnectIntended, t.SlotWait+t.Lag+t.Connect)
	}
	s.mu.Unlock()
}

// ConnectFailed records a connection whose connect failed, and returns its outcome.
func (s *Shard) ConnectFailed(at time.Time, t Timing, err error) Outcome {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.c.Failed++
	if t.Intended {
		s.record(SlotWait, t.SlotWait)
		s.record(ScheduleLag, t.Lag)
	}
	return s.outcome(at, err)
}

// RequestTiming is the measure of one request written on a connection.
type RequestTiming struct {
	// Intended says the request had an intended send time (a rated send); WindowWait and Lag
	// split intended -> write started into waiting for the pipelining window and the rest.
	Intended   bool
	WindowWait time.Duration
	Lag        time.Duration
	// FirstByte is write started -> first response byte, Service write started -> full response
	// read; negative when nothing, or not the whole answer, was read.
	FirstByte time.Duration
	Service   time.Duration
	// Out and In are the bytes written and read for this request.
	Out, In int
}

// Request records one request written and how it ended (err nil: ok), and returns its outcome.
// Its failure is the connection's too, and is counted (with its first occurrence and examples)
// when the connection is Closed; here it counts toward the request outcomes only. An unrated
// request counts as offered too.
func (s *Shard) Request(t RequestTiming, err error) Outcome {
	o := Classify(err)
	s.mu.Lock()
	if t.FirstByte >= 0 {
		s.record(FirstByte, t.FirstByte)
	}
	if t.Service >= 0 {
		s.record(RTT, t.Service)
	}
	if t.Intended {
		s.record(WindowWait, t.WindowWait)
		s.record(RequestLag, t.Lag)
		if t.Service >= 0 {
			s.record(RequestIntended, t.WindowWait+t.Lag+t.Service)
		}
	} else {
		s.c.RequestsOffered++
	}
	s.c.Requests++
	s.c.RequestOutcomes[o]++
	s.c.BytesOut += uint64(t.Out)
	s.c.BytesIn += uint64(t.In)
	s.mu.Unlock()
	return o
}

// Offer counts n rated requests whose intended send time came (sent or not).
func (s *Shard) Offer(n uint64) {
	s.mu.Lock()
	s.c.RequestsOffered += n
	s.mu.Unlock()
}

// Handshaked records a completed TLS handshake.
func (s *Shard) Handshaked(d time.Duration) {
	s.mu.Lock()
	s.record(TLSHandshake, d)
	s.mu.Unlock()
}

// Closed records the end of an established connection; err is why it ended (nil for a clean end).
// It is Leave and Ended at once.
func (s *Shard) Closed(at time.Time, lifetime time.Duration, err error) Outcome {
	o := s.Ended(at, lifetime, err)
	s.Leave()
	return o
}

// Leave counts an established connection out of the open ones just before the close(2) that frees
// its port, so that the connection which takes the port next is never counted open beside it (the
// peak read 1001 on a 1000-port range when the close was counted after it returned: the closing
// goroutine, descheduled, was overtaken by the next connect). Ended then records the end.
func (s *Shard) Leave() { s.rec.active.Add(-1) }

// Ended records the end of an established connection already counted out by Leave.
func (s *Shard) Ended(at time.Time, lifetime time.Duration, err error) Outcome {
	s.mu.Lock()
	s.c.Closed++
	s.record(Lifetime, lifetime)
	o := s.outcome(at, err)
	s.mu.Unlock()
	return o
}

// mergeStep, set by tests only, runs just before Cut merges one of s's histograms.
var mergeStep func(s *Shard)

// Cut moves everything recorded since the previous Cut into a snapshot ending at now. The snapshot's
// histograms come from a pool: its last owner may give them back with Release.
func (r *Recorder) Cut(now time.Time, stage int) *Snapshot {
	r.cutMu.Lock()
	defer r.cutMu.Unlock()
	snap := NewSnapshot()
	snap.filled = true
	snap.Seq = r.seq
	snap.Stage = stage
	snap.StartUS = r.lastCut.Sub(r.start).Microseconds()
	snap.EndUS = now.Sub(r.start).Microseconds()
	r.seq++
	r.lastCut = now
	for i := range r.shards {
		s := &r.shards[i].Shard
		s.mu.Lock()
		snap.Counts.add(&s.c)
		s.c = Counts{}
		for o := range s.first {
			if s.firstSet[o] {
				snap.noteFirst(Outcome(o), s.first[o])
				s.firstSet[o] = false
			}
			snap.noteExamples(Outcome(o), s.examples[o])
			s.examples[o] = s.examples[o][:0]
		}
		var taken [NumLatencies]*hdr.Histogram
		for l, h := range s.hist {
			// Skip the histograms nothing was recorded in (schedule_lag and slot_wait under the
			// concurrency model).
			if h == nil || h.TotalCount() == 0 {
				continue
			}
			if snap.Hist[l].TotalCount() == 0 {
				// The first shard with values hands its histogram over whole and takes the
				// snapshot's empty one: no merge, no reset.
				snap.Hist[l], s.hist[l] = h, snap.Hist[l]
				continue
			}
			// The others are taken whole too, and merged once s.mu is released: Merge and Reset
			// walk every bucket, recorded or not (~4 ms for a rated run's 35 histograms), and a
			// rated loop recording an answer would wait on s.mu for all of it, with every request
			// due meanwhile (docs/measurements.md "The interval cut"). The shard gets an empty
			// one of the last cut's (none yet: it takes one from the pool when it next records).
			var empty *hdr.Histogram
			if n := len(r.spare); n > 0 {
				empty, r.spare = r.spare[n-1], r.spare[:n-1]
			}
			taken[l], s.hist[l] = h, empty
		}
		s.mu.Unlock()
		for l, h := range taken {
			if h != nil {
				if mergeStep != nil {
					mergeStep(s)
				}
				// Both histograms share bounds, so Merge cannot drop a value.
				snap.Hist[l].Merge(h)
				h.Reset()
				r.spare = append(r.spare, h)
			}
		}
	}
	// The next interval's peak starts at the connections open now. One established between the Load
	// and the Swap raised the peak the Swap then took away, so raise it again after the Swap.
	snap.Active = r.active.Load()
	snap.PeakActive = max(r.peak.Swap(snap.Active), snap.Active)
	r.raisePeak(r.active.Load())
	return snap
}

// String is a one-line description for debugging.
func (s *Snapshot) String() string {
	return fmt.Sprintf("snapshot %d stage %d [%d,%d)µs att=%d est=%d fail=%d drop=%d closed=%d active=%d peak=%d",
		s.Seq, s.Stage, s.StartUS, s.EndUS, s.Attempted, s.Established, s.Failed, s.Dropped, s.Closed, s.Active, s.PeakActive)
}
