package images

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"syscall"

	"github.com/ferry-k8s/ferry/internal/atomicfile"
	"github.com/ferry-k8s/ferry/internal/fileutil"

	digest "github.com/opencontainers/go-digest"
	imgspecv1 "github.com/opencontainers/image-spec/specs-go/v1"
	"go.podman.io/image/v5/docker"
	"go.podman.io/image/v5/docker/reference"
	"go.podman.io/image/v5/manifest"
	"go.podman.io/image/v5/types"
)

// cacheLockFile serializes index.json updates of a cache between processes.
const cacheLockFile = ".lock"

// cache is the shared download cache of registry images: an OCI image
// layout (CopyOptions.CacheDir) that several builds, one after the other or
// at the same time, fill and read.
//
//   - blobs/sha256/<hex>: every manifest, config and layer downloaded, each
//     written under a temporary name and renamed only after its digest (and
//     size) matched, so a reader never sees a partial blob and two writers of
//     one blob both write the same bytes.
//   - index.json: one entry per top-level manifest downloaded, named
//     "<registry>/<repo>@<digest>", recording its media type (as the
//     registry served it) for the builds that read it back without asking
//     the registry. It is rewritten under an exclusive flock(2) of .lock.
//
// Nothing is trusted as it is read back: manifests are checked against their
// digest when read, blobs when linked into a bundle (linkBlob) or copied
// (copy.Image); a blob that does not match is removed and downloaded again.
type cache struct {
	dir string
}

// openCache creates the layout at dir if needed.
func openCache(dir string) (*cache, error) {
	c := &cache{dir: dir}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("creating image cache %s: %w", dir, err)
	}
	err := c.locked(func() error { return initLayout(dir) })
	if err != nil {
		return nil, fmt.Errorf("creating image cache %s: %w", dir, err)
	}
	return c, nil
}

// locked runs fn holding the cache's exclusive lock.
func (c *cache) locked(fn func() error) error {
	f, err := os.OpenFile(filepath.Join(c.dir, cacheLockFile), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return err
	}
	defer f.Close() // also releases the lock
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX)
		if !errors.Is(err, syscall.EINTR) {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("locking %s: %w", f.Name(), err)
	}
	return fn()
}

func (c *cache) blobPath(d digest.Digest) string {
	return filepath.Join(c.dir, imgspecv1.ImageBlobsDir, d.Algorithm().String(), d.Encoded())
}

func (c *cache) has(d digest.Digest) bool {
	st, err := os.Lstat(c.blobPath(d))
	return err == nil && st.Mode().IsRegular()
}

// readManifest returns the cached manifest d, checked against d; ok is false
// when it is missing, or corrupt (it is then removed).
func (c *cache) readManifest(d digest.Digest) (data []byte, ok bool, err error) {
	if err := checkDigest(d); err != nil {
		return nil, false, err
	}
	data, err = fileutil.ReadFS(os.DirFS(c.dir), filepath.ToSlash(filepath.Join(imgspecv1.ImageBlobsDir, d.Algorithm().String(), d.Encoded())), maxManifestSize)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("reading cached manifest %s: %w", d, err)
	}
	if d.Algorithm().FromBytes(data) != d {
		_ = os.Remove(c.blobPath(d))
		return nil, false, nil
	}
	return data, true, nil
}

// putManifest stores a manifest already checked against d.
func (c *cache) putManifest(d digest.Digest, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(c.blobPath(d)), 0o755); err != nil {
		return err
	}
	return atomicfile.WriteFile(c.blobPath(d), data, 0o644)
}

// mediaType is the media type index.json records for the manifest d.
func (c *cache) mediaType(d digest.Digest) (string, bool) {
	idx, err := loadLayoutIndex(c.dir)
	if err != nil {
		return "", false
	}
	for _, m := range idx.manifests {
		if m.Digest == d && m.MediaType != "" {
			return m.MediaType, true
		}
	}
	return "", false
}

// record lists a top-level manifest in index.json under name.
func (c *cache) record(name string, d digest.Digest, size int64, mediaType string) error {
	return c.locked(func() error {
		idx, err := loadLayoutIndex(c.dir)
		if err != nil {
			return fmt.Errorf("reading image cache %s: %w", c.dir, err)
		}
		idx.put(imgspecv1.Descriptor{MediaType: mediaType, Digest: d, Size: size,
			Annotations: map[string]string{imgspecv1.AnnotationRefName: name}})
		return idx.write(c.dir)
	})
}

// download fetches the blob b from src into the cache, checking its size and
// digest before it gets its name; progress is told every chunk read.
func (c *cache) download(ctx context.Context, src types.ImageSource, b types.BlobInfo, bic types.BlobInfoCache, progress func(int64)) error {
	if err := checkDigest(b.Digest); err != nil {
		return err
	}
	if b.Size < 0 {
		return fmt.Errorf("blob %s: the manifest gives no size", b.Digest)
	}
	rc, size, err := src.GetBlob(ctx, b, bic)
	if err != nil {
		return err
	}
	defer rc.Close()
	if size >= 0 && size != b.Size {
		return fmt.Errorf("blob %s: the registry announces %d bytes, the manifest %d", b.Digest, size, b.Size)
	}
	p := c.blobPath(b.Digest)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	return atomicfile.Write(p, 0o644, func(f *os.File) error {
		v := b.Digest.Verifier()
		r := io.TeeReader(io.LimitReader(rc, b.Size+1), v)
		n, err := io.Copy(f, &progressReader{ctx: ctx, r: r, report: progress})
		if err != nil {
			return fmt.Errorf("blob %s: %w", b.Digest, err)
		}
		if n > b.Size {
			return fmt.Errorf("blob %s: %w: more than the %d bytes of the manifest", b.Digest, errBlobMismatch, b.Size)
		}
		if n < b.Size {
			return fmt.Errorf("blob %s: %w: %d bytes, the manifest says %d", b.Digest, errBlobMismatch, n, b.Size)
		}
		if !v.Verified() {
			return fmt.Errorf("blob %s: %w: the registry sent other content", b.Digest, errBlobMismatch)
		}
		return nil
	})
}

// progressReader reports bytes read and stops on a cancelled context.
type progressReader struct {
	ctx    context.Context
	r      io.Reader
	report func(int64)
}

func (p *progressReader) Read(b []byte) (int, error) {
	if err := p.ctx.Err(); err != nil {
		return 0, err
	}
	n, err := p.r.Read(b)
	if n > 0 && p.report != nil {
		p.report(int64(n))
	}
	return n, err
}

// isDockerRef tells the references whose images the cache keeps.
func isDockerRef(ref types.ImageReference) bool {
	return ref.Transport().Name() == docker.Transport.Name()
}

// cachingSource reads a docker:// image through the cache: manifests and
// blobs found in the cache are read from it, the others are downloaded into
// it first. The registry is contacted only on a miss: a build whose locked
// image is fully cached runs with the registry unreachable. A manifest
// fetched by tag is always asked from the registry (the tag may have moved)
// and cached by digest.
type cachingSource struct {
	ref   types.ImageReference
	sys   *types.SystemContext
	cache *cache

	mu       sync.Mutex
	upstream types.ImageSource
	top      []byte // the top-level manifest, once read
	topType  string
}

func newCachingSource(ref types.ImageReference, sys *types.SystemContext, c *cache) *cachingSource {
	return &cachingSource{ref: ref, sys: sys, cache: c}
}

func (s *cachingSource) Reference() types.ImageReference { return s.ref }

func (s *cachingSource) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.upstream != nil {
		return s.upstream.Close()
	}
	return nil
}

// registry opens the registry source on first use.
func (s *cachingSource) registry(ctx context.Context) (types.ImageSource, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.upstream == nil {
		src, err := s.ref.NewImageSource(ctx, s.sys)
		if err != nil {
			return nil, err
		}
		s.upstream = src
	}
	return s.upstream, nil
}

// pinned is the digest the reference names, if any.
func (s *cachingSource) pinned() (digest.Digest, bool) {
	if d, ok := s.ref.DockerReference().(reference.Digested); ok {
		return d.Digest(), true
	}
	return "", false
}

// cacheName is the index.json name of the top-level manifest d.
func (s *cachingSource) cacheName(d digest.Digest) string {
	return reference.TrimNamed(s.ref.DockerReference()).String() + "@" + d.String()
}

func (s *cachingSource) GetManifest(ctx context.Context, instance *digest.Digest) ([]byte, string, error) {
	if instance == nil {
		return s.topManifest(ctx)
	}
	d := *instance
	if err := checkDigest(d); err != nil {
		return nil, "", err
	}
	top, topType, err := s.topManifest(ctx)
	if err != nil {
		return nil, "", err
	}
	// An instance's media type is the one its index gives, whether it comes
	// from the cache or the registry, so that both give the same bytes.
	mt := ""
	if list, err := manifest.ListFromBlob(top, manifest.NormalizedMIMEType(topType)); err == nil {
		if inst, err := list.Instance(d); err == nil {
			mt = inst.MediaType
		}
	}
	data, ok, err := s.cache.readManifest(d)
	if err != nil {
		return nil, "", err
	}
	if !ok {
		src, err := s.registry(ctx)
		if err != nil {
			return nil, "", err
		}
		if data, _, err = src.GetManifest(ctx, &d); err != nil {
			return nil, "", err
		}
		if got := d.Algorithm().FromBytes(data); got != d {
			return nil, "", fmt.Errorf("manifest %s: the registry sent %s", d, got)
		}
		if err := s.cache.putManifest(d, data); err != nil {
			return nil, "", fmt.Errorf("caching manifest %s: %w", d, err)
		}
	}
	if mt == "" {
		mt = manifest.GuessMIMEType(data)
	}
	return data, mt, nil
}

// topManifest reads the top-level manifest once: from the cache when the
// reference names a digest the cache holds, else from the registry.
func (s *cachingSource) topManifest(ctx context.Context) ([]byte, string, error) {
	s.mu.Lock()
	top, mt := s.top, s.topType
	s.mu.Unlock()
	if top != nil {
		return top, mt, nil
	}
	if d, ok := s.pinned(); ok {
		if mt, known := s.cache.mediaType(d); known {
			data, ok, err := s.cache.readManifest(d)
			if err != nil {
				return nil, "", err
			}
			if ok {
				return s.keepTop(data, mt)
			}
		}
	}
	src, err := s.registry(ctx)
	if err != nil {
		return nil, "", err
	}
	data, mt, err := src.GetManifest(ctx, nil)
	if err != nil {
		return nil, "", err
	}
	if mt == "" {
		mt = manifest.GuessMIMEType(data)
	}
	got := digest.FromBytes(data)
	if d, ok := s.pinned(); ok {
		if got = d.Algorithm().FromBytes(data); got != d {
			return nil, "", fmt.Errorf("manifest %s: the registry sent %s", d, got)
		}
	}
	if err := s.cache.putManifest(got, data); err != nil {
		return nil, "", fmt.Errorf("caching manifest %s: %w", got, err)
	}
	if err := s.cache.record(s.cacheName(got), got, int64(len(data)), mt); err != nil {
		return nil, "", fmt.Errorf("caching manifest %s: %w", got, err)
	}
	return s.keepTop(data, mt)
}

func (s *cachingSource) keepTop(data []byte, mt string) ([]byte, string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.top == nil {
		s.top, s.topType = data, mt
	}
	return s.top, s.topType, nil
}

// GetBlob reads the blob from the cache, downloading it first if missing.
// The caller checks the digest (copy.Image does, configPlatform does).
func (s *cachingSource) GetBlob(ctx context.Context, b types.BlobInfo, bic types.BlobInfoCache) (io.ReadCloser, int64, error) {
	if err := checkDigest(b.Digest); err != nil {
		return nil, 0, err
	}
	if !s.cache.has(b.Digest) {
		if err := s.fetch(ctx, b, bic, nil); err != nil {
			return nil, 0, err
		}
	}
	f, err := os.Open(s.cache.blobPath(b.Digest))
	if err != nil {
		return nil, 0, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	return f, st.Size(), nil
}

// fetch downloads the blob b into the cache.
func (s *cachingSource) fetch(ctx context.Context, b types.BlobInfo, bic types.BlobInfoCache, progress func(int64)) error {
	src, err := s.registry(ctx)
	if err != nil {
		return err
	}
	return s.cache.download(ctx, src, b, bic, progress)
}

func (s *cachingSource) HasThreadSafeGetBlob() bool { return true }

// GetSignatures returns none: signatures are not stored in the layout.
func (s *cachingSource) GetSignatures(context.Context, *digest.Digest) ([][]byte, error) {
	return nil, nil
}

func (s *cachingSource) LayerInfosForCopy(context.Context, *digest.Digest) ([]types.BlobInfo, error) {
	return nil, nil
}

// fill makes sure every blob is in the cache and hard-links it into the
// layout dstDir (verifying it on the way, see linkBlob), parallel blobs at
// a time. A cached blob that does not verify is removed and downloaded
// again. Where linking is impossible (another file system), the blob stays
// in the cache only and copy.Image copies it from there. done is told the
// bytes of each blob as they are read or linked.
func (s *cachingSource) fill(ctx context.Context, dstDir string, blobs []types.BlobInfo, bic types.BlobInfoCache, parallel int, done func(int64)) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sem := make(chan struct{}, max(parallel, 1))
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	for _, b := range blobs {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			if err := s.fillOne(ctx, dstDir, b, bic, done); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
				cancel()
			}
		}()
	}
	wg.Wait()
	if len(errs) > 0 {
		// The first error is the cause; the others are cancellations.
		return errs[0]
	}
	return ctx.Err()
}

func (s *cachingSource) fillOne(ctx context.Context, dstDir string, b types.BlobInfo, bic types.BlobInfoCache, done func(int64)) error {
	if s.cache.has(b.Digest) {
		err := errLinkDisabled
		if linkBlobs {
			err = linkBlob(s.cache.dir, dstDir, b)
		}
		if err != nil && !errors.Is(err, errBlobMismatch) {
			// Not linkable here (another file system): copy.Image copies
			// it from the cache, once it is known to be sound.
			err = verifyBlobFile(s.cache.blobPath(b.Digest), b.Digest, b.Size)
		}
		if err == nil {
			done(max(b.Size, 0))
			return nil
		}
		if errors.Is(err, errBlobMismatch) {
			// Corrupt in the cache (a disk error, an edit): fetch it again.
			if err := os.Remove(s.cache.blobPath(b.Digest)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("removing corrupt cached blob %s: %w", b.Digest, err)
			}
		}
	}
	var n int64
	if err := s.fetch(ctx, b, bic, func(k int64) { n += k; done(k) }); err != nil {
		return fmt.Errorf("downloading blob %s: %w", b.Digest, err)
	}
	if n < b.Size {
		done(b.Size - n)
	}
	if !linkBlobs {
		return nil
	}
	if err := linkBlob(s.cache.dir, dstDir, b); errors.Is(err, errBlobMismatch) {
		return fmt.Errorf("blob %s changed in the cache right after download: %w", b.Digest, err)
	}
	return nil
}

// errLinkDisabled stands for a link that failed when linkBlobs is off.
var errLinkDisabled = errors.New("linking disabled")
