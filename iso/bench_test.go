package iso

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkWrite writes an image of 256 MiB of content (16 files of 16 MiB
// plus 1000 small files) to io.Discard. The sources sit in the page cache,
// so this measures the writer, not the disk.
func BenchmarkWrite(b *testing.B) {
	dir := b.TempDir()
	chunk := content(50, 1<<20)
	var entries []Entry
	var total int64
	for i := 0; i < 16; i++ {
		p := filepath.Join(dir, fmt.Sprintf("layer-%02d", i))
		f, err := os.Create(p)
		if err != nil {
			b.Fatal(err)
		}
		for j := 0; j < 16; j++ {
			if _, err := f.Write(chunk); err != nil {
				b.Fatal(err)
			}
		}
		if err := f.Close(); err != nil {
			b.Fatal(err)
		}
		entries = append(entries, Entry{Path: fmt.Sprintf("images/blobs/sha256/%s", hex64(uint64(i))), Source: p, Size: 16 << 20})
		total += 16 << 20
	}
	small := filepath.Join(dir, "small")
	if err := os.WriteFile(small, chunk[:1000], 0o644); err != nil {
		b.Fatal(err)
	}
	for i := 0; i < 1000; i++ {
		entries = append(entries, Entry{Path: fmt.Sprintf("repo/package-%04d-1.0.0-1.x86_64.rpm", i), Source: small, Size: 1000})
		total += 1000
	}
	b.SetBytes(total)
	for b.Loop() {
		if err := Write(io.Discard, entries, WriteOptions{ModTime: testTime}); err != nil {
			b.Fatal(err)
		}
	}
}
