package registry

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	digest "github.com/opencontainers/go-digest"
)

// Options configures the handler. The zero value is usable.
type Options struct {
	// Log receives one record per failed read of content and per Store
	// error (nil: discard).
	Log *slog.Logger
	// OnReadError is called when reading a manifest or blob fails after the
	// response has begun (the content no longer matches what was verified,
	// or the medium failed); the response is then aborted.
	OnReadError func(repo string, d digest.Digest, err error)
	// OnRequest is called once per request, after the response, with its
	// route (RouteBase, RouteManifest, …), status, body bytes written and
	// duration. An aborted transfer reports the status already sent.
	OnRequest func(route string, status int, bytes int64, d time.Duration)
}

// New returns the pull-only OCI distribution API (spec v1.1) over store:
//
//	GET        /v2/                              {} (API version check)
//	GET, HEAD  /v2/<name>/manifests/<reference>  tag or sha256 digest
//	GET, HEAD  /v2/<name>/blobs/<digest>         Range requests answered
//	GET        /v2/<name>/tags/list              ?n=&last= pagination, Link
//	GET        /v2/_catalog                      ?n=&last= pagination, Link
//
// Every other method on a /v2 path gets 405 UNSUPPORTED, unless the path
// itself is malformed (bad name, digest or encoding: 400 first). A ns query
// parameter (containerd's mirror requests, ns=<upstream host>) makes
// <name> be looked up as <ns>/<name> first, then as <name>.
//
// Manifests are served with their stored media type whatever the Accept
// header says: the registry never converts, and a client that cannot use
// the type rejects it, as with any registry that cannot convert.
//
// Mount the handler at the root of a server (or under a ServeMux pattern
// "/v2/"): it reads the raw request path itself.
func New(store Store, opts Options) http.Handler {
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	return &handler{store: store, opts: opts}
}

type handler struct {
	store Store
	opts  Options
}

func (h *handler) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	start := time.Now()
	w := &countingWriter{ResponseWriter: rw, head: r.Method == http.MethodHead}
	req, perr := parse(r)
	if h.opts.OnRequest != nil {
		// Deferred so that it also runs when the response is aborted.
		defer func() { h.opts.OnRequest(req.route, w.status, w.bytes, time.Since(start)) }()
	}
	w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
	if perr != nil {
		perr.write(w, r)
		return
	}
	if req.write {
		errMethod().write(w, r)
		return
	}
	ctx := r.Context()
	switch {
	case req.unknownShape:
		errNotFound(codeUnsupported, "no such endpoint in this registry").write(w, r)
	case req.route == RouteBase:
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", "2")
		w.WriteHeader(http.StatusOK)
		if r.Method != http.MethodHead {
			_, _ = io.WriteString(w, "{}")
		}
	case req.route == RouteCatalog:
		h.catalog(ctx, w, r, req)
	case req.route == RouteTags:
		h.tags(ctx, w, r, req)
	case req.route == RouteManifest:
		h.manifest(ctx, w, r, req)
	case req.route == RouteBlob:
		h.blob(ctx, w, r, req)
	default:
		errNotFound(codeUnsupported, "no such endpoint in this registry").write(w, r)
	}
}

// inRepo calls fn with the repository the request names: <ns>/<name> first
// when ns is set, then <name>, moving on only when fn reports the
// repository unknown.
func inRepo(req *request, fn func(repo string) error) error {
	if req.ns != "" {
		if err := fn(req.ns + "/" + req.name); !errors.Is(err, ErrNameUnknown) {
			return err
		}
	}
	return fn(req.name)
}

// storeError maps a Store error to a response, logging the unexpected.
func (h *handler) storeError(err error, req *request, what string) *apiError {
	switch {
	case errors.Is(err, ErrNameUnknown):
		return errNotFound(codeNameUnknown, "repository name not known to registry")
	case errors.Is(err, ErrManifestUnknown):
		return errNotFound(codeManifestUnknown, "manifest unknown")
	case errors.Is(err, ErrBlobUnknown):
		return errNotFound(codeBlobUnknown, "blob unknown to registry")
	case errors.Is(err, context.Canceled):
		return errInternal() // the client has gone; nobody reads this
	}
	h.opts.Log.Error("registry: store failed", "op", what, "name", req.name, "ns", req.ns, "error", err)
	return errInternal()
}

func (h *handler) manifest(ctx context.Context, w http.ResponseWriter, r *http.Request, req *request) {
	if req.badTag {
		errNotFound(codeManifestUnknown, "manifest unknown").write(w, r)
		return
	}
	ref := req.tag
	if ref == "" {
		ref = req.digest.String()
	}
	var (
		repo string
		desc Descriptor
	)
	err := inRepo(req, func(name string) error {
		d, err := h.store.Resolve(ctx, name, ref)
		if err == nil {
			repo, desc = name, d
		}
		return err
	})
	if err != nil {
		h.storeError(err, req, "resolve").write(w, r)
		return
	}
	if req.digest != "" && desc.Digest != req.digest {
		errNotFound(codeManifestUnknown, "manifest unknown").write(w, r)
		return
	}
	c, cdesc, err := h.store.Open(ctx, repo, desc.Digest)
	if err != nil {
		if errors.Is(err, ErrBlobUnknown) { // resolved but not openable: say so in manifest terms
			err = ErrManifestUnknown
		}
		h.storeError(err, req, "open manifest").write(w, r)
		return
	}
	defer c.Close()
	if !h.sameContent(repo, desc, cdesc) {
		errInternal().write(w, r)
		return
	}
	mediaType := desc.MediaType
	if mediaType == "" {
		mediaType = cdesc.MediaType
	}
	h.serve(w, r, repo, desc.Digest, mediaType, c)
}

func (h *handler) blob(ctx context.Context, w http.ResponseWriter, r *http.Request, req *request) {
	var (
		repo  string
		c     Content
		cdesc Descriptor
	)
	err := inRepo(req, func(name string) error {
		cc, d, err := h.store.Open(ctx, name, req.digest)
		if err == nil {
			repo, c, cdesc = name, cc, d
		}
		return err
	})
	if err != nil {
		h.storeError(err, req, "open blob").write(w, r)
		return
	}
	defer c.Close()
	if !h.sameContent(repo, Descriptor{Digest: req.digest}, cdesc) {
		errInternal().write(w, r)
		return
	}
	w.Header().Set("Accept-Ranges", "bytes")
	h.serve(w, r, repo, req.digest, "application/octet-stream", c)
}

// sameContent checks that the Store opened what was asked for (a Store
// bug otherwise: better a 500 than a body under the wrong digest).
func (h *handler) sameContent(repo string, want, got Descriptor) bool {
	if got.Digest != "" && got.Digest != want.Digest || want.Size != 0 && got.Size != 0 && got.Size != want.Size {
		h.opts.Log.Error("registry: store opened other content", "repo", repo, "want", want.Digest, "got", got.Digest,
			"want_size", want.Size, "got_size", got.Size)
		return false
	}
	return true
}

// serve streams c with http.ServeContent (Range, If-None-Match, HEAD).
// ServeContent ignores errors while copying, so reads go through a reader
// that keeps the first error; if there was one the response is aborted
// (the client sees a broken transfer, never a complete wrong body).
func (h *handler) serve(w http.ResponseWriter, r *http.Request, repo string, d digest.Digest, mediaType string, c Content) {
	hdr := w.Header()
	hdr.Set("Docker-Content-Digest", d.String())
	hdr.Set("Content-Type", mediaType)
	hdr.Set("ETag", `"`+d.String()+`"`)
	hdr.Set("X-Content-Type-Options", "nosniff")
	if strings.Contains(r.Header.Get("Range"), ",") {
		// Multiple ranges: ServeContent would read c from another goroutine
		// that may outlive this call; answer with the whole content instead,
		// as RFC 9110 allows.
		r.Header.Del("Range")
	}
	rd := &errReader{c: c}
	http.ServeContent(w, r, "", time.Time{}, rd)
	if rd.err != nil {
		h.opts.Log.Warn("registry: reading content failed; response aborted", "repo", repo, "digest", d.String(), "error", rd.err)
		if h.opts.OnReadError != nil {
			h.opts.OnReadError(repo, d, rd.err)
		}
		panic(http.ErrAbortHandler)
	}
}

// errReader remembers the first read error of a Content.
type errReader struct {
	c   Content
	err error
}

func (e *errReader) Read(p []byte) (int, error) {
	n, err := e.c.Read(p)
	if err != nil && err != io.EOF && e.err == nil {
		e.err = err
	}
	return n, err
}

func (e *errReader) Seek(offset int64, whence int) (int64, error) { return e.c.Seek(offset, whence) }

func (h *handler) tags(ctx context.Context, w http.ResponseWriter, r *http.Request, req *request) {
	var tags []string
	err := inRepo(req, func(name string) error {
		t, err := h.store.Tags(ctx, name)
		if err == nil {
			tags = t
		}
		return err
	})
	if err != nil {
		h.storeError(err, req, "tags").write(w, r)
		return
	}
	page, more := paginate(tags, req.n, req.last)
	if more {
		q := url.Values{"n": {strconv.Itoa(req.n)}, "last": {page[len(page)-1]}}
		if req.ns != "" {
			q.Set("ns", req.ns)
		}
		w.Header().Set("Link", `</v2/`+req.name+`/tags/list?`+q.Encode()+`>; rel="next"`)
	}
	writeJSON(w, r, struct {
		Name string   `json:"name"`
		Tags []string `json:"tags"`
	}{req.name, page})
}

func (h *handler) catalog(ctx context.Context, w http.ResponseWriter, r *http.Request, req *request) {
	repos, err := h.store.Repositories(ctx)
	if err != nil {
		h.storeError(err, req, "repositories").write(w, r)
		return
	}
	page, more := paginate(repos, req.n, req.last)
	if more {
		q := url.Values{"n": {strconv.Itoa(req.n)}, "last": {page[len(page)-1]}}
		w.Header().Set("Link", `</v2/_catalog?`+q.Encode()+`>; rel="next"`)
	}
	writeJSON(w, r, struct {
		Repositories []string `json:"repositories"`
	}{page})
}

// paginate returns at most n items of the sorted list after last, and
// whether more follow. The result is never nil (JSON [] rather than null).
func paginate(list []string, n int, last string) ([]string, bool) {
	start := 0
	if last != "" {
		for start < len(list) && list[start] <= last {
			start++
		}
	}
	rest := list[start:]
	if len(rest) > n {
		return append([]string{}, rest[:n]...), n > 0
	}
	return append([]string{}, rest...), false
}

func writeJSON(w http.ResponseWriter, r *http.Request, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		errInternal().write(w, r)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(body)
	}
}

// countingWriter records the status and body bytes of a response, and
// drops any body of a response to HEAD (http.ServeContent writes its error
// texts even then; a server would drop them too, but not a recorder).
type countingWriter struct {
	http.ResponseWriter
	head   bool
	status int
	bytes  int64
}

func (w *countingWriter) WriteHeader(code int) {
	if w.status == 0 && code >= 200 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *countingWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	if w.head {
		return len(p), nil
	}
	n, err := w.ResponseWriter.Write(p)
	w.bytes += int64(n)
	return n, err
}

// Unwrap lets http.ResponseController reach the server's writer.
func (w *countingWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
