package images

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"go.podman.io/image/v5/types"
)

// TestArchiveSourcesUnpackInTempDir: an oci-archive source is unpacked in CopyOptions.TempDir, else in $TMPDIR; never in
// containers/image's /var/tmp. Where the unpacked copy is is seen while it
// exists: from Progress, called while the source is open.
func TestArchiveSourcesUnpackInTempDir(t *testing.T) {
	src := t.TempDir()
	writeImage(t, src, "app", 3, []int64{64 * kib})
	w := t.TempDir()
	ociArchive := filepath.Join(w, "app-oci.tar")
	skopeoCopy(t, "oci:"+src+":app", "oci-archive:"+ociArchive)
	srcs := []Source{
		{Ref: "oci-archive:" + ociArchive, Name: "example.com/oci:1"},
	}

	// seen records, per image, the container_images_* entries of dir
	// while the image is being copied.
	seen := func(dir string) (func(string, int64, int64), func() map[string][]string) {
		var mu sync.Mutex
		got := map[string][]string{}
		return func(name string, _, _ int64) {
				m, _ := filepath.Glob(filepath.Join(dir, "container_images_*"))
				mu.Lock()
				defer mu.Unlock()
				for _, p := range m {
					got[name] = append(got[name], filepath.Base(p))
				}
			}, func() map[string][]string {
				mu.Lock()
				defer mu.Unlock()
				return got
			}
	}
	check := func(t *testing.T, dir string, got map[string][]string) {
		t.Helper()
		if !hasPrefix(got["example.com/oci:1"], "container_images_oci") {
			t.Errorf("oci-archive not unpacked in %s: saw %v", dir, got)
		}
		if left, _ := filepath.Glob(filepath.Join(dir, "container_images_*")); len(left) != 0 {
			t.Errorf("left in %s: %v", dir, left)
		}
	}

	t.Run("TempDir", func(t *testing.T) {
		tmp := t.TempDir()
		t.Setenv("TMPDIR", filepath.Join(t.TempDir(), "does-not-exist"))
		progress, got := seen(tmp)
		if _, err := Copy(context.Background(), filepath.Join(t.TempDir(), "layout"), srcs, CopyOptions{TempDir: tmp, Progress: progress}); err != nil {
			t.Fatal(err)
		}
		check(t, tmp, got())
	})
	t.Run("TMPDIR", func(t *testing.T) {
		tmp := t.TempDir()
		t.Setenv("TMPDIR", tmp)
		progress, got := seen(tmp)
		if _, err := Copy(context.Background(), filepath.Join(t.TempDir(), "layout"), srcs, CopyOptions{Progress: progress}); err != nil {
			t.Fatal(err)
		}
		check(t, tmp, got())
	})
	t.Run("TMPDIR that does not exist", func(t *testing.T) {
		missing := filepath.Join(t.TempDir(), "does-not-exist")
		t.Setenv("TMPDIR", missing)
		// A caller's SystemContext (its own blob info cache: nothing else
		// needs a temporary directory) gets TMPDIR for the archive too.
		sys := &types.SystemContext{BlobInfoCacheDir: t.TempDir()}
		_, err := Copy(context.Background(), filepath.Join(t.TempDir(), "layout"), srcs, CopyOptions{SystemContext: sys})
		if err == nil || !strings.Contains(err.Error(), missing) {
			t.Fatalf("got %v, want an error naming %s", err, missing)
		}
		if _, err := os.Stat(missing); err == nil {
			t.Fatalf("%s was created", missing)
		}
	})
}

func hasPrefix(names []string, prefix string) bool {
	for _, n := range names {
		if strings.HasPrefix(n, prefix) {
			return true
		}
	}
	return false
}
