package images

import (
	"context"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/ferry-k8s/ferry/images/imagetest"
	digest "github.com/opencontainers/go-digest"
	imgspecv1 "github.com/opencontainers/image-spec/specs-go/v1"
	"go.podman.io/image/v5/manifest"
)

const (
	mib = 1 << 20
	kib = 1 << 10
)

// TestCopy copies two images sharing a layer and a two-platform index
// filtered to linux/amd64 from a local OCI layout, and checks the layout with
// skopeo and ReadIndex.
func TestCopy(t *testing.T) {
	src := t.TempDir()
	dA := writeImage(t, src, "a", 1, []int64{1 * mib, 512 * kib})
	dB := writeImage(t, src, "b", 1, []int64{1 * mib, 256 * kib})
	dIdx, perPlatform, err := imagetest.WriteIndex(src, "multi", 7)
	if err != nil {
		t.Fatal(err)
	}
	srcBefore := treeHashes(t, src)

	dst := filepath.Join(t.TempDir(), "bundle")
	var mu sync.Mutex
	progress := map[string][][2]int64{}
	srcs := []Source{
		{Ref: "oci:" + src + ":a", Name: "example.com/team/a:1.0"},
		{Ref: "oci:" + src + ":b", Name: "example.com/team/b:2.0"},
		{Ref: "oci:" + src + ":multi", Name: "example.com/team/multi:3", Platforms: []string{"linux/amd64"}},
	}
	res, err := Copy(context.Background(), dst, srcs, CopyOptions{
		Parallel: 2,
		Progress: func(name string, done, total int64) {
			mu.Lock()
			defer mu.Unlock()
			progress[name] = append(progress[name], [2]int64{done, total})
		},
	})
	if err != nil {
		t.Fatal(err)
	}

	want := []Result{
		{Name: "example.com/team/a:1.0", Source: srcs[0].Ref, Digest: dA, OriginalDigest: dA,
			MediaType: imgspecv1.MediaTypeImageManifest, Platforms: []string{"linux/amd64"}},
		{Name: "example.com/team/b:2.0", Source: srcs[1].Ref, Digest: dB, OriginalDigest: dB,
			MediaType: imgspecv1.MediaTypeImageManifest, Platforms: []string{"linux/amd64"}},
		{Name: "example.com/team/multi:3", Source: srcs[2].Ref, OriginalDigest: dIdx,
			MediaType: imgspecv1.MediaTypeImageIndex, Platforms: []string{"linux/amd64"}},
	}
	if len(res) != len(want) {
		t.Fatalf("got %d results, want %d", len(res), len(want))
	}
	for i := range want {
		want[i].Size = res[i].Size
		if i == 2 {
			want[i].Digest = res[i].Digest
		}
	}
	if !reflect.DeepEqual(res, want) {
		t.Errorf("results:\n got %+v\nwant %+v", res, want)
	}
	if res[2].Digest == dIdx {
		t.Errorf("filtered index kept the source digest %s", dIdx)
	}

	// The filtered index lists only the amd64 instance, with its digest.
	var idx manifestJSON
	readJSONBlob(t, dst, res[2].Digest, &idx)
	if len(idx.Manifests) != 1 || idx.Manifests[0].Digest != perPlatform["linux/amd64"] ||
		idx.Manifests[0].Platform == nil || idx.Manifests[0].Platform.Architecture != "amd64" {
		t.Errorf("filtered index manifests = %+v, want only linux/amd64 %s", idx.Manifests, perPlatform["linux/amd64"])
	}

	// Exactly the reachable blobs are present, each once, each verified.
	files := blobFiles(t, dst)
	reach := reachableBlobs(t, dst, dA, dB, res[2].Digest)
	if !maps.Equal(files, reach) {
		t.Errorf("blob files %v, want the reachable set %v", slices.Sorted(maps.Keys(files)), slices.Sorted(maps.Keys(reach)))
	}
	if files[perPlatform["linux/arm64"]] {
		t.Errorf("arm64 manifest %s was copied", perPlatform["linux/arm64"])
	}
	var ma, mb manifestJSON
	readJSONBlob(t, dst, dA, &ma)
	readJSONBlob(t, dst, dB, &mb)
	shared := ma.Layers[0].Digest
	if mb.Layers[0].Digest != shared {
		t.Fatalf("fixture images do not share layer 0: %s vs %s", shared, mb.Layers[0].Digest)
	}
	// Blobs of an oci: source on the same filesystem are hard links.
	srcInfo, err1 := os.Stat(blobPath(src, shared))
	dstInfo, err2 := os.Stat(blobPath(dst, shared))
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	if !os.SameFile(srcInfo, dstInfo) {
		t.Errorf("layer %s was not hard-linked from the source layout", shared)
	}
	if got := treeHashes(t, src); !maps.Equal(got, srcBefore) {
		t.Errorf("source layout was modified")
	}

	// skopeo finds each image by its full name and reports the same digests.
	for _, r := range res {
		ref := "oci:" + dst + ":" + r.Name
		if got := skopeoRawDigest(t, ref); got != r.Digest {
			t.Errorf("skopeo inspect --raw %s: digest %s, want %s", ref, got, r.Digest)
		}
		if got := skopeoInspectDigest(t, ref); got != r.Digest {
			t.Errorf("skopeo inspect %s: Digest %s, want %s", ref, got, r.Digest)
		}
	}
	// The filtered index is self-contained: skopeo copies all of it.
	skopeoCopy(t, "--all", "oci:"+dst+":example.com/team/multi:3", "oci:"+filepath.Join(t.TempDir(), "out")+":m")

	// ReadIndex lists what Copy returned.
	got, err := ReadIndex(os.DirFS(dst), ".")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, res) {
		t.Errorf("ReadIndex:\n got %+v\nwant %+v", got, res)
	}

	// Progress: non-decreasing, ends at done == total > 0 for each image.
	for _, r := range res {
		calls := progress[r.Name]
		if len(calls) == 0 {
			t.Errorf("no progress for %s", r.Name)
			continue
		}
		last := calls[len(calls)-1]
		if last[1] <= 0 || last[0] != last[1] {
			t.Errorf("progress for %s ends at %v", r.Name, last)
		}
		for i := 1; i < len(calls); i++ {
			if calls[i][0] < calls[i-1][0] || calls[i][1] != last[1] {
				t.Errorf("progress for %s not monotonic: %v", r.Name, calls)
				break
			}
		}
	}
}

// TestCopyTransports copies from oci-archive:, dir: and docker-archive:
// sources made by skopeo.
func TestCopyTransports(t *testing.T) {
	src := t.TempDir()
	dApp := writeImage(t, src, "app", 3, []int64{300 * kib, 200 * kib})
	dIdx, perPlatform, err := imagetest.WriteIndex(src, "multi", 9)
	if err != nil {
		t.Fatal(err)
	}
	var appManifest manifestJSON
	readJSONBlob(t, src, dApp, &appManifest)
	var appConfig imgspecv1.Image
	readJSONBlob(t, src, appManifest.Config.Digest, &appConfig)

	w := t.TempDir()
	ociArchive := filepath.Join(w, "app-oci.tar")
	dirApp := filepath.Join(w, "app-dir")
	dockerArchive := filepath.Join(w, "app-docker.tar")
	multiArchive := filepath.Join(w, "multi-oci.tar")
	multiDir := filepath.Join(w, "multi-dir")
	skopeoCopy(t, "oci:"+src+":app", "oci-archive:"+ociArchive)
	skopeoCopy(t, "oci:"+src+":app", "dir:"+dirApp)
	skopeoCopy(t, "oci:"+src+":app", "docker-archive:"+dockerArchive+":example.com/app:1")
	skopeoCopy(t, "--all", "oci:"+src+":multi", "oci-archive:"+multiArchive)
	skopeoCopy(t, "--all", "oci:"+src+":multi", "dir:"+multiDir)
	dDockerArchive := skopeoRawDigest(t, "docker-archive:"+dockerArchive)

	dst := filepath.Join(t.TempDir(), "bundle")
	srcs := []Source{
		{Ref: "oci-archive:" + ociArchive, Name: "example.com/from/oci-archive:1"},
		{Ref: "dir:" + dirApp, Name: "example.com/from/dir:1"},
		{Ref: "docker-archive:" + dockerArchive + ":example.com/app:1"}, // name derived from the ref
		{Ref: "oci-archive:" + multiArchive, Name: "example.com/from/multi-archive:1"},
		{Ref: "dir:" + multiDir, Name: "example.com/from/multi-dir:1", Platforms: []string{"linux/arm64/v8"}},
	}
	res, err := Copy(context.Background(), dst, srcs, CopyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != len(srcs) {
		t.Fatalf("got %d results", len(res))
	}
	byRef := map[string]Result{}
	for _, r := range res {
		byRef[r.Source] = r
	}

	// oci-archive: and dir: keep the digest.
	for _, ref := range []string{srcs[0].Ref, srcs[1].Ref} {
		r := byRef[ref]
		if r.Digest != dApp || r.OriginalDigest != dApp || r.Synthesized {
			t.Errorf("%s: %+v, want digest %s preserved", ref, r, dApp)
		}
	}
	if r := byRef[srcs[3].Ref]; r.Digest != dIdx || r.OriginalDigest != dIdx ||
		!slices.Equal(r.Platforms, []string{"linux/amd64", "linux/arm64"}) {
		t.Errorf("%s: %+v, want index %s kept whole", srcs[3].Ref, r, dIdx)
	}
	if r := byRef[srcs[4].Ref]; r.OriginalDigest != dIdx || r.Digest == dIdx ||
		!slices.Equal(r.Platforms, []string{"linux/arm64"}) {
		t.Errorf("%s: %+v, want the arm64 instance of %s only", srcs[4].Ref, r, dIdx)
	} else {
		var idx manifestJSON
		readJSONBlob(t, dst, r.Digest, &idx)
		if len(idx.Manifests) != 1 || idx.Manifests[0].Digest != perPlatform["linux/arm64"] {
			t.Errorf("filtered index lists %+v", idx.Manifests)
		}
	}

	// docker-archive: the manifest is generated by containers/image; it is
	// stored unchanged, flagged, and its config and layer DiffIDs are the
	// original image's.
	r := byRef[srcs[2].Ref]
	if r.Name != "example.com/app:1" || !r.Synthesized || r.Digest != dDockerArchive ||
		r.OriginalDigest != dDockerArchive || r.MediaType != manifest.DockerV2Schema2MediaType {
		t.Errorf("docker-archive: %+v, want synthesized %s (skopeo's digest of the archive)", r, dDockerArchive)
	}
	if r.Digest == dApp {
		t.Errorf("docker-archive: digest equals the OCI manifest's, expected a generated manifest")
	}
	var dm manifestJSON
	readJSONBlob(t, dst, r.Digest, &dm)
	if dm.Config.Digest != appManifest.Config.Digest {
		t.Errorf("docker-archive: config %s, want the original %s", dm.Config.Digest, appManifest.Config.Digest)
	}
	if len(dm.Layers) != len(appConfig.RootFS.DiffIDs) {
		t.Fatalf("docker-archive: %d layers, want %d", len(dm.Layers), len(appConfig.RootFS.DiffIDs))
	}
	for i, l := range dm.Layers {
		if l.Digest != appConfig.RootFS.DiffIDs[i] {
			t.Errorf("docker-archive: layer %d is %s, want DiffID %s", i, l.Digest, appConfig.RootFS.DiffIDs[i])
		}
	}

	// Every entry is readable by name through the oci transport. skopeo
	// 1.9 (Debian 12) only looks up OCI-typed entries by name, so the
	// Docker-typed one is read with the containers/image linked here.
	for _, r := range res {
		ref := "oci:" + dst + ":" + r.Name
		if got := libRawDigest(t, ref); got != r.Digest {
			t.Errorf("containers/image GetManifest %s: %s, want %s", ref, got, r.Digest)
		}
		if r.MediaType == manifest.DockerV2Schema2MediaType {
			continue
		}
		if got := skopeoRawDigest(t, ref); got != r.Digest {
			t.Errorf("skopeo inspect --raw %s: %s, want %s", ref, got, r.Digest)
		}
		// Non-raw inspect picks an instance; ask for one that was kept.
		p, _ := parsePlatform(r.Platforms[0])
		if got := skopeoInspectDigest(t, ref, "--override-os", p.OS, "--override-arch", p.Arch); got != r.Digest {
			t.Errorf("skopeo inspect %s: %s, want %s", ref, got, r.Digest)
		}
	}
	files := blobFiles(t, dst)
	var roots []digest.Digest
	for _, r := range res {
		roots = append(roots, r.Digest)
	}
	if reach := reachableBlobs(t, dst, roots...); !maps.Equal(files, reach) {
		t.Errorf("blob files %d, reachable %d", len(files), len(reach))
	}

	got, err := ReadIndex(os.DirFS(dst), ".")
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(res, func(a, b Result) int { return strings.Compare(a.Name, b.Name) })
	if !reflect.DeepEqual(got, res) {
		t.Errorf("ReadIndex:\n got %+v\nwant %+v", got, res)
	}
}

// TestCopyDeterministic copies the same sources into fresh directories, also
// in reverse order, and expects identical trees.
func TestCopyDeterministic(t *testing.T) {
	src := t.TempDir()
	writeImage(t, src, "a", 5, []int64{400 * kib, 100 * kib})
	writeImage(t, src, "b", 5, []int64{400 * kib, 50 * kib})
	if _, _, err := imagetest.WriteIndex(src, "multi", 5); err != nil {
		t.Fatal(err)
	}
	dockerArchive := filepath.Join(t.TempDir(), "a.tar")
	skopeoCopy(t, "oci:"+src+":a", "docker-archive:"+dockerArchive+":example.com/a-docker:1")
	srcs := []Source{
		{Ref: "oci:" + src + ":a", Name: "example.com/a:1"},
		{Ref: "oci:" + src + ":b", Name: "example.com/b:1"},
		{Ref: "oci:" + src + ":multi", Name: "example.com/multi:1", Platforms: []string{"linux/arm64"}},
		{Ref: "oci:" + src + ":multi", Name: "example.com/multi-all:1"},
		{Ref: "docker-archive:" + dockerArchive, Name: "example.com/a-docker:1"},
	}
	reversed := slices.Clone(srcs)
	slices.Reverse(reversed)

	var trees []map[string]string
	var indexes [][]byte
	for _, s := range [][]Source{srcs, srcs, reversed} {
		dst := filepath.Join(t.TempDir(), "bundle")
		if _, err := Copy(context.Background(), dst, s, CopyOptions{}); err != nil {
			t.Fatal(err)
		}
		trees = append(trees, treeHashes(t, dst))
		data, err := os.ReadFile(filepath.Join(dst, "index.json"))
		if err != nil {
			t.Fatal(err)
		}
		indexes = append(indexes, data)
	}
	for i := 1; i < len(trees); i++ {
		if string(indexes[i]) != string(indexes[0]) {
			t.Errorf("run %d: index.json differs:\n%s\n%s", i, indexes[0], indexes[i])
		}
		for name, sum := range trees[0] {
			if trees[i][name] != sum {
				t.Errorf("run %d: %s differs or is missing", i, name)
			}
		}
		for name := range trees[i] {
			if _, ok := trees[0][name]; !ok {
				t.Errorf("run %d: extra file %s", i, name)
			}
		}
	}
	for name := range trees[0] {
		if name == "./" {
			continue
		}
		if base := filepath.Base(name); strings.HasPrefix(base, ".") || strings.HasPrefix(base, "oci-put-blob") {
			t.Errorf("temporary file left behind: %s", name)
		}
	}
}

// TestCopyErrors checks that bad input fails with errors naming the source.
func TestCopyErrors(t *testing.T) {
	src := t.TempDir()
	writeImage(t, src, "a", 1, []int64{10 * kib})
	if _, _, err := imagetest.WriteIndex(src, "multi", 1); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(t.TempDir(), "missing")
	okSrc := Source{Ref: "oci:" + src + ":a", Name: "example.com/ok:1"}
	tests := []struct {
		srcs     []Source
		contains []string
		validate bool // rejected before anything is written
	}{
		{[]Source{{Ref: "oci-archive:" + missing + ".tar", Name: "example.com/x:1"}}, []string{"oci-archive:" + missing + ".tar"}, false},
		{[]Source{{Ref: "docker-archive:" + missing + ".tar", Name: "example.com/x:1"}}, []string{"docker-archive:" + missing + ".tar"}, false},
		{[]Source{{Ref: "oci:" + missing + ":a", Name: "example.com/x:1"}}, []string{"oci:" + missing + ":a"}, false},
		{[]Source{{Ref: "oci:" + src + ":nope", Name: "example.com/x:1"}}, []string{"oci:" + src + ":nope"}, false},
		{[]Source{{Ref: "dir:" + missing, Name: "example.com/x:1"}}, []string{"dir:" + missing}, false},
		{[]Source{{Ref: "ftp://example.com/x:1", Name: "example.com/x:1"}}, []string{"ftp://example.com/x:1", `unsupported transport "ftp"`}, true},
		{[]Source{{Ref: "example.com/x:1", Name: "example.com/x:1"}}, []string{"example.com/x:1", "unsupported transport"}, true},
		{[]Source{{Ref: "nocolon", Name: "example.com/x:1"}}, []string{"nocolon"}, true},
		{[]Source{{Ref: "docker://Bad_Name", Name: "example.com/x:1"}}, []string{"docker://Bad_Name"}, true},
		{[]Source{okSrc, {Ref: "oci:" + src + ":multi", Name: "example.com/ok:1"}},
			[]string{okSrc.Ref, "oci:" + src + ":multi", "example.com/ok:1"}, true},
		{[]Source{{Ref: okSrc.Ref, Name: "nginx:1"}, {Ref: "oci:" + src + ":multi", Name: "docker.io/library/nginx:1"}},
			[]string{okSrc.Ref, "oci:" + src + ":multi", "docker.io/library/nginx:1"}, true},
		{[]Source{{Ref: okSrc.Ref}}, []string{okSrc.Ref, "no Name"}, true},
		{[]Source{{Ref: okSrc.Ref, Name: "example.com/x"}}, []string{okSrc.Ref, "no tag or digest"}, true},
		{[]Source{{Ref: okSrc.Ref, Name: "Example.com/UPPER:1"}}, []string{okSrc.Ref, "invalid image name"}, true},
		{[]Source{{Ref: okSrc.Ref, Name: "example.com/x:1", Platforms: []string{"linux"}}}, []string{okSrc.Ref, `invalid platform "linux"`}, true},
		{[]Source{{Ref: "oci:" + src + ":multi", Name: "example.com/x:1", Platforms: []string{"linux/s390x"}}},
			[]string{"oci:" + src + ":multi", "linux/s390x"}, false},
		{[]Source{{Ref: "oci:" + src + ":multi", Name: "example.com/x:1", Platforms: []string{"linux/arm64/v7"}}},
			[]string{"oci:" + src + ":multi", "linux/arm64/v7"}, false},
		{[]Source{{Ref: okSrc.Ref, Name: "example.com/x:1", Platforms: []string{"linux/arm64"}}},
			[]string{okSrc.Ref, "linux/amd64", "linux/arm64"}, false},
	}
	for i, tc := range tests {
		dst := filepath.Join(t.TempDir(), "bundle")
		_, err := Copy(context.Background(), dst, tc.srcs, CopyOptions{})
		if err == nil {
			t.Errorf("case %d (%v): no error", i, tc.srcs)
			continue
		}
		for _, s := range tc.contains {
			if !strings.Contains(err.Error(), s) {
				t.Errorf("case %d: error %q does not mention %q", i, err, s)
			}
		}
		if _, statErr := os.Stat(dst); tc.validate && statErr == nil {
			t.Errorf("case %d: layout created although the sources are invalid", i)
		}
	}
}

// TestCopySameImageTwoNames stores one image under two names and replaces a
// name in an existing layout.
func TestCopySameImageTwoNames(t *testing.T) {
	src := t.TempDir()
	dA := writeImage(t, src, "a", 1, []int64{64 * kib})
	dB := writeImage(t, src, "b", 2, []int64{64 * kib})
	dst := filepath.Join(t.TempDir(), "bundle")
	res, err := Copy(context.Background(), dst, []Source{
		{Ref: "oci:" + src + ":a", Name: "example.com/one:1"},
		{Ref: "oci:" + src + ":a", Name: "mirror.example.org/one:latest"},
	}, CopyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Digest != dA || res[1].Digest != dA {
		t.Fatalf("digests %s %s, want %s", res[0].Digest, res[1].Digest, dA)
	}
	for _, r := range res {
		if got := skopeoRawDigest(t, "oci:"+dst+":"+r.Name); got != dA {
			t.Errorf("%s: %s", r.Name, got)
		}
	}
	if files := blobFiles(t, dst); len(files) != 3 { // manifest, config, one layer
		t.Errorf("%d blob files, want 3", len(files))
	}

	// Copying again into the same layout replaces the entry of that name.
	if _, err := Copy(context.Background(), dst, []Source{{Ref: "oci:" + src + ":b", Name: "example.com/one:1"}}, CopyOptions{}); err != nil {
		t.Fatal(err)
	}
	got, err := ReadIndex(os.DirFS(dst), ".")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Name != "example.com/one:1" || got[0].Digest != dB ||
		got[1].Name != "mirror.example.org/one:latest" || got[1].Digest != dA {
		t.Errorf("after replace: %+v", got)
	}
}

// TestCopyCorruptSourceBlob checks that a corrupt blob in an oci: source is
// neither linked nor copied.
func TestCopyCorruptSourceBlob(t *testing.T) {
	src := t.TempDir()
	d := writeImage(t, src, "a", 1, []int64{256 * kib})
	var m manifestJSON
	readJSONBlob(t, src, d, &m)
	layer := m.Layers[0].Digest
	p := blobPath(src, layer)
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)/2] ^= 0xff // same size, different content
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(t.TempDir(), "bundle")
	_, err = Copy(context.Background(), dst, []Source{{Ref: "oci:" + src + ":a", Name: "example.com/a:1"}}, CopyOptions{})
	if err == nil || !strings.Contains(err.Error(), "oci:"+src+":a") {
		t.Fatalf("error %v, want a failure naming the source", err)
	}
	if _, err := os.Stat(blobPath(dst, layer)); err == nil {
		t.Errorf("corrupt layer %s stored in the layout", layer)
	}
	entries, _ := os.ReadDir(dst)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".ferry-link-") {
			t.Errorf("temporary link %s left behind", e.Name())
		}
	}
}

func TestPlatformMatches(t *testing.T) {
	tests := []struct {
		want, have string
		ok         bool
	}{
		{"linux/amd64", "linux/amd64", true},
		{"linux/amd64", "linux/arm64", false},
		{"linux/amd64", "windows/amd64", false},
		{"linux/arm64", "linux/arm64/v8", true},
		{"linux/arm64/v8", "linux/arm64", true},
		{"linux/arm64/v8", "linux/arm64/v8", true},
		{"linux/arm64/v9", "linux/arm64", false},
		{"linux/arm/v7", "linux/arm", true},
		{"linux/arm/v6", "linux/arm", false},
		{"linux/arm", "linux/arm/v6", true},
		{"linux/amd64/v3", "linux/amd64", false},
	}
	for _, tc := range tests {
		w, err := parsePlatform(tc.want)
		if err != nil {
			t.Fatal(err)
		}
		h, err := parsePlatform(tc.have)
		if err != nil {
			t.Fatal(err)
		}
		if got := w.matches(h); got != tc.ok {
			t.Errorf("%s matches %s = %v, want %v", tc.want, tc.have, got, tc.ok)
		}
	}
	for _, bad := range []string{"", "linux", "linux/", "/amd64", "linux/amd64/v8/x", "Linux/amd64", "linux/amd 64", "linux/amd64,linux/arm64"} {
		if _, err := parsePlatform(bad); err == nil {
			t.Errorf("parsePlatform(%q) accepted", bad)
		}
	}
}

func writeImage(t testing.TB, dir, tag string, seed int64, sizes []int64) digest.Digest {
	t.Helper()
	d, err := imagetest.WriteImage(dir, tag, seed, sizes)
	if err != nil {
		t.Fatal(err)
	}
	return d
}
