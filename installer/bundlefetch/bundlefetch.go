package bundlefetch

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ferry-k8s/ferry/bundle/validity"
	"github.com/ferry-k8s/ferry/internal/atomicfile"
	"github.com/ferry-k8s/ferry/internal/fetch"
)

// MaxBundleSize bounds a bundle fetched without a digest.
const MaxBundleSize = 16 << 30

// ValidityTimeout bounds the fetch of a validity statement from one
// service: a statement is a few hundred bytes, and a service that does not
// answer quickly (a dead node) is passed over.
const ValidityTimeout = 30 * time.Second

// Fetcher fetches from the content services.
type Fetcher struct {
	// Services are the content services (host:port), tried in order.
	Services []string
	// CA is the content realm's CA (PEM): the services' certificates are
	// verified with it and nothing else.
	CA []byte
	// Dir receives the downloads, and keeps a partial one to resume.
	Dir string
	// Log receives the downloads and the services passed over; nil
	// discards.
	Log *slog.Logger

	backoff time.Duration // before a retry on the same service (tests)
}

// Bundle is a bundle to fetch.
type Bundle struct {
	// File is its file name under the services' /bundles/.
	File string
	// SHA256 (hex) and Size are its digest and size, when known (a join
	// file names them): the bytes are checked against them. Without, the
	// bundle is bounded by MaxBundleSize only, and its signature is all
	// that vouches for it.
	SHA256 string
	Size   int64
}

// Fetch downloads b from the first service that serves it, into Dir, and
// returns its path: Dir/sha256/<hex> when b's digest is known,
// Dir/<file>.download otherwise. A service that fails is retried a few
// times (not on a 404, a TLS verification failure or a digest mismatch),
// then the next is tried. The caller verifies the bundle in full before
// any use, and removes the file when done with it.
func (f *Fetcher) Fetch(ctx context.Context, b Bundle) (string, error) {
	if err := checkName(b.File); err != nil {
		return "", fmt.Errorf("fetching bundle %s: %w", b.File, err)
	}
	c, err := f.client(0)
	if err != nil {
		return "", err
	}
	defer c.Close()
	log := f.log()
	var errs []error
	for _, s := range f.Services {
		u := serviceURL(s, b.File)
		var p string
		if b.SHA256 != "" {
			log.Info("fetching the bundle", slog.String("url", u), slog.Int64("bytes", b.Size))
			p, err = c.Fetch(ctx, fetch.Item{URL: u, SHA256: b.SHA256, Size: b.Size})
		} else {
			log.Info("fetching the bundle", slog.String("url", u))
			p = filepath.Join(f.Dir, b.File+".download")
			err = c.Download(ctx, u, p, MaxBundleSize)
		}
		if err == nil {
			return p, nil
		}
		if ctx.Err() != nil {
			return "", fmt.Errorf("fetching bundle %s: %w", b.File, err)
		}
		errs = append(errs, fmt.Errorf("%s: %w", u, err))
	}
	if len(errs) == 0 {
		return "", fmt.Errorf("fetching bundle %s: no content service to fetch it from", b.File)
	}
	return "", fmt.Errorf("fetching bundle %s: %w", b.File, errors.Join(errs...))
}

// Validity fetches the validity statement served beside the bundle ISO
// file bundleFile (validity.Beside) from the first service that has one,
// into Dir, and returns its path; "" with no error when none has (a 404,
// or a service that fails: it is passed over with a warning). It is
// checked by whoever uses it.
func (f *Fetcher) Validity(ctx context.Context, bundleFile string) (string, error) {
	name := filepath.Base(validity.Beside(bundleFile))
	if err := checkName(name); err != nil {
		return "", fmt.Errorf("fetching the validity statement of %s: %w", bundleFile, err)
	}
	// Once per service: the next one is the retry.
	c, err := f.client(-1)
	if err != nil {
		return "", err
	}
	defer c.Close()
	log := f.log()
	for _, s := range f.Services {
		u := serviceURL(s, name)
		sctx, cancel := context.WithTimeout(ctx, ValidityTimeout)
		data, err := c.Get(sctx, u, validity.MaxSize)
		cancel()
		switch {
		case errors.Is(err, fetch.ErrNotFound):
			continue
		case err != nil && ctx.Err() != nil:
			return "", fmt.Errorf("fetching the validity statement of %s: %w", bundleFile, ctx.Err())
		case err != nil:
			log.Warn("fetching the validity statement", slog.String("url", u), slog.Any("err", err))
			continue
		}
		if err := os.MkdirAll(f.Dir, 0o755); err != nil {
			return "", fmt.Errorf("fetching the validity statement of %s: %w", bundleFile, err)
		}
		p := filepath.Join(f.Dir, name)
		if err := atomicfile.WriteFile(p, data, 0o644); err != nil {
			return "", fmt.Errorf("fetching the validity statement of %s: %w", bundleFile, err)
		}
		log.Info("fetched the validity statement", slog.String("url", u))
		return p, nil
	}
	return "", nil
}

// client is a fetch client trusting the content CA only; retries as in
// fetch.Options (0: the default, negative: none).
func (f *Fetcher) client(retries int) (*fetch.Client, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(f.CA) {
		return nil, errors.New("the content CA holds no certificate")
	}
	return fetch.New(fetch.Options{CacheDir: f.Dir, RootCAs: pool, Retries: retries, Backoff: f.backoff, Log: f.log()})
}

func (f *Fetcher) log() *slog.Logger {
	if f.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return f.Log
}

// checkName accepts a file name under /bundles/: no directory, nothing
// hidden.
func checkName(name string) error {
	if name == "" || name != filepath.Base(name) || strings.HasPrefix(name, ".") {
		return fmt.Errorf("%q is not a bundle file name", name)
	}
	return nil
}

func serviceURL(service, file string) string {
	return "https://" + service + "/bundles/" + url.PathEscape(file)
}
