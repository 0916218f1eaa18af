package images

import (
	"context"
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/ferry-k8s/ferry/images/imagetest"
	"github.com/ferry-k8s/ferry/images/registry/distributiontest"
	digest "github.com/opencontainers/go-digest"
	"go.podman.io/image/v5/manifest"
	"go.podman.io/image/v5/types"
)

// TestCopyDockerRegistry copies Docker-typed images (schema 2 manifest and
// manifest list, as most of registry.k8s.io serves) from a registry served on
// the loopback interface (the distribution registry, the manifests put
// into it as they are), and checks that their digests are kept.
func TestCopyDockerRegistry(t *testing.T) {
	store := t.TempDir()
	dOCI := writeImage(t, store, "app", 11, []int64{200 * kib, 100 * kib})
	_, perPlatform, err := imagetest.WriteIndex(store, "multi", 12)
	if err != nil {
		t.Fatal(err)
	}
	dApp := dockerize(t, store, dOCI)
	dAmd := dockerize(t, store, perPlatform["linux/amd64"])
	dArm := dockerize(t, store, perPlatform["linux/arm64"])
	list, err := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     manifest.DockerV2ListMediaType,
		"manifests": []map[string]any{
			{"mediaType": manifest.DockerV2Schema2MediaType, "size": blobSize(t, store, dAmd), "digest": dAmd,
				"platform": map[string]string{"architecture": "amd64", "os": "linux"}},
			{"mediaType": manifest.DockerV2Schema2MediaType, "size": blobSize(t, store, dArm), "digest": dArm,
				"platform": map[string]string{"architecture": "arm64", "os": "linux", "variant": "v8"}},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	dList := putBlob(t, store, list)

	reg := serveRegistry(t, store, map[string]digest.Digest{
		"team/app:1":   dApp,
		"team/multi:2": dList,
	})
	host := reg.Host
	dst := filepath.Join(t.TempDir(), "bundle")
	srcs := []Source{
		{Ref: "docker://" + host + "/team/app:1"}, // name derived from the reference
		{Ref: "docker://" + host + "/team/multi:2", Name: "registry.example/team/multi:2"},
		{Ref: "docker://" + host + "/team/multi@" + dList.String(), Name: "registry.example/team/multi-arm:2", Platforms: []string{"linux/arm64"}},
	}
	sys := &types.SystemContext{DockerCertPath: reg.CertDir}
	res, err := Copy(context.Background(), dst, srcs, CopyOptions{SystemContext: sys})
	if err != nil {
		t.Fatal(err)
	}
	want := []Result{
		{Name: host + "/team/app:1", Source: srcs[0].Ref, Digest: dApp, OriginalDigest: dApp,
			MediaType: manifest.DockerV2Schema2MediaType, Size: blobSize(t, store, dApp), Platforms: []string{"linux/amd64"}},
		{Name: "registry.example/team/multi:2", Source: srcs[1].Ref, Digest: dList, OriginalDigest: dList,
			MediaType: manifest.DockerV2ListMediaType, Size: int64(len(list)), Platforms: []string{"linux/amd64", "linux/arm64/v8"}},
		{Name: "registry.example/team/multi-arm:2", Source: srcs[2].Ref, OriginalDigest: dList,
			MediaType: manifest.DockerV2ListMediaType, Platforms: []string{"linux/arm64/v8"}},
	}
	if len(res) == 3 {
		want[2].Digest, want[2].Size = res[2].Digest, res[2].Size
	}
	if !reflect.DeepEqual(res, want) {
		t.Fatalf("results:\n got %+v\nwant %+v", res, want)
	}
	if res[2].Digest == dList {
		t.Errorf("filtered list kept the source digest")
	}
	var filtered manifestJSON
	readJSONBlob(t, dst, res[2].Digest, &filtered)
	if filtered.MediaType != manifest.DockerV2ListMediaType || len(filtered.Manifests) != 1 || filtered.Manifests[0].Digest != dArm {
		t.Errorf("filtered list: %+v, want only %s", filtered, dArm)
	}
	// Blob bytes are the registry's: every file verifies, and the manifests
	// stored are byte-identical to those served.
	blobFiles(t, dst)
	for _, d := range []digest.Digest{dApp, dList, dAmd, dArm} {
		a, err1 := os.ReadFile(blobPath(store, d))
		b, err2 := os.ReadFile(blobPath(dst, d))
		if err1 != nil || err2 != nil || string(a) != string(b) {
			t.Errorf("manifest %s not stored unchanged (%v, %v)", d, err1, err2)
		}
	}
	for _, r := range res {
		if got := libRawDigest(t, "oci:"+dst+":"+r.Name); got != r.Digest {
			t.Errorf("%s: oci transport reads %s, want %s", r.Name, got, r.Digest)
		}
	}
	got, err := ReadIndex(os.DirFS(dst), ".")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 {
		t.Errorf("ReadIndex: %+v", got)
	}
}

// dockerize writes a Docker schema 2 manifest for the OCI image d of the
// layout (same config and layer blobs) and returns its digest.
func dockerize(t *testing.T, layout string, d digest.Digest) digest.Digest {
	t.Helper()
	var m manifestJSON
	readJSONBlob(t, layout, d, &m)
	layers := []map[string]any{}
	for _, l := range m.Layers {
		layers = append(layers, map[string]any{"mediaType": manifest.DockerV2Schema2LayerMediaType, "size": l.Size, "digest": l.Digest})
	}
	data, err := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     manifest.DockerV2Schema2MediaType,
		"config":        map[string]any{"mediaType": manifest.DockerV2Schema2ConfigMediaType, "size": m.Config.Size, "digest": m.Config.Digest},
		"layers":        layers,
	})
	if err != nil {
		t.Fatal(err)
	}
	return putBlob(t, layout, data)
}

func putBlob(t *testing.T, layout string, data []byte) digest.Digest {
	t.Helper()
	d := digest.FromBytes(data)
	if err := os.WriteFile(blobPath(layout, d), data, 0o644); err != nil {
		t.Fatal(err)
	}
	return d
}

func blobSize(t *testing.T, layout string, d digest.Digest) int64 {
	t.Helper()
	st, err := os.Stat(blobPath(layout, d))
	if err != nil {
		t.Fatal(err)
	}
	return st.Size()
}

// serveRegistry starts the distribution registry (distributiontest) and
// puts into it, through its API, every blob of the layout in each
// repository of tags, then the manifests: those of the lists by digest
// first, then each tagged one. tags maps "repo:tag" to a manifest digest
// of the layout. It returns the registry, which keeps the manifests' bytes.
func serveRegistry(t *testing.T, layout string, tags map[string]digest.Digest) *distributiontest.Registry {
	t.Helper()
	reg := distributiontest.Start(t)
	blobs := blobFiles(t, layout)
	for _, rt := range slices.Sorted(maps.Keys(tags)) {
		repo, tag, _ := strings.Cut(rt, ":")
		for d := range blobs {
			data, err := os.ReadFile(blobPath(layout, d))
			if err != nil {
				t.Fatal(err)
			}
			reg.PutBlob(t, repo, data)
		}
		put := func(d digest.Digest, ref string) manifestJSON {
			t.Helper()
			var m manifestJSON
			readJSONBlob(t, layout, d, &m)
			data, err := os.ReadFile(blobPath(layout, d))
			if err != nil {
				t.Fatal(err)
			}
			reg.PutManifest(t, repo, ref, m.MediaType, data)
			return m
		}
		var top manifestJSON
		readJSONBlob(t, layout, tags[rt], &top)
		for _, m := range top.Manifests {
			put(m.Digest, m.Digest.String())
		}
		put(tags[rt], tag)
	}
	return reg
}
