package images

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strings"

	"github.com/ferry-k8s/ferry/internal/fileutil"

	digest "github.com/opencontainers/go-digest"
	imgspecv1 "github.com/opencontainers/image-spec/specs-go/v1"
	"go.podman.io/image/v5/manifest"
)

// Annotations Copy writes on each index.json entry, besides
// org.opencontainers.image.ref.name (which holds the same full name as
// AnnotationName, see the package documentation).
const (
	// AnnotationName is the image's full upstream name with tag and/or
	// digest, e.g. "registry.k8s.io/pause:3.10".
	AnnotationName = "dev.ferry.image.name"
	// AnnotationSource is the Source.Ref the image was copied from.
	AnnotationSource = "dev.ferry.image.source"
	// AnnotationOriginalDigest is the source's top-level manifest digest;
	// written only when it differs from the stored digest (platform filtering).
	AnnotationOriginalDigest = "dev.ferry.image.original-digest"
	// AnnotationPlatforms lists the platforms kept, comma-separated
	// ("linux/amd64,linux/arm64/v8").
	AnnotationPlatforms = "dev.ferry.image.platforms"
	// AnnotationSynthesized is "true" when the source stored no manifest
	// (docker-archive) and the stored one was generated; see Result.Synthesized.
	AnnotationSynthesized = "dev.ferry.image.synthesized-manifest"
)

// Limits applied when reading a layout; they bound memory use on hostile input.
const (
	maxIndexSize    = 8 << 20 // index.json
	maxLayoutSize   = 4 << 10 // oci-layout
	maxManifestSize = 4 << 20 // a descriptor's size (same limit as containers/image)
	maxNameLen      = 1024
	maxPlatforms    = 256
)

// supportedManifestTypes are the manifest media types stored as they are.
var supportedManifestTypes = []string{
	imgspecv1.MediaTypeImageManifest,
	imgspecv1.MediaTypeImageIndex,
	manifest.DockerV2Schema2MediaType,
	manifest.DockerV2ListMediaType,
}

// ReadIndex reads the OCI image layout at root within fsys (root "." for the
// top of fsys) and lists its images as recorded in index.json, sorted by name.
//
// It checks oci-layout (imageLayoutVersion "1.0.0") and the schema of
// index.json: schemaVersion 2, a known media type for every entry, a valid
// digest, a size in (0, 4 MiB], a name (AnnotationName, else
// org.opencontainers.image.ref.name; both must agree when both are present)
// that is a valid OCI reference name, unique names, and well-formed ferry
// annotations. It reads nothing but those two files: blobs are neither opened
// nor verified. Inputs are bounded (index.json at most 8 MiB) and malformed
// input yields an error, never a panic.
//
// Result.OriginalDigest is the AnnotationOriginalDigest value, or Digest when
// absent; Result.Source and Result.Synthesized come from their annotations.
func ReadIndex(fsys fs.FS, root string) ([]Result, error) {
	if root == "" {
		root = "."
	}
	if !fs.ValidPath(root) {
		return nil, fmt.Errorf("reading image layout: invalid root %q", root)
	}
	layoutBytes, err := fileutil.ReadFS(fsys, path.Join(root, imgspecv1.ImageLayoutFile), maxLayoutSize)
	if err != nil {
		return nil, fmt.Errorf("reading image layout: %w", err)
	}
	if err := checkLayoutFile(layoutBytes); err != nil {
		return nil, fmt.Errorf("reading image layout: %w", err)
	}
	indexBytes, err := fileutil.ReadFS(fsys, path.Join(root, imgspecv1.ImageIndexFile), maxIndexSize)
	if err != nil {
		return nil, fmt.Errorf("reading image layout: %w", err)
	}
	res, err := parseIndex(indexBytes)
	if err != nil {
		return nil, fmt.Errorf("reading image layout: %s: %w", imgspecv1.ImageIndexFile, err)
	}
	return res, nil
}

func checkLayoutFile(data []byte) error {
	var l imgspecv1.ImageLayout
	if err := json.Unmarshal(data, &l); err != nil {
		return fmt.Errorf("%s: %w", imgspecv1.ImageLayoutFile, err)
	}
	if l.Version != imgspecv1.ImageLayoutVersion {
		return fmt.Errorf("%s: unsupported imageLayoutVersion %q (want %q)", imgspecv1.ImageLayoutFile, l.Version, imgspecv1.ImageLayoutVersion)
	}
	return nil
}

// rawIndex is index.json with the fields ReadIndex checks. schemaVersion is a
// pointer to tell a missing field from 0.
type rawIndex struct {
	SchemaVersion *int                   `json:"schemaVersion"`
	MediaType     string                 `json:"mediaType"`
	Manifests     []imgspecv1.Descriptor `json:"manifests"`
}

func parseIndex(data []byte) ([]Result, error) {
	var idx rawIndex
	if err := json.Unmarshal(data, &idx); err != nil {
		return nil, err
	}
	if idx.SchemaVersion == nil || *idx.SchemaVersion != 2 {
		return nil, errors.New("schemaVersion must be 2")
	}
	if idx.MediaType != "" && idx.MediaType != imgspecv1.MediaTypeImageIndex {
		return nil, fmt.Errorf("unexpected mediaType %q", idx.MediaType)
	}
	results := make([]Result, 0, len(idx.Manifests))
	seen := make(map[string]int, len(idx.Manifests))
	for i, desc := range idx.Manifests {
		r, err := resultFromDescriptor(desc)
		if err != nil {
			return nil, fmt.Errorf("manifests[%d]: %w", i, err)
		}
		if j, dup := seen[r.Name]; dup {
			return nil, fmt.Errorf("manifests[%d] and manifests[%d] are both named %q", j, i, r.Name)
		}
		seen[r.Name] = i
		results = append(results, r)
	}
	slices.SortFunc(results, func(a, b Result) int { return strings.Compare(a.Name, b.Name) })
	return results, nil
}

func resultFromDescriptor(desc imgspecv1.Descriptor) (Result, error) {
	if !slices.Contains(supportedManifestTypes, desc.MediaType) {
		return Result{}, fmt.Errorf("unsupported mediaType %q", desc.MediaType)
	}
	if err := checkDigest(desc.Digest); err != nil {
		return Result{}, err
	}
	if desc.Size <= 0 || desc.Size > maxManifestSize {
		return Result{}, fmt.Errorf("size %d out of range (1..%d)", desc.Size, maxManifestSize)
	}
	ann := desc.Annotations
	name, refName := ann[AnnotationName], ann[imgspecv1.AnnotationRefName]
	switch {
	case name == "" && refName == "":
		return Result{}, fmt.Errorf("%s has no name (annotation %s)", desc.Digest, imgspecv1.AnnotationRefName)
	case name == "":
		name = refName
	case refName != "" && refName != name:
		return Result{}, fmt.Errorf("%s: annotation %s %q disagrees with %s %q", desc.Digest, AnnotationName, name, imgspecv1.AnnotationRefName, refName)
	}
	if err := checkRefName(name); err != nil {
		return Result{}, fmt.Errorf("%s: %w", desc.Digest, err)
	}
	r := Result{
		Name:           name,
		Source:         ann[AnnotationSource],
		Digest:         desc.Digest,
		OriginalDigest: desc.Digest,
		MediaType:      desc.MediaType,
		Size:           desc.Size,
	}
	if od, ok := ann[AnnotationOriginalDigest]; ok {
		if err := checkDigest(digest.Digest(od)); err != nil {
			return Result{}, fmt.Errorf("%s: annotation %s: %w", name, AnnotationOriginalDigest, err)
		}
		r.OriginalDigest = digest.Digest(od)
	}
	if ps, ok := ann[AnnotationPlatforms]; ok && ps != "" {
		fields := strings.Split(ps, ",")
		if len(fields) > maxPlatforms {
			return Result{}, fmt.Errorf("%s: annotation %s: more than %d platforms", name, AnnotationPlatforms, maxPlatforms)
		}
		for _, f := range fields {
			p, err := parsePlatform(f)
			if err != nil {
				return Result{}, fmt.Errorf("%s: annotation %s: %w", name, AnnotationPlatforms, err)
			}
			r.Platforms = append(r.Platforms, p.String())
		}
	} else if desc.Platform != nil {
		if p, err := parsePlatform(platformFromSpec(desc.Platform).String()); err == nil {
			r.Platforms = []string{p.String()}
		}
	}
	switch v := ann[AnnotationSynthesized]; v {
	case "", "false":
	case "true":
		r.Synthesized = true
	default:
		return Result{}, fmt.Errorf("%s: annotation %s: invalid value %q", name, AnnotationSynthesized, v)
	}
	return r, nil
}

// checkDigest accepts well-formed sha256 and sha512 digests.
func checkDigest(d digest.Digest) error {
	if err := d.Validate(); err != nil {
		return fmt.Errorf("invalid digest %q: %w", d, err)
	}
	switch d.Algorithm() {
	case digest.SHA256, digest.SHA512:
		return nil
	}
	return fmt.Errorf("invalid digest %q: unsupported algorithm", d)
}

// checkRefName validates s against the grammar of the
// org.opencontainers.image.ref.name annotation (OCI image-spec,
// annotations.md): components separated by '/', each made of alphanumeric
// runs joined by one of "-._:@+" or by "--".
func checkRefName(s string) error {
	if s == "" || len(s) > maxNameLen {
		return fmt.Errorf("invalid image name %q: length must be 1..%d", s, maxNameLen)
	}
	for comp := range strings.SplitSeq(s, "/") {
		if !validRefComponent(comp) {
			return fmt.Errorf("invalid image name %q: component %q is not a valid OCI reference name component", s, comp)
		}
	}
	return nil
}

func validRefComponent(c string) bool {
	isAlnum := func(b byte) bool {
		return b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9'
	}
	i := 0
	for {
		// An alphanumeric run.
		start := i
		for i < len(c) && isAlnum(c[i]) {
			i++
		}
		if i == start {
			return false
		}
		if i == len(c) {
			return true
		}
		// A separator.
		switch {
		case strings.HasPrefix(c[i:], "--"):
			i += 2
		case strings.IndexByte("-._:@+", c[i]) >= 0:
			i++
		default:
			return false
		}
	}
}
