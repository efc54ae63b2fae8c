package report

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/portstorm/portstorm/loadgen/memory"
	"github.com/portstorm/portstorm/loadgen/metrics"
	"github.com/portstorm/portstorm/loadgen/plan"
	"github.com/portstorm/portstorm/loadgen/ports"
)

// WriteFileAtomic writes data to path so that a reader (or a crash) sees the old file or the whole
// new one, never a part: temp file in the same folder, fsync, rename, fsync of the folder.
func WriteFileAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp, 0o644)
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// WriteSummary writes summary.json into dir.
func WriteSummary(dir string, s *Summary) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	return WriteFileAtomic(filepath.Join(dir, SummaryFile), append(b, '\n'))
}

// maxSummary is the largest summary.json ReadSummary reads; a run's is some kilobytes, a
// distributed run's with every host's port report some megabytes.
const maxSummary = 256 << 20

// ReadSummary reads a summary.json: a regular file only, so that a baseline or a compared path
// that names a named pipe is refused instead of blocking (see plan.ReadFile).
func ReadSummary(path string) (*Summary, error) {
	b, err := plan.ReadFile(path, maxSummary)
	if err != nil {
		return nil, err
	}
	s, err := DecodeSummary(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return s, nil
}

// DecodeSummary parses summary.json; anything but schema v1 is refused.
func DecodeSummary(b []byte) (*Summary, error) {
	var s Summary
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, err
	}
	if s.Schema != Schema {
		return nil, fmt.Errorf("schema %q, want %q", s.Schema, Schema)
	}
	return &s, nil
}

// TimelineRow is one interval of timeline.csv; it keeps no histogram, so a long run's timeline
// costs a few hundred bytes per interval.
type TimelineRow struct {
	EndS        float64
	Stage       int
	Active      int64
	PeakActive  int64
	Attempted   uint64
	Established uint64
	Failed      uint64
	Dropped     uint64
	Closed      uint64
	Outcomes    [metrics.NumOutcomes]uint64
	ConnectP50  int64
	ConnectP99  int64
	ConnectMax  int64
	IntendedP99 int64
	RTTP99      int64
	// SlotWaitP99 and LagP99 split IntendedP99's lateness between the target and the generator.
	SlotWaitP99 int64
	LagP99      int64
	// IntervalS is the interval's length in seconds (rates per interval divide by it).
	IntervalS float64
	// Requests and RequestsOffered are the requests written and offered within the interval,
	// RequestErrors those of them that failed; RequestIntendedP99, RequestLagP99 and WindowWaitP99
	// are the rated requests' latencies.
	Requests, RequestsOffered, RequestErrors         uint64
	RequestIntendedP99, RequestLagP99, WindowWaitP99 int64
	// Ports is the interval's port figures (TIME_WAIT, kernel TCP counters); nil without them.
	Ports *ports.Sample
}

// Row summarises one interval snapshot. A nil histogram (the zero Snapshot's) reads as empty.
func Row(s *metrics.Snapshot) TimelineRow {
	q := func(l metrics.Latency, p float64) int64 {
		if h := s.Hist[l]; h != nil {
			return h.ValueAtQuantile(p)
		}
		return 0
	}
	var connectMax int64
	if h := s.Hist[metrics.Connect]; h != nil {
		connectMax = h.Max()
	}
	return TimelineRow{
		EndS: float64(s.EndUS) / 1e6, Stage: s.Stage, Active: s.Active, PeakActive: s.PeakActive,
		Attempted: s.Attempted, Established: s.Established, Failed: s.Failed, Dropped: s.Dropped,
		Closed: s.Closed, Outcomes: s.Outcomes,
		ConnectP50: q(metrics.Connect, 50), ConnectP99: q(metrics.Connect, 99), ConnectMax: connectMax,
		IntendedP99: q(metrics.ConnectIntended, 99),
		RTTP99:      q(metrics.RTT, 99),
		SlotWaitP99: q(metrics.SlotWait, 99),
		LagP99:      q(metrics.ScheduleLag, 99),
		IntervalS:   float64(s.EndUS-s.StartUS) / 1e6,
		Requests:    s.Requests, RequestsOffered: s.RequestsOffered, RequestErrors: s.RequestErrors(),
		RequestIntendedP99: q(metrics.RequestIntended, 99), RequestLagP99: q(metrics.RequestLag, 99),
		WindowWaitP99: q(metrics.WindowWait, 99),
	}
}

// requestColumns are the request columns of timeline.csv, appended after every older column
// (the port columns included) so that the older columns keep their positions.
var requestColumns = []string{"requests_offered_per_s", "requests_per_s", "request_errors",
	"request_intended_p99_us", "request_lag_p99_us", "window_wait_p99_us"}

// perSecond is n per second of the interval; 0 for an interval of no length (a stage cut).
func (r TimelineRow) perSecond(n uint64) string {
	if r.IntervalS <= 0 {
		return "0"
	}
	return strconv.FormatFloat(float64(n)/r.IntervalS, 'f', 3, 64)
}

// WriteTimeline writes timeline.csv into dir: one row per interval, counts within the interval.
func WriteTimeline(dir string, rows []TimelineRow) error {
	var buf bytes.Buffer
	w := csv.NewWriter(&buf)
	head := []string{"t_s", "stage", "active", "peak_active", "attempted", "established", "failed", "dropped", "closed"}
	for o := range metrics.NumOutcomes {
		head = append(head, "outcome_"+o.String())
	}
	head = append(head, "connect_p50_us", "connect_p99_us", "connect_max_us", "connect_intended_p99_us", "rtt_p99_us",
		"slot_wait_p99_us", "schedule_lag_p99_us")
	observed := portsObserved(rows)
	if observed {
		head = append(head, portColumns()...)
	}
	head = append(head, requestColumns...)
	w.Write(head)
	u := func(v uint64) string { return strconv.FormatUint(v, 10) }
	i := func(v int64) string { return strconv.FormatInt(v, 10) }
	for _, r := range rows {
		rec := []string{strconv.FormatFloat(r.EndS, 'f', 3, 64), strconv.Itoa(r.Stage), i(r.Active), i(r.PeakActive),
			u(r.Attempted), u(r.Established), u(r.Failed), u(r.Dropped), u(r.Closed)}
		for _, n := range r.Outcomes {
			rec = append(rec, u(n))
		}
		rec = append(rec, i(r.ConnectP50), i(r.ConnectP99), i(r.ConnectMax), i(r.IntendedP99), i(r.RTTP99),
			i(r.SlotWaitP99), i(r.LagP99))
		if observed {
			rec = append(rec, portCells(r.Ports)...)
		}
		rec = append(rec, r.perSecond(r.RequestsOffered), r.perSecond(r.Requests), u(r.RequestErrors),
			i(r.RequestIntendedP99), i(r.RequestLagP99), i(r.WindowWaitP99))
		w.Write(rec)
	}
	w.Flush()
	if err := w.Error(); err != nil {
		return err
	}
	return WriteFileAtomic(filepath.Join(dir, "timeline.csv"), buf.Bytes())
}

// WriteText prints the summary table people read at the end of a run.
func WriteText(w io.Writer, s *Summary, dir string) {
	state := s.Verdict
	if s.Interrupted {
		state += ", interrupted"
	}
	if s.Aborted {
		state += ", aborted"
	}
	fmt.Fprintf(w, "\nportstorm %s: %s (%.1fs, %d segment(s))\n", s.Name, state, float64(s.DurationUS)/1e6, s.Segments)
	c := s.Connections
	fmt.Fprintf(w, "  connections  attempted %d  established %d  failed %d  dropped %d  closed %d  peak %d  (%.0f/s)\n",
		c.Attempted, c.Established, c.Failed, c.Dropped, c.Closed, c.PeakConcurrent, c.PerSecond)
	var outs []string
	for o := range metrics.NumOutcomes {
		if n := s.Outcomes[o.String()]; n > 0 {
			o := o.String()
			if f, ok := s.First[o]; ok {
				outs = append(outs, fmt.Sprintf("%s %d (first at %.2fs, %d open)", o, n, f.AtS, f.Concurrency))
			} else {
				outs = append(outs, fmt.Sprintf("%s %d", o, n))
			}
		}
	}
	if len(outs) == 0 {
		outs = []string{"none"}
	}
	fmt.Fprintf(w, "  outcomes     %s\n", strings.Join(outs, ", "))
	if s.Errors.Count > 0 {
		fmt.Fprintf(w, "  errors       %d (%.3f%%)\n", s.Errors.Count, 100*s.Errors.Rate)
		// In the outcomes' fixed order: ranging over the map would print them differently each run.
		for o := range metrics.NumOutcomes {
			if ex := s.Examples[o.String()]; len(ex) > 0 {
				fmt.Fprintf(w, "    %s e.g. %s\n", o, ex[0])
			}
		}
	}
	writeRequests(w, s.Requests)
	fmt.Fprintf(w, "  %-18s %9s %9s %9s %9s %9s %9s %9s\n", "latency", "count", "min", "p50", "p90", "p99", "p99.9", "max")
	for l := range metrics.NumLatencies {
		ls, ok := s.Latency[l.String()]
		if !ok || ls.Count == 0 {
			continue
		}
		fmt.Fprintf(w, "  %-18s %9d %9s %9s %9s %9s %9s %9s\n", l.String(), ls.Count, fmtUS(ls.Min), fmtUS(ls.P50),
			fmtUS(ls.P90), fmtUS(ls.P99), fmtUS(ls.P999), fmtUS(ls.Max))
	}
	writePorts(w, s.Ports)
	writeMemory(w, s.Memory)
	if u := s.Unreachable; u != nil {
		fmt.Fprintf(w, "  gave up      at %.2fs: %s\n", u.AtS, u.Message())
	}
	WriteVerdict(w, s)
	for _, warn := range s.Warnings {
		fmt.Fprintf(w, "  warning      %s\n", warn)
	}
	if dir != "" {
		fmt.Fprintf(w, "  results      %s\n", dir)
	}
}

// writeMemory prints what one connection held at the plateau cost: the kernel's slab, the
// generator's and the target's resident memory, then the slab caches that grew most.
func writeMemory(w io.Writer, m *memory.Report) {
	if m == nil {
		return
	}
	parts := []string{}
	if k := m.Kernel; k != nil {
		parts = append(parts, fmt.Sprintf("kernel %s (slab %+.2f GiB)", fmtBytes(float64(k.PerConnection)), float64(k.SlabBytes)/(1<<30)))
	}
	if g := m.Generator; g != nil {
		parts = append(parts, fmt.Sprintf("generator %s (%d processes)", fmtBytes(float64(g.PerConnection)), g.Processes))
	}
	if t := m.Target; t != nil {
		parts = append(parts, fmt.Sprintf("target %s (%d processes)", fmtBytes(float64(t.PerConnection)), t.Processes))
	}
	head := fmt.Sprintf("%d held at %.0fs, per connection:", m.Connections, m.AtS)
	wrapParts(w, "  memory       ", append([]string{head}, parts...))
	if m.Kernel == nil || len(m.Kernel.Caches) == 0 {
		return
	}
	var caches []string
	for _, c := range m.Kernel.Caches[:min(len(m.Kernel.Caches), 6)] {
		caches = append(caches, fmt.Sprintf("%s %s", c.Name, fmtBytes(c.PerConnection)))
	}
	wrapParts(w, "    slab       ", caches)
}

// wrapParts prints parts after label, ", " between them (a space after one ending in ':'), on
// lines no wider than textWidth where they allow, continued under the label.
func wrapParts(w io.Writer, label string, parts []string) {
	indent := strings.Repeat(" ", len(label))
	line := label
	for i, p := range parts {
		sep := ""
		if i > 0 {
			sep = ", "
			if strings.HasSuffix(parts[i-1], ":") {
				sep = " "
			}
		}
		if i > 0 && len(line)+len(sep)+len(p) > textWidth {
			fmt.Fprintln(w, line+strings.TrimRight(sep, " "))
			line = indent + p
			continue
		}
		line += sep + p
	}
	fmt.Fprintln(w, line)
}

// fmtBytes renders a size in bytes as B or KiB.
func fmtBytes(b float64) string {
	if b >= 10*1024 || b <= -10*1024 {
		return fmt.Sprintf("%.1f KiB", b/1024)
	}
	if b >= 1024 || b <= -1024 {
		return fmt.Sprintf("%.2f KiB", b/1024)
	}
	return fmt.Sprintf("%.0f B", b)
}

// textWidth is the widest line of the text summary's own lines.
const textWidth = 100

// writeRequests prints the requests line: written and per second, errors by outcome, and offered
// with the shortfall when the requests were rated; wrapped to textWidth.
func writeRequests(w io.Writer, r *Requests) {
	if r == nil || r.Written == 0 && r.Offered == 0 {
		return
	}
	// Each part follows the one before with its sep, or starts a continuation line.
	type part struct{ sep, text string }
	parts := []part{{"", fmt.Sprintf("written %d (%s/s)", r.Written, fmtRate(r.PerSecond))}}
	if r.Errors > 0 {
		parts = append(parts, part{"  ", fmt.Sprintf("errors %d (%.3f%%)", r.Errors, 100*r.ErrorRate)})
		sep := ": "
		// In the outcomes' fixed order, as the outcomes line.
		for o := range metrics.NumOutcomes {
			if n := r.Outcomes[o.String()]; n > 0 && o != metrics.OK {
				parts = append(parts, part{sep, fmt.Sprintf("%s %d", o, n)})
				sep = ", "
			}
		}
	} else {
		parts = append(parts, part{"  ", "errors 0"})
	}
	if r.Rated {
		parts = append(parts, part{"  ", fmt.Sprintf("offered %d (%s/s)", r.Offered, fmtRate(r.OfferedPerSecond))},
			part{"  ", fmt.Sprintf("shortfall %.2f%%", 100*r.Shortfall)})
	}
	const label, indent = "  requests     ", "               "
	line := label
	for i, p := range parts {
		if i > 0 && len(line)+len(p.sep)+len(p.text) > textWidth {
			fmt.Fprintln(w, line+strings.TrimRight(p.sep, " "))
			line = indent + p.text
			continue
		}
		line += p.sep + p.text
	}
	fmt.Fprintln(w, line)
}

// fmtRate writes a rate per second with digits where they mean something: 0.25, 12.5, 40000.
func fmtRate(v float64) string {
	switch {
	case v >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case v >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	}
	return strconv.FormatFloat(v, 'f', 2, 64)
}
