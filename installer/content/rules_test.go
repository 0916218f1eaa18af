package content

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	digest "github.com/opencontainers/go-digest"
	imgspecv1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/ferry-k8s/ferry/builder"
	"github.com/ferry-k8s/ferry/bundle"
	"github.com/ferry-k8s/ferry/bundle/verify"
	"github.com/ferry-k8s/ferry/images/imagetest"
	"github.com/ferry-k8s/ferry/internal/bundletest"
	"github.com/ferry-k8s/ferry/internal/example"
	"github.com/ferry-k8s/ferry/signing"
)

// TestImageRuleBreaksAreRefused: a signed, intact bundle whose image
// manifest claims a 1 TiB layer (which the builder would not make:
// bundletest.Resign signs it) is refused by `installer bundle add`
// (CheckISO) and by the service (Add), naming the image and descriptor.
func TestImageRuleBreaksAreRefused(t *testing.T) {
	ex, err := example.Write(filepath.Join(t.TempDir(), "in"), example.Options{})
	if err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	iso := filepath.Join(t.TempDir(), "hostile.iso")
	opts := builder.Options{SpecPath: ex.Spec, Output: iso, Signer: ex.Signer, SourceDateEpoch: time.Now().Add(-time.Hour).Truncate(time.Second), WorkDir: work}
	if _, err := builder.Build(context.Background(), opts); err != nil {
		t.Fatal(err)
	}
	tree := filepath.Join(work, "tree")
	layout := filepath.Join(tree, bundle.ImagesDir)
	const name = "registry.example.com/ferry/app:1.0"
	m, err := imagetest.ReadManifest(layout, digest.Digest(ex.AppDigest))
	if err != nil {
		t.Fatal(err)
	}
	m.Layers[0].Size = 1 << 40
	if _, err := imagetest.WriteManifest(layout, name, imgspecv1.MediaTypeImageManifest, m); err != nil {
		t.Fatal(err)
	}
	if err := bundletest.Resign(tree, ex.Signer); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(iso); err != nil {
		t.Fatal(err)
	}
	opts.Phases = []string{"iso"}
	if _, err := builder.Build(context.Background(), opts); err != nil {
		t.Fatal(err)
	}
	ring, err := signing.LoadKeyringFile(ex.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{iso, name, m.Layers[0].Digest.String(), "layers[0]", "claims 1099511627776 bytes"}
	check := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, verify.ErrFailed) {
			t.Errorf("%s: %v, want a verification failure", what, err)
		}
		for _, w := range want {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Errorf("%s: %v, want an error containing %q", what, err, w)
			}
		}
	}
	_, err = CheckISO(context.Background(), iso, ring, verify.Options{})
	check("CheckISO (installer bundle add)", err)

	e := newEnv(t, Options{Keyring: ring})
	_, err = e.svc.Add(context.Background(), iso)
	check("Add", err)
	if n := len(e.svc.Bundles()); n != 0 {
		t.Fatalf("serving %d bundles after a refused Add", n)
	}
}
