package content

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"

	digest "github.com/opencontainers/go-digest"

	"github.com/ferry-k8s/ferry/bundle/verify"
	"github.com/ferry-k8s/ferry/images/registry"
)

// The Service is the registry's Store over every served bundle.
//
// Repositories are the image names without tag
// ("registry.example.com/ferry/app"); tags come from the names. When a
// repository is in several bundles, a tag resolves in the newest bundle
// version that has it, and a digest (manifest or blob) in the newest bundle
// in which that repository reaches it. A repository serves only the
// manifests and blobs its own images reach (manifests, index children,
// configs, layers), as a registry would: a blob of another image of the
// same bundle is BLOB_UNKNOWN under this repository's name.
var _ registry.Store = (*Service)(nil)

// Repositories implements registry.Store.
func (s *Service) Repositories(context.Context) ([]string, error) {
	return slices.Clone(s.cur.Load().names), nil
}

// Tags implements registry.Store.
func (s *Service) Tags(_ context.Context, repo string) ([]string, error) {
	v := s.cur.Load().repos[repo]
	if v == nil {
		return nil, registry.ErrNameUnknown
	}
	return slices.Clone(v.tagList), nil
}

// Resolve implements registry.Store.
func (s *Service) Resolve(_ context.Context, repo, reference string) (registry.Descriptor, error) {
	snap := s.cur.Load()
	v := snap.repos[repo]
	if v == nil {
		return registry.Descriptor{}, registry.ErrNameUnknown
	}
	if d, err := digest.Parse(reference); err == nil {
		_, o, ok := snap.object(repo, d)
		if !ok || !o.manifest {
			return registry.Descriptor{}, registry.ErrManifestUnknown
		}
		return registry.Descriptor{MediaType: o.mediaType, Digest: d, Size: o.size}, nil
	}
	t, ok := v.tags[reference]
	if !ok {
		return registry.Descriptor{}, registry.ErrManifestUnknown
	}
	o := t.b.objects[t.d]
	return registry.Descriptor{MediaType: o.mediaType, Digest: t.d, Size: o.size}, nil
}

// Open implements registry.Store: the content is read through
// verify.Reader, and holds a reference on its bundle until closed.
func (s *Service) Open(_ context.Context, repo string, d digest.Digest) (registry.Content, registry.Descriptor, error) {
	if s.cur.Load().repos[repo] == nil {
		return nil, registry.Descriptor{}, registry.ErrNameUnknown
	}
	b, o, ok := acquire(s, func(snap *snapshot) (*served, object, bool) { return snap.object(repo, d) })
	if !ok {
		return nil, registry.Descriptor{}, registry.ErrBlobUnknown
	}
	r, err := s.openContent(b, o.path)
	if err != nil {
		return nil, registry.Descriptor{}, err
	}
	desc := registry.Descriptor{MediaType: "application/octet-stream", Digest: d, Size: o.size}
	if o.manifest {
		desc.MediaType = o.mediaType
	}
	return r, desc, nil
}

// reader is a verified reader of one bundle file that holds a reference on
// its bundle until closed, and counts a digest failure once.
type reader struct {
	s      *Service
	b      *served
	path   string
	r      *verify.Reader
	failed bool
	closed bool
}

// openContent opens file p of b, whose reference the caller holds: the
// reader takes it over (and releases it on Close, or here on error).
func (s *Service) openContent(b *served, p string) (*reader, error) {
	f, err := b.b.File(p)
	if err != nil {
		b.release()
		if errors.Is(err, verify.ErrDigestMismatch) {
			s.digestFailure(b, p, err)
		}
		return nil, fmt.Errorf("opening %s of %s: %w", p, b.info.Path, err)
	}
	return &reader{s: s, b: b, path: p, r: f.NewReader()}, nil
}

func (r *reader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if err != nil && !r.failed && errors.Is(err, verify.ErrDigestMismatch) {
		r.failed = true
		r.s.digestFailure(r.b, r.path, err)
	}
	return n, err
}

func (r *reader) Seek(offset int64, whence int) (int64, error) { return r.r.Seek(offset, whence) }

// Close releases the buffer and the bundle reference; it may be called
// more than once.
func (r *reader) Close() error {
	if r.closed {
		return nil
	}
	r.closed = true
	err := r.r.Close()
	r.b.release()
	return err
}

func (s *Service) digestFailure(b *served, p string, err error) {
	s.m.digestFailures.Inc()
	s.log.Error("bundle content changed since it was verified: read refused", slog.String("iso", b.info.Path),
		slog.String("version", b.info.Version), slog.String("file", p), slog.Any("error", err))
}
