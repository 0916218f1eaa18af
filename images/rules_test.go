package images

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	digest "github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	imgspecv1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/ferry-k8s/ferry/images/imagetest"
)

// hashLookup reports the files under dir as they are (what a caller that
// verified them against a manifest would report).
func hashLookup(dir string) BlobLookup {
	return func(name string) (int64, string, bool) {
		data, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(name)))
		if err != nil {
			return 0, "", false
		}
		sum := sha256.Sum256(data)
		return int64(len(data)), hex.EncodeToString(sum[:]), true
	}
}

// ruleLayout is a layout with one image ("app") and one two-platform index
// ("multi"), both within the rules.
func ruleLayout(t *testing.T) (dir string, app digest.Digest, multi digest.Digest) {
	t.Helper()
	dir = t.TempDir()
	app, err := imagetest.WriteImage(dir, "app", 1, []int64{4 << 10, 8 << 10})
	if err != nil {
		t.Fatal(err)
	}
	multi, _, err = imagetest.WriteIndex(dir, "multi", 2)
	if err != nil {
		t.Fatal(err)
	}
	return dir, app, multi
}

func TestCheckLayoutAcceptsAndIndexes(t *testing.T) {
	dir, app, multi := ruleLayout(t)
	l, err := CheckLayout(os.DirFS(dir), ".", hashLookup(dir))
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Images) != 2 || l.Images[0].Name != "app" || l.Images[1].Name != "multi" {
		t.Fatalf("images %+v", l.Images)
	}
	// app: manifest, config, 2 layers; multi: index, 2 × (manifest, config, 2 layers).
	if n := len(l.Reach["app"]); n != 4 {
		t.Errorf("app reaches %d objects, want 4", n)
	}
	if n := len(l.Reach["multi"]); n != 9 {
		t.Errorf("multi reaches %d objects, want 9", n)
	}
	if o := l.Objects[app]; !o.Manifest || o.MediaType != imgspecv1.MediaTypeImageManifest || o.Path != "blobs/sha256/"+app.Encoded() {
		t.Errorf("app object %+v", o)
	}
	if o := l.Objects[multi]; !o.Manifest || o.MediaType != imgspecv1.MediaTypeImageIndex {
		t.Errorf("multi object %+v", o)
	}
	for _, d := range l.Reach["app"] {
		if _, ok := l.Objects[d]; !ok {
			t.Errorf("reached %s is not an object", d)
		}
	}
}

// TestCheckLayoutRefuses breaks one rule at a time; each error names the
// image, the descriptor and what is wrong.
func TestCheckLayoutRefuses(t *testing.T) {
	index := func(ms ...imgspecv1.Descriptor) imgspecv1.Index {
		return imgspecv1.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: imgspecv1.MediaTypeImageIndex, Manifests: ms}
	}
	tests := []struct {
		name string
		// edit breaks the layout and returns what the error must say.
		edit func(t *testing.T, dir string, app imgspecv1.Manifest, appDesc imgspecv1.Descriptor) []string
	}{
		{"layer claiming 1 TiB", func(t *testing.T, dir string, m imgspecv1.Manifest, _ imgspecv1.Descriptor) []string {
			m.Layers[1].Size = 1 << 40
			write(t, dir, "bad", imgspecv1.MediaTypeImageManifest, m)
			return []string{"image bad:", "layers[1] " + m.Layers[1].Digest.String(), "descriptor claims 1099511627776 bytes, the blob holds"}
		}},
		{"layer claiming fewer bytes", func(t *testing.T, dir string, m imgspecv1.Manifest, _ imgspecv1.Descriptor) []string {
			m.Layers[0].Size--
			write(t, dir, "bad", imgspecv1.MediaTypeImageManifest, m)
			return []string{"layers[0]", "descriptor claims"}
		}},
		{"config of another size", func(t *testing.T, dir string, m imgspecv1.Manifest, _ imgspecv1.Descriptor) []string {
			m.Config.Size++
			write(t, dir, "bad", imgspecv1.MediaTypeImageManifest, m)
			return []string{"config " + m.Config.Digest.String(), "descriptor claims"}
		}},
		{"config over 4 MiB", func(t *testing.T, dir string, m imgspecv1.Manifest, _ imgspecv1.Descriptor) []string {
			m.Config.Size = 5 << 20
			write(t, dir, "bad", imgspecv1.MediaTypeImageManifest, m)
			return []string{"config " + m.Config.Digest.String(), "claims 5242880 bytes, more than 4194304"}
		}},
		{"missing layer", func(t *testing.T, dir string, m imgspecv1.Manifest, _ imgspecv1.Descriptor) []string {
			m.Layers[0].Digest = digest.FromString("nowhere")
			write(t, dir, "bad", imgspecv1.MediaTypeImageManifest, m)
			return []string{"layers[0]", "is not in the layout"}
		}},
		{"sha512 layer", func(t *testing.T, dir string, m imgspecv1.Manifest, _ imgspecv1.Descriptor) []string {
			m.Layers[0].Digest = digest.SHA512.FromString("x")
			write(t, dir, "bad", imgspecv1.MediaTypeImageManifest, m)
			return []string{"layers[0]", "only well-formed sha256 digests"}
		}},
		{"layer whose bytes are not its digest", func(t *testing.T, dir string, m imgspecv1.Manifest, _ imgspecv1.Descriptor) []string {
			p := filepath.Join(dir, "blobs", "sha256", m.Layers[0].Digest.Encoded())
			data, _ := os.ReadFile(p)
			data[0] ^= 1
			os.WriteFile(p, data, 0o644)
			return []string{"image app:", "layers[0]", "not the digest it is named by"}
		}},
		{"manifest without a config", func(t *testing.T, dir string, m imgspecv1.Manifest, _ imgspecv1.Descriptor) []string {
			write(t, dir, "bad", imgspecv1.MediaTypeImageManifest, map[string]any{"schemaVersion": 2, "mediaType": m.MediaType, "layers": m.Layers})
			return []string{"image bad:", "no config"}
		}},
		{"schemaVersion 1", func(t *testing.T, dir string, m imgspecv1.Manifest, _ imgspecv1.Descriptor) []string {
			m.SchemaVersion = 1
			write(t, dir, "bad", imgspecv1.MediaTypeImageManifest, m)
			return []string{"image bad:", "schemaVersion must be 2"}
		}},
		{"manifest disowning its media type", func(t *testing.T, dir string, m imgspecv1.Manifest, _ imgspecv1.Descriptor) []string {
			write(t, dir, "bad", "application/vnd.docker.distribution.manifest.v2+json", m)
			return []string{"image bad:", `says media type "application/vnd.oci.image.manifest.v1+json"`}
		}},
		{"index inside an index", func(t *testing.T, dir string, _ imgspecv1.Manifest, appDesc imgspecv1.Descriptor) []string {
			inner := write(t, dir, "inner", imgspecv1.MediaTypeImageIndex, index(appDesc))
			write(t, dir, "bad", imgspecv1.MediaTypeImageIndex, index(inner))
			return []string{"image bad:", "index " + inner.Digest.String() + " (manifests[0])", "an index inside an index"}
		}},
		{"index child of an unsupported type", func(t *testing.T, dir string, _ imgspecv1.Manifest, appDesc imgspecv1.Descriptor) []string {
			appDesc.MediaType = "application/vnd.docker.distribution.manifest.v1+json"
			write(t, dir, "bad", imgspecv1.MediaTypeImageIndex, index(appDesc))
			return []string{"image bad:", "manifests[0]", "unsupported media type"}
		}},
		{"index child of 5 MiB", func(t *testing.T, dir string, _ imgspecv1.Manifest, appDesc imgspecv1.Descriptor) []string {
			appDesc.Size = 5 << 20
			write(t, dir, "bad", imgspecv1.MediaTypeImageIndex, index(appDesc))
			return []string{"image bad:", "manifests[0]", "claims 5242880 bytes, out of range"}
		}},
		{"index child of another size", func(t *testing.T, dir string, _ imgspecv1.Manifest, appDesc imgspecv1.Descriptor) []string {
			appDesc.Size++
			write(t, dir, "bad", imgspecv1.MediaTypeImageIndex, index(appDesc))
			return []string{"image bad:", "manifests[0]", "descriptor claims"}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir, app, _ := ruleLayout(t)
			m, err := imagetest.ReadManifest(dir, app)
			if err != nil {
				t.Fatal(err)
			}
			st, err := os.Stat(filepath.Join(dir, "blobs", "sha256", app.Encoded()))
			if err != nil {
				t.Fatal(err)
			}
			want := tt.edit(t, dir, m, imgspecv1.Descriptor{MediaType: imgspecv1.MediaTypeImageManifest, Digest: app, Size: st.Size()})
			_, err = CheckLayout(os.DirFS(dir), ".", hashLookup(dir))
			for _, w := range want {
				if err == nil || !strings.Contains(err.Error(), w) {
					t.Fatalf("got %v, want an error containing %q", err, w)
				}
			}
		})
	}
}

func write(t *testing.T, dir, tag, mediaType string, v any) imgspecv1.Descriptor {
	t.Helper()
	d, err := imagetest.WriteManifest(dir, tag, mediaType, v)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestCheckLayoutReadsManifestsByDigest: a manifest whose file holds other
// bytes than its digest names is refused even when the lookup (wrongly)
// vouches for it.
func TestCheckLayoutReadsManifestsByDigest(t *testing.T) {
	dir, app, _ := ruleLayout(t)
	p := filepath.Join(dir, "blobs", "sha256", app.Encoded())
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	data = slices.Clone(data)
	data[len(data)-2] = ' ' // still JSON, other bytes
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	lie := func(name string) (int64, string, bool) {
		size, sum, ok := hashLookup(dir)(name)
		if name == "blobs/sha256/"+app.Encoded() {
			sum = app.Encoded()
		}
		return size, sum, ok
	}
	_, err = CheckLayout(os.DirFS(dir), ".", lie)
	if err == nil || !strings.Contains(err.Error(), "image app: manifest "+app.String()) || !strings.Contains(err.Error(), "does not match its digest") {
		t.Fatalf("got %v", err)
	}
}
