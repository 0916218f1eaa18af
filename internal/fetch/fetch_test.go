package fetch

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// server is a TLS test server with a handler per test and counters.
type server struct {
	*httptest.Server
	requests atomic.Int64
	sent     atomic.Int64 // body bytes the handler wrote
}

func newServer(t *testing.T, h func(s *server, w http.ResponseWriter, r *http.Request)) *server {
	t.Helper()
	s := &server{}
	s.Server = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.requests.Add(1)
		h(s, &countingWriter{ResponseWriter: w, n: &s.sent}, r)
	}))
	t.Cleanup(s.Close)
	return s
}

// caPEM is the server's certificate, PEM-encoded, as a caFile holds it.
func (s *server) caPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.Certificate().Raw})
}

type countingWriter struct {
	http.ResponseWriter
	n *atomic.Int64
}

func (w *countingWriter) Write(p []byte) (int, error) {
	n, err := w.ResponseWriter.Write(p)
	w.n.Add(int64(n))
	return n, err
}

func (w *countingWriter) Flush() { w.ResponseWriter.(http.Flusher).Flush() }

// serveContent serves data with Range support, as a file server does.
func serveContent(w http.ResponseWriter, r *http.Request, data []byte) {
	http.ServeContent(w, r, "f", time.Time{}, bytes.NewReader(data))
}

// cut sends the headers of all of data, the first n bytes, then drops the
// connection.
func cut(w http.ResponseWriter, data []byte, n int) {
	w.Header().Set("Content-Length", fmt.Sprint(len(data)))
	w.WriteHeader(http.StatusOK)
	w.Write(data[:n])
	w.(http.Flusher).Flush()
	panic(http.ErrAbortHandler)
}

func content(n int) ([]byte, string) {
	data := make([]byte, n)
	for i := range data {
		data[i] = byte(i*7 + i/251)
	}
	sum := sha256.Sum256(data)
	return data, hex.EncodeToString(sum[:])
}

func newClient(t *testing.T, s *server, o Options) *Client {
	t.Helper()
	if o.CacheDir == "" {
		o.CacheDir = t.TempDir()
	}
	if o.Backoff == 0 {
		o.Backoff = time.Millisecond
	}
	c, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	if s != nil {
		if c, err = c.WithCA(s.caPEM()); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(c.Close)
	return c
}

func checkFile(t *testing.T, p string, want []byte) {
	t.Helper()
	got, err := os.ReadFile(p)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("%s: %d bytes (%v), want the %d served", p, len(got), err, len(want))
	}
}

func TestFetchCachesByDigest(t *testing.T) {
	data, sum := content(100 << 10)
	s := newServer(t, func(s *server, w http.ResponseWriter, r *http.Request) { serveContent(w, r, data) })
	cache := t.TempDir()
	c := newClient(t, s, Options{CacheDir: cache})
	it := Item{URL: s.URL + "/a.rpm", SHA256: sum, Size: int64(len(data))}
	p, err := c.Fetch(context.Background(), it)
	if err != nil {
		t.Fatal(err)
	}
	if p != filepath.Join(cache, "sha256", sum) {
		t.Errorf("path %s", p)
	}
	checkFile(t, p, data)
	// A cache hit downloads nothing, in this client or another one (a
	// later build) on the same cache; and nothing else is left there.
	if _, err := c.Fetch(context.Background(), it); err != nil {
		t.Fatal(err)
	}
	c2 := newClient(t, s, Options{CacheDir: cache})
	if _, err := c2.Fetch(context.Background(), it); err != nil {
		t.Fatal(err)
	}
	if n := s.requests.Load(); n != 1 {
		t.Errorf("%d requests, want 1", n)
	}
	if st := c.Stats(); st.CacheHits != 1 || st.Requests != 1 || st.Bytes != int64(len(data)) {
		t.Errorf("stats %+v", st)
	}
	ents, _ := os.ReadDir(filepath.Join(cache, "sha256"))
	if len(ents) != 1 {
		t.Errorf("cache holds %d files, want 1", len(ents))
	}
	// A damaged cache file is noticed and downloaded again.
	if err := os.WriteFile(p, []byte("damaged"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Fetch(context.Background(), it); err != nil {
		t.Fatal(err)
	}
	checkFile(t, p, data)
	if n := s.requests.Load(); n != 2 {
		t.Errorf("%d requests after damage, want 2", n)
	}
}

func TestFetchMismatchLeavesNothing(t *testing.T) {
	data, sum := content(5000)
	tampered := bytes.Clone(data)
	tampered[100] ^= 1
	s := newServer(t, func(s *server, w http.ResponseWriter, r *http.Request) { serveContent(w, r, tampered) })
	cache := t.TempDir()
	c := newClient(t, s, Options{CacheDir: cache})
	_, err := c.Fetch(context.Background(), Item{URL: s.URL + "/a", SHA256: sum, Size: int64(len(data))})
	if !errors.Is(err, ErrMismatch) || !strings.Contains(err.Error(), "want "+sum) {
		t.Fatalf("error %v, want a mismatch naming %s", err, sum)
	}
	if n := s.requests.Load(); n != 1 {
		t.Errorf("a mismatch was retried: %d requests", n)
	}
	// Longer than the size: refused as soon as it is known.
	longer := append(bytes.Clone(data), 'x')
	s2 := newServer(t, func(s *server, w http.ResponseWriter, r *http.Request) { serveContent(w, r, longer) })
	c2 := newClient(t, s2, Options{CacheDir: cache})
	if _, err := c2.Fetch(context.Background(), Item{URL: s2.URL + "/a", SHA256: sum, Size: int64(len(data))}); !errors.Is(err, ErrMismatch) {
		t.Fatalf("longer body: %v", err)
	}
	ents, _ := os.ReadDir(filepath.Join(cache, "sha256"))
	for _, e := range ents {
		t.Errorf("left in the cache: %s", e.Name())
	}
}

func TestFetchRetries(t *testing.T) {
	data, sum := content(3000)
	const failures = 3
	for _, code := range []int{http.StatusServiceUnavailable, http.StatusTooManyRequests, http.StatusBadGateway} {
		t.Run(fmt.Sprint(code), func(t *testing.T) {
			s := newServer(t, func(s *server, w http.ResponseWriter, r *http.Request) {
				if s.requests.Load() <= failures {
					w.Header().Set("Retry-After", "0")
					http.Error(w, "busy", code)
					return
				}
				serveContent(w, r, data)
			})
			c := newClient(t, s, Options{})
			p, err := c.Fetch(context.Background(), Item{URL: s.URL + "/a", SHA256: sum, Size: int64(len(data))})
			if err != nil {
				t.Fatal(err)
			}
			checkFile(t, p, data)
			if n := s.requests.Load(); n != failures+1 {
				t.Errorf("%d requests, want %d", n, failures+1)
			}
		})
	}
	// The retries are bounded.
	s := newServer(t, func(s *server, w http.ResponseWriter, r *http.Request) {
		http.Error(w, "down", http.StatusServiceUnavailable)
	})
	c := newClient(t, s, Options{Retries: 2})
	_, err := c.Fetch(context.Background(), Item{URL: s.URL + "/a", SHA256: sum, Size: int64(len(data))})
	var se *StatusError
	if !errors.As(err, &se) || se.Code != 503 || !strings.Contains(err.Error(), "after 3 attempts") {
		t.Fatalf("error %v, want 503 after 3 attempts", err)
	}
	if n := s.requests.Load(); n != 3 {
		t.Errorf("%d requests, want 3", n)
	}
	// Get retries too; 404 is final at once.
	s404 := newServer(t, func(s *server, w http.ResponseWriter, r *http.Request) { http.NotFound(w, r) })
	if _, err := newClient(t, s404, Options{}).Get(context.Background(), s404.URL+"/x", 100); !errors.Is(err, ErrNotFound) || s404.requests.Load() != 1 {
		t.Fatalf("404: %v after %d requests", err, s404.requests.Load())
	}
	// The context ends a back-off.
	ctx, cancel := context.WithCancel(context.Background())
	slow := newClient(t, s, Options{Backoff: time.Hour, MaxBackoff: time.Hour})
	go func() {
		for s.requests.Load() < 4 {
			time.Sleep(time.Millisecond)
		}
		cancel()
	}()
	if _, err := slow.Get(ctx, s.URL+"/x", 100); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled back-off: %v", err)
	}
}

// TestFetchResumes: a body cut mid-way is resumed with a Range request, so
// only the missing part is sent again.
func TestFetchResumes(t *testing.T) {
	data, sum := content(256 << 10)
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
	p, err := c.Fetch(context.Background(), Item{URL: s.URL + "/a", SHA256: sum, Size: int64(len(data))})
	if err != nil {
		t.Fatal(err)
	}
	checkFile(t, p, data)
	if len(ranges) != 2 || ranges[0] != "" || ranges[1] != fmt.Sprintf("bytes=%d-", at) {
		t.Errorf("requests with ranges %q, want none then bytes=%d-", ranges, at)
	}
	if sent := s.sent.Load(); sent != int64(len(data)) {
		t.Errorf("server sent %d body bytes for a file of %d: the cut part was sent again", sent, len(data))
	}
}

// TestFetchResumesAcrossRuns: a .partial left by an interrupted run is
// resumed by the next one.
func TestFetchResumesAcrossRuns(t *testing.T) {
	data, sum := content(50 << 10)
	s := newServer(t, func(s *server, w http.ResponseWriter, r *http.Request) { serveContent(w, r, data) })
	cache := t.TempDir()
	if err := os.MkdirAll(filepath.Join(cache, "sha256"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(cache, "sha256", sum+".partial"), data[:30<<10], 0o644); err != nil {
		t.Fatal(err)
	}
	c := newClient(t, s, Options{CacheDir: cache})
	p, err := c.Fetch(context.Background(), Item{URL: s.URL + "/a", SHA256: sum, Size: int64(len(data))})
	if err != nil {
		t.Fatal(err)
	}
	checkFile(t, p, data)
	if sent := s.sent.Load(); sent != 20<<10 {
		t.Errorf("server sent %d bytes, want the missing %d", sent, 20<<10)
	}
	// A stale partial (the bytes differ) is detected by the digest and
	// the file downloaded again from the start, once.
	bad := bytes.Clone(data[:30<<10])
	bad[0] ^= 1
	cache2 := t.TempDir()
	os.MkdirAll(filepath.Join(cache2, "sha256"), 0o755)
	os.WriteFile(filepath.Join(cache2, "sha256", sum+".partial"), bad, 0o644)
	s.requests.Store(0)
	c2 := newClient(t, s, Options{CacheDir: cache2})
	p, err = c2.Fetch(context.Background(), Item{URL: s.URL + "/a", SHA256: sum, Size: int64(len(data))})
	if err != nil {
		t.Fatal(err)
	}
	checkFile(t, p, data)
	if n := s.requests.Load(); n != 2 {
		t.Errorf("%d requests, want 2 (resume, then from the start)", n)
	}
}

// TestFetchRestartsWhenRangeIgnored: a server that answers a Range request
// with the whole file (200) gets it written from the first byte.
func TestFetchRestartsWhenRangeIgnored(t *testing.T) {
	data, sum := content(64 << 10)
	s := newServer(t, func(s *server, w http.ResponseWriter, r *http.Request) {
		if s.requests.Load() == 1 {
			cut(w, data, 10<<10)
		}
		w.Header().Set("Content-Length", fmt.Sprint(len(data)))
		w.Write(data) // 200, Range ignored
	})
	c := newClient(t, s, Options{})
	p, err := c.Fetch(context.Background(), Item{URL: s.URL + "/a", SHA256: sum, Size: int64(len(data))})
	if err != nil {
		t.Fatal(err)
	}
	checkFile(t, p, data)
	if n := s.requests.Load(); n != 2 {
		t.Errorf("%d requests, want 2", n)
	}
	// A 206 for another range than asked is not appended either.
	s2 := newServer(t, func(s *server, w http.ResponseWriter, r *http.Request) {
		switch s.requests.Load() {
		case 1:
			cut(w, data, 10<<10)
		case 2:
			w.Header().Set("Content-Range", fmt.Sprintf("bytes 0-%d/%d", len(data)-1, len(data)))
			w.WriteHeader(http.StatusPartialContent)
			w.Write(data)
			return
		}
		serveContent(w, r, data)
	})
	c2 := newClient(t, s2, Options{})
	p, err = c2.Fetch(context.Background(), Item{URL: s2.URL + "/a", SHA256: sum, Size: int64(len(data))})
	if err != nil {
		t.Fatal(err)
	}
	checkFile(t, p, data)
}

// TestFetchStalled: a response that stops sending is abandoned after the
// stall timeout and resumed: a second request asks for the rest with a
// Range from the bytes already received, and the server sends each byte
// once.
func TestFetchStalled(t *testing.T) {
	data, sum := content(64 << 10)
	const first = 1000 // bytes sent before the stall
	var mu sync.Mutex
	var ranges []string
	s := newServer(t, func(s *server, w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		ranges = append(ranges, r.Header.Get("Range"))
		mu.Unlock()
		if s.requests.Load() == 1 {
			w.Header().Set("Content-Length", fmt.Sprint(len(data)))
			w.Write(data[:first])
			w.(http.Flusher).Flush()
			<-r.Context().Done() // until the client gives up
			return
		}
		serveContent(w, r, data)
	})
	c := newClient(t, s, Options{StallTimeout: 200 * time.Millisecond})
	p, err := c.Fetch(context.Background(), Item{URL: s.URL + "/a", SHA256: sum, Size: int64(len(data))})
	if err != nil {
		t.Fatal(err)
	}
	checkFile(t, p, data)
	mu.Lock()
	defer mu.Unlock()
	if n := s.requests.Load(); n != 2 || len(ranges) != 2 {
		t.Fatalf("%d requests (ranges %q), want 2: the stalled one and its resumption", n, ranges)
	}
	if ranges[0] != "" {
		t.Errorf("the first request has Range %q, want none", ranges[0])
	}
	var start int64
	if _, err := fmt.Sscanf(ranges[1], "bytes=%d-", &start); err != nil || start <= 0 || start > first || ranges[1] != fmt.Sprintf("bytes=%d-", start) {
		t.Errorf("the second request has Range %q, want bytes=N- with 0 < N <= %d (resumed, not restarted)", ranges[1], first)
	}
	// Each byte is sent once, but for those before the stall that the
	// client may not have read (none, in practice).
	if got := s.sent.Load(); got != int64(len(data))+first-start {
		t.Errorf("the server sent %d body bytes, want %d (%d before the stall, the rest from %d)", got, int64(len(data))+first-start, first, start)
	}
}

// TestFetchParallelBound counts the requests in flight in the handler: it
// never exceeds Parallel, and reaches it.
func TestFetchParallelBound(t *testing.T) {
	const parallel, n = 3, 12
	var inflight, peak atomic.Int64
	full := make(chan struct{})
	var once sync.Once
	s := newServer(t, func(s *server, w http.ResponseWriter, r *http.Request) {
		cur := inflight.Add(1)
		defer inflight.Add(-1)
		for {
			p := peak.Load()
			if cur <= p || peak.CompareAndSwap(p, cur) {
				break
			}
		}
		if cur >= parallel {
			once.Do(func() { close(full) })
		}
		// The first requests wait until the bound is reached, so a client
		// that allowed more would be caught exceeding it.
		select {
		case <-full:
		case <-time.After(20 * time.Second):
		}
		fmt.Fprint(w, r.URL.Path)
	})
	c := newClient(t, s, Options{Parallel: parallel})
	var items []Item
	for i := range n {
		path := fmt.Sprintf("/f%d", i)
		sum := sha256.Sum256([]byte(path))
		items = append(items, Item{URL: s.URL + path, SHA256: hex.EncodeToString(sum[:]), Size: int64(len(path))})
	}
	// Fetches from other goroutines share the bound.
	paths, errs := c.FetchAll(context.Background(), items[:n/2])
	var wg sync.WaitGroup
	wg.Go(func() {
		for _, it := range items[n/2:] {
			if _, err := c.Fetch(context.Background(), it); err != nil {
				t.Error(err)
			}
		}
	})
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
		checkFile(t, paths[i], []byte(fmt.Sprintf("/f%d", i)))
	}
	if p := peak.Load(); p != parallel {
		t.Errorf("at most %d requests in flight, want exactly %d", p, parallel)
	}
}

func TestTLSIsVerified(t *testing.T) {
	data, sum := content(10)
	s := newServer(t, func(s *server, w http.ResponseWriter, r *http.Request) { serveContent(w, r, data) })
	c := newClient(t, nil, Options{Backoff: time.Hour}) // system CAs only: the test CA is unknown
	_, err := c.Fetch(context.Background(), Item{URL: s.URL + "/a", SHA256: sum, Size: 10})
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("untrusted server: %v", err)
	}
	if st := c.Stats(); st.Requests != 1 {
		t.Errorf("a TLS verification failure was retried: %d requests", st.Requests)
	}
	if _, err := c.WithCA([]byte("not pem")); err == nil {
		t.Error("WithCA accepted no certificate")
	}
	for _, u := range []string{"http://example.com/a", "ftp://x/y", "file://host/x", "file:relative"} {
		if _, err := c.Get(context.Background(), u, 10); err == nil || !strings.Contains(err.Error(), "only https:// and file:///") {
			t.Errorf("%s: %v", u, err)
		}
	}
	// A redirect to plain http is refused.
	r := newServer(t, func(s *server, w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "http://127.0.0.1:1/a", http.StatusFound)
	})
	rc := newClient(t, r, Options{Backoff: time.Hour})
	if _, err := rc.Get(context.Background(), r.URL+"/a", 10); err == nil || !strings.Contains(err.Error(), "refusing a redirect") {
		t.Errorf("redirect to http: %v", err)
	}
}

func TestBounds(t *testing.T) {
	data, sum := content(4096)
	s := newServer(t, func(s *server, w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/chunked" {
			w.(http.Flusher).Flush() // no Content-Length
		}
		w.Write(data)
	})
	var c *Client
	for _, p := range []string{"/a", "/chunked"} {
		c = newClient(t, s, Options{})
		if _, err := c.Get(context.Background(), s.URL+p, 4095); !errors.Is(err, ErrTooLarge) {
			t.Errorf("Get %s over the bound: %v", p, err)
		}
		if got, err := c.Get(context.Background(), s.URL+p, 4096); err != nil || !bytes.Equal(got, data) {
			t.Errorf("Get %s: %v", p, err)
		}
		if _, err := c.Fetch(context.Background(), Item{URL: s.URL + p, SHA256: sum, Size: -1, MaxSize: 4000}); !errors.Is(err, ErrTooLarge) {
			t.Errorf("Fetch %s over MaxSize: %v", p, err)
		}
		if path, err := c.Fetch(context.Background(), Item{URL: s.URL + p, SHA256: sum, Size: -1, MaxSize: 5000}); err != nil {
			t.Errorf("Fetch %s of unknown size: %v", p, err)
		} else {
			checkFile(t, path, data)
		}
	}
	for _, it := range []Item{{URL: s.URL, SHA256: "abc", Size: 1}, {URL: s.URL, SHA256: sum, Size: -1}} {
		if _, err := c.Fetch(context.Background(), it); err == nil {
			t.Errorf("%+v accepted", it)
		}
	}
}

func TestFileURLs(t *testing.T) {
	data, sum := content(2000)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "a.rpm"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	c := newClient(t, nil, Options{})
	p, err := c.Fetch(context.Background(), Item{URL: "file://" + dir + "/a.rpm", SHA256: sum, Size: int64(len(data))})
	if err != nil {
		t.Fatal(err)
	}
	checkFile(t, p, data)
	if got, err := c.Get(context.Background(), "file://"+dir+"/a.rpm", 2000); err != nil || !bytes.Equal(got, data) {
		t.Errorf("Get: %v", err)
	}
	if _, err := c.Get(context.Background(), "file://"+dir+"/missing", 10); !errors.Is(err, ErrNotFound) {
		t.Errorf("missing file: %v", err)
	}
	_, wrong := content(1)
	if _, err := c.Fetch(context.Background(), Item{URL: "file://" + dir + "/a.rpm", SHA256: wrong, Size: int64(len(data))}); !errors.Is(err, ErrMismatch) {
		t.Errorf("wrong digest: %v", err)
	}
}

func TestParseContentRange(t *testing.T) {
	for in, want := range map[string][3]int64{
		"bytes 10-99/100":  {10, 100, 1},
		"bytes 0-0/*":      {0, -1, 1},
		"bytes 10-9/100":   {0, 0, 0},
		"bytes 10-100/100": {0, 0, 0},
		"bytes x-1/2":      {0, 0, 0},
		"items 0-1/2":      {0, 0, 0},
		"bytes 1-2":        {0, 0, 0},
	} {
		s, total, ok := parseContentRange(in)
		if ok != (want[2] == 1) || ok && (s != want[0] || total != want[1]) {
			t.Errorf("%q: %d %d %v", in, s, total, ok)
		}
	}
}
