package engine

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	hdr "github.com/HdrHistogram/hdrhistogram-go"

	"github.com/portstorm/portstorm/loadgen/dial"
	"github.com/portstorm/portstorm/loadgen/metrics"
	"github.com/portstorm/portstorm/loadgen/proto"
	"github.com/portstorm/portstorm/loadgen/schedule"
	"github.com/portstorm/portstorm/target"
)

// stallEcho is an echo target in memory (net.Pipe) that buffers requests as a socket would and
// stops answering in [from, until): answers due then go out at until. msg is the request size.
type stallEcho struct {
	msg         int
	from, until time.Time
}

func (d *stallEcho) Dial(context.Context, dial.Destination) (net.Conn, error) {
	c, srv := net.Pipe()
	reqs := make(chan []byte, 4096)
	gone := make(chan struct{}) // the client closed: a stall ends
	go func() {
		defer close(reqs)
		defer close(gone)
		for {
			b := make([]byte, d.msg)
			if _, err := io.ReadFull(srv, b); err != nil {
				return
			}
			reqs <- b
		}
	}()
	go func() {
		defer srv.Close()
		for b := range reqs {
			if now := time.Now(); !now.Before(d.from) && now.Before(d.until) {
				select {
				case <-time.After(d.until.Sub(now)):
				case <-gone:
				}
			}
			if _, err := srv.Write(b); err != nil {
				for range reqs {
				}
				return
			}
		}
	}()
	return c, nil
}

// above counts the values of h above d.
func above(h *hdr.Histogram, d time.Duration) int64 {
	var n int64
	for _, b := range h.Distribution() {
		if b.From > d.Microseconds() {
			n += b.Count
		}
	}
	return n
}

// TestRatedCountsExact: requests at a rate, in virtual time, are offered and written in exact
// numbers: a per-connection rate from each connection's start, whose unlimited hold is the time it
// sends; a fixed count finished within the graceful stop; a total rate spread over the connections.
func TestRatedCountsExact(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		written uint64
		offered uint64
		conns   uint64
	}{
		// 0-5 s: the first connection sends at 0, 10 ms, ... 4.99 s (its hold is over at 5 s); its
		// slot's next one from 5 s to the stop at 7.005 s: 5.00 ... 7.00 s.
		{"per connection, unlimited, hold", Config{Model: Concurrency, Hold: 5 * time.Second,
			Ramp: schedule.Ramp{Start: 1, Stages: []schedule.Stage{{Duration: 7005 * time.Millisecond, Target: 1}}},
			Send: &Send{Rate: 100, Unlimited: true, Bytes: 8, Echo: true}}, 701, 701, 2},
		{"per connection, unlimited, pipelined", Config{Model: Concurrency, Hold: 5 * time.Second,
			Ramp: schedule.Ramp{Start: 1, Stages: []schedule.Stage{{Duration: 7005 * time.Millisecond, Target: 1}}},
			Send: &Send{Rate: 100, Unlimited: true, Bytes: 8, Echo: true, Pipeline: 4}}, 701, 701, 2},
		// 10 arrivals in 1 s, 50 requests each at 100/s: the last ones finish after the plan's end,
		// within the graceful stop.
		{"per connection, count", Config{Model: Arrival, MaxInFlight: 100,
			Ramp: schedule.Ramp{Start: 10, Stages: []schedule.Stage{{Duration: time.Second, Target: 10}}},
			Send: &Send{Rate: 100, Count: 50, Bytes: 8, Echo: true}}, 500, 500, 10},
		// 1000/s from 1 s to 6 s (5001 requests: 1.000 ... 6.000 s) over the 10 connections open
		// since 0.
		{"total rate", Config{Model: Concurrency,
			Ramp: schedule.Ramp{Start: 10, Stages: []schedule.Stage{{Duration: 6005 * time.Millisecond, Target: 10}}},
			Send: &Send{Unlimited: true, Bytes: 8, Echo: true, TotalRate: &schedule.Ramp{Stages: []schedule.Stage{
				{Duration: time.Second}, {Duration: 1, Target: 1000}, {Duration: 5 * time.Second, Target: 1000}}}}}, 5001, 5001, 10},
		{"total rate, pipelined", Config{Model: Concurrency,
			Ramp: schedule.Ramp{Start: 10, Stages: []schedule.Stage{{Duration: 6005 * time.Millisecond, Target: 10}}},
			Send: &Send{Unlimited: true, Bytes: 8, Echo: true, Pipeline: 8, TotalRate: &schedule.Ramp{Stages: []schedule.Stage{
				{Duration: time.Second}, {Duration: 1, Target: 1000}, {Duration: 5 * time.Second, Target: 1000}}}}}, 5001, 5001, 10},
		// Two slots until 1.005 s, then one: the second slot's connection ends at the ramp-down,
		// ok (an unlimited connection ends with its slot), after 0 ... 1.00 s; the first sends
		// until the stop at 2.005 s.
		{"per connection, unlimited, ramp-down", Config{Model: Concurrency,
			Ramp: schedule.Ramp{Start: 2, Stages: []schedule.Stage{{Duration: 1005 * time.Millisecond, Target: 2},
				{Duration: time.Millisecond, Target: 1}, {Duration: 999 * time.Millisecond, Target: 1}}},
			Send: &Send{Rate: 100, Unlimited: true, Bytes: 8, Echo: true}}, 302, 302, 2},
		{"closed loop, pipelined", Config{Model: Arrival, MaxInFlight: 100,
			Ramp: schedule.Ramp{Start: 10, Stages: []schedule.Stage{{Duration: time.Second, Target: 10}}},
			Send: &Send{Count: 50, Bytes: 8, Echo: true, Pipeline: 4}}, 500, 500, 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				cfg := tt.cfg
				cfg.Dialer = &stallEcho{msg: 8}
				res := runSim(t, cfg)
				tot := res.Total
				if tot.Requests != tt.written || tot.RequestsOffered != tt.offered || tot.RequestOutcomes[metrics.OK] != tt.written {
					t.Fatalf("written %d, offered %d, outcomes %v; want %d written and ok, %d offered", tot.Requests, tot.RequestsOffered,
						tot.RequestOutcomes, tt.written, tt.offered)
				}
				if tot.Closed != tt.conns || tot.Outcomes[metrics.OK] != tt.conns {
					t.Fatalf("closed %d, outcomes %v (%v), want %d ok", tot.Closed, tot.Outcomes, tot.Examples, tt.conns)
				}
				if tot.BytesOut != 8*tt.written || tot.BytesIn != 8*tt.written {
					t.Fatalf("bytes out %d in %d, want %d each", tot.BytesOut, tot.BytesIn, 8*tt.written)
				}
				if got := uint64(tot.Hist[metrics.RTT].TotalCount()); got != tt.written {
					t.Fatalf("rtt holds %d, want %d", got, tt.written)
				}
				rated := cfg.Send.rated()
				if got := uint64(tot.Hist[metrics.RequestIntended].TotalCount()); rated && got != tt.written || !rated && got != 0 {
					t.Fatalf("request_intended holds %d (rated %v), want %d", got, rated, tt.written)
				}
			})
		})
	}
}

// TestStallLatencyHonest is issue 13's test of honest latency: at a fixed request rate R (100/s),
// a target that stalls for 1 s must show about R x 0.5 requests above 500 ms in request_intended,
// while rtt (the service time) shows only the window's worth, the requests already written when
// the stall began. The waits of the requests due during the stall are window_wait (the target
// held them back), not request_lag: in virtual time the generator is never late. A generator that
// stalls for 1 s instead shows the same requests in request_intended and in request_lag, and
// nothing in rtt or window_wait.
func TestStallLatencyHonest(t *testing.T) {
	// The run lasts 10.008 s; the total rate begins 5 ms in, once the connections are open (one
	// due at 0 could find none yet), and both hold 100/s: 1001 requests.
	const run = 10008 * time.Millisecond
	total := &schedule.Ramp{Stages: []schedule.Stage{{Duration: 5 * time.Millisecond}, {Duration: 1, Target: 100}, {Duration: run, Target: 100}}}
	tests := []struct {
		name      string
		conns     float64
		send      Send
		generator bool   // the generator stalls, not the target
		slowRTT   int64  // requests with an rtt above 500 ms: the window's worth
		written   uint64 // requests due in the run
	}{
		{"per connection, 1 connection", 1, Send{Rate: 100, Unlimited: true}, false, 1, 1001},
		{"per connection, 1 connection, pipeline 4", 1, Send{Rate: 100, Unlimited: true, Pipeline: 4}, false, 4, 1001},
		{"per connection, 10 connections", 10, Send{Rate: 10, Unlimited: true}, false, 10, 1010},
		{"total rate, 10 connections", 10, Send{TotalRate: total, Unlimited: true}, false, 10, 1001},
		{"total rate, 10 connections, pipeline 4", 10, Send{TotalRate: total, Unlimited: true, Pipeline: 4}, false, 40, 1001},
		{"generator stall, per connection", 1, Send{Rate: 100, Unlimited: true}, true, 0, 1001},
		{"generator stall, pipeline 4", 1, Send{Rate: 100, Unlimited: true, Pipeline: 4}, true, 0, 1001},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				start := time.Now()
				d := &stallEcho{msg: 8}
				if tt.generator {
					stalled := false
					talkStep = func() {
						if !stalled && !time.Now().Before(start.Add(5*time.Second)) {
							stalled = true
							time.Sleep(time.Second)
						}
					}
					defer func() { talkStep = nil }()
				} else {
					d.from, d.until = start.Add(5*time.Second), start.Add(6*time.Second)
				}
				send := tt.send
				send.Bytes, send.Echo = 8, true
				res := runSim(t, Config{Model: Concurrency, Ramp: schedule.Ramp{Start: tt.conns, Stages: []schedule.Stage{{Duration: run, Target: tt.conns}}}, Dialer: d, Send: &send})
				tot := res.Total
				h := func(l metrics.Latency) *hdr.Histogram { return tot.Hist[l] }
				// Requests due in [5 s, 5.5 s) waited more than 500 ms: R x 0.5. (The one due at
				// 5.5 s waited exactly 500 ms.)
				const slow = 501 * time.Millisecond
				intended, rtt := above(h(metrics.RequestIntended), slow), above(h(metrics.RTT), slow)
				lag, wait := above(h(metrics.RequestLag), slow), above(h(metrics.WindowWait), slow)
				t.Logf("above 500 ms: request_intended %d, rtt %d, request_lag %d, window_wait %d; written %d offered %d",
					intended, rtt, lag, wait, tot.Requests, tot.RequestsOffered)
				if intended != 50 {
					t.Errorf("request_intended: %d above 500 ms, want 50 (R x 0.5)", intended)
				}
				if rtt != tt.slowRTT {
					t.Errorf("rtt: %d above 500 ms, want %d (the window's worth)", rtt, tt.slowRTT)
				}
				if tt.generator {
					if lag != 50 || h(metrics.WindowWait).Max() > 1 {
						t.Errorf("request_lag: %d above 500 ms, want 50; window_wait max %d µs, want none", lag, h(metrics.WindowWait).Max())
					}
				} else if lag != 0 || h(metrics.RequestLag).Max() > 1 {
					t.Errorf("request_lag: %d above 500 ms, max %d µs: the generator was never late", lag, h(metrics.RequestLag).Max())
				}
				// Nothing is lost: every request due was written, and answered.
				if w := tt.written; tot.Requests != w || tot.RequestsOffered != w || tot.RequestOutcomes[metrics.OK] != w {
					t.Errorf("written %d offered %d outcomes %v, want %d", tot.Requests, tot.RequestsOffered, tot.RequestOutcomes, w)
				}
			})
		})
	}
}

// TestRatedLoopback: against the built-in target on loopback (echo, echo over TLS, and http
// keep-alive), a rated run writes and has answered exactly the requests its plan gives: 10
// connections x 20 requests, one at a time or 4 outstanding, closed loop or at 2000/s each.
func TestRatedLoopback(t *testing.T) {
	certPEM, keyPEM, err := target.SelfSigned([]string{"127.0.0.1"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	srvTLS, err := target.TLSConfig(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(certPEM)
	for _, mode := range []target.Mode{target.ModeEcho, "echo+tls", target.ModeHTTP} {
		cfg := target.Config{Mode: mode}
		var clientTLS []*tls.Config
		if mode == "echo+tls" {
			cfg.Mode, cfg.TLS = target.ModeEcho, srvTLS
			clientTLS = []*tls.Config{{RootCAs: roots, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}}
		}
		srv, err := target.Start(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		addr := srv.Addrs()[0]
		for _, pipeline := range []int{1, 4} {
			for _, rate := range []float64{0, 2000} {
				t.Run(fmt.Sprintf("%s/pipeline %d/rate %v", mode, pipeline, rate), func(t *testing.T) {
					send := &Send{Count: 20, Rate: rate, Pipeline: pipeline, Bytes: 64, Echo: true}
					if mode == target.ModeHTTP {
						x, err := proto.Compile(proto.Spec{Protocol: proto.HTTP, HTTP: proto.HTTPSpec{Host: addr}})
						if err != nil {
							t.Fatal(err)
						}
						send.Exchange = x
					}
					res, err := Run(context.Background(), Config{
						Model: Arrival, Ramp: schedule.Ramp{Start: 100, Stages: []schedule.Stage{{Duration: 100 * time.Millisecond, Target: 100}}},
						Destinations: []dial.Destination{dial.NewDestination(netip.MustParseAddrPort(addr))},
						Dialer:       dial.NewKernel(dial.Options{ConnectTimeout: time.Second}), Close: dial.CloseFIN, Send: send, TLS: clientTLS,
						IOTimeout: 5 * time.Second, MaxInFlight: 100, GracefulStop: 5 * time.Second, Interval: 100 * time.Millisecond,
					})
					if err != nil {
						t.Fatal(err)
					}
					tot := res.Total
					if tot.Established != 10 || tot.Outcomes[metrics.OK] != 10 {
						t.Fatalf("established %d, outcomes %v (%v)", tot.Established, tot.Outcomes, tot.Examples)
					}
					if tot.Requests != 200 || tot.RequestsOffered != 200 || tot.RequestOutcomes[metrics.OK] != 200 {
						t.Fatalf("written %d offered %d outcomes %v, want 200 requests", tot.Requests, tot.RequestsOffered, tot.RequestOutcomes)
					}
					if mode != target.ModeHTTP && (tot.BytesOut != 200*64 || tot.BytesIn != 200*64) {
						t.Fatalf("bytes %d/%d, want 200 x 64 B each way", tot.BytesOut, tot.BytesIn)
					}
					if n := tot.Hist[metrics.RequestIntended].TotalCount(); rate > 0 && n != 200 || rate == 0 && n != 0 {
						t.Fatalf("request_intended holds %d", n)
					}
				})
			}
		}
		srv.Close()
	}
}

// flipEcho answers every request with its bytes inverted: a wrong echo.
type flipEcho struct{ msg int }

func (d flipEcho) Dial(context.Context, dial.Destination) (net.Conn, error) {
	c, srv := net.Pipe()
	go func() {
		defer srv.Close()
		b := make([]byte, d.msg)
		for {
			if _, err := io.ReadFull(srv, b); err != nil {
				return
			}
			for i := range b {
				b[i] ^= 0xff
			}
			if _, err := srv.Write(b); err != nil {
				return
			}
		}
	}()
	return c, nil
}

// TestBadAnswerIsOneFailedRequest: a wrong answer is one failed request (echo_mismatch) and ends
// its connection as echo_mismatch, closed loop or rated, one at a time or pipelined (requests
// written behind it are never answered: canceled); before requests were counted per outcome, it
// was one ok exchange and a failed connection.
func TestBadAnswerIsOneFailedRequest(t *testing.T) {
	tests := []struct {
		name string
		send Send
	}{
		{"closed loop", Send{Count: 5}},
		{"closed loop, interval", Send{Count: 5, Interval: time.Millisecond}},
		{"rated", Send{Count: 5, Rate: 1000}},
		{"rated, pipelined", Send{Count: 5, Rate: 1000, Pipeline: 4}},
		{"closed loop, pipelined", Send{Count: 5, Pipeline: 4}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				send := tt.send
				send.Bytes, send.Echo = 8, true
				res := runSim(t, Config{Model: Arrival, MaxInFlight: 10, Dialer: flipEcho{msg: 8}, Send: &send,
					Ramp: schedule.Ramp{Start: 30, Stages: []schedule.Stage{{Duration: 100 * time.Millisecond, Target: 30}}}})
				tot := res.Total
				// Pipelined, requests written behind the wrong answer were never answered: canceled.
				unanswered := tot.RequestOutcomes[metrics.Canceled]
				if tt.send.Pipeline <= 1 && unanswered != 0 || tot.Requests != 3+unanswered || tot.RequestOutcomes[metrics.EchoMismatch] != 3 || tot.RequestErrors() != tot.Requests {
					t.Fatalf("requests %d, outcomes %v, want 3 echo_mismatch; connections %v %v", tot.Requests, tot.RequestOutcomes, tot.Outcomes, tot.Examples)
				}
				if tot.Outcomes[metrics.EchoMismatch] != 3 {
					t.Fatalf("connection outcomes %v, want 3 echo_mismatch", tot.Outcomes)
				}
			})
		})
	}
}

// TestRatedHardStop: a stop ends an unlimited conversation, which waits for its answers
// outstanding; the graceful stop's end (the hard stop) cuts the wait: the connection and the
// request unanswered are canceled. The target stops answering at 0.5 s; the stop comes at
// 0.505 s, the hard stop 100 ms later.
func TestRatedHardStop(t *testing.T) {
	for _, pipeline := range []int{1, 4} {
		t.Run(fmt.Sprint("pipeline ", pipeline), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				time.AfterFunc(505*time.Millisecond, cancel)
				start := time.Now()
				d := &stallEcho{msg: 8, from: start.Add(500 * time.Millisecond), until: start.Add(time.Hour)}
				res := runSimCtx(t, ctx, Config{Model: Concurrency, Dialer: d, GracefulStop: 100 * time.Millisecond,
					Ramp: schedule.Ramp{Start: 1, Stages: []schedule.Stage{{Duration: time.Hour, Target: 1}}},
					Send: &Send{Rate: 100, Unlimited: true, Bytes: 8, Echo: true, Pipeline: pipeline}})
				tot := res.Total
				if !res.Aborted || tot.Outcomes[metrics.Canceled] != 1 || tot.Closed != 1 {
					t.Fatalf("aborted %v, outcomes %v", res.Aborted, tot.Outcomes)
				}
				if end := res.End.Sub(start); end != 605*time.Millisecond {
					t.Errorf("the run ended at %v, want 605ms", end)
				}
				if tot.Requests != 51 || tot.RequestsOffered != 51 || tot.RequestOutcomes[metrics.OK] != 50 || tot.RequestOutcomes[metrics.Canceled] != 1 {
					t.Fatalf("written %d offered %d outcomes %v, want 51 (0 ... 0.5 s), the last canceled", tot.Requests, tot.RequestsOffered, tot.RequestOutcomes)
				}
			})
		})
	}
}

// TestDispatcherRoundRobin: intended times go round-robin to the connections sending; those
// queued on a connection that leaves go to the others, in order, and with none left, nowhere.
func TestDispatcherRoundRobin(t *testing.T) {
	var d dispatcher
	t0 := time.Unix(1000, 0)
	at := func(i int) time.Time { return t0.Add(time.Duration(i) * time.Millisecond) }
	if d.give(at(0)) {
		t.Fatal("given with no connection sending")
	}
	a, b, c := d.join(nil), d.join(nil), d.join(nil)
	for i := range 6 {
		if !d.give(at(i)) {
			t.Fatal("not given")
		}
	}
	drain := func(m *mailbox) (out []int) {
		for {
			x, ok := popAny(m)
			if !ok {
				return out
			}
			out = append(out, int(x.Sub(t0)/time.Millisecond))
		}
	}
	d.leave(b) // its two go to a and c
	got := [][]int{drain(a), drain(c)}
	all := append(slices.Clone(got[0]), got[1]...)
	slices.Sort(all)
	if !slices.Equal(all, []int{0, 1, 2, 3, 4, 5}) || len(got[0]) != 3 || len(d.boxes) != 2 {
		t.Fatalf("a %v c %v after b left: want all six, three each", got[0], got[1])
	}
	d.leave(a)
	d.leave(c)
	if len(d.boxes) != 0 || d.give(at(9)) {
		t.Fatalf("%d boxes left", len(d.boxes))
	}
}

// TestDispatcherBatch: a batch goes round the connections as the same requests given one by one
// would, continuing the round where it stood; with no connection sending, none is given.
func TestDispatcherBatch(t *testing.T) {
	t0 := time.Unix(1000, 0)
	ats := func(from, n int) (out []time.Time) {
		for i := range n {
			out = append(out, t0.Add(time.Duration(from+i)*time.Millisecond))
		}
		return out
	}
	var one, batch dispatcher
	if picks := batch.giveAll(ats(0, 3), nil, nil); len(picks) != 0 {
		t.Fatalf("%d given with no connection sending", len(picks))
	}
	for _, d := range []*dispatcher{&one, &batch} {
		d.join(nil)
		d.join(nil)
		d.join(nil)
	}
	for _, at := range ats(0, 7) {
		one.give(at)
	}
	var picks []*mailbox
	picks = batch.giveAll(ats(0, 2), picks, nil)
	picks = batch.giveAll(ats(2, 5), picks, nil)
	if slices.ContainsFunc(picks, func(b *mailbox) bool { return b != nil }) {
		t.Error("the scratch space still holds mailboxes")
	}
	for i := range one.boxes {
		a, b := one.boxes[i], batch.boxes[i]
		if !slices.Equal(a.q[a.head:], b.q[b.head:]) {
			t.Errorf("connection %d: batch %v, one by one %v", i, b.q[b.head:], a.q[a.head:])
		}
	}
}

// TestDispatcherLeaveRace: a connection that leaves between being picked for a time and the time
// reaching its mailbox does not take the time with it: the time goes to a connection still sending
// (before, it went into the leaving connection's mailbox after leave had emptied it: offered,
// never sent, and the shortfall counted it). The same for one time and a batch; with nobody left,
// the time is given to none.
func TestDispatcherLeaveRace(t *testing.T) {
	t0 := time.Unix(1000, 0)
	for _, tc := range []struct {
		name  string
		batch bool
		alone bool // the leaving connection is the only one
	}{
		{"give", false, false},
		{"giveAll", true, false},
		{"give alone", false, true},
		{"giveAll alone", true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var d dispatcher
			var other *mailbox
			if !tc.alone {
				other = d.join(nil)
			}
			leaving := d.join(nil)
			left := false
			giveStep = func(m *mailbox) {
				if m == leaving && !left {
					left = true
					d.leave(leaving)
				}
			}
			defer func() { giveStep = nil }()
			ats := []time.Time{t0, t0.Add(time.Millisecond)}
			if tc.batch {
				d.giveAll(ats, nil, nil)
			} else {
				for _, at := range ats {
					d.give(at)
				}
			}
			if !left {
				t.Fatal("the leaving connection was never picked")
			}
			if n := len(leaving.q) - leaving.head; n != 0 {
				t.Errorf("%d times in the mailbox of a connection gone", n)
			}
			if tc.alone {
				if len(d.boxes) != 0 {
					t.Errorf("%d boxes left", len(d.boxes))
				}
				return
			}
			var got []time.Time
			for {
				at, ok := popAny(other)
				if !ok {
					break
				}
				got = append(got, at)
			}
			slices.SortFunc(got, time.Time.Compare)
			if !slices.Equal(got, ats) {
				t.Errorf("the connection still sending got %v, want %v", got, ats)
			}
		})
	}
}

// TestMailboxHandBack: a time handed back goes to the front of the queue, and leave gives it, first,
// to a connection still sending.
func TestMailboxHandBack(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(i int) time.Time { return t0.Add(time.Duration(i) * time.Millisecond) }
	var d dispatcher
	other, m := d.join(nil), d.join(nil)
	m.q = append(m.q, at(0), at(1), at(2))
	x, _ := popAny(m)
	m.handBack(x)      // head > 0
	m.handBack(at(-1)) // head == 0
	if want := []time.Time{at(-1), at(0), at(1), at(2)}; !slices.Equal(m.q[m.head:], want) {
		t.Fatalf("queue %v, want %v", m.q[m.head:], want)
	}
	d.leave(m)
	if first, _ := popAny(other); !first.Equal(at(-1)) {
		t.Errorf("first given to the other: %v, want %v", first, at(-1))
	}
}

// TestRatedHoldsStaggered: connections opened together, each sending at a rate for its hold, do not
// end their holds together and reconnect together every hold (configs/rate.yaml's pile-up): the
// slots' first holds are spread over one hold, so the closes of any tenth of a hold are a few of
// the slots, not all of them.
func TestRatedHoldsStaggered(t *testing.T) {
	for _, tc := range []struct {
		name string
		send Send
	}{
		{"total rate", Send{Unlimited: true, Bytes: 8, Echo: true, TotalRate: &schedule.Ramp{Start: 2000,
			Stages: []schedule.Stage{{Duration: 3 * time.Second, Target: 2000}}}}},
		{"per connection", Send{Unlimited: true, Bytes: 8, Echo: true, Rate: 100}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				const slots = 20
				var most uint64
				snd := tc.send
				cfg := Config{Model: Concurrency, Hold: time.Second, Interval: 100 * time.Millisecond, Dialer: &stallEcho{msg: 8},
					Ramp: schedule.Ramp{Start: slots, Stages: []schedule.Stage{{Duration: 3050 * time.Millisecond, Target: slots}}},
					Send: &snd, OnSnapshot: func(s *metrics.Snapshot) {
						if s.EndUS > 3_000_000 {
							return // the stop's cut: the connections the stop ended
						}
						most = max(most, s.Closed)
					}}
				res := runSim(t, cfg)
				if res.Total.Closed < 2*slots {
					t.Fatalf("%d closed, want the slots to have reconnected", res.Total.Closed)
				}
				if most > slots/4 {
					t.Errorf("%d of %d connections closed within one tenth of their hold", most, slots)
				}
			})
		})
	}
}

// TestDispatcherHandsAhead: a total rate's times reach the connections before they are due (up to
// dispatchAhead), so that a connection paces its own requests; the counts stay exact: a time handed
// ahead is offered and written once it comes, and one due after the stop is neither written nor
// offered. (Before, every time was handed out once due: a cross-thread wake-up per request.)
func TestDispatcherHandsAhead(t *testing.T) {
	tests := []struct {
		name     string
		pipeline int
	}{
		{"one by one", 1},
		{"pipelined", 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var mu sync.Mutex
				var seen []time.Time // when times were given
				giveStep = func(*mailbox) {
					mu.Lock()
					seen = append(seen, time.Now())
					mu.Unlock()
				}
				// 1000/s from 1 s (1.000, 1.001, ... s) over 10 connections, the run stopping at
				// 2.0025 s: 1003 requests came before the stop (1.000 ... 2.002 s); those of
				// 2.003 s on, handed out up to dispatchAhead early, never came.
				cfg := Config{Model: Concurrency, Dialer: &stallEcho{msg: 8},
					Ramp: schedule.Ramp{Start: 10, Stages: []schedule.Stage{{Duration: 2002500 * time.Microsecond, Target: 10}}},
					Send: &Send{Unlimited: true, Bytes: 8, Echo: true, Pipeline: tt.pipeline, TotalRate: &schedule.Ramp{Stages: []schedule.Stage{
						{Duration: time.Second}, {Duration: 1, Target: 1000}, {Duration: 5 * time.Second, Target: 1000}}}}}
				defer func() { giveStep = nil }()
				t0 := time.Now()
				res := runSim(t, cfg)
				tot := res.Total
				if tot.Requests != 1003 || tot.RequestsOffered != 1003 || tot.RequestOutcomes[metrics.OK] != 1003 {
					t.Fatalf("written %d, offered %d, outcomes %v; want 1003 written, ok and offered", tot.Requests,
						tot.RequestsOffered, tot.RequestOutcomes)
				}
				// The times given: the first (1.000 s) at 1 s - dispatchAhead/2 at the latest.
				mu.Lock()
				defer mu.Unlock()
				if len(seen) == 0 {
					t.Fatal("no time given")
				}
				lead := t0.Add(time.Second).Sub(seen[0])
				if lead < dispatchAhead/2 || lead > dispatchAhead {
					t.Fatalf("the first time given %v before it was due, want %v to %v", lead, dispatchAhead/2, dispatchAhead)
				}
			})
		})
	}
}

// TestMailboxPopDue: a connection takes a time handed ahead only once it came, and never one at or
// after the stop; a time handed back by a connection leaving goes before the later ones handed
// ahead (the head is the earliest).
func TestMailboxPopDue(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(i int) time.Time { return t0.Add(time.Duration(i) * time.Millisecond) }
	tests := []struct {
		name      string
		now, stop time.Time
		want      time.Time // taken (zero: none)
		next      time.Time
	}{
		{"due", at(1), time.Time{}, at(1), time.Time{}},
		{"not yet", at(0), time.Time{}, time.Time{}, at(1)},
		{"due before the stop", at(5), at(2), at(1), time.Time{}},
		{"due at the stop", at(5), at(1), time.Time{}, time.Time{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var d dispatcher
			m := d.join(nil)
			m.put(at(3), nil)
			m.put(at(1), nil) // handed back by a connection leaving, after at(3) was handed ahead
			got, next, ok := m.popDue(tt.now, tt.stop)
			if ok != !tt.want.IsZero() || !got.Equal(tt.want) || !next.Equal(tt.next) {
				t.Fatalf("popDue(%v, %v) = %v, %v, %v; want %v, %v", tt.now.Sub(t0), tt.stop, got, next, ok, tt.want, tt.next)
			}
			d.leave(m)
		})
	}
}

// TestMailboxStaysBounded: a connection given its times ahead never empties its mailbox, yet the
// times it took are reclaimed: after 100,000 given and taken with 8 always waiting, the queue
// holds no more than a few dozen.
func TestMailboxStaysBounded(t *testing.T) {
	var d dispatcher
	m := d.join(nil)
	defer d.leave(m)
	t0 := time.Unix(1000, 0)
	at := func(i int) time.Time { return t0.Add(time.Duration(i) * time.Microsecond) }
	for i := range 8 {
		m.put(at(i), nil)
	}
	for i := range 100_000 {
		m.put(at(i+8), nil)
		got, _, ok := m.popDue(at(i), time.Time{})
		if !ok || !got.Equal(at(i)) {
			t.Fatalf("take %d: got %v, %v; want %v", i, got.Sub(t0), ok, time.Duration(i)*time.Microsecond)
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if n := len(m.q) - m.head; n != 8 {
		t.Errorf("%d times waiting, want 8", n)
	}
	if c := cap(m.q); c > 128 {
		t.Errorf("the queue's capacity grew to %d for 8 waiting times", c)
	}
}

// popAny takes the head of b whatever its time.
func popAny(b *mailbox) (time.Time, bool) {
	at, _, ok := b.popDue(time.Unix(1<<40, 0), time.Time{})
	return at, ok
}

// TestPumpTakeOver: a loop may take the pump over before the dispatcher's goroutine has set it up
// (the loops start with the first connection, whichever goroutine runs first): it then steps
// nothing and looks again half a batch later; the pump is taken over once, and not once done.
func TestPumpTakeOver(t *testing.T) {
	tests := []struct {
		name string
		done bool // the pump is done (its ramp ended, or the run stopped) before the take-over
		want bool // the take-over is made
	}{
		{"before it is set up", false, true},
		{"once done", true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var pm pump
			pm.done = tt.done
			if got := pm.takeOver(); got != tt.want {
				t.Fatalf("takeOver = %v, want %v", got, tt.want)
			}
			if pm.takeOver() {
				t.Fatal("taken over twice")
			}
			now := time.Now()
			next := pm.stepFor(now, nil)
			switch {
			case tt.done && !next.IsZero():
				t.Errorf("a done pump's next step at %v, want none", next.Sub(now))
			case !tt.done && !next.Equal(now.Add(dispatchAhead/2)):
				t.Errorf("next step %v on, want %v (the dispatcher's goroutine has not set it up)", next.Sub(now), dispatchAhead/2)
			}
			if tt.want {
				select {
				case <-pm.taken:
				default:
					t.Error("taken is not closed: the dispatcher's goroutine would go on stepping")
				}
			}
		})
	}
}
