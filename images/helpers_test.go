package images

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	digest "github.com/opencontainers/go-digest"
	imgspecv1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/ferry-k8s/ferry/internal/testutil"
)

// skopeo runs the real skopeo binary; a missing binary fails the test.
func skopeo(t testing.TB, args ...string) []byte {
	t.Helper()
	return testutil.MustRun(t, "skopeo", args...)
}

// skopeoCopy copies with skopeo, independent of the host's policy.json.
func skopeoCopy(t testing.TB, args ...string) {
	t.Helper()
	skopeo(t, append([]string{"--insecure-policy", "copy", "--quiet"}, args...)...)
}

// skopeoRawDigest is the digest of `skopeo inspect --raw ref`.
func skopeoRawDigest(t testing.TB, ref string) digest.Digest {
	t.Helper()
	return digest.FromBytes(skopeo(t, "inspect", "--raw", ref))
}

// libRawDigest is the digest of the top-level manifest of ref, read with the
// linked containers/image.
func libRawDigest(t testing.TB, ref string) digest.Digest {
	t.Helper()
	r, err := parseRef(ref)
	if err != nil {
		t.Fatal(err)
	}
	src, err := r.NewImageSource(context.Background(), nil)
	if err != nil {
		t.Fatalf("opening %s: %v", ref, err)
	}
	defer src.Close()
	m, _, err := src.GetManifest(context.Background(), nil)
	if err != nil {
		t.Fatalf("reading %s: %v", ref, err)
	}
	return digest.FromBytes(m)
}

// skopeoInspectDigest is the Digest field of `skopeo inspect ref`.
// Global options (e.g. --override-arch) may precede it.
func skopeoInspectDigest(t testing.TB, ref string, global ...string) digest.Digest {
	t.Helper()
	var out struct{ Digest digest.Digest }
	if err := json.Unmarshal(skopeo(t, append(global, "inspect", ref)...), &out); err != nil {
		t.Fatalf("skopeo inspect %s: %v", ref, err)
	}
	return out.Digest
}

func blobPath(layout string, d digest.Digest) string {
	return filepath.Join(layout, "blobs", d.Algorithm().String(), d.Encoded())
}

func readJSONBlob(t testing.TB, layout string, d digest.Digest, v any) {
	t.Helper()
	data, err := os.ReadFile(blobPath(layout, d))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, v); err != nil {
		t.Fatalf("blob %s: %v", d, err)
	}
}

// blobFiles lists the blob files of a layout and checks each file's content
// against its name.
func blobFiles(t testing.TB, layout string) map[digest.Digest]bool {
	t.Helper()
	dir := filepath.Join(layout, "blobs", "sha256")
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[digest.Digest]bool{}
	for _, e := range entries {
		d := digest.NewDigestFromEncoded(digest.SHA256, e.Name())
		if err := d.Validate(); err != nil {
			t.Errorf("unexpected file %s in %s", e.Name(), dir)
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if got := digest.FromBytes(data); got != d {
			t.Errorf("blob %s has content %s", d, got)
		}
		out[d] = true
	}
	return out
}

// reachableBlobs walks manifests and indexes from the roots and returns every
// blob they reference, themselves included.
func reachableBlobs(t testing.TB, layout string, roots ...digest.Digest) map[digest.Digest]bool {
	t.Helper()
	out := map[digest.Digest]bool{}
	var walk func(d digest.Digest)
	walk = func(d digest.Digest) {
		if out[d] {
			return
		}
		out[d] = true
		var m struct {
			MediaType string                 `json:"mediaType"`
			Config    *imgspecv1.Descriptor  `json:"config"`
			Layers    []imgspecv1.Descriptor `json:"layers"`
			Manifests []imgspecv1.Descriptor `json:"manifests"`
		}
		readJSONBlob(t, layout, d, &m)
		if m.Config != nil {
			out[m.Config.Digest] = true
		}
		for _, l := range m.Layers {
			out[l.Digest] = true
		}
		for _, c := range m.Manifests {
			walk(c.Digest)
		}
	}
	for _, r := range roots {
		walk(r)
	}
	return out
}

// treeHashes maps every regular file under dir (relative path) to its sha256.
func treeHashes(t testing.TB, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if d.IsDir() {
			out[rel+"/"] = "dir"
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(data)
		out[rel] = hex.EncodeToString(sum[:])
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

type manifestJSON struct {
	MediaType string                 `json:"mediaType"`
	Config    imgspecv1.Descriptor   `json:"config"`
	Layers    []imgspecv1.Descriptor `json:"layers"`
	Manifests []imgspecv1.Descriptor `json:"manifests"`
}
