package bundlestore

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/ferry-k8s/ferry/bundle/validity"
	"github.com/ferry-k8s/ferry/bundle/verify"
	"github.com/ferry-k8s/ferry/installer/bundlefetch"
	"github.com/ferry-k8s/ferry/installer/cluster"
	"github.com/ferry-k8s/ferry/installer/content"
	"github.com/ferry-k8s/ferry/installer/layout"
	"github.com/ferry-k8s/ferry/installer/pki"
	"github.com/ferry-k8s/ferry/internal/atomicfile"
	"github.com/ferry-k8s/ferry/signing"
)

// FileName is the file of bundle name at version in layout.BundlesDir.
func FileName(name, version string) string { return name + "-" + version + ".iso" }

// Imported is the bundle the node targets (layout.TargetFile), else the
// newest imported one.
func Imported(root string) (string, error) {
	if data, err := os.ReadFile(filepath.Join(root, layout.TargetFile)); err == nil {
		name := strings.TrimSpace(string(data))
		if name == "" || name != filepath.Base(name) {
			return "", fmt.Errorf("%s: %q is not a bundle file name", layout.TargetFile, name)
		}
		return filepath.Join(root, layout.BundlesDir, name), nil
	}
	entries, err := filepath.Glob(filepath.Join(root, layout.BundlesDir, "*.iso"))
	if err != nil || len(entries) == 0 {
		return "", fmt.Errorf("no imported bundle in %s: run installer bootstrap first", layout.BundlesDir)
	}
	slices.Sort(entries)
	return entries[len(entries)-1], nil
}

// Target is the name and version of the bundle the node targets.
func Target(root string) (name, version string, err error) {
	iso, err := Imported(root)
	if err != nil {
		return "", "", err
	}
	m, err := content.ReadManifestUnverified(iso)
	if err != nil {
		return "", "", fmt.Errorf("%s: %w", iso, err)
	}
	return m.Name, m.Version, nil
}

// SetTarget makes file (in layout.BundlesDir) the bundle the node targets
// (atomically; the same target is not rewritten).
func SetTarget(root, file string) error {
	return atomicfile.WriteLine(filepath.Join(root, layout.TargetFile), file, 0o644)
}

// Import copies the verified ISO src into the store as dst (atomically).
// An ISO already there with the same size and manifest is left as is.
func Import(src, dst string) (bool, error) {
	si, err := os.Stat(src)
	if err != nil {
		return false, err
	}
	if di, err := os.Stat(dst); err == nil && di.Size() == si.Size() {
		same, err := sameManifest(src, dst)
		if err == nil && same {
			return false, nil
		}
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return false, err
	}
	in, err := os.Open(src)
	if err != nil {
		return false, err
	}
	defer in.Close()
	err = atomicfile.Write(dst, 0o644, func(f *os.File) error {
		_, err := io.Copy(f, in)
		return err
	})
	return err == nil, err
}

// AlreadyImported says the node holds this very bundle (the same signed
// manifest) among its imported bundles: a bootstrap or join run again.
func AlreadyImported(root, isoPath string) bool {
	m, err := content.ReadManifestUnverified(isoPath)
	if err != nil {
		return false
	}
	same, err := sameManifest(isoPath, filepath.Join(root, layout.BundlesDir, FileName(m.Name, m.Version)))
	return err == nil && same
}

// KeepValidity keeps the validity statement that came with a bundle
// (explicit, else the file beside srcISO, if any) beside the imported ISO,
// where the content service and later runs find it; it refuses one older
// than the statement already there, and reports a change.
func KeepValidity(importedISO, explicit, srcISO string, ring *signing.Keyring, now time.Time, f *Facts) (bool, error) {
	p := explicit
	if p == "" {
		if _, err := os.Stat(validity.Beside(srcISO)); err == nil {
			p = validity.Beside(srcISO)
		}
	}
	if p == "" || p == validity.Beside(importedISO) {
		return false, nil
	}
	data, err := validity.ReadFile(p)
	if err != nil {
		return false, err
	}
	_, changed, err := validity.Install(importedISO, data, ring, now, f.ManifestSHA256)
	if err != nil {
		return false, fmt.Errorf("bundle %s %s: %s: %w", f.Name, f.Version, p, err)
	}
	return changed, nil
}

func sameManifest(a, b string) (bool, error) {
	ma, err := readManifestBytes(a)
	if err != nil {
		return false, err
	}
	mb, err := readManifestBytes(b)
	if err != nil {
		return false, err
	}
	return string(ma) == string(mb), nil
}

func readManifestBytes(p string) ([]byte, error) {
	m, err := content.ReadManifestUnverified(p)
	if err != nil {
		return nil, err
	}
	return m.Marshal()
}

// Stage puts the bundle of version among the node's bundles
// (layout.BundlesDir), fetched from the content services and verified in
// full when it is not there yet, without making it the target; it returns
// its file name, and its facts when it fetched (and so verified) it.
func Stage(ctx context.Context, root string, c *cluster.Cluster, ring *signing.Keyring, name, version string, now time.Time, log *slog.Logger) (string, *Facts, error) {
	file := FileName(name, version)
	dst := filepath.Join(root, layout.BundlesDir, file)
	if _, err := os.Stat(dst); err == nil {
		return file, nil, nil
	}
	ca, err := os.ReadFile(filepath.Join(root, layout.PKIDir, pki.RealmContent, pki.CACertFile))
	if err != nil {
		return "", nil, err
	}
	downloads := filepath.Join(root, layout.DownloadsDir)
	fetcher := &bundlefetch.Fetcher{Services: c.ContentServices(), CA: ca, Dir: downloads, Log: log}
	p, err := fetcher.Fetch(ctx, bundlefetch.Bundle{File: file})
	if err != nil {
		return "", nil, err
	}
	defer os.Remove(p)
	vp, err := fetcher.Validity(ctx, file)
	if err != nil {
		return "", nil, err
	}
	if vp != "" {
		defer os.Remove(vp)
	}
	f, err := ReadFacts(ctx, p, ring, verify.Options{Now: now, ValidityFile: vp})
	if err != nil {
		return "", nil, err
	}
	if f.Name != name || f.Version != version {
		return "", nil, fmt.Errorf("the content services served %s %s as %s", f.Name, f.Version, file)
	}
	if _, err := KeepValidity(dst, vp, p, ring, now, f); err != nil {
		return "", nil, err
	}
	if err := os.Rename(p, dst); err != nil {
		return "", nil, err
	}
	return file, f, nil
}
