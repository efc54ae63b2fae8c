// Package shard runs a plan as several segments: the line protocol worker processes speak to their
// coordinator, the merge of their interval snapshots, and the supervision of worker processes.
package shard

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/portstorm/portstorm/loadgen/metrics"
	"github.com/portstorm/portstorm/loadgen/ports"
)

// Message is one line a worker writes to its coordinator: exactly one field is set. The same
// snapshot encoding lands in files for distributed segments, so one merge reads both.
type Message struct {
	Snapshot *metrics.Snapshot `json:"snapshot,omitempty"`
	Done     *Done             `json:"done,omitempty"`
	Error    string            `json:"error,omitempty"`
}

// Done is a worker's last word: how its segment ended.
type Done struct {
	Start       time.Time `json:"start"`
	End         time.Time `json:"end"`
	Interrupted bool      `json:"interrupted"`
	Aborted     bool      `json:"aborted"`
	// Ports is the worker's port observatory report: its own source addresses, kept apart (ports
	// belong to the host and are never summed across workers or hosts).
	Ports *ports.Report `json:"ports,omitempty"`
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

// ErrProtocol wraps malformed worker output.
var ErrProtocol = errors.New("worker protocol")

// Read calls fn for every message on r until EOF. A malformed line is an error naming its number.
func Read(r io.Reader, fn func(Message) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), maxLine)
	for n := 1; sc.Scan(); n++ {
		var m Message
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			return fmt.Errorf("%w: line %d: %w", ErrProtocol, n, err)
		}
		set := 0
		for _, b := range []bool{m.Snapshot != nil, m.Done != nil, m.Error != ""} {
			if b {
				set++
			}
		}
		if set != 1 {
			return fmt.Errorf("%w: line %d: want exactly one of snapshot, done, error", ErrProtocol, n)
		}
		if err := fn(m); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("%w: %w", ErrProtocol, err)
	}
	return nil
}
