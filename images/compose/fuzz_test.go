package compose

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"

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
// panics. Seeds are packages with every compressor, hard links, symlinks
// and owners.
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
		_, _ = Write(context.Background(), filepath.Join(dir, "layout"), []Image{img})
	})
}
