package builder

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"

	"github.com/ferry-k8s/ferry/bundle"
	"github.com/ferry-k8s/ferry/internal/fetch"
	"github.com/ferry-k8s/ferry/repo"
	"github.com/ferry-k8s/ferry/repo/yum"
	"github.com/ferry-k8s/ferry/signing"
)

// Packages named in a spec (spec.packages[].names) come from upstream yum
// repositories (spec.repositories):
//
//	builder lock:  repomd.xml (+.asc) ─▶ primary ─▶ yum.Resolve ─▶ bundle.lock packages
//	builder build: bundle.lock ─▶ download into the cache (size, sha256)
//	               ─▶ header matches the lock ─▶ signature by the repository's gpgkey
//	               ─▶ packages/<repo>/Packages/ (hard link from the cache)
//
// A build uses the lock only: no repository metadata is read, and with a
// warm cache no request is made at all.

// upstreams opens the spec's repositories as they are needed: their keys,
// a download client trusting their CA, their metadata.
type upstreams struct {
	spec    *bundle.Spec
	base    *fetch.Client
	clients map[string]*fetch.Client
	rings   map[string]*signing.Keyring
	indexes map[string]*yum.Index
	log     *slog.Logger
}

func newUpstreams(spec *bundle.Spec, cacheDir string, parallel int, log *slog.Logger) (*upstreams, error) {
	c, err := fetch.New(fetch.Options{CacheDir: cacheDir, Parallel: parallel, Log: log})
	if err != nil {
		return nil, err
	}
	return &upstreams{spec: spec, base: c, clients: map[string]*fetch.Client{}, rings: map[string]*signing.Keyring{},
		indexes: map[string]*yum.Index{}, log: log}, nil
}

func (u *upstreams) close() { u.base.Close() }

// repoField is the field path of spec.repositories entry name.
func (u *upstreams) repoField(name string) string {
	for i, r := range u.spec.Spec.Repositories {
		if r.Name == name {
			return "spec.repositories[" + strconv.Itoa(i) + "]"
		}
	}
	return "spec.repositories"
}

func (u *upstreams) repository(name string) (*bundle.RepositorySpec, error) {
	r := u.spec.Repository(name)
	if r == nil {
		return nil, fmt.Errorf("no repository named %q in spec.repositories", name)
	}
	return r, nil
}

// keyring is the repository's gpgkey.
func (u *upstreams) keyring(name string) (*signing.Keyring, error) {
	if k, ok := u.rings[name]; ok {
		return k, nil
	}
	r, err := u.repository(name)
	if err != nil {
		return nil, err
	}
	k, err := signing.LoadKeyringFile(u.spec.Path(r.GPGKey))
	if err != nil {
		return nil, &bundle.FieldError{Field: u.repoField(name) + ".gpgkey", Err: err}
	}
	u.rings[name] = k
	return k, nil
}

// client downloads from the repository, trusting its caFile too.
func (u *upstreams) client(name string) (*fetch.Client, error) {
	if c, ok := u.clients[name]; ok {
		return c, nil
	}
	r, err := u.repository(name)
	if err != nil {
		return nil, err
	}
	c := u.base
	if r.CAFile != "" {
		pem, err := os.ReadFile(u.spec.Path(r.CAFile))
		if err == nil {
			c, err = u.base.WithCA(pem)
		}
		if err != nil {
			return nil, &bundle.FieldError{Field: u.repoField(name) + ".caFile", Err: fmt.Errorf("reading CA bundle %s: %w", r.CAFile, err)}
		}
	}
	u.clients[name] = c
	return c, nil
}

// index loads the repository's metadata.
func (u *upstreams) index(ctx context.Context, name string) (*yum.Index, error) {
	if ix, ok := u.indexes[name]; ok {
		return ix, nil
	}
	r, err := u.repository(name)
	if err != nil {
		return nil, err
	}
	ring, err := u.keyring(name)
	if err != nil {
		return nil, err
	}
	c, err := u.client(name)
	if err != nil {
		return nil, err
	}
	ix, err := yum.Load(ctx, c, yum.Repository{Name: r.Name, BaseURL: r.BaseURL, Keyring: ring})
	if err != nil {
		return nil, &bundle.FieldError{Field: u.repoField(name), Err: err}
	}
	if !ix.Signed {
		u.log.Warn("repository metadata is not signed (no repodata/repomd.xml.asc): trusted through TLS; every package's signature is still checked at build",
			slog.String("repository", name))
	}
	u.log.Info("repository metadata read", slog.String("repository", name), slog.Int("packages", len(ix.Packages)))
	u.indexes[name] = ix
	return ix, nil
}

// lockPackages resolves every packages entry with names and returns the
// locked packages (builder lock).
func lockPackages(ctx context.Context, spec *bundle.Spec, cacheDir string, log *slog.Logger) ([]bundle.LockedPackage, error) {
	if !spec.HasNamedPackages() {
		return nil, nil
	}
	if cacheDir == "" {
		tmp, err := os.MkdirTemp("", "ferry-cache-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(tmp)
		cacheDir = tmp
	}
	u, err := newUpstreams(spec, cacheDir, 0, log)
	if err != nil {
		return nil, err
	}
	defer u.close()
	var errs []error
	byFile := map[string]int{} // repo/file → index in out
	var out []bundle.LockedPackage
	for i, p := range spec.Spec.Packages {
		if len(p.Names) == 0 {
			continue
		}
		field := fmt.Sprintf("spec.packages[%d].names", i)
		var indexes []*yum.Index
		for _, r := range spec.PackageSources(i) {
			ix, err := u.index(ctx, r.Name)
			if err != nil {
				return nil, err
			}
			indexes = append(indexes, ix)
		}
		pins, err := yum.Resolve(indexes, yum.Request{Names: p.Names, Exclude: p.Exclude, Arches: p.ArchList()})
		if err != nil {
			errs = append(errs, &bundle.FieldError{Field: field, Err: err})
			continue
		}
		for _, pin := range pins {
			lp := bundle.LockedPackage{
				Repo: p.RepoName(), Name: pin.Package.Name, Epoch: pin.Package.Epoch, Version: pin.Package.Version,
				Release: pin.Package.Release, Arch: pin.Package.Arch, SHA256: pin.Package.Checksum, Size: pin.Package.Size,
				From: pin.Repo, URL: pin.URL, Requested: pin.Requested, RequiredBy: pin.RequiredBy,
			}
			key := lp.Repo + "/" + lp.FileName()
			j, dup := byFile[key]
			if !dup {
				byFile[key] = len(out)
				out = append(out, lp)
				log.Info("package locked", slog.String("repo", lp.Repo), slog.String("package", lp.NEVRA()), slog.String("from", lp.From))
				continue
			}
			// Two entries into one bundle repository share a package.
			prev := &out[j]
			if prev.SHA256 != lp.SHA256 {
				errs = append(errs, &bundle.FieldError{Field: field, Err: fmt.Errorf("%s would be %s in repository %s, and another file (sha256 %s from %s) by an earlier entry", lp.NEVRA(), lp.URL, lp.Repo, prev.SHA256, prev.From)})
				continue
			}
			prev.Requested = append(prev.Requested, lp.Requested...)
			if len(prev.Requested) > 0 {
				prev.RequiredBy = ""
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	bundle.SortPackages(out)
	return out, nil
}

// lockPath is the lock file a build reads: Options.Lock, or bundle.lock
// next to the spec.
func (b *build) lockPath() string {
	if b.opts.Lock != "" {
		return b.opts.Lock
	}
	return bundle.DefaultLockPath(b.opts.SpecPath)
}

// lockedPackages reads the lock for the packages of entries with names;
// loadSpec has checked it against the spec already (and refused a spec
// with names but no lock).
func (b *build) lockedPackages() ([]bundle.LockedPackage, error) {
	if !b.spec.HasNamedPackages() {
		return nil, nil
	}
	lock, err := bundle.LoadLock(b.lockPath())
	if err != nil {
		return nil, err
	}
	if _, err := lock.Check(b.spec); err != nil {
		return nil, fmt.Errorf("lock %s: %w", b.lockPath(), err)
	}
	return lock.Packages, nil
}

// checkNamedPackages is resolve's check: the lock covers every entry with
// names, and the keys and CA files of the repositories they come from load.
func (b *build) checkNamedPackages() error {
	locked, err := b.lockedPackages()
	if err != nil || len(locked) == 0 {
		return err
	}
	u, err := newUpstreams(b.spec, b.cacheDir(), b.opts.Workers, b.log)
	if err != nil {
		return err
	}
	defer u.close()
	var errs []error
	seen := map[string]bool{}
	for _, p := range locked {
		if seen[p.From] {
			continue
		}
		seen[p.From] = true
		if _, err := u.keyring(p.From); err != nil {
			errs = append(errs, err)
		}
		if _, err := u.client(p.From); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// cacheDir is Options.CacheDir, or a directory in the work tree (removed
// with it) when none is given.
func (b *build) cacheDir() string {
	if b.opts.CacheDir != "" {
		return b.opts.CacheDir
	}
	return filepath.Join(b.workDir, "cache")
}

// composeNamedPackages downloads every locked package into the cache and
// verifies it (size and sha256 as locked, header as locked, signature by its
// repository's gpgkey); only when all are good does it link them into
// packages/<repo>/Packages/. placed maps destinations to sources, to name
// collisions with directory entries.
func (b *build) composeNamedPackages(ctx context.Context, pkgRoot string, placed map[string]string) error {
	locked, err := b.lockedPackages()
	if err != nil || len(locked) == 0 {
		return err
	}
	u, err := newUpstreams(b.spec, b.cacheDir(), b.opts.Workers, b.log)
	if err != nil {
		return err
	}
	defer u.close()
	items := make([]fetch.Item, len(locked))
	clients := make([]*fetch.Client, len(locked))
	for i, p := range locked {
		if clients[i], err = u.client(p.From); err != nil {
			return err
		}
		if _, err := u.keyring(p.From); err != nil {
			return err
		}
		items[i] = fetch.Item{URL: p.URL, SHA256: p.SHA256, Size: p.Size}
	}
	// One client per repository (their CAs differ), sharing one bound.
	paths := make([]string, len(locked))
	errs := make([]error, len(locked))
	groups := map[*fetch.Client][]int{}
	var order []*fetch.Client
	for i, c := range clients {
		if groups[c] == nil {
			order = append(order, c)
		}
		groups[c] = append(groups[c], i)
	}
	for _, c := range order {
		idx := groups[c]
		its := make([]fetch.Item, len(idx))
		for k, i := range idx {
			its[k] = items[i]
		}
		ps, es := c.FetchAll(ctx, its)
		for k, i := range idx {
			paths[i], errs[i] = ps[k], es[k]
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	var bad []error
	for i, p := range locked {
		if errs[i] == nil {
			errs[i] = b.verifyLocked(p, paths[i], u.rings[p.From])
		}
		if errs[i] != nil {
			bad = append(bad, fmt.Errorf("package %s (sha256:%s) from %s: %w", p.NEVRA(), p.SHA256, p.From, errs[i]))
		}
	}
	if err := errors.Join(bad...); err != nil {
		return err
	}
	st := u.base.Stats()
	b.log.Info("packages downloaded", slog.Int("packages", len(locked)), slog.Int64("requests", st.Requests),
		slog.Int64("cached", st.CacheHits), slog.Int64("bytes", st.Bytes))
	for i, p := range locked {
		dest := filepath.Join(pkgRoot, p.Repo, "Packages", p.FileName())
		if prev, dup := placed[dest]; dup {
			return fmt.Errorf("package %s from %s and %s would both be %s in repository %q", p.NEVRA(), p.From, prev, p.FileName(), p.Repo)
		}
		placed[dest] = p.URL
		if err := os.MkdirAll(filepath.Dir(dest), 0o755); err != nil {
			return err
		}
		if err := linkOrCopy(paths[i], dest, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// verifyLocked checks a downloaded package against its lock entry: its
// header names the locked package, and its signature is by the key of the
// repository it comes from.
func (b *build) verifyLocked(p bundle.LockedPackage, path string, ring *signing.Keyring) error {
	pkg, err := repo.ReadPackageWithDigest(path, "", p.SHA256)
	if err != nil {
		return err
	}
	if pkg.Name != p.Name || pkg.Epoch != p.Epoch || pkg.Version != p.Version || pkg.Release != p.Release || pkg.Arch != p.Arch {
		return fmt.Errorf("the file is %s, not the locked package", pkg.NEVRA())
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	sigs, err := ring.VerifyRPM(f)
	if err != nil {
		return fmt.Errorf("signature check with the gpgkey of repository %s: %w", p.From, err)
	}
	b.log.Debug("package verified", slog.String("package", p.NEVRA()), slog.String("key", sigs.Signatures[0].KeyID))
	return nil
}
