package images

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/ferry-k8s/ferry/images/imagetest"
)

// BenchmarkCopyOCILayout copies one image of ~200 MB of gzip layers (4 x 64 MiB
// of content, 3/4 incompressible) from an OCI layout on the same filesystem, with
// the blobs hard-linked (and verified) and with a plain copy. Each iteration
// copies into a fresh directory.
func BenchmarkCopyOCILayout(b *testing.B) {
	src := b.TempDir()
	sizes := []int64{64 << 20, 64 << 20, 64 << 20, 64 << 20}
	if _, err := imagetest.WriteImage(src, "big", 42, sizes); err != nil {
		b.Fatal(err)
	}
	var total int64
	entries, err := os.ReadDir(filepath.Join(src, "blobs", "sha256"))
	if err != nil {
		b.Fatal(err)
	}
	for _, e := range entries {
		info, err := e.Info()
		if err != nil {
			b.Fatal(err)
		}
		total += info.Size()
	}
	srcs := []Source{{Ref: "oci:" + src + ":big", Name: "example.com/big:1"}}

	for _, mode := range []struct {
		name string
		link bool
	}{{"hardlink", true}, {"copy", false}} {
		b.Run(mode.name, func(b *testing.B) {
			defer func(old bool) { linkBlobs = old }(linkBlobs)
			linkBlobs = mode.link
			b.SetBytes(total)
			dst := filepath.Join(b.TempDir(), "bundle")
			for b.Loop() {
				if _, err := Copy(context.Background(), dst, srcs, CopyOptions{}); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				if err := os.RemoveAll(dst); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
		})
	}
}
