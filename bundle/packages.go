package bundle

import (
	"errors"
	"fmt"
	"net/url"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/ferry-k8s/ferry/repo/rpmver"
)

// RepositorySpec is an upstream yum repository (spec.repositories[i]) that
// packages named in spec.packages[].names are resolved from.
type RepositorySpec struct {
	// Name identifies the repository in spec.packages[].from and in the lock.
	Name string `json:"name"`
	// BaseURL is the repository root (where repodata/ is): https://…, or
	// file:///… for a local mirror. Plain http is refused.
	BaseURL string `json:"baseurl"`
	// GPGKey is the armored (or binary) OpenPGP public key file, relative to
	// the spec, that signs the repository's packages (and its repomd.xml,
	// when the repository signs it). Required.
	GPGKey string `json:"gpgkey"`
	// CAFile is an extra PEM CA bundle, relative to the spec, trusted for
	// this repository's TLS certificate besides the system's CAs.
	CAFile string `json:"caFile,omitempty"`
}

// DefaultArches are the package architectures taken when a packages entry
// names none (rpmver.DefaultArches).
var DefaultArches = rpmver.DefaultArches

// ErrNotLocked is wrapped by the error on a packages entry with names when
// the spec is read without AllowUnpinned: such a spec builds only with a
// lock file.
var ErrNotLocked = errors.New("packages named from repositories are not locked")

// PackageConstraint is one item of spec.packages[].names: a package name and
// an optional version comparison (rpmver.Constraint).
type PackageConstraint = rpmver.Constraint

// ParsePackageConstraint parses "name", "name OP [epoch:]version[-release]"
// with OP one of = < <= > >= (rpmver.ParseConstraint).
func ParsePackageConstraint(s string) (PackageConstraint, error) { return rpmver.ParseConstraint(s) }

var (
	rpmGlobRE  = regexp.MustCompile(`^[A-Za-z0-9._+*?\[\]!-]{1,200}$`)
	rpmArchRE  = regexp.MustCompile(`^[a-z0-9_]{1,32}$`)
	rpmVerPart = regexp.MustCompile(`^[A-Za-z0-9._+~^]{1,100}$`)
)

// RepoName is the bundle repository of the entry (DefaultRepo if unset).
func (p PackagesSpec) RepoName() string {
	if p.Repo == "" {
		return DefaultRepo
	}
	return p.Repo
}

// ArchList is the entry's architectures (DefaultArches if unset).
func (p PackagesSpec) ArchList() []string {
	if len(p.Arches) == 0 {
		return slices.Clone(DefaultArches)
	}
	return p.Arches
}

// Excluded reports whether a package name matches one of the entry's
// exclude globs.
func (p PackagesSpec) Excluded(name string) bool {
	for _, g := range p.Exclude {
		if ok, _ := path.Match(g, name); ok {
			return true
		}
	}
	return false
}

// HasNamedPackages reports whether some packages entry names packages, so
// that the spec builds only with a lock file.
func (s *Spec) HasNamedPackages() bool {
	for _, p := range s.Spec.Packages {
		if len(p.Names) > 0 {
			return true
		}
	}
	return false
}

// Repository is spec.repositories entry name, or nil.
func (s *Spec) Repository(name string) *RepositorySpec {
	for i := range s.Spec.Repositories {
		if s.Spec.Repositories[i].Name == name {
			return &s.Spec.Repositories[i]
		}
	}
	return nil
}

// PackageSources are the upstream repositories packages entry i resolves
// from, in order of preference: its from list, or every repository.
func (s *Spec) PackageSources(i int) []RepositorySpec {
	p := s.Spec.Packages[i]
	if len(p.From) == 0 {
		return slices.Clone(s.Spec.Repositories)
	}
	var out []RepositorySpec
	for _, name := range p.From {
		if r := s.Repository(name); r != nil {
			out = append(out, *r)
		}
	}
	return out
}

func (s *Spec) validatePackages(allowUnpinned bool) []error {
	errs := s.validateRepositories()
	dirs := map[string]int{}
	for i, p := range s.Spec.Packages {
		f := fmt.Sprintf("spec.packages[%d]", i)
		if p.Repo != "" && !repoName.MatchString(p.Repo) {
			errs = append(errs, fieldErr(f+".repo", "must be letters, digits, '.', '_', '-' (up to 63), got %q", p.Repo))
		}
		switch {
		case p.Directory != "" && len(p.Names) > 0:
			errs = append(errs, fieldErr(f, "has both directory and names: an entry takes the RPMs of a directory or packages by name, not both"))
			continue
		case p.Directory == "" && len(p.Names) == 0:
			errs = append(errs, fieldErr(f+".directory", "is required (or names, for packages from spec.repositories)"))
			continue
		case p.Directory != "":
			if j, dup := dirs[filepath.Clean(p.Directory)]; dup {
				errs = append(errs, fieldErr(f+".directory", "%q is listed twice (also spec.packages[%d])", p.Directory, j))
			} else {
				dirs[filepath.Clean(p.Directory)] = i
			}
			for _, field := range []struct {
				name string
				set  bool
			}{{"from", p.From != nil}, {"exclude", p.Exclude != nil}, {"arches", p.Arches != nil}} {
				if field.set {
					errs = append(errs, fieldErr(f+"."+field.name, "applies to names only, not to a directory"))
				}
			}
			continue
		}
		errs = append(errs, s.validateNamedPackages(f, p)...)
		if !allowUnpinned {
			errs = append(errs, &FieldError{Field: f + ".names", Err: fmt.Errorf("packages named from repositories are pinned by a lock file: run `builder lock`: %w", ErrNotLocked)})
		}
	}
	return errs
}

func (s *Spec) validateNamedPackages(f string, p PackagesSpec) []error {
	var errs []error
	if len(s.Spec.Repositories) == 0 {
		errs = append(errs, fieldErr(f+".names", "packages by name need spec.repositories to resolve them from"))
	}
	for j, g := range p.Exclude {
		if _, err := path.Match(g, ""); err != nil || !rpmGlobRE.MatchString(g) {
			errs = append(errs, fieldErr(fmt.Sprintf("%s.exclude[%d]", f, j), "%q is not a package name or shell glob (letters, digits, . _ + - * ? [ ])", g))
		}
	}
	seen := map[string]int{}
	for j, n := range p.Names {
		nf := fmt.Sprintf("%s.names[%d]", f, j)
		c, err := ParsePackageConstraint(n)
		if err != nil {
			errs = append(errs, fieldErr(nf, "%v", err))
			continue
		}
		if k, dup := seen[c.Name]; dup {
			errs = append(errs, fieldErr(nf, "package %s is named twice (also %s.names[%d])", c.Name, f, k))
			continue
		}
		seen[c.Name] = j
		if p.Excluded(c.Name) {
			errs = append(errs, fieldErr(nf, "package %s is also excluded (the target OS has it): drop one of the two", c.Name))
		}
	}
	from := map[string]int{}
	for j, name := range p.From {
		ff := fmt.Sprintf("%s.from[%d]", f, j)
		if k, dup := from[name]; dup {
			errs = append(errs, fieldErr(ff, "repository %q is listed twice (also %s.from[%d])", name, f, k))
		} else if s.Repository(name) == nil {
			errs = append(errs, fieldErr(ff, "no repository named %q in spec.repositories", name))
		}
		from[name] = j
	}
	arches := map[string]bool{}
	for j, a := range p.Arches {
		af := fmt.Sprintf("%s.arches[%d]", f, j)
		if !rpmArchRE.MatchString(a) {
			errs = append(errs, fieldErr(af, "%q is not an architecture such as x86_64, aarch64, noarch", a))
		} else if arches[a] {
			errs = append(errs, fieldErr(af, "%s is listed twice", a))
		}
		arches[a] = true
	}
	return errs
}

func (s *Spec) validateRepositories() []error {
	var errs []error
	names := map[string]int{}
	for i, r := range s.Spec.Repositories {
		f := fmt.Sprintf("spec.repositories[%d]", i)
		if !repoName.MatchString(r.Name) {
			errs = append(errs, fieldErr(f+".name", "must be letters, digits, '.', '_', '-' (up to 63), got %q", r.Name))
		} else if j, dup := names[r.Name]; dup {
			errs = append(errs, fieldErr(f+".name", "duplicate repository name %q (also spec.repositories[%d])", r.Name, j))
		} else {
			names[r.Name] = i
		}
		u, err := ValidRepositoryURL(r.BaseURL)
		if err != nil {
			errs = append(errs, fieldErr(f+".baseurl", "%v", err))
		}
		if r.GPGKey == "" {
			errs = append(errs, fieldErr(f+".gpgkey", "is required: packages from upstream repositories are signature-checked with this key"))
		}
		if r.CAFile != "" && u != nil && u.Scheme != "https" {
			errs = append(errs, fieldErr(f+".caFile", "applies to https:// repositories only"))
		}
	}
	return errs
}

// ValidRepositoryURL checks the URL of an upstream repository or of a
// package in it: https:// with a host, or file:/// with an absolute path;
// no credentials, query or fragment (it is written to the lock file).
func ValidRepositoryURL(s string) (*url.URL, error) {
	if s == "" {
		return nil, errors.New("is required")
	}
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("%q is not a URL: %v", s, err)
	}
	switch u.Scheme {
	case "https":
		if u.Host == "" {
			return nil, fmt.Errorf("%q has no host", s)
		}
	case "file":
		if u.Host != "" && u.Host != "localhost" || !strings.HasPrefix(u.Path, "/") {
			return nil, fmt.Errorf("%q: a file URL must hold an absolute local path (file:///srv/mirror/)", s)
		}
	case "http":
		return nil, fmt.Errorf("%q: plain http is refused, use https:// (or file:/// for a local mirror)", s)
	default:
		return nil, fmt.Errorf("%q: the scheme must be https:// (or file:/// for a local mirror)", s)
	}
	if u.User != nil {
		return nil, fmt.Errorf("%q holds credentials, which would be written to the lock file", s)
	}
	if u.RawQuery != "" || u.Fragment != "" || u.ForceQuery {
		return nil, fmt.Errorf("%q has a query or fragment", s)
	}
	if strings.Contains(u.Path, "/../") || strings.HasSuffix(u.Path, "/..") {
		return nil, fmt.Errorf("%q has a '..' path segment", s)
	}
	return u, nil
}
