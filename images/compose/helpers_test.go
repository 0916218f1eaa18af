package compose

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/rpmpack"
	digest "github.com/opencontainers/go-digest"
	imgspecv1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/ferry-k8s/ferry/internal/testutil"
)

// created is the Created time of test images (2026-01-01T00:00:00Z).
var created = time.Unix(1767225600, 0).UTC()

// run runs a program and returns its stdout; failure fails the test.
func run(t testing.TB, dir string, name string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(testutil.Need(t, name), args...)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s%s", name, strings.Join(args, " "), err, out, stderr.String())
	}
	return out
}

// pkg describes a package made with rpmpack, for inputs rpmbuild will not
// produce (conflicts, traversal, wrong digests).
type pkg struct {
	name, version, arch string
	compressor          string
	files               []rpmpack.RPMFile
	// tags override header tags after rpmpack wrote its own.
	tags map[int]rpmpack.IndexEntry
}

// reg, dirent and symlink make rpmpack files.
func reg(path, body string, mode uint, owner string) rpmpack.RPMFile {
	return rpmpack.RPMFile{Name: path, Body: []byte(body), Mode: mode, Owner: owner, Group: owner, MTime: 1}
}

func dirent(path string, mode uint, owner string) rpmpack.RPMFile {
	return rpmpack.RPMFile{Name: path, Mode: 0o040000 | mode, Owner: owner, Group: owner, MTime: 1}
}

func symlink(path, target string) rpmpack.RPMFile {
	return rpmpack.RPMFile{Name: path, Body: []byte(target), Mode: 0o120777, Owner: "root", Group: "root", MTime: 1}
}

// write builds p into dir and returns the file's path.
func (p pkg) write(t testing.TB, dir string) string {
	t.Helper()
	data := p.bytes(t)
	path := filepath.Join(dir, p.name+".rpm")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func (p pkg) bytes(t testing.TB) []byte {
	t.Helper()
	if p.version == "" {
		p.version = "1.0"
	}
	if p.arch == "" {
		p.arch = "noarch"
	}
	r, err := rpmpack.NewRPM(rpmpack.RPMMetaData{
		Name: p.name, Version: p.version, Release: "1", Arch: p.arch,
		Summary: p.name, Description: p.name, Licence: "Apache-2.0",
		Compressor: p.compressor, BuildTime: created, Epoch: rpmpack.NoEpoch,
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range p.files {
		r.AddFile(f)
	}
	for tag, e := range p.tags {
		r.AddCustomTag(tag, e)
	}
	var buf bytes.Buffer
	if err := r.Write(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// sortedNames is the order rpmpack writes files in (and so the index of
// each file in header arrays).
func (p pkg) sortedNames() []string {
	var names []string
	for _, f := range p.files {
		names = append(names, f.Name)
	}
	slices.Sort(names)
	return names
}

// image is what a test reads back from a layout.
type image struct {
	manifest imgspecv1.Manifest
	config   imgspecv1.Image
	entries  []*tar.Header
	content  map[string]string // regular files' content by tar name
	blobs    map[digest.Digest][]byte
}

// readImage reads the image named name from the layout at dir, checking
// every blob's digest and size on the way.
func readImage(t testing.TB, dir, name string) *image {
	t.Helper()
	img := &image{content: map[string]string{}, blobs: map[digest.Digest][]byte{}}
	blob := func(d imgspecv1.Descriptor) []byte {
		t.Helper()
		b, err := os.ReadFile(filepath.Join(dir, "blobs", "sha256", d.Digest.Encoded()))
		if err != nil {
			t.Fatal(err)
		}
		if digest.FromBytes(b) != d.Digest || int64(len(b)) != d.Size {
			t.Fatalf("blob %s: digest or size mismatch", d.Digest)
		}
		img.blobs[d.Digest] = b
		return b
	}
	var idx imgspecv1.Index
	data, err := os.ReadFile(filepath.Join(dir, "index.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &idx); err != nil {
		t.Fatal(err)
	}
	var found *imgspecv1.Descriptor
	for i, m := range idx.Manifests {
		if m.Annotations[imgspecv1.AnnotationRefName] == name {
			found = &idx.Manifests[i]
		}
	}
	if found == nil {
		t.Fatalf("%s not in index.json:\n%s", name, data)
	}
	if err := json.Unmarshal(blob(*found), &img.manifest); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(blob(img.manifest.Config), &img.config); err != nil {
		t.Fatal(err)
	}
	if len(img.manifest.Layers) != 1 {
		t.Fatalf("%d layers, want 1", len(img.manifest.Layers))
	}
	zr, err := gzip.NewReader(bytes.NewReader(blob(img.manifest.Layers[0])))
	if err != nil {
		t.Fatal(err)
	}
	if !zr.ModTime.IsZero() || zr.Name != "" || zr.Comment != "" {
		t.Errorf("gzip header: mtime %v name %q comment %q", zr.ModTime, zr.Name, zr.Comment)
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	if got := digest.FromBytes(raw); len(img.config.RootFS.DiffIDs) != 1 || img.config.RootFS.DiffIDs[0] != got {
		t.Fatalf("diff_ids %v, layer's uncompressed digest %s", img.config.RootFS.DiffIDs, got)
	}
	tr := tar.NewReader(bytes.NewReader(raw))
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		img.entries = append(img.entries, h)
		if h.Typeflag == tar.TypeReg {
			b, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			img.content[h.Name] = string(b)
		}
	}
	return img
}

// entry returns the tar header named name, or nil.
func (img *image) entry(name string) *tar.Header {
	for _, h := range img.entries {
		if h.Name == name {
			return h
		}
	}
	return nil
}

// layoutFiles returns every file of a layout by relative path.
func layoutFiles(t testing.TB, dir string) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		rel, _ := filepath.Rel(dir, p)
		files[rel] = b
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}
