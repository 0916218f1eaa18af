package integration

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferry-k8s/ferry/internal/testutil"
)

// TestSkopeoCopiesFromTheService pulls the example images with skopeo over
// TLS, trusting only the test CA, and checks that the digests are the
// bundle's.
func TestSkopeoCopiesFromTheService(t *testing.T) {
	testutil.Need(t, "skopeo")
	s := startServer(t, serveOptions{})
	app := "docker://" + s.addr + "/registry.example.com/ferry/app:1.0"

	raw := run(t, "skopeo", "inspect", "--raw", "--cert-dir", shared.certDir, app)
	if got := sha256Digest([]byte(raw)); got != shared.ex.AppDigest {
		t.Errorf("skopeo inspect --raw: manifest digest %s, the bundle's is %s", got, shared.ex.AppDigest)
	}
	var insp struct{ Digest string }
	if err := json.Unmarshal([]byte(run(t, "skopeo", "inspect", "--cert-dir", shared.certDir, app)), &insp); err != nil {
		t.Fatal(err)
	}
	if insp.Digest != shared.ex.AppDigest {
		t.Errorf("skopeo inspect: digest %s, want %s", insp.Digest, shared.ex.AppDigest)
	}

	// A full copy: skopeo checks every blob's digest and size on the way.
	out := filepath.Join(t.TempDir(), "oci")
	run(t, "skopeo", "copy", "--src-cert-dir", shared.certDir, app, "oci:"+out+":app")
	idx, err := os.ReadFile(filepath.Join(out, "index.json"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(idx), shared.ex.AppDigest) {
		t.Errorf("copied layout's index.json does not name %s:\n%s", shared.ex.AppDigest, idx)
	}
	m := appManifest(t, shared.iso)
	for _, l := range m.Layers {
		b, err := os.ReadFile(filepath.Join(out, "blobs", "sha256", strings.TrimPrefix(l.Digest, "sha256:")))
		if err != nil {
			t.Fatalf("layer %s not copied: %v", l.Digest, err)
		}
		if sha256Digest(b) != l.Digest {
			t.Errorf("layer %s copied with digest %s", l.Digest, sha256Digest(b))
		}
	}

	// The multi-platform image: the index as built (linux/amd64 only).
	multi := "docker://" + s.addr + "/registry.example.com/ferry/multi:1.0"
	var index ociManifest
	if err := json.Unmarshal([]byte(run(t, "skopeo", "inspect", "--raw", "--cert-dir", shared.certDir, multi)), &index); err != nil {
		t.Fatal(err)
	}
	if len(index.Manifests) != 1 || index.Manifests[0].Digest != shared.ex.IndexAmd64 {
		t.Errorf("multi index %+v, want only %s", index.Manifests, shared.ex.IndexAmd64)
	}
	run(t, "skopeo", "copy", "--all", "--src-cert-dir", shared.certDir, multi, "oci:"+filepath.Join(t.TempDir(), "multi")+":multi")

	// Without the CA, skopeo refuses the server.
	if o, err := runErr(t, "skopeo", "inspect", "--raw", app); err == nil {
		t.Errorf("skopeo trusted the test server without its CA:\n%s", o)
	}
}
