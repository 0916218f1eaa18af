package builder

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	digest "github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	imgspecv1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/ferry-k8s/ferry/bundle"
	"github.com/ferry-k8s/ferry/bundle/verify"
	"github.com/ferry-k8s/ferry/images/imagetest"
	"github.com/ferry-k8s/ferry/internal/bundletest"
	"github.com/ferry-k8s/ferry/internal/example"
	"github.com/ferry-k8s/ferry/signing"
)

// hostileApp rewrites the example's app image as edit makes it, under the
// same tag, so the spec's oci:images/layout:app source names it.
func hostileApp(t *testing.T, ex *example.Example, edit func(m *imgspecv1.Manifest)) digest.Digest {
	t.Helper()
	layout := filepath.Join(ex.Dir, "images", "layout")
	m, err := imagetest.ReadManifest(layout, digest.Digest(ex.AppDigest))
	if err != nil {
		t.Fatal(err)
	}
	edit(&m)
	desc, err := imagetest.WriteManifest(layout, "app", imgspecv1.MediaTypeImageManifest, m)
	if err != nil {
		t.Fatal(err)
	}
	rewriteSpec(t, ex, ex.AppDigest, desc.Digest.String())
	return desc.Digest
}

// TestBuildRefusesLayerClaimingATebibyte: a layer descriptor that claims
// 1 TiB for a small blob is refused by the builder, naming the image, the
// descriptor and the claim (the content service refuses such a bundle;
// the builder must not sign it).
func TestBuildRefusesLayerClaimingATebibyte(t *testing.T) {
	ex, err := example.Write(filepath.Join(t.TempDir(), "in"), example.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var layer digest.Digest
	hostileApp(t, ex, func(m *imgspecv1.Manifest) {
		m.Layers[0].Size = 1 << 40
		layer = m.Layers[0].Digest
	})
	outDir := t.TempDir()
	_, err = Build(context.Background(), Options{SpecPath: ex.Spec, Output: filepath.Join(outDir, "x.iso"), Signer: ex.Signer, SourceDateEpoch: epoch})
	t.Logf("build: %v", err)
	for _, want := range []string{"registry.example.com/ferry/app", layer.String(), "layers[0]", "1099511627776"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("got %v, want an error containing %q", err, want)
		}
	}
	if entries, _ := os.ReadDir(outDir); len(entries) != 0 {
		t.Fatalf("failed build left %v in the output directory", entries)
	}
}

// appName is the example's single-platform image, as the bundle names it.
const appName = "registry.example.com/ferry/app:1.0"

// hostileISO builds the example with a kept work tree, lets edit change the
// image layout in it, and writes a signed ISO of the result that the
// builder would not have made (bundletest.Resign). It checks that the
// builder's manifest phase refuses the edited tree with an error holding
// every one of want.
func hostileISO(t *testing.T, edit func(ex *example.Example, layout string), want ...string) (string, *signing.Keyring) {
	t.Helper()
	ex, err := example.Write(filepath.Join(t.TempDir(), "in"), example.Options{})
	if err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	out := filepath.Join(t.TempDir(), "hostile.iso")
	opts := Options{SpecPath: ex.Spec, Output: out, Signer: ex.Signer, SourceDateEpoch: epoch, WorkDir: work}
	if _, err := Build(context.Background(), opts); err != nil {
		t.Fatal(err)
	}
	tree := filepath.Join(work, "tree")
	manifest, err := os.ReadFile(filepath.Join(tree, bundle.ManifestPath))
	if err != nil {
		t.Fatal(err)
	}
	edit(ex, filepath.Join(tree, bundle.ImagesDir))
	opts.Phases = []string{"manifest"}
	_, err = Build(context.Background(), opts)
	// The phase removed the manifest before it failed; Resign starts from it.
	writeFile(t, filepath.Join(tree, bundle.ManifestPath), string(manifest))
	for _, w := range want {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Fatalf("builder manifest phase on the edited tree: got %v, want an error containing %q", err, w)
		}
	}
	if err := bundletest.Resign(tree, ex.Signer); err != nil {
		t.Fatal(err)
	}
	opts.Phases = []string{"iso"}
	if _, err := Build(context.Background(), opts); err != nil {
		t.Fatal(err)
	}
	ring, err := signing.LoadKeyringFile(ex.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return out, ring
}

// TestVerifyRefusesImageRuleBreaks: a bundle signed by a trusted key whose
// every file is intact, but whose images break the rules the content
// service serves by, is refused by verify (installer verify) as it is by
// the builder, with the image and descriptor named.
func TestVerifyRefusesImageRuleBreaks(t *testing.T) {
	tests := []struct {
		name string
		edit func(t *testing.T, ex *example.Example, layout string) []string
	}{
		{"layer claiming 1 TiB", func(t *testing.T, ex *example.Example, layout string) []string {
			m, err := imagetest.ReadManifest(layout, digest.Digest(ex.AppDigest))
			if err != nil {
				t.Fatal(err)
			}
			m.Layers[1].Size = 1 << 40
			if _, err := imagetest.WriteManifest(layout, appName, imgspecv1.MediaTypeImageManifest, m); err != nil {
				t.Fatal(err)
			}
			return []string{appName, m.Layers[1].Digest.String(), "layers[1]", "claims 1099511627776 bytes"}
		}},
		{"index inside an index", func(t *testing.T, ex *example.Example, layout string) []string {
			inner, err := imagetest.WriteManifest(layout, "inner", imgspecv1.MediaTypeImageIndex, imgspecv1.Index{
				Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: imgspecv1.MediaTypeImageIndex,
				Manifests: []imgspecv1.Descriptor{},
			})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := imagetest.WriteManifest(layout, appName, imgspecv1.MediaTypeImageIndex, imgspecv1.Index{
				Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: imgspecv1.MediaTypeImageIndex,
				Manifests: []imgspecv1.Descriptor{inner},
			}); err != nil {
				t.Fatal(err)
			}
			// Only the outer one is an image of the bundle.
			if err := dropFromIndex(layout, "inner"); err != nil {
				t.Fatal(err)
			}
			return []string{appName, inner.Digest.String(), "manifests[0]", "an index inside an index"}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var want []string
			iso, ring := hostileISO(t, func(ex *example.Example, layout string) { want = tt.edit(t, ex, layout) }, "break the rules")
			rep, err := verify.Verify(context.Background(), verify.Options{ISO: iso, Keyring: ring, Now: epoch.Add(time.Hour)})
			if !errors.Is(err, verify.ErrFailed) {
				t.Fatalf("verify: %v, want a failure", err)
			}
			for _, w := range want {
				if !hasProblem(rep, "images/index.json", w) {
					t.Errorf("verify problems %+v: none on images/index.json says %q", rep.Problems, w)
				}
			}
		})
	}
}

// dropFromIndex removes the entry named name from layout/index.json.
func dropFromIndex(layout, name string) error {
	p := filepath.Join(layout, imgspecv1.ImageIndexFile)
	data, err := os.ReadFile(p)
	if err != nil {
		return err
	}
	var idx imgspecv1.Index
	if err := json.Unmarshal(data, &idx); err != nil {
		return err
	}
	idx.Manifests = slices.DeleteFunc(idx.Manifests, func(d imgspecv1.Descriptor) bool {
		return d.Annotations[imgspecv1.AnnotationRefName] == name
	})
	if data, err = json.Marshal(idx); err != nil {
		return err
	}
	return os.WriteFile(p, data, 0o644)
}
