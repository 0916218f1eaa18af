package builder

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferry-k8s/ferry/bundle"
	"github.com/ferry-k8s/ferry/images/imagetest"
	"github.com/ferry-k8s/ferry/images/registry/distributiontest"
	"github.com/ferry-k8s/ferry/signing"
)

// testSigner is a key made at the tests' epoch. Made now, it would date
// every signature now, and the builder's check (at the signature's time)
// would find the epoch's 365-day bundles expired from 2027-02-01 on: a
// calendar time bomb, found by running the suite with the clock 400 days
// ahead (docs/validity.md).
func testSigner(t *testing.T) *signing.Signer {
	t.Helper()
	sec, _, err := signing.GenerateKey(signing.KeyOptions{Name: "Lock Test", Email: "lock@example.com", Created: epoch})
	if err != nil {
		t.Fatal(err)
	}
	s, err := signing.LoadSigner(bytes.NewReader(sec), nil)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestLockPinsMovedTags: `builder lock` pins a tag; after the registry moves
// the tag to another image, a build from the lock still carries the locked
// image; a spec edited after locking is refused.
func TestLockPinsMovedTags(t *testing.T) {
	// The upstream registry: the distribution registry, the images pushed
	// into it with skopeo.
	upstream := distributiontest.Start(t)
	layout := t.TempDir()
	d1, err := imagetest.WriteImage(layout, "app-1", 1, []int64{4096})
	if err != nil {
		t.Fatal(err)
	}
	dIndex, perPlatform, err := imagetest.WriteIndex(layout, "multi", 3)
	if err != nil {
		t.Fatal(err)
	}
	upstream.Push(t, "oci:"+layout+":app-1", "ferry/app:1.0")
	upstream.Push(t, "oci:"+layout+":multi", "ferry/multi:2")
	host := upstream.Host
	reg := RegistryOptions{CertDir: upstream.CertDir}

	dir := t.TempDir()
	specPath := filepath.Join(dir, "bundle.yaml")
	spec := `apiVersion: ferry.dev/v1alpha1
kind: Bundle
metadata:
  name: locked
  version: 1.0.0
spec:
  images:
    - source: docker://` + host + `/ferry/app:1.0
    - source: docker://` + host + `/ferry/multi:2
      platforms: [linux/arm64]
`
	writeFile(t, specPath, spec)

	// Without a lock, the spec is refused as before, naming `builder lock`.
	signer := testSigner(t)
	out := filepath.Join(dir, "out", "a.iso")
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		t.Fatal(err)
	}
	_, err = Build(context.Background(), Options{SpecPath: specPath, Output: out, Signer: signer, SourceDateEpoch: epoch, Registry: reg})
	if err == nil || !errors.Is(err, bundle.ErrUnpinned) || !strings.Contains(err.Error(), "builder lock") {
		t.Fatalf("build without a lock: %v, want the unpinned error naming builder lock", err)
	}

	// Without the test CA, TLS verification fails: nothing is skipped.
	if _, err := Lock(context.Background(), LockOptions{SpecPath: specPath}); err == nil {
		t.Fatal("lock trusted a registry certificate of an unknown CA")
	}

	res, err := Lock(context.Background(), LockOptions{SpecPath: specPath, Registry: reg})
	if err != nil {
		t.Fatal(err)
	}
	if res.Output != filepath.Join(dir, bundle.DefaultLockName) {
		t.Errorf("lock written to %s, want next to the spec", res.Output)
	}
	lock, err := bundle.LoadLock(res.Output)
	if err != nil {
		t.Fatal(err)
	}
	appName := host + "/ferry/app:1.0"
	if li := lock.Image(appName); li == nil || li.Digest != d1.String() || li.Platforms != nil {
		t.Fatalf("lock entry of %s: %+v, want digest %s", appName, li, d1)
	}
	if li := lock.Image(host + "/ferry/multi:2"); li == nil || li.Digest != dIndex.String() ||
		len(li.Platforms) != 1 || li.Platforms["linux/arm64"] != perPlatform["linux/arm64"].String() {
		t.Fatalf("lock entry of the index: %+v, want %s with linux/arm64 %s", li, dIndex, perPlatform["linux/arm64"])
	}

	// The registry moves the tag: another image pushed to it. It keeps
	// serving by digest the image the tag left, as registries do until
	// garbage collection.
	d2, err := imagetest.WriteImage(layout, "app-2", 2, []int64{4096})
	if err != nil {
		t.Fatal(err)
	}
	if d2 == d1 {
		t.Fatal("test images are identical")
	}
	upstream.Push(t, "oci:"+layout+":app-2", "ferry/app:1.0")

	build := func(out string) *Result {
		t.Helper()
		r, err := Build(context.Background(), Options{SpecPath: specPath, Output: out, Signer: signer, SourceDateEpoch: epoch, Registry: reg})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	r1 := build(out)
	var got string
	for _, im := range r1.Images {
		if im.Name == appName {
			got = im.Digest
		}
	}
	if got != d1.String() {
		t.Fatalf("ISO carries %s as %q, want the locked %s (the tag now points to %s)", appName, got, d1, d2)
	}
	r2 := build(filepath.Join(dir, "out", "b.iso"))
	if r1.SHA256 != r2.SHA256 {
		t.Errorf("two builds from one lock differ: %s, %s", r1.SHA256, r2.SHA256)
	}

	// Re-locking follows the tag.
	if _, err := Lock(context.Background(), LockOptions{SpecPath: specPath, Registry: reg, Output: filepath.Join(dir, "new.lock")}); err != nil {
		t.Fatal(err)
	}
	if l, err := bundle.LoadLock(filepath.Join(dir, "new.lock")); err != nil || l.Image(appName).Digest != d2.String() {
		t.Fatalf("re-lock: %+v, %v, want %s", l, err, d2)
	}

	// A spec edited after locking: the lock is stale.
	writeFile(t, specPath, strings.Replace(spec, "version: 1.0.0", "version: 1.0.1", 1))
	_, err = Build(context.Background(), Options{SpecPath: specPath, Output: out, Signer: signer, SourceDateEpoch: epoch, Registry: reg})
	if err == nil || !errors.Is(err, bundle.ErrStaleLock) || !strings.Contains(err.Error(), "builder lock") {
		t.Fatalf("build with a stale lock: %v", err)
	}
	// An image added after locking is named.
	added := spec + "    - source: docker://" + host + "/ferry/other:3\n"
	writeFile(t, specPath, added)
	_, err = Build(context.Background(), Options{SpecPath: specPath, Output: out, Signer: signer, SourceDateEpoch: epoch, Registry: reg})
	if err == nil || !strings.Contains(err.Error(), host+"/ferry/other:3") || !strings.Contains(err.Error(), "not in the lock") {
		t.Fatalf("build with an image missing from the lock: %v", err)
	}
}
