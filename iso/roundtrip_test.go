package iso

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
	"time"
	"unicode/utf16"
)

func TestRoundTrip(t *testing.T) {
	files := roundTripFiles()
	im := openBytes(t, imageOf(t, files))
	checkTree(t, im, files)

	fi, err := im.Stat("images/blobs/sha256/" + hex64(1))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode != 0o644 || !fi.ModTime.Equal(testTime) || len(fi.Extents) != 1 {
		t.Errorf("blob: mode %v, time %v, extents %v", fi.Mode, fi.ModTime, fi.Extents)
	}
	if fi.Extents[0].Offset%blockSize != 0 {
		t.Errorf("blob extent at %d is not block aligned", fi.Extents[0].Offset)
	}
	dir, err := im.Stat("nested/a")
	if err != nil || dir.Mode != fs.ModeDir|0o755 {
		t.Errorf("Stat(nested/a) = %v, %v; want a 0755 directory", dir.Mode, err)
	}
	if _, err := im.Stat("no/such/file"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Stat of a missing path: %v, want fs.ErrNotExist", err)
	}
	if _, err := im.Open("nested/a"); err == nil {
		t.Error("Open of a directory succeeded")
	}
}

// TestContentOrder checks that file data is contiguous, block aligned and in
// path order.
func TestContentOrder(t *testing.T) {
	files := roundTripFiles()
	img := imageOf(t, files)
	im := openBytes(t, img)
	var last int64
	for _, fi := range im.Files() {
		if !fi.Mode.IsRegular() || fi.Size == 0 {
			continue
		}
		off := fi.Extents[0].Offset
		if off < last {
			t.Errorf("%q at %d comes before the end of the previous file (%d)", fi.Path, off, last)
		}
		if last != 0 && off != last {
			t.Errorf("%q at %d, want %d right after the previous file", fi.Path, off, last)
		}
		last = off + (fi.Size+blockSize-1)/blockSize*blockSize
	}
	if last != int64(len(img)) {
		t.Errorf("file data ends at %d, image at %d", last, len(img))
	}
}

// TestJolietAndPrimaryTrees reads the same image through its Joliet and its
// ISO 9660 tree: same shape, same contents, names within the limits.
func TestJolietAndPrimaryTrees(t *testing.T) {
	files := roundTripFiles()
	img := imageOf(t, files)
	rr := openBytes(t, img)
	for _, tc := range []struct {
		names   nameSource
		maxName int
		count   func(string) int
	}{
		{namesJoliet, maxJolietChars, func(s string) int { return len(utf16.Encode([]rune(s))) }},
		{namesPrimary, maxISODirChars, func(s string) int { return len(s) }},
	} {
		im, err := open(bytes.NewReader(img), int64(len(img)), tc.names)
		if err != nil {
			t.Fatal(err)
		}
		got, want := im.Files(), rr.Files()
		if len(got) != len(want) {
			t.Fatalf("tree %d has %d entries, rock ridge has %d", tc.names, len(got), len(want))
		}
		byExtent := map[Extent]FileInfo{}
		for _, fi := range want {
			if fi.Size > 0 {
				byExtent[fi.Extents[0]] = fi
			}
		}
		for _, fi := range got {
			if n := tc.count(path.Base(fi.Path)); n > tc.maxName {
				t.Errorf("tree %d: name %q has %d characters, more than %d", tc.names, path.Base(fi.Path), n, tc.maxName)
			}
			if tc.names == namesPrimary && strings.Trim(fi.Path, "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_./") != "" {
				t.Errorf("primary name %q has characters other than d-characters", fi.Path)
			}
			if fi.Size > 0 && byExtent[fi.Extents[0]].Size != fi.Size {
				t.Errorf("tree %d: %q does not match a rock ridge file", tc.names, fi.Path)
			}
		}
		if tc.names == namesJoliet {
			for _, p := range []string{"unicode/日本語.txt", "case/A", "case/a", "repo/kubernetes-cni-1.7.1-150500.1.1.x86_64.rpm"} {
				if _, err := im.Stat(p); err != nil {
					t.Errorf("joliet: %v", err)
				}
			}
		}
	}
}

func TestDeterministic(t *testing.T) {
	files := roundTripFiles()
	dirA, dirB := t.TempDir(), t.TempDir()
	writeSources(t, dirA, files)
	writeSources(t, dirB, files)
	// Different host metadata for the second copy.
	err := filepath.WalkDir(dirB, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		mode := os.FileMode(0o600)
		if d.IsDir() {
			mode = 0o700
		}
		if err := os.Chmod(p, mode); err != nil {
			return err
		}
		return os.Chtimes(p, time.Unix(12345, 0), time.Unix(67890, 0))
	})
	if err != nil {
		t.Fatal(err)
	}
	opts := WriteOptions{VolumeID: "FERRY", Publisher: "ferry", ModTime: testTime}
	a := writeImage(t, entriesFor(dirA, files), opts)

	// Shuffled entries, from the other copy (paths point elsewhere but the
	// content is the same).
	entries := entriesFor(dirB, files)
	rand.New(rand.NewPCG(1, 2)).Shuffle(len(entries), func(i, j int) { entries[i], entries[j] = entries[j], entries[i] })
	b := writeImage(t, entries, opts)
	if sha256.Sum256(a) != sha256.Sum256(b) {
		t.Fatal("same entries in another order with other host metadata gave a different image")
	}

	// WriteTree finds the same tree and gives the same image.
	var tree bytes.Buffer
	if err := WriteTree(&tree, dirB, opts); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(tree.Bytes(), a) {
		t.Error("WriteTree gave a different image than Write")
	}

	// The time stamp is the one given, not the clock.
	opts.ModTime = testTime.Add(time.Second)
	c := writeImage(t, entriesFor(dirA, files), opts)
	if bytes.Equal(a, c) {
		t.Error("a different ModTime gave the same image")
	}
	if got := string(a[16*blockSize+813 : 16*blockSize+829]); got != "2024050607080900" {
		t.Errorf("volume creation date %q", got)
	}
	if got := string(a[16*blockSize+847 : 16*blockSize+863]); got != "0000000000000000" {
		t.Errorf("volume expiration date %q, want unset", got)
	}
	if got := string(a[16*blockSize+40 : 16*blockSize+72]); got != "FERRY"+strings.Repeat(" ", 27) {
		t.Errorf("volume id %q", got)
	}
}

func TestVolumeIDMapping(t *testing.T) {
	img := writeImage(t, []Entry{{Path: "d", Dir: true}}, WriteOptions{VolumeID: "ferry-1.2 bundle/x86_64 and more than 32 characters"})
	if got := string(img[16*blockSize+40 : 16*blockSize+72]); got != "FERRY_1_2_BUNDLE_X86_64_AND_MORE" {
		t.Errorf("volume id %q", got)
	}
	if got := decodeUCS2(img[17*blockSize+40 : 17*blockSize+72]); got != "ferry-1.2 bundle" {
		t.Errorf("joliet volume id %q", got)
	}
}

func TestFS(t *testing.T) {
	var files []testFile
	for _, f := range roundTripFiles() {
		if !strings.Contains(f.path, `\`) { // fstest rejects backslashes
			files = append(files, f)
		}
	}
	im := openBytes(t, imageOf(t, files))
	var expected []string
	for p := range expectedPaths(files) {
		expected = append(expected, p)
	}
	if err := fstest.TestFS(im.FS(), expected...); err != nil {
		t.Fatal(err)
	}
	got, err := fs.ReadFile(im.FS(), "case/a")
	if err != nil || string(got) != "lower" {
		t.Errorf("ReadFile(case/a) = %q, %v", got, err)
	}
}

func TestWriteRejectsBadEntries(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "f")
	if err := os.WriteFile(src, []byte("abc"), 0o644); err != nil {
		t.Fatal(err)
	}
	file := func(p string) Entry { return Entry{Path: p, Source: src, Size: 3} }
	for _, tc := range []struct {
		name    string
		entries []Entry
		want    string
	}{
		{"empty path", []Entry{file("")}, "empty path"},
		{"leading slash", []Entry{file("/a")}, `"/a"`},
		{"double slash", []Entry{file("a//b")}, `"a//b"`},
		{"trailing slash", []Entry{file("a/")}, `"a/"`},
		{"dot", []Entry{file("a/./b")}, `"a/./b"`},
		{"dot dot", []Entry{file("a/../b")}, `"a/../b"`},
		{"nul", []Entry{file("a\x00b")}, "NUL"},
		{"too long", []Entry{file(strings.Repeat("x", 256))}, "256 bytes"},
		{"twice", []Entry{file("a"), file("a")}, "listed twice"},
		{"file and dir", []Entry{file("a"), {Path: "a", Dir: true}}, "both"},
		{"file as parent", []Entry{file("a"), file("a/b")}, "not a directory"},
		{"negative size", []Entry{{Path: "a", Source: src, Size: -1}}, "negative"},
		{"no source", []Entry{{Path: "a", Size: 3}}, "no source"},
		{"missing source", []Entry{{Path: "a", Source: filepath.Join(dir, "missing"), Size: 3}}, "missing"},
		{"source is a dir", []Entry{{Path: "a", Source: dir, Size: 3}}, "not a regular file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Write(io.Discard, tc.entries, WriteOptions{})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Write: %v, want an error containing %q", err, tc.want)
			}
		})
	}
	// A name of exactly 255 bytes is fine.
	if err := Write(io.Discard, []Entry{file(strings.Repeat("x", 255))}, WriteOptions{}); err != nil {
		t.Error(err)
	}
}

func TestWriteDetectsSizeChange(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "f")
	if err := os.WriteFile(src, []byte("abcdef"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, size := range []int64{5, 7} {
		err := Write(io.Discard, []Entry{{Path: "f", Source: src, Size: size}}, WriteOptions{})
		if !errors.Is(err, errSizeChanged) || !strings.Contains(err.Error(), `"f"`) {
			t.Errorf("size %d: %v, want a size change error naming the entry", size, err)
		}
	}
}

// TestWriteDetectsGrowthWhileCopying changes the file between planning and
// copying, through the Progress callback.
func TestWriteDetectsGrowthWhileCopying(t *testing.T) {
	dir := t.TempDir()
	big, small := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	if err := os.WriteFile(big, make([]byte, 3<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(small, []byte("small"), 0o644); err != nil {
		t.Fatal(err)
	}
	grown := false
	opts := WriteOptions{Progress: func(done, total int64) {
		if !grown && done > 1<<20 {
			grown = true
			f, err := os.OpenFile(small, os.O_APPEND|os.O_WRONLY, 0)
			if err == nil {
				f.Write([]byte("more"))
				f.Close()
			}
		}
	}}
	err := Write(io.Discard, []Entry{{Path: "a", Source: big, Size: 3 << 20}, {Path: "b", Source: small, Size: 5}}, opts)
	if !errors.Is(err, errSizeChanged) {
		t.Fatalf("Write: %v, want a size change error", err)
	}
}

func TestWriteTreeRejectsSymlink(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "f"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("f", filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	err := WriteTree(io.Discard, dir, WriteOptions{})
	if err == nil || !strings.Contains(err.Error(), filepath.Join(dir, "link")) {
		t.Fatalf("WriteTree: %v, want an error naming the symlink", err)
	}
}

func TestProgress(t *testing.T) {
	dir := t.TempDir()
	files := []testFile{{path: "big", content: content(7, 5<<20+1)}, {path: "small", content: []byte("x")}}
	writeSources(t, dir, files)
	var calls, last, total int64
	opts := WriteOptions{Progress: func(done, tot int64) {
		if done < last {
			t.Errorf("progress went back from %d to %d", last, done)
		}
		calls++
		last, total = done, tot
	}}
	var buf bytes.Buffer
	if err := Write(&buf, entriesFor(dir, files), opts); err != nil {
		t.Fatal(err)
	}
	if last != int64(buf.Len()) || total != int64(buf.Len()) {
		t.Errorf("last progress %d/%d, image is %d bytes", last, total, buf.Len())
	}
	if calls < 5 || calls > 20 {
		t.Errorf("%d progress calls for %d bytes", calls, buf.Len())
	}
}

// TestEmptyImage writes an image with no entries at all.
func TestEmptyImage(t *testing.T) {
	img := writeImage(t, nil, WriteOptions{})
	if im := openBytes(t, img); len(im.Files()) != 0 {
		t.Errorf("empty image lists %v", im.Files())
	}
}

// TestLargeDirectory checks directories spanning many blocks and a primary
// namespace with many clashes.
func TestLargeDirectory(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "f")
	if err := os.WriteFile(src, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	var entries []Entry
	var files []testFile
	for i := 0; i < 5000; i++ {
		p := "d/" + strings.Repeat("same-prefix-", 4) + hex64(uint64(i))
		entries = append(entries, Entry{Path: p, Source: src, Size: 1})
		files = append(files, testFile{path: p, content: []byte("x")})
	}
	im := openBytes(t, writeImage(t, entries, WriteOptions{}))
	if len(im.Files()) != 5001 {
		t.Fatalf("%d entries, want 5001", len(im.Files()))
	}
	checkContent(t, im, files[4999].path, []byte("x"))
}
