package report

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// ErrFolderTaken wraps a results folder refused because another run holds it or has left its
// result there.
var ErrFolderTaken = errors.New("results folder taken")

// ClaimDir makes dir the results folder of one run: it creates it, locks it for as long as the run
// lasts and refuses it when another run holds it or has left its summary.json there, so that two
// runs with the same --out cannot mix their files, and a run killed before its summary cannot leave
// an older run's summary.json beside its own files. The lock is flock(2) on the folder itself:
// nothing is left behind, and the kernel drops it however the process ends. release unlocks.
func ClaimDir(dir string) (release func(), err error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("results folder: %w", err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return nil, fmt.Errorf("results folder: %w", err)
	}
	unlock, err := lockDir(d)
	if err != nil {
		d.Close()
		if errors.Is(err, errLocked) {
			return nil, fmt.Errorf("%w: %s is in use by another portstorm run; choose another --out", ErrFolderTaken, dir)
		}
		return nil, fmt.Errorf("results folder %s: locking it: %w", dir, err)
	}
	_, err = os.Lstat(filepath.Join(dir, SummaryFile))
	switch {
	case err == nil:
		err = fmt.Errorf("%w: %s already holds a run's %s; choose another --out or remove it", ErrFolderTaken, dir, SummaryFile)
	case errors.Is(err, fs.ErrNotExist):
		return func() { unlock(); d.Close() }, nil
	}
	unlock()
	d.Close()
	return nil, err
}

// CreateFresh creates path as a new, empty file for a result written as the run goes on
// (latency.hlog, snapshots.jsonl): a temporary file made in the same folder (O_EXCL: never through
// a link) and renamed over path, so that whatever was there, a symlink or a hard link to a file
// elsewhere, is replaced rather than truncated and written through.
func CreateFresh(path string) (*os.File, error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return nil, err
	}
	if err = f.Chmod(0o644); err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		f.Close()
		os.Remove(f.Name())
		return nil, err
	}
	return f, nil
}

// WriteResults writes a run's result files, the verdict last: timeline.csv, latency.hlog (synced
// and closed), report.html, then junit.xml and summary.json, the files CI reads for pass or fail.
// A file that cannot be written is named in the summary's outputs_incomplete and makes the verdict
// "error"; report.html and junit.xml written before the failure carry the verdict as it was, so they
// are written again, or removed when that fails too. Every error is returned.
func WriteResults(dir string, s *Summary, rows []TimelineRow, hlog *HLog) error {
	var errs []error
	written := map[string]bool{}
	try := func(name string, err error) {
		if err != nil {
			errs = append(errs, err)
			s.OutputsIncomplete = append(s.OutputsIncomplete, name)
			if s.Verdict != VerdictError {
				s.Verdict = VerdictError
				s.Warnings = append(s.Warnings, "verdict error: result file(s) not written")
			}
			return
		}
		written[name] = true
	}
	try(TimelineFile, WriteTimeline(dir, rows))
	if err := hlog.Close(); err != nil {
		try(HLogFile, fmt.Errorf("writing %s: %w", HLogFile, err))
	}
	try(HTMLFile, WriteHTML(dir, s))
	try(JUnitFile, WriteJUnit(dir, s))
	try(SummaryFile, WriteSummary(dir, s))
	if len(errs) == 0 {
		return nil
	}
	redo := []struct {
		name  string
		write func(string, *Summary) error
	}{{HTMLFile, WriteHTML}, {JUnitFile, WriteJUnit}}
	for _, r := range redo {
		if written[r.name] {
			if err := r.write(dir, s); err != nil {
				os.Remove(filepath.Join(dir, r.name))
				errs = append(errs, fmt.Errorf("removed %s: it could not be rewritten with verdict %q: %w", r.name, s.Verdict, err))
			}
		}
	}
	return errors.Join(errs...)
}
