package builder

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"

	digest "github.com/opencontainers/go-digest"
	imgspecv1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/ferry-k8s/ferry/bundle"
	"github.com/ferry-k8s/ferry/images"
	"github.com/ferry-k8s/ferry/images/imagetest"
	"github.com/ferry-k8s/ferry/images/registry/distributiontest"
)

// TestBuildFromDistributionRegistry runs `builder lock` and `builder build`
// against distribution's registry, with images pushed by skopeo:
//
//   - the lock pins a tag, then the tag moves: the build carries the locked
//     image, and a three-platform index locked for two platforms;
//   - a second build of the lock with the same cache asks the registry
//     nothing, and gives the same ISO as a build without cache;
//   - builds sharing one cache at the same time agree;
//   - a locked digest deleted from the registry fails a cold build, naming
//     the image and the digest; a warm cache still builds it, with the
//     registry stopped too.
func TestBuildFromDistributionRegistry(t *testing.T) {
	reg := distributiontest.Start(t)
	src := t.TempDir()
	d1, err := imagetest.WriteImage(src, "app-1", 31, []int64{96 << 10, 16 << 10})
	if err != nil {
		t.Fatal(err)
	}
	d2, err := imagetest.WriteImage(src, "app-2", 32, []int64{96 << 10, 16 << 10})
	if err != nil {
		t.Fatal(err)
	}
	dIndex, perPlatform, err := imagetest.WritePlatformIndex(src, "multi", 33,
		imgspecv1.Platform{OS: "linux", Architecture: "amd64"},
		imgspecv1.Platform{OS: "linux", Architecture: "arm64"},
		imgspecv1.Platform{OS: "linux", Architecture: "s390x"})
	if err != nil {
		t.Fatal(err)
	}
	reg.Push(t, "oci:"+src+":app-1", "ferry/app:1.0")
	reg.Push(t, "oci:"+src+":multi", "ferry/multi:2")
	registryDigest := func(ref string) digest.Digest {
		t.Helper()
		return digest.FromBytes(distributiontest.Skopeo(t, "inspect", "--raw", "--cert-dir", reg.CertDir, "docker://"+reg.Host+"/"+ref))
	}
	if got := registryDigest("ferry/app:1.0"); got != d1 {
		t.Fatalf("the registry serves ferry/app:1.0 as %s, pushed %s", got, d1)
	}

	dir := t.TempDir()
	specPath := filepath.Join(dir, "bundle.yaml")
	appName, multiName := reg.Host+"/ferry/app:1.0", reg.Host+"/ferry/multi:2"
	writeFile(t, specPath, `apiVersion: ferry.dev/v1alpha1
kind: Bundle
metadata:
  name: upstream
  version: 1.0.0
spec:
  images:
    - source: docker://`+appName+`
    - source: docker://`+multiName+`
      platforms: [linux/amd64, linux/arm64]
`)
	regOpts := RegistryOptions{CertDir: reg.CertDir}
	lockRes, err := Lock(context.Background(), LockOptions{SpecPath: specPath, Registry: regOpts})
	if err != nil {
		t.Fatal(err)
	}
	if li := lockRes.Lock.Image(appName); li == nil || li.Digest != d1.String() {
		t.Fatalf("lock of %s: %+v, want %s", appName, li, d1)
	}
	wantPlatforms := map[string]string{"linux/amd64": perPlatform["linux/amd64"].String(), "linux/arm64": perPlatform["linux/arm64"].String()}
	if li := lockRes.Lock.Image(multiName); li == nil || li.Digest != dIndex.String() || !reflect.DeepEqual(li.Platforms, wantPlatforms) {
		t.Fatalf("lock of %s: %+v, want %s with %v", multiName, li, dIndex, wantPlatforms)
	}

	// The tag moves.
	reg.Push(t, "oci:"+src+":app-2", "ferry/app:1.0")
	if got := registryDigest("ferry/app:1.0"); got != d2 {
		t.Fatalf("after the push, the registry serves ferry/app:1.0 as %s, want %s", got, d2)
	}

	signer := testSigner(t)
	n := 0
	build := func(cacheDir string) (*Result, string, error) {
		t.Helper()
		n++
		out := filepath.Join(dir, "out", strings.Repeat("x", n)+".iso")
		work := filepath.Join(dir, "work", strings.Repeat("x", n))
		if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
			t.Fatal(err)
		}
		r, err := Build(context.Background(), Options{SpecPath: specPath, Output: out, Signer: signer,
			SourceDateEpoch: epoch, Registry: regOpts, CacheDir: cacheDir, WorkDir: work})
		return r, filepath.Join(work, "tree"), err
	}
	mustBuild := func(cacheDir string) (*Result, string) {
		t.Helper()
		r, tree, err := build(cacheDir)
		if err != nil {
			t.Fatal(err)
		}
		return r, tree
	}

	cache := t.TempDir()
	reg.ResetRequests()
	first, tree := mustBuild(cache)
	checkLockedTree(t, tree, appName, multiName, d1, d2, dIndex, perPlatform)
	// Cold: each config and layer of the locked images fetched once.
	wantBlobs := map[digest.Digest]bool{}
	for _, d := range []digest.Digest{d1, perPlatform["linux/amd64"], perPlatform["linux/arm64"]} {
		for b := range manifestBlobs(t, src, d) {
			wantBlobs[b] = true
		}
	}
	gets := map[string]int{}
	for _, q := range reg.Requests() {
		if q.Method == "GET" && q.Kind() == "blob" {
			gets[q.Path[strings.LastIndex(q.Path, "/")+1:]]++
		}
	}
	for b := range wantBlobs {
		if gets[b.String()] != 1 {
			t.Errorf("blob %s fetched %d times, want once", b, gets[b.String()])
		}
	}
	if len(gets) != len(wantBlobs) {
		t.Errorf("blobs fetched %v, want the %d of the locked images", gets, len(wantBlobs))
	}

	// Warm: not one request, and the same ISO.
	reg.ResetRequests()
	second, _ := mustBuild(cache)
	if reqs := reg.Requests(); len(reqs) != 0 {
		t.Errorf("a rebuild with a warm cache made %d requests: %v", len(reqs), reqs)
	}
	if second.SHA256 != first.SHA256 {
		t.Errorf("rebuild with a warm cache: ISO %s, first %s", second.SHA256, first.SHA256)
	}
	// Without a cache: the same ISO.
	if plain, _ := mustBuild(""); plain.SHA256 != first.SHA256 {
		t.Errorf("build without a cache: ISO %s, with %s", plain.SHA256, first.SHA256)
	}

	// Two builds sharing a cold cache at once.
	shared := t.TempDir()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var concurrent []*Result
	var errs []error
	outs := []struct{ out, work string }{}
	for range 2 {
		n++
		outs = append(outs, struct{ out, work string }{filepath.Join(dir, "out", strings.Repeat("x", n)+".iso"), filepath.Join(dir, "work", strings.Repeat("x", n))})
	}
	for _, o := range outs {
		wg.Go(func() {
			r, err := Build(context.Background(), Options{SpecPath: specPath, Output: o.out, Signer: signer,
				SourceDateEpoch: epoch, Registry: regOpts, CacheDir: shared, WorkDir: o.work})
			mu.Lock()
			defer mu.Unlock()
			concurrent, errs = append(concurrent, r), append(errs, err)
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("concurrent build %d: %v", i, err)
		}
		if concurrent[i].SHA256 != first.SHA256 {
			t.Errorf("concurrent build %d: ISO %s, want %s", i, concurrent[i].SHA256, first.SHA256)
		}
	}
	reg.ResetRequests()
	if r, _ := mustBuild(shared); r.SHA256 != first.SHA256 || len(reg.Requests()) != 0 {
		t.Errorf("build after the concurrent ones: ISO %s (want %s), requests %v", r.SHA256, first.SHA256, reg.Requests())
	}

	// The locked digest is deleted from the registry.
	reg.Delete(t, "ferry/app@"+d1.String())
	_, _, err = build(t.TempDir())
	if err == nil {
		t.Fatal("a cold build of a digest deleted from the registry succeeded")
	}
	t.Logf("cold build of a deleted digest: %v", err)
	for _, want := range []string{appName, d1.String()} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
	// The warm cache holds it, registry or not.
	if r, _ := mustBuild(cache); r.SHA256 != first.SHA256 {
		t.Errorf("warm build after the deletion: ISO %s, want %s", r.SHA256, first.SHA256)
	}
	reg.Stop()
	if r, _ := mustBuild(cache); r.SHA256 != first.SHA256 {
		t.Errorf("warm build with the registry stopped: ISO %s, want %s", r.SHA256, first.SHA256)
	}
	if _, _, err := build(t.TempDir()); err == nil {
		t.Error("a cold build with the registry stopped succeeded")
	}
}

// checkLockedTree checks the bundle's images: the app as locked (not the
// image its tag now names) and the index with just the two locked
// platforms, every instance manifest keeping its digest.
func checkLockedTree(t *testing.T, tree, appName, multiName string, d1, d2, dIndex digest.Digest, perPlatform map[string]digest.Digest) {
	t.Helper()
	layout := filepath.Join(tree, bundle.ImagesDir)
	imgs, err := images.ReadIndex(os.DirFS(layout), ".")
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]images.Result{}
	for _, im := range imgs {
		byName[im.Name] = im
	}
	if app := byName[appName]; app.Digest != d1 {
		t.Errorf("bundle carries %s as %s, want the locked %s (the tag now names %s)", appName, app.Digest, d1, d2)
	}
	multi := byName[multiName]
	if multi.OriginalDigest != dIndex || multi.Digest == dIndex || !reflect.DeepEqual(multi.Platforms, []string{"linux/amd64", "linux/arm64"}) {
		t.Errorf("bundle carries %s as %+v, want the locked %s filtered to linux/amd64 and linux/arm64", multiName, multi, dIndex)
	}
	has := func(d digest.Digest) bool {
		_, err := os.Stat(filepath.Join(layout, "blobs", "sha256", d.Encoded()))
		return err == nil
	}
	for _, d := range []digest.Digest{d1, perPlatform["linux/amd64"], perPlatform["linux/arm64"]} {
		if !has(d) {
			t.Errorf("bundle lacks manifest %s", d)
		}
	}
	for _, d := range []digest.Digest{d2, perPlatform["linux/s390x"]} {
		if has(d) {
			t.Errorf("bundle holds manifest %s, which is not locked", d)
		}
	}
}

// manifestBlobs lists the config and layers of the manifest d in layout.
func manifestBlobs(t *testing.T, layout string, d digest.Digest) map[digest.Digest]bool {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(layout, "blobs", "sha256", d.Encoded()))
	if err != nil {
		t.Fatal(err)
	}
	var m imgspecv1.Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	out := map[digest.Digest]bool{m.Config.Digest: true}
	for _, l := range m.Layers {
		out[l.Digest] = true
	}
	return out
}
