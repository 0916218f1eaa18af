package content

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	digest "github.com/opencontainers/go-digest"

	"github.com/ferry-k8s/ferry/bundle"
	"github.com/ferry-k8s/ferry/bundle/verify"
	"github.com/ferry-k8s/ferry/images"
	"github.com/ferry-k8s/ferry/repo"
	"github.com/ferry-k8s/ferry/signing"
)

// BundleInfo describes a served bundle.
type BundleInfo struct {
	Name              string `json:"name"`
	Version           string `json:"version"`
	KubernetesVersion string `json:"kubernetesVersion,omitempty"`
	// Path is the ISO's absolute path.
	Path string `json:"path"`
	// Images are the full image names ("registry.k8s.io/pause:3.10").
	Images []string `json:"images"`
	// Repositories are the yum repositories (served at /repos/<version>/<name>/).
	Repositories []string `json:"repositories"`
	// Signer is the fingerprint of the key that signed the manifest, and
	// SignerIdentity its primary user ID.
	Signer         string    `json:"signer"`
	SignerIdentity string    `json:"signerIdentity,omitempty"`
	Created        time.Time `json:"created"`
	Expires        time.Time `json:"expires"`
	// ValidUntil is Expires, or the expiry of the validity statement
	// beside the ISO that extends it (Extension). Expired says it has
	// passed: the bundle is served still (it is installed), but no node
	// can newly join or upgrade to it until it is extended.
	ValidUntil     time.Time         `json:"validUntil"`
	Expired        bool              `json:"expired"`
	Extension      *verify.Extension `json:"extension,omitempty"`
	ManifestSHA256 string            `json:"manifestSHA256"`
	// Verified is when the bundle was verified and published.
	Verified time.Time `json:"verified"`
}

// object is a manifest or blob of a bundle's OCI layout.
type object struct {
	path      string // images/blobs/sha256/<hex>
	size      int64
	mediaType string // manifests only
	manifest  bool
}

// imageRepo is one repository of one bundle: its tags and every object
// reachable from its images (manifests, index children, configs, layers).
type imageRepo struct {
	tags  map[string]digest.Digest
	reach map[digest.Digest]bool
}

// fileID tells whether the file at a path is still the one verified.
type fileID struct {
	size  int64
	mtime time.Time
	fi    os.FileInfo // compared with os.SameFile (device and inode)
}

func statID(p string) (fileID, error) {
	fi, err := os.Stat(p)
	if err != nil {
		return fileID{}, err
	}
	return fileID{size: fi.Size(), mtime: fi.ModTime(), fi: fi}, nil
}

func (a fileID) same(b fileID) bool {
	if a.fi == nil || b.fi == nil {
		return a.fi == nil && b.fi == nil // both absent
	}
	return os.SameFile(a.fi, b.fi) && a.size == b.size && a.mtime.Equal(b.mtime)
}

// served is one verified bundle and its indexes. Everything but refs is
// immutable once built.
//
// Life cycle (reference counted, so swapping bundles never breaks a
// download in flight):
//
//	load ─▶ published (refs = 1, held by the snapshot)
//	          │  acquire ─▶ refs+1 for each open Content / file response
//	          │  release ─▶ refs-1 when it is closed
//	          ▼
//	unpublish (snapshot drops it, refs-1; no new acquire succeeds)
//	          ▼
//	refs == 0 ─▶ ISO file closed
type served struct {
	b    *verify.Bundle
	info BundleInfo
	id   fileID
	// validityID is the statement beside the ISO when it was verified
	// (the zero fileID: none).
	validityID fileID
	vfs        fs.FS
	files      map[string]bundle.File
	// objects are the manifests and blobs reachable from the bundle's
	// images, by digest; repos the image repositories by name.
	objects map[digest.Digest]object
	repos   map[string]*imageRepo
	// yum lists the yum repository names.
	yum map[string]bool
	// validity is the statement file that extends the bundle (nil: none),
	// served beside the ISO for nodes that join.
	validity []byte

	// warnedExpired and warnedSoon make CheckValidity log each once.
	warnedExpired, warnedSoon atomic.Bool

	refs        atomic.Int64
	unpublished atomic.Bool
	closeOnce   sync.Once
	onClose     func(*served, error)
}

// acquire takes a reference for a new reader; it fails once the bundle is
// unpublished (readers holding a reference keep it open).
func (b *served) acquire() bool {
	if b.unpublished.Load() {
		return false
	}
	for {
		n := b.refs.Load()
		if n <= 0 {
			return false
		}
		if b.refs.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// release drops a reference and closes the ISO with the last one.
func (b *served) release() {
	if b.refs.Add(-1) == 0 {
		b.closeOnce.Do(func() {
			err := b.b.Close()
			if b.onClose != nil {
				b.onClose(b, err)
			}
		})
	}
}

// infoCopy is info with its own slices, for callers.
func (b *served) infoCopy() BundleInfo {
	i := b.info
	i.Images, i.Repositories = slices.Clone(i.Images), slices.Clone(i.Repositories)
	return i
}

// unpublish drops the snapshot's reference (once).
func (b *served) unpublish() {
	if b.unpublished.CompareAndSwap(false, true) {
		b.release()
	}
}

// splitName splits a full image name into repository and tag:
// "registry.k8s.io/pause:3.10" → ("registry.k8s.io/pause", "3.10");
// a name by digest only has no tag.
func splitName(name string) (repoName, tag string) {
	name, _, _ = strings.Cut(name, "@")
	i := strings.LastIndex(name, ":")
	if i < 0 || strings.Contains(name[i:], "/") {
		return name, ""
	}
	return name[:i], name[i+1:]
}

// loadBundle builds the indexes of a verified bundle: the images of its OCI
// layout by repository and tag with every object they reach, and its yum
// repositories. Everything is read through verify.Reader. It refuses a
// bundle it could only serve in part: an image of the manifest missing from
// the layout, an image breaking images.CheckLayout's rules (a manifest or
// blob missing or of another size or digest than its descriptor says, an
// unsupported media type, an index inside an index, ...), a yum repository whose repodata is unsigned or
// names a file the bundle lacks.
//
// installed says the bundle is already imported (the configuration lists
// it): its repodata signature stays good after its key expires, as the
// manifest's does (verify.Options.Installed).
func loadBundle(vb *verify.Bundle, ring *signing.Keyring, now time.Time, installed bool) (*served, error) {
	m := vb.Manifest
	files := m.FileMap()
	b := &served{
		b:       vb,
		files:   files,
		vfs:     vb.FS(),
		objects: map[digest.Digest]object{},
		repos:   map[string]*imageRepo{},
		yum:     map[string]bool{},
	}
	b.info = BundleInfo{
		Name: m.Name, Version: m.Version, KubernetesVersion: m.KubernetesVersion, Path: vb.Path,
		Created: m.Created, Expires: m.Expires, ValidUntil: vb.ValidUntil, Expired: vb.Expired,
		ManifestSHA256: vb.ManifestSHA256, Images: []string{}, Repositories: []string{},
	}
	if v := vb.Validity; v != nil {
		b.info.Extension = &verify.Extension{Path: vb.ValidityAt, Issued: v.Issued, Expires: v.Expires, Signer: *v.Signer}
		b.validity = v.Raw
	}
	if vb.Signer != nil {
		b.info.Signer, b.info.SignerIdentity = vb.Signer.Fingerprint, vb.Signer.Identity
	}
	if len(m.Images) > 0 {
		if err := b.indexImages(); err != nil {
			return nil, err
		}
	}
	for _, r := range m.Repositories {
		if err := b.checkYumRepo(r, ring, now, installed); err != nil {
			return nil, err
		}
		b.yum[r.Name] = true
		b.info.Repositories = append(b.info.Repositories, r.Name)
	}
	slices.Sort(b.info.Repositories)
	return b, nil
}

// indexImages applies images.CheckLayout (the rules the builder and
// bundle verification apply too) to the bundle's layout, on the verified
// files, and indexes what it accepted.
func (b *served) indexImages() error {
	layout, err := images.CheckLayout(b.vfs, bundle.ImagesDir, func(name string) (int64, string, bool) {
		f, ok := b.files[name]
		return f.Size, f.SHA256, ok
	})
	if err != nil {
		return err
	}
	byName := make(map[string]images.Result, len(layout.Images))
	for _, r := range layout.Images {
		byName[r.Name] = r
	}
	// The signed manifest's image list and the layout's index must agree:
	// both are verified files, but a disagreement means a broken build.
	for _, im := range b.b.Manifest.Images {
		r, ok := byName[im.Name]
		if !ok {
			return fmt.Errorf("image %s is in the manifest but not in %s/index.json", im.Name, bundle.ImagesDir)
		}
		if r.Digest.String() != im.Digest {
			return fmt.Errorf("image %s: the manifest says %s, %s/index.json says %s", im.Name, im.Digest, bundle.ImagesDir, r.Digest)
		}
	}
	for _, r := range layout.Images {
		repoName, tag := splitName(r.Name)
		ir := b.repos[repoName]
		if ir == nil {
			ir = &imageRepo{tags: map[string]digest.Digest{}, reach: map[digest.Digest]bool{}}
			b.repos[repoName] = ir
		}
		if tag != "" {
			ir.tags[tag] = r.Digest
		}
		for _, d := range layout.Reach[r.Name] {
			o := layout.Objects[d]
			ir.reach[d] = true
			b.objects[d] = object{path: o.Path, size: o.Size, mediaType: o.MediaType, manifest: o.Manifest}
		}
		b.info.Images = append(b.info.Images, r.Name)
	}
	slices.Sort(b.info.Images)
	return nil
}

// checkYumRepo checks that repository r will work for dnf with
// repo_gpgcheck=1: repomd.xml signed by a key of the keyring, primary
// metadata readable, and every package it names present in the bundle.
func (b *served) checkYumRepo(r bundle.Repository, ring *signing.Keyring, now time.Time, installed bool) error {
	pkgs, err := repo.ReadRepodataFSWithOptions(b.vfs, r.Path, repo.ReadOptions{
		VerifyRepomd: func(md, asc []byte) error {
			if asc == nil {
				return errors.New("repodata/repomd.xml.asc is missing: dnf's repo_gpgcheck would fail")
			}
			if installed {
				_, _, err := ring.VerifyInstalled(md, asc, now)
				return err
			}
			_, err := ring.Verify(bytes.NewReader(md), asc, now)
			return err
		},
	})
	if err != nil {
		return fmt.Errorf("yum repository %s: %w", r.Name, err)
	}
	for _, p := range pkgs {
		loc := path.Join(r.Path, p.Location)
		if _, ok := b.files[loc]; !ok || bundle.CheckPath(loc) != nil || !strings.HasPrefix(loc, r.Path+"/") {
			return fmt.Errorf("yum repository %s: package %s is not in the bundle (%s)", r.Name, p.NEVRA(), loc)
		}
	}
	return nil
}
