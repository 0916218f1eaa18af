package iso

import (
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

// testFile is one file or directory of a test tree.
type testFile struct {
	path    string
	content []byte
	dir     bool
	target  string // a symlink to target (only in images made by xorriso)
}

// testTime is the SOURCE_DATE_EPOCH of the tests.
var testTime = time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)

// content returns n deterministic pseudo-random bytes.
func content(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// hex64 is a sha256-like name.
func hex64(seed uint64) string {
	return fmt.Sprintf("%x", content(seed, 32))
}

// roundTripFiles is a tree with the names and sizes that matter.
func roundTripFiles() []testFile {
	files := []testFile{
		{path: "images/blobs/sha256/" + hex64(1), content: content(1, 100000)},
		{path: "images/blobs/sha256/" + hex64(2), content: content(2, 2048)},
		{path: "images/blobs/sha256/" + hex64(3), content: content(3, 2049)},
		{path: "images/index.json", content: []byte(`{"schemaVersion":2}`)},
		{path: "repo/kubernetes-cni-1.7.1-150500.1.1.x86_64.rpm", content: content(4, 2047)},
		{path: "repo/" + strings.Repeat("long-name-", 20) + ".rpm", content: content(5, 10)},
		{path: "repo/" + strings.Repeat("n", 251) + ".rpm", content: content(6, 11)},
		{path: "case/A", content: []byte("upper")},
		{path: "case/a", content: []byte("lower")},
		{path: "case/Ab", content: []byte("Ab")},
		{path: "case/aB", content: []byte("aB")},
		{path: "unicode/日本語.txt", content: []byte("nihongo")},
		{path: "unicode/Ünïcödé", content: []byte("unicode")},
		{path: "unicode/emoji-😀.bin", content: []byte("emoji")},
		{path: "unicode/" + strings.Repeat("é", 120), content: []byte("accents")},
		{path: "empty-file", content: nil},
		{path: "emptydir", dir: true},
		{path: "nested/a/b/c/d/e/f/g/h/i/j/file", content: []byte("deep")},
		{path: `special/a b;c*?:\x.txt`, content: []byte("special")},
		{path: "dots/...", content: []byte("three dots")},
		{path: "dots/.hidden", content: []byte("hidden")},
		{path: "dots/a.b.c.d", content: []byte("abcd")},
		{path: "dots/trailing.", content: []byte("trailing")},
		{path: "dots/archive.tar.gz", content: []byte("tgz")},
		{path: "dots/ARCHIVE_TAR.GZ", content: []byte("TGZ")},
		{path: "clash/a.b", dir: true},
		{path: "clash/a_b", content: []byte("a_b")},
		{path: "clash/A_B.", content: []byte("A_B.")},
	}
	for i := 0; i < 3; i++ {
		files = append(files,
			testFile{path: fmt.Sprintf("collide/%s%d.txt", strings.Repeat("x", 40), i), content: []byte{byte(i)}},
			testFile{path: fmt.Sprintf("joliet/%s-%d.tar.gz", strings.Repeat("j", 70), i), content: []byte{byte(i)}},
			testFile{path: fmt.Sprintf("joliet/%s-%d", strings.Repeat("d", 70), i), dir: true},
		)
	}
	for i := 0; i < 300; i++ {
		files = append(files, testFile{path: fmt.Sprintf("many/file-%03d.data", i), content: content(uint64(100+i), i)})
	}
	return files
}

// writeSources creates the files of a tree under dir.
func writeSources(t testing.TB, dir string, files []testFile) {
	t.Helper()
	for _, f := range files {
		p := filepath.Join(dir, filepath.FromSlash(f.path))
		if f.dir {
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, f.content, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// entriesFor lists the entries of a tree written under dir.
func entriesFor(dir string, files []testFile) []Entry {
	var entries []Entry
	for _, f := range files {
		if f.dir {
			entries = append(entries, Entry{Path: f.path, Dir: true})
			continue
		}
		entries = append(entries, Entry{Path: f.path, Source: filepath.Join(dir, filepath.FromSlash(f.path)), Size: int64(len(f.content))})
	}
	return entries
}

// writeImage writes an image of entries to memory.
func writeImage(t testing.TB, entries []Entry, opts WriteOptions) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := Write(&buf, entries, opts); err != nil {
		t.Fatal(err)
	}
	if buf.Len()%blockSize != 0 {
		t.Fatalf("image size %d is not a multiple of %d", buf.Len(), blockSize)
	}
	return buf.Bytes()
}

// imageOf writes files under a temporary directory and images them.
func imageOf(t testing.TB, files []testFile) []byte {
	t.Helper()
	dir := t.TempDir()
	writeSources(t, dir, files)
	return writeImage(t, entriesFor(dir, files), WriteOptions{VolumeID: "ferry test", ModTime: testTime})
}

// expectedPaths lists the paths of files and all their parents.
func expectedPaths(files []testFile) map[string]testFile {
	want := map[string]testFile{}
	for _, f := range files {
		want[f.path] = f
		for d := path.Dir(f.path); d != "."; d = path.Dir(d) {
			if _, ok := want[d]; !ok {
				want[d] = testFile{path: d, dir: true}
			}
		}
	}
	return want
}

// checkTree compares an opened image with the files it should hold: paths,
// types, sizes and contents, byte for byte.
func checkTree(t *testing.T, im *Image, files []testFile) {
	t.Helper()
	want := expectedPaths(files)
	got := im.Files()
	if !sort.SliceIsSorted(got, func(i, j int) bool { return got[i].Path < got[j].Path }) {
		t.Error("Files() is not sorted by path")
	}
	seen := map[string]bool{}
	for _, fi := range got {
		seen[fi.Path] = true
		w, ok := want[fi.Path]
		if !ok {
			t.Errorf("unexpected entry %q", fi.Path)
			continue
		}
		if fi.Mode.IsDir() != w.dir {
			t.Errorf("%q: mode %v, want dir=%v", fi.Path, fi.Mode, w.dir)
			continue
		}
		switch {
		case w.target != "":
			if fi.Mode.Type() != fs.ModeSymlink || fi.Target != w.target {
				t.Errorf("%q: mode %v target %q, want a symlink to %q", fi.Path, fi.Mode, fi.Target, w.target)
			}
		case !w.dir:
			checkContent(t, im, fi.Path, w.content)
		}
	}
	for p := range want {
		if !seen[p] {
			t.Errorf("missing entry %q", p)
		}
	}
}

// checkContent reads a file three ways: Open, ReaderAt and Stat's extents.
func checkContent(t *testing.T, im *Image, p string, want []byte) {
	t.Helper()
	fi, err := im.Stat(p)
	if err != nil {
		t.Fatalf("Stat(%q): %v", p, err)
	}
	if fi.Size != int64(len(want)) {
		t.Errorf("%q: size %d, want %d", p, fi.Size, len(want))
	}
	r, err := im.Open(p)
	if err != nil {
		t.Fatalf("Open(%q): %v", p, err)
	}
	got, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("reading %q: %v", p, err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%q: content differs (%d bytes, want %d)", p, len(got), len(want))
	}
	ra, size, err := im.ReaderAt(p)
	if err != nil || size != int64(len(want)) {
		t.Fatalf("ReaderAt(%q) = %d, %v", p, size, err)
	}
	if size > 2 {
		mid := make([]byte, size/2)
		if _, err := ra.ReadAt(mid, size/4); err != nil {
			t.Fatalf("ReadAt(%q): %v", p, err)
		}
		if !bytes.Equal(mid, want[size/4:size/4+int64(len(mid))]) {
			t.Errorf("%q: ReadAt content differs", p)
		}
	}
}

// openBytes opens an in-memory image.
func openBytes(t testing.TB, img []byte) *Image {
	t.Helper()
	im, err := Open(bytes.NewReader(img), int64(len(img)))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return im
}
