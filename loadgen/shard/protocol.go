// Package shard runs a plan as several segments: the line protocol worker processes speak to their
// coordinator, the merge of their interval snapshots, and the supervision of worker processes.
package shard

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/portstorm/portstorm/loadgen/metrics"
	"github.com/portstorm/portstorm/loadgen/ports"
	"github.com/portstorm/portstorm/loadgen/report"
)

// Message is one line a worker writes to its coordinator: exactly one field is set. The same
// snapshot encoding lands in files for distributed segments, so one merge reads both.
type Message struct {
	Snapshot *metrics.Snapshot `json:"snapshot,omitempty"`
	Done     *Done             `json:"done,omitempty"`
	Error    string            `json:"error,omitempty"`
	// Ready says the worker is set up and waits for its start instant on stdin (see Timing).
	Ready bool `json:"ready,omitempty"`
}

// Ending is how a run ended: one worker's segment (its last word, Done) or all the workers
// together (RunResult).
type Ending struct {
	Start       time.Time `json:"start"`
	End         time.Time `json:"end"`
	Interrupted bool      `json:"interrupted"`
	Aborted     bool      `json:"aborted"`
	// Unreachable, when set, says the run gave up on a target that never accepted a connection
	// (connection.on_connect_failure): the coordinator stops the other workers and exits 3.
	Unreachable *Unreachable `json:"unreachable,omitempty"`
}

// Done is a worker's last word: how its segment ended, and its ports.
type Done struct {
	Ending
	// Ports is the worker's port observatory report: its own source addresses, kept apart (ports
	// belong to the host and are never summed across workers or hosts).
	Ports *ports.Report `json:"ports,omitempty"`
}

// Unreachable is why a run gave up: its first failed connect and when it gave up.
type Unreachable struct {
	First       time.Time `json:"first"`
	At          time.Time `json:"at"`
	Failed      int       `json:"failed"`
	Destination string    `json:"destination"`
	Outcome     string    `json:"outcome"`
	Error       string    `json:"error"`
}

// Summary is the give-up as summary.json's unreachable, its times from the run's start.
func (u *Unreachable) Summary(start time.Time) *report.Unreachable {
	if u == nil {
		return nil
	}
	return &report.Unreachable{AtS: u.At.Sub(start).Seconds(), FirstAtS: u.First.Sub(start).Seconds(), Failed: u.Failed,
		Destination: u.Destination, Outcome: u.Outcome, Error: u.Error}
}

// maxLine bounds one protocol line; a snapshot with five compressed histograms is a few KiB.
const maxLine = 16 << 20

// Writer writes messages, one JSON object per line. It is safe for concurrent use.
type Writer struct {
	mu  sync.Mutex
	enc *json.Encoder
	err error
}

// NewWriter returns a Writer on w.
func NewWriter(w io.Writer) *Writer { return &Writer{enc: json.NewEncoder(w)} }

func (w *Writer) write(m Message) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err == nil {
		w.err = w.enc.Encode(m)
	}
	return w.err
}

// Snapshot sends an interval snapshot.
func (w *Writer) Snapshot(s *metrics.Snapshot) error { return w.write(Message{Snapshot: s}) }

// Done sends the end of the segment.
func (w *Writer) Done(d Done) error { return w.write(Message{Done: &d}) }

// Fail sends an error that stopped the segment.
func (w *Writer) Fail(err error) error { return w.write(Message{Error: err.Error()}) }

// Ready says the worker is set up: what is left before its schedule is only the start instant.
func (w *Writer) Ready() error { return w.write(Message{Ready: true}) }

// maxStartLine bounds the start line: an RFC 3339 instant with nanoseconds and a zone is 35 bytes.
const maxStartLine = 128

// WriteStart sends a waiting worker its start instant: one line, RFC 3339 with nanoseconds, so
// that every worker parses the very same instant and their intervals line up for the merge.
func WriteStart(w io.Writer, start time.Time) error {
	_, err := io.WriteString(w, start.Format(time.RFC3339Nano)+"\n")
	return err
}

// ReadStart is the worker's side of WriteStart: it reads one line from r and parses it. A closed r
// (the coordinator gave up on the run), a malformed line or a cancelled ctx is an error. On
// cancellation the read is left blocked until r ends: a worker exits right after, and a
// coordinator closes r when it gives up.
func ReadStart(ctx context.Context, r io.Reader) (time.Time, error) {
	type line struct {
		s   string
		err error
	}
	got := make(chan line, 1)
	go func() {
		s, err := bufio.NewReaderSize(io.LimitReader(r, maxStartLine), maxStartLine).ReadString('\n')
		got <- line{s, err}
	}()
	var l line
	select {
	case l = <-got:
	case <-ctx.Done():
		return time.Time{}, fmt.Errorf("stopped while waiting for the start instant: %w", context.Cause(ctx))
	}
	s := strings.TrimSuffix(l.s, "\n")
	switch {
	case l.err == io.EOF && s == "":
		return time.Time{}, errors.New("worker protocol: input closed before the start instant")
	case l.err == io.EOF && len(l.s) == maxStartLine:
		return time.Time{}, fmt.Errorf("worker protocol: start line longer than %d bytes", maxStartLine)
	case l.err != nil && l.err != io.EOF:
		return time.Time{}, fmt.Errorf("reading the start instant: %w", l.err)
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("worker protocol: start line %q: want an RFC 3339 instant", s)
	}
	return t, nil
}

// Read calls fn for every message on r until EOF. A malformed line is an error naming its number.
func Read(r io.Reader, fn func(Message) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), maxLine)
	for n := 1; sc.Scan(); n++ {
		var m Message
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			return fmt.Errorf("worker protocol: line %d: %w", n, err)
		}
		set := 0
		for _, b := range []bool{m.Snapshot != nil, m.Done != nil, m.Error != "", m.Ready} {
			if b {
				set++
			}
		}
		if set != 1 {
			return fmt.Errorf("worker protocol: line %d: want exactly one of snapshot, done, error, ready", n)
		}
		if err := fn(m); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("worker protocol: %w", err)
	}
	return nil
}
