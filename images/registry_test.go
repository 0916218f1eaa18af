package images

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/ferry-k8s/ferry/images/imagetest"
	digest "github.com/opencontainers/go-digest"
	"go.podman.io/image/v5/manifest"
	"go.podman.io/image/v5/types"
)

// TestCopyDockerRegistry copies Docker-typed images (schema 2 manifest and
// manifest list, as most of registry.k8s.io serves) from a registry served on
// the loopback interface, and checks that their digests are kept.
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

	host := serveRegistry(t, store, map[string]digest.Digest{
		"team/app:1":   dApp,
		"team/multi:2": dList,
	})
	dst := filepath.Join(t.TempDir(), "bundle")
	srcs := []Source{
		{Ref: "docker://" + host + "/team/app:1"}, // name derived from the reference
		{Ref: "docker://" + host + "/team/multi:2", Name: "registry.example/team/multi:2"},
		{Ref: "docker://" + host + "/team/multi@" + dList.String(), Name: "registry.example/team/multi-arm:2", Platforms: []string{"linux/arm64"}},
	}
	sys := &types.SystemContext{DockerInsecureSkipTLSVerify: types.OptionalBoolTrue}
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

// serveRegistry serves the blobs of an OCI layout through the read-only part
// of the Docker Registry HTTP API V2, on a loopback TLS listener. tags maps
// "repo:tag" to a manifest digest; manifests are also served by digest.
func serveRegistry(t *testing.T, layout string, tags map[string]digest.Digest) string {
	t.Helper()
	h := func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			http.Error(w, "read-only", http.StatusMethodNotAllowed)
			return
		}
		p := strings.TrimPrefix(r.URL.Path, "/v2/")
		if p == "" {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte("{}"))
			return
		}
		var d digest.Digest
		isManifest := false
		if i := strings.LastIndex(p, "/manifests/"); i >= 0 {
			repo, ref := p[:i], p[i+len("/manifests/"):]
			isManifest = true
			if dd, err := digest.Parse(ref); err == nil {
				d = dd
			} else {
				d = tags[repo+":"+ref]
			}
		} else if i := strings.LastIndex(p, "/blobs/"); i >= 0 {
			d, _ = digest.Parse(p[i+len("/blobs/"):])
		}
		if d == "" || d.Validate() != nil {
			http.Error(w, `{"errors":[{"code":"MANIFEST_UNKNOWN"}]}`, http.StatusNotFound)
			return
		}
		data, err := os.ReadFile(blobPath(layout, d))
		if err != nil {
			http.Error(w, `{"errors":[{"code":"BLOB_UNKNOWN"}]}`, http.StatusNotFound)
			return
		}
		ct := "application/octet-stream"
		if isManifest {
			var probe struct{ MediaType string }
			_ = json.Unmarshal(data, &probe)
			ct = probe.MediaType
		}
		w.Header().Set("Content-Type", ct)
		w.Header().Set("Docker-Content-Digest", d.String())
		w.Header().Set("Docker-Distribution-Api-Version", "registry/2.0")
		if r.Method == http.MethodHead {
			w.Header().Set("Content-Length", strconv.Itoa(len(data)))
			return
		}
		_, _ = w.Write(data)
	}
	srv := httptest.NewTLSServer(http.HandlerFunc(h))
	t.Cleanup(srv.Close)
	u, err := url.Parse(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	return u.Host
}
