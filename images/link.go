package images

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"

	digest "github.com/opencontainers/go-digest"
	imgspecv1 "github.com/opencontainers/image-spec/specs-go/v1"
	"go.podman.io/image/v5/types"
)

// seedFromLayout hard-links the given blobs (configs and layers, never
// manifests) of the OCI layout srcDir into the layout dstDir, so that
// copy.Image finds them present (TryReusingBlob) and does not write them a
// second time. Each link is made under a temporary name and renamed to the
// blob's name only after its size and digest have been verified. Failures
// (another filesystem, permissions, missing or corrupt blob) are ignored: the
// blob is then copied, and verified, by copy.Image as usual. It returns the
// number of blobs linked.
//
// Manifests are excluded because the oci destination writes them in place
// (os.WriteFile), which would write through the link into the source layout.
//
// Blobs are verified in parallel, one per CPU: hashing is the whole cost of
// a link, and layers are often large.
func seedFromLayout(srcDir, dstDir string, blobs []types.BlobInfo) int {
	var n atomic.Int64
	var wg sync.WaitGroup
	sem := make(chan struct{}, runtime.NumCPU())
	for _, b := range blobs {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			if linkBlob(srcDir, dstDir, b) == nil {
				n.Add(1)
			}
		}()
	}
	wg.Wait()
	return int(n.Load())
}

func linkBlob(srcDir, dstDir string, b types.BlobInfo) error {
	if err := checkDigest(b.Digest); err != nil {
		return err
	}
	rel := filepath.Join(imgspecv1.ImageBlobsDir, b.Digest.Algorithm().String(), b.Digest.Encoded())
	dst := filepath.Join(dstDir, rel)
	if _, err := os.Lstat(dst); err == nil {
		return nil // already present; copy.Image reuses it
	}
	src := filepath.Join(srcDir, rel)
	st, err := os.Lstat(src)
	if err != nil {
		return err
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("%s: not a regular file", src)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	tmp := filepath.Join(dstDir, ".ferry-link-"+b.Digest.Encoded())
	_ = os.Remove(tmp) // a leftover of an interrupted run
	if err := os.Link(src, tmp); err != nil {
		return err
	}
	if err := verifyBlobFile(tmp, b.Digest, b.Size); err != nil {
		_ = os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, dst); err != nil {
		_ = os.Remove(tmp)
		return err
	}
	return nil
}

func verifyBlobFile(path string, d digest.Digest, size int64) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if size >= 0 && st.Size() != size {
		return fmt.Errorf("%s: %w: size %d, want %d", path, errBlobMismatch, st.Size(), size)
	}
	v := d.Verifier()
	if _, err := io.Copy(v, f); err != nil {
		return err
	}
	if !v.Verified() {
		return fmt.Errorf("%s: %w: content does not match digest %s", path, errBlobMismatch, d)
	}
	return nil
}

// errBlobMismatch: a blob's size or content is not what its digest says.
var errBlobMismatch = errors.New("blob does not match its digest")
