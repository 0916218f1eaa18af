package registry_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ferry-k8s/ferry/images/registry"
	"github.com/ferry-k8s/ferry/images/registry/registrytest"

	"github.com/ferry-k8s/ferry/images/imagetest"
	digest "github.com/opencontainers/go-digest"
	imgspecv1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// conformanceNamespace is the repository the pull checks use.
const conformanceNamespace = "conformance.example/oci/pull"

// conformanceContent is what the registry under test holds, in the terms
// of the official suite's pull-only mode (OCI_TAG_NAME, OCI_MANIFEST_DIGEST,
// OCI_BLOB_DIGEST: content seeded beforehand instead of pushed).
type conformanceContent struct {
	tag      string
	manifest digest.Digest
	blob     digest.Digest // the manifest's config
	layer    digest.Digest
	index    digest.Digest // a multi-platform index, tag "index"
	tags     []string      // every tag, sorted
}

// conformanceServer serves a layout written by imagetest over plain HTTP.
func conformanceServer(t *testing.T) (*httptest.Server, conformanceContent) {
	t.Helper()
	dir := t.TempDir()
	c := conformanceContent{tag: "tagtest0"}
	var err error
	if c.manifest, err = imagetest.WriteImage(dir, conformanceNamespace+":"+c.tag, 42, []int64{3000, 200 << 10}); err != nil {
		t.Fatal(err)
	}
	if c.index, _, err = imagetest.WriteIndex(dir, conformanceNamespace+":index", 43); err != nil {
		t.Fatal(err)
	}
	c.tags = []string{"index", c.tag}
	for i := range 12 { // more tags, for pagination
		tag := fmt.Sprintf("v1.%02d", i)
		if _, err := imagetest.WriteImage(dir, conformanceNamespace+":"+tag, 42, []int64{3000, 200 << 10}); err != nil {
			t.Fatal(err)
		}
		c.tags = append(c.tags, tag)
	}
	slices.Sort(c.tags)
	var m imgspecv1.Manifest
	if err := readJSON(filepath.Join(dir, "blobs", "sha256", c.manifest.Encoded()), &m); err != nil {
		t.Fatal(err)
	}
	c.blob, c.layer = m.Config.Digest, m.Layers[1].Digest
	store, err := registrytest.OpenLayoutStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(registry.New(store, registry.Options{}))
	t.Cleanup(srv.Close)
	return srv, c
}

// TestConformance checks the pull side of the OCI distribution spec v1.1.1
// (spec.md: "Pull", "Listing Tags", "Error Codes", the endpoint table) over
// HTTP: endpoints end-1, end-2, end-3, end-8a, end-8b must work; the push,
// delete and mount endpoints (end-4a … end-11) are refused with 405.
//
// The official suite (Go package github.com/opencontainers/distribution-spec/
// conformance) cannot be had here: the module proxy answers 403 for every
// version of that module, and its source is not in any module it serves.
// These checks are written from the spec's text and follow the suite's
// pull-only workflow (its "Pull blobs", "Pull manifests" and "Error codes"
// specs, with content seeded instead of pushed), plus the spec's Range and
// tag pagination rules, which that workflow does not exercise.
// TestOfficialConformanceSuite (build tag conformance) runs the suite
// itself where its source is.
func TestConformance(t *testing.T) {
	srv, c := conformanceServer(t)
	ns := conformanceNamespace
	dummy := digest.FromString("hello world") // the suite's nonexistent digest

	do := func(t *testing.T, method, path string, hdr ...string) (*http.Response, []byte) {
		t.Helper()
		req, err := http.NewRequest(method, srv.URL+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		if method == http.MethodHead && len(body) > 0 {
			t.Errorf("HEAD %s: a body", path)
		}
		if resp.StatusCode >= 400 && resp.StatusCode < 500 && method != http.MethodHead && resp.Header.Get("Content-Type") == "application/json" {
			checkErrorBody(t, body) // "If the response body is in JSON format, it MUST have the following format"
		}
		return resp, body
	}
	status := func(t *testing.T, resp *http.Response, want ...int) {
		t.Helper()
		if !slices.Contains(want, resp.StatusCode) {
			t.Errorf("%s %s: status %d, want %v", resp.Request.Method, resp.Request.URL.Path, resp.StatusCode, want)
		}
	}
	// digestHeader: "If present, the value of this header MUST be a digest
	// matching that of the response body."
	digestHeader := func(t *testing.T, resp *http.Response, want digest.Digest) {
		t.Helper()
		if got := resp.Header.Get("Docker-Content-Digest"); got != want.String() {
			t.Errorf("%s %s: Docker-Content-Digest %q, want %s", resp.Request.Method, resp.Request.URL.Path, got, want)
		}
	}

	t.Run("end-1 GET /v2/ is 200", func(t *testing.T) {
		resp, _ := do(t, "GET", "/v2/")
		status(t, resp, 200)
	})

	t.Run("end-2 pull blobs", func(t *testing.T) {
		resp, _ := do(t, "HEAD", "/v2/"+ns+"/blobs/"+dummy.String())
		status(t, resp, 404)
		resp, _ = do(t, "GET", "/v2/"+ns+"/blobs/"+dummy.String())
		status(t, resp, 404)
		for _, d := range []digest.Digest{c.blob, c.layer} {
			resp, _ = do(t, "HEAD", "/v2/"+ns+"/blobs/"+d.String())
			status(t, resp, 200)
			digestHeader(t, resp, d)
			get, body := do(t, "GET", "/v2/"+ns+"/blobs/"+d.String())
			status(t, get, 200)
			digestHeader(t, get, d)
			if digest.FromBytes(body) != d {
				t.Errorf("GET blob %s: the body does not match the digest", d)
			}
			if resp.ContentLength != int64(len(body)) {
				t.Errorf("HEAD blob %s: Content-Length %d, want %d", d, resp.ContentLength, len(body))
			}
		}
	})

	t.Run("end-2 Range requests (RFC 9110)", func(t *testing.T) {
		_, whole := do(t, "GET", "/v2/"+ns+"/blobs/"+c.layer.String())
		n := len(whole)
		for _, rc := range []struct {
			rng        string
			start, end int
		}{{"bytes=0-0", 0, 0}, {"bytes=100-65635", 100, 65635}, {fmt.Sprintf("bytes=%d-", n-10), n - 10, n - 1}, {"bytes=-1", n - 1, n - 1}} {
			resp, body := do(t, "GET", "/v2/"+ns+"/blobs/"+c.layer.String(), "Range", rc.rng)
			status(t, resp, 206)
			if want := fmt.Sprintf("bytes %d-%d/%d", rc.start, rc.end, n); resp.Header.Get("Content-Range") != want {
				t.Errorf("Range %s: Content-Range %q, want %q", rc.rng, resp.Header.Get("Content-Range"), want)
			}
			if !bytes.Equal(body, whole[rc.start:rc.end+1]) {
				t.Errorf("Range %s: wrong bytes", rc.rng)
			}
		}
		resp, _ := do(t, "GET", "/v2/"+ns+"/blobs/"+c.layer.String(), "Range", fmt.Sprintf("bytes=%d-", n))
		status(t, resp, 416)
		if want := fmt.Sprintf("bytes */%d", n); resp.Header.Get("Content-Range") != want {
			t.Errorf("416: Content-Range %q, want %q", resp.Header.Get("Content-Range"), want)
		}
	})

	t.Run("end-3 pull manifests", func(t *testing.T) {
		accept := []string{"Accept", imgspecv1.MediaTypeImageManifest}
		for _, method := range []string{"HEAD", "GET"} {
			resp, _ := do(t, method, "/v2/"+ns+"/manifests/.INVALID_MANIFEST_NAME")
			status(t, resp, 404)
			resp, _ = do(t, method, "/v2/"+ns+"/manifests/"+dummy.String())
			status(t, resp, 404)
			for _, ref := range []string{c.manifest.String(), c.tag} {
				resp, body := do(t, method, "/v2/"+ns+"/manifests/"+ref, accept...)
				status(t, resp, 200)
				digestHeader(t, resp, c.manifest)
				if method == "GET" {
					if digest.FromBytes(body) != c.manifest {
						t.Errorf("GET manifest %s: the body does not match the digest", ref)
					}
					var m struct{ MediaType string }
					if err := json.Unmarshal(body, &m); err != nil {
						t.Fatal(err)
					}
					// "If the manifest has a mediaType field, clients SHOULD reject unless the
					// mediaType field's value matches the type specified by the Content-Type
					// header"; "The registry SHOULD NOT include parameters on the Content-Type".
					if ct := resp.Header.Get("Content-Type"); ct != m.MediaType {
						t.Errorf("GET manifest %s: Content-Type %q, mediaType %q", ref, ct, m.MediaType)
					}
				}
			}
		}
		resp, body := do(t, "GET", "/v2/"+ns+"/manifests/index", "Accept", imgspecv1.MediaTypeImageIndex+", "+imgspecv1.MediaTypeImageManifest)
		status(t, resp, 200)
		digestHeader(t, resp, c.index)
		if resp.Header.Get("Content-Type") != imgspecv1.MediaTypeImageIndex || digest.FromBytes(body) != c.index {
			t.Errorf("GET index: Content-Type %q", resp.Header.Get("Content-Type"))
		}
		resp, _ = do(t, "GET", "/v2/conformance.example/no/such/repo/manifests/"+c.tag)
		status(t, resp, 404)
	})

	t.Run("error codes: 400 has a spec body", func(t *testing.T) {
		// The suite's check: 400 or 404, and a 400 body with a spec code.
		for _, method := range []string{"GET", "PUT"} {
			resp, body := do(t, method, "/v2/"+ns+"/manifests/sha256:totallywrong", "Content-Type", imgspecv1.MediaTypeImageManifest)
			status(t, resp, 400, 404)
			if resp.StatusCode == 400 {
				checkErrorBody(t, body)
			}
		}
		resp, body := do(t, "GET", "/v2/UPPER/case/tags/list")
		status(t, resp, 400)
		if code := checkErrorBody(t, body); code != "NAME_INVALID" {
			t.Errorf("invalid name: code %s", code)
		}
	})

	t.Run("end-8a list tags", func(t *testing.T) {
		resp, body := do(t, "GET", "/v2/"+ns+"/tags/list")
		status(t, resp, 200)
		var tl struct {
			Name string   `json:"name"`
			Tags []string `json:"tags"`
		}
		if err := json.Unmarshal(body, &tl); err != nil {
			t.Fatal(err)
		}
		if tl.Name != ns || !slices.Equal(tl.Tags, c.tags) {
			t.Errorf("tags/list: %s %q, want %s %q", tl.Name, tl.Tags, ns, c.tags)
		}
		if !slices.IsSortedFunc(tl.Tags, func(a, b string) int { return strings.Compare(strings.ToLower(a), strings.ToLower(b)) }) {
			t.Errorf("tags not in lexical order: %q", tl.Tags)
		}
		resp, _ = do(t, "GET", "/v2/conformance.example/no/such/repo/tags/list")
		status(t, resp, 404)
	})

	t.Run("end-8b tags pagination", func(t *testing.T) {
		list := func(q string) ([]string, string) {
			resp, body := do(t, "GET", "/v2/"+ns+"/tags/list?"+q)
			status(t, resp, 200)
			var tl struct{ Tags []string }
			if err := json.Unmarshal(body, &tl); err != nil {
				t.Fatal(err)
			}
			return tl.Tags, resp.Header.Get("Link")
		}
		// "the response MUST include <int> results" unless fewer remain or a Link is given.
		got, link := list("n=5")
		if !slices.Equal(got, c.tags[:5]) || link == "" {
			t.Errorf("n=5: %q, Link %q", got, link)
		}
		// "When n is zero, this endpoint MUST return an empty list, and MUST NOT include a Link header."
		if got, link := list("n=0"); len(got) != 0 || link != "" {
			t.Errorf("n=0: %q, Link %q", got, link)
		}
		// "up to <int> tags after <tagname>", <tagname> not included.
		if got, _ := list("n=3&last=" + c.tags[4]); !slices.Equal(got, c.tags[5:8]) {
			t.Errorf("n=3&last=%s: %q, want %q", c.tags[4], got, c.tags[5:8])
		}
		// "When using the last query parameter, the n parameter is OPTIONAL."
		if got, _ := list("last=" + c.tags[10]); !slices.Equal(got, c.tags[11:]) {
			t.Errorf("last=%s: %q, want %q", c.tags[10], got, c.tags[11:])
		}
		// The Link header (RFC 5988, rel="next") leads through all tags.
		var all []string
		next := "/v2/" + ns + "/tags/list?n=4"
		for i := 0; next != "" && i < 10; i++ {
			resp, body := do(t, "GET", next)
			var tl struct{ Tags []string }
			if err := json.Unmarshal(body, &tl); err != nil {
				t.Fatal(err)
			}
			all = append(all, tl.Tags...)
			next = ""
			if l := resp.Header.Get("Link"); l != "" {
				target, rel, ok := strings.Cut(l, ">;")
				if !ok || !strings.HasPrefix(target, "<") || strings.TrimSpace(rel) != `rel="next"` {
					t.Fatalf("Link %q is not RFC 5988 rel=\"next\"", l)
				}
				next = target[1:]
			}
		}
		if !slices.Equal(all, c.tags) {
			t.Errorf("following Link: %q, want %q", all, c.tags)
		}
	})

	t.Run("end-4a…end-11 writes refused", func(t *testing.T) {
		for _, w := range []struct{ method, path string }{
			{"POST", "/v2/" + ns + "/blobs/uploads/"},                                               // end-4a
			{"POST", "/v2/" + ns + "/blobs/uploads/?digest=" + c.blob.String()},                     // end-4b
			{"PATCH", "/v2/" + ns + "/blobs/uploads/8d2f7a1c"},                                      // end-5
			{"PUT", "/v2/" + ns + "/blobs/uploads/8d2f7a1c?digest=" + c.blob.String()},              // end-6
			{"PUT", "/v2/" + ns + "/manifests/" + c.tag},                                            // end-7
			{"DELETE", "/v2/" + ns + "/manifests/" + c.manifest.String()},                           // end-9
			{"DELETE", "/v2/" + ns + "/blobs/" + c.blob.String()},                                   // end-10
			{"POST", "/v2/" + ns + "/blobs/uploads/?mount=" + c.blob.String() + "&from=other/repo"}, // end-11
		} {
			resp, body := do(t, w.method, w.path)
			status(t, resp, 405)
			if code := checkErrorBody(t, body); code != "UNSUPPORTED" {
				t.Errorf("%s %s: code %s", w.method, w.path, code)
			}
		}
		// Nothing changed.
		resp, body := do(t, "GET", "/v2/"+ns+"/manifests/"+c.tag)
		status(t, resp, 200)
		if digest.FromBytes(body) != c.manifest {
			t.Error("the manifest changed")
		}
	})

	t.Run("end-12a referrers not offered", func(t *testing.T) {
		// A registry without the referrers API answers 404; clients then use
		// the tag schema ("Unavailable Referrers API").
		resp, _ := do(t, "GET", "/v2/"+ns+"/referrers/"+c.manifest.String())
		status(t, resp, 404)
	})
}

// checkErrorBody checks the spec's error body and returns its first code.
func checkErrorBody(t *testing.T, body []byte) string {
	t.Helper()
	var e struct {
		Errors []struct {
			Code    string          `json:"code"`
			Message *string         `json:"message"`
			Detail  json.RawMessage `json:"detail"`
		} `json:"errors"`
	}
	if err := json.Unmarshal(body, &e); err != nil || len(e.Errors) == 0 {
		t.Errorf("error body %q: %v", body, err)
		return ""
	}
	for _, x := range e.Errors {
		if !registry.SpecCodes[x.Code] {
			t.Errorf("error code %q is not one of the spec's", x.Code)
		}
	}
	return e.Errors[0].Code
}
