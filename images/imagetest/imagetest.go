package imagetest

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"time"

	"github.com/ferry-k8s/ferry/internal/atomicfile"

	digest "github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	imgspecv1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// fixedTime is used for every timestamp written, so that output is reproducible.
var fixedTime = time.Date(2024, time.January, 1, 0, 0, 0, 0, time.UTC)

// gzipLevel is fixed so that layer digests are stable; BestSpeed keeps the
// generation of large fixtures (benchmarks) fast.
const gzipLevel = gzip.BestSpeed

// Platforms written by WriteIndex, in index order. They are also the keys of
// the map WriteIndex returns.
var indexPlatforms = []imgspecv1.Platform{
	{OS: "linux", Architecture: "amd64"},
	{OS: "linux", Architecture: "arm64"},
}

// WriteImage writes, into the OCI image layout at dir (created if missing, and
// added to if it exists), one linux/amd64 image made of len(layerSizes) gzip
// layers whose uncompressed content is about layerSizes[i] bytes, and a config
// with an Entrypoint and ExposedPorts. The image's manifest is listed in
// index.json with the annotation org.opencontainers.image.ref.name = tag
// (replacing an existing entry of that name). It returns the manifest digest.
func WriteImage(dir, tag string, seed int64, layerSizes []int64) (digest.Digest, error) {
	if err := initLayout(dir); err != nil {
		return "", err
	}
	desc, err := writeImage(dir, seed, "", layerSizes, imgspecv1.Platform{OS: "linux", Architecture: "amd64"})
	if err != nil {
		return "", err
	}
	if err := addToIndex(dir, tag, desc); err != nil {
		return "", err
	}
	return desc.Digest, nil
}

// WriteIndex writes, into the OCI image layout at dir, a multi-platform image
// index with one image for linux/amd64 and one for linux/arm64 (two small
// layers each, different content per platform), listed in index.json under
// tag. It returns the index digest and the manifest digest of each platform,
// keyed "linux/amd64" and "linux/arm64".
func WriteIndex(dir, tag string, seed int64) (digest.Digest, map[string]digest.Digest, error) {
	return WritePlatformIndex(dir, tag, seed, indexPlatforms...)
}

// WritePlatformIndex is WriteIndex for the given platforms (at least one,
// each OS and Architecture set): one image per platform, keyed
// "os/arch[/variant]" in the map returned.
func WritePlatformIndex(dir, tag string, seed int64, platforms ...imgspecv1.Platform) (digest.Digest, map[string]digest.Digest, error) {
	if len(platforms) == 0 {
		return "", nil, errors.New("an index needs at least one platform")
	}
	if err := initLayout(dir); err != nil {
		return "", nil, err
	}
	index := imgspecv1.Index{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: imgspecv1.MediaTypeImageIndex,
	}
	perPlatform := make(map[string]digest.Digest, len(platforms))
	for _, p := range platforms {
		if p.OS == "" || p.Architecture == "" {
			return "", nil, fmt.Errorf("platform %+v: OS and Architecture are required", p)
		}
		key := p.OS + "/" + p.Architecture
		if p.Variant != "" {
			key += "/" + p.Variant
		}
		if _, dup := perPlatform[key]; dup {
			return "", nil, fmt.Errorf("platform %s given twice", key)
		}
		desc, err := writeImage(dir, seed, key, []int64{96 << 10, 160 << 10}, p)
		if err != nil {
			return "", nil, err
		}
		platform := p
		desc.Platform = &platform
		index.Manifests = append(index.Manifests, desc)
		perPlatform[key] = desc.Digest
	}
	desc, err := writeJSONBlob(dir, imgspecv1.MediaTypeImageIndex, index)
	if err != nil {
		return "", nil, err
	}
	if err := addToIndex(dir, tag, desc); err != nil {
		return "", nil, err
	}
	return desc.Digest, perPlatform, nil
}

// writeImage writes the layers, config and manifest of one image and returns
// the manifest's descriptor. namespace separates the layer content of images
// that must not share layers (the platforms of an index).
func writeImage(dir string, seed int64, namespace string, layerSizes []int64, platform imgspecv1.Platform) (imgspecv1.Descriptor, error) {
	layers := make([]imgspecv1.Descriptor, 0, len(layerSizes))
	diffIDs := make([]digest.Digest, 0, len(layerSizes))
	history := make([]imgspecv1.History, 0, len(layerSizes))
	created := fixedTime
	for i, size := range layerSizes {
		if size < 0 {
			return imgspecv1.Descriptor{}, fmt.Errorf("layer %d: negative size %d", i, size)
		}
		desc, diffID, err := writeLayer(dir, layerKey(seed, namespace, i, size), i, size)
		if err != nil {
			return imgspecv1.Descriptor{}, fmt.Errorf("writing layer %d: %w", i, err)
		}
		layers = append(layers, desc)
		diffIDs = append(diffIDs, diffID)
		history = append(history, imgspecv1.History{
			Created:   &created,
			CreatedBy: fmt.Sprintf("imagetest: layer %d, seed %d, %d bytes", i, seed, size),
		})
	}
	config := imgspecv1.Image{
		Created:  &created,
		Author:   "ferry imagetest",
		Platform: platform,
		Config: imgspecv1.ImageConfig{
			User:         "65532:65532",
			ExposedPorts: map[string]struct{}{"8080/tcp": {}, "9090/tcp": {}},
			Env:          []string{"PATH=/usr/local/bin:/usr/bin:/bin", fmt.Sprintf("IMAGETEST_SEED=%d", seed)},
			Entrypoint:   []string{"/app/bin/server"},
			Cmd:          []string{"--listen=:8080"},
			WorkingDir:   "/app",
			Labels:       map[string]string{"dev.ferry.imagetest": "true"},
		},
		RootFS:  imgspecv1.RootFS{Type: "layers", DiffIDs: diffIDs},
		History: history,
	}
	configDesc, err := writeJSONBlob(dir, imgspecv1.MediaTypeImageConfig, config)
	if err != nil {
		return imgspecv1.Descriptor{}, fmt.Errorf("writing config: %w", err)
	}
	manifest := imgspecv1.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: imgspecv1.MediaTypeImageManifest,
		Config:    configDesc,
		Layers:    layers,
	}
	desc, err := writeJSONBlob(dir, imgspecv1.MediaTypeImageManifest, manifest)
	if err != nil {
		return imgspecv1.Descriptor{}, fmt.Errorf("writing manifest: %w", err)
	}
	return desc, nil
}

// layerKey derives the 32-byte ChaCha8 seed of one layer.
func layerKey(seed int64, namespace string, index int, size int64) [32]byte {
	var b []byte
	b = binary.BigEndian.AppendUint64(b, uint64(seed))
	b = binary.BigEndian.AppendUint64(b, uint64(index))
	b = binary.BigEndian.AppendUint64(b, uint64(size))
	b = append(b, namespace...)
	return sha256.Sum256(b)
}

// writeLayer streams one gzip-compressed tar layer into the layout's blobs and
// returns its descriptor and DiffID (digest of the uncompressed tar).
func writeLayer(dir string, key [32]byte, index int, size int64) (imgspecv1.Descriptor, digest.Digest, error) {
	tmp, err := os.CreateTemp(dir, ".imagetest-layer-")
	if err != nil {
		return imgspecv1.Descriptor{}, "", err
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	defer tmp.Close()

	compressed := digest.Canonical.Digester()
	uncompressed := digest.Canonical.Digester()
	counter := &countingWriter{w: io.MultiWriter(tmp, compressed.Hash())}
	gz, err := gzip.NewWriterLevel(counter, gzipLevel)
	if err != nil {
		return imgspecv1.Descriptor{}, "", err
	}
	tw := tar.NewWriter(io.MultiWriter(gz, uncompressed.Hash()))

	// About 3/4 incompressible random bytes, 1/4 compressible text.
	randomSize := size - size/4
	textSize := size - randomSize
	prefix := fmt.Sprintf("layer%d", index)
	if err := writeTarEntry(tw, prefix+"/", tar.TypeDir, 0o755, 0, nil); err != nil {
		return imgspecv1.Descriptor{}, "", err
	}
	rnd := rand.NewChaCha8(key)
	if err := writeTarEntry(tw, prefix+"/data.bin", tar.TypeReg, 0o644, randomSize, rnd); err != nil {
		return imgspecv1.Descriptor{}, "", err
	}
	if err := writeTarEntry(tw, prefix+"/notes.txt", tar.TypeReg, 0o644, textSize, &textReader{key: key}); err != nil {
		return imgspecv1.Descriptor{}, "", err
	}
	if err := tw.Close(); err != nil {
		return imgspecv1.Descriptor{}, "", err
	}
	if err := gz.Close(); err != nil {
		return imgspecv1.Descriptor{}, "", err
	}
	if err := tmp.Chmod(0o644); err != nil {
		return imgspecv1.Descriptor{}, "", err
	}
	if err := tmp.Close(); err != nil {
		return imgspecv1.Descriptor{}, "", err
	}
	d := compressed.Digest()
	if err := os.Rename(tmp.Name(), blobPath(dir, d)); err != nil {
		return imgspecv1.Descriptor{}, "", err
	}
	return imgspecv1.Descriptor{
		MediaType: imgspecv1.MediaTypeImageLayerGzip,
		Digest:    d,
		Size:      counter.n,
	}, uncompressed.Digest(), nil
}

func writeTarEntry(tw *tar.Writer, name string, typ byte, mode, size int64, content io.Reader) error {
	hdr := &tar.Header{
		Typeflag: typ,
		Name:     name,
		Mode:     mode,
		Size:     size,
		ModTime:  fixedTime,
		Format:   tar.FormatUSTAR,
	}
	if err := tw.WriteHeader(hdr); err != nil {
		return err
	}
	if size == 0 {
		return nil
	}
	_, err := io.CopyN(tw, content, size)
	return err
}

// textReader yields an endless, repetitive but not constant, text.
type textReader struct {
	key  [32]byte
	line int
	buf  []byte
}

func (r *textReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		if len(r.buf) == 0 {
			r.buf = fmt.Appendf(r.buf[:0], "%06d %x the quick brown fox jumps over the lazy dog; config key=value line=%d\n",
				r.line, r.key[:4], r.line%97)
			r.line++
		}
		c := copy(p[n:], r.buf)
		r.buf = r.buf[c:]
		n += c
	}
	return n, nil
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// writeJSONBlob marshals v and stores it as a blob of the given media type.
func writeJSONBlob(dir, mediaType string, v any) (imgspecv1.Descriptor, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return imgspecv1.Descriptor{}, err
	}
	d := digest.FromBytes(data)
	if err := writeFileAtomic(blobPath(dir, d), data); err != nil {
		return imgspecv1.Descriptor{}, err
	}
	return imgspecv1.Descriptor{MediaType: mediaType, Digest: d, Size: int64(len(data))}, nil
}

func blobPath(dir string, d digest.Digest) string {
	return filepath.Join(dir, imgspecv1.ImageBlobsDir, d.Algorithm().String(), d.Encoded())
}

func initLayout(dir string) error {
	if err := os.MkdirAll(filepath.Join(dir, imgspecv1.ImageBlobsDir, digest.Canonical.String()), 0o755); err != nil {
		return err
	}
	layout, err := json.Marshal(imgspecv1.ImageLayout{Version: imgspecv1.ImageLayoutVersion})
	if err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(dir, imgspecv1.ImageLayoutFile), layout)
}

// addToIndex lists desc in dir/index.json under the ref name tag, replacing an
// entry of the same name.
func addToIndex(dir, tag string, desc imgspecv1.Descriptor) error {
	path := filepath.Join(dir, imgspecv1.ImageIndexFile)
	index := imgspecv1.Index{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: imgspecv1.MediaTypeImageIndex,
	}
	data, err := os.ReadFile(path)
	switch {
	case err == nil:
		if err := json.Unmarshal(data, &index); err != nil {
			return fmt.Errorf("parsing %s: %w", path, err)
		}
	case !errors.Is(err, fs.ErrNotExist):
		return err
	}
	kept := index.Manifests[:0]
	for _, m := range index.Manifests {
		if m.Annotations[imgspecv1.AnnotationRefName] != tag {
			kept = append(kept, m)
		}
	}
	desc.Platform = nil
	desc.Annotations = map[string]string{imgspecv1.AnnotationRefName: tag}
	index.Manifests = append(kept, desc)
	out, err := json.Marshal(index)
	if err != nil {
		return err
	}
	return writeFileAtomic(path, out)
}

func writeFileAtomic(path string, data []byte) error {
	if existing, err := os.ReadFile(path); err == nil && bytes.Equal(existing, data) {
		return nil
	}
	return atomicfile.WriteFile(path, data, 0o644)
}

// ReadManifest returns the image manifest stored at d in the layout at dir.
func ReadManifest(dir string, d digest.Digest) (imgspecv1.Manifest, error) {
	var m imgspecv1.Manifest
	data, err := os.ReadFile(blobPath(dir, d))
	if err != nil {
		return m, err
	}
	if err := json.Unmarshal(data, &m); err != nil {
		return m, fmt.Errorf("parsing manifest %s: %w", d, err)
	}
	return m, nil
}

// WriteManifest stores v (an image manifest or index, any shape: tests use
// it to write rule-breaking ones, e.g. a layer descriptor claiming 1 TiB)
// as a blob of the given media type in the layout at dir, lists it in
// index.json under tag, and returns its descriptor.
func WriteManifest(dir, tag, mediaType string, v any) (imgspecv1.Descriptor, error) {
	if err := initLayout(dir); err != nil {
		return imgspecv1.Descriptor{}, err
	}
	desc, err := writeJSONBlob(dir, mediaType, v)
	if err != nil {
		return imgspecv1.Descriptor{}, err
	}
	return desc, addToIndex(dir, tag, desc)
}
