package shard

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// shardFolder writes a finished shard folder's files.
func shardFolder(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "segment-0")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, body := range map[string]string{InfoFile: `{"schema":"portstorm/shard/v1"}`, SnapshotsFile: "{}\n", PlanFile: "version: 1\n", "summary.json": "{}"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func sameFiles(t *testing.T, a, b string) {
	t.Helper()
	ea, _ := os.ReadDir(a)
	eb, _ := os.ReadDir(b)
	if len(ea) != len(eb) || len(ea) == 0 {
		t.Fatalf("%s has %d files, %s %d", a, len(ea), b, len(eb))
	}
	for _, e := range ea {
		x, _ := os.ReadFile(filepath.Join(a, e.Name()))
		y, err := os.ReadFile(filepath.Join(b, e.Name()))
		if err != nil || !bytes.Equal(x, y) {
			t.Errorf("%s: %q vs %q (%v)", e.Name(), x, y, err)
		}
	}
}

func packed(t *testing.T, entries ...tar.Header) []byte {
	t.Helper()
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	tw := tar.NewWriter(zw)
	for _, h := range entries {
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatal(err)
		}
		tw.Write(make([]byte, h.Size))
	}
	tw.Close()
	zw.Close()
	return b.Bytes()
}

func TestPackUnpack(t *testing.T) {
	src := shardFolder(t)
	var b bytes.Buffer
	if err := Pack(&b, src); err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(t.TempDir(), "in", "segment-0")
	if err := Unpack(bytes.NewReader(b.Bytes()), dst, 1<<20); err != nil {
		t.Fatal(err)
	}
	sameFiles(t, src, dst)

	tests := []struct {
		name  string
		body  []byte
		limit int64
		want  string
	}{
		{"received twice", b.Bytes(), 1 << 20, "exists already"},
		{"not gzip", []byte("plain"), 1 << 20, "not a packed shard folder"},
		{"a path", packed(t, tar.Header{Name: "../evil", Size: 1, Mode: 0o644, Typeflag: tar.TypeReg}), 1 << 20, "not a plain file name"},
		{"a folder", packed(t, tar.Header{Name: "sub/x", Size: 1, Mode: 0o644, Typeflag: tar.TypeReg}), 1 << 20, "not a plain file name"},
		{"a symlink", packed(t, tar.Header{Name: "x", Linkname: "/etc/passwd", Typeflag: tar.TypeSymlink}), 1 << 20, "not a plain file name"},
		{"too large", b.Bytes(), 4, "over 4 bytes"},
		{"no shard.json", packed(t, tar.Header{Name: "summary.json", Size: 2, Mode: 0o644, Typeflag: tar.TypeReg}), 1 << 20, "no shard.json"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			to := dst
			if tt.name != "received twice" {
				to = filepath.Join(t.TempDir(), "segment-1")
			}
			err := Unpack(bytes.NewReader(tt.body), to, tt.limit)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err %v, want %q", err, tt.want)
			}
			if to != dst {
				if _, err := os.Stat(to); err == nil {
					t.Errorf("%s exists after a refused upload", to)
				}
				left, _ := os.ReadDir(filepath.Dir(to))
				if len(left) != 0 {
					t.Errorf("left behind: %v", left)
				}
			}
		})
	}
	// A folder without its shard.json is not finished: nothing is packed.
	os.Remove(filepath.Join(src, InfoFile))
	if err := Pack(&bytes.Buffer{}, src); err == nil || !strings.Contains(err.Error(), "not finished") {
		t.Errorf("packed an unfinished folder: %v", err)
	}
}

// TestUpload sends a shard folder to a Receiver on loopback: the merge side answers 503 twice
// (not up yet), then takes it; a second upload of the same segment counts as done; an index out
// of range is a final error, not retried.
func TestUpload(t *testing.T) {
	src := shardFolder(t)
	dirs := []string{filepath.Join(t.TempDir(), "segment-0"), filepath.Join(t.TempDir(), "segment-1")}
	rc := &Receiver{Dirs: dirs}
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) <= 2 {
			http.Error(w, "starting", http.StatusServiceUnavailable)
			return
		}
		rc.ServeHTTP(w, r)
	}))
	defer srv.Close()
	ctx := context.Background()
	if err := Upload(ctx, srv.Client(), srv.URL+"/shard/1", src, time.Minute, time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if calls.Load() != 3 {
		t.Errorf("%d calls, want 2 refused and 1 taken", calls.Load())
	}
	sameFiles(t, src, dirs[1])
	if err := Upload(ctx, srv.Client(), srv.URL+"/shard/1", src, time.Minute, time.Millisecond); err != nil {
		t.Errorf("second upload: %v", err)
	}
	before := calls.Load()
	if err := Upload(ctx, srv.Client(), srv.URL+"/shard/2", src, time.Minute, time.Millisecond); err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("upload out of range: %v", err)
	}
	if calls.Load() != before+1 {
		t.Errorf("a final error was retried: %d calls", calls.Load()-before)
	}
	resp, err := srv.Client().Get(srv.URL + "/shard/0")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET of a segment not received: %s", resp.Status)
	}
	srv.Client().CloseIdleConnections()
}

// TestUploadGivesUp: a merge that never takes the folder is retried until wait has passed.
func TestUploadGivesUp(t *testing.T) {
	src := shardFolder(t)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "down", http.StatusBadGateway)
	}))
	defer srv.Close()
	err := Upload(context.Background(), srv.Client(), srv.URL+"/shard/0", src, 20*time.Millisecond, time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "gave up after 20ms") {
		t.Errorf("err %v", err)
	}
	srv.Client().CloseIdleConnections()
}
