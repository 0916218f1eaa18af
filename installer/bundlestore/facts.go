package bundlestore

import (
	"context"
	"encoding/json"
	"fmt"
	"path"
	"strings"
	"time"

	"github.com/ferry-k8s/ferry/bundle"
	"github.com/ferry-k8s/ferry/bundle/verify"
	"github.com/ferry-k8s/ferry/installer/desired"
	"github.com/ferry-k8s/ferry/repo"
	"github.com/ferry-k8s/ferry/signing"
)

// Facts are what convergence needs to know of a bundle: read from a
// verified ISO only.
type Facts struct {
	Name, Version     string
	KubernetesVersion string
	// MinUpgradeFrom is the oldest installed bundle version this one
	// may upgrade (the manifest's minUpgradeFrom; empty: any).
	MinUpgradeFrom string
	// Repo is the yum repository of the distribution's RPMs.
	Repo string
	// Packages maps each package of Repo to its version-release.
	Packages map[string]string
	// Images are the bundle's image names; Distribution its build record.
	Images       []string
	Distribution bundle.DistributionRecord
	// ImageRepository is where the distribution's images are named
	// (registry.ferry.dev/k8s).
	ImageRepository string
	// ManifestSHA256 identifies the bundle's content (validity statements
	// bind to it); ValidUntil is its end of validity (a statement's, when
	// one extends it), Expired whether that has passed (only possible for
	// an installed bundle: a new one is refused), Warnings what the check
	// found worth telling.
	ManifestSHA256 string
	ValidUntil     time.Time
	Expired        bool
	Warnings       []string
}

// Image returns the full name of the distribution image named base
// ("pause", "etcd", "coredns").
func (f *Facts) Image(base string) (string, bool) {
	for _, im := range f.Distribution.Images {
		name := im.Name[strings.LastIndex(im.Name, "/")+1:]
		if b, _, _ := strings.Cut(name, ":"); b == base {
			return im.Name, true
		}
	}
	return "", false
}

// Desired is what the desired node needs to know of the bundle.
func (f *Facts) Desired() desired.Bundle {
	b := desired.Bundle{Name: f.Name, Version: f.Version, KubernetesVersion: f.KubernetesVersion, Repo: f.Repo,
		Packages: f.Packages, ImageRepository: f.ImageRepository, Images: map[string]string{}}
	for _, im := range f.Distribution.Images {
		name := im.Name[strings.LastIndex(im.Name, "/")+1:]
		if base, _, _ := strings.Cut(name, ":"); b.Images[base] == "" {
			b.Images[base] = im.Name
		}
	}
	return b
}

// ReadFacts verifies the ISO in full (signature, validity, every file) and
// reads its facts. It changes nothing on the node. A bundle newly
// imported, joined or upgraded to must be within its validity (or
// extended, opts.ValidityFile); an installed one (opts.Installed) is
// reported expired, never refused.
func ReadFacts(ctx context.Context, isoPath string, ring *signing.Keyring, opts verify.Options) (*Facts, error) {
	b, _, err := verify.OpenVerified(ctx, isoPath, ring, opts)
	if err != nil {
		return nil, err
	}
	defer b.Close()
	m := b.Manifest
	f := &Facts{Name: m.Name, Version: m.Version, KubernetesVersion: m.KubernetesVersion, MinUpgradeFrom: m.MinUpgradeFrom, Packages: map[string]string{},
		ManifestSHA256: b.ManifestSHA256, ValidUntil: b.ValidUntil, Expired: b.Expired, Warnings: b.Warnings}
	fsys := b.FS()
	data, err := verify.ReadFile(fsys, bundle.DistributionRecordName, 4<<20)
	if err != nil {
		return nil, fmt.Errorf("bundle %s has no %s: not a Kubernetes distribution bundle: %w", isoPath, bundle.DistributionRecordName, err)
	}
	if err := json.Unmarshal(data, &f.Distribution); err != nil {
		return nil, fmt.Errorf("bundle %s: reading %s: %w", isoPath, bundle.DistributionRecordName, err)
	}
	for _, im := range f.Distribution.Images {
		f.Images = append(f.Images, im.Name)
		if f.ImageRepository == "" {
			f.ImageRepository = im.Name[:strings.LastIndex(im.Name, "/")]
		}
	}
	// The distribution's RPMs are in the repository that holds kubelet.
	for _, r := range m.Repositories {
		pkgs, err := repo.ReadRepodataFSWithOptions(fsys, r.Path, repo.DefaultReadOptions())
		if err != nil {
			return nil, fmt.Errorf("bundle %s: repository %s: %w", isoPath, r.Name, err)
		}
		has := false
		for _, p := range pkgs {
			if p.Name == "kubelet" {
				has = true
			}
		}
		if !has {
			continue
		}
		f.Repo = path.Base(r.Path)
		for _, p := range pkgs {
			f.Packages[p.Name] = p.Version + "-" + p.Release
		}
	}
	if f.Repo == "" {
		return nil, fmt.Errorf("bundle %s has no repository with kubelet", isoPath)
	}
	return f, nil
}
