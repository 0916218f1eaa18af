package builder

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/ferry-k8s/ferry/internal/atomicfile"

	"go.podman.io/image/v5/docker/reference"
	"go.podman.io/image/v5/types"

	"github.com/ferry-k8s/ferry/bundle"
	"github.com/ferry-k8s/ferry/images"
)

// RegistryOptions configure access to docker:// sources.
type RegistryOptions struct {
	// CertDir holds extra CA certificates (*.crt) and client certificates
	// (*.cert, *.key) for registries, as containers-certs.d(5); empty: the
	// system's per-registry directories.
	CertDir string
	// AuthFile is a containers-auth.json(5) file; empty: the default one.
	AuthFile string
}

// systemContext never skips TLS verification.
func (r RegistryOptions) systemContext() *types.SystemContext {
	return &types.SystemContext{
		DockerCertPath:              r.CertDir,
		AuthFilePath:                r.AuthFile,
		DockerInsecureSkipTLSVerify: types.OptionalBoolFalse,
	}
}

// LockOptions configure `builder lock`. The CLI only fills this struct.
type LockOptions struct {
	// SpecPath is the bundle spec.
	SpecPath string
	// Output is the lock file to write; empty: bundle.lock next to the spec.
	Output   string
	Registry RegistryOptions
	// Log receives structured logs; nil discards them.
	Log *slog.Logger
	// CacheDir caches upstream repository metadata (see internal/fetch);
	// empty: a temporary directory.
	CacheDir string
}

// LockResult is a written lock.
type LockResult struct {
	Output string       `json:"output"`
	Lock   *bundle.Lock `json:"lock"`
}

// Lock resolves every registry image of the spec named by tag to the digest
// its tag points to now (and, for an index, the instances of the platforms
// the spec keeps), resolves the packages entries with names against their
// upstream repositories (see packages.go), and writes the lock file that
// `builder build` then copies by.
func Lock(ctx context.Context, opts LockOptions) (*LockResult, error) {
	if opts.SpecPath == "" {
		return nil, errors.New("no spec given")
	}
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	spec, err := bundle.LoadSpecWith(opts.SpecPath, bundle.SpecOptions{AllowUnpinned: true})
	if err != nil {
		return nil, err
	}
	out := opts.Output
	if out == "" {
		out = bundle.DefaultLockPath(opts.SpecPath)
	}
	lock := &bundle.Lock{APIVersion: bundle.APIVersion, Kind: bundle.KindBundleLock, SpecDigest: spec.FileDigest}
	sys := opts.Registry.systemContext()
	for i, im := range spec.Spec.Images {
		if !spec.Unpinned(i) {
			continue
		}
		name, err := spec.ImageName(i)
		if err != nil {
			return nil, err
		}
		platforms := im.Platforms
		if len(platforms) == 0 {
			platforms = spec.Spec.Platforms
		}
		r, err := images.Resolve(ctx, im.Source, platforms, sys)
		if err != nil {
			return nil, &bundle.FieldError{Field: fmt.Sprintf("spec.images[%d].source", i), Err: err}
		}
		li := bundle.LockedImage{Name: name, Source: im.Source, Digest: r.Digest.String(), MediaType: r.MediaType}
		if r.Instances != nil {
			li.Platforms = map[string]string{}
			for p, d := range r.Instances {
				li.Platforms[p] = d.String()
			}
		}
		lock.Images = append(lock.Images, li)
		log.Info("image locked", slog.String("name", name), slog.String("digest", li.Digest))
	}
	if lock.Packages, err = lockPackages(ctx, spec, opts.CacheDir, log); err != nil {
		return nil, err
	}
	if err := lock.Validate(); err != nil {
		return nil, fmt.Errorf("made an invalid lock: %w", err)
	}
	data, err := lock.Marshal()
	if err != nil {
		return nil, err
	}
	if err := atomicfile.WriteFile(out, data, 0o644); err != nil {
		return nil, err
	}
	return &LockResult{Output: out, Lock: lock}, nil
}

// loadSpec reads the spec; registry images without a digest are pinned by
// the lock file (Options.Lock, or bundle.lock next to the spec if present),
// which must have been made from this very spec.
func (b *build) loadSpec() error {
	if b.opts.Default {
		return b.loadDefaultSpec()
	}
	spec, err := bundle.LoadSpecWith(b.opts.SpecPath, bundle.SpecOptions{AllowUnpinned: true})
	if err != nil {
		return err
	}
	b.spec, b.pins = spec, nil
	unpinned := false
	for i := range spec.Spec.Images {
		unpinned = unpinned || spec.Unpinned(i)
	}
	unpinned = unpinned || spec.HasNamedPackages()
	lockPath := b.opts.Lock
	if lockPath == "" {
		lockPath = bundle.DefaultLockPath(b.opts.SpecPath)
		if _, err := os.Stat(lockPath); errors.Is(err, os.ErrNotExist) {
			if unpinned {
				// No lock: the strict reading says which images are unpinned.
				_, err := bundle.LoadSpec(b.opts.SpecPath)
				return err
			}
			return nil
		}
	}
	lock, err := bundle.LoadLock(lockPath)
	if err != nil {
		return err
	}
	pins, err := lock.Check(spec)
	if err != nil {
		return fmt.Errorf("lock %s: %w", lockPath, err)
	}
	b.pins = pins
	for i, d := range pins {
		b.log.Info("image pinned by the lock", slog.String("source", spec.Spec.Images[i].Source), slog.String("digest", d))
	}
	return nil
}

// pinnedRef is the reference of a locked docker:// source by its digest:
// docker://registry/repo:tag → docker://registry/repo@sha256:….
func pinnedRef(source, dgst string) (string, error) {
	named, err := reference.ParseNormalizedNamed(strings.TrimPrefix(source, "docker://"))
	if err != nil {
		return "", fmt.Errorf("%s: %w", source, err)
	}
	return "docker://" + reference.TrimNamed(named).String() + "@" + dgst, nil
}
