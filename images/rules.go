package images

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io/fs"
	"path"
	"slices"

	digest "github.com/opencontainers/go-digest"
	imgspecv1 "github.com/opencontainers/image-spec/specs-go/v1"
	"go.podman.io/image/v5/manifest"

	"github.com/ferry-k8s/ferry/internal/fileutil"
)

// maxConfigSize bounds an image config, as Copy does when reading one.
const maxConfigSize = maxManifestSize

// BlobLookup tells what is known of the file at name (a slash path in the
// fs.FS given to CheckLayout, e.g. "images/blobs/sha256/<hex>"): its size
// and the hex sha256 of its content, as a bundle's signed manifest lists
// them (or as the builder hashed them). ok is false when there is no such
// file.
type BlobLookup func(name string) (size int64, sha256 string, ok bool)

// Layout is an image layout that CheckLayout accepted: its images and
// every manifest and blob they reach.
type Layout struct {
	// Images are the index.json entries, sorted by name (as ReadIndex).
	Images []Result
	// Objects are the manifests, indexes, configs and layers reachable
	// from Images, by digest.
	Objects map[digest.Digest]Object
	// Reach lists, per image name, the digests of Objects it reaches
	// (itself included).
	Reach map[string][]digest.Digest
}

// Object is a manifest or blob of a layout.
type Object struct {
	Path string // the file's slash path in the fs.FS, <root>/blobs/sha256/<hex>
	Size int64
	// MediaType is the manifest's or index's media type; empty for configs
	// and layers.
	MediaType string
	Manifest  bool
}

// CheckLayout applies the rules every image of a bundle must follow, the
// same in the builder (before it signs), in bundle verification (installer
// verify, and every installer opening a bundle) and in the node's content
// service (before it serves): what one of them accepts, the others do too.
// It reads the layout at root within fsys with ReadIndex (whose rules hold
// for index.json) and walks every image:
//
//   - a manifest or index has a media type of an OCI or Docker schema 2
//     image manifest or index, a size of 1 byte to 4 MiB, schemaVersion 2,
//     and, when its JSON names a media type, the one of its descriptor;
//   - an index lists image manifests only (no index inside an index);
//   - an image manifest has a config of at most 4 MiB;
//   - every descriptor (manifest, index, config, layer) names a sha256
//     digest, and the layout holds the blob under that digest, of exactly
//     the size the descriptor claims, with that sha256 (as files reports
//     it; manifests are also hashed as they are read).
//
// Only manifests are read (through fsys, bounded); configs and layers are
// judged by files, which the caller has verified or computed. The error
// names the image, the manifest, the descriptor (its field and digest) and
// what it claims.
func CheckLayout(fsys fs.FS, root string, files BlobLookup) (*Layout, error) {
	results, err := ReadIndex(fsys, root)
	if err != nil {
		return nil, err
	}
	if root == "" {
		root = "."
	}
	l := &Layout{Images: results, Objects: map[digest.Digest]Object{}, Reach: map[string][]digest.Digest{}}
	for _, r := range results {
		w := walker{fsys: fsys, root: root, files: files, l: l, reach: map[digest.Digest]bool{}}
		desc := imgspecv1.Descriptor{MediaType: r.MediaType, Digest: r.Digest, Size: r.Size}
		if err := w.manifest(desc, "index.json", 0); err != nil {
			return nil, fmt.Errorf("image %s: %w", r.Name, err)
		}
		reach := make([]digest.Digest, 0, len(w.reach))
		for d := range w.reach {
			reach = append(reach, d)
		}
		slices.Sort(reach)
		l.Reach[r.Name] = reach
	}
	return l, nil
}

// walker walks one image of a layout.
type walker struct {
	fsys  fs.FS
	root  string
	files BlobLookup
	l     *Layout
	reach map[digest.Digest]bool
}

// manifestDoc is what the rules need of an image manifest or index (OCI or
// Docker schema 2: the same shape).
type manifestDoc struct {
	SchemaVersion *int                   `json:"schemaVersion"`
	MediaType     string                 `json:"mediaType"`
	Config        *imgspecv1.Descriptor  `json:"config"`
	Layers        []imgspecv1.Descriptor `json:"layers"`
	Manifests     []imgspecv1.Descriptor `json:"manifests"`
}

// manifest checks the manifest or index desc, which the field of its parent
// describes, and everything it reaches.
func (w *walker) manifest(desc imgspecv1.Descriptor, field string, depth int) error {
	what := "manifest"
	if isIndexType(desc.MediaType) {
		what = "index"
	}
	fail := func(format string, args ...any) error {
		return fmt.Errorf("%s %s (%s): %s", what, desc.Digest, field, fmt.Sprintf(format, args...))
	}
	switch {
	case !slices.Contains(supportedManifestTypes, desc.MediaType):
		return fail("unsupported media type %q", desc.MediaType)
	case depth > 0 && isIndexType(desc.MediaType):
		return fail("an index inside an index is not accepted")
	case desc.Size <= 0 || desc.Size > maxManifestSize:
		return fail("descriptor claims %d bytes, out of range (1..%d)", desc.Size, maxManifestSize)
	}
	obj, err := w.blob(desc)
	if err != nil {
		return fmt.Errorf("%s %s (%s): %w", what, desc.Digest, field, err)
	}
	data, err := fileutil.ReadFS(w.fsys, obj.Path, maxManifestSize)
	if err != nil {
		return fail("%v", err)
	}
	if digest.SHA256.FromBytes(data) != desc.Digest {
		return fail("its content does not match its digest")
	}
	obj.Manifest, obj.MediaType = true, desc.MediaType
	w.l.Objects[desc.Digest] = obj
	w.reach[desc.Digest] = true
	var doc manifestDoc
	if err := json.NewDecoder(bytes.NewReader(data)).Decode(&doc); err != nil {
		return fail("parsing: %v", err)
	}
	if doc.SchemaVersion == nil || *doc.SchemaVersion != 2 {
		return fail("schemaVersion must be 2")
	}
	if doc.MediaType != "" && doc.MediaType != desc.MediaType {
		return fail("it says media type %q, its descriptor %q", doc.MediaType, desc.MediaType)
	}
	if isIndexType(desc.MediaType) {
		for i, c := range doc.Manifests {
			if err := w.manifest(c, fmt.Sprintf("manifests[%d]", i), depth+1); err != nil {
				return fmt.Errorf("index %s: %w", desc.Digest, err)
			}
		}
		return nil
	}
	if doc.Config == nil {
		return fail("no config")
	}
	if doc.Config.Size > maxConfigSize {
		return fail("config %s: descriptor claims %d bytes, more than %d", doc.Config.Digest, doc.Config.Size, maxConfigSize)
	}
	for i, d := range append([]imgspecv1.Descriptor{*doc.Config}, doc.Layers...) {
		f := "config"
		if i > 0 {
			f = fmt.Sprintf("layers[%d]", i-1)
		}
		o, err := w.blob(d)
		if err != nil {
			return fail("%s %s: %v", f, d.Digest, err)
		}
		if prev, ok := w.l.Objects[d.Digest]; ok && prev.Manifest {
			// The same bytes are a manifest elsewhere; keep its media type.
			o = prev
		}
		w.l.Objects[d.Digest] = o
		w.reach[d.Digest] = true
	}
	return nil
}

// blob checks that the layout holds the blob desc names, with the size it
// claims and the sha256 its digest says.
func (w *walker) blob(desc imgspecv1.Descriptor) (Object, error) {
	d := desc.Digest
	if d.Validate() != nil || d.Algorithm() != digest.SHA256 {
		return Object{}, fmt.Errorf("digest %q: only well-formed sha256 digests are accepted", d)
	}
	p := path.Join(w.root, imgspecv1.ImageBlobsDir, "sha256", d.Encoded())
	size, sum, ok := w.files(p)
	switch {
	case !ok:
		return Object{}, fmt.Errorf("blob %s is not in the layout", p)
	case sum != d.Encoded():
		return Object{}, fmt.Errorf("blob %s has sha256 %s, not the digest it is named by", p, sum)
	case size != desc.Size:
		return Object{}, fmt.Errorf("descriptor claims %d bytes, the blob holds %d", desc.Size, size)
	}
	return Object{Path: p, Size: size}, nil
}

func isIndexType(mediaType string) bool {
	return mediaType == imgspecv1.MediaTypeImageIndex || mediaType == manifest.DockerV2ListMediaType
}
