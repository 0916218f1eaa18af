package fetch

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ferry-k8s/ferry/internal/fileutil"
)

// Defaults of Options.
const (
	DefaultParallel     = 4
	DefaultRetries      = 5
	DefaultBackoff      = 500 * time.Millisecond
	DefaultMaxBackoff   = 30 * time.Second
	DefaultStallTimeout = time.Minute
)

// Errors callers branch on.
var (
	// ErrNotFound: the server answered 404 or 410 (or the local file does
	// not exist). It is not retried.
	ErrNotFound = errors.New("not found")
	// ErrMismatch: the content's size or sha256 differs from the expected.
	ErrMismatch = errors.New("content does not match its digest")
	// ErrTooLarge: more bytes than the caller's bound.
	ErrTooLarge = errors.New("larger than allowed")
)

// StatusError is an HTTP status that is not success.
type StatusError struct {
	Code   int
	Status string
}

func (e *StatusError) Error() string { return "server answered " + e.Status }

// Options configure a Client.
type Options struct {
	// CacheDir holds the sha256/ store; required by Fetch.
	CacheDir string
	// Parallel bounds the requests in flight; default DefaultParallel.
	Parallel int
	// Retries is how many times a failed request is tried again; default
	// DefaultRetries; negative: never.
	Retries int
	// Backoff is the wait before the first retry, doubled for each further
	// one up to MaxBackoff; the wait is drawn between half of it and all.
	Backoff, MaxBackoff time.Duration
	// StallTimeout abandons (and retries) a response that sends nothing for
	// this long; default DefaultStallTimeout.
	StallTimeout time.Duration
	// RootCAs replaces the system's CAs (WithCA adds to these).
	RootCAs *x509.CertPool
	// Log receives retries and downloads; nil discards.
	Log *slog.Logger
}

// Client downloads. It is safe for concurrent use.
type Client struct {
	opts  Options
	http  *http.Client
	roots *x509.CertPool
	sem   chan struct{}
	locks *sync.Map // hex → *sync.Mutex: one download of a file at a time
	stats *counters
}

type counters struct {
	requests, hits, bytes atomic.Int64
}

// Stats count what a Client and the clients derived from it did.
type Stats struct {
	Requests  int64 // HTTP requests sent
	CacheHits int64 // Fetch calls answered from the cache
	Bytes     int64 // body bytes received
}

// New makes a Client.
func New(o Options) (*Client, error) {
	if o.Parallel <= 0 {
		o.Parallel = DefaultParallel
	}
	if o.Retries == 0 {
		o.Retries = DefaultRetries
	}
	if o.Retries < 0 {
		o.Retries = 0
	}
	if o.Backoff <= 0 {
		o.Backoff = DefaultBackoff
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = DefaultMaxBackoff
	}
	if o.StallTimeout <= 0 {
		o.StallTimeout = DefaultStallTimeout
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	roots := o.RootCAs
	if roots == nil {
		var err error
		if roots, err = x509.SystemCertPool(); err != nil {
			return nil, fmt.Errorf("loading the system's CA certificates: %w", err)
		}
	}
	c := &Client{opts: o, roots: roots, sem: make(chan struct{}, o.Parallel), locks: &sync.Map{}, stats: &counters{}}
	c.http = c.newHTTPClient(roots)
	return c, nil
}

func (c *Client) newHTTPClient(roots *x509.CertPool) *http.Client {
	tr := &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		TLSClientConfig:     &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
		ForceAttemptHTTP2:   true,
		MaxIdleConnsPerHost: c.opts.Parallel,
		TLSHandshakeTimeout: 30 * time.Second,
		IdleConnTimeout:     90 * time.Second,
		// Ranges and digests are about the bytes of the file, not of a
		// transparently decompressed body.
		DisableCompression: true,
	}
	return &http.Client{
		Transport: tr,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= 10 {
				return permanent(errors.New("stopped after 10 redirects"))
			}
			if req.URL.Scheme != "https" {
				return permanent(fmt.Errorf("refusing a redirect to %s: only https", req.URL.Redacted()))
			}
			return nil
		},
	}
}

// WithCA returns a client that also trusts the PEM CA certificates in
// pemCerts; it shares the parallelism bound, cache locks and statistics of c.
func (c *Client) WithCA(pemCerts []byte) (*Client, error) {
	roots := c.roots.Clone()
	if !roots.AppendCertsFromPEM(pemCerts) {
		return nil, errors.New("no PEM certificate found in the CA bundle")
	}
	d := *c
	d.roots = roots
	d.http = c.newHTTPClient(roots)
	return &d, nil
}

// Stats returns the counters of c and the clients derived from it.
func (c *Client) Stats() Stats {
	return Stats{Requests: c.stats.requests.Load(), CacheHits: c.stats.hits.Load(), Bytes: c.stats.bytes.Load()}
}

// Close drops idle connections.
func (c *Client) Close() { c.http.CloseIdleConnections() }

// Get returns the content at rawURL, of at most max bytes (an error
// wrapping ErrTooLarge otherwise), retrying as Fetch does. For metadata.
func (c *Client) Get(ctx context.Context, rawURL string, max int64) ([]byte, error) {
	u, err := checkURL(rawURL)
	if err != nil {
		return nil, err
	}
	if u.Scheme == "file" {
		data, err := readLocal(u.Path, max)
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", rawURL, err)
		}
		return data, nil
	}
	var out []byte
	err = c.retry(ctx, rawURL, func(ctx context.Context, attempt int) error {
		resp, release, err := c.do(ctx, u, 0)
		if err != nil {
			return err
		}
		defer release()
		if resp.StatusCode != http.StatusOK {
			return statusErr(resp)
		}
		if resp.ContentLength > max {
			return permanent(fmt.Errorf("%w: %d bytes, at most %d expected", ErrTooLarge, resp.ContentLength, max))
		}
		var buf bytes.Buffer
		n, err := io.Copy(&buf, io.LimitReader(resp.Body, max+1))
		c.stats.bytes.Add(n)
		if err != nil {
			return err
		}
		if n > max {
			return permanent(fmt.Errorf("%w: more than %d bytes", ErrTooLarge, max))
		}
		out = buf.Bytes()
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("downloading %s: %w", rawURL, err)
	}
	return out, nil
}

// Item is one file to Fetch.
type Item struct {
	URL string
	// SHA256 is the hex digest of the content; required.
	SHA256 string
	// Size in bytes, or -1 when unknown: MaxSize then bounds it.
	Size, MaxSize int64
}

// Path is where the cache keeps content with sha256 hexDigest.
func (c *Client) Path(hexDigest string) string {
	return filepath.Join(c.opts.CacheDir, "sha256", hexDigest)
}

// Fetch makes the item's content available in the cache and returns its
// path there. See the package documentation for how.
func (c *Client) Fetch(ctx context.Context, it Item) (string, error) {
	if c.opts.CacheDir == "" {
		return "", errors.New("fetch: no cache directory")
	}
	if len(it.SHA256) != 64 || strings.Trim(it.SHA256, "0123456789abcdef") != "" {
		return "", fmt.Errorf("fetch %s: %q is not a sha256 hex digest", it.URL, it.SHA256)
	}
	if it.Size < 0 && it.MaxSize <= 0 {
		return "", fmt.Errorf("fetch %s: neither size nor a bound given", it.URL)
	}
	u, err := checkURL(it.URL)
	if err != nil {
		return "", err
	}
	final := c.Path(it.SHA256)
	mu, _ := c.locks.LoadOrStore(it.SHA256, &sync.Mutex{})
	mu.(*sync.Mutex).Lock()
	defer mu.(*sync.Mutex).Unlock()
	if ok, err := c.cached(final, it); ok || err != nil {
		return final, err
	}
	if err := os.MkdirAll(filepath.Dir(final), 0o755); err != nil {
		return "", fmt.Errorf("creating cache directory: %w", err)
	}
	part, err := lockPartial(ctx, final+".partial")
	if err != nil {
		return "", err
	}
	defer part.Close()
	// Another process may have finished while we waited for the lock.
	if ok, err := c.cached(final, it); ok || err != nil {
		_ = os.Remove(part.Name())
		return final, err
	}
	if err := c.download(ctx, u, it, part); err != nil {
		if st, serr := part.Stat(); serr == nil && st.Size() == 0 {
			_ = os.Remove(part.Name()) // nothing worth resuming
		}
		return "", fmt.Errorf("downloading %s: %w", it.URL, err)
	}
	if err := part.Sync(); err != nil {
		return "", err
	}
	if err := os.Rename(part.Name(), final); err != nil {
		return "", fmt.Errorf("storing %s in the cache: %w", it.URL, err)
	}
	syncDir(filepath.Dir(final))
	return final, nil
}

// cached reports whether final holds the item's content. A file there that
// does not match (a damaged cache) is removed.
func (c *Client) cached(final string, it Item) (bool, error) {
	f, err := os.Open(final)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("reading the cache: %w", err)
	}
	defer f.Close()
	sum, n, err := fileutil.SHA256Reader(f, final)
	if err == nil && (it.Size < 0 || n == it.Size) && sum == it.SHA256 {
		c.stats.hits.Add(1)
		return true, nil
	}
	c.opts.Log.Warn("removing a damaged cache file", slog.String("file", final))
	if err := os.Remove(final); err != nil {
		return false, fmt.Errorf("removing damaged cache file: %w", err)
	}
	return false, nil
}

// download fills part (locked, possibly holding an earlier partial
// download) with the item and verifies it.
func (c *Client) download(ctx context.Context, u *url.URL, it Item, part *os.File) error {
	limit := it.Size
	if limit < 0 {
		limit = it.MaxSize
	}
	if u.Scheme == "file" {
		return c.copyLocal(u.Path, it, part, limit)
	}
	restarted := false // after a mismatch of a resumed download
	return c.retry(ctx, it.URL, func(ctx context.Context, attempt int) error {
		for {
			resumed, err := c.transfer(ctx, u, it, part, limit)
			if err != nil {
				return err
			}
			err = verify(part, it)
			if err == nil {
				return nil
			}
			if err := part.Truncate(0); err != nil {
				return permanent(err)
			}
			if !resumed || restarted {
				return permanent(err)
			}
			// The part before the resume may be stale (the file changed on
			// the server): start over once from the first byte.
			c.opts.Log.Warn("resumed download does not match; downloading it again from the start", slog.String("url", it.URL))
			restarted = true
		}
	})
}

// transfer makes one request for the rest of the item (from the partial
// file's size on) and appends the body. resumed tells whether the file
// holds bytes from before this request.
func (c *Client) transfer(ctx context.Context, u *url.URL, it Item, part *os.File, limit int64) (resumed bool, err error) {
	st, err := part.Stat()
	if err != nil {
		return false, permanent(err)
	}
	offset := st.Size()
	if offset > limit {
		if err := part.Truncate(0); err != nil {
			return false, permanent(err)
		}
		offset = 0
	}
	if it.Size >= 0 && offset == it.Size {
		return true, nil // complete already; verify decides
	}
	resp, release, err := c.do(ctx, u, offset)
	if err != nil {
		return false, err
	}
	defer release()
	switch {
	case resp.StatusCode == http.StatusOK:
		offset = 0 // a full body: the server ignored (or we sent no) Range
		if it.Size >= 0 && resp.ContentLength >= 0 && resp.ContentLength != it.Size {
			_ = part.Truncate(0)
			return false, permanent(fmt.Errorf("%w: the server sends %d bytes, want %d", ErrMismatch, resp.ContentLength, it.Size))
		}
	case resp.StatusCode == http.StatusPartialContent && offset > 0:
		start, total, ok := parseContentRange(resp.Header.Get("Content-Range"))
		if !ok || start != offset || (it.Size >= 0 && total >= 0 && total != it.Size) {
			// Not the range asked for: start over.
			c.opts.Log.Warn("unexpected Content-Range; restarting the download", slog.String("url", it.URL), slog.String("content-range", resp.Header.Get("Content-Range")))
			if err := part.Truncate(0); err != nil {
				return false, permanent(err)
			}
			return false, errors.New("server answered another range than asked for")
		}
	case resp.StatusCode == http.StatusRequestedRangeNotSatisfiable:
		if err := part.Truncate(0); err != nil {
			return false, permanent(err)
		}
		return false, errors.New("server refused to resume (416)")
	default:
		return false, statusErr(resp)
	}
	if err := part.Truncate(offset); err != nil {
		return false, permanent(err)
	}
	if _, err := part.Seek(offset, io.SeekStart); err != nil {
		return false, permanent(err)
	}
	if resp.ContentLength >= 0 && offset+resp.ContentLength > limit {
		return false, permanent(sizeErr(it, offset+resp.ContentLength))
	}
	n, err := io.Copy(part, io.LimitReader(resp.Body, limit-offset+1))
	c.stats.bytes.Add(n)
	if offset+n > limit {
		_ = part.Truncate(0)
		return false, permanent(sizeErr(it, offset+n))
	}
	if err != nil {
		if ctx.Err() == nil && errors.Is(err, errStalled) {
			return false, err
		}
		return false, fmt.Errorf("after %d bytes: %w", offset+n, err)
	}
	if it.Size >= 0 && offset+n != it.Size {
		return false, fmt.Errorf("the response ended after %d of %d bytes", offset+n, it.Size)
	}
	return offset > 0, nil
}

func sizeErr(it Item, n int64) error {
	if it.Size >= 0 {
		return fmt.Errorf("%w: %d bytes or more, want %d", ErrMismatch, n, it.Size)
	}
	return fmt.Errorf("%w: more than %d bytes", ErrTooLarge, it.MaxSize)
}

// verify checks the whole of part against the item.
func verify(part *os.File, it Item) error {
	if _, err := part.Seek(0, io.SeekStart); err != nil {
		return err
	}
	got, n, err := fileutil.SHA256Reader(part, part.Name())
	if err != nil {
		return err
	}
	if it.Size >= 0 && n != it.Size {
		return fmt.Errorf("%w: %d bytes, want %d", ErrMismatch, n, it.Size)
	}
	if got != it.SHA256 {
		return fmt.Errorf("%w: sha256 is %s, want %s", ErrMismatch, got, it.SHA256)
	}
	return nil
}

func (c *Client) copyLocal(p string, it Item, part *os.File, limit int64) error {
	f, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%w: %v", ErrNotFound, err)
	}
	if err != nil {
		return err
	}
	defer f.Close()
	if err := part.Truncate(0); err != nil {
		return err
	}
	if _, err := part.Seek(0, io.SeekStart); err != nil {
		return err
	}
	n, err := io.Copy(part, io.LimitReader(f, limit+1))
	if err != nil {
		return err
	}
	if n > limit {
		_ = part.Truncate(0)
		return sizeErr(it, n)
	}
	if err := verify(part, it); err != nil {
		_ = part.Truncate(0)
		return err
	}
	return nil
}

func readLocal(p string, max int64) ([]byte, error) {
	f, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %v", ErrNotFound, err)
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > max {
		return nil, fmt.Errorf("%w: more than %d bytes", ErrTooLarge, max)
	}
	return data, nil
}

// checkURL accepts https:// and file:/// URLs only.
func checkURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("fetch: %w", err)
	}
	switch {
	case u.Scheme == "https" && u.Host != "":
	case u.Scheme == "file" && (u.Host == "" || u.Host == "localhost") && strings.HasPrefix(u.Path, "/"):
	default:
		return nil, fmt.Errorf("fetch %s: only https:// and file:/// URLs are fetched", u.Redacted())
	}
	return u, nil
}

// parseContentRange parses "bytes START-END/TOTAL" (TOTAL may be "*": -1).
func parseContentRange(s string) (start, total int64, ok bool) {
	rest, found := strings.CutPrefix(s, "bytes ")
	if !found {
		return 0, 0, false
	}
	rng, tot, found := strings.Cut(rest, "/")
	if !found {
		return 0, 0, false
	}
	a, b, found := strings.Cut(rng, "-")
	if !found {
		return 0, 0, false
	}
	start, err1 := strconv.ParseInt(a, 10, 64)
	end, err2 := strconv.ParseInt(b, 10, 64)
	if err1 != nil || err2 != nil || start < 0 || end < start {
		return 0, 0, false
	}
	total = -1
	if tot != "*" {
		t, err := strconv.ParseInt(tot, 10, 64)
		if err != nil || t <= end {
			return 0, 0, false
		}
		total = t
	}
	return start, total, true
}

func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
}

// FetchAll fetches items, at most Options.Parallel at a time, and returns
// the path of each (or its error) by index. Every item is tried, whatever
// the others do, so the caller can name each failure.
func (c *Client) FetchAll(ctx context.Context, items []Item) ([]string, []error) {
	paths := make([]string, len(items))
	errs := make([]error, len(items))
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(c.opts.Parallel, len(items)) {
		wg.Go(func() {
			for i := range next {
				paths[i], errs[i] = c.Fetch(ctx, items[i])
			}
		})
	}
	for i := range items {
		next <- i
	}
	close(next)
	wg.Wait()
	return paths, errs
}
