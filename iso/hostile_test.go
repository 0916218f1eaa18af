package iso

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// smallFiles is a small tree with a long name (continuation area), nested
// directories and case-differing names.
func smallFiles() []testFile {
	return []testFile{
		{path: "case/A", content: []byte("upper")},
		{path: "case/a", content: []byte("lower")},
		{path: "nested/a/file", content: content(30, 3000)},
		{path: strings.Repeat("long", 60), content: []byte("long")},
		{path: "empty", content: nil},
		{path: "last", content: []byte("the end")},
	}
}

// findRecord returns the offset in img of the primary directory record of
// p, looked up by Rock Ridge name.
func findRecord(t *testing.T, img []byte, p string) int {
	t.Helper()
	tr := &treeReader{r: bytes.NewReader(img), size: int64(len(img)), ceBudget: 1 << 30}
	root, err := parseRecord(img[firstDescriptor*blockSize+156 : firstDescriptor*blockSize+156+rootRecordLen])
	if err != nil {
		t.Fatal(err)
	}
	lba, size, off := root.lba, root.size, -1
	for _, name := range strings.Split(p, "/") {
		off = -1
		start := int(lba) * blockSize
		for pos := start; pos < start+int(size); {
			n := int(img[pos])
			if n == 0 {
				pos = (pos/blockSize + 1) * blockSize
				continue
			}
			rec, err := parseRecord(img[pos : pos+n])
			if err != nil {
				t.Fatal(err)
			}
			if !isSelfOrParent(rec.id) {
				info, err := parseSystemUse(rec.su, tr.readCE)
				if err != nil {
					t.Fatal(err)
				}
				if string(info.name) == name {
					off, lba, size = pos, rec.lba, rec.size
					break
				}
			}
			pos += n
		}
		if off < 0 {
			t.Fatalf("no record for %q", p)
		}
	}
	return off
}

// openErr opens img and returns the error, which must not be nil.
func openErr(t *testing.T, img []byte, want string) {
	t.Helper()
	_, err := Open(bytes.NewReader(img), int64(len(img)))
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("Open: %v, want an error containing %q", err, want)
	}
	if !strings.HasPrefix(err.Error(), "iso: ") {
		t.Errorf("error %q lacks the package prefix", err)
	}
}

func TestOpenTruncated(t *testing.T) {
	img := imageOf(t, smallFiles())
	im := openBytes(t, img)
	var dataEnd int64
	for _, fi := range im.Files() {
		for _, e := range fi.Extents {
			if e.Length > 0 {
				dataEnd = max(dataEnd, e.Offset+e.Length)
			}
		}
	}
	for cut := 0; cut < len(img); cut += 97 {
		_, err := Open(bytes.NewReader(img[:cut]), int64(cut))
		if int64(cut) < dataEnd && err == nil {
			t.Errorf("image cut at %d of %d opened without error", cut, len(img))
		}
	}
}

func TestOpenGarbage(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, size := range []int{0, 1, 2047, 17 * blockSize, 40 * blockSize} {
		junk := make([]byte, size)
		if _, err := Open(bytes.NewReader(junk), int64(size)); err == nil {
			t.Errorf("%d zero bytes opened without error", size)
		}
		for i := range junk {
			junk[i] = byte(r.Uint32())
		}
		if _, err := Open(bytes.NewReader(junk), int64(size)); err == nil {
			t.Errorf("%d random bytes opened without error", size)
		}
	}
	// A valid descriptor followed by garbage.
	img := imageOf(t, smallFiles())
	for i := 19 * blockSize; i < len(img); i++ {
		img[i] = byte(r.Uint32())
	}
	if _, err := Open(bytes.NewReader(img), int64(len(img))); err == nil {
		t.Error("descriptors followed by garbage opened without error")
	}
}

// TestOpenCorrupted flips random bytes of the metadata; the reader must
// never panic or hang, and what it opens must be readable.
func TestOpenCorrupted(t *testing.T) {
	orig := imageOf(t, smallFiles())
	metaEnd := len(orig)
	r := rand.New(rand.NewPCG(5, 6))
	for i := 0; i < 3000; i++ {
		img := bytes.Clone(orig)
		for j := 0; j < 1+r.IntN(8); j++ {
			img[firstDescriptor*blockSize+r.IntN(metaEnd-firstDescriptor*blockSize)] = byte(r.Uint32())
		}
		im, err := Open(bytes.NewReader(img), int64(len(img)))
		if err == nil {
			exerciseImage(t, im)
		}
	}
}

// exerciseImage reads everything an opened image offers.
func exerciseImage(t *testing.T, im *Image) {
	seen := map[string]bool{}
	for _, fi := range im.Files() {
		if seen[fi.Path] || fi.Path == "" || strings.HasPrefix(fi.Path, "/") || strings.Contains(fi.Path, "//") {
			t.Fatalf("bad or duplicate path %q", fi.Path)
		}
		seen[fi.Path] = true
		if _, err := im.Stat(fi.Path); err != nil {
			t.Fatalf("Stat(%q) of a listed entry: %v", fi.Path, err)
		}
		if !fi.Mode.IsRegular() {
			continue
		}
		r, err := im.Open(fi.Path)
		if err != nil {
			t.Fatalf("Open(%q): %v", fi.Path, err)
		}
		if n, err := io.Copy(io.Discard, r); err != nil || n != fi.Size {
			t.Fatalf("reading %q: %d bytes of %d, %v", fi.Path, n, fi.Size, err)
		}
	}
	_ = fs.WalkDir(im.FS(), ".", func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			_, _ = fs.ReadFile(im.FS(), p)
		}
		return nil
	})
}

func TestDirectoryLoop(t *testing.T) {
	img := imageOf(t, smallFiles())
	rootLBA := binary.LittleEndian.Uint32(img[firstDescriptor*blockSize+156+2:])
	off := findRecord(t, img, "nested/a")
	putBoth32(img[off+2:], rootLBA)
	openErr(t, img, "loop")
}

func TestContinuationLoop(t *testing.T) {
	img := imageOf(t, smallFiles())
	off := findRecord(t, img, strings.Repeat("long", 60))
	rec := img[off : off+int(img[off])]
	i := bytes.Index(rec, []byte{'C', 'E', ceLen, 1})
	if i < 0 {
		t.Fatal("long name has no CE entry")
	}
	lba, areaOff := binary.LittleEndian.Uint32(rec[i+4:]), binary.LittleEndian.Uint32(rec[i+12:])
	area := int(lba)*blockSize + int(areaOff)
	copy(img[area:], rec[i:i+ceLen]) // the area now continues into itself
	openErr(t, img, "loop")
}

func TestContinuationOutsideImage(t *testing.T) {
	img := imageOf(t, smallFiles())
	off := findRecord(t, img, strings.Repeat("long", 60))
	rec := img[off : off+int(img[off])]
	i := bytes.Index(rec, []byte{'C', 'E', ceLen, 1})
	putBoth32(rec[i+4:], 1<<30)
	openErr(t, img, "outside the image")
}

func TestDeepNesting(t *testing.T) {
	deep := func(levels int) []byte {
		return writeImage(t, []Entry{{Path: strings.Repeat("d/", levels) + "leaf", Dir: true}}, WriteOptions{})
	}
	openBytes(t, deep(maxDepth-1))
	openErr(t, deep(maxDepth+5), "deeper than")
}

func TestBadNames(t *testing.T) {
	for _, tc := range []struct {
		name byte
		want string
	}{
		{'A', "duplicate name"},
		{'/', "invalid name"},
		{0, "invalid name"},
		{'.', "invalid name"},
	} {
		img := imageOf(t, smallFiles())
		off := findRecord(t, img, "case/a")
		rec := img[off : off+int(img[off])]
		i := bytes.Index(rec, []byte{'N', 'M', 6, 1, 0, 'a'})
		if i < 0 {
			t.Fatal("no NM entry for case/a")
		}
		rec[i+5] = tc.name
		openErr(t, img, tc.want)
		openErr(t, img, `reading directory "/case"`)
	}
}

func TestSizesOutsideImage(t *testing.T) {
	img := imageOf(t, smallFiles())
	root := bytes.Clone(img)
	putBoth32(root[firstDescriptor*blockSize+156+10:], 0xFFFFFFFF)
	openErr(t, root, "outside the image")

	file := bytes.Clone(img)
	putBoth32(file[findRecord(t, file, "last")+10:], 1<<30)
	openErr(t, file, "outside the image")

	dir := bytes.Clone(img)
	putBoth32(dir[findRecord(t, dir, "nested")+2:], 0xFFFFFFF0)
	openErr(t, dir, "outside the image")
}

func TestRecordCrossingBlock(t *testing.T) {
	img := imageOf(t, smallFiles())
	off := findRecord(t, img, "case")
	img[off] = 255 // longer than what is left in the directory
	_, err := Open(bytes.NewReader(img), int64(len(img)))
	if err == nil {
		t.Fatal("a record with a bad length opened without error")
	}
}

// TestReadRelocatedDirectories reads an image by genisoimage whose deep
// directories are relocated with Rock Ridge CL/RE entries.
func TestReadRelocatedDirectories(t *testing.T) {
	img := readGzip(t, "testdata/genisoimage-relocated.iso.gz")
	im := openBytes(t, img)
	deep := "d1/d2/d3/d4/d5/d6/d7/d8/d9/d10/file.txt"
	checkContent(t, im, deep, []byte("deep\n"))
	checkContent(t, im, "top.txt", []byte("top\n"))
	for _, fi := range im.Files() {
		if strings.HasPrefix(fi.Path, "rr_moved/") {
			t.Errorf("relocated directory listed at %q", fi.Path)
		}
	}
}

func readGzip(t testing.TB, p string) []byte {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// fuzzSeeds are small valid images, in the compact form of expandBlocks.
func fuzzSeeds(f *testing.F) [][]byte {
	seeds := [][]byte{imageOf(f, smallFiles())}

	old := maxExtentSize
	maxExtentSize = 2 * blockSize
	seeds = append(seeds, imageOf(f, []testFile{{path: "multi", content: content(40, 5*blockSize+1)}}))
	maxExtentSize = old

	seeds = append(seeds, readGzip(f, "testdata/genisoimage-relocated.iso.gz"))
	if bin, err := exec.LookPath("xorriso"); err == nil {
		src := filepath.Join(f.TempDir(), "src")
		writeSources(f, src, []testFile{{path: "sub/file", content: []byte("x")}, {path: strings.Repeat("n", 120), content: []byte("y")}})
		if err := os.Symlink("sub/file", filepath.Join(src, "link")); err != nil {
			f.Fatal(err)
		}
		out := filepath.Join(f.TempDir(), "x.iso")
		if b, err := exec.Command(bin, "-as", "mkisofs", "-R", "-J", "-no-pad", "-o", out, src).CombinedOutput(); err != nil {
			f.Fatalf("xorriso: %v\n%s", err, b)
		}
		img, err := os.ReadFile(out)
		if err != nil {
			f.Fatal(err)
		}
		seeds = append(seeds, img)
	}
	for i, s := range seeds {
		if _, err := Open(bytes.NewReader(s), int64(len(s))); err != nil {
			f.Fatalf("seed %d is not a valid image: %v", i, err)
		}
		seeds[i] = compactBlocks(s)
		if !bytes.Equal(expandBlocks(seeds[i]), s[:len(expandBlocks(seeds[i]))]) {
			f.Fatalf("seed %d does not survive compaction", i)
		}
	}
	return seeds
}

// compactBlocks is the inverse of expandBlocks: the blocks after the system
// area, each without its trailing zeros.
func compactBlocks(img []byte) []byte {
	var out []byte
	for off := systemAreaBlocks * blockSize; off < len(img); off += blockSize {
		block := bytes.TrimRight(img[off:min(off+blockSize, len(img))], "\x00")
		out = binary.LittleEndian.AppendUint16(out, uint16(len(block)))
		out = append(out, block...)
	}
	return out
}

// expandBlocks turns a fuzz input into an image: a zero system area, then
// blocks given as a 2-byte little-endian length and that many bytes, padded
// with zeros to a block. Images are mostly zeros, so this keeps the inputs
// (and the fuzzer's minimization) small.
func expandBlocks(data []byte) []byte {
	img := make([]byte, systemAreaBlocks*blockSize, 64*blockSize)
	for len(data) >= 2 {
		n := min(int(binary.LittleEndian.Uint16(data)), blockSize, len(data)-2)
		block := make([]byte, blockSize)
		copy(block, data[2:2+n])
		img = append(img, block...)
		data = data[2+n:]
	}
	return img
}

// FuzzOpen feeds images to Open and reads whatever it accepts.
func FuzzOpen(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		img := expandBlocks(data)
		im, err := Open(bytes.NewReader(img), int64(len(img)))
		if err != nil {
			if !strings.HasPrefix(err.Error(), "iso: ") {
				t.Fatalf("error without context: %v", err)
			}
			return
		}
		exerciseImage(t, im)
	})
}
