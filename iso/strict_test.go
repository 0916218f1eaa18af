package iso

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
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
