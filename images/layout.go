package images

import (
	"bufio"
	"bytes"
	"cmp"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/ferry-k8s/ferry/internal/atomicfile"
	"github.com/ferry-k8s/ferry/internal/fileutil"

	digest "github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	imgspecv1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// LayoutDir is an OCI image layout directory that Ferry writes (Copy, the
// image cache, images/compose): oci-layout, blobs/sha256/, and an
// index.json whose entries are named (org.opencontainers.image.ref.name)
// and sorted by name, then digest, so that its bytes depend only on the
// set of images, not on the order they were written in. Entries written by
// other tools are kept as they are.
type LayoutDir struct {
	dir string
}

// OpenLayout creates dir, its blob directory and oci-layout if missing,
// and checks the oci-layout of an existing layout (imageLayoutVersion
// 1.0.0). It does not read index.json.
func OpenLayoutDir(dir string) (*LayoutDir, error) {
	if err := os.MkdirAll(filepath.Join(dir, imgspecv1.ImageBlobsDir, digest.Canonical.String()), 0o755); err != nil {
		return nil, err
	}
	p := filepath.Join(dir, imgspecv1.ImageLayoutFile)
	existing, err := fileutil.ReadRegularFile(p, maxLayoutSize)
	switch {
	case err == nil:
		if err := checkLayoutFile(existing); err != nil {
			return nil, fmt.Errorf("existing layout: %w", err)
		}
	case errors.Is(err, fs.ErrNotExist):
		want, err := json.Marshal(imgspecv1.ImageLayout{Version: imgspecv1.ImageLayoutVersion})
		if err != nil {
			return nil, err
		}
		if err := atomicfile.WriteFile(p, want, 0o644); err != nil {
			return nil, err
		}
	default:
		return nil, err
	}
	return &LayoutDir{dir: dir}, nil
}

// Dir is the layout's directory.
func (l *LayoutDir) Dir() string { return l.dir }

// BlobPath is where the blob of digest d is (or would be) stored.
func (l *LayoutDir) BlobPath(d digest.Digest) string {
	return filepath.Join(l.dir, imgspecv1.ImageBlobsDir, d.Algorithm().String(), d.Encoded())
}

// WriteBlob stores what fill writes as a sha256 blob and returns its
// descriptor (of mediaType). The blob is written to a temporary file and
// renamed to its digest, so that a reader never sees a partial blob under
// a digest's name.
func (l *LayoutDir) WriteBlob(mediaType string, fill func(io.Writer) error) (imgspecv1.Descriptor, error) {
	h := &countingHash{Hash: sha256.New()}
	var d digest.Digest
	dir := filepath.Join(l.dir, imgspecv1.ImageBlobsDir, digest.SHA256.String())
	_, err := atomicfile.WriteNamed(dir, 0o644, func(f *os.File) (string, error) {
		bw := bufio.NewWriterSize(io.MultiWriter(f, h), 1<<20)
		if err := fill(bw); err != nil {
			return "", err
		}
		if err := bw.Flush(); err != nil {
			return "", err
		}
		d = digest.NewDigest(digest.SHA256, h.Hash)
		return d.Encoded(), nil
	})
	if err != nil {
		return imgspecv1.Descriptor{}, err
	}
	return imgspecv1.Descriptor{MediaType: mediaType, Digest: d, Size: h.n}, nil
}

// WriteBlobBytes is WriteBlob for data in memory.
func (l *LayoutDir) WriteBlobBytes(mediaType string, data []byte) (imgspecv1.Descriptor, error) {
	return l.WriteBlob(mediaType, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

// PutIndex lists descs in index.json (each named by its
// org.opencontainers.image.ref.name annotation), replacing the entries of
// the same names and keeping the others.
func (l *LayoutDir) PutIndex(descs ...imgspecv1.Descriptor) error {
	idx, err := loadLayoutIndex(l.dir)
	if err != nil {
		return err
	}
	for _, d := range descs {
		idx.put(d)
	}
	return idx.write(l.dir)
}

// countingHash counts and hashes what is written to it.
type countingHash struct {
	hash.Hash
	n int64
}

func (c *countingHash) Write(p []byte) (int, error) {
	c.n += int64(len(p))
	return c.Hash.Write(p)
}

// layoutIndex is the index.json Copy maintains.
type layoutIndex struct {
	manifests []imgspecv1.Descriptor
}

// loadLayoutIndex reads dir/index.json, or returns an empty index if the file
// does not exist. Entries written by other tools are kept as they are.
func loadLayoutIndex(dir string) (*layoutIndex, error) {
	data, err := fileutil.ReadRegularFile(filepath.Join(dir, imgspecv1.ImageIndexFile), maxIndexSize)
	if errors.Is(err, fs.ErrNotExist) {
		return &layoutIndex{}, nil
	}
	if err != nil {
		return nil, err
	}
	var idx rawIndex
	if err := json.Unmarshal(data, &idx); err != nil {
		return nil, fmt.Errorf("parsing existing %s: %w", imgspecv1.ImageIndexFile, err)
	}
	if idx.SchemaVersion == nil || *idx.SchemaVersion != 2 {
		return nil, fmt.Errorf("existing %s: schemaVersion must be 2", imgspecv1.ImageIndexFile)
	}
	return &layoutIndex{manifests: idx.Manifests}, nil
}

// put lists desc under its ref name, replacing any entry of that name.
func (x *layoutIndex) put(desc imgspecv1.Descriptor) {
	name := desc.Annotations[imgspecv1.AnnotationRefName]
	x.manifests = slices.DeleteFunc(x.manifests, func(d imgspecv1.Descriptor) bool {
		return d.Annotations[imgspecv1.AnnotationRefName] == name || d.Annotations[AnnotationName] == name
	})
	x.manifests = append(x.manifests, desc)
}

// marshal encodes the index with entries sorted by name, then digest, so that
// the bytes depend only on the set of entries, not on the order of copies.
func (x *layoutIndex) marshal() ([]byte, error) {
	ms := slices.Clone(x.manifests)
	slices.SortStableFunc(ms, func(a, b imgspecv1.Descriptor) int {
		return cmp.Or(
			strings.Compare(a.Annotations[imgspecv1.AnnotationRefName], b.Annotations[imgspecv1.AnnotationRefName]),
			strings.Compare(string(a.Digest), string(b.Digest)),
		)
	})
	if ms == nil {
		ms = []imgspecv1.Descriptor{}
	}
	data, err := json.Marshal(imgspecv1.Index{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: imgspecv1.MediaTypeImageIndex,
		Manifests: ms,
	})
	if err != nil {
		return nil, err
	}
	return append(data, '\n'), nil
}

// write replaces dir/index.json atomically.
func (x *layoutIndex) write(dir string) error {
	data, err := x.marshal()
	if err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(dir, imgspecv1.ImageIndexFile), data)
}

// initLayout creates dir, dir/blobs/sha256 and dir/oci-layout if missing.
func initLayout(dir string) error {
	_, err := OpenLayoutDir(dir)
	return err
}

func writeFileAtomic(path string, data []byte) error {
	if existing, err := fileutil.ReadRegularFile(path, int64(len(data))); err == nil && bytes.Equal(existing, data) {
		return nil
	}
	return atomicfile.WriteFile(path, data, 0o644)
}
