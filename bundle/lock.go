package bundle

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/ferry-k8s/ferry/internal/fileutil"
	"github.com/ferry-k8s/ferry/internal/strictyaml"
)

// KindBundleLock is the kind of a lock file.
const KindBundleLock = "BundleLock"

// DefaultLockName is the lock file's name next to its spec.
const DefaultLockName = "bundle.lock"

// maxLockSize bounds a lock file; real ones are a few KiB.
const maxLockSize = 4 << 20

// Lock pins what a spec names by tag (docker:// images without a digest) to
// the digests the registry served when `builder lock` ran, and the packages
// it names from upstream yum repositories (with their dependencies) to the
// exact files, so builds from the same lock copy the same content even after
// a tag moves or a repository publishes updates.
type Lock struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	// SpecDigest is the sha256 of the spec file the lock was made from; a
	// different spec makes the lock stale.
	SpecDigest string        `json:"specDigest"`
	Images     []LockedImage `json:"images,omitempty"`
	// Packages are sorted by SortPackages, so that two locks of the same
	// state are byte-identical.
	Packages []LockedPackage `json:"packages,omitempty"`
}

// LockedImage is one registry image resolved by tag.
type LockedImage struct {
	// Name is the image's name in the bundle (Spec.ImageName).
	Name string `json:"name"`
	// Source is the spec's source, with its tag.
	Source string `json:"source"`
	// Digest is the manifest (or index) digest the tag pointed to.
	Digest string `json:"digest"`
	// MediaType is the manifest's media type.
	MediaType string `json:"mediaType"`
	// Platforms maps each platform kept of an index ("linux/amd64") to the
	// digest of its instance; empty for a single-platform image.
	Platforms map[string]string `json:"platforms,omitempty"`
}

// DefaultLockPath is the lock file next to specPath.
func DefaultLockPath(specPath string) string {
	return filepath.Join(filepath.Dir(specPath), DefaultLockName)
}

// LoadLock reads and validates a lock file.
func LoadLock(file string) (*Lock, error) {
	data, err := fileutil.ReadFile(file, maxLockSize)
	if err != nil {
		return nil, fmt.Errorf("reading lock: %w", err)
	}
	l, err := ParseLock(data)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", file, err)
	}
	return l, nil
}

// ParseLock parses (YAML or JSON) and validates a lock; unknown fields are
// errors named by their path.
func ParseLock(data []byte) (*Lock, error) {
	var l Lock
	if err := strictyaml.Decode(data, &l); err != nil {
		return nil, err
	}
	if err := l.Validate(); err != nil {
		return nil, err
	}
	return &l, nil
}

// Validate checks every field of the lock.
func (l *Lock) Validate() error {
	var errs []error
	add := func(err error) { errs = append(errs, err) }
	if l.APIVersion != APIVersion {
		add(fieldErr("apiVersion", "must be %q, got %q", APIVersion, l.APIVersion))
	}
	if l.Kind != KindBundleLock {
		add(fieldErr("kind", "must be %q, got %q", KindBundleLock, l.Kind))
	}
	if !digestRE.MatchString(l.SpecDigest) {
		add(fieldErr("specDigest", "must be sha256:<64 hex digits>, got %q", l.SpecDigest))
	}
	names := map[string]int{}
	for i, im := range l.Images {
		f := fmt.Sprintf("images[%d]", i)
		if err := ValidImageName(im.Name); err != nil {
			add(fieldErr(f+".name", "%v", err))
		} else if j, dup := names[im.Name]; dup {
			add(fieldErr(f+".name", "duplicate image name %q (also images[%d])", im.Name, j))
		} else {
			names[im.Name] = i
		}
		if !strings.HasPrefix(im.Source, "docker://") || strings.Contains(im.Source, "@") {
			add(fieldErr(f+".source", "must be a docker:// reference by tag, got %q", im.Source))
		}
		if !digestRE.MatchString(im.Digest) {
			add(fieldErr(f+".digest", "must be sha256:<64 hex digits>, got %q", im.Digest))
		}
		if !mediaTypeRE.MatchString(im.MediaType) {
			add(fieldErr(f+".mediaType", "must be a manifest media type, got %q", im.MediaType))
		}
		for _, p := range sortedKeys(im.Platforms) {
			if !platformRE.MatchString(p) {
				add(fieldErr(f+".platforms", "key must be os/arch[/variant], got %q", p))
			} else if d := im.Platforms[p]; !digestRE.MatchString(d) {
				add(fieldErr(f+".platforms."+p, "must be sha256:<64 hex digits>, got %q", d))
			}
		}
	}
	errs = append(errs, l.validatePackages()...)
	return errors.Join(errs...)
}

var mediaTypeRE = regexp.MustCompile(`^application/[a-z0-9.+-]+$`)

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// Marshal is the lock as YAML, packages sorted.
func (l *Lock) Marshal() ([]byte, error) {
	SortPackages(l.Packages)
	return yaml.Marshal(l)
}

// Image is the locked entry of name, or nil.
func (l *Lock) Image(name string) *LockedImage {
	for i := range l.Images {
		if l.Images[i].Name == name {
			return &l.Images[i]
		}
	}
	return nil
}

// ErrStaleLock is wrapped by the errors of Check: the lock was not made
// from this spec.
var ErrStaleLock = errors.New("the lock file does not match the spec: run `builder lock` again")

// Check verifies that the lock was made from spec (same file digest), pins
// every unpinned image of it with the same source, and holds the packages
// of every packages entry with names (and none for a bundle repository
// without such an entry). It returns the locked digest of each unpinned
// image, by index.
func (l *Lock) Check(spec *Spec) (map[int]string, error) {
	var errs []error
	if spec.FileDigest != "" && spec.FileDigest != l.SpecDigest {
		errs = append(errs, fmt.Errorf("the spec changed after locking (spec %s, lock made from %s): %w", spec.FileDigest, l.SpecDigest, ErrStaleLock))
	}
	pins := map[int]string{}
	for i, im := range spec.Spec.Images {
		if !spec.Unpinned(i) {
			continue
		}
		f := fmt.Sprintf("spec.images[%d]", i)
		name, err := spec.ImageName(i)
		if err != nil {
			errs = append(errs, fieldErr(f+".name", "%v", err))
			continue
		}
		li := l.Image(name)
		switch {
		case li == nil:
			errs = append(errs, &FieldError{Field: f, Err: fmt.Errorf("image %s (%s) is not in the lock: %w", name, im.Source, ErrStaleLock)})
		case li.Source != im.Source:
			errs = append(errs, &FieldError{Field: f + ".source", Err: fmt.Errorf("image %s is %s in the spec but %s in the lock: %w", name, im.Source, li.Source, ErrStaleLock)})
		default:
			pins[i] = li.Digest
		}
	}
	errs = append(errs, l.checkPackages(spec)...)
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return pins, nil
}

func sha256Digest(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}
