package compose

import (
	"crypto/md5" // RPM file digests may be MD5 or SHA-1 (old packages)
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"os"
	"strings"
)

// maxContent bounds the regular-file content of one image (the layer before
// compression).
const maxContent = 32 << 30

// RPM file digest algorithms (FILEDIGESTALGO, the OpenPGP hash ids).
const (
	digestMD5    = 1
	digestSHA1   = 2
	digestSHA256 = 8
	digestSHA384 = 9
	digestSHA512 = 10
	digestSHA224 = 11
)

func newFileHash(algo uint64) (hash.Hash, error) {
	switch algo {
	case digestMD5:
		return md5.New(), nil
	case digestSHA1:
		return sha1.New(), nil
	case digestSHA256:
		return sha256.New(), nil
	case digestSHA384:
		return sha512.New384(), nil
	case digestSHA512:
		return sha512.New(), nil
	case digestSHA224:
		return sha256.New224(), nil
	}
	return nil, fmt.Errorf("unsupported file digest algorithm %d", algo)
}

// spool holds the content of an image's regular files in an unlinked
// temporary file, so that the layer can be written in sorted order whatever
// the order of the packages' payloads.
type spool struct {
	f    *os.File
	size int64
	buf  []byte
}

func newSpool() (*spool, error) {
	f, err := os.CreateTemp("", "ferry-compose-")
	if err != nil {
		return nil, fmt.Errorf("creating spool file: %w", err)
	}
	// Unlinked at once: nothing is left behind, whatever happens.
	if err := os.Remove(f.Name()); err != nil {
		f.Close()
		return nil, fmt.Errorf("creating spool file: %w", err)
	}
	return &spool{f: f, buf: make([]byte, 1<<20)}, nil
}

func (s *spool) Close() error { return s.f.Close() }

// add copies exactly size bytes from r into the spool and returns where
// they are and their sha256. If want is not empty, the content's digest
// with algorithm algo must equal it (hex).
func (s *spool) add(r io.Reader, size int64, algo uint64, want string) (off int64, sum [32]byte, err error) {
	if size > maxContent-s.size {
		return 0, sum, fmt.Errorf("image content exceeds %d bytes", int64(maxContent))
	}
	h := sha256.New()
	w := io.MultiWriter(s.f, h)
	var check hash.Hash
	if want != "" && algo != digestSHA256 {
		if check, err = newFileHash(algo); err != nil {
			return 0, sum, err
		}
		w = io.MultiWriter(w, check)
	}
	off = s.size
	n, err := io.CopyBuffer(w, io.LimitReader(r, size), s.buf)
	s.size += n
	if err != nil {
		return 0, sum, err
	}
	if n != size {
		return 0, sum, fmt.Errorf("%d bytes of content, expected %d: %w", n, size, io.ErrUnexpectedEOF)
	}
	h.Sum(sum[:0])
	if want != "" {
		got := hex.EncodeToString(sum[:])
		if check != nil {
			got = hex.EncodeToString(check.Sum(nil))
		}
		if got != strings.ToLower(want) {
			return 0, sum, fmt.Errorf("content digest %s does not match the header's %s", got, want)
		}
	}
	return off, sum, nil
}

// section returns a reader of size bytes at off.
func (s *spool) section(off, size int64) io.Reader {
	return io.NewSectionReader(s.f, off, size)
}
