package shard

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// A distributed run without a shared volume (portstorm k8s --results upload): each segment sends
// its finished shard folder to the merge process over HTTP (PUT /shard/<index>, a gzipped tar of
// the folder's files), and the merge unpacks it where it would have read it from a shared volume.

// MaxUpload bounds one shard folder's upload, packed (1 GiB): a run's snapshots of a few hours.
const MaxUpload = 1 << 30

// Pack writes the regular files of the shard folder dir (no subfolders: a shard folder has none)
// as a gzipped tar, shard.json last, so that its presence still means the folder is complete.
func Pack(w io.Writer, dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	zw := gzip.NewWriter(w)
	tw := tar.NewWriter(zw)
	var names []string
	for _, e := range entries {
		if e.Type().IsRegular() && e.Name() != InfoFile && !strings.HasPrefix(e.Name(), ".") {
			names = append(names, e.Name())
		}
	}
	if _, err := os.Stat(filepath.Join(dir, InfoFile)); err != nil {
		return fmt.Errorf("%s: no %s: the segment has not finished its folder", dir, InfoFile)
	}
	names = append(names, InfoFile)
	for _, name := range names {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return err
		}
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(b)), Typeflag: tar.TypeReg}); err != nil {
			return err
		}
		if _, err := tw.Write(b); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return zw.Close()
}

// Unpack reads what Pack wrote into the folder dir, which must not exist: the files land in a
// temporary folder next to it, renamed to dir once all are written. Only plain file names and
// regular files are taken, at most limit bytes in all.
func Unpack(r io.Reader, dir string, limit int64) error {
	if _, err := os.Lstat(dir); err == nil {
		return fmt.Errorf("%s exists already: a shard is received once", dir)
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dir), "."+filepath.Base(dir)+".*")
	if err != nil {
		return err
	}
	ok := false
	defer func() {
		if !ok {
			os.RemoveAll(tmp)
		}
	}()
	zr, err := gzip.NewReader(r)
	if err != nil {
		return fmt.Errorf("not a packed shard folder: %w", err)
	}
	tr := tar.NewReader(zr)
	var total int64
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("not a packed shard folder: %w", err)
		}
		if h.Typeflag != tar.TypeReg || h.Name != filepath.Base(h.Name) || h.Name == "." || h.Name == ".." || strings.ContainsAny(h.Name, `/\`) {
			return fmt.Errorf("packed shard folder: entry %q is not a plain file name", h.Name)
		}
		if total += h.Size; total > limit {
			return fmt.Errorf("packed shard folder: over %d bytes", limit)
		}
		f, err := os.OpenFile(filepath.Join(tmp, h.Name), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if err != nil {
			return err
		}
		_, err = io.Copy(f, io.LimitReader(tr, h.Size))
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
	}
	if _, err := os.Stat(filepath.Join(tmp, InfoFile)); err != nil {
		return fmt.Errorf("packed shard folder: no %s", InfoFile)
	}
	if err := os.Rename(tmp, dir); err != nil {
		return err
	}
	ok = true
	return nil
}

// Receiver is the merge side's HTTP handler: PUT /shard/<i> unpacks segment i's folder into
// Dirs[i]; GET /shard/<i> says whether it came (200) or not (404).
type Receiver struct {
	Dirs []string
	// Limit bounds one upload (default MaxUpload).
	Limit int64
	mu    sync.Mutex
	busy  map[int]bool
}

func (rc *Receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rest, ok := strings.CutPrefix(r.URL.Path, "/shard/")
	i, err := strconv.Atoi(rest)
	if !ok || err != nil || i < 0 || i >= len(rc.Dirs) {
		http.Error(w, fmt.Sprintf("want /shard/<index>, index 0 to %d", len(rc.Dirs)-1), http.StatusNotFound)
		return
	}
	dir := rc.Dirs[i]
	switch r.Method {
	case http.MethodGet:
		if _, err := os.Stat(filepath.Join(dir, InfoFile)); err != nil {
			http.Error(w, "not received", http.StatusNotFound)
			return
		}
		fmt.Fprintln(w, "received")
	case http.MethodPut:
		rc.mu.Lock()
		if rc.busy == nil {
			rc.busy = map[int]bool{}
		}
		if rc.busy[i] {
			rc.mu.Unlock()
			http.Error(w, fmt.Sprintf("segment %d is being received", i), http.StatusConflict)
			return
		}
		rc.busy[i] = true
		rc.mu.Unlock()
		defer func() {
			rc.mu.Lock()
			delete(rc.busy, i)
			rc.mu.Unlock()
		}()
		if _, err := os.Stat(filepath.Join(dir, InfoFile)); err == nil {
			http.Error(w, fmt.Sprintf("segment %d was received already", i), http.StatusConflict)
			return
		}
		limit := rc.Limit
		if limit <= 0 {
			limit = MaxUpload
		}
		if err := Unpack(http.MaxBytesReader(w, r.Body, limit), dir, limit); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.WriteHeader(http.StatusCreated)
	default:
		w.Header().Set("Allow", "GET, PUT")
		http.Error(w, "want PUT or GET", http.StatusMethodNotAllowed)
	}
}

// Upload sends the shard folder dir to url (a Receiver's /shard/<i>), retrying while the merge
// cannot be reached or answers 5xx, until wait has passed (the merge pod may start after the
// segment's). A 409 (received already) counts as done; another 4xx is final.
func Upload(ctx context.Context, client *http.Client, url, dir string, wait, retry time.Duration) error {
	var body bytes.Buffer
	if err := Pack(&body, dir); err != nil {
		return err
	}
	deadline := time.Now().Add(wait)
	for {
		err := put(ctx, client, url, body.Bytes())
		var final *finalError
		if err == nil || errors.As(err, &final) {
			return err
		}
		if !time.Now().Before(deadline) {
			return fmt.Errorf("sending %s to %s: gave up after %s: %w", dir, url, wait, err)
		}
		t := time.NewTimer(min(retry, time.Until(deadline)) + time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("sending %s to %s: %w", dir, url, ctx.Err())
		case <-t.C:
		}
	}
}

type finalError struct{ msg string }

func (e *finalError) Error() string { return e.msg }

func put(ctx context.Context, client *http.Client, url string, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, url, bytes.NewReader(body))
	if err != nil {
		return &finalError{err.Error()}
	}
	req.Header.Set("Content-Type", "application/gzip")
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	switch {
	case resp.StatusCode == http.StatusCreated || resp.StatusCode == http.StatusConflict && strings.Contains(string(msg), "received already"):
		return nil
	case resp.StatusCode >= 500:
		return fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(msg)))
	default:
		return &finalError{fmt.Sprintf("%s answered %s: %s", url, resp.Status, strings.TrimSpace(string(msg)))}
	}
}
