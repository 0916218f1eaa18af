package fetch

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// TestDownload: without a digest, a download cut off is resumed from the
// bytes received (within a run and across runs), and lands at dst only
// when complete.
func TestDownload(t *testing.T) {
	data, _ := content(256 << 10)
	const at = 100 << 10
	var ranges []string
	var mu sync.Mutex
	s := newServer(t, func(s *server, w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		ranges = append(ranges, r.Header.Get("Range"))
		mu.Unlock()
		if s.requests.Load() == 1 {
			cut(w, data, at)
		}
		serveContent(w, r, data)
	})
	c := newClient(t, s, Options{})
	dst := filepath.Join(t.TempDir(), "downloads", "b.iso")
	if err := c.Download(context.Background(), s.URL+"/b.iso", dst, 1<<20); err != nil {
		t.Fatal(err)
	}
	checkFile(t, dst, data)
	if len(ranges) != 2 || ranges[0] != "" || ranges[1] != fmt.Sprintf("bytes=%d-", at) {
		t.Errorf("requests with ranges %q, want none then bytes=%d-", ranges, at)
	}
	if sent := s.sent.Load(); sent != int64(len(data)) {
		t.Errorf("server sent %d body bytes for a file of %d: the cut part was sent again", sent, len(data))
	}
	if _, err := os.Stat(dst + ".partial"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the partial file is left: %v", err)
	}

	// A partial file an interrupted run left is resumed by the next.
	s.sent.Store(0)
	s.requests.Store(1) // no more cuts
	dst2 := filepath.Join(t.TempDir(), "b.iso")
	if err := os.WriteFile(dst2+".partial", data[:at], 0o644); err != nil {
		t.Fatal(err)
	}
	if err := c.Download(context.Background(), s.URL+"/b.iso", dst2, 1<<20); err != nil {
		t.Fatal(err)
	}
	checkFile(t, dst2, data)
	if sent := s.sent.Load(); sent != int64(len(data)-at) {
		t.Errorf("server sent %d bytes, want the missing %d", sent, len(data)-at)
	}
}

// TestDownloadRefuses: more than the bound, a 404 (not retried), plain
// http and file URLs.
func TestDownloadRefuses(t *testing.T) {
	data, _ := content(64 << 10)
	s := newServer(t, func(s *server, w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/missing" {
			http.NotFound(w, r)
			return
		}
		serveContent(w, r, data)
	})
	c := newClient(t, s, Options{})
	dir := t.TempDir()
	dst := filepath.Join(dir, "big")
	if err := c.Download(context.Background(), s.URL+"/big", dst, 1<<10); !errors.Is(err, ErrTooLarge) {
		t.Errorf("more than the bound: %v", err)
	}
	if _, err := os.Stat(dst); err == nil {
		t.Error("a download over the bound is at dst")
	}
	before := s.requests.Load()
	if err := c.Download(context.Background(), s.URL+"/missing", filepath.Join(dir, "missing"), 1<<20); !errors.Is(err, ErrNotFound) {
		t.Errorf("404: %v", err)
	}
	if n := s.requests.Load() - before; n != 1 {
		t.Errorf("404: %d requests, want 1", n)
	}
	if _, err := os.Stat(filepath.Join(dir, "missing.partial")); err == nil {
		t.Error("an empty partial file is left")
	}
	for _, u := range []string{"http://example.com/x", "file:///etc/passwd"} {
		if err := c.Download(context.Background(), u, filepath.Join(dir, "x"), 1<<20); err == nil || !strings.Contains(err.Error(), "only https") {
			t.Errorf("%s: %v", u, err)
		}
	}
}
