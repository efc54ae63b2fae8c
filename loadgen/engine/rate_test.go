package engine

import (
	"context"
	"io"
	"net"
	"net/netip"
	"testing"
	"testing/synctest"
	"time"

	hdr "github.com/HdrHistogram/hdrhistogram-go"

	"github.com/portstorm/portstorm/loadgen/dial"
	"github.com/portstorm/portstorm/loadgen/metrics"
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
	go func() {
		defer close(reqs)
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
				time.Sleep(d.until.Sub(now))
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

// TestRatedLoopbackEcho: against the built-in echo target on loopback, a rated run writes and
// has answered exactly the requests its plan gives: 10 connections x 20 requests, one at a time
// or 4 outstanding.
func TestRatedLoopbackEcho(t *testing.T) {
	srv, err := target.Start(context.Background(), target.Config{Mode: target.ModeEcho})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	for _, pipeline := range []int{1, 4} {
		for _, rate := range []float64{0, 2000} {
			send := &Send{Count: 20, Rate: rate, Pipeline: pipeline, Bytes: 64, Echo: true}
			res, err := Run(context.Background(), Config{
				Model: Arrival, Ramp: schedule.Ramp{Start: 100, Stages: []schedule.Stage{{Duration: 100 * time.Millisecond, Target: 100}}},
				Destinations: []dial.Destination{dial.NewDestination(netip.MustParseAddrPort(srv.Addrs()[0]))},
				Dialer:       dial.NewKernel(dial.Options{ConnectTimeout: time.Second}), Close: dial.CloseFIN, Send: send,
				IOTimeout: 5 * time.Second, MaxInFlight: 100, GracefulStop: 5 * time.Second, Interval: 100 * time.Millisecond,
			})
			if err != nil {
				t.Fatal(err)
			}
			tot := res.Total
			if tot.Established != 10 || tot.Outcomes[metrics.OK] != 10 {
				t.Fatalf("pipeline %d rate %v: established %d, outcomes %v (%v)", pipeline, rate, tot.Established, tot.Outcomes, tot.Examples)
			}
			if tot.Requests != 200 || tot.RequestsOffered != 200 || tot.RequestOutcomes[metrics.OK] != 200 || tot.BytesOut != 200*64 || tot.BytesIn != 200*64 {
				t.Fatalf("pipeline %d rate %v: written %d offered %d outcomes %v bytes %d/%d, want 200 requests of 64 B", pipeline, rate,
					tot.Requests, tot.RequestsOffered, tot.RequestOutcomes, tot.BytesOut, tot.BytesIn)
			}
			if n := tot.Hist[metrics.RequestIntended].TotalCount(); rate > 0 && n != 200 {
				t.Fatalf("request_intended holds %d, want 200", n)
			}
		}
	}
}
