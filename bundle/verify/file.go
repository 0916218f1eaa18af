package verify

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"io/fs"

	"github.com/ferry-k8s/ferry/bundle"
)

// ErrDigestMismatch is returned at the end of a file whose content does not
// match the manifest.
var ErrDigestMismatch = fmt.Errorf("%w: content does not match the manifest", ErrFailed)

// OpenFile opens a file listed in the trusted manifest. The reader checks
// the size and sha256 as it reads and returns ErrDigestMismatch instead of
// io.EOF when they differ, so a consumer never takes a tampered file as
// complete.
func (b *Bundle) OpenFile(p string) (io.Reader, bundle.File, error) {
	f, ok := b.Manifest.FileMap()[p]
	if !ok {
		return nil, bundle.File{}, fmt.Errorf("%s: not listed in the manifest: %w", p, fs.ErrNotExist)
	}
	r, err := b.Image.Open(p)
	if err != nil {
		return nil, f, err
	}
	return &checkedReader{r: io.LimitReader(r, f.Size+1), want: f, h: sha256.New()}, f, nil
}

type checkedReader struct {
	r    io.Reader
	want bundle.File
	h    hash.Hash
	n    int64
}

func (c *checkedReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.h.Write(p[:n])
	c.n += int64(n)
	if c.n > c.want.Size {
		return 0, fmt.Errorf("%s: larger than the manifest's %d bytes: %w", c.want.Path, c.want.Size, ErrDigestMismatch)
	}
	if err == io.EOF {
		if got := hex.EncodeToString(c.h.Sum(nil)); c.n != c.want.Size || got != c.want.SHA256 {
			return n, fmt.Errorf("%s: %d bytes with sha256 %s, the manifest says %d bytes with %s: %w", c.want.Path, c.n, got, c.want.Size, c.want.SHA256, ErrDigestMismatch)
		}
	}
	return n, err
}
