package verify

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"sync"

	"github.com/ferry-k8s/ferry/bundle"
	"github.com/ferry-k8s/ferry/signing"
)

// ErrDigestMismatch is returned by a Reader for content that does not match
// what was verified against the signed manifest.
var ErrDigestMismatch = fmt.Errorf("%w: content does not match the manifest", ErrFailed)

// OpenVerified opens, checks and indexes a bundle for serving: the manifest
// is trusted (Open), then every file is hashed once against it, recording
// the sha256 of every chunk (1 MiB) so that any later read, whole or a
// range, can be checked piece by piece without hashing whole files again.
// After it returns, a change to the ISO file is caught by the next read of
// the changed chunk; nothing unverified is ever returned by a Reader.
func OpenVerified(ctx context.Context, path string, ring *signing.Keyring, opts Options) (*Bundle, *Report, error) {
	b, err := Open(path, ring, opts)
	if err != nil {
		return nil, nil, err
	}
	rep := &Report{ISO: path}
	b.fillReport(rep)
	rep.Problems = checkFiles(ctx, b, opts, rep, true)
	if len(rep.Problems) == 0 {
		rep.Problems = b.checkImages(b.FS())
	}
	rep.OK = len(rep.Problems) == 0
	if !rep.OK {
		b.Close()
		return nil, rep, failed(path, rep.Problems)
	}
	return b, rep, nil
}

// File is one indexed file of a bundle.
type File struct {
	Info   bundle.File
	ra     io.ReaderAt
	chunks [][32]byte
}

// File returns the indexed file at path (a manifest path such as
// "images/blobs/sha256/…"). It fails for paths not in the manifest, and
// for bundles not opened with OpenVerified.
func (b *Bundle) File(p string) (*File, error) {
	sums, ok := b.chunks[p]
	if !ok {
		if b.chunks == nil {
			return nil, errors.New("bundle was not indexed (use OpenVerified)")
		}
		return nil, fmt.Errorf("%s: not in the bundle: %w", p, fs.ErrNotExist)
	}
	info := b.files[p]
	ra, size, err := b.Image.ReaderAt(p)
	if err != nil {
		return nil, err
	}
	if size != info.Size {
		return nil, fmt.Errorf("%s: %d bytes on the ISO, %d in the manifest: %w", p, size, info.Size, ErrDigestMismatch)
	}
	return &File{Info: info, ra: ra, chunks: sums}, nil
}

var chunkPool = sync.Pool{New: func() any { b := make([]byte, bundle.ChunkSize); return &b }}

// NewReader returns a reader of f that verifies every chunk before
// returning any byte of it. It implements io.ReadSeeker, so it can be given
// to http.ServeContent (which serves Range requests with Seek). Close it to
// return its buffer.
func (f *File) NewReader() *Reader {
	return &Reader{f: f, chunk: -1}
}

// Reader reads a File, verifying chunk by chunk.
type Reader struct {
	f     *File
	off   int64
	buf   *[]byte
	chunk int64 // index of the chunk held in buf, -1 for none
	n     int   // valid bytes in buf
}

// Read implements io.Reader.
func (r *Reader) Read(p []byte) (int, error) {
	if r.off >= r.f.Info.Size {
		return 0, io.EOF
	}
	c := r.off / bundle.ChunkSize
	if c != r.chunk {
		if err := r.load(c); err != nil {
			return 0, err
		}
	}
	start := int(r.off - c*bundle.ChunkSize)
	n := copy(p, (*r.buf)[start:r.n])
	r.off += int64(n)
	return n, nil
}

// load reads chunk c and checks it against its recorded sum.
func (r *Reader) load(c int64) error {
	if r.buf == nil {
		r.buf = chunkPool.Get().(*[]byte)
	}
	r.chunk = -1
	if c >= int64(len(r.f.chunks)) {
		return fmt.Errorf("%s: chunk %d beyond the indexed %d: %w", r.f.Info.Path, c, len(r.f.chunks), ErrDigestMismatch)
	}
	size := min(int64(bundle.ChunkSize), r.f.Info.Size-c*bundle.ChunkSize)
	buf := (*r.buf)[:size]
	if _, err := r.f.ra.ReadAt(buf, c*bundle.ChunkSize); err != nil && !(errors.Is(err, io.EOF) && len(buf) == int(size)) {
		return fmt.Errorf("reading %s: %w", r.f.Info.Path, err)
	}
	if sha256.Sum256(buf) != r.f.chunks[c] {
		return fmt.Errorf("%s: bytes %d–%d changed since the bundle was verified: %w", r.f.Info.Path, c*bundle.ChunkSize, c*bundle.ChunkSize+size, ErrDigestMismatch)
	}
	r.chunk, r.n = c, int(size)
	return nil
}

// Seek implements io.Seeker.
func (r *Reader) Seek(offset int64, whence int) (int64, error) {
	var abs int64
	switch whence {
	case io.SeekStart:
		abs = offset
	case io.SeekCurrent:
		abs = r.off + offset
	case io.SeekEnd:
		abs = r.f.Info.Size + offset
	default:
		return 0, errors.New("seek: invalid whence")
	}
	if abs < 0 {
		return 0, errors.New("seek: negative position")
	}
	r.off = abs
	return abs, nil
}

// Close returns the reader's buffer; the reader must not be used after.
func (r *Reader) Close() error {
	if r.buf != nil {
		chunkPool.Put(r.buf)
		r.buf = nil
	}
	return nil
}
