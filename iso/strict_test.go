package iso

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// openStrict opens an in-memory image strictly.
func openStrict(img []byte) (*Image, error) {
	return OpenStrict(bytes.NewReader(img), int64(len(img)), StrictOptions{})
}

// strictErr requires OpenStrict to refuse img with an error naming tree
// and containing want.
func strictErr(t *testing.T, img []byte, tree, want string) {
	t.Helper()
	_, err := openStrict(img)
	var se *StrictError
	if !errors.As(err, &se) || !errors.Is(err, ErrInconsistent) {
		t.Fatalf("OpenStrict: %v, want a *StrictError", err)
	}
	if se.Tree != tree || !strings.Contains(err.Error(), want) {
		t.Fatalf("OpenStrict: %v, want tree %q and %q", err, tree, want)
	}
}

// TestStrictAcceptsGenuine: images of our writer and of xorriso -R -J pass,
// and OpenStrict lists what Open lists.
func TestStrictAcceptsGenuine(t *testing.T) {
	images := map[string][]byte{
		"roundtrip": imageOf(t, roundTripFiles()),
		"small":     imageOf(t, smallFiles()),
		"empty":     imageOf(t, nil),
	}
	func() {
		lowerExtentSize(t, 4*blockSize)
		images["multi-extent"] = imageOf(t, multiExtentFiles())
	}()
	src := filepath.Join(t.TempDir(), "src")
	writeSources(t, src, append(smallFiles(), testFile{path: "emptydir", dir: true}, testFile{path: "日本語/x", content: []byte("u")},
		testFile{path: "deep/a/b/c/d/e/f/g/h/i/file", content: []byte("deep")}))
	for _, flags := range [][]string{{"-R", "-J"}, {"-R", "-J", "-joliet-long"}, {"-R"}} {
		p := filepath.Join(t.TempDir(), "x.iso")
		runXorriso(t, false, append(append([]string{"-as", "mkisofs"}, flags...), "-o", p, src)...)
		img, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		images["xorriso "+strings.Join(flags, " ")] = img
	}
	// Bootable (El Torito): the catalog and the boot image are files.
	boot := filepath.Join(t.TempDir(), "boot")
	writeSources(t, boot, []testFile{{path: "boot.img", content: content(80, 4096)}, {path: "installer", content: []byte("x")}})
	bootISO := filepath.Join(t.TempDir(), "boot.iso")
	runXorriso(t, false, "-as", "mkisofs", "-R", "-J", "-b", "boot.img", "-no-emul-boot", "-boot-load-size", "4", "-o", bootISO, boot)
	img, err := os.ReadFile(bootISO)
	if err != nil {
		t.Fatal(err)
	}
	images["xorriso el torito"] = img
	for name, img := range images {
		t.Run(name, func(t *testing.T) {
			im, err := openStrict(img)
			if err != nil {
				t.Fatalf("OpenStrict: %v", err)
			}
			want := openBytes(t, img).Files()
			got := im.Files()
			if len(got) != len(want) {
				t.Fatalf("OpenStrict lists %d entries, Open %d", len(got), len(want))
			}
			for i := range got {
				g, w := got[i], want[i]
				if g.Path != w.Path || g.Size != w.Size || g.Mode != w.Mode || !sameExtents(g.Extents, w.Extents) || !g.ModTime.Equal(w.ModTime) {
					t.Errorf("entry %d: OpenStrict %+v, Open %+v", i, g, w)
				}
			}
		})
	}
}

// TestOpenRoot reads only the named root entries, and refuses a file whose
// extents overlap: a manifest.json claiming many times the image's size
// through extents that all name the same blocks.
func TestOpenRoot(t *testing.T) {
	lowerExtentSize(t, blockSize)
	manifest := content(70, 3*blockSize)
	img := imageOf(t, []testFile{
		{path: "manifest.json", content: manifest},
		{path: "manifest.json.asc", content: []byte("sig")},
		{path: "installer", content: []byte("x")},
		{path: "sub/data", content: []byte("y")},
	})
	im, err := OpenRoot(bytes.NewReader(img), int64(len(img)), "manifest.json", "manifest.json.asc", "sub/data")
	if err != nil {
		t.Fatal(err)
	}
	if got := len(im.Files()); got != 2 {
		t.Errorf("OpenRoot lists %d entries, want the 2 named root files", got)
	}
	checkContent(t, im, "manifest.json", manifest)

	// Every extent of manifest.json names its first block: Open reads the
	// first block three times, OpenRoot and OpenStrict refuse.
	off := findRecord(t, img, "manifest.json")
	first := le32(img[off+2:])
	for i := 1; i < 3; i++ {
		off += int(img[off])
		putBoth32(img[off+2:], first)
	}
	if fi, err := openBytes(t, img).Stat("manifest.json"); err != nil || fi.Size != 3*blockSize || fi.Extents[1].Offset != fi.Extents[0].Offset {
		t.Fatalf("Open: %+v, %v; want three extents at one place", fi, err)
	}
	_, err = OpenRoot(bytes.NewReader(img), int64(len(img)), "manifest.json")
	var se *StrictError
	if !errors.As(err, &se) || se.Tree != treeLayout || !strings.Contains(err.Error(), "/manifest.json: extents overlap") {
		t.Fatalf("OpenRoot: %v, want overlapping extents refused", err)
	}
	strictErr(t, img, treeJoliet, "/manifest.json: extents")
}

// TestStrictEntryLimit: MaxEntries caps each tree.
func TestStrictEntryLimit(t *testing.T) {
	var files []testFile
	for i := 0; i < 50; i++ {
		files = append(files, testFile{path: fmt.Sprintf("d/f%02d", i), content: nil})
	}
	img := imageOf(t, files)
	if _, err := OpenStrict(bytes.NewReader(img), int64(len(img)), StrictOptions{MaxEntries: 51}); err != nil {
		t.Fatal(err)
	}
	_, err := OpenStrict(bytes.NewReader(img), int64(len(img)), StrictOptions{MaxEntries: 50})
	if err == nil || !strings.Contains(err.Error(), "more than 50 entries") {
		t.Fatalf("OpenStrict: %v, want the limit", err)
	}
}

// TestStrictPrimaryNames: a primary name that, as is or lower-cased, is
// the Rock Ridge name of a sibling is refused; our writer avoids it.
func TestStrictPrimaryNames(t *testing.T) {
	img := imageOf(t, []testFile{{path: "A", content: []byte("1")}, {path: "a", content: []byte("2")}, {path: "B", content: []byte("3")}})
	im, err := openStrict(img)
	if err != nil {
		t.Fatal(err)
	}
	if len(im.Files()) != 3 {
		t.Fatalf("%d entries", len(im.Files()))
	}
	// B's record, found by its Rock Ridge name.
	off := findRecord(t, img, "B")
	rec, err := parseRecord(img[off : off+int(img[off])])
	if err != nil {
		t.Fatal(err)
	}
	if string(rec.id) != "B.;1" {
		t.Fatalf("primary id of B is %q", rec.id)
	}
	img[off+33] = 'a' // "a.;1": shown as "a", Rock Ridge's name of another file
	strictErr(t, img, treePrimary, "/a: primary name shows another entry than Rock Ridge /a")
}

// FuzzOpenStrict feeds images to OpenStrict and OpenRoot. Whatever
// OpenStrict accepts, Open must read the same way (same paths, sizes and
// extents), with no two file extents overlapping.
func FuzzOpenStrict(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		img := expandBlocks(data)
		if _, err := OpenRoot(bytes.NewReader(img), int64(len(img)), "manifest.json", "sub"); err != nil && !strings.HasPrefix(err.Error(), "iso: ") {
			t.Fatalf("OpenRoot: error without context: %v", err)
		}
		im, err := openStrict(img)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "iso: ") {
				t.Fatalf("error without context: %v", err)
			}
			return
		}
		loose, err := Open(bytes.NewReader(img), int64(len(img)))
		if err != nil {
			t.Fatalf("OpenStrict accepts what Open refuses: %v", err)
		}
		got, want := im.Files(), loose.Files()
		if len(got) != len(want) {
			t.Fatalf("OpenStrict lists %d entries, Open %d", len(got), len(want))
		}
		var exts []Extent
		for i := range got {
			if got[i].Path != want[i].Path || got[i].Size != want[i].Size || !sameExtents(got[i].Extents, want[i].Extents) {
				t.Fatalf("entry %d: OpenStrict %+v, Open %+v", i, got[i], want[i])
			}
			for _, e := range got[i].Extents {
				if e.Length > 0 {
					exts = append(exts, e)
				}
			}
		}
		sort.Slice(exts, func(i, j int) bool { return exts[i].Offset < exts[j].Offset })
		for i := 1; i < len(exts); i++ {
			if exts[i].Offset < exts[i-1].Offset+exts[i-1].Length {
				t.Fatalf("accepted overlapping extents %+v and %+v", exts[i-1], exts[i])
			}
		}
		exerciseImage(t, im)
	})
}

// TestStrictElTorito: a boot image that is no listed file is refused (a
// firmware would run bytes nobody verified).
func TestStrictElTorito(t *testing.T) {
	src := filepath.Join(t.TempDir(), "src")
	writeSources(t, src, []testFile{{path: "boot.img", content: content(81, 4096)}, {path: "installer", content: []byte("x")}})
	p := filepath.Join(t.TempDir(), "boot.iso")
	runXorriso(t, false, "-as", "mkisofs", "-R", "-J", "-b", "boot.img", "-no-emul-boot", "-boot-load-size", "4", "-o", p, src)
	img, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	br := descriptorAt(t, img, 0)
	catalog := int(le32(img[br*blockSize+71:])) * blockSize
	if img[catalog+32] != 0x88 {
		t.Fatalf("default entry is not bootable: %x", img[catalog+32])
	}
	putLE32(img[catalog+32+8:], le32(img[catalog+32+8:])+1) // one block into boot.img
	strictErr(t, img, treeElTorito, "is not a listed file")
}

// TestStrictContentTransform: a ZF (zisofs) entry would make xorriso and
// Linux decompress what Open serves as stored; it is refused.
func TestStrictContentTransform(t *testing.T) {
	img := imageOf(t, smallFiles())
	off := findRecord(t, img, "last")
	rec := img[off : off+int(img[off])]
	i := bytes.Index(rec, []byte("TF"))
	if i < 0 {
		t.Fatal("no TF entry")
	}
	copy(rec[i:], "ZF")
	strictErr(t, img, treeRockRidge, "/last: ZF entry")
}
