// Package example generates a small, complete bundle input from nothing: a
// signing key, signed RPMs (a package with a dependency and a long file name),
// an OCI layout with a single-platform image and a multi-platform index
// sharing no network, and the bundle spec naming them. README's first command
// and the builder's integration tests use it, so what users try first is
// what the tests prove.
package example

import (
	"crypto/sha256"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ferry-k8s/ferry/images/imagetest"
	"github.com/ferry-k8s/ferry/repo/rpmtest"
	"github.com/ferry-k8s/ferry/signing"
)

// Epoch is the fixed creation time of the example's key, and the example
// bundle's SOURCE_DATE_EPOCH in `make example`.
var Epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// Example is what Write produced.
type Example struct {
	Dir        string
	Spec       string // bundle.yaml
	SecretKey  string // release.key.asc (no passphrase)
	PublicKey  string // release.pub.asc
	RPMs       []string
	AppDigest  string // manifest digest of localhost/app:1.0
	IndexAmd64 string // manifest digest of the linux/amd64 instance of the multi-platform image
	Signer     *signing.Signer
}

// Options size the example.
type Options struct {
	// LayerSizes of the app image; default two layers of 256 KiB and 3 MiB (the larger spans several 1 MiB verification chunks).
	LayerSizes []int64
}

// LongRPMName is the file name of the example RPM whose name is longer than
// ISO 9660 allows without Rock Ridge.
const LongRPMName = "ferry-example-with-a-rather-long-package-name-for-rock-ridge-1.0.0-1.noarch.rpm"

// Write creates the example under dir.
func Write(dir string, o Options) (*Example, error) {
	if len(o.LayerSizes) == 0 {
		o.LayerSizes = []int64{256 << 10, 3 << 20}
	}
	ex := &Example{
		Dir:       dir,
		Spec:      filepath.Join(dir, "bundle.yaml"),
		SecretKey: filepath.Join(dir, "release.key.asc"),
		PublicKey: filepath.Join(dir, "release.pub.asc"),
	}
	// A key made from fixed entropy: the example, ISO included, is the same
	// on every machine, so `make example` shows reproducibility end to end.
	// Never do this for a real key.
	seed := sha256.Sum256([]byte("ferry example key"))
	sec, pub, err := signing.GenerateKey(signing.KeyOptions{Name: "Ferry Example Release", Email: "release@example.invalid", Created: Epoch, Rand: rand.NewChaCha8(seed)})
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(dir, "rpms"), 0o755); err != nil {
		return nil, err
	}
	if err := os.WriteFile(ex.SecretKey, sec, 0o600); err != nil {
		return nil, err
	}
	if err := os.WriteFile(ex.PublicKey, pub, 0o644); err != nil {
		return nil, err
	}
	if ex.Signer, err = signing.LoadSignerFile(ex.SecretKey, nil); err != nil {
		return nil, err
	}
	sign := func(data []byte) ([]byte, error) { return ex.Signer.SignBytes(data, Epoch, false) }
	for _, s := range []rpmtest.Spec{
		{Name: "ferry-hello", Version: "1.0.0", Requires: []string{"ferry-hello-data >= 1.0"},
			Files: map[string][]byte{"/usr/bin/ferry-hello": []byte("#!/bin/sh\ncat /usr/share/ferry-hello/greeting\n")}},
		{Name: "ferry-hello-data", Version: "1.0.0",
			Files: map[string][]byte{"/usr/share/ferry-hello/greeting": []byte("hello from an air-gapped bundle\n")}},
		{Name: strings.TrimSuffix(LongRPMName, "-1.0.0-1.noarch.rpm"), Version: "1.0.0",
			Files: map[string][]byte{"/usr/share/doc/ferry-example/README": []byte("long names survive\n")}},
	} {
		p, err := rpmtest.Build(filepath.Join(dir, "rpms"), s, sign)
		if err != nil {
			return nil, fmt.Errorf("building example rpm %s: %w", s.Name, err)
		}
		ex.RPMs = append(ex.RPMs, p)
	}
	layout := filepath.Join(dir, "images", "layout")
	d, err := imagetest.WriteImage(layout, "app", 1, o.LayerSizes)
	if err != nil {
		return nil, fmt.Errorf("writing example image: %w", err)
	}
	ex.AppDigest = d.String()
	_, perPlatform, err := imagetest.WriteIndex(layout, "multi", 2)
	if err != nil {
		return nil, fmt.Errorf("writing example index: %w", err)
	}
	ex.IndexAmd64 = perPlatform["linux/amd64"].String()
	spec := `# A Ferry bundle spec: what goes on the ISO. Paths are relative to this file.
apiVersion: ferry.dev/v1alpha1
kind: Bundle
metadata:
  name: example
  version: 1.0.0
spec:
  # The example never expires within the project's lifetime (100 years, the
  # longest allowed): its key is made from public entropy and vouches for
  # nothing. A real bundle keeps the default, 365d, and is extended with
  # builder extend when a site needs it longer.
  expiresAfter: 36500d
  images:
    - source: oci:images/layout:app
      name: registry.example.com/ferry/app:1.0
      digest: ` + ex.AppDigest + `
    - source: oci:images/layout:multi
      name: registry.example.com/ferry/multi:1.0
      platforms: [linux/amd64]
  packages:
    - directory: rpms/
      repo: base
`
	if err := os.WriteFile(ex.Spec, []byte(spec), 0o644); err != nil {
		return nil, err
	}
	return ex, nil
}
