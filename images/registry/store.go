package registry

import (
	"context"
	"errors"
	"io"

	digest "github.com/opencontainers/go-digest"
)

// Errors a Store returns; the handler maps them to the distribution spec's
// error codes (NAME_UNKNOWN, MANIFEST_UNKNOWN, BLOB_UNKNOWN) with 404.
var (
	ErrNameUnknown     = errors.New("repository name not known to registry")
	ErrManifestUnknown = errors.New("manifest unknown")
	ErrBlobUnknown     = errors.New("blob unknown to registry")
)

// Descriptor describes one manifest or blob.
type Descriptor struct {
	MediaType string
	Digest    digest.Digest
	Size      int64
}

// Content is a verified reader of one manifest or blob. Read returns an
// error (wrapping verify.ErrDigestMismatch) rather than bytes that differ
// from what was verified; the handler then aborts the response.
type Content interface {
	io.ReadSeeker
	io.Closer
}

// Store is what the registry serves. It is owned by this package and
// implemented by the installer's content service over verified bundles.
// Repository names are full upstream names: "registry.k8s.io/pause".
type Store interface {
	// Repositories lists every repository, sorted.
	Repositories(ctx context.Context) ([]string, error)
	// Tags lists the tags of repo, sorted (ErrNameUnknown if no such repo).
	Tags(ctx context.Context, repo string) ([]string, error)
	// Resolve finds a manifest (image manifest or index) of repo by tag or
	// by digest (ErrNameUnknown, ErrManifestUnknown).
	Resolve(ctx context.Context, repo, reference string) (Descriptor, error)
	// Open returns the content of the manifest or blob with digest d, if
	// repo may serve it (ErrNameUnknown, ErrBlobUnknown).
	Open(ctx context.Context, repo string, d digest.Digest) (Content, Descriptor, error)
}
