package registry

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	digest "github.com/opencontainers/go-digest"
)

// FuzzRouter sends arbitrary methods, request targets and Range headers
// through the handler over a fake Store (see memStore) and checks that it
// never panics (but for the deliberate abort of a failing read), never asks
// the Store about an invalid name, answers writes with 400/404/405/414
// only, gives every 4xx a spec error body, and serves manifests and blobs
// under their true digest.
func FuzzRouter(f *testing.F) {
	s := newMemStore()
	pause := s.addImage("registry.k8s.io/pause", []string{"pause layer"}, "3.10", "latest")
	app := s.addImage("registry.example.com/app", []string{"app layer one", strings.Repeat("x", 5000)}, "1.0")
	s.addIndex("docker.io/library/nginx", nil, "1.27")
	s.addImage("localhost:5000/tool", []string{"tool"}, "v1")
	s.setFailAt(app.layers[1], 1000)
	h := New(s, Options{})

	for _, seed := range []struct{ method, target, rng string }{
		{"GET", "/v2/", ""},
		{"GET", "/v2/registry.k8s.io/pause/manifests/3.10", ""},
		{"HEAD", "/v2/registry.k8s.io/pause/manifests/" + pause.digest.String(), ""},
		{"GET", "/v2/registry.example.com/app/blobs/" + app.layers[0].String(), "bytes=1-3"},
		{"GET", "/v2/registry.example.com/app/blobs/" + app.layers[1].String(), "bytes=900-1100"},
		{"GET", "/v2/registry.example.com/app/blobs/sha256%3A" + app.config.Encoded(), ""},
		{"GET", "/v2/registry.k8s.io/pause/tags/list?n=1&last=3.10", ""},
		{"GET", "/v2/_catalog?n=2&last=a", ""},
		{"GET", "/v2/pause/manifests/3.10?ns=registry.k8s.io", ""},
		{"GET", "/v2/tool/manifests/v1?ns=localhost:5000", ""},
		{"GET", "/v2/library/nginx/manifests/1.27?ns=docker.io", ""},
		{"GET", "/v2/x/manifests/y?ns=%5B::1%5D:5000", ""},
		{"PUT", "/v2/registry.k8s.io/pause/manifests/sha256:totallywrong", ""},
		{"POST", "/v2/a/blobs/uploads/?mount=sha256:00&from=b", ""},
		{"DELETE", "/v2/a/b/blobs/" + app.config.String(), ""},
		{"GET", "/v2/../../etc/passwd/manifests/x", ""},
		{"GET", "/v2/a/%2e%2e/b/blobs/sha256:00", ""},
		{"GET", "/v2/a%2Fb/tags/list", ""},
		{"GET", "/v2/a%00/tags/list", ""},
		{"GET", "/v2//tags/list", ""},
		{"GET", "/v2/a/manifests/.INVALID_MANIFEST_NAME", ""},
		{"GET", "/v2/a/referrers/sha256:00", ""},
		{"OPTIONS", "*", ""},
	} {
		f.Add(seed.method, seed.target, seed.rng)
	}

	f.Fuzz(func(t *testing.T, method, target, rng string) {
		u, err := url.ParseRequestURI(target)
		if err != nil {
			return // net/http answers 400 itself before any handler
		}
		req := &http.Request{Method: method, URL: u, RequestURI: target, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
			Header: http.Header{}, Host: "registry.test", Body: http.NoBody}
		if rng != "" {
			req.Header.Set("Range", rng)
		}
		req = req.WithContext(t.Context())
		rec := httptest.NewRecorder()
		aborted := false
		func() {
			defer func() {
				if p := recover(); p != nil {
					if p != http.ErrAbortHandler {
						t.Fatalf("%s %q: panic: %v", method, target, p)
					}
					aborted = true
				}
			}()
			h.ServeHTTP(rec, req)
		}()
		for _, n := range s.takeAsked() {
			if !validStoreName(n) {
				t.Fatalf("%s %q: the Store was asked about %q", method, target, n)
			}
		}
		if aborted {
			return
		}
		status, body := rec.Code, rec.Body.Bytes()
		switch status {
		case 200, 206, 304, 400, 404, 405, 412, 414, 416:
		default:
			t.Fatalf("%s %q: status %d", method, target, status)
		}
		if method != "GET" && method != "HEAD" && status != 400 && status != 404 && status != 405 && status != 414 {
			t.Fatalf("%s %q: a write got %d", method, target, status)
		}
		if status >= 400 && status != 412 && status != 416 && method != "HEAD" {
			var e struct {
				Errors []struct{ Code, Message string } `json:"errors"`
			}
			if err := json.Unmarshal(body, &e); err != nil || len(e.Errors) != 1 || !specCodes[e.Errors[0].Code] {
				t.Fatalf("%s %q: %d with body %q", method, target, status, body)
			}
		}
		if status == 200 && method == "GET" {
			if d := rec.Header().Get("Docker-Content-Digest"); d != "" && digest.FromBytes(body).String() != d {
				t.Fatalf("%s %q: body does not match Docker-Content-Digest %s", method, target, d)
			}
		}
		if method == "HEAD" && len(body) != 0 {
			t.Fatalf("HEAD %q: body %q", target, body)
		}
		if status == 206 && !bytes.HasPrefix([]byte(rec.Header().Get("Content-Range")), []byte("bytes ")) {
			t.Fatalf("%s %q: 206 without Content-Range", method, target)
		}
	})
}

// specCodes are the error codes of the distribution spec.
var specCodes = map[string]bool{
	"BLOB_UNKNOWN": true, "BLOB_UPLOAD_INVALID": true, "BLOB_UPLOAD_UNKNOWN": true, "DIGEST_INVALID": true,
	"MANIFEST_BLOB_UNKNOWN": true, "MANIFEST_INVALID": true, "MANIFEST_UNKNOWN": true, "NAME_INVALID": true,
	"NAME_UNKNOWN": true, "SIZE_INVALID": true, "UNAUTHORIZED": true, "DENIED": true, "UNSUPPORTED": true,
	"TOOMANYREQUESTS": true,
}
