package engine

import (
	"context"
	"net"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/portstorm/portstorm/loadgen/dial"
	"github.com/portstorm/portstorm/loadgen/metrics"
	"github.com/portstorm/portstorm/loadgen/report"
	"github.com/portstorm/portstorm/loadgen/schedule"
)

// stallDialer is a target that stops answering for a while: every dial begun in [from, until)
// completes at until.
type stallDialer struct{ from, until time.Time }

func (d *stallDialer) Dial(ctx context.Context, _ dial.Destination) (net.Conn, error) {
	if now := time.Now(); !now.Before(d.from) && now.Before(d.until) {
		select {
		case <-time.After(d.until.Sub(now)):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return simConn{}, nil
}

// TestLatenessBlamesTheRightSide: a target that stalls for 1 s fills the max_in_flight window,
// and the arrivals queued behind it start late. That lateness is the target's (and the window's):
// it must show as slot_wait, not as schedule_lag, and the summary must blame the target, not the
// generator. In virtual time the generator is never late, so schedule_lag stays at 1 µs (the
// histogram's floor). Before slot_wait existed, the wait went into schedule_lag (p99 ~1 s) and
// the summary blamed the generator.
func TestLatenessBlamesTheRightSide(t *testing.T) {
	ramp := schedule.Ramp{Start: 100, Stages: []schedule.Stage{{Duration: 10 * time.Second, Target: 100}}}
	tests := []struct {
		name        string
		stall       bool
		drop        bool
		wantWaitMin time.Duration // slot_wait max at least this
		wantWaitMax time.Duration // and at most this
		wantWarn    string        // the one warning, "" for none
	}{
		{name: "target stalls 1s, queue", stall: true, wantWaitMin: 900 * time.Millisecond, wantWaitMax: time.Second,
			wantWarn: "slot_wait p99 is"},
		{name: "target stalls 1s, drop", stall: true, drop: true, wantWaitMax: time.Microsecond},
		{name: "no stall", wantWaitMax: time.Microsecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				start := time.Now()
				d := &stallDialer{}
				if tt.stall {
					d.from, d.until = start.Add(5*time.Second), start.Add(6*time.Second)
				}
				res := runSim(t, Config{Model: Arrival, Ramp: ramp, Dialer: d, MaxInFlight: 4, Drop: tt.drop})
				tot := res.Total
				lag, wait := tot.Hist[metrics.ScheduleLag], tot.Hist[metrics.SlotWait]
				t.Logf("schedule_lag p99 %dµs max %dµs, slot_wait p99 %dµs max %dµs, dropped %d",
					lag.ValueAtQuantile(99), lag.Max(), wait.ValueAtQuantile(99), wait.Max(), tot.Dropped)
				if lag.Max() > 1 {
					t.Errorf("schedule_lag max %dµs in virtual time: the generator was never late", lag.Max())
				}
				started := tot.Established + tot.Failed
				if uint64(lag.TotalCount()) != started || uint64(wait.TotalCount()) != started {
					t.Errorf("schedule_lag holds %d, slot_wait %d, want one per started arrival (%d)", lag.TotalCount(), wait.TotalCount(), started)
				}
				got := time.Duration(wait.Max()) * time.Microsecond
				if got < tt.wantWaitMin || got > tt.wantWaitMax+time.Millisecond {
					t.Errorf("slot_wait max %v, want [%v, %v]", got, tt.wantWaitMin, tt.wantWaitMax)
				}
				// connect_intended still holds the whole lateness: no coordinated omission.
				if ci := time.Duration(tot.Hist[metrics.ConnectIntended].Max()) * time.Microsecond; ci < tt.wantWaitMin {
					t.Errorf("connect_intended max %v, want at least %v", ci, tt.wantWaitMin)
				}
				sum, err := report.Build(report.Input{Start: res.Start, End: res.End, Total: tot, PacingFloor: 20 * time.Microsecond})
				if err != nil {
					t.Fatal(err)
				}
				switch {
				case tt.wantWarn == "" && len(sum.Warnings) != 0:
					t.Errorf("warnings %q, want none", sum.Warnings)
				case tt.wantWarn != "" && (len(sum.Warnings) != 1 || !strings.Contains(sum.Warnings[0], tt.wantWarn)):
					t.Errorf("warnings %q, want one saying %q", sum.Warnings, tt.wantWarn)
				}
			})
		})
	}
}
