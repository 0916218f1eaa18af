package integration

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/ferry-k8s/ferry/bundle"
	"github.com/ferry-k8s/ferry/internal/testutil"
)

// TestTamperAfterStart changes one byte of a layer inside the served ISO
// after the service verified it (as bit rot or a hostile write would; the
// file's mtime is put back). The download of that blob must fail without
// the changed bytes ever reaching the client, the failure must be counted
// in /metrics, and everything else must still be served.
func TestTamperAfterStart(t *testing.T) {
	testutil.Need(t, "skopeo")
	isoPath := copyISO(t)
	s := startServer(t, serveOptions{isos: []string{isoPath}})
	c := s.client(t, false)
	m := appManifest(t, isoPath)

	// The largest layer spans several verification chunks; change a byte
	// in its second chunk, so that the first chunk is served intact.
	large, small := m.Layers[0], m.Layers[1]
	if small.Size > large.Size {
		large, small = small, large
	}
	if large.Size <= 2*bundle.ChunkSize {
		t.Fatalf("largest layer has %d bytes; the test needs more than two %d-byte chunks", large.Size, bundle.ChunkSize)
	}
	original, fi := bundleFile(t, isoPath, blobPath(large.Digest))
	rel := int64(bundle.ChunkSize + bundle.ChunkSize/2)
	if len(fi.Extents) == 0 || fi.Extents[0].Length <= rel {
		t.Fatalf("extents of the layer: %+v", fi.Extents)
	}
	flipByte(t, isoPath, fi.Extents[0].Offset+rel)
	blobURL := "/v2/registry.example.com/ferry/app/blobs/" + large.Digest

	// A Go client sees an error: a status or a body cut short.
	code, body, err := s.get(t, c, blobURL)
	if err == nil && code == http.StatusOK {
		t.Fatalf("GET of the changed blob succeeded with %d bytes (digest %s)", len(body), sha256Digest(body))
	}
	t.Logf("GET of the changed blob (HTTP/2): status %d, %d bytes, error %v", code, len(body), err)
	if int64(len(body)) > bundle.ChunkSize || !bytes.Equal(body, original[:len(body)]) {
		t.Errorf("the client received %d bytes, beyond the intact first chunk or different from the bundle's", len(body))
	}
	// Over HTTP/1.1 the connection is closed before Content-Length bytes.
	h1 := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: shared.roots},
		TLSNextProto: map[string]func(string, *tls.Conn) http.RoundTripper{}}}
	defer h1.CloseIdleConnections()
	code, body, err = s.get(t, h1, blobURL)
	if err == nil && code == http.StatusOK {
		t.Fatalf("GET of the changed blob over HTTP/1.1 succeeded with %d bytes", len(body))
	}
	t.Logf("GET of the changed blob (HTTP/1.1): status %d, %d bytes, error %v", code, len(body), err)
	if int64(len(body)) > bundle.ChunkSize || !bytes.Equal(body, original[:len(body)]) {
		t.Errorf("the HTTP/1.1 client received %d bytes, beyond the intact first chunk or different from the bundle's", len(body))
	}
	if failures := s.metric(t, "ferry_content_digest_failures_total"); failures < 1 {
		t.Errorf("ferry_content_digest_failures_total = %v after a digest failure", failures)
	}

	// A range wholly inside intact chunks is still served.
	from := int64(2 * bundle.ChunkSize)
	code, body, err = s.get(t, c, blobURL, "Range", fmt.Sprintf("bytes=%d-", from))
	if err != nil || code != http.StatusPartialContent || !bytes.Equal(body, original[from:]) {
		t.Errorf("range of intact chunks: %d %v, %d bytes (want %d)", code, err, len(body), int64(len(original))-from)
	}

	// skopeo, which would check the digest itself, fails to copy the image.
	out := filepath.Join(t.TempDir(), "oci")
	if o, err := runErr(t, "skopeo", "copy", "--src-cert-dir", shared.certDir,
		"docker://"+s.addr+"/registry.example.com/ferry/app:1.0", "oci:"+out+":app"); err == nil {
		t.Errorf("skopeo copied an image whose layer changed on the ISO:\n%s", o)
	}

	// Everything else is served, digests intact.
	for _, d := range []string{small.Digest, m.Config.Digest} {
		code, body, err := s.get(t, c, "/v2/registry.example.com/ferry/app/blobs/"+d)
		if err != nil || code != http.StatusOK || sha256Digest(body) != d {
			t.Errorf("GET blob %s after the tampering: %d %v digest %s", d, code, err, sha256Digest(body))
		}
	}
	code, body, err = s.get(t, c, "/v2/registry.example.com/ferry/app/manifests/1.0", "Accept", "application/vnd.oci.image.manifest.v1+json")
	if err != nil || code != http.StatusOK || sha256Digest(body) != shared.ex.AppDigest {
		t.Errorf("GET the app manifest after the tampering: %d %v", code, err)
	}
	run(t, "skopeo", "copy", "--all", "--src-cert-dir", shared.certDir,
		"docker://"+s.addr+"/registry.example.com/ferry/multi:1.0", "oci:"+filepath.Join(t.TempDir(), "multi")+":multi")
	code, body, err = s.get(t, c, "/repos/1.0.0/base/repodata/repomd.xml")
	if err != nil || code != http.StatusOK || !bytes.Contains(body, []byte("<repomd")) {
		t.Errorf("GET repomd.xml after the tampering: %d %v", code, err)
	}
	// The failure repeats (nothing was cached from the changed chunk).
	if code, _, err := s.get(t, c, blobURL); err == nil && code == http.StatusOK {
		t.Error("a second GET of the changed blob succeeded")
	}
}

// flipByte inverts the byte at off of the file at p, keeping its mtime.
func flipByte(t *testing.T, p string, off int64) {
	t.Helper()
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	fh, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 1)
	if _, err := fh.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0xff
	if _, err := fh.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
	if err := fh.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(p, st.ModTime(), st.ModTime()); err != nil {
		t.Fatal(err)
	}
}
