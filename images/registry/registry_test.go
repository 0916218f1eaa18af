package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	digest "github.com/opencontainers/go-digest"
	imgspecv1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// fixture is a memStore with a few repositories, served over HTTP.
type fixture struct {
	store *memStore
	srv   *httptest.Server
	pause fakeImage // registry.k8s.io/pause:3.10
	app   fakeImage // registry.example.com/app:1.0
	amd   fakeImage // docker.io/library/nginx, child of the index
	index []byte    // docker.io/library/nginx:1.27
	dIdx  digest.Digest
	big   digest.Digest // a 100 000-byte layer of app
	bigB  []byte
	local fakeImage // localhost:5000/tool:v1 (only reachable through ns=)

	mu       sync.Mutex
	requests []requestRecord
}

type requestRecord struct {
	route  string
	status int
	bytes  int64
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{store: newMemStore()}
	s := f.store
	f.pause = s.addImage("registry.k8s.io/pause", []string{"pause layer"}, "3.10", "latest")
	big := bytes.Repeat([]byte("0123456789"), 10000)
	f.app = s.addImage("registry.example.com/app", []string{"app layer one", string(big)}, "1.0")
	f.big, f.bigB = digest.FromBytes(big), big
	for i := range 25 { // for pagination
		s.repo("registry.example.com/app").tags[fmt.Sprintf("t%02d", i)] = f.app.digest
	}
	f.amd = s.addImage("docker.io/library/nginx", []string{"nginx amd64"})
	arm := s.addImage("docker.io/library/nginx", []string{"nginx arm64"})
	f.index, f.dIdx = s.addIndex("docker.io/library/nginx", []fakeImage{f.amd, arm}, "1.27")
	f.local = s.addImage("localhost:5000/tool", []string{"tool"}, "v1")
	s.addImage("a/b", []string{"ab"}, "x")
	f.srv = httptest.NewServer(New(s, Options{
		OnRequest: func(route string, status int, n int64, _ time.Duration) {
			f.mu.Lock()
			f.requests = append(f.requests, requestRecord{route, status, n})
			f.mu.Unlock()
		},
	}))
	t.Cleanup(f.srv.Close)
	t.Cleanup(func() {
		for _, n := range s.askedNames() {
			if !validStoreName(n) {
				t.Errorf("the Store was asked about %q, which is not a valid name", n)
			}
		}
	})
	return f
}

// call is one HTTP exchange of a table and what must come back.
type call struct {
	name    string
	method  string // GET when empty
	path    string // raw request target, sent as is
	header  map[string]string
	body    string // request body (writes)
	status  int
	code    string            // error code expected in the JSON body
	headers map[string]string // response headers expected ("" = must be absent)
	want    []byte            // exact body expected (nil: not checked)
	json    string            // body expected as JSON (compared after decoding)
}

func (f *fixture) do(t *testing.T, c call) {
	t.Helper()
	method := c.method
	if method == "" {
		method = http.MethodGet
	}
	req, err := http.NewRequest(method, f.srv.URL+c.path, strings.NewReader(c.body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range c.header {
		req.Header.Set(k, v)
	}
	resp, err := f.srv.Client().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, c.path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", method, c.path, err)
	}
	if resp.StatusCode != c.status {
		t.Errorf("%s %s: status %d, want %d (body %.300s)", method, c.path, resp.StatusCode, c.status, body)
	}
	for k, v := range c.headers {
		if got := resp.Header.Get(k); got != v {
			t.Errorf("%s %s: %s: %q, want %q", method, c.path, k, got, v)
		}
	}
	if method == http.MethodHead && len(body) != 0 {
		t.Errorf("HEAD %s: %d bytes of body", c.path, len(body))
	}
	if c.want != nil && !bytes.Equal(body, c.want) {
		t.Errorf("%s %s: body %.200q, want %.200q", method, c.path, body, c.want)
	}
	if c.json != "" {
		var got, want any
		if err := json.Unmarshal(body, &got); err != nil {
			t.Errorf("%s %s: body is not JSON: %v: %.200s", method, c.path, err, body)
		}
		if err := json.Unmarshal([]byte(c.json), &want); err != nil {
			t.Fatal(err)
		}
		if g, w := fmt.Sprint(got), fmt.Sprint(want); g != w {
			t.Errorf("%s %s: body %s, want %s", method, c.path, g, w)
		}
	}
	if c.code != "" {
		if method == http.MethodHead {
			t.Fatalf("bad test: HEAD %s cannot check a code", c.path)
		}
		if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("%s %s: error Content-Type %q", method, c.path, ct)
		}
		if got := errorCode(t, body); got != c.code {
			t.Errorf("%s %s: error code %q, want %q (body %.300s)", method, c.path, got, c.code, body)
		}
	}
	if resp.StatusCode >= 400 && method != http.MethodHead && resp.StatusCode < 500 && resp.StatusCode != http.StatusRequestedRangeNotSatisfiable {
		errorCode(t, body) // every 4xx but 416 has a spec error body
	}
}

// errorCode decodes a spec error body and returns its first code.
func errorCode(t *testing.T, body []byte) string {
	t.Helper()
	var e struct {
		Errors []struct {
			Code    string          `json:"code"`
			Message string          `json:"message"`
			Detail  json.RawMessage `json:"detail"`
		} `json:"errors"`
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil || len(e.Errors) == 0 {
		t.Errorf("not a spec error body (%v): %.300s", err, body)
		return ""
	}
	return e.Errors[0].Code
}

func TestEndpoints(t *testing.T) {
	f := newFixture(t)
	pause, app := f.pause, f.app
	mt := imgspecv1.MediaTypeImageManifest
	manifestHeaders := func(m fakeImage) map[string]string {
		return map[string]string{"Content-Type": mt, "Docker-Content-Digest": m.digest.String(),
			"Content-Length": fmt.Sprint(len(m.manifest)), "ETag": `"` + m.digest.String() + `"`,
			"Docker-Distribution-API-Version": "registry/2.0"}
	}
	blobHeaders := func(d digest.Digest, n int) map[string]string {
		return map[string]string{"Content-Type": "application/octet-stream", "Docker-Content-Digest": d.String(),
			"Content-Length": fmt.Sprint(n), "Accept-Ranges": "bytes"}
	}
	layer := app.layers[0]
	unknown := digest.FromString("nothing")
	sha512 := digest.SHA512.FromString("x")
	for _, c := range []call{
		// base
		{name: "base", path: "/v2/", status: 200, want: []byte("{}"),
			headers: map[string]string{"Docker-Distribution-API-Version": "registry/2.0", "Content-Type": "application/json"}},
		{name: "base without slash", path: "/v2", status: 200, want: []byte("{}")},
		{name: "base HEAD", method: "HEAD", path: "/v2/", status: 200},

		// manifests
		{name: "manifest by tag", path: "/v2/registry.k8s.io/pause/manifests/3.10", status: 200, want: pause.manifest, headers: manifestHeaders(pause)},
		{name: "manifest by digest", path: "/v2/registry.k8s.io/pause/manifests/" + pause.digest.String(), status: 200, want: pause.manifest, headers: manifestHeaders(pause)},
		{name: "manifest digest with escaped colon", path: "/v2/registry.k8s.io/pause/manifests/sha256%3A" + pause.digest.Encoded(), status: 200, want: pause.manifest},
		{name: "manifest HEAD by tag", method: "HEAD", path: "/v2/registry.k8s.io/pause/manifests/latest", status: 200, headers: manifestHeaders(pause)},
		{name: "manifest HEAD by digest", method: "HEAD", path: "/v2/registry.k8s.io/pause/manifests/" + pause.digest.String(), status: 200, headers: manifestHeaders(pause)},
		{name: "index", path: "/v2/docker.io/library/nginx/manifests/1.27", status: 200, want: f.index,
			headers: map[string]string{"Content-Type": imgspecv1.MediaTypeImageIndex, "Docker-Content-Digest": f.dIdx.String()}},
		{name: "child of index by digest", path: "/v2/docker.io/library/nginx/manifests/" + f.amd.digest.String(), status: 200, want: f.amd.manifest},
		{name: "Accept not matching: stored type all the same", path: "/v2/registry.k8s.io/pause/manifests/3.10",
			header: map[string]string{"Accept": "application/vnd.docker.distribution.manifest.v2+json"}, status: 200, want: pause.manifest,
			headers: map[string]string{"Content-Type": mt}},
		{name: "If-None-Match", path: "/v2/registry.k8s.io/pause/manifests/3.10",
			header: map[string]string{"If-None-Match": `"` + pause.digest.String() + `"`}, status: 304},
		{name: "unknown tag", path: "/v2/registry.k8s.io/pause/manifests/9.99", status: 404, code: "MANIFEST_UNKNOWN"},
		{name: "unknown tag HEAD", method: "HEAD", path: "/v2/registry.k8s.io/pause/manifests/9.99", status: 404},
		{name: "unknown digest", path: "/v2/registry.k8s.io/pause/manifests/" + unknown.String(), status: 404, code: "MANIFEST_UNKNOWN"},
		{name: "manifest of another repo", path: "/v2/registry.k8s.io/pause/manifests/" + app.digest.String(), status: 404, code: "MANIFEST_UNKNOWN"},
		{name: "blob digest as manifest", path: "/v2/registry.k8s.io/pause/manifests/" + pause.config.String(), status: 404, code: "MANIFEST_UNKNOWN"},
		{name: "impossible tag", path: "/v2/registry.k8s.io/pause/manifests/.INVALID_MANIFEST_NAME", status: 404, code: "MANIFEST_UNKNOWN"},
		{name: "tag too long", path: "/v2/registry.k8s.io/pause/manifests/" + strings.Repeat("a", 129), status: 404, code: "MANIFEST_UNKNOWN"},
		{name: "malformed digest", path: "/v2/registry.k8s.io/pause/manifests/sha256:totallywrong", status: 400, code: "DIGEST_INVALID"},
		{name: "sha512 digest", path: "/v2/registry.k8s.io/pause/manifests/" + sha512.String(), status: 400, code: "DIGEST_INVALID"},
		{name: "unknown algorithm", path: "/v2/registry.k8s.io/pause/manifests/md5:0123", status: 400, code: "DIGEST_INVALID"},
		{name: "unknown repository", path: "/v2/registry.k8s.io/nope/manifests/3.10", status: 404, code: "NAME_UNKNOWN"},

		// blobs
		{name: "blob", path: "/v2/registry.example.com/app/blobs/" + layer.String(), status: 200, want: []byte("app layer one"), headers: blobHeaders(layer, 13)},
		{name: "big blob", path: "/v2/registry.example.com/app/blobs/" + f.big.String(), status: 200, want: f.bigB, headers: blobHeaders(f.big, len(f.bigB))},
		{name: "config blob", path: "/v2/registry.example.com/app/blobs/" + app.config.String(), status: 200},
		{name: "manifest as blob", path: "/v2/registry.example.com/app/blobs/" + app.digest.String(), status: 200, want: app.manifest,
			headers: map[string]string{"Content-Type": "application/octet-stream"}},
		{name: "blob HEAD", method: "HEAD", path: "/v2/registry.example.com/app/blobs/" + f.big.String(), status: 200, headers: blobHeaders(f.big, len(f.bigB))},
		{name: "blob range", path: "/v2/registry.example.com/app/blobs/" + layer.String(), header: map[string]string{"Range": "bytes=4-8"},
			status: 206, want: []byte("layer"), headers: map[string]string{"Content-Range": "bytes 4-8/13", "Content-Length": "5", "Docker-Content-Digest": layer.String()}},
		{name: "blob suffix range", path: "/v2/registry.example.com/app/blobs/" + layer.String(), header: map[string]string{"Range": "bytes=-3"},
			status: 206, want: []byte("one"), headers: map[string]string{"Content-Range": "bytes 10-12/13"}},
		{name: "blob open range", path: "/v2/registry.example.com/app/blobs/" + f.big.String(), header: map[string]string{"Range": "bytes=99990-"},
			status: 206, want: []byte("0123456789"), headers: map[string]string{"Content-Range": "bytes 99990-99999/100000"}},
		{name: "blob range not satisfiable", path: "/v2/registry.example.com/app/blobs/" + layer.String(), header: map[string]string{"Range": "bytes=13-20"},
			status: 416, headers: map[string]string{"Content-Range": "bytes */13"}},
		{name: "multiple ranges: whole blob", path: "/v2/registry.example.com/app/blobs/" + layer.String(), header: map[string]string{"Range": "bytes=0-1,4-5"},
			status: 200, want: []byte("app layer one")},
		{name: "If-Range matching", path: "/v2/registry.example.com/app/blobs/" + layer.String(),
			header: map[string]string{"Range": "bytes=0-2", "If-Range": `"` + layer.String() + `"`}, status: 206, want: []byte("app")},
		{name: "If-Range not matching", path: "/v2/registry.example.com/app/blobs/" + layer.String(),
			header: map[string]string{"Range": "bytes=0-2", "If-Range": `"sha256:other"`}, status: 200, want: []byte("app layer one")},
		{name: "unknown blob", path: "/v2/registry.example.com/app/blobs/" + unknown.String(), status: 404, code: "BLOB_UNKNOWN"},
		{name: "unknown blob HEAD", method: "HEAD", path: "/v2/registry.example.com/app/blobs/" + unknown.String(), status: 404},
		{name: "blob of another repo", path: "/v2/registry.k8s.io/pause/blobs/" + layer.String(), status: 404, code: "BLOB_UNKNOWN"},
		{name: "blob in unknown repo", path: "/v2/nope/blobs/" + layer.String(), status: 404, code: "NAME_UNKNOWN"},
		{name: "blob malformed digest", path: "/v2/registry.example.com/app/blobs/sha256:abc", status: 400, code: "DIGEST_INVALID"},
		{name: "blob sha512", path: "/v2/registry.example.com/app/blobs/" + sha512.String(), status: 400, code: "DIGEST_INVALID"},
		{name: "blob by tag", path: "/v2/registry.example.com/app/blobs/1.0", status: 400, code: "DIGEST_INVALID"},

		// tags
		{name: "tags", path: "/v2/registry.k8s.io/pause/tags/list", status: 200, json: `{"name":"registry.k8s.io/pause","tags":["3.10","latest"]}`,
			headers: map[string]string{"Content-Type": "application/json", "Link": ""}},
		{name: "tags n=1", path: "/v2/registry.k8s.io/pause/tags/list?n=1", status: 200, json: `{"name":"registry.k8s.io/pause","tags":["3.10"]}`,
			headers: map[string]string{"Link": `</v2/registry.k8s.io/pause/tags/list?last=3.10&n=1>; rel="next"`}},
		{name: "tags n=1 last", path: "/v2/registry.k8s.io/pause/tags/list?n=1&last=3.10", status: 200, json: `{"name":"registry.k8s.io/pause","tags":["latest"]}`,
			headers: map[string]string{"Link": ""}},
		{name: "tags last only", path: "/v2/registry.k8s.io/pause/tags/list?last=3.10", status: 200, json: `{"name":"registry.k8s.io/pause","tags":["latest"]}`},
		{name: "tags last past the end", path: "/v2/registry.k8s.io/pause/tags/list?last=zzz", status: 200, json: `{"name":"registry.k8s.io/pause","tags":[]}`},
		{name: "tags n=0", path: "/v2/registry.k8s.io/pause/tags/list?n=0", status: 200, json: `{"name":"registry.k8s.io/pause","tags":[]}`,
			headers: map[string]string{"Link": ""}},
		{name: "tags n huge is clamped", path: "/v2/registry.k8s.io/pause/tags/list?n=1000000", status: 200, json: `{"name":"registry.k8s.io/pause","tags":["3.10","latest"]}`},
		{name: "tags n negative", path: "/v2/registry.k8s.io/pause/tags/list?n=-1", status: 400, code: "UNSUPPORTED"},
		{name: "tags n not a number", path: "/v2/registry.k8s.io/pause/tags/list?n=ten", status: 400, code: "UNSUPPORTED"},
		{name: "tags n overflowing", path: "/v2/registry.k8s.io/pause/tags/list?n=99999999999999999999", status: 400, code: "UNSUPPORTED"},
		{name: "tags n twice", path: "/v2/registry.k8s.io/pause/tags/list?n=1&n=2", status: 400, code: "UNSUPPORTED"},
		{name: "tags malformed query", path: "/v2/registry.k8s.io/pause/tags/list?n=%zz", status: 400, code: "UNSUPPORTED"},
		{name: "tags unknown repo", path: "/v2/registry.k8s.io/nope/tags/list", status: 404, code: "NAME_UNKNOWN"},
		{name: "tags HEAD", method: "HEAD", path: "/v2/registry.k8s.io/pause/tags/list", status: 200},

		// catalog
		{name: "catalog", path: "/v2/_catalog", status: 200,
			json: `{"repositories":["a/b","docker.io/library/nginx","localhost:5000/tool","registry.example.com/app","registry.k8s.io/pause"]}`},
		{name: "catalog n=2", path: "/v2/_catalog?n=2", status: 200, json: `{"repositories":["a/b","docker.io/library/nginx"]}`,
			headers: map[string]string{"Link": `</v2/_catalog?last=docker.io%2Flibrary%2Fnginx&n=2>; rel="next"`}},
		{name: "catalog n=2 last", path: "/v2/_catalog?n=2&last=docker.io%2Flibrary%2Fnginx", status: 200,
			json:    `{"repositories":["localhost:5000/tool","registry.example.com/app"]}`,
			headers: map[string]string{"Link": `</v2/_catalog?last=registry.example.com%2Fapp&n=2>; rel="next"`}},
		{name: "catalog last page", path: "/v2/_catalog?n=2&last=registry.example.com%2Fapp", status: 200,
			json: `{"repositories":["registry.k8s.io/pause"]}`, headers: map[string]string{"Link": ""}},
		{name: "catalog n=0", path: "/v2/_catalog?n=0", status: 200, json: `{"repositories":[]}`, headers: map[string]string{"Link": ""}},
		{name: "catalog n bad", path: "/v2/_catalog?n=1.5", status: 400, code: "UNSUPPORTED"},

		// containerd mirror requests (hosts.toml), ns=<upstream>
		{name: "ns manifest", path: "/v2/pause/manifests/3.10?ns=registry.k8s.io", status: 200, want: pause.manifest, headers: manifestHeaders(pause)},
		{name: "ns manifest HEAD", method: "HEAD", path: "/v2/pause/manifests/3.10?ns=registry.k8s.io", status: 200, headers: manifestHeaders(pause)},
		{name: "ns blob", path: "/v2/app/blobs/" + layer.String() + "?ns=registry.example.com", status: 200, want: []byte("app layer one")},
		{name: "ns docker.io", path: "/v2/library/nginx/manifests/1.27?ns=docker.io", status: 200, want: f.index},
		{name: "ns with port", path: "/v2/tool/manifests/v1?ns=localhost:5000", status: 200, want: f.local.manifest},
		{name: "ns with override_path: full name in the path", path: "/v2/registry.k8s.io/pause/manifests/3.10?ns=registry.k8s.io", status: 200, want: pause.manifest},
		{name: "ns tags", path: "/v2/pause/tags/list?ns=registry.k8s.io&n=1", status: 200, json: `{"name":"pause","tags":["3.10"]}`,
			headers: map[string]string{"Link": `</v2/pause/tags/list?last=3.10&n=1&ns=registry.k8s.io>; rel="next"`}},
		{name: "ns other upstream", path: "/v2/pause/manifests/3.10?ns=quay.io", status: 404, code: "NAME_UNKNOWN"},
		{name: "ns unknown tag", path: "/v2/pause/manifests/4.0?ns=registry.k8s.io", status: 404, code: "MANIFEST_UNKNOWN"},
		{name: "ns invalid", path: "/v2/pause/manifests/3.10?ns=registry.k8s.io%2F..", status: 400, code: "NAME_INVALID"},
		{name: "ns invalid port", path: "/v2/pause/manifests/3.10?ns=host:99999", status: 400, code: "NAME_INVALID"},
		{name: "ns with a path", path: "/v2/pause/manifests/3.10?ns=registry.k8s.io/x", status: 400, code: "NAME_INVALID"},
		{name: "ns ipv6", path: "/v2/pause/manifests/3.10?ns=%5B::1%5D:5000", status: 404, code: "NAME_UNKNOWN"},
		{name: "without ns the short name is unknown", path: "/v2/pause/manifests/3.10", status: 404, code: "NAME_UNKNOWN"},

		// names and traversal
		{name: "name with upper case", path: "/v2/Registry.k8s.io/pause/tags/list", status: 400, code: "NAME_INVALID"},
		{name: "name too long", path: "/v2/" + strings.Repeat("a/", 128) + "a/tags/list", status: 400, code: "NAME_INVALID"},
		{name: "name with colon", path: "/v2/localhost:5000/tool/manifests/v1", status: 400, code: "NAME_INVALID"},
		{name: "name ending in a separator", path: "/v2/pause-/tags/list", status: 400, code: "NAME_INVALID"},
		{name: "traversal", path: "/v2/../../etc/passwd/manifests/x", status: 400, code: "NAME_INVALID"},
		{name: "encoded dot segments", path: "/v2/a/%2e%2e/b/blobs/" + layer.String(), status: 400, code: "NAME_INVALID"},
		{name: "encoded slash", path: "/v2/a%2Fb/tags/list", status: 400, code: "NAME_INVALID"},
		{name: "encoded NUL", path: "/v2/a%00b/tags/list", status: 400, code: "NAME_INVALID"},
		{name: "double slash", path: "/v2/a//b/tags/list", status: 400, code: "NAME_INVALID"},
		{name: "dot segment", path: "/v2/a/./b/tags/list", status: 400, code: "NAME_INVALID"},
		{name: "backslash", path: `/v2/a\b/tags/list`, status: 400, code: "NAME_INVALID"},
		{name: "encoded letter", path: "/v2/%61/b/tags/list", status: 400, code: "NAME_INVALID"},
		{name: "plain a/b still works", path: "/v2/a/b/tags/list", status: 200, json: `{"name":"a/b","tags":["x"]}`},

		// unknown things
		{name: "referrers not served", path: "/v2/registry.k8s.io/pause/referrers/" + pause.digest.String(), status: 404, code: "UNSUPPORTED"},
		{name: "upload status", path: "/v2/registry.k8s.io/pause/blobs/uploads/abc", status: 404, code: "UNSUPPORTED"},
		{name: "outside /v2", path: "/etc/passwd", status: 404, code: "UNSUPPORTED"},
		{name: "root", path: "/", status: 404, code: "UNSUPPORTED"},
		{name: "v2x", path: "/v2x/", status: 404, code: "UNSUPPORTED"},
		{name: "tags with trailing slash", path: "/v2/registry.k8s.io/pause/tags/list/", status: 404, code: "UNSUPPORTED"},
		{name: "catalog with trailing slash", path: "/v2/_catalog/", status: 404, code: "UNSUPPORTED"},
		{name: "name only", path: "/v2/registry.k8s.io/pause", status: 404, code: "UNSUPPORTED"},

		// limits
		{name: "URI too long", path: "/v2/registry.k8s.io/pause/tags/list?last=" + strings.Repeat("x", 5000), status: 414, code: "UNSUPPORTED"},
		{name: "too many query parameters", path: "/v2/_catalog?" + strings.Repeat("a=1&", 20), status: 400, code: "UNSUPPORTED"},
	} {
		t.Run(c.name, func(t *testing.T) { f.do(t, c) })
	}
}

// TestWritesRefused: every write on a /v2 path is 405 UNSUPPORTED with
// Allow: GET, HEAD, and nothing is asked of the Store; a malformed path is
// 400 first.
func TestWritesRefused(t *testing.T) {
	f := newFixture(t)
	d := f.pause.digest.String()
	paths := []string{
		"/v2/", "/v2", "/v2/_catalog",
		"/v2/registry.k8s.io/pause/manifests/3.10",
		"/v2/registry.k8s.io/pause/manifests/" + d,
		"/v2/registry.k8s.io/pause/manifests/.INVALID_MANIFEST_NAME",
		"/v2/registry.k8s.io/pause/blobs/" + d,
		"/v2/registry.k8s.io/pause/blobs/uploads/",
		"/v2/registry.k8s.io/pause/blobs/uploads",
		"/v2/registry.k8s.io/pause/blobs/uploads/?digest=" + d,
		"/v2/registry.k8s.io/pause/blobs/uploads/?mount=" + d + "&from=a/b",
		"/v2/registry.k8s.io/pause/blobs/uploads/0c2d2f1e-upload",
		"/v2/registry.k8s.io/pause/tags/list",
		"/v2/registry.k8s.io/pause/referrers/" + d,
		"/v2/registry.k8s.io/pause/anything/else",
		"/v2/pause/manifests/3.10?ns=registry.k8s.io",
	}
	before := len(f.store.askedNames())
	for _, method := range []string{"PUT", "POST", "PATCH", "DELETE", "OPTIONS", "TRACE", "BREW"} {
		for _, p := range paths {
			t.Run(method+" "+p, func(t *testing.T) {
				f.do(t, call{method: method, path: p, body: `{"schemaVersion":2}`, status: 405, code: "UNSUPPORTED",
					headers: map[string]string{"Allow": "GET, HEAD"}})
			})
		}
	}
	if n := len(f.store.askedNames()); n != before {
		t.Errorf("writes asked the Store %d times", n-before)
	}
	for _, c := range []call{
		{method: "PUT", path: "/v2/registry.k8s.io/pause/manifests/sha256:totallywrong", body: "blablabla", status: 400, code: "DIGEST_INVALID"},
		{method: "DELETE", path: "/v2/Upper/manifests/x", status: 400, code: "NAME_INVALID"},
		{method: "POST", path: "/v2/a/../b/blobs/uploads/", status: 400, code: "NAME_INVALID"},
		{method: "PUT", path: "/etc/passwd", status: 404, code: "UNSUPPORTED"},
	} {
		t.Run("malformed "+c.method+" "+c.path, func(t *testing.T) { f.do(t, c) })
	}
}

// TestPaginationFollowsLinks walks tags and catalog by their Link headers
// and checks that every item comes exactly once, in order.
func TestPaginationFollowsLinks(t *testing.T) {
	f := newFixture(t)
	all, _ := f.store.Tags(t.Context(), "registry.example.com/app")
	repos, _ := f.store.Repositories(t.Context())
	for _, tc := range []struct {
		start string
		field string
		want  []string
	}{
		{"/v2/registry.example.com/app/tags/list?n=4", "tags", all},
		{"/v2/registry.example.com/app/tags/list?n=1", "tags", all},
		{"/v2/app/tags/list?n=7&ns=registry.example.com", "tags", all},
		{"/v2/_catalog?n=2", "repositories", repos},
	} {
		var got []string
		next, pages := tc.start, 0
		for next != "" {
			pages++
			if pages > 100 {
				t.Fatalf("%s: pagination does not end", tc.start)
			}
			resp, err := http.Get(f.srv.URL + next)
			if err != nil {
				t.Fatal(err)
			}
			var body map[string]any
			err = json.NewDecoder(resp.Body).Decode(&body)
			resp.Body.Close()
			if err != nil || resp.StatusCode != 200 {
				t.Fatalf("%s: %d %v", next, resp.StatusCode, err)
			}
			for _, v := range body[tc.field].([]any) {
				got = append(got, v.(string))
			}
			next = ""
			if l := resp.Header.Get("Link"); l != "" {
				if !strings.HasPrefix(l, "<") || !strings.HasSuffix(l, `>; rel="next"`) {
					t.Fatalf("Link %q is not <url>; rel=\"next\"", l)
				}
				next = strings.TrimSuffix(strings.TrimPrefix(l, "<"), `>; rel="next"`)
			}
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s: walked %q, want %q", tc.start, got, tc.want)
		}
	}
}

// TestReadErrorAbortsTheResponse: when a Content's Read fails mid-body the
// client must see a broken transfer, never a 200 with a short or complete
// body; OnReadError and the log hear of it.
func TestReadErrorAbortsTheResponse(t *testing.T) {
	s := newMemStore()
	big := bytes.Repeat([]byte("ferry "), 200_000) // 1.2 MB: more than any buffer on the way
	img := s.addImage("registry.example.com/app", []string{string(big), "small layer"}, "1.0")
	var (
		mu     sync.Mutex
		errs   []readErr
		logBuf bytes.Buffer
	)
	h := New(s, Options{
		Log: newTestLogger(&logBuf, &mu),
		OnReadError: func(repo string, d digest.Digest, err error) {
			mu.Lock()
			errs = append(errs, readErr{repo, d, err})
			mu.Unlock()
		},
	})
	for _, proto := range []string{"HTTP/1.1", "HTTP/2"} {
		t.Run(proto, func(t *testing.T) {
			srv := httptest.NewUnstartedServer(h)
			if proto == "HTTP/2" {
				srv.EnableHTTP2 = true
				srv.StartTLS()
			} else {
				srv.Start()
			}
			defer srv.Close()
			testReadErrors(t, srv, proto == "HTTP/1.1", s, img, &mu, &errs, &logBuf)
		})
	}
}

// The same handler, called directly, aborts with http.ErrAbortHandler:
// net/http's HTTP/1 server would also cut a response shorter than its
// Content-Length, but the abort must not depend on that.
func TestReadErrorPanicsWithErrAbortHandler(t *testing.T) {
	s := newMemStore()
	img := s.addImage("registry.example.com/app", []string{"0123456789"}, "1.0")
	s.setFailAt(img.layers[0], 5)
	h := New(s, Options{})
	defer func() {
		if r := recover(); r != http.ErrAbortHandler {
			t.Errorf("recovered %v, want http.ErrAbortHandler", r)
		}
	}()
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/v2/registry.example.com/app/blobs/"+img.layers[0].String(), nil))
}

type readErr struct {
	repo string
	d    digest.Digest
	err  error
}

func testReadErrors(t *testing.T, srv *httptest.Server, h1 bool, s *memStore, img fakeImage, mu *sync.Mutex, errsp *[]readErr, logBuf *bytes.Buffer) {
	layer := img.layers[0]
	size := int64(len(s.blobs[layer]))
	url := srv.URL + "/v2/registry.example.com/app/blobs/" + layer.String()

	get := func(rangeHdr string) (int, []byte, error) {
		req, _ := http.NewRequest("GET", url, nil)
		if rangeHdr != "" {
			req.Header.Set("Range", rangeHdr)
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			return 0, nil, err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return resp.StatusCode, b, err
	}

	for _, tc := range []struct {
		name    string
		failAt  int64
		rng     string
		wantErr bool
	}{
		{"fails in the middle", 700_000, "", true},
		{"fails at the first byte", 0, "", true},
		{"fails at the last byte", size - 1, "", true},
		{"range before the failure", 700_000, "bytes=0-99", false},
		{"range across the failure", 700_000, "bytes=600000-800000", true},
		{"range after the failure", 700_000, "bytes=800000-800099", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s.setFailAt(layer, tc.failAt)
			mu.Lock()
			*errsp = nil
			before := logBuf.Len()
			mu.Unlock()
			status, body, err := get(tc.rng)
			if !tc.wantErr {
				if err != nil || status != 206 || len(body) != 100 {
					t.Fatalf("status %d, %d bytes, %v; want 206 with 100 bytes", status, len(body), err)
				}
				return
			}
			if err == nil {
				t.Fatalf("status %d with %d bytes and no error; want a broken transfer", status, len(body))
			}
			if h1 && status != 0 && !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Errorf("error %v; want unexpected EOF after the headers", err)
			}
			t.Logf("client saw: status %d, %d bytes, %v", status, len(body), err)
			mu.Lock()
			defer mu.Unlock()
			errs := *errsp
			if len(errs) != 1 || errs[0].repo != "registry.example.com/app" || errs[0].d != layer || !errors.Is(errs[0].err, errCorrupt) {
				t.Errorf("OnReadError calls: %+v", errs)
			}
			if l := logBuf.String()[before:]; !strings.Contains(l, layer.String()) || !strings.Contains(l, "registry.example.com/app") || !strings.Contains(l, errCorrupt.Error()) {
				t.Errorf("log: %q", l)
			}
		})
	}
	// HEAD reads nothing, so it cannot fail; and the manifest is served.
	s.setFailAt(layer, 0)
	resp, err := srv.Client().Head(url)
	if err != nil || resp.StatusCode != 200 || resp.ContentLength != size {
		t.Errorf("HEAD: %v %v", resp, err)
	}
	// A failing manifest aborts too.
	s.setFailAt(img.digest, 10)
	if _, _, err := get(""); err == nil {
		t.Error("blob: no error")
	}
	resp, err = srv.Client().Get(srv.URL + "/v2/registry.example.com/app/manifests/1.0")
	if err == nil {
		_, err = io.ReadAll(resp.Body)
		resp.Body.Close()
	}
	if err == nil {
		t.Error("manifest with a failing read: no error")
	}
}

// lockedWriter serialises writes to a buffer the test also reads.
type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func newTestLogger(buf *bytes.Buffer, mu *sync.Mutex) *slog.Logger {
	return slog.New(slog.NewTextHandler(lockedWriter{mu, buf}, nil))
}

func TestOnRequest(t *testing.T) {
	f := newFixture(t)
	calls := []struct {
		method, path string
		route        string
		status       int
		bytes        int64
	}{
		{"GET", "/v2/", RouteBase, 200, 2},
		{"GET", "/v2/registry.k8s.io/pause/manifests/3.10", RouteManifest, 200, int64(len(f.pause.manifest))},
		{"HEAD", "/v2/registry.k8s.io/pause/manifests/3.10", RouteManifest, 200, 0},
		{"GET", "/v2/registry.example.com/app/blobs/" + f.big.String(), RouteBlob, 200, int64(len(f.bigB))},
		{"GET", "/v2/registry.example.com/app/blobs/" + digest.FromString("x").String(), RouteBlob, 404, -1},
		{"GET", "/v2/registry.k8s.io/pause/tags/list", RouteTags, 200, -1},
		{"GET", "/v2/_catalog", RouteCatalog, 200, -1},
		{"PUT", "/v2/registry.k8s.io/pause/manifests/3.10", RouteManifest, 405, -1},
		{"POST", "/v2/registry.k8s.io/pause/blobs/uploads/", RouteOther, 405, -1},
		{"GET", "/v2/a/../b/tags/list", RouteOther, 400, -1},
		{"GET", "/favicon.ico", RouteOther, 404, -1},
	}
	for _, c := range calls {
		req, _ := http.NewRequest(c.method, f.srv.URL+c.path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.requests) != len(calls) {
		t.Fatalf("%d OnRequest calls for %d requests", len(f.requests), len(calls))
	}
	for i, c := range calls {
		got := f.requests[i]
		if got.route != c.route || got.status != c.status || c.bytes >= 0 && got.bytes != c.bytes || c.bytes < 0 && got.bytes <= 0 && c.method != "HEAD" {
			t.Errorf("%s %s: OnRequest(%q, %d, %d), want (%q, %d, %d)", c.method, c.path, got.route, got.status, got.bytes, c.route, c.status, c.bytes)
		}
	}
}

// oddStore wraps a Store to misbehave in the ways a buggy or failing Store
// could, so that the handler's own checks are seen to work.
type oddStore struct {
	Store
	resolveAs *Descriptor // Resolve answers this whatever the reference
	openAs    *Descriptor // Open reports this descriptor
	err       error       // every call fails with this
}

func (o oddStore) Repositories(ctx context.Context) ([]string, error) {
	if o.err != nil {
		return nil, o.err
	}
	return o.Store.Repositories(ctx)
}

func (o oddStore) Tags(ctx context.Context, repo string) ([]string, error) {
	if o.err != nil {
		return nil, o.err
	}
	return o.Store.Tags(ctx, repo)
}

func (o oddStore) Resolve(ctx context.Context, repo, ref string) (Descriptor, error) {
	if o.err != nil {
		return Descriptor{}, o.err
	}
	if o.resolveAs != nil {
		return *o.resolveAs, nil
	}
	return o.Store.Resolve(ctx, repo, ref)
}

func (o oddStore) Open(ctx context.Context, repo string, d digest.Digest) (Content, Descriptor, error) {
	if o.err != nil {
		return nil, Descriptor{}, o.err
	}
	c, desc, err := o.Store.Open(ctx, repo, d)
	if o.openAs != nil {
		desc = *o.openAs
	}
	return c, desc, err
}

// TestStoreMisbehaving: a Store error is a 500 that tells the client
// nothing of it (but the log everything), and content the Store mislabels
// is never served under the asked digest.
func TestStoreMisbehaving(t *testing.T) {
	s := newMemStore()
	a := s.addImage("r/a", []string{"layer a"}, "1")
	b := s.addImage("r/a", []string{"layer b"}, "2")
	var (
		mu  sync.Mutex
		log bytes.Buffer
	)
	serve := func(st Store) *httptest.Server {
		srv := httptest.NewServer(New(st, Options{Log: newTestLogger(&log, &mu)}))
		t.Cleanup(srv.Close)
		return srv
	}
	get := func(srv *httptest.Server, path string) (int, []byte) {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, body
	}

	// Resolve answering another manifest than the digest asked for.
	bDesc := Descriptor{MediaType: imgspecv1.MediaTypeImageManifest, Digest: b.digest, Size: int64(len(b.manifest))}
	srv := serve(oddStore{Store: s, resolveAs: &bDesc})
	if st, body := get(srv, "/v2/r/a/manifests/"+a.digest.String()); st != 404 || errorCode(t, body) != "MANIFEST_UNKNOWN" {
		t.Errorf("digest reference resolved to another manifest: %d %s", st, body)
	}
	if st, body := get(srv, "/v2/r/a/manifests/1"); st != 200 || !bytes.Equal(body, b.manifest) {
		t.Errorf("tag: %d", st)
	}

	// Open reporting other content than asked for.
	other := Descriptor{Digest: digest.FromString("other"), Size: 5}
	srv = serve(oddStore{Store: s, openAs: &other})
	for _, p := range []string{"/v2/r/a/manifests/1", "/v2/r/a/blobs/" + a.layers[0].String()} {
		if st, body := get(srv, p); st != 500 || bytes.Contains(body, []byte("layer")) {
			t.Errorf("%s with mislabelled content: %d %q", p, st, body)
		}
	}

	// Failures.
	secret := errors.New("open /run/ferry/bundle-7.iso: input/output error")
	srv = serve(oddStore{Store: s, err: secret})
	for _, p := range []string{"/v2/r/a/manifests/1", "/v2/r/a/blobs/" + a.layers[0].String(), "/v2/r/a/tags/list", "/v2/_catalog"} {
		st, body := get(srv, p)
		if st != 500 || bytes.Contains(body, []byte("bundle-7")) {
			t.Errorf("%s: %d %q", p, st, body)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if n, m := strings.Count(log.String(), "bundle-7.iso"), strings.Count(log.String(), "store opened other content"); n != 4 || m != 2 {
		t.Errorf("%d log records of the failure (want 4), %d of mislabelled content (want 2):\n%s", n, m, log.String())
	}
}
