package iso

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

func TestMultiExtent(t *testing.T) {
	lowerExtentSize(t, 4*blockSize)
	files := multiExtentFiles()
	img := imageOf(t, files)
	im := openBytes(t, img)
	checkTree(t, im, files)

	wantExtents := map[string][]int64{
		"a-small":    {5},
		"b-exact":    {4 * blockSize},
		"c-one-more": {4 * blockSize, 1},
		"d-big":      {4 * blockSize, 4 * blockSize, 2*blockSize + 123},
		"e-two-full": {4 * blockSize, 4 * blockSize},
	}
	for p, lengths := range wantExtents {
		fi, err := im.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if len(fi.Extents) != len(lengths) {
			t.Errorf("%s: %d extents, want %d", p, len(fi.Extents), len(lengths))
			continue
		}
		for i, e := range fi.Extents {
			if e.Length != lengths[i] {
				t.Errorf("%s: extent %d has %d bytes, want %d", p, i, e.Length, lengths[i])
			}
			if i > 0 && e.Offset != fi.Extents[i-1].Offset+fi.Extents[i-1].Length {
				t.Errorf("%s: extent %d is not contiguous", p, i)
			}
		}
	}

	// Reads across extent boundaries, by ReadAt and by Seek+Read.
	f := files[3]
	ra, size, err := im.ReaderAt(f.path)
	if err != nil {
		t.Fatal(err)
	}
	if got := readAllAt(t, ra, size); !bytes.Equal(got, f.content) {
		t.Error("multi-extent ReadAt content differs")
	}
	r, _ := im.Open(f.path)
	at := int64(4*blockSize - 3)
	if _, err := r.Seek(at, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 10)
	if _, err := io.ReadFull(r, buf); err != nil || !bytes.Equal(buf, f.content[at:at+10]) {
		t.Errorf("read across the extent boundary: %v", err)
	}

	// The Joliet tree has the same extents.
	jol, err := open(bytes.NewReader(img), int64(len(img)), namesJoliet)
	if err != nil {
		t.Fatal(err)
	}
	checkTree(t, jol, files)
}

// sparseImage keeps only the non-zero blocks of an image written to it.
type sparseImage struct {
	blocks map[int64][]byte
	size   int64
}

func (s *sparseImage) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		blk, within := s.size/blockSize, s.size%blockSize
		chunk := p[:min(int64(len(p)), blockSize-within)]
		if b, ok := s.blocks[blk]; ok || !bytes.Equal(chunk, zeroBlock[:len(chunk)]) {
			if !ok {
				b = make([]byte, blockSize)
				s.blocks[blk] = b
			}
			copy(b[within:], chunk)
		}
		s.size += int64(len(chunk))
		p = p[len(chunk):]
	}
	return n, nil
}

func (s *sparseImage) ReadAt(p []byte, off int64) (int, error) {
	n := 0
	for len(p) > 0 && off < s.size {
		blk, within := off/blockSize, off%blockSize
		chunk := p[:min(int64(len(p)), blockSize-within, s.size-off)]
		if b, ok := s.blocks[blk]; ok {
			copy(chunk, b[within:])
		} else {
			clear(chunk)
		}
		n += len(chunk)
		off += int64(len(chunk))
		p = p[len(chunk):]
	}
	if len(p) > 0 {
		return n, io.EOF
	}
	return n, nil
}

// sparseDir is a temporary directory for sparse files: on tmpfs if there is
// one, where reading a hole costs next to nothing (on some disk file systems
// reading 4 GiB of holes takes half a minute), else the usual temporary
// directory.
func sparseDir(t *testing.T) string {
	if dir, err := os.MkdirTemp("/dev/shm", "iso-test-"); err == nil {
		t.Cleanup(func() { os.RemoveAll(dir) })
		return dir
	}
	return t.TempDir()
}

// TestMultiExtentReal writes a real 4.5 GiB (sparse) file with the default
// extent limit. The image is kept sparse in memory and, for xorriso, on
// disk, so the test costs neither disk nor much time.
func TestMultiExtentReal(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 4.5 GiB through the writer")
	}
	start := time.Now()
	const size = 4<<30 + 512<<20 + 7
	dir := sparseDir(t)
	src := filepath.Join(dir, "layer")
	f, err := os.Create(src)
	if err != nil {
		t.Fatal(err)
	}
	markers := map[int64]byte{0: 1, maxExtentSize - 1: 2, maxExtentSize: 3, size - 1: 4}
	for off, b := range markers {
		if _, err := f.WriteAt([]byte{b}, off); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}

	img := &sparseImage{blocks: map[int64][]byte{}}
	entries := []Entry{{Path: "images/layer.tar", Source: src, Size: size}, {Path: "z", Source: src, Size: 0}}
	if err := Write(img, entries, WriteOptions{ModTime: testTime}); err != nil {
		t.Fatal(err)
	}
	t.Logf("written in %v", time.Since(start))
	im, err := Open(img, img.size)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := im.Stat("images/layer.tar")
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size != size || len(fi.Extents) != 2 || fi.Extents[0].Length != maxExtentSize {
		t.Fatalf("layer: size %d, extents %v", fi.Size, fi.Extents)
	}
	ra, _, _ := im.ReaderAt(fi.Path)
	for off, want := range markers {
		b := make([]byte, 1)
		if _, err := ra.ReadAt(b, off); err != nil || b[0] != want {
			t.Errorf("byte at %d: %d, %v; want %d", off, b[0], err, want)
		}
	}

	// xorriso reads the image as one file of the right size.
	p := filepath.Join(dir, "big.iso")
	out, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	for blk, b := range img.blocks {
		if _, err := out.WriteAt(b, blk*blockSize); err != nil {
			t.Fatal(err)
		}
	}
	if err := out.Truncate(img.size); err != nil {
		t.Fatal(err)
	}
	out.Close()
	sizes, _ := xorrisoSizes(xorriso(t, "-indev", "stdio:"+p, "-find", "/", "-exec", "lsdl"))
	if sizes["/images/layer.tar"] != size {
		t.Errorf("xorriso: layer.tar has size %d, want %d", sizes["/images/layer.tar"], size)
	}
	// isoinfo (Debian genisoimage, installed by make deps) cross-checks
	// with another reader; missing, the test fails rather than skip it.
	isoinfo, err := exec.LookPath("isoinfo")
	if err != nil {
		t.Fatalf("isoinfo (genisoimage) is needed for the cross-check: %v", err)
	}
	listing, err := exec.Command(isoinfo, "-l", "-R", "-i", p).CombinedOutput()
	// isoinfo lists the extents of a multi-extent file one by one.
	first, second := fmt.Sprint(maxExtentSize), fmt.Sprint(size-maxExtentSize)
	if err != nil || !bytes.Contains(listing, []byte(first)) || !bytes.Contains(listing, []byte(second)) {
		t.Errorf("isoinfo -l -R: %v\n%s", err, listing)
	}
	t.Logf("4.5 GiB multi-extent round trip took %v", time.Since(start))
}
