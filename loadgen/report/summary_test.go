package report

import (
	"fmt"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	hdr "github.com/HdrHistogram/hdrhistogram-go"

	"github.com/portstorm/portstorm/loadgen/metrics"
	"github.com/portstorm/portstorm/loadgen/plan"
	"github.com/portstorm/portstorm/target"
)

var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// at is the instant d after t0.
func at(d time.Duration) time.Time { return t0.Add(d) }

// refused is a connect failure as the dialer returns it, wrapped once more by its caller.
func refused() error {
	op := &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
	return fmt.Errorf("connection 3: %w", op)
}

func reset() error {
	return &net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", syscall.ECONNRESET)}
}

// outcomeNames are summary.json's outcome keys (docs/results.md, plus canceled, plus the answers of real
// servers and TLS, plus the routing errnos of a real network): users' scripts read them.
var outcomeNames = []string{"ok", "EADDRNOTAVAIL", "EADDRINUSE", "ECONNREFUSED", "ETIMEDOUT", "ECONNRESET",
	"EMFILE", "EOF", "echo_mismatch", "status_mismatch", "reply_mismatch", "bad_response", "tls_handshake", "canceled",
	"ENETUNREACH", "EHOSTUNREACH", "ENETDOWN", "other"}

// latencyNames are summary.json's latency keys.
var latencyNames = []string{"connect", "connect_intended", "schedule_lag", "slot_wait", "rtt", "lifetime", "first_byte", "tls_handshake",
	"request_intended", "request_lag", "window_wait"}

func fixturePlan() *plan.Plan {
	return &plan.Plan{
		Version: 1, Name: "recorded",
		Target:     plan.Target{Addresses: []string{"127.0.0.1:9"}},
		Connection: plan.Connection{ConnectTimeout: plan.Duration(3 * time.Second), Close: "fin"},
		Load: plan.Load{Model: "arrival", Stages: []plan.Stage{
			{Duration: plan.Duration(time.Second), Target: 3},
			{Duration: plan.Duration(time.Second), Target: 0},
			{Duration: plan.Duration(2 * time.Second), Target: 1},
		}},
	}
}

// recordRun records a small run through the Shard API the engine uses: stage 0 (0-1 s) opens A
// and B, fails C with ECONNREFUSED, drops one arrival and closes A cleanly; stage 1 never runs;
// stage 2 (1-3 s) resets B and opens and closes D. It returns the whole run and the stages.
func recordRun(t *testing.T) (total *metrics.Snapshot, stages []*metrics.Snapshot) {
	t.Helper()
	rec := metrics.NewRecorder(t0, 4)
	a, b, c, d := rec.Shard(0), rec.Shard(1), rec.Shard(2), rec.Shard(3)

	a.Attempt()
	a.Connected(metrics.Timing{Lag: 200 * time.Microsecond, Connect: 300 * time.Microsecond, Intended: true})
	a.Request(metrics.RequestTiming{FirstByte: -1, Service: 150 * time.Microsecond, Out: 64, In: 64}, nil)
	b.Attempt()
	b.Connected(metrics.Timing{SlotWait: 4 * time.Millisecond, Lag: 5 * time.Millisecond, Connect: time.Millisecond, Intended: true})
	c.Attempt()
	c.ConnectFailed(at(500*time.Millisecond), metrics.Timing{Lag: 3 * time.Millisecond, Connect: 2 * time.Millisecond, Intended: true}, refused())
	a.Drop()
	a.Closed(at(800*time.Millisecond), 700*time.Millisecond, nil)
	s0 := rec.Cut(at(time.Second), 0)

	b.Closed(at(2*time.Second), 1900*time.Millisecond, reset())
	d.Attempt()
	d.Connected(metrics.Timing{Lag: 100 * time.Microsecond, Connect: 400 * time.Microsecond, Intended: true})
	d.Closed(at(2500*time.Millisecond), time.Second, nil)
	s2 := rec.Cut(at(3*time.Second), 2)

	total = metrics.NewSnapshot()
	for _, s := range []*metrics.Snapshot{s0, s2} {
		if err := total.Add(s); err != nil {
			t.Fatal(err)
		}
	}
	return total, []*metrics.Snapshot{s0, nil, s2}
}

func TestBuild(t *testing.T) {
	total, stages := recordRun(t)
	start := time.Date(2025, 3, 1, 13, 0, 0, 0, time.FixedZone("CET", 3600)) // t0, in another zone
	s, err := Build(Input{Plan: fixturePlan(), Start: start, End: start.Add(3 * time.Second), Total: total, Stages: stages})
	if err != nil {
		t.Fatal(err)
	}

	t.Run("header", func(t *testing.T) {
		if s.Schema != Schema || s.Name != "recorded" || s.Verdict != VerdictNone || s.Segments != 1 {
			t.Errorf("schema %q name %q verdict %q segments %d", s.Schema, s.Name, s.Verdict, s.Segments)
		}
		if !s.StartedAt.Equal(t0) || s.StartedAt.Location() != time.UTC || s.DurationUS != 3_000_000 {
			t.Errorf("started_at %v, duration %dµs; want %v UTC, 3000000µs", s.StartedAt, s.DurationUS, t0)
		}
		if s.Thresholds == nil || len(s.Thresholds) != 0 {
			t.Errorf("thresholds = %#v, want empty and not nil", s.Thresholds)
		}
		if s.Bytes != (Bytes{Out: 64, In: 64}) {
			t.Errorf("bytes = %+v", s.Bytes)
		}
	})

	t.Run("connections", func(t *testing.T) {
		want := Connections{Attempted: 5, Established: 3, Failed: 1, Dropped: 1, Closed: 3, PeakConcurrent: 2, PerSecond: 1}
		if s.Connections != want {
			t.Errorf("connections = %+v\nwant          %+v", s.Connections, want)
		}
		c := s.Connections
		if c.Attempted != c.Established+c.Failed+c.Dropped {
			t.Errorf("attempted %d != established + failed + dropped", c.Attempted)
		}
	})

	t.Run("outcomes", func(t *testing.T) {
		if len(s.Outcomes) != len(outcomeNames) {
			t.Errorf("%d outcomes, want all %d: %v", len(s.Outcomes), len(outcomeNames), s.Outcomes)
		}
		want := map[string]uint64{"ok": 2, "ECONNREFUSED": 1, "ECONNRESET": 1}
		for _, name := range outcomeNames {
			n, ok := s.Outcomes[name]
			if !ok {
				t.Errorf("outcome %q missing", name)
			}
			if n != want[name] {
				t.Errorf("outcomes[%q] = %d, want %d", name, n, want[name])
			}
		}
	})

	t.Run("first", func(t *testing.T) {
		want := map[string]First{
			"ECONNREFUSED": {AtS: 0.5, Concurrency: 2}, // A and B were open
			"ECONNRESET":   {AtS: 2, Concurrency: 1},   // B itself, still counted open
		}
		if len(s.First) != len(want) {
			t.Errorf("first = %v, want %v", s.First, want)
		}
		for name, w := range want {
			if got := s.First[name]; got != w {
				t.Errorf("first[%q] = %+v, want %+v", name, got, w)
			}
		}
		if ex := s.Examples["ECONNREFUSED"]; len(ex) != 1 || !strings.Contains(ex[0], "connection refused") {
			t.Errorf("examples[ECONNREFUSED] = %q", ex)
		}
	})

	t.Run("errors", func(t *testing.T) {
		// errors / (failed + closed) = 2 / (1 + 3)
		if s.Errors != (ErrorRate{Count: 2, Rate: 0.5}) {
			t.Errorf("errors = %+v, want {2 0.5}", s.Errors)
		}
	})

	t.Run("latency", func(t *testing.T) {
		if len(s.Latency) != int(metrics.NumLatencies) {
			t.Errorf("%d latencies, want %d: %v", len(s.Latency), metrics.NumLatencies, s.Latency)
		}
		for l := range metrics.NumLatencies {
			ls, ok := s.Latency[l.String()]
			if !ok {
				t.Errorf("latency %q missing", l)
				continue
			}
			checkAgrees(t, l.String(), ls, total.Hist[l])
		}
		// Values under 2048µs are exact at 3 significant digits, so the figures are known.
		want := LatencySummary{Count: 3, Min: 300, P50: 400, P90: 1000, P99: 1000, P999: 1000, Max: 1000}
		got := s.Latency["connect"]
		got.Mean, got.HDR = 0, ""
		if got != want {
			t.Errorf("connect = %+v\nwant      %+v", got, want)
		}
		for _, name := range []string{"schedule_lag", "slot_wait"} {
			if n := s.Latency[name].Count; n != 4 { // A, B, C (failed) and D
				t.Errorf("%s count %d, want 4", name, n)
			}
		}
		// B was 9 ms late, 4 ms of it waiting for a slot: connect_intended adds both to its connect.
		// (Over 2048µs a value reads back as its bucket's highest: within 0.1%.)
		if got := s.Latency["connect_intended"].Max; got < 10_000 || got > 10_010 {
			t.Errorf("connect_intended max %dµs, want 10000 (4ms slot wait + 5ms lag + 1ms connect)", got)
		}
		if got := s.Latency["slot_wait"].Max; got < 4000 || got > 4004 {
			t.Errorf("slot_wait max %dµs, want 4000", got)
		}
	})

	t.Run("stages", func(t *testing.T) {
		if len(s.Stages) != 2 {
			t.Fatalf("%d stages, want 2 (stage 1 never ran): %+v", len(s.Stages), s.Stages)
		}
		want := []struct {
			index      int
			start, end float64
			conns      Connections
			outcomes   map[string]uint64
		}{
			{0, 0, 1, Connections{Attempted: 4, Established: 2, Failed: 1, Dropped: 1, Closed: 1, PeakConcurrent: 2, PerSecond: 2},
				map[string]uint64{"ok": 1, "ECONNREFUSED": 1}},
			{2, 1, 3, Connections{Attempted: 1, Established: 1, Closed: 2, PeakConcurrent: 1, PerSecond: 0.5},
				map[string]uint64{"ok": 1, "ECONNRESET": 1}},
		}
		for i, w := range want {
			st := s.Stages[i]
			if st.Index != w.index || st.StartS != w.start || st.EndS != w.end {
				t.Errorf("stage %d: index %d [%v, %v] s, want %d [%v, %v]", i, st.Index, st.StartS, st.EndS, w.index, w.start, w.end)
			}
			if st.Connections != w.conns {
				t.Errorf("stage %d connections = %+v\nwant                 %+v", w.index, st.Connections, w.conns)
			}
			for o := range metrics.NumOutcomes {
				if got := st.Outcomes[o.String()]; got != w.outcomes[o.String()] {
					t.Errorf("stage %d outcomes[%q] = %d, want %d", w.index, o, got, w.outcomes[o.String()])
				}
			}
			for l := range metrics.NumLatencies {
				checkAgrees(t, fmt.Sprintf("stage %d %s", w.index, l), st.Latency[l.String()], stages[w.index].Hist[l])
			}
		}
	})

	t.Run("warnings", func(t *testing.T) {
		// slot_wait is 0, 4ms, 0, 0: p99 4ms; schedule_lag is 100µs, 200µs, 3ms, 5ms: p99 5ms.
		if len(s.Warnings) != 2 || !strings.Contains(s.Warnings[0], "slot_wait p99 is 4.00ms") ||
			!strings.Contains(s.Warnings[1], "schedule_lag p99 is 5.00ms") {
			t.Errorf("warnings = %q, want the slot_wait and schedule_lag ones", s.Warnings)
		}
	})
}

// checkAgrees asserts that a latency summary agrees with the histogram it was made from (nil reads
// as empty), and that its encoded histogram decodes back to an equal one.
func checkAgrees(t *testing.T, what string, ls LatencySummary, h *hdr.Histogram) {
	t.Helper()
	if h == nil {
		h = metrics.NewHistogram()
	}
	got := []int64{ls.Count, ls.Min, ls.P50, ls.P90, ls.P99, ls.P999, ls.Max}
	want := []int64{h.TotalCount(), 0, 0, 0, 0, 0, 0}
	if h.TotalCount() > 0 {
		want = []int64{h.TotalCount(), h.Min(), h.ValueAtQuantile(50), h.ValueAtQuantile(90),
			h.ValueAtQuantile(99), h.ValueAtQuantile(99.9), h.Max()}
	}
	for i, name := range []string{"count", "min", "p50", "p90", "p99", "p999", "max"} {
		if got[i] != want[i] {
			t.Errorf("%s %s = %d, histogram says %d", what, name, got[i], want[i])
		}
	}
	if h.TotalCount() > 0 && ls.Mean != h.Mean() {
		t.Errorf("%s mean = %v, histogram says %v", what, ls.Mean, h.Mean())
	}
	dec, err := metrics.DecodeHistogram(ls.HDR)
	if err != nil {
		t.Errorf("%s hdr does not decode: %v", what, err)
		return
	}
	if !dec.Equals(h) {
		t.Errorf("%s hdr decodes to a different histogram (count %d, want %d)", what, dec.TotalCount(), h.TotalCount())
	}
}

func TestBuildWarnings(t *testing.T) {
	const generator, target = "the generator, not the target, fell behind", "the target was slow to finish connections or the window is too small"
	tests := []struct {
		name     string
		lags     []time.Duration // schedule lags of established connections (arrival model)
		waits    []time.Duration // their slot waits, when set (same length as lags)
		floor    time.Duration   // the pacing calibration; 0: none
		lifetime time.Duration
		refused  int      // connects refused
		measure  bool     // connection.on_connect_failure.measure
		want     []string // one substring per expected warning, in order
	}{
		{name: "concurrency model has no schedule lag", lifetime: time.Second},
		{name: "uncalibrated: lag p99 under 1ms", lags: []time.Duration{200 * time.Microsecond, 900 * time.Microsecond}, lifetime: time.Second},
		{name: "uncalibrated: lag p99 of exactly 1ms is not above it", lags: []time.Duration{time.Millisecond}, lifetime: time.Second},
		{name: "uncalibrated: lag p99 above 1ms", lags: []time.Duration{200 * time.Microsecond, 1500 * time.Microsecond},
			lifetime: time.Second, want: []string{"schedule_lag p99 is 1.50ms (over 1.00ms, the default threshold"}},
		{name: "a lifetime past 1h is clamped", lifetime: 2 * time.Hour,
			want: []string{"1 latencies fell outside 1µs..1h and were clamped"}},
		{name: "both", lags: []time.Duration{3 * time.Second}, lifetime: 2 * time.Hour,
			want: []string{"schedule_lag p99 is 3.00s", "clamped"}},
		{name: "a precise machine warns below 1ms", lags: []time.Duration{20 * time.Microsecond, 600 * time.Microsecond},
			floor: 30 * time.Microsecond, lifetime: time.Second,
			want: []string{"schedule_lag p99 is 600µs (over 250µs, 4× this machine's pacing floor of 30µs, at least 250µs)"}},
		{name: "a coarse machine's lag is its floor, not a bottleneck", lags: []time.Duration{900 * time.Microsecond, 1500 * time.Microsecond},
			floor: time.Millisecond, lifetime: time.Second},
		{name: "a coarse machine still warns past 4x its floor", lags: []time.Duration{900 * time.Microsecond, 4500 * time.Microsecond},
			floor: time.Millisecond, lifetime: time.Second, want: []string{"schedule_lag p99 is 4.50ms (over 4.00ms"}},
		{name: "a 1s slot wait blames the target, not the generator",
			lags: []time.Duration{10 * time.Microsecond, 20 * time.Microsecond}, waits: []time.Duration{0, time.Second},
			floor: 30 * time.Microsecond, lifetime: time.Second,
			want: []string{"slot_wait p99 is 1.00s (over 250µs, 4× this machine's pacing floor of 30µs, at least 250µs): arrivals waited for a free slot"}},
		{name: "both sides late: both named, the target first",
			lags: []time.Duration{10 * time.Microsecond, 2 * time.Millisecond}, waits: []time.Duration{0, time.Second},
			floor: 30 * time.Microsecond, lifetime: time.Second,
			want: []string{target, generator}},
		{name: "lag with refusals: the backoff may explain it", lags: []time.Duration{time.Second}, lifetime: time.Second, refused: 3,
			want: []string{"schedule_lag p99 is 1.00s (over 1.00ms, the default threshold, no pacing calibration): connects failed at the target's side, and connects to a failing destination wait out its backoff"}},
		{name: "lag with refusals a plan measures: the generator", lags: []time.Duration{time.Second}, lifetime: time.Second, refused: 3, measure: true,
			want: []string{"schedule_lag p99 is 1.00s (over 1.00ms, the default threshold, no pacing calibration): the generator, not the target"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec := metrics.NewRecorder(t0, 1)
			sh := rec.Shard(0)
			sh.Attempt()
			sh.Connected(metrics.Timing{Connect: 100 * time.Microsecond})
			sh.Closed(at(time.Second), tc.lifetime, nil)
			for i, lag := range tc.lags {
				var wait time.Duration
				if tc.waits != nil {
					wait = tc.waits[i]
				}
				sh.Attempt()
				sh.Connected(metrics.Timing{SlotWait: wait, Lag: lag, Connect: 100 * time.Microsecond, Intended: true})
				sh.Closed(at(time.Second), time.Millisecond, nil)
			}
			for range tc.refused {
				sh.Attempt()
				sh.ConnectFailed(at(time.Second), metrics.Timing{Connect: 100 * time.Microsecond}, refused())
			}
			p := fixturePlan()
			p.Connection.OnConnectFailure.Measure = tc.measure
			s, err := Build(Input{Plan: p, Start: t0, End: at(time.Second), Total: rec.Cut(at(time.Second), 0), PacingFloor: tc.floor})
			if err != nil {
				t.Fatal(err)
			}
			if len(s.Warnings) != len(tc.want) {
				t.Fatalf("warnings = %q, want %d", s.Warnings, len(tc.want))
			}
			for i, w := range tc.want {
				if !strings.Contains(s.Warnings[i], w) {
					t.Errorf("warning %d = %q, want it to say %q", i, s.Warnings[i], w)
				}
			}
			if (s.Pacing != nil) != (tc.floor > 0) {
				t.Errorf("pacing = %+v with a floor of %v", s.Pacing, tc.floor)
			}
		})
	}
}

func TestBuildEdges(t *testing.T) {
	tests := []struct {
		name    string
		in      Input
		wantErr bool
	}{
		{name: "no total snapshot is an error", in: Input{Plan: fixturePlan()}, wantErr: true},
		{name: "zero snapshots have nil histograms", in: Input{Plan: fixturePlan(), Total: &metrics.Snapshot{},
			Stages: []*metrics.Snapshot{{}}}},
		{name: "no plan", in: Input{Total: metrics.NewSnapshot()}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Build(tc.in)
			if tc.wantErr {
				if err == nil {
					t.Fatal("Build succeeded, want an error")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for l := range metrics.NumLatencies {
				ls := s.Latency[l.String()]
				h, err := metrics.DecodeHistogram(ls.HDR)
				if err != nil || ls.Count != 0 || h.TotalCount() != 0 {
					t.Errorf("latency %s = %+v (decoded %v), want empty", l, ls, err)
				}
			}
			if len(s.Outcomes) != int(metrics.NumOutcomes) {
				t.Errorf("%d outcomes, want %d", len(s.Outcomes), metrics.NumOutcomes)
			}
		})
	}
}

func TestFmtUS(t *testing.T) {
	tests := []struct {
		name string
		us   int64
		want string
	}{
		{name: "zero", us: 0, want: "0µs"},
		{name: "under a millisecond", us: 999, want: "999µs"},
		{name: "one millisecond", us: 1000, want: "1.00ms"},
		{name: "just under a second", us: 999_994, want: "999.99ms"},
		{name: "rounds up to a second", us: 999_999, want: "1.00s"},
		{name: "seconds", us: 1_500_000, want: "1.50s"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := fmtUS(tc.us); got != tc.want {
				t.Errorf("fmtUS(%d) = %q, want %q", tc.us, got, tc.want)
			}
		})
	}
}

// TestIdleWarning: a built-in target that closed connections for their silence is named in the
// warnings (a million "held" while the target had closed 856,671 of them said nothing).
func TestIdleWarning(t *testing.T) {
	tests := []struct {
		name   string
		idle   time.Duration // the compiled idle timeout (0: the target's default)
		target *target.Stats
		want   string // "" for no warning
	}{
		{"no built-in target", 0, nil, ""},
		{"none closed for idleness", 0, &target.Stats{Accepted: 10, Peak: 10}, ""},
		{"the default idle_timeout", 0, &target.Stats{Accepted: 1000000, Peak: 251780, IdleClosed: 856671},
			"closed 856671 connection(s) silent for its idle_timeout (1m0s)"},
		{"the plan's idle_timeout", time.Hour, &target.Stats{Accepted: 10, Peak: 10, IdleClosed: 3}, "idle_timeout (1h0m0s)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			total, stages := recordRun(t)
			s, err := Build(Input{Plan: fixturePlan(), Start: t0, End: at(3 * time.Second), Total: total, Stages: stages,
				Target: tt.target, TargetIdle: tt.idle})
			if err != nil {
				t.Fatal(err)
			}
			var got string
			for _, w := range s.Warnings {
				if strings.Contains(w, "built-in target closed") {
					got = w
				}
			}
			if (tt.want == "") != (got == "") || !strings.Contains(got, tt.want) {
				t.Errorf("warning %q, want one saying %q", got, tt.want)
			}
		})
	}
}
