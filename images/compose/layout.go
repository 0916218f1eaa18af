package compose

import (
	"bufio"
	"cmp"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/ferry-k8s/ferry/images"
	"github.com/ferry-k8s/ferry/internal/atomicfile"

	digest "github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	imgspecv1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// maxIndexSize bounds an existing index.json (as images.ReadIndex does).
const maxIndexSize = 8 << 20

// layout is an OCI image layout being written.
type layout struct {
	dir, blobs string
}

// openLayout creates dir, its blob directory and oci-layout if missing, and
// checks the oci-layout of an existing layout.
func openLayout(dir string) (*layout, error) {
	l := &layout{dir: dir, blobs: filepath.Join(dir, imgspecv1.ImageBlobsDir, digest.SHA256.String())}
	if err := os.MkdirAll(l.blobs, 0o755); err != nil {
		return nil, err
	}
	p := filepath.Join(dir, imgspecv1.ImageLayoutFile)
	data, err := readBounded(p, 4<<10)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		want, err := json.Marshal(imgspecv1.ImageLayout{Version: imgspecv1.ImageLayoutVersion})
		if err != nil {
			return nil, err
		}
		return l, atomicfile.WriteFile(p, want, 0o644)
	case err != nil:
		return nil, err
	}
	var il imgspecv1.ImageLayout
	if err := json.Unmarshal(data, &il); err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	if il.Version != imgspecv1.ImageLayoutVersion {
		return nil, fmt.Errorf("%s: unsupported imageLayoutVersion %q", p, il.Version)
	}
	return l, nil
}

// writeBlob stores what fill writes as a blob and returns its descriptor.
// The blob is written to a temporary file and renamed to its digest, so a
// reader never sees a partial blob under a digest name.
func (l *layout) writeBlob(mediaType string, fill func(io.Writer) error) (desc imgspecv1.Descriptor, err error) {
	tmp, err := os.CreateTemp(l.blobs, ".compose-")
	if err != nil {
		return desc, err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	h := &countingHash{Hash: sha256.New()}
	bw := bufio.NewWriterSize(io.MultiWriter(tmp, h), 1<<20)
	if err = fill(bw); err != nil {
		return desc, err
	}
	if err = bw.Flush(); err != nil {
		return desc, err
	}
	if err = tmp.Chmod(0o644); err != nil {
		return desc, err
	}
	if err = tmp.Sync(); err != nil {
		return desc, err
	}
	if err = tmp.Close(); err != nil {
		return desc, err
	}
	d := digest.NewDigest(digest.SHA256, h.Hash)
	if err = os.Rename(tmp.Name(), filepath.Join(l.blobs, d.Encoded())); err != nil {
		return desc, err
	}
	return imgspecv1.Descriptor{MediaType: mediaType, Digest: d, Size: h.n}, nil
}

func (l *layout) writeBlobBytes(mediaType string, data []byte) (imgspecv1.Descriptor, error) {
	return l.writeBlob(mediaType, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

// updateIndex lists descs in index.json, replacing entries of the same
// name and keeping the others; entries are sorted by name, then digest, so
// that the file depends only on the set of entries (as images.Copy does).
func (l *layout) updateIndex(descs []imgspecv1.Descriptor) error {
	p := filepath.Join(l.dir, imgspecv1.ImageIndexFile)
	var manifests []imgspecv1.Descriptor
	data, err := readBounded(p, maxIndexSize)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return err
	default:
		var idx struct {
			SchemaVersion *int                   `json:"schemaVersion"`
			Manifests     []imgspecv1.Descriptor `json:"manifests"`
		}
		if err := json.Unmarshal(data, &idx); err != nil {
			return fmt.Errorf("existing %s: %w", p, err)
		}
		if idx.SchemaVersion == nil || *idx.SchemaVersion != 2 {
			return fmt.Errorf("existing %s: schemaVersion must be 2", p)
		}
		manifests = idx.Manifests
	}
	for _, d := range descs {
		name := d.Annotations[imgspecv1.AnnotationRefName]
		manifests = slices.DeleteFunc(manifests, func(m imgspecv1.Descriptor) bool {
			return m.Annotations[imgspecv1.AnnotationRefName] == name || m.Annotations[images.AnnotationName] == name
		})
		manifests = append(manifests, d)
	}
	slices.SortStableFunc(manifests, func(a, b imgspecv1.Descriptor) int {
		return cmp.Or(
			strings.Compare(a.Annotations[imgspecv1.AnnotationRefName], b.Annotations[imgspecv1.AnnotationRefName]),
			strings.Compare(string(a.Digest), string(b.Digest)),
		)
	})
	out, err := json.Marshal(imgspecv1.Index{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: imgspecv1.MediaTypeImageIndex,
		Manifests: manifests,
	})
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(p, append(out, '\n'), 0o644)
}

// readBounded reads a regular file of at most limit bytes.
func readBounded(p string, limit int64) ([]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file", p)
	}
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%s: larger than %d bytes", p, limit)
	}
	return data, nil
}
