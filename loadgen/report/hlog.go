package report

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	hdr "github.com/HdrHistogram/hdrhistogram-go"

	"github.com/portstorm/portstorm/loadgen/metrics"
)

// HLogFile is the latency interval log's name in a results folder.
const HLogFile = "latency.hlog"

// HLog writes latency.hlog, the HdrHistogram interval log (format 1.3, as HdrHistogram's
// HistogramLogWriter writes it and its log readers, HistogramLogAnalyzer and hdrhistogram-go's
// HistogramLogReader read it): one line per latency per interval, tagged with the latency's name,
// values in microseconds. Lines are written to the file as each interval is cut, unbuffered, so a
// run killed outright (SIGKILL) leaves every interval but the one in progress.
//
// The interval max column is the writer's max / 1e6 (hdrhistogram-go assumes nanoseconds and
// writes milliseconds); with microsecond values it reads in seconds.
type HLog struct {
	f *os.File
	w *hdr.HistogramLogWriter
	// startMs is the run's start in ms since the epoch; snapshots carry offsets from it.
	startMs int64
}

// CreateHLog creates dir/latency.hlog, a fresh file (CreateFresh: never written through a link
// left in the folder), and writes its header. start is the run's time zero.
func CreateHLog(dir string, start time.Time) (*HLog, error) {
	f, err := CreateFresh(filepath.Join(dir, HLogFile))
	if err != nil {
		return nil, fmt.Errorf("creating %s: %w", HLogFile, err)
	}
	l := &HLog{f: f, w: hdr.NewHistogramLogWriter(f), startMs: start.UnixMilli()}
	// Timestamps are relative to BaseTime, a whole second (the reader keeps only whole seconds of it).
	base := l.startMs - l.startMs%1000
	l.w.SetBaseTime(base)
	tags := ""
	for i := range metrics.NumLatencies {
		if i > 0 {
			tags += ", "
		}
		tags += metrics.Latency(i).String()
	}
	err = errors.Join(
		l.w.OutputLogFormatVersion(),
		l.w.OutputComment("[portstorm latency log: values in microseconds; Interval_Max in seconds; tags "+tags+"]"),
		l.w.OutputStartTime(l.startMs),
		l.w.OutputBaseTime(base),
		l.w.OutputLegend(),
	)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("writing %s: %w", HLogFile, err)
	}
	return l, nil
}

// Write appends one interval snapshot: a line per latency that has samples in it, as
// HistogramLogWriter.OutputIntervalHistogram writes it (TestHLogLineMatchesHdr), but the histogram
// encoded by metrics.EncodeHistogram: its kept zlib writer at best speed instead of a new one at
// best compression a line.
func (l *HLog) Write(s *metrics.Snapshot) error {
	base := l.w.BaseTime()
	start := float64(l.startMs+s.StartUS/1000-base) / 1000
	end := float64(l.startMs+s.EndUS/1000-base) / 1000
	for i, h := range s.Hist {
		if h == nil || h.TotalCount() == 0 {
			continue
		}
		enc, err := metrics.EncodeHistogram(h)
		if err == nil {
			_, err = fmt.Fprintf(l.f, "Tag=%s,%f,%f,%f,%s\n", metrics.Latency(i), start, end-start, float64(h.Max())/hdr.MsToNsRatio, enc)
		}
		if err != nil {
			return fmt.Errorf("writing %s: %w", HLogFile, err)
		}
	}
	return nil
}

// Close syncs and closes the log.
func (l *HLog) Close() error {
	if l == nil || l.f == nil {
		return nil
	}
	err := l.f.Sync()
	if cerr := l.f.Close(); err == nil {
		err = cerr
	}
	l.f = nil
	return err
}

// HLogInterval is one line of a latency.hlog read back.
type HLogInterval struct {
	Tag string
	// StartS and EndS are seconds from the run's start.
	StartS, EndS float64
	Hist         *hdr.Histogram
}

// ReadHLog reads latency.hlog and calls fn for each interval, in file order. runStart is the run's
// start (summary.json's started_at), to make timestamps relative to it.
func ReadHLog(r io.Reader, runStart time.Time, fn func(HLogInterval) error) (err error) {
	// The decoder indexes into payloads it is given; a corrupt file must be an error, not a crash.
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%s: corrupt: %v", HLogFile, p)
		}
	}()
	rd := hdr.NewHistogramLogReader(r)
	startMs := runStart.UnixMilli()
	for {
		h, err := rd.NextIntervalHistogram()
		if err != nil {
			return fmt.Errorf("%s: %w", HLogFile, err)
		}
		if h == nil {
			return nil
		}
		iv := HLogInterval{Tag: h.Tag(), Hist: h,
			StartS: float64(h.StartTimeMs()-startMs) / 1e3, EndS: float64(h.EndTimeMs()-startMs) / 1e3}
		if err := fn(iv); err != nil {
			return err
		}
	}
}

// LatencyPoint is one latency's figures over a window of the run, in microseconds.
type LatencyPoint struct {
	StartS, EndS             float64
	Count                    int64
	P50, P90, P99, P999, Max int64
}

// LatencySeries reads a latency.hlog into percentile series per tag. Consecutive intervals are
// merged (histograms add exactly) so that no tag has more than maxPoints points: a day-long run
// still charts in a page, with true percentiles of each window rather than averages of them. The
// file is read twice, once to count, so that memory does not grow with the run's length.
func LatencySeries(path string, runStart time.Time, maxPoints int) (map[string][]LatencyPoint, error) {
	counts := map[string]int{}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if err := ReadHLogTags(f, func(tag string) { counts[tag]++ }); err != nil {
		return nil, err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	type acc struct {
		h      *hdr.Histogram
		n      int
		startS float64
	}
	accs := map[string]*acc{}
	out := map[string][]LatencyPoint{}
	flush := func(tag string, a *acc, endS float64) {
		h := a.h
		out[tag] = append(out[tag], LatencyPoint{StartS: a.startS, EndS: endS, Count: h.TotalCount(),
			P50: h.ValueAtQuantile(50), P90: h.ValueAtQuantile(90), P99: h.ValueAtQuantile(99),
			P999: h.ValueAtQuantile(99.9), Max: h.Max()})
		h.Reset()
		a.n = 0
	}
	var lastEnd = map[string]float64{}
	err = ReadHLog(f, runStart, func(iv HLogInterval) error {
		per := max(1, (counts[iv.Tag]+maxPoints-1)/max(maxPoints, 1))
		a := accs[iv.Tag]
		if a == nil {
			a = &acc{h: metrics.NewHistogram()}
			accs[iv.Tag] = a
		}
		if a.n == 0 {
			a.startS = iv.StartS
		}
		if dropped := a.h.Merge(iv.Hist); dropped != 0 {
			return fmt.Errorf("%s: %s interval at %.3fs: %d values outside portstorm's histogram bounds", HLogFile, iv.Tag, iv.StartS, dropped)
		}
		a.n++
		lastEnd[iv.Tag] = iv.EndS
		if a.n >= per {
			flush(iv.Tag, a, iv.EndS)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for tag, a := range accs {
		if a.n > 0 {
			flush(tag, a, lastEnd[tag])
		}
	}
	return out, nil
}

// ReadHLogTags calls fn with the tag of every interval line, without decoding the histograms.
func ReadHLogTags(r io.Reader, fn func(tag string)) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, "Tag="); ok {
			if tag, _, ok := strings.Cut(rest, ","); ok {
				fn(tag)
			}
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("%s: %w", HLogFile, err)
	}
	return nil
}
