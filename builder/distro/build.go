package distro

import (
	"context"
	"crypto/sha256"
	"debug/buildinfo"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"time"

	"golang.org/x/mod/semver"

	"github.com/ferry-k8s/ferry/bundle"
	"github.com/ferry-k8s/ferry/images/compose"
	"github.com/ferry-k8s/ferry/internal/atomicfile"
	"github.com/ferry-k8s/ferry/internal/fileutil"
	"github.com/ferry-k8s/ferry/repo/rpmbuild"
	"github.com/ferry-k8s/ferry/signing"
)

// Options configure a distribution build.
type Options struct {
	// Spec is the distribution (spec.distribution), defaults resolved.
	Spec bundle.DistributionSpec
	// CacheDir holds the source builds and built RPMs across builds.
	CacheDir string
	// OutDir receives rpms/ (the RPMs), oci/ (an OCI layout of the images)
	// and distribution.json (the build record).
	OutDir string
	// Signer signs the RPMs.
	Signer *signing.Signer
	// BuildTime is SOURCE_DATE_EPOCH.
	BuildTime time.Time
	// Installer is the installer binary to package, InstallerVersion its
	// version.
	Installer, InstallerVersion string
	Log                         *slog.Logger
	// Go is the go command; empty: from PATH.
	Go string
}

// Result is a finished distribution build.
type Result struct {
	RPMDir string
	Layout string
	Record bundle.DistributionRecord
}

// Build compiles every component, packages the RPMs and composes the
// images kubeadm expects.
func Build(ctx context.Context, o Options) (*Result, error) {
	log := o.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if o.CacheDir == "" || o.OutDir == "" {
		return nil, errors.New("distribution build needs a cache and an output directory")
	}
	if o.Signer == nil {
		return nil, errors.New("distribution build needs a signing key for its RPMs")
	}
	spec := o.Spec
	g := &GoBuilder{Go: o.Go, CacheDir: filepath.Join(o.CacheDir, "go"), BuildTime: o.BuildTime, Log: log}
	built := map[string]*Built{}
	rec := bundle.DistributionRecord{Versions: spec.Versions}
	for _, c := range Components(spec.Versions) {
		b, err := g.Build(ctx, c)
		if err != nil {
			return nil, err
		}
		built[c.Name] = b
		cr := bundle.ComponentRecord{Name: c.Name, Module: c.Module, Version: c.Version, ModuleSum: b.ModuleSum, GoVersion: b.GoVersion, Binaries: map[string]string{}}
		for name, p := range b.Binaries {
			sum, _, err := fileutil.SHA256(p)
			if err != nil {
				return nil, err
			}
			cr.Binaries[name] = sum
		}
		rec.Components = append(rec.Components, cr)
	}
	checks, err := CheckKernelMemoryAccounting(built["runc"].Binaries["runc"], built["kubernetes"].Binaries["kubelet"])
	if err != nil {
		return nil, err
	}
	rec.KernelMemoryAccounting = checks

	pkgs, err := Packages(built, o.Installer, o.InstallerVersion, o.BuildTime)
	if err != nil {
		return nil, err
	}
	rpmDir := filepath.Join(o.OutDir, "rpms")
	if err := resetDir(rpmDir); err != nil {
		return nil, err
	}
	rpms := map[string]string{}
	for _, p := range pkgs {
		dest := filepath.Join(rpmDir, p.FileName())
		cached, err := writeRPMCached(filepath.Join(o.CacheDir, "rpms"), dest, p, o.Signer)
		if err != nil {
			return nil, fmt.Errorf("packaging %s: %w", p.Name, err)
		}
		sum, _, err := fileutil.SHA256(dest)
		if err != nil {
			return nil, err
		}
		rpms[p.Name] = dest
		rec.Packages = append(rec.Packages, bundle.PackageRecord{File: p.FileName(), SHA256: sum})
		log.Info("package", slog.String("rpm", p.FileName()), slog.Bool("cached", cached))
	}

	list, err := KubeadmImages(ctx, built["kubernetes"].Binaries["kubeadm"], spec.Versions.Kubernetes, spec.ImageRepository)
	if err != nil {
		return nil, err
	}
	imgs, err := Images(list, spec.ImageRepository, rpms, built, o.BuildTime)
	if err != nil {
		return nil, err
	}
	layout := filepath.Join(o.OutDir, "oci")
	if err := os.RemoveAll(layout); err != nil {
		return nil, err
	}
	start := time.Now()
	res, err := compose.Write(ctx, layout, imgs)
	if err != nil {
		return nil, fmt.Errorf("composing images: %w", err)
	}
	log.Info("images composed", slog.Int("images", len(res)), slog.Duration("took", time.Since(start).Round(time.Millisecond)))
	for _, r := range res {
		rec.Images = append(rec.Images, bundle.ImageRecord{Name: r.Name, Digest: r.Digest.String()})
	}
	data, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := atomicfile.WriteFile(filepath.Join(o.OutDir, bundle.DistributionRecordName), append(data, '\n'), 0o644); err != nil {
		return nil, err
	}
	return &Result{RPMDir: rpmDir, Layout: layout, Record: rec}, nil
}

// minRunc is the first runc that never enables kernel memory accounting
// (R8): rc94 stopped setting memory.kmem.limit_in_bytes.
const minRunc = "v1.0.0-rc94"

// CheckKernelMemoryAccounting is R8's check, from the binaries' Go build
// information: runc must be at least minRunc, and the runc libcontainer
// that kubelet links (github.com/opencontainers/runc before the cgroup
// code moved to github.com/opencontainers/cgroups) too. It returns what it
// checked, for the build record.
func CheckKernelMemoryAccounting(runc, kubelet string) ([]string, error) {
	var notes []string
	for _, bin := range []struct{ name, path string }{{"runc", runc}, {"kubelet", kubelet}} {
		info, err := buildinfo.ReadFile(bin.path)
		if err != nil {
			return nil, fmt.Errorf("R8: reading the build information of %s (%s): %w", bin.name, bin.path, err)
		}
		note, err := checkKmem(bin.name, info)
		if err != nil {
			return nil, err
		}
		notes = append(notes, note)
	}
	return notes, nil
}

func checkKmem(name string, info *buildinfo.BuildInfo) (string, error) {
	mods := []struct{ path, version string }{{info.Main.Path, info.Main.Version}}
	for _, d := range info.Deps {
		v := d.Version
		if d.Replace != nil {
			v = d.Replace.Version
		}
		mods = append(mods, struct{ path, version string }{d.Path, v})
	}
	for _, m := range mods {
		if m.path != "github.com/opencontainers/runc" {
			continue
		}
		if !semver.IsValid(m.version) || semver.Compare(m.version, minRunc) < 0 {
			return "", fmt.Errorf("R8: %s is built with github.com/opencontainers/runc %s, older than %s, which may enable kernel memory accounting (leaks on EL kernels); refusing the bundle", name, m.version, minRunc)
		}
		return fmt.Sprintf("%s: github.com/opencontainers/runc %s >= %s", name, m.version, minRunc), nil
	}
	if name == "runc" {
		return "", fmt.Errorf("R8: the runc binary has no github.com/opencontainers/runc module in its build information")
	}
	for _, d := range info.Deps {
		if d.Path == "github.com/opencontainers/cgroups" {
			return fmt.Sprintf("%s: cgroup code from github.com/opencontainers/cgroups %s (split from runc after 1.2, never enables kmem)", name, d.Version), nil
		}
	}
	return fmt.Sprintf("%s: links no runc cgroup code", name), nil
}

// writeRPMCached writes p to dest, taking it from cacheDir when the same
// package (description, file contents, key) was written before: RPMs are
// reproducible, so the cached bytes are what a new write would give.
func writeRPMCached(cacheDir, dest string, p rpmbuild.Package, signer *signing.Signer) (bool, error) {
	h := sha256.New()
	desc, err := json.Marshal(p)
	if err != nil {
		return false, err
	}
	fmt.Fprintf(h, "ferry-rpm-v1\x00%s\x00%s\x00", desc, signer.Fingerprint())
	srcs := []string{}
	for _, f := range p.Files {
		if f.Source != "" {
			srcs = append(srcs, f.Source)
		}
	}
	sort.Strings(srcs)
	for _, s := range srcs {
		sum, _, err := fileutil.SHA256(s)
		if err != nil {
			return false, err
		}
		fmt.Fprintf(h, "%s\x00", sum)
	}
	cached := filepath.Join(cacheDir, hex.EncodeToString(h.Sum(nil))[:32], p.FileName())
	if _, err := os.Stat(cached); err == nil {
		return true, linkOrCopy(cached, dest)
	}
	if err := os.MkdirAll(filepath.Dir(cached), 0o755); err != nil {
		return false, err
	}
	if err := rpmbuild.WriteFile(cached, p, rpmbuild.Options{Signer: signer}); err != nil {
		return false, err
	}
	return false, linkOrCopy(cached, dest)
}

func linkOrCopy(src, dst string) error {
	_ = os.Remove(dst)
	if err := os.Link(src, dst); err == nil {
		return nil
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	return atomicfile.Write(dst, 0o644, func(w *os.File) error {
		_, err := io.Copy(w, in)
		return err
	})
}

func resetDir(dir string) error {
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	return os.MkdirAll(dir, 0o755)
}
