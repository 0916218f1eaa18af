package content

import (
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	digest "github.com/opencontainers/go-digest"

	"github.com/ferry-k8s/ferry/bundle/verify"
)

func TestTamperedISOIsRefused(t *testing.T) {
	e := newEnv(t, Options{})
	f := e.f
	bad := copyISO(t, f.iso100)
	flipByte(t, bad, blobPath(f.appA), 10)

	_, err := e.svc.Add(context.Background(), bad)
	if err == nil || !strings.Contains(err.Error(), bad) || !errors.Is(err, verify.ErrFailed) || !strings.Contains(err.Error(), blobPath(f.appA)) {
		t.Fatalf("Add of a tampered ISO: %v; want an error naming the ISO and the file", err)
	}
	if n := len(e.svc.Bundles()); n != 0 {
		t.Fatalf("serving %d bundles after a refused Add", n)
	}
	// Sync: the good one serves, the bad one is refused with its own error.
	errs := e.svc.Sync(context.Background(), []string{bad, f.iso110})
	if len(errs) != 1 || !strings.Contains(errs[0].Error(), bad) {
		t.Fatalf("Sync errors %v, want one naming %s", errs, bad)
	}
	if bs := e.svc.Bundles(); len(bs) != 1 || bs[0].Version != "1.1.0" {
		t.Fatalf("serving %+v", bs)
	}
	if code, _, body := e.get("/readyz"); code != 200 {
		t.Errorf("readyz with one good bundle: %d %s", code, body)
	}
	if code, _, _ := e.get("/v2/" + appRepo + "/manifests/1.1"); code != 200 {
		t.Errorf("the good bundle does not serve: %d", code)
	}
	if got := metric(t, e.svc.m.refused); got != 2 {
		t.Errorf("refused = %v, want 2", got)
	}
	if !strings.Contains(e.logs.String(), "bundle refused") {
		t.Errorf("refusal not logged:\n%s", e.logs)
	}
	// An unreadable path and a file that is no ISO are refused as well.
	junk := filepath.Join(t.TempDir(), "junk.iso")
	os.WriteFile(junk, []byte("not an iso"), 0o644)
	errs = e.svc.Sync(context.Background(), []string{f.iso110, "/nonexistent/x.iso", junk})
	if len(errs) != 2 || len(e.svc.Bundles()) != 1 {
		t.Errorf("Sync with junk: %v, %d bundles", errs, len(e.svc.Bundles()))
	}
}

func TestDigestFailureAfterAdd(t *testing.T) {
	e := newEnv(t, Options{})
	f := e.f
	iso := copyISO(t, f.iso110)
	e.mustAdd(iso)
	blobURL := "/v2/" + appRepo + "/blobs/" + f.bigB.Digest.String()
	// Change a byte in the 6th MiB of the big layer after verification.
	flipByte(t, iso, blobPath(f.bigB.Digest), 5<<20+12345)

	_, _, body, err := e.tryGet(blobURL)
	if err == nil {
		t.Fatalf("GET of the changed blob succeeded with %d bytes; want a broken transfer", len(body))
	}
	if len(body) >= int(f.bigB.Size) {
		t.Errorf("client got %d bytes of %d", len(body), f.bigB.Size)
	}
	if got := metric(t, e.svc.m.digestFailures); got != 1 {
		t.Errorf("digest failures = %v, want 1", got)
	}
	// Chunks before the change still verify; other blobs and files serve.
	if code, _, b := e.get(blobURL, "Range", "bytes=0-1048575"); code != http.StatusPartialContent || len(b) != 1<<20 {
		t.Errorf("first MiB of the changed blob: %d, %d bytes", code, len(b))
	}
	if code, _, b := e.get("/v2/" + appRepo + "/blobs/" + f.cfgB.Digest.String()); code != 200 || digest.FromBytes(b) != f.cfgB.Digest {
		t.Errorf("config blob: %d", code)
	}
	if code, _, _ := e.get("/repos/1.1.0/base/repodata/repomd.xml"); code != 200 {
		t.Errorf("repomd.xml: %d", code)
	}
	// The same through the yum route: a changed RPM breaks its transfer.
	rpm := "packages/base/Packages/" + filepath.Base(f.rpm)
	flipByte(t, iso, rpm, 7)
	if _, _, _, err := e.tryGet("/repos/1.1.0/base/Packages/" + filepath.Base(f.rpm)); err == nil {
		t.Error("GET of a changed RPM succeeded")
	}
	if got := metric(t, e.svc.m.digestFailures); got != 2 {
		t.Errorf("digest failures = %v, want 2", got)
	}
	_, _, m := e.get("/metrics")
	if !strings.Contains(string(m), "ferry_content_digest_failures_total 2") || !strings.Contains(string(m), `ferry_content_requests_total{code="aborted",route="yum"} 1`) {
		t.Errorf("/metrics:\n%s", grep(string(m), "ferry_content_digest|aborted"))
	}
}

func grep(s, words string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		for _, w := range strings.Split(words, "|") {
			if strings.Contains(l, w) {
				out = append(out, l)
				break
			}
		}
	}
	return strings.Join(out, "\n")
}

// TestHotSwap removes a bundle while one of its blobs is being downloaded:
// the download completes intact, new requests get 404, and the ISO file
// is closed once the download ends.
func TestHotSwap(t *testing.T) {
	e := newEnv(t, Options{})
	f := e.f
	e.mustAdd(f.iso100, f.iso110)
	blobURL := e.base + "/v2/" + appRepo + "/blobs/" + f.bigB.Digest.String()
	// HTTP/1.1, so that the transfer is one TCP stream with its own buffers.
	c := e.pki.client()
	c.Transport.(*http.Transport).ForceAttemptHTTP2 = false
	c.Transport.(*http.Transport).TLSClientConfig.NextProtos = []string{"http/1.1"}
	resp, err := c.Get(blobURL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	h := sha256.New()
	if _, err := io.CopyN(h, resp.Body, 4096); err != nil {
		t.Fatal(err)
	}
	if n := e.svc.openISO.Load(); n != 2 {
		t.Fatalf("%d ISOs open, want 2", n)
	}
	if err := e.svc.Remove("1.1.0"); err != nil {
		t.Fatal(err)
	}
	// Withdrawn for new requests at once; 1.0.0 serves on.
	if code, _, _ := e.get("/v2/" + appRepo + "/blobs/" + f.bigB.Digest.String()); code != 404 {
		t.Errorf("new request for the removed bundle's blob: %d, want 404", code)
	}
	if code, _, _ := e.get("/v2/" + appRepo + "/manifests/1.1"); code != 404 {
		t.Errorf("new request for the removed tag: %d, want 404", code)
	}
	if code, _, _ := e.get("/repos/1.1.0/base/repodata/repomd.xml"); code != 404 {
		t.Errorf("removed version's repo: %d, want 404", code)
	}
	if _, h, _ := e.get("/repos/latest/base/repodata/repomd.xml"); h.Get("X-Ferry-Bundle") != "example 1.0.0" {
		t.Errorf("latest after removal: %q", h.Get("X-Ferry-Bundle"))
	}
	// The download in flight holds the ISO open (32 MiB do not fit in the
	// socket buffers, so the handler is still writing).
	time.Sleep(100 * time.Millisecond)
	if n := e.svc.openISO.Load(); n != 2 {
		t.Errorf("%d ISOs open during the download, want 2 (the removed one is still being read)", n)
	}
	if _, err := io.Copy(h, resp.Body); err != nil {
		t.Fatalf("finishing the download after Remove: %v", err)
	}
	if got := digest.NewDigestFromBytes(digest.SHA256, h.Sum(nil)); got != f.bigB.Digest {
		t.Fatalf("downloaded %s, want %s", got, f.bigB.Digest)
	}
	resp.Body.Close()
	waitFor(t, "the removed ISO to close", func() bool { return e.svc.openISO.Load() == 1 })
	if got := metric(t, e.svc.m.open); got != 1 {
		t.Errorf("bundles_open = %v", got)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

func TestSyncReconciles(t *testing.T) {
	e := newEnv(t, Options{})
	f := e.f
	ctx := context.Background()
	versions := func() string {
		var vs []string
		for _, b := range e.svc.Bundles() {
			vs = append(vs, b.Version)
		}
		return strings.Join(vs, ",")
	}
	if errs := e.svc.Sync(ctx, []string{f.iso100, f.iso110}); errs != nil || versions() != "1.1.0,1.0.0" {
		t.Fatalf("Sync: %v, serving %s", errs, versions())
	}
	verified := verifications(t, e)
	// Unchanged ISOs are not verified again.
	e.svc.Sync(ctx, []string{f.iso110, f.iso100})
	if got := verifications(t, e); got != verified {
		t.Errorf("re-Sync of unchanged ISOs verified %d more", got-verified)
	}
	if errs := e.svc.Sync(ctx, []string{f.iso110}); errs != nil || versions() != "1.1.0" {
		t.Fatalf("Sync to one: %v, serving %s", errs, versions())
	}
	// Another file of a served version: refused by Add, replacing in Sync.
	moved := copyISO(t, f.iso110)
	if _, err := e.svc.Add(ctx, moved); err == nil || !strings.Contains(err.Error(), "already served from "+f.iso110) {
		t.Errorf("Add of a second 1.1.0: %v", err)
	}
	if errs := e.svc.Sync(ctx, []string{moved, f.iso100}); errs != nil || versions() != "1.1.0,1.0.0" || e.svc.Bundles()[0].Path != moved {
		t.Errorf("Sync moving 1.1.0: %v, %+v", errs, e.svc.Bundles())
	}
	// Remove by path and by version; unknown ones are errors.
	if err := e.svc.Remove(moved); err != nil {
		t.Error(err)
	}
	if err := e.svc.Remove("1.1.0"); !errors.Is(err, ErrNotServed) {
		t.Errorf("removing again: %v", err)
	}
}

func verifications(t *testing.T, e *env) int {
	t.Helper()
	mfs, err := e.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "ferry_content_verification_duration_seconds" {
			return int(mf.GetMetric()[0].GetHistogram().GetSampleCount())
		}
	}
	return 0
}

func TestReadyzBeforeAndAfter(t *testing.T) {
	e := newEnv(t, Options{})
	if code, _, body := e.get("/readyz"); code != 503 || !strings.Contains(string(body), "no bundle is served") {
		t.Errorf("readyz with nothing served: %d %s", code, body)
	}
	e.mustAdd(e.f.iso100)
	if code, _, _ := e.get("/readyz"); code != 200 {
		t.Errorf("readyz: %d", code)
	}
	e.svc.Close()
	if code, _, _ := e.get("/readyz"); code != 503 {
		t.Errorf("readyz after Close: %d", code)
	}
	if _, err := e.svc.Add(context.Background(), e.f.iso110); err == nil {
		t.Error("Add after Close succeeded")
	}
	waitFor(t, "ISOs to close", func() bool { return e.svc.openISO.Load() == 0 })
}
