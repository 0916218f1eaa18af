package imagetest

import (
	"archive/tar"
	"compress/gzip"
	"encoding/json"
	"io"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	digest "github.com/opencontainers/go-digest"
	imgspecv1 "github.com/opencontainers/image-spec/specs-go/v1"
)

func readBlob(t *testing.T, dir string, d digest.Digest, v any) []byte {
	t.Helper()
	data, err := os.ReadFile(blobPath(dir, d))
	if err != nil {
		t.Fatal(err)
	}
	if got := digest.FromBytes(data); got != d {
		t.Fatalf("blob %s has digest %s", d, got)
	}
	if v != nil {
		if err := json.Unmarshal(data, v); err != nil {
			t.Fatal(err)
		}
	}
	return data
}

func files(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(p)
		rel, _ := filepath.Rel(dir, p)
		out[rel] = digest.FromBytes(data).String()
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestWriteImage(t *testing.T) {
	dirs := []string{t.TempDir(), t.TempDir()}
	var digests []digest.Digest
	for _, dir := range dirs {
		a, err := WriteImage(dir, "a", 1, []int64{100 << 10, 0, 3})
		if err != nil {
			t.Fatal(err)
		}
		b, err := WriteImage(dir, "b", 1, []int64{100 << 10, 7})
		if err != nil {
			t.Fatal(err)
		}
		digests = append(digests, a, b)
	}
	if digests[0] != digests[2] || digests[1] != digests[3] || digests[0] == digests[1] {
		t.Fatalf("digests not deterministic or not distinct: %v", digests)
	}
	if !maps.Equal(files(t, dirs[0]), files(t, dirs[1])) {
		t.Fatal("layouts differ")
	}

	dir := dirs[0]
	var ma, mb imgspecv1.Manifest
	readBlob(t, dir, digests[0], &ma)
	readBlob(t, dir, digests[1], &mb)
	if ma.Layers[0].Digest != mb.Layers[0].Digest || ma.Layers[1].Digest == mb.Layers[1].Digest {
		t.Errorf("layer 0 should be shared and layer 1 not: %v %v", ma.Layers, mb.Layers)
	}
	var cfg imgspecv1.Image
	readBlob(t, dir, ma.Config.Digest, &cfg)
	if len(cfg.Config.Entrypoint) == 0 || len(cfg.Config.ExposedPorts) == 0 || cfg.OS != "linux" || cfg.Architecture != "amd64" {
		t.Errorf("config lacks entrypoint, ports or platform: %+v", cfg)
	}
	if len(cfg.RootFS.DiffIDs) != len(ma.Layers) {
		t.Fatalf("%d diff_ids for %d layers", len(cfg.RootFS.DiffIDs), len(ma.Layers))
	}
	wantSizes := []int64{100 << 10, 0, 3}
	for i, l := range ma.Layers {
		data := readBlob(t, dir, l.Digest, nil)
		if int64(len(data)) != l.Size || l.MediaType != imgspecv1.MediaTypeImageLayerGzip {
			t.Errorf("layer %d: descriptor %+v, file %d bytes", i, l, len(data))
		}
		gz, err := gzip.NewReader(blobFile(t, dir, l.Digest))
		if err != nil {
			t.Fatal(err)
		}
		diff := digest.Canonical.Digester()
		tr := tar.NewReader(io.TeeReader(gz, diff.Hash()))
		var content int64
		for {
			h, err := tr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			if h.Uid != 0 || h.Gid != 0 || !h.ModTime.Equal(fixedTime) {
				t.Errorf("layer %d: non-deterministic header %+v", i, h)
			}
			n, err := io.Copy(io.Discard, tr)
			if err != nil {
				t.Fatal(err)
			}
			content += n
		}
		_, _ = io.Copy(io.Discard, gz)
		if content != wantSizes[i] {
			t.Errorf("layer %d: %d content bytes, want %d", i, content, wantSizes[i])
		}
		if diff.Digest() != cfg.RootFS.DiffIDs[i] {
			t.Errorf("layer %d: diff_id %s, want %s", i, cfg.RootFS.DiffIDs[i], diff.Digest())
		}
	}
	// The random part does not compress, the text part does.
	if ma.Layers[0].Size < 70<<10 || ma.Layers[0].Size > 90<<10 {
		t.Errorf("layer 0: %d compressed bytes for 100 KiB, want about 75%%", ma.Layers[0].Size)
	}
}

func blobFile(t *testing.T, dir string, d digest.Digest) io.Reader {
	t.Helper()
	f, err := os.Open(blobPath(dir, d))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func TestWriteIndex(t *testing.T) {
	dir := t.TempDir()
	d, per, err := WriteIndex(dir, "multi", 3)
	if err != nil {
		t.Fatal(err)
	}
	d2, per2, err := WriteIndex(t.TempDir(), "multi", 3)
	if err != nil || d2 != d || !maps.Equal(per, per2) {
		t.Fatalf("not deterministic: %s %v / %s %v (%v)", d, per, d2, per2, err)
	}
	var idx imgspecv1.Index
	readBlob(t, dir, d, &idx)
	if len(idx.Manifests) != 2 || len(per) != 2 {
		t.Fatalf("index %+v, per-platform %v", idx, per)
	}
	for _, m := range idx.Manifests {
		key := m.Platform.OS + "/" + m.Platform.Architecture
		if per[key] != m.Digest {
			t.Errorf("%s: %s, map says %s", key, m.Digest, per[key])
		}
		var man imgspecv1.Manifest
		readBlob(t, dir, m.Digest, &man)
		var cfg imgspecv1.Image
		readBlob(t, dir, man.Config.Digest, &cfg)
		if cfg.OS+"/"+cfg.Architecture != key {
			t.Errorf("%s: config says %s/%s", key, cfg.OS, cfg.Architecture)
		}
	}
	var top imgspecv1.Index
	data, err := os.ReadFile(filepath.Join(dir, "index.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &top); err != nil {
		t.Fatal(err)
	}
	if len(top.Manifests) != 1 || top.Manifests[0].Digest != d || top.Manifests[0].Annotations[imgspecv1.AnnotationRefName] != "multi" {
		t.Errorf("index.json: %s", data)
	}
}

func TestWritePlatformIndex(t *testing.T) {
	dir := t.TempDir()
	platforms := []imgspecv1.Platform{
		{OS: "linux", Architecture: "amd64"},
		{OS: "linux", Architecture: "arm64", Variant: "v8"},
		{OS: "linux", Architecture: "s390x"},
	}
	d, per, err := WritePlatformIndex(dir, "multi", 7, platforms...)
	if err != nil {
		t.Fatal(err)
	}
	var index imgspecv1.Index
	data, err := os.ReadFile(blobPath(dir, d))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &index); err != nil {
		t.Fatal(err)
	}
	if len(index.Manifests) != 3 || len(per) != 3 {
		t.Fatalf("index %s: %d manifests, map %v", d, len(index.Manifests), per)
	}
	for i, key := range []string{"linux/amd64", "linux/arm64/v8", "linux/s390x"} {
		if m := index.Manifests[i]; m.Digest != per[key] || m.Platform == nil || !reflect.DeepEqual(*m.Platform, platforms[i]) {
			t.Errorf("manifests[%d] = %+v, want %s for %s", i, m, per[key], key)
		}
	}
	// WriteIndex is the two-platform case, digests unchanged.
	d2, per2, err := WriteIndex(t.TempDir(), "multi", 7)
	if err != nil {
		t.Fatal(err)
	}
	d3, _, err := WritePlatformIndex(t.TempDir(), "multi", 7, platforms[0], imgspecv1.Platform{OS: "linux", Architecture: "arm64"})
	if err != nil || d3 != d2 || per2["linux/amd64"] != per["linux/amd64"] {
		t.Errorf("WriteIndex %s, WritePlatformIndex %s (%v)", d2, d3, err)
	}
	for _, bad := range [][]imgspecv1.Platform{nil, {{OS: "linux"}}, {platforms[0], platforms[0]}} {
		if _, _, err := WritePlatformIndex(t.TempDir(), "x", 1, bad...); err == nil {
			t.Errorf("WritePlatformIndex(%v) succeeded", bad)
		}
	}
}
