package images

import (
	"reflect"
	"strings"
	"testing"
	"testing/fstest"

	digest "github.com/opencontainers/go-digest"
	imgspecv1 "github.com/opencontainers/image-spec/specs-go/v1"
)

const layoutFile = `{"imageLayoutVersion":"1.0.0"}`

var (
	d1 = digest.FromString("one")
	d2 = digest.FromString("two")
)

func layoutFS(index string) fstest.MapFS {
	return fstest.MapFS{
		"oci-layout": {Data: []byte(layoutFile)},
		"index.json": {Data: []byte(index)},
	}
}

// validIndex is what Copy writes for two images.
func validIndex(t testing.TB) []byte {
	t.Helper()
	x := &layoutIndex{}
	x.put(descriptorFor(Result{
		Name: "registry.k8s.io/pause:3.10", Source: "docker://registry.k8s.io/pause:3.10",
		Digest: d2, OriginalDigest: d1, MediaType: imgspecv1.MediaTypeImageIndex, Size: 100,
		Platforms: []string{"linux/amd64", "linux/arm64/v8"},
	}))
	x.put(descriptorFor(Result{
		Name: "example.com/app:1", Source: "docker-archive:/x.tar",
		Digest: d1, OriginalDigest: d1, MediaType: "application/vnd.docker.distribution.manifest.v2+json", Size: 200,
		Platforms: []string{"linux/amd64"}, Synthesized: true,
	}))
	data, err := x.marshal()
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestReadIndex(t *testing.T) {
	got, err := ReadIndex(layoutFS(string(validIndex(t))), ".")
	if err != nil {
		t.Fatal(err)
	}
	want := []Result{
		{Name: "example.com/app:1", Source: "docker-archive:/x.tar", Digest: d1, OriginalDigest: d1,
			MediaType: "application/vnd.docker.distribution.manifest.v2+json", Size: 200,
			Platforms: []string{"linux/amd64"}, Synthesized: true},
		{Name: "registry.k8s.io/pause:3.10", Source: "docker://registry.k8s.io/pause:3.10", Digest: d2, OriginalDigest: d1,
			MediaType: imgspecv1.MediaTypeImageIndex, Size: 100, Platforms: []string{"linux/amd64", "linux/arm64/v8"}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v\nwant %+v", got, want)
	}

	// A layout in a subdirectory, named by ref.name only (as skopeo writes).
	sub := fstest.MapFS{
		"iso/images/oci-layout": {Data: []byte(layoutFile)},
		"iso/images/index.json": {Data: []byte(`{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"` + d1.String() + `","size":10,"platform":{"os":"linux","architecture":"arm64"},"annotations":{"org.opencontainers.image.ref.name":"example.com/x:1"}}]}`)},
	}
	got, err = ReadIndex(sub, "iso/images")
	if err != nil {
		t.Fatal(err)
	}
	want = []Result{{Name: "example.com/x:1", Digest: d1, OriginalDigest: d1, MediaType: imgspecv1.MediaTypeImageManifest, Size: 10, Platforms: []string{"linux/arm64"}}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v\nwant %+v", got, want)
	}
}

func TestReadIndexErrors(t *testing.T) {
	entry := func(fields string) string {
		return `{"schemaVersion":2,"manifests":[{` + fields + `}]}`
	}
	okFields := `"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"` + d1.String() + `","size":10`
	name := `"annotations":{"org.opencontainers.image.ref.name":"example.com/x:1"}`
	tests := []struct {
		fsys fstest.MapFS
		root string
		want string
	}{
		{fstest.MapFS{"index.json": {Data: []byte(entry(okFields + "," + name))}}, ".", "oci-layout"},
		{fstest.MapFS{"oci-layout": {Data: []byte(`{"imageLayoutVersion":"2.0.0"}`)}, "index.json": {Data: []byte(`{}`)}}, ".", "imageLayoutVersion"},
		{fstest.MapFS{"oci-layout": {Data: []byte(layoutFile)}}, ".", "index.json"},
		{fstest.MapFS{"oci-layout": {Data: []byte(layoutFile)}, "index.json/x": {Data: []byte("{}")}}, ".", "not a regular file"},
		{layoutFS(`{"schemaVersion":2,"manifests":[]}`), "../x", "invalid root"},
		{layoutFS(`{"schemaVersion":2,"manifests":[]}`), "/abs", "invalid root"},
		{layoutFS(`{"schemaVersion":2,"manifests":[` + strings.Repeat(" ", maxIndexSize) + `]}`), ".", "larger than"},
		{layoutFS(`not json`), ".", "invalid character"},
		{layoutFS(`{"manifests":[]}`), ".", "schemaVersion"},
		{layoutFS(`{"schemaVersion":1,"manifests":[]}`), ".", "schemaVersion"},
		{layoutFS(`{"schemaVersion":2,"mediaType":"text/plain","manifests":[]}`), ".", "mediaType"},
		{layoutFS(entry(`"mediaType":"text/plain","digest":"` + d1.String() + `","size":10,` + name)), ".", "unsupported mediaType"},
		{layoutFS(entry(`"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:abc","size":10,` + name)), ".", "invalid digest"},
		{layoutFS(entry(`"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"md5:d41d8cd98f00b204e9800998ecf8427e","size":10,` + name)), ".", "invalid digest"},
		{layoutFS(entry(`"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"` + d1.String() + `","size":-1,` + name)), ".", "size"},
		{layoutFS(entry(`"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"` + d1.String() + `","size":99999999999,` + name)), ".", "size"},
		{layoutFS(entry(`"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"` + d1.String() + `","size":1e3,` + name)), ".", "cannot unmarshal"},
		{layoutFS(entry(okFields)), ".", "no name"},
		{layoutFS(entry(okFields + `,"annotations":{"org.opencontainers.image.ref.name":"a b"}`)), ".", "invalid image name"},
		{layoutFS(entry(okFields + `,"annotations":{"org.opencontainers.image.ref.name":"a//b"}`)), ".", "invalid image name"},
		{layoutFS(entry(okFields + `,"annotations":{"org.opencontainers.image.ref.name":"a:1","dev.ferry.image.name":"b:1"}`)), ".", "disagrees"},
		{layoutFS(entry(okFields + `,"annotations":{"dev.ferry.image.name":"b:1","dev.ferry.image.platforms":"linux"}`)), ".", "platforms"},
		{layoutFS(entry(okFields + `,"annotations":{"dev.ferry.image.name":"b:1","dev.ferry.image.original-digest":"x"}`)), ".", "original-digest"},
		{layoutFS(entry(okFields + `,"annotations":{"dev.ferry.image.name":"b:1","dev.ferry.image.synthesized-manifest":"yes"}`)), ".", "synthesized"},
		{layoutFS(`{"schemaVersion":2,"manifests":[{` + okFields + `,` + name + `},{` + okFields + `,` + name + `}]}`), ".", "both named"},
	}
	for i, tc := range tests {
		_, err := ReadIndex(tc.fsys, tc.root)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("case %d: error %v, want one mentioning %q", i, err, tc.want)
		}
	}
}

func TestCheckRefName(t *testing.T) {
	for _, ok := range []string{"a", "3.10", "registry.k8s.io/pause:3.10", "x/y@sha256:" + d1.Encoded(), "a--b", "A+b_c"} {
		if err := checkRefName(ok); err != nil {
			t.Errorf("checkRefName(%q): %v", ok, err)
		}
	}
	for _, bad := range []string{"", "/a", "a/", "a//b", "a..b", "a---b", ":a", "a:", "a b", "é", strings.Repeat("a", maxNameLen+1)} {
		if err := checkRefName(bad); err == nil {
			t.Errorf("checkRefName(%q) accepted", bad)
		}
	}
}

// FuzzReadIndex feeds arbitrary index.json bytes to ReadIndex. It must not
// panic, and what it accepts must satisfy its documented checks and survive
// a rewrite by Copy's index writer unchanged.
func FuzzReadIndex(f *testing.F) {
	f.Add(validIndex(f))
	f.Add([]byte(`{"schemaVersion":2,"manifests":[]}`))
	f.Add([]byte(`{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"` + d1.String() + `","size":10,"platform":{"os":"linux","architecture":"arm64","variant":"v8"},"annotations":{"org.opencontainers.image.ref.name":"example.com/x:1"}}]}`))
	f.Add([]byte(`{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.index.v1+json","digest":"` + d2.String() + `","size":1,"annotations":{"dev.ferry.image.name":"a","dev.ferry.image.platforms":"linux/amd64,linux/arm/v7","dev.ferry.image.original-digest":"` + d1.String() + `"}}]}`))
	f.Add([]byte(`{"schemaVersion":2,"manifests":null}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		res, err := ReadIndex(layoutFS(string(data)), ".")
		if err != nil {
			return
		}
		seen := map[string]bool{}
		x := &layoutIndex{}
		for i, r := range res {
			if seen[r.Name] || checkRefName(r.Name) != nil {
				t.Fatalf("bad or duplicate name %q", r.Name)
			}
			seen[r.Name] = true
			if i > 0 && res[i-1].Name >= r.Name {
				t.Fatalf("not sorted: %q before %q", res[i-1].Name, r.Name)
			}
			if checkDigest(r.Digest) != nil || checkDigest(r.OriginalDigest) != nil || r.Size <= 0 || r.Size > maxManifestSize {
				t.Fatalf("accepted bad entry %+v", r)
			}
			for _, p := range r.Platforms {
				if _, err := parsePlatform(p); err != nil {
					t.Fatalf("accepted bad platform %q", p)
				}
			}
			x.put(descriptorFor(r))
		}
		again, err := x.marshal()
		if err != nil {
			t.Fatal(err)
		}
		res2, err := ReadIndex(layoutFS(string(again)), ".")
		if err != nil {
			t.Fatalf("rewritten index rejected: %v\n%s", err, again)
		}
		if len(res) == 0 && len(res2) == 0 {
			return
		}
		if !reflect.DeepEqual(res, res2) {
			t.Fatalf("round trip changed results:\n%+v\n%+v", res, res2)
		}
	})
}
