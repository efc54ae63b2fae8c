//go:build linux

package shard

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/portstorm/portstorm/loadgen/metrics"
)

// The test binary doubles as a fake worker: PORTSTORM_FAKE_WORKER=<behaviour>,<index>.
func TestMain(m *testing.M) {
	if spec := os.Getenv("PORTSTORM_FAKE_WORKER"); spec != "" {
		fakeWorker(spec)
		os.Exit(0)
	}
	goleak.VerifyTestMain(m)
}

// snap makes a snapshot of seq with n connections, each with a connect time of (i+1) ms.
func snap(seq int, n int, base int64) *metrics.Snapshot {
	r := metrics.NewRecorder(time.Unix(0, 0), 1)
	sh := r.Shard(0)
	for i := range n {
		sh.Attempt()
		sh.Connected(metrics.Timing{Connect: time.Duration(base+int64(i)) * time.Millisecond})
		sh.Closed(time.Unix(1, 0), time.Millisecond, nil)
	}
	s := r.Cut(time.Unix(0, 0).Add(time.Duration(seq+1)*time.Second), 0)
	s.Seq = seq
	return s
}

// fakeWorker speaks the protocol: "ok" sends 3 snapshots and done; "die" sends 1 and exits 7;
// "wait" sends 1 then waits for SIGTERM, sends 1 more and done (interrupted); "garbage" writes junk;
// "stopped" sends 1 and done (interrupted) although nobody asked it to stop, as a worker does that
// got a SIGTERM from outside.
func fakeWorker(spec string) {
	behaviour, idx, _ := strings.Cut(spec, ",")
	i, _ := strconv.Atoi(idx)
	w := NewWriter(os.Stdout)
	if handshakeWorker(behaviour, i, w) {
		return
	}
	start := time.Now()
	// Workers that must outlive a failing sibling ignore SIGTERM, then tell the sibling through a FIFO
	// that they are ready (opening a FIFO for reading blocks until a writer opens it).
	fifo := os.Getenv("PORTSTORM_FAKE_FIFO")
	switch behaviour {
	case "ok", "garbage-ok":
		signal.Ignore(syscall.SIGTERM)
		if fifo != "" {
			if f, err := os.OpenFile(fifo, os.O_WRONLY, 0); err == nil {
				defer f.Close()
			}
		}
	case "die", "garbage", "unreachable", "stopped":
		if fifo != "" {
			if f, err := os.Open(fifo); err == nil {
				f.Close()
			}
		}
	}
	switch behaviour {
	case "ok":
		for seq := range 3 {
			w.Snapshot(snap(seq, 10+i, int64(i)))
		}
		w.Done(Done{Ending: Ending{Start: start, End: time.Now()}})
	case "die":
		w.Snapshot(snap(0, 5, 1))
		os.Exit(7)
	case "wait":
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGTERM)
		w.Snapshot(snap(0, 5, 1))
		if fifo != "" {
			// Ready for the SIGTERM: now the failing sibling may go.
			if f, err := os.OpenFile(fifo, os.O_WRONLY, 0); err == nil {
				defer f.Close()
			}
		}
		<-sig
		w.Snapshot(snap(1, 5, 1))
		w.Done(Done{Ending: Ending{Start: start, End: time.Now(), Interrupted: true}})
	case "unreachable":
		// A real worker handles SIGTERM from its start: the stop Run sends everyone may reach it
		// between its last word and its exit.
		signal.Ignore(syscall.SIGTERM)
		w.Snapshot(snap(0, 0, 1))
		w.Done(Done{Ending: Ending{Start: start, End: time.Now(), Unreachable: &Unreachable{First: start, At: time.Now(), Failed: 3,
			Destination: "127.0.0.1:9", Outcome: "ECONNREFUSED", Error: "dial tcp 127.0.0.1:9: connect: connection refused"}}})
	case "garbage":
		fmt.Println("this is not json")
	case "stopped":
		w.Snapshot(snap(0, 5, 1))
		w.Done(Done{Ending: Ending{Start: start, End: time.Now(), Interrupted: true}})
	}
}

func specs(t *testing.T, behaviours ...string) []WorkerSpec {
	exe, _ := os.Executable()
	// A FIFO orders a failing worker after its one "ok" sibling is ready (cases with a failing worker
	// have exactly one such sibling: a second writer would block once the reader has gone).
	fifo := ""
	if slices.Contains(behaviours, "die") || slices.Contains(behaviours, "garbage") || slices.Contains(behaviours, "unreachable") ||
		slices.Contains(behaviours, "stopped") {
		fifo = t.TempDir() + "/ready"
		if err := syscall.Mkfifo(fifo, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	var out []WorkerSpec
	for i, b := range behaviours {
		out = append(out, WorkerSpec{
			Label: fmt.Sprintf("segment %d/%d", i, len(behaviours)), Path: exe, Args: []string{"-test.run=^$"},
			Env: append(os.Environ(), fmt.Sprintf("PORTSTORM_FAKE_WORKER=%s,%d", b, i), "PORTSTORM_FAKE_FIFO="+fifo),
		})
	}
	return out
}

func TestWorkers(t *testing.T) {
	tests := []struct {
		name        string
		workers     []string
		cancel      bool
		established uint64
		intervals   int
		failures    int
		interrupted bool
	}{
		{"three workers finish", []string{"ok", "ok", "ok"}, false, 3 * (10 + 11 + 12), 3, 0, false},
		{"one dies, the others are kept", []string{"ok", "die"}, false, 3*10 + 5, 3, 1, false},
		{"garbage output is a failure", []string{"ok", "garbage"}, false, 30, 3, 1, false},
		{"cancel stops waiting workers gracefully", []string{"wait", "wait"}, true, 20, 2, 0, true},
		// The sibling is stopped by Run, so its interruption is no failure of its own.
		{"a stop nobody asked for is a failure", []string{"wait", "stopped"}, false, 15, 2, 1, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var got []*metrics.Snapshot
			var stderr bytes.Buffer
			emit := func(s *metrics.Snapshot) {
				got = append(got, s)
				if tt.cancel && len(got) == 1 {
					cancel() // every worker has delivered interval 0: stop them
				}
			}
			// The bound ends a worker left waiting for a stop that never comes.
			res, err := Run(ctx, nil, specs(t, tt.workers...), emit, &stderr, Timing{RunFor: time.Minute})
			if err != nil {
				t.Fatal(err)
			}
			if res.Total.Established != tt.established {
				t.Errorf("established %d, want %d", res.Total.Established, tt.established)
			}
			if h := res.Total.Hist[metrics.Connect].TotalCount(); uint64(h) != tt.established {
				t.Errorf("connect histogram %d, want %d", h, tt.established)
			}
			if len(got) != tt.intervals {
				t.Errorf("%d merged intervals, want %d", len(got), tt.intervals)
			}
			for i, s := range got {
				if s.Seq != i {
					t.Errorf("interval %d has seq %d: out of order", i, s.Seq)
				}
			}
			if len(res.Failures) != tt.failures {
				t.Errorf("failures %v, want %d", res.Failures, tt.failures)
			}
			for _, f := range res.Failures {
				if f.PID == 0 || f.Worker == "" || f.Status == "" {
					t.Errorf("failure lacks who or why: %+v", f)
				}
				if slices.Contains(tt.workers, "stopped") && (f.Worker != "segment 1/2" || !strings.Contains(f.Status, "without being asked")) {
					t.Errorf("failure %+v, want segment 1/2 stopped without being asked", f)
				}
			}
			if res.Interrupted != tt.interrupted {
				t.Errorf("interrupted %v, want %v", res.Interrupted, tt.interrupted)
			}
		})
	}
}

// TestWorkerGivesUp: a worker that gives up on an unreachable target says so in its last word;
// Run stops the others (which would otherwise run on until their schedule ends) and reports the
// give-up, which is no worker's failure.
func TestWorkerGivesUp(t *testing.T) {
	res, err := Run(context.Background(), nil, specs(t, "unreachable", "wait"), func(*metrics.Snapshot) {}, io.Discard, Timing{})
	if err != nil {
		t.Fatal(err)
	}
	if u := res.Unreachable; u == nil || u.Outcome != "ECONNREFUSED" || u.Failed != 3 {
		t.Fatalf("unreachable %+v, want the worker's ECONNREFUSED give-up", u)
	}
	if len(res.Failures) != 0 {
		t.Errorf("failures %v: a give-up and the stop it causes are not failures", res.Failures)
	}
	if res.Total.Established != 10 || !res.Interrupted {
		t.Errorf("established %d, interrupted %v: want the stopped worker's two snapshots and its interrupted end", res.Total.Established, res.Interrupted)
	}
}

func TestMergerOrdersAndWaits(t *testing.T) {
	var out []int
	m := NewMerger(2, func(s *metrics.Snapshot) { out = append(out, s.Seq) })
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	must(m.Add(0, snap(0, 1, 1)))
	must(m.Add(0, snap(1, 1, 1)))
	if len(out) != 0 {
		t.Fatalf("released %v before shard 1 delivered", out)
	}
	must(m.Add(1, snap(0, 1, 1)))
	if len(out) != 1 {
		t.Fatalf("released %v, want [0]", out)
	}
	m.Finish(1) // shard 1 ends: interval 1 no longer waits for it
	if len(out) != 2 || out[1] != 1 {
		t.Fatalf("released %v, want [0 1]", out)
	}
	tests := []struct {
		name string
		err  error
	}{
		{"seq going back", m.Add(0, snap(0, 1, 1))},
		{"after finish", m.Add(1, snap(5, 1, 1))},
		{"unknown shard", m.Add(7, snap(5, 1, 1))},
	}
	for _, tt := range tests {
		if tt.err == nil {
			t.Errorf("%s: accepted", tt.name)
		}
	}
}

func TestMergeEqualsInProcess(t *testing.T) {
	// Merging 4 shards' snapshots through the protocol equals merging them in memory.
	var direct = metrics.NewSnapshot()
	var wire bytes.Buffer
	w := NewWriter(&wire)
	for i := range 4 {
		s := snap(0, 25+i, int64(i*3))
		if err := direct.Combine(s); err != nil {
			t.Fatal(err)
		}
		w.Snapshot(s)
	}
	m := NewMerger(4, func(*metrics.Snapshot) {})
	viaWire := metrics.NewSnapshot()
	i := 0
	err := Read(&wire, func(msg Message) error {
		if err := viaWire.Combine(msg.Snapshot); err != nil {
			return err
		}
		err := m.Add(i, msg.Snapshot)
		i++
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if viaWire.Established != direct.Established || !viaWire.Hist[metrics.Connect].Equals(direct.Hist[metrics.Connect]) {
		t.Fatal("protocol round trip changed the merge")
	}
	for _, q := range []float64{50, 99, 99.9} {
		if a, b := viaWire.Hist[metrics.Connect].ValueAtQuantile(q), direct.Hist[metrics.Connect].ValueAtQuantile(q); a != b {
			t.Errorf("p%v: %d via the wire, %d direct", q, a, b)
		}
	}
}

func TestReadRejectsMalformed(t *testing.T) {
	tests := []struct{ name, in string }{
		{"not json", "hello\n"},
		{"empty object", "{}\n"},
		{"two fields", `{"error":"x","done":{}}` + "\n"},
		{"ready and an error", `{"ready":true,"error":"x"}` + "\n"},
		{"bad snapshot", `{"snapshot":{"outcomes":{"nope":1}}}` + "\n"},
	}
	for _, tt := range tests {
		err := Read(strings.NewReader(tt.in), func(Message) error { return nil })
		if err == nil || !strings.HasPrefix(err.Error(), "worker protocol: line 1") {
			t.Errorf("%s: err %v, want a worker protocol error at line 1", tt.name, err)
		}
	}
}

// TestDoneLine: a worker's last word keeps its keys (a shard folder written before Done shared
// Ending with RunResult reads the same), and its give-up becomes summary.json's unreachable with
// times from the run's start.
func TestDoneLine(t *testing.T) {
	t0 := time.Date(2026, 12, 7, 1, 0, 0, 0, time.UTC)
	tests := []struct {
		name, line string
		want       Done
	}{
		{"finished", `{"done":{"start":"2026-12-07T01:00:00Z","end":"2026-12-07T01:00:02Z","interrupted":false,"aborted":false}}`,
			Done{Ending: Ending{Start: t0, End: t0.Add(2 * time.Second)}}},
		{"gave up, ports first as before", `{"done":{"start":"2026-12-07T01:00:00Z","end":"2026-12-07T01:00:02Z","interrupted":true,"aborted":true,"ports":null,` +
			`"unreachable":{"first":"2026-12-07T01:00:00.5Z","at":"2026-12-07T01:00:01.5Z","failed":3,"destination":"127.0.0.1:9","outcome":"ECONNREFUSED","error":"refused"}}}`,
			Done{Ending: Ending{Start: t0, End: t0.Add(2 * time.Second), Interrupted: true, Aborted: true,
				Unreachable: &Unreachable{First: t0.Add(500 * time.Millisecond), At: t0.Add(1500 * time.Millisecond), Failed: 3,
					Destination: "127.0.0.1:9", Outcome: "ECONNREFUSED", Error: "refused"}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got *Done
			if err := Read(strings.NewReader(tt.line+"\n"), func(m Message) error { got = m.Done; return nil }); err != nil {
				t.Fatal(err)
			}
			if got == nil || !reflect.DeepEqual(*got, tt.want) {
				t.Fatalf("done %+v, want %+v", got, tt.want)
			}
			var b strings.Builder
			if err := NewWriter(&b).Done(*got); err != nil {
				t.Fatal(err)
			}
			var again *Done
			if err := Read(strings.NewReader(b.String()), func(m Message) error { again = m.Done; return nil }); err != nil || !reflect.DeepEqual(again, got) {
				t.Fatalf("round trip %+v, %v; want %+v", again, err, got)
			}
			u := got.Unreachable.Summary(t0)
			if (u == nil) != (tt.want.Unreachable == nil) || u != nil && (u.AtS != 1.5 || u.FirstAtS != 0.5 || u.Failed != 3 || u.Outcome != "ECONNREFUSED") {
				t.Errorf("summary %+v", u)
			}
		})
	}
}

// TestHungWorkerIsKilledAtTheDeadline: a worker that ignores every stop is killed at the deadline
// and reported, and what it measured before is kept. The deadline counts from the handshake's
// start, so that a worker slow to start (a busy machine, the race detector) is not killed before
// it measured anything; without the kill Run would never return.
func TestHungWorkerIsKilledAtTheDeadline(t *testing.T) {
	var stderr bytes.Buffer
	start := time.Now()
	res, err := Run(context.Background(), nil, specs(t, "ready-hang"), func(*metrics.Snapshot) {}, &stderr,
		Timing{Handshake: true, ReadyWithin: time.Minute, RunFor: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > time.Minute {
		t.Fatalf("returned after %v, the deadline was 2 s after the start", d)
	}
	if len(res.Failures) != 1 || !strings.Contains(res.Failures[0].Status, "killed") {
		t.Fatalf("failures %+v, want the hung worker killed", res.Failures)
	}
	if res.Total.Established != 5 {
		t.Errorf("established %d, want the 5 it reported before hanging", res.Total.Established)
	}
}
