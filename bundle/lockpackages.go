package bundle

import (
	"cmp"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/ferry-k8s/ferry/repo/rpmver"
)

// LockedPackage is one RPM pinned by `builder lock`: a package named in a
// packages entry, or one that such a package requires.
type LockedPackage struct {
	// Repo is the bundle repository it goes into (/packages/<repo>/).
	Repo    string `json:"repo"`
	Name    string `json:"name"`
	Epoch   int    `json:"epoch,omitempty"`
	Version string `json:"version"`
	Release string `json:"release"`
	Arch    string `json:"arch"`
	// SHA256 (hex) and Size of the .rpm file, from the repository's
	// signed metadata; the build refuses a download that differs.
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size"`
	// From is the upstream repository (spec.repositories[].name) and URL
	// the file is downloaded from.
	From string `json:"from"`
	URL  string `json:"url"`
	// Requested are the spec's names items ("socat >= 1.7.4") this package
	// answers; RequiredBy, for a package pulled in as a dependency, is the
	// package and requirement that pulled it in.
	Requested  []string `json:"requested,omitempty"`
	RequiredBy string   `json:"requiredBy,omitempty"`
}

// NEVRA is name-[epoch:]version-release.arch.
func (p *LockedPackage) NEVRA() string {
	if p.Epoch != 0 {
		return fmt.Sprintf("%s-%d:%s-%s.%s", p.Name, p.Epoch, p.Version, p.Release, p.Arch)
	}
	return fmt.Sprintf("%s-%s-%s.%s", p.Name, p.Version, p.Release, p.Arch)
}

// FileName is the package's file name in the bundle repository, as
// rpmbuild names it: name-version-release.arch.rpm.
func (p *LockedPackage) FileName() string {
	return fmt.Sprintf("%s-%s-%s.%s.rpm", p.Name, p.Version, p.Release, p.Arch)
}

// SortPackages sorts locked packages by repository, name, epoch, version,
// release and architecture (as strings: the order only has to be stable).
func SortPackages(ps []LockedPackage) {
	slices.SortStableFunc(ps, func(a, b LockedPackage) int {
		return cmp.Or(cmp.Compare(a.Repo, b.Repo), cmp.Compare(a.Name, b.Name), cmp.Compare(a.Epoch, b.Epoch),
			cmp.Compare(a.Version, b.Version), cmp.Compare(a.Release, b.Release), cmp.Compare(a.Arch, b.Arch))
	})
	for i := range ps {
		slices.Sort(ps[i].Requested)
	}
}

// PackagesOf are the locked packages of bundle repository repo.
func (l *Lock) PackagesOf(repo string) []LockedPackage {
	var out []LockedPackage
	for _, p := range l.Packages {
		if p.Repo == repo {
			out = append(out, p)
		}
	}
	return out
}

var sha256HexRE = regexp.MustCompile(`^[a-f0-9]{64}$`)

// maxPackageSize bounds a locked RPM (the largest real ones are a few GiB).
const maxPackageSize = 1 << 40

func (l *Lock) validatePackages() []error {
	var errs []error
	add := func(field, format string, args ...any) { errs = append(errs, fieldErr(field, format, args...)) }
	seen := map[string]int{}
	for i, p := range l.Packages {
		f := fmt.Sprintf("packages[%d]", i)
		if !repoName.MatchString(p.Repo) {
			add(f+".repo", "must be letters, digits, '.', '_', '-' (up to 63), got %q", p.Repo)
		}
		if !rpmver.ValidName(p.Name) {
			add(f+".name", "%q is not a package name (letters, digits, . _ + -)", p.Name)
		}
		if p.Epoch < 0 || p.Epoch > 1<<31-1 {
			add(f+".epoch", "%d is out of range", p.Epoch)
		}
		if !rpmVerPart.MatchString(p.Version) {
			add(f+".version", "%q is not a version (letters, digits, . _ + ~ ^)", p.Version)
		}
		if !rpmVerPart.MatchString(p.Release) {
			add(f+".release", "%q is not a release (letters, digits, . _ + ~ ^)", p.Release)
		}
		if !rpmArchRE.MatchString(p.Arch) {
			add(f+".arch", "%q is not an architecture", p.Arch)
		}
		if !sha256HexRE.MatchString(p.SHA256) {
			add(f+".sha256", "must be 64 lower-case hex digits, got %q", p.SHA256)
		}
		if p.Size <= 0 || p.Size > maxPackageSize {
			add(f+".size", "%d is not a package size", p.Size)
		}
		if !repoName.MatchString(p.From) {
			add(f+".from", "must be a repository name, got %q", p.From)
		}
		if _, err := ValidRepositoryURL(p.URL); err != nil {
			add(f+".url", "%v", err)
		} else if !strings.HasSuffix(p.URL, ".rpm") {
			add(f+".url", "%q does not name an .rpm file", p.URL)
		}
		switch {
		case len(p.Requested) == 0 && p.RequiredBy == "":
			add(f, "has neither requested nor requiredBy: why is it in?")
		case len(p.Requested) > 0 && p.RequiredBy != "":
			add(f, "has both requested and requiredBy")
		}
		for j, r := range p.Requested {
			if _, err := ParsePackageConstraint(r); err != nil {
				add(fmt.Sprintf("%s.requested[%d]", f, j), "%v", err)
			}
		}
		if len(p.RequiredBy) > 1024 {
			add(f+".requiredBy", "longer than 1024 bytes")
		}
		key := p.Repo + "/" + p.FileName()
		if j, dup := seen[key]; dup {
			add(f, "%s is in repository %s twice (also packages[%d])", p.FileName(), p.Repo, j)
		} else {
			seen[key] = i
		}
	}
	return errs
}

// checkPackages checks that every names item of every packages entry was
// locked into that entry's repository, and that no bundle repository holds
// locked packages without a packages entry with names.
func (l *Lock) checkPackages(spec *Spec) []error {
	var errs []error
	requested := map[string]bool{} // repo + "\x00" + names item
	for _, p := range l.Packages {
		for _, r := range p.Requested {
			requested[p.Repo+"\x00"+r] = true
		}
	}
	named := map[string]bool{}
	for i, p := range spec.Spec.Packages {
		if len(p.Names) == 0 {
			continue
		}
		repo := p.RepoName()
		named[repo] = true
		if len(l.PackagesOf(repo)) == 0 {
			errs = append(errs, &FieldError{Field: fmt.Sprintf("spec.packages[%d].names", i), Err: fmt.Errorf("the lock holds no packages for repository %s: %w", repo, ErrStaleLock)})
			continue
		}
		for j, n := range p.Names {
			if !requested[repo+"\x00"+n] {
				errs = append(errs, &FieldError{Field: fmt.Sprintf("spec.packages[%d].names[%d]", i, j), Err: fmt.Errorf("%q (repository %s) is not in the lock: %w", n, repo, ErrStaleLock)})
			}
		}
	}
	for _, p := range l.Packages {
		if !named[p.Repo] {
			errs = append(errs, fmt.Errorf("the lock holds packages for repository %s, which no packages entry with names fills: %w", p.Repo, ErrStaleLock))
			break
		}
		if spec.Repository(p.From) == nil {
			errs = append(errs, fmt.Errorf("locked package %s comes from repository %s, which is not in spec.repositories: %w", p.NEVRA(), p.From, ErrStaleLock))
			break
		}
	}
	return errs
}
