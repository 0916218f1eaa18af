package images

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"

	digest "github.com/opencontainers/go-digest"
	"go.podman.io/image/v5/types"

	"github.com/ferry-k8s/ferry/images/imagetest"
	"github.com/ferry-k8s/ferry/images/registry/distributiontest"
)

// cacheFixture is a distribution registry holding a single image and a
// two-platform index, pushed with skopeo.
type cacheFixture struct {
	reg          *distributiontest.Registry
	sys          *types.SystemContext
	src          string // the OCI layout the images were pushed from
	app, index   digest.Digest
	arm64        digest.Digest // the index's linux/arm64 instance
	appRef       string        // docker://…/team/app@sha256:…
	indexRef     string
	expectedBlob map[digest.Digest]bool // configs and layers the sources below copy
}

func newCacheFixture(t *testing.T) *cacheFixture {
	t.Helper()
	f := &cacheFixture{reg: distributiontest.Start(t), src: t.TempDir()}
	var err error
	if f.app, err = imagetest.WriteImage(f.src, "app", 21, []int64{300 * kib, 200 * kib, 8 * kib}); err != nil {
		t.Fatal(err)
	}
	var per map[string]digest.Digest
	if f.index, per, err = imagetest.WriteIndex(f.src, "multi", 22); err != nil {
		t.Fatal(err)
	}
	f.arm64 = per["linux/arm64"]
	f.reg.Push(t, "oci:"+f.src+":app", "team/app:1")
	f.reg.Push(t, "oci:"+f.src+":multi", "team/multi:2")
	f.sys = &types.SystemContext{DockerCertPath: f.reg.CertDir}
	f.appRef = "docker://" + f.reg.Host + "/team/app@" + f.app.String()
	f.indexRef = "docker://" + f.reg.Host + "/team/multi@" + f.index.String()
	f.expectedBlob = map[digest.Digest]bool{}
	for d := range reachableBlobs(t, f.src, f.app, f.arm64) {
		if d != f.app && d != f.arm64 {
			f.expectedBlob[d] = true
		}
	}
	return f
}

func (f *cacheFixture) sources() []Source {
	return []Source{
		{Ref: f.appRef, Name: "registry.example/team/app:1"},
		{Ref: f.indexRef, Name: "registry.example/team/multi:2", Platforms: []string{"linux/arm64"}},
	}
}

func (f *cacheFixture) copy(t *testing.T, dst, cacheDir string) []Result {
	t.Helper()
	res, err := Copy(context.Background(), dst, f.sources(), CopyOptions{SystemContext: f.sys, CacheDir: cacheDir})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// blobGETs maps each blob fetched to how many times it was.
func blobGETs(reqs []distributiontest.Request) map[digest.Digest]int {
	out := map[digest.Digest]int{}
	for _, q := range reqs {
		if q.Method == "GET" && q.Kind() == "blob" {
			out[digest.Digest(q.Path[strings.LastIndex(q.Path, "/")+1:])]++
		}
	}
	return out
}

// TestCopyCache: a cold cache downloads each blob once and links it into the
// bundle; a warm cache makes no request at all, even with the registry
// stopped, and gives the same layout as a copy without cache.
func TestCopyCache(t *testing.T) {
	f := newCacheFixture(t)
	cacheDir := filepath.Join(t.TempDir(), "oci")

	// Without a cache, for reference.
	plain := filepath.Join(t.TempDir(), "plain")
	want := f.copy(t, plain, "")

	f.reg.ResetRequests()
	cold := filepath.Join(t.TempDir(), "cold")
	if got := f.copy(t, cold, cacheDir); !reflect.DeepEqual(got, want) {
		t.Fatalf("with a cache:\n got %+v\nwant %+v", got, want)
	}
	reqs := f.reg.Requests()
	gets := blobGETs(reqs)
	for d := range f.expectedBlob {
		if gets[d] != 1 {
			t.Errorf("blob %s fetched %d times, want once", d, gets[d])
		}
	}
	if len(gets) != len(f.expectedBlob) {
		t.Errorf("blobs fetched: %v, want %d blobs", gets, len(f.expectedBlob))
	}
	// The top manifests and the arm64 instance, once each.
	if n := distributiontest.Count(reqs, "GET", "manifest"); n != 3 {
		t.Errorf("%d manifest GETs, want 3: %v", n, reqs)
	}
	if !reflect.DeepEqual(treeHashes(t, cold), treeHashes(t, plain)) {
		t.Error("the layout copied through the cache differs from the one copied without")
	}
	// Layers are links to the cache's files. Manifests and configs are not:
	// copy.Image writes them again (the oci destination writes manifests in
	// place, and configs always go through PutBlob).
	layers := map[digest.Digest]bool{}
	for _, d := range []digest.Digest{f.app, f.arm64} {
		var m manifestJSON
		readJSONBlob(t, f.src, d, &m)
		for _, l := range m.Layers {
			layers[l.Digest] = true
		}
	}
	for d := range blobFiles(t, cold) {
		a, err1 := os.Stat(blobPath(cold, d))
		b, err2 := os.Stat(blobPath(cacheDir, d))
		if err1 != nil || (err2 != nil && f.expectedBlob[d]) {
			t.Fatalf("blob %s: %v, %v", d, err1, err2)
		}
		if linked := err2 == nil && os.SameFile(a, b); linked != layers[d] {
			t.Errorf("blob %s: linked to the cache: %v, want %v", d, linked, layers[d])
		}
	}
	// The cache itself: every blob verifies, and index.json names the
	// top-level manifests by digest.
	blobFiles(t, cacheDir)
	cached, err := ReadIndex(os.DirFS(cacheDir), ".")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, r := range cached {
		names = append(names, r.Name)
	}
	wantNames := []string{f.reg.Host + "/team/app@" + f.app.String(), f.reg.Host + "/team/multi@" + f.index.String()}
	if !slices.Equal(names, wantNames) {
		t.Errorf("cache index.json lists %v, want %v", names, wantNames)
	}

	// Warm: nothing is asked of the registry.
	f.reg.ResetRequests()
	warm := filepath.Join(t.TempDir(), "warm")
	if got := f.copy(t, warm, cacheDir); !reflect.DeepEqual(got, want) {
		t.Fatalf("warm cache:\n got %+v\nwant %+v", got, want)
	}
	if reqs := f.reg.Requests(); len(reqs) != 0 {
		t.Errorf("a copy from a warm cache made requests: %v", reqs)
	}
	if !reflect.DeepEqual(treeHashes(t, warm), treeHashes(t, plain)) {
		t.Error("the layout copied from the warm cache differs")
	}

	// And with the registry gone.
	f.reg.Stop()
	offline := filepath.Join(t.TempDir(), "offline")
	if got := f.copy(t, offline, cacheDir); !reflect.DeepEqual(got, want) {
		t.Fatalf("registry stopped:\n got %+v\nwant %+v", got, want)
	}
	if !reflect.DeepEqual(treeHashes(t, offline), treeHashes(t, plain)) {
		t.Error("the layout copied with the registry stopped differs")
	}
	// A cold cache with the registry gone fails.
	if _, err := Copy(context.Background(), t.TempDir(), f.sources(), CopyOptions{SystemContext: f.sys, CacheDir: t.TempDir()}); err == nil {
		t.Fatal("copy from a stopped registry into a cold cache succeeded")
	}
}

// TestCopyCacheByTag: a source named by tag always asks the registry which
// manifest the tag names, and takes the blobs from the cache.
func TestCopyCacheByTag(t *testing.T) {
	f := newCacheFixture(t)
	cacheDir := t.TempDir()
	srcs := []Source{{Ref: "docker://" + f.reg.Host + "/team/app:1"}}
	opts := CopyOptions{SystemContext: f.sys, CacheDir: cacheDir}
	if _, err := Copy(context.Background(), t.TempDir(), srcs, opts); err != nil {
		t.Fatal(err)
	}
	f.reg.ResetRequests()
	res, err := Copy(context.Background(), t.TempDir(), srcs, opts)
	if err != nil {
		t.Fatal(err)
	}
	reqs := f.reg.Requests()
	if res[0].Digest != f.app || distributiontest.Count(reqs, "GET", "manifest") != 1 || len(blobGETs(reqs)) != 0 {
		t.Errorf("copy by tag from a warm cache: %s, requests %v; want %s, one manifest GET, no blob", res[0].Digest, reqs, f.app)
	}
}

// TestCopyCacheCorrupt: a cached blob or manifest that no longer matches its
// digest is fetched again (and only it), never copied into the bundle.
func TestCopyCacheCorrupt(t *testing.T) {
	f := newCacheFixture(t)
	cacheDir := t.TempDir()
	want := f.copy(t, t.TempDir(), cacheDir)

	var m manifestJSON
	readJSONBlob(t, f.src, f.app, &m)
	layer := m.Layers[1].Digest
	corrupt := func(d digest.Digest) {
		t.Helper()
		p := blobPath(cacheDir, d)
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		data[len(data)/2] ^= 0xff
		// A new file, as a disk error would not touch the bundle's link.
		if err := os.Remove(p); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	corrupt(layer)
	corrupt(f.arm64)

	f.reg.ResetRequests()
	dst := t.TempDir()
	if got := f.copy(t, dst, cacheDir); !reflect.DeepEqual(got, want) {
		t.Fatalf("after corruption:\n got %+v\nwant %+v", got, want)
	}
	reqs := f.reg.Requests()
	if gets := blobGETs(reqs); len(gets) != 1 || gets[layer] != 1 {
		t.Errorf("blob GETs %v, want only the corrupted %s", gets, layer)
	}
	// Opening the registry source reads the top-level manifest: one for
	// each image that misses something, then the corrupted instance.
	var manifests []string
	for _, q := range reqs {
		if q.Kind() == "manifest" {
			manifests = append(manifests, q.Path[strings.LastIndex(q.Path, "/")+1:])
		}
	}
	if wantM := []string{f.app.String(), f.index.String(), f.arm64.String()}; !slices.Equal(manifests, wantM) {
		t.Errorf("manifests requested: %v, want %v", manifests, wantM)
	}
	blobFiles(t, dst)
	blobFiles(t, cacheDir) // healed

	// Offline, a corrupt blob is an error naming it.
	corrupt(layer)
	f.reg.Stop()
	_, err := Copy(context.Background(), t.TempDir(), f.sources(), CopyOptions{SystemContext: f.sys, CacheDir: cacheDir})
	if err == nil || !strings.Contains(err.Error(), layer.String()) {
		t.Fatalf("offline copy with a corrupt cached blob: %v, want an error naming %s", err, layer)
	}
}

// TestCopyCacheConcurrent: copies sharing one cold cache at the same time
// all succeed and leave a consistent cache that a later copy uses whole.
func TestCopyCacheConcurrent(t *testing.T) {
	f := newCacheFixture(t)
	cacheDir := t.TempDir()
	want := f.copy(t, t.TempDir(), "")

	const n = 3
	dsts := make([]string, n)
	errs := make([]error, n)
	results := make([][]Result, n)
	var wg sync.WaitGroup
	for i := range n {
		dsts[i] = t.TempDir()
		wg.Go(func() {
			results[i], errs[i] = Copy(context.Background(), dsts[i], f.sources(), CopyOptions{SystemContext: f.sys, CacheDir: cacheDir, Parallel: 2})
		})
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("copy %d: %v", i, errs[i])
		}
		if !reflect.DeepEqual(results[i], want) {
			t.Errorf("copy %d: %+v, want %+v", i, results[i], want)
		}
		blobFiles(t, dsts[i])
	}
	blobFiles(t, cacheDir)
	if entries, err := ReadIndex(os.DirFS(cacheDir), "."); err != nil || len(entries) != 2 {
		t.Fatalf("cache index.json: %+v, %v", entries, err)
	}
	f.reg.ResetRequests()
	f.copy(t, t.TempDir(), cacheDir)
	if reqs := f.reg.Requests(); len(reqs) != 0 {
		t.Errorf("copy after the concurrent ones made requests: %v", reqs)
	}
}

// TestCopyCacheUnlinkable: where the cache's blobs cannot be linked (another
// file system; linking turned off here), they are checked and copied from
// the cache, a corrupt one fetched again, and the layout is the same.
func TestCopyCacheUnlinkable(t *testing.T) {
	f := newCacheFixture(t)
	cacheDir := t.TempDir()
	linked := filepath.Join(t.TempDir(), "linked")
	want := f.copy(t, linked, cacheDir)
	wantTree := treeHashes(t, linked)

	defer func(old bool) { linkBlobs = old }(linkBlobs)
	linkBlobs = false
	var m manifestJSON
	readJSONBlob(t, f.src, f.app, &m)
	layer := m.Layers[0].Digest
	// A new file: writing in place would write through the link into the
	// first layout too.
	if err := os.Remove(blobPath(cacheDir, layer)); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(blobPath(cacheDir, layer), []byte("not the layer"), 0o644); err != nil {
		t.Fatal(err)
	}
	f.reg.ResetRequests()
	copied := filepath.Join(t.TempDir(), "copied")
	if got := f.copy(t, copied, cacheDir); !reflect.DeepEqual(got, want) {
		t.Fatalf("without links:\n got %+v\nwant %+v", got, want)
	}
	if gets := blobGETs(f.reg.Requests()); len(gets) != 1 || gets[layer] != 1 {
		t.Errorf("blob GETs %v, want only the corrupted %s", gets, layer)
	}
	if !reflect.DeepEqual(treeHashes(t, copied), wantTree) {
		t.Error("the layout copied without links differs")
	}
	for d := range blobFiles(t, copied) {
		a, err1 := os.Stat(blobPath(copied, d))
		b, err2 := os.Stat(blobPath(cacheDir, d))
		if err1 == nil && err2 == nil && os.SameFile(a, b) {
			t.Errorf("blob %s linked with linking off", d)
		}
	}
	blobFiles(t, cacheDir)
}
