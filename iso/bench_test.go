package iso

import (
	"bytes"
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

// BenchmarkOpenStrict compares OpenStrict with Open on an image of 5000
// small files and 8 of 8 MiB: the strict checks read metadata (and the
// few unclaimed blocks), never file content.
func BenchmarkOpenStrict(b *testing.B) {
	dir := b.TempDir()
	small := filepath.Join(dir, "small")
	big := filepath.Join(dir, "big")
	if err := os.WriteFile(small, content(51, 1000), 0o644); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(big, content(52, 8<<20), 0o644); err != nil {
		b.Fatal(err)
	}
	var entries []Entry
	for i := 0; i < 5000; i++ {
		entries = append(entries, Entry{Path: fmt.Sprintf("repo/package-%04d-1.0.0-1.x86_64.rpm", i), Source: small, Size: 1000})
	}
	for i := 0; i < 8; i++ {
		entries = append(entries, Entry{Path: fmt.Sprintf("images/blobs/sha256/%s", hex64(uint64(i))), Source: big, Size: 8 << 20})
	}
	img := writeImage(b, entries, WriteOptions{ModTime: testTime})
	for _, bc := range []struct {
		name string
		open func() error
	}{
		{"Open", func() error { _, err := Open(bytes.NewReader(img), int64(len(img))); return err }},
		{"OpenStrict", func() error { _, err := OpenStrict(bytes.NewReader(img), int64(len(img)), StrictOptions{}); return err }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				if err := bc.open(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
