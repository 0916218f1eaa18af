package compose

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/ferry-k8s/ferry/repo"

	"github.com/cavaliergopher/cpio"
	"github.com/google/rpmpack"
)

// FuzzCpio reads arbitrary payloads: errors, never panics, and no
// allocation beyond the bounds (names ≤ maxCpioName, data streamed).
func FuzzCpio(f *testing.F) {
	var b bytes.Buffer
	w := cpio.NewWriter(&b)
	for _, e := range []struct {
		name, body string
		mode       cpio.FileMode
	}{{"./usr", "", cpio.TypeDir | 0o755}, {"./usr/a", "hello", cpio.TypeReg | 0o644}, {"./usr/b", "a", cpio.TypeSymlink | 0o777}} {
		if err := w.WriteHeader(&cpio.Header{Name: e.name, Mode: e.mode, Size: int64(len(e.body))}); err != nil {
			f.Fatal(err)
		}
		w.Write([]byte(e.body))
	}
	w.Close()
	f.Add(b.Bytes())
	f.Add([]byte(cpioStrippedMagic + "00000000\x00\x00abc\x00"))
	f.Fuzz(func(t *testing.T, data []byte) {
		sizes := []int64{3, 0, 1 << 20}
		cr := newCpioReader(bytes.NewReader(data), func(i int) (int64, error) {
			if i < 0 || i >= len(sizes) {
				return 0, io.ErrUnexpectedEOF
			}
			return sizes[i], nil
		})
		for range 1000 {
			e, err := cr.Next()
			if err != nil {
				return
			}
			if len(e.name) > maxCpioName {
				t.Fatalf("name of %d bytes", len(e.name))
			}
			if _, err := io.Copy(io.Discard, cr); err != nil {
				return
			}
		}
	})
}

// FuzzPackage composes an image from an arbitrary .rpm file: errors, never
// panics, and an image that composes is what the package says: its result
// names the package's NEVRA as repo reads it (from the header's name,
// epoch, version, release and arch), its blobs verify, and its layer holds
// every file of the header, but ghosts, with the header's type, size and
// link target. Seeds are packages with every compressor, hard links,
// symlinks and owners.
func FuzzPackage(f *testing.F) {
	for _, comp := range []string{"gzip", "zstd", "xz", "lzma"} {
		p := pkg{name: "f", compressor: comp, files: []rpmpack.RPMFile{
			reg("/usr/bin/a", "aaaa", 0o755, "root"),
			reg("/usr/bin/b", "aaaa", 0o755, "root"),
			symlink("/usr/bin/c", "a"),
			dirent("/var/lib/f", 0o700, "root"),
		}, tags: map[int]rpmpack.IndexEntry{1096: rpmpack.EntryInt32([]int32{1, 1, 2, 3})}}
		f.Add(p.bytes(f))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		path := filepath.Join(dir, "f.rpm")
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		img := Image{Name: "registry.ferry.dev/fuzz/f:1", Packages: []string{path}, Entrypoint: []string{"/usr/bin/a"}}
		layout := filepath.Join(dir, "layout")
		res, err := Write(context.Background(), layout, []Image{img})
		if err != nil {
			return
		}
		checkComposed(t, path, data, layout, img.Name, res)
	})
}

// checkComposed checks an image composed from the one package at path
// (whose bytes are data) against the package's header.
func checkComposed(t *testing.T, path string, data []byte, layout, name string, res []Result) {
	t.Helper()
	meta, err := repo.ReadPackageFrom(bytes.NewReader(data), int64(len(data)), path)
	if err != nil {
		t.Fatalf("composed from a package repo does not read: %v", err)
	}
	nevra := fmt.Sprintf("%s-%s-%s.%s", meta.Name, meta.Version, meta.Release, meta.Arch)
	if meta.Epoch != 0 {
		nevra = fmt.Sprintf("%s-%d:%s-%s.%s", meta.Name, meta.Epoch, meta.Version, meta.Release, meta.Arch)
	}
	if len(res) != 1 || res[0].Name != name || !slices.Equal(res[0].Packages, []string{nevra}) || meta.NEVRA() != nevra {
		t.Fatalf("result %+v, want %s from %s (repo says %s)", res, name, nevra, meta.NEVRA())
	}
	f, pkg, err := openPackage(path)
	if err != nil {
		t.Fatalf("composed from a package that does not open: %v", err)
	}
	f.Close()
	if pkg.nevra != nevra || pkg.arch != meta.Arch {
		t.Fatalf("compose reads %s (%s), repo %s (%s)", pkg.nevra, pkg.arch, nevra, meta.Arch)
	}
	got := readImage(t, layout, name) // every blob's digest and size
	for _, fi := range pkg.files {
		rel, err := cleanPath(fi.path)
		if fi.ghost() || rel == "" {
			continue
		}
		if err != nil {
			t.Fatalf("composed with %q in the header: %v", fi.path, err)
		}
		switch fi.mode & modeType {
		case modeDir:
			if h := got.entry(rel + "/"); h == nil || h.Typeflag != tar.TypeDir {
				t.Errorf("directory %s: layer entry %+v", fi.path, h)
			}
		case modeSymlink:
			if h := got.entry(rel); h == nil || h.Typeflag != tar.TypeSymlink || h.Linkname != fi.linkTo {
				t.Errorf("symlink %s to %q: layer entry %+v", fi.path, fi.linkTo, h)
			}
		case modeReg:
			h := got.entry(rel)
			switch {
			case h == nil:
				t.Errorf("file %s: not in the layer", fi.path)
			case h.Typeflag == tar.TypeLink && fi.ino != 0:
				// a hard link to another member, which holds the data
			case h.Typeflag != tar.TypeReg || h.Size != fi.size || int64(len(got.content[rel])) != fi.size:
				t.Errorf("file %s of %d bytes: layer entry %+v", fi.path, fi.size, h)
			}
		default:
			t.Errorf("composed with %s of mode %06o", fi.path, fi.mode)
		}
	}
}
