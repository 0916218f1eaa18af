package bundle

import (
	"errors"
	"fmt"
	"path"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"golang.org/x/mod/semver"

	"github.com/ferry-k8s/ferry/internal/fileutil"
	"github.com/ferry-k8s/ferry/internal/strictyaml"
)

// API group and kinds of Ferry's configuration files.
const (
	APIVersion = "ferry.dev/v1alpha1"
	KindBundle = "Bundle"
)

// DefaultExpiresAfter is how long a bundle stays valid when the spec does not say.
const DefaultExpiresAfter = 365 * 24 * time.Hour

// MaxExpiresAfter is the longest validity a spec may give (100 years).
const MaxExpiresAfter = 36500 * 24 * time.Hour

// maxSpecSize bounds a spec file; real ones are a few KiB.
const maxSpecSize = 4 << 20

// Spec is a bundle spec file (kind: Bundle).
type Spec struct {
	APIVersion string       `json:"apiVersion"`
	Kind       string       `json:"kind"`
	Metadata   SpecMetadata `json:"metadata"`
	Spec       BundleSpec   `json:"spec"`

	// Dir is the directory of the spec file; relative paths resolve against it.
	Dir string `json:"-"`
	// FileDigest is the sha256 of the spec file as read ("sha256:…"); a
	// lock file records it to notice a spec edited after locking.
	FileDigest string `json:"-"`
}

// ErrUnpinned is wrapped by the error on a registry image that has no digest
// (spec.images[i].digest: missing): such a spec builds only with a lock file.
var ErrUnpinned = errors.New("registry image not pinned by digest")

// SpecOptions change how a spec is read.
type SpecOptions struct {
	// AllowUnpinned accepts docker:// sources without a digest: their digests
	// come from a lock file (see Lock), which the caller must then check.
	AllowUnpinned bool
}

// SpecMetadata names and versions the bundle.
type SpecMetadata struct {
	Name    string `json:"name"`
	Version string `json:"version"`
}

// BundleSpec is what goes into the bundle.
type BundleSpec struct {
	// KubernetesVersion is recorded in the manifest, e.g. "v1.34.4".
	KubernetesVersion string `json:"kubernetesVersion,omitempty"`
	// ExpiresAfter is the bundle's validity from its creation time, as a Go
	// duration or a number of days ("365d"). Default 365d.
	ExpiresAfter string `json:"expiresAfter,omitempty"`
	// MinUpgradeFrom is the oldest installed bundle version this one may upgrade.
	MinUpgradeFrom string `json:"minUpgradeFrom,omitempty"`
	// Platforms kept of multi-platform images unless an image says otherwise.
	Platforms []string       `json:"platforms,omitempty"`
	Images    []ImageSpec    `json:"images,omitempty"`
	Packages  []PackagesSpec `json:"packages,omitempty"`
	// Repositories are upstream yum repositories that packages named in
	// spec.packages[].names are resolved from by `builder lock`.
	Repositories []RepositorySpec `json:"repositories,omitempty"`
	// Distribution, when set, builds Kubernetes from pinned Go module
	// sources into RPMs and images of this bundle.
	Distribution *DistributionSpec `json:"distribution,omitempty"`
}

// ImageSpec is one image to carry.
type ImageSpec struct {
	// Source is a containers-transports reference: oci:, oci-archive:,
	// docker-archive:, dir:, docker://. Local paths are relative to the spec.
	Source string `json:"source"`
	// Name is the image's name in the bundle, as clients will pull it
	// ("registry.k8s.io/pause:3.10"). Derived from Source when empty.
	Name string `json:"name,omitempty"`
	// Digest pins the manifest digest; the build fails if the source differs.
	Digest string `json:"digest,omitempty"`
	// Platforms kept of a multi-platform image ("linux/amd64"); empty: all.
	Platforms []string `json:"platforms,omitempty"`
}

// PackagesSpec is a set of RPMs to put in one yum repository of the
// bundle: the RPMs of a local directory, or packages named from upstream
// repositories with their dependencies (exactly one of Directory, Names).
type PackagesSpec struct {
	// Directory: every *.rpm in it (not recursive), relative to the spec.
	// Each must be named name-version-release.arch.rpm as its header says;
	// a symbolic link is followed to a regular file inside the spec's
	// directory (or this one) and refused elsewhere; any other *.rpm that
	// is not a regular file is refused.
	Directory string `json:"directory,omitempty"`
	// Repo names the repository (/packages/<repo>/ on the ISO); default "base".
	Repo string `json:"repo,omitempty"`
	// Names are packages to take from spec.repositories with everything
	// they require: "socat", "socat >= 1.7.4", "iptables-nft = 1.8.10-11.el9"
	// (see ParsePackageConstraint). They are pinned in the lock file.
	Names []string `json:"names,omitempty"`
	// From names the spec.repositories to resolve Names from, in order of
	// preference; default: all of them, in spec order.
	From []string `json:"from,omitempty"`
	// Exclude are package names (shell globs) the target OS already has:
	// they are not carried, and requirements they can provide count as met.
	Exclude []string `json:"exclude,omitempty"`
	// Arches are the package architectures to take; default DefaultArches.
	Arches []string `json:"arches,omitempty"`
}

// DefaultRepo is the repository name used when a packages entry names none.
const DefaultRepo = "base"

// LoadSpec reads and validates a spec file.
func LoadSpec(file string) (*Spec, error) {
	return LoadSpecWith(file, SpecOptions{})
}

// LoadSpecWith reads and validates a spec file with options.
func LoadSpecWith(file string, opts SpecOptions) (*Spec, error) {
	data, err := fileutil.ReadFile(file, maxSpecSize)
	if err != nil {
		return nil, fmt.Errorf("reading spec: %w", err)
	}
	abs, err := filepath.Abs(file)
	if err != nil {
		return nil, err
	}
	s, err := parseSpec(data, filepath.Dir(abs), opts)
	if err != nil {
		return nil, fmt.Errorf("spec %s: %w", file, err)
	}
	s.FileDigest = sha256Digest(data)
	return s, nil
}

// ParseSpec parses and validates a spec; dir is where relative paths resolve.
func ParseSpec(data []byte, dir string) (*Spec, error) {
	return parseSpec(data, dir, SpecOptions{})
}

func parseSpec(data []byte, dir string, opts SpecOptions) (*Spec, error) {
	var s Spec
	if err := strictyaml.Decode(data, &s); err != nil {
		return nil, err
	}
	s.Dir = dir
	if err := s.validate(opts.AllowUnpinned); err != nil {
		return nil, err
	}
	return &s, nil
}

var (
	dnsLabel   = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
	repoName   = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)
	digestRE   = regexp.MustCompile(`^sha256:[a-f0-9]{64}$`)
	platformRE = regexp.MustCompile(`^[a-z0-9]+/[a-z0-9_]+(/[a-z0-9]+)?$`)
)

// Validate checks the spec and names the first bad field of each kind; all
// problems are joined so a user can fix them in one go.
func (s *Spec) Validate() error { return s.validate(false) }

func (s *Spec) validate(allowUnpinned bool) error {
	var errs []error
	add := func(err error) { errs = append(errs, err) }
	if s.APIVersion != APIVersion {
		add(fieldErr("apiVersion", "must be %q, got %q", APIVersion, s.APIVersion))
	}
	if s.Kind != KindBundle {
		add(fieldErr("kind", "must be %q, got %q", KindBundle, s.Kind))
	}
	if !dnsLabel.MatchString(s.Metadata.Name) || len(s.Metadata.Name) > 63 {
		add(fieldErr("metadata.name", "must be a DNS label (lower-case letters, digits, '-'), got %q", s.Metadata.Name))
	}
	if !ValidVersion(s.Metadata.Version) {
		add(fieldErr("metadata.version", "must be a semantic version such as 1.2.0, got %q", s.Metadata.Version))
	}
	if v := s.Spec.KubernetesVersion; v != "" && !semver.IsValid(v) {
		add(fieldErr("spec.kubernetesVersion", "must look like v1.34.4, got %q", v))
	}
	if _, err := s.Spec.Validity(); err != nil {
		add(fieldErr("spec.expiresAfter", "%v", err))
	}
	if v := s.Spec.MinUpgradeFrom; v != "" {
		if !ValidVersion(v) {
			add(fieldErr("spec.minUpgradeFrom", "must be a semantic version, got %q", v))
		} else if ValidVersion(s.Metadata.Version) && CompareVersions(v, s.Metadata.Version) > 0 {
			add(fieldErr("spec.minUpgradeFrom", "%s is newer than the bundle version %s", v, s.Metadata.Version))
		}
	}
	for i, p := range s.Spec.Platforms {
		if !platformRE.MatchString(p) {
			add(fieldErr(fmt.Sprintf("spec.platforms[%d]", i), "must be os/arch[/variant], got %q", p))
		}
	}
	if len(s.Spec.Images) == 0 && len(s.Spec.Packages) == 0 && s.Spec.Distribution == nil {
		add(fieldErr("spec", "names no images, no packages and no distribution: the bundle would be empty"))
	}
	if s.Spec.Distribution != nil {
		errs = append(errs, s.Spec.Distribution.validate(s.Spec.KubernetesVersion)...)
	}
	errs = append(errs, s.validateImages(allowUnpinned)...)
	errs = append(errs, s.validatePackages(allowUnpinned)...)
	return errors.Join(errs...)
}

func (s *Spec) validateImages(allowUnpinned bool) []error {
	var errs []error
	names := map[string]int{}
	for i, im := range s.Spec.Images {
		f := fmt.Sprintf("spec.images[%d]", i)
		transport, _, ok := strings.Cut(im.Source, ":")
		if im.Source == "" {
			errs = append(errs, fieldErr(f+".source", "is required"))
			continue
		}
		if !ok || !knownTransports[transport] {
			errs = append(errs, fieldErr(f+".source", "%q has no known transport (one of oci:, oci-archive:, docker-archive:, dir:, docker://)", im.Source))
			continue
		}
		if im.Digest != "" && !digestRE.MatchString(im.Digest) {
			errs = append(errs, fieldErr(f+".digest", "must be sha256:<64 hex digits>, got %q", im.Digest))
		}
		if !allowUnpinned && s.Unpinned(i) {
			errs = append(errs, &FieldError{Field: f + ".digest", Err: fmt.Errorf("missing: a registry source (%s) must be pinned by digest, in the reference (…@sha256:…), in digest: or by a lock file (run `builder lock`): %w", im.Source, ErrUnpinned)})
		}
		for j, p := range im.Platforms {
			if !platformRE.MatchString(p) {
				errs = append(errs, fieldErr(fmt.Sprintf("%s.platforms[%d]", f, j), "must be os/arch[/variant], got %q", p))
			}
		}
		name, err := s.ImageName(i)
		if err != nil {
			errs = append(errs, fieldErr(f+".name", "%v", err))
			continue
		}
		if j, dup := names[name]; dup {
			errs = append(errs, fieldErr(f+".name", "duplicate image name %q (also spec.images[%d])", name, j))
			continue
		}
		names[name] = i
	}
	return errs
}

// Unpinned reports whether image i is a registry (docker://) source with no
// digest in its reference nor in digest:, so only a lock file can pin it.
func (s *Spec) Unpinned(i int) bool {
	im := s.Spec.Images[i]
	return strings.HasPrefix(im.Source, "docker:") && im.Digest == "" && !strings.Contains(im.Source, "@sha256:")
}

var knownTransports = map[string]bool{"oci": true, "oci-archive": true, "docker-archive": true, "dir": true, "docker": true}

// Validity is how long the bundle is valid after its creation.
func (b *BundleSpec) Validity() (time.Duration, error) {
	v := strings.TrimSpace(b.ExpiresAfter)
	if v == "" {
		return DefaultExpiresAfter, nil
	}
	var d time.Duration
	if days, ok := strings.CutSuffix(v, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n <= 0 || n > int(MaxExpiresAfter/(24*time.Hour)) {
			return 0, fmt.Errorf("%q is not a number of days between 1 and 36500", v)
		}
		d = time.Duration(n) * 24 * time.Hour
	} else {
		var err error
		if d, err = time.ParseDuration(v); err != nil {
			return 0, fmt.Errorf("%q is neither a duration (8760h) nor days (365d)", v)
		}
	}
	if d < time.Hour {
		return 0, fmt.Errorf("%q is shorter than one hour", v)
	}
	if d > MaxExpiresAfter {
		return 0, fmt.Errorf("%q is longer than 36500 days", v)
	}
	return d, nil
}

// ImageName is the bundle name of image i: its name field, or one derived
// from the source. A registry source keeps its repository and tag; a local
// source gets "localhost/<name>:<tag>", as podman names local images, so it
// cannot be mistaken for an upstream image.
func (s *Spec) ImageName(i int) (string, error) {
	im := s.Spec.Images[i]
	if im.Name != "" {
		if err := ValidImageName(im.Name); err != nil {
			return "", err
		}
		return im.Name, nil
	}
	transport, ref, _ := strings.Cut(im.Source, ":")
	var base, tag string
	switch transport {
	case "docker":
		ref = strings.TrimPrefix(ref, "//")
		ref, _, _ = strings.Cut(ref, "@")
		base, tag = splitTag(ref)
		if !strings.Contains(strings.Split(base, "/")[0], ".") && !strings.Contains(base, "localhost") {
			return "", fmt.Errorf("cannot derive a fully qualified name from %q: set name (for example docker.io/library/%s)", im.Source, base)
		}
	default: // oci:PATH[:REF], oci-archive:PATH[:REF], dir:PATH, docker-archive:PATH[:…]
		p, r, _ := strings.Cut(ref, ":")
		if r != "" && (transport == "oci" || transport == "oci-archive") {
			// The reference inside a layout names the image: "app" or "app:1.2".
			base, tag = splitTag(r)
		} else {
			base = path.Base(filepath.ToSlash(p))
			base = strings.TrimSuffix(strings.TrimSuffix(base, ".gz"), ".tar")
		}
	}
	if tag == "" {
		tag = "latest"
	}
	name := base + ":" + tag
	if transport != "docker" {
		name = "localhost/" + strings.ToLower(base) + ":" + tag
	}
	if err := ValidImageName(name); err != nil {
		return "", fmt.Errorf("derived name %q from %q: %w; set name", name, im.Source, err)
	}
	return name, nil
}

// splitTag splits "repo:tag" at the tag's colon (not a registry port's).
func splitTag(ref string) (string, string) {
	i := strings.LastIndex(ref, ":")
	if i < 0 || strings.Contains(ref[i:], "/") {
		return ref, ""
	}
	return ref[:i], ref[i+1:]
}

var imageNameRE = regexp.MustCompile(`^[a-z0-9]+([._-][a-z0-9]+)*(:[0-9]+)?(/[a-z0-9]+([._-]+[a-z0-9]+)*)+:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$`)

// ValidImageName checks a fully qualified name with a tag:
// "registry.example:5000/path/repo:tag".
func ValidImageName(name string) error {
	if len(name) > 255 || !imageNameRE.MatchString(name) {
		return fmt.Errorf("%q is not a fully qualified image name with a tag (registry/repository:tag)", name)
	}
	return nil
}

// ValidVersion reports whether v is a semantic version without the "v"
// prefix (1.2.0, 1.2.0-rc.1).
func ValidVersion(v string) bool {
	return v != "" && !strings.HasPrefix(v, "v") && semver.IsValid("v"+v) && strings.Count(strings.SplitN(v, "-", 2)[0], ".") == 2
}

// CompareVersions compares two bundle versions as semantic versions.
func CompareVersions(a, b string) int {
	return semver.Compare("v"+a, "v"+b)
}

// Path resolves a spec-relative path.
func (s *Spec) Path(p string) string {
	if filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(s.Dir, p)
}
