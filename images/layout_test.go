package images

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	digest "github.com/opencontainers/go-digest"
	imgspecv1 "github.com/opencontainers/image-spec/specs-go/v1"
)

func TestLayoutDirWritesBlobsAndIndex(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "layout")
	l, err := OpenLayoutDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	desc, err := l.WriteBlobBytes(imgspecv1.MediaTypeImageManifest, []byte(`{"schemaVersion":2}`))
	if err != nil {
		t.Fatal(err)
	}
	if want := digest.FromString(`{"schemaVersion":2}`); desc.Digest != want || desc.Size != 19 {
		t.Fatalf("descriptor %+v, want digest %s size 19", desc, want)
	}
	if b, err := os.ReadFile(l.BlobPath(desc.Digest)); err != nil || string(b) != `{"schemaVersion":2}` {
		t.Fatalf("blob %q %v", b, err)
	}
	named := func(d imgspecv1.Descriptor, name string) imgspecv1.Descriptor {
		d.Annotations = map[string]string{imgspecv1.AnnotationRefName: name}
		return d
	}
	other, err := l.WriteBlobBytes(imgspecv1.MediaTypeImageManifest, []byte(`{"schemaVersion":2,"x":1}`))
	if err != nil {
		t.Fatal(err)
	}
	// b then a, and b again: the index lists a and b once each, sorted,
	// whatever the order of writes.
	for _, d := range []imgspecv1.Descriptor{named(desc, "b:1"), named(other, "a:1"), named(other, "b:1")} {
		if err := l.PutIndex(d); err != nil {
			t.Fatal(err)
		}
	}
	first, _ := os.ReadFile(filepath.Join(dir, imgspecv1.ImageIndexFile))
	res, err := ReadIndex(os.DirFS(dir), ".")
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 2 || res[0].Name != "a:1" || res[1].Name != "b:1" || res[1].Digest != other.Digest {
		t.Fatalf("index lists %+v", res)
	}
	other2 := filepath.Join(t.TempDir(), "layout")
	l2, err := OpenLayoutDir(other2)
	if err != nil {
		t.Fatal(err)
	}
	if err := l2.PutIndex(named(other, "b:1"), named(other, "a:1")); err != nil {
		t.Fatal(err)
	}
	if second, _ := os.ReadFile(filepath.Join(other2, imgspecv1.ImageIndexFile)); !bytes.Equal(first, second) {
		t.Errorf("the same entries in another order give another index.json:\n%s\n%s", first, second)
	}
	// Reopening keeps the layout; no temporary file is left in the blobs.
	if _, err := OpenLayoutDir(dir); err != nil {
		t.Fatal(err)
	}
	ents, _ := os.ReadDir(filepath.Join(dir, "blobs", "sha256"))
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".") {
			t.Errorf("temporary file left: %s", e.Name())
		}
	}
}

func TestLayoutDirFailedBlobLeavesNothing(t *testing.T) {
	l, err := OpenLayoutDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	if _, err := l.WriteBlob("x", func(w io.Writer) error { w.Write([]byte("half")); return boom }); !errors.Is(err, boom) {
		t.Fatalf("got %v", err)
	}
	if ents, _ := os.ReadDir(filepath.Join(l.Dir(), "blobs", "sha256")); len(ents) != 0 {
		t.Fatalf("left behind: %v", ents)
	}
}

func TestOpenLayoutDirRefusesAnotherVersion(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, imgspecv1.ImageLayoutFile), []byte(`{"imageLayoutVersion":"2.0.0"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenLayoutDir(dir); err == nil || !strings.Contains(err.Error(), "unsupported imageLayoutVersion") {
		t.Fatalf("got %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, imgspecv1.ImageIndexFile), []byte(`{"schemaVersion":1}`), 0o644); err != nil {
		t.Fatal(err)
	}
	l := &LayoutDir{dir: dir}
	if err := l.PutIndex(); err == nil || !strings.Contains(err.Error(), "schemaVersion must be 2") {
		t.Fatalf("an index of another schema version: %v", err)
	}
}
