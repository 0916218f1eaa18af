package content

import (
	"bytes"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/ferry-k8s/ferry/bundle/validity"
)

// Routes of the handler.
const (
	// KeyPath serves the armored keyring the service trusts (dnf's gpgkey).
	KeyPath = "/keys/ferry.pub.asc"
	// ReposPrefix serves the yum repositories:
	// /repos/<version|latest>/<repo>/<path> and /repos/<version|latest>/ferry.repo.
	ReposPrefix = "/repos/"
	// BundlesPrefix serves the served bundles' ISOs themselves, by file
	// name: /bundles/<name>-<version>.iso (nodes that join fetch it; they
	// verify it in full with their own keyring before any use).
	BundlesPrefix = "/bundles/"
	// RepoFileName is the dnf .repo file under /repos/<version|latest>/.
	RepoFileName = "ferry.repo"
)

// Handler serves every route:
//
//	/v2/…                                  OCI distribution API, pull only (images/registry)
//	/repos/<version|latest>/<repo>/<path>  yum repository files, GET and HEAD, Range
//	/repos/<version|latest>/ferry.repo     dnf .repo file for that bundle's repositories
//	/keys/ferry.pub.asc                    the trusted keyring, armored
//	/bundles/<file>.iso                    a served bundle's ISO, GET and HEAD, Range
//	/healthz                               200 while the process runs
//	/bundles/<file>.validity               the validity statement extending a served bundle, if any
//	/readyz                                200 when bundles are served (expired ones named), else 503
//	/metrics                               Prometheus metrics (when the Service owns the registry)
//
// A path with ".", ".." or empty segments, a backslash or a NUL (encoded or
// not) is answered 400 before routing: nothing here touches a file system
// by path, but a path that needs cleaning is never a legitimate request.
func (s *Service) Handler() http.Handler { return s.handler }

func (s *Service) newHandler() http.Handler {
	reg := s.registryHandler()
	var metricsH http.Handler
	if s.gather != nil {
		metricsH = promhttp.HandlerFor(s.gather, promhttp.HandlerOpts{})
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		route := routeOf(r.URL.Path)
		rw := &countingWriter{ResponseWriter: w}
		start := time.Now()
		s.m.inFlight.Inc()
		defer func() {
			s.m.inFlight.Dec()
			code := strconv.Itoa(rw.code)
			if rw.code == 0 {
				code = "200"
			}
			p := recover()
			if p != nil {
				// An aborted response (http.ErrAbortHandler): the client
				// sees a broken connection or stream, whatever status was sent.
				code = "aborted"
			}
			s.m.requests.WithLabelValues(route, code).Inc()
			s.m.bytes.WithLabelValues(route).Add(float64(rw.n))
			s.log.Debug("request", slog.String("method", r.Method), slog.String("path", r.URL.Path), slog.String("route", route),
				slog.String("code", code), slog.Int64("bytes", rw.n), slog.Duration("took", time.Since(start)), slog.String("remote", r.RemoteAddr))
			if p != nil {
				panic(p)
			}
		}()
		if msg := badPath(r.URL.Path); msg != "" {
			http.Error(rw, msg, http.StatusBadRequest)
			return
		}
		switch {
		case route == "registry-manifests" || route == "registry-blobs" || route == "registry-tags" || route == "registry":
			reg.ServeHTTP(rw, r)
		case route == "healthz":
			if !getOrHead(rw, r) {
				return
			}
			rw.Header().Set("Content-Type", "text/plain; charset=utf-8")
			fmt.Fprintln(rw, "ok")
		case route == "readyz":
			if getOrHead(rw, r) {
				s.serveReady(rw)
			}
		case route == "metrics" && metricsH != nil:
			metricsH.ServeHTTP(rw, r)
		case route == "key":
			if getOrHead(rw, r) {
				rw.Header().Set("Content-Type", "application/pgp-keys")
				rw.Header().Set("Content-Length", strconv.Itoa(len(s.armored)))
				if r.Method != http.MethodHead {
					rw.Write(s.armored)
				}
			}
		case route == "bundle":
			if getOrHead(rw, r) {
				s.serveISO(rw, r, strings.TrimPrefix(r.URL.Path, BundlesPrefix))
			}
		case route == "repo-file" || route == "yum":
			if getOrHead(rw, r) {
				s.serveRepos(rw, r, strings.TrimPrefix(r.URL.Path, ReposPrefix))
			}
		default:
			http.NotFound(rw, r)
		}
	})
}

// routeOf names the route of a path, for metrics labels (a small fixed set).
func routeOf(p string) string {
	switch {
	case p == "/healthz":
		return "healthz"
	case p == "/readyz":
		return "readyz"
	case p == "/metrics":
		return "metrics"
	case p == KeyPath:
		return "key"
	case strings.HasPrefix(p, BundlesPrefix):
		return "bundle"
	case strings.HasPrefix(p, ReposPrefix):
		if strings.HasSuffix(p, "/"+RepoFileName) && strings.Count(p, "/") == 3 {
			return "repo-file"
		}
		return "yum"
	case p == "/v2" || strings.HasPrefix(p, "/v2/"):
		switch {
		case strings.Contains(p, "/manifests/"):
			return "registry-manifests"
		case strings.Contains(p, "/blobs/"):
			return "registry-blobs"
		case strings.HasSuffix(p, "/tags/list"):
			return "registry-tags"
		}
		return "registry"
	}
	return "other"
}

// badPath says what is wrong with a request path that no legitimate client
// sends, or "".
func badPath(p string) string {
	if !strings.HasPrefix(p, "/") {
		return "path must be absolute"
	}
	if strings.ContainsAny(p, "\x00\\") {
		return "path contains a NUL or a backslash"
	}
	segs := strings.Split(p[1:], "/")
	for i, seg := range segs {
		switch {
		case seg == "." || seg == "..":
			return "path contains a . or .. segment"
		case seg == "" && i != len(segs)-1:
			return "path contains an empty segment"
		}
		for _, c := range seg {
			if c < 0x20 || c == 0x7f {
				return "path contains a control character"
			}
		}
	}
	return ""
}

func getOrHead(w http.ResponseWriter, r *http.Request) bool {
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		return true
	}
	w.Header().Set("Allow", "GET, HEAD")
	http.Error(w, "method not allowed: this service is read-only", http.StatusMethodNotAllowed)
	return false
}

// serveReady answers 200 when at least one bundle is served, 503 with the
// reason otherwise. A bundle past its validity does not fail readiness
// (it is installed and served); a line names it.
func (s *Service) serveReady(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	bs := s.cur.Load().bundles
	now := s.now()
	if len(bs) == 0 {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintln(w, "not ready: no bundle is served")
		return
	}
	fmt.Fprintf(w, "ok: serving %d bundle(s): %s\n", len(bs), servedVersions(bs))
	for _, b := range bs {
		if !now.Before(b.info.ValidUntil) {
			fmt.Fprintf(w, "warning: bundle %s %s (%s): validity ended at %s; served as installed, but no node can join or upgrade to it until it is extended\n",
				b.info.Name, b.info.Version, b.info.Path, b.info.ValidUntil.Format(time.RFC3339))
		}
	}
}

// countingWriter records the status code and the body bytes written.
type countingWriter struct {
	http.ResponseWriter
	code int
	n    int64
}

func (w *countingWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *countingWriter) Write(p []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(p)
	w.n += int64(n)
	return n, err
}

// Unwrap lets http.ResponseController reach the connection (flush, deadlines).
func (w *countingWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Flush implements http.Flusher for handlers that test for it.
func (w *countingWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// serveISO serves the ISO of a served bundle by its file name.
func (s *Service) serveISO(w http.ResponseWriter, r *http.Request, name string) {
	if strings.HasSuffix(name, validity.Ext) {
		for _, b := range s.cur.Load().bundles {
			if filepath.Base(validity.Beside(b.info.Path)) == name && b.validity != nil {
				w.Header().Set("Content-Type", "text/plain; charset=utf-8")
				http.ServeContent(w, r, name, b.info.Verified, bytes.NewReader(b.validity))
				return
			}
		}
		http.NotFound(w, r)
		return
	}
	for _, b := range s.cur.Load().bundles {
		if filepath.Base(b.info.Path) != name {
			continue
		}
		f, err := os.Open(b.info.Path)
		if err != nil {
			s.log.Error("opening a served ISO", slog.String("path", b.info.Path), slog.Any("err", err))
			http.Error(w, "bundle unavailable", http.StatusServiceUnavailable)
			return
		}
		defer f.Close()
		fi, err := f.Stat()
		if err != nil {
			http.Error(w, "bundle unavailable", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		http.ServeContent(w, r, name, fi.ModTime(), f)
		return
	}
	http.NotFound(w, r)
}
