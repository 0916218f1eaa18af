package builder

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/ferry-k8s/ferry/builder/distro"
	"github.com/ferry-k8s/ferry/bundle"
)

// distroDir is where the distro phase leaves its RPMs, OCI layout and
// record in the work directory.
func (b *build) distroDir() string { return filepath.Join(b.workDir, "distro") }

// distribution builds the from-source distribution (spec.distribution):
// components compiled from their pinned Go modules, RPMs, and images
// composed from the RPMs. Its output joins the spec's images and packages.
func (b *build) distribution(ctx context.Context) error {
	d := b.spec.Spec.Distribution
	if d == nil {
		return nil
	}
	if b.opts.CacheDir == "" {
		return errors.New("spec.distribution: building from source needs a cache directory (--cache-dir)")
	}
	if b.opts.InstallerBinary == "" {
		return errors.New("spec.distribution: the installer is packaged as an RPM too (R18): give its binary (--installer)")
	}
	if b.opts.Signer == nil {
		return errors.New("spec.distribution: RPMs are signed: no signing key given")
	}
	instVersion, err := binaryVersion(ctx, b.opts.InstallerBinary)
	if err != nil {
		return err
	}
	_, err = distro.Build(ctx, distro.Options{
		Spec:             d.Resolved(b.spec.Spec.KubernetesVersion),
		CacheDir:         filepath.Join(b.opts.CacheDir, "distro"),
		OutDir:           b.distroDir(),
		Signer:           b.opts.Signer,
		BuildTime:        b.created,
		Installer:        b.opts.InstallerBinary,
		InstallerVersion: instVersion,
		Log:              b.log,
	})
	if err != nil {
		return fmt.Errorf("spec.distribution: %w", err)
	}
	// The build record goes on the ISO: every binary traced to its source.
	if err := copyFile(filepath.Join(b.distroDir(), bundle.DistributionRecordName), filepath.Join(b.tree, bundle.DistributionRecordName), 0o644); err != nil {
		return err
	}
	return b.addDistribution()
}

// addDistribution adds what the distro phase built (read from its record
// in the work directory, so later phases run alone find it too) to the
// spec: every image pinned by its digest, and the RPM directory.
func (b *build) addDistribution() error {
	d := b.spec.Spec.Distribution
	if d == nil {
		return nil
	}
	data, err := os.ReadFile(filepath.Join(b.distroDir(), bundle.DistributionRecordName))
	if errors.Is(err, os.ErrNotExist) {
		return nil // not built yet: the distro phase comes first
	}
	if err != nil {
		return err
	}
	var rec bundle.DistributionRecord
	if err := json.Unmarshal(data, &rec); err != nil {
		return fmt.Errorf("reading %s: %w", bundle.DistributionRecordName, err)
	}
	r := d.Resolved(b.spec.Spec.KubernetesVersion)
	b.distroImages = map[string]string{}
	for _, im := range rec.Images {
		b.distroImages[im.Name] = "ferry-distribution:" + im.Name
		for _, have := range b.spec.Spec.Images {
			if have.Name == im.Name {
				return fmt.Errorf("spec.images names %s, which the distribution builds", im.Name)
			}
		}
		b.spec.Spec.Images = append(b.spec.Spec.Images, bundle.ImageSpec{
			Source: "oci:" + filepath.Join(b.distroDir(), "oci") + ":" + im.Name,
			Name:   im.Name,
			Digest: im.Digest,
		})
	}
	b.spec.Spec.Packages = append(b.spec.Spec.Packages, bundle.PackagesSpec{Directory: filepath.Join(b.distroDir(), "rpms"), Repo: r.Repo})
	return nil
}

// binaryVersion asks a Ferry binary for its version ("installer version X").
func binaryVersion(ctx context.Context, bin string) (string, error) {
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, "--version")
	cmd.Stdout = &out
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("asking %s for its version: %w", bin, err)
	}
	f := strings.Fields(out.String())
	if len(f) == 0 {
		return "", fmt.Errorf("%s --version printed nothing", bin)
	}
	return f[len(f)-1], nil
}

// loadDefaultSpec parses the embedded default spec (Options.Default).
func (b *build) loadDefaultSpec() error {
	data, err := distro.DefaultSpecYAML(b.opts.KubernetesVersion, b.opts.BundleVersion)
	if err != nil {
		return err
	}
	dir, err := os.Getwd()
	if err != nil {
		return err
	}
	spec, err := bundle.ParseSpec(data, dir)
	if err != nil {
		return fmt.Errorf("default spec: %w", err)
	}
	b.spec, b.pins = spec, nil
	return nil
}

// imageOrigin is what the bundle records as an image's source: the spec's
// source, or for an image built from source its distribution name (not a
// path in the work directory, which would make builds differ).
func (b *build) imageOrigin(im bundle.ImageSpec) string {
	if o, ok := b.distroImages[im.Name]; ok {
		return o
	}
	return im.Source
}
