package content

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"testing"

	digest "github.com/opencontainers/go-digest"

	"github.com/ferry-k8s/ferry/images/registry"
)

func TestRegistryOverHTTPS(t *testing.T) {
	e := newEnv(t, Options{})
	f := e.f
	e.mustAdd(f.iso100, f.iso110)
	accept := "Accept"
	manifestTypes := "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json"

	if code, _, body := e.get("/v2/"); code != 200 || string(body) != "{}" {
		t.Fatalf("/v2/: %d %s", code, body)
	}
	// By tag: each bundle's own tags, and latest from the newest bundle.
	for tag, want := range map[string]digest.Digest{"1.0": f.appA, "1.1": f.appB, "latest": f.appB} {
		code, h, body := e.get("/v2/"+appRepo+"/manifests/"+tag, accept, manifestTypes)
		if code != 200 || h.Get("Docker-Content-Digest") != want.String() || digest.FromBytes(body) != want {
			t.Errorf("app:%s: %d, digest %s (body %s), want %s", tag, code, h.Get("Docker-Content-Digest"), digest.FromBytes(body), want)
		}
	}
	// By digest, from either bundle.
	for _, d := range []digest.Digest{f.appA, f.appB} {
		code, h, body := e.get("/v2/"+appRepo+"/manifests/"+d.String(), accept, manifestTypes)
		if code != 200 || digest.FromBytes(body) != d || h.Get("Content-Type") != "application/vnd.oci.image.manifest.v1+json" {
			t.Errorf("app@%s: %d %s", d, code, h.Get("Content-Type"))
		}
	}
	// Tags of both bundles, sorted.
	code, _, body := e.get("/v2/" + appRepo + "/tags/list")
	var tags struct {
		Name string
		Tags []string
	}
	if err := json.Unmarshal(body, &tags); code != 200 || err != nil || !slices.Equal(tags.Tags, []string{"1.0", "1.1", "latest"}) {
		t.Errorf("tags: %d %s", code, body)
	}
	code, _, body = e.get("/v2/_catalog")
	if code != 200 || !bytes.Contains(body, []byte(`"`+appRepo+`"`)) || !bytes.Contains(body, []byte(`"`+multiRepo+`"`)) {
		t.Errorf("catalog: %d %s", code, body)
	}

	// A blob, whole and by range, equal to the layout's.
	big := layoutBlob(f.layout, f.bigB.Digest)
	code, h, body := e.get("/v2/" + appRepo + "/blobs/" + f.bigB.Digest.String())
	if code != 200 || !bytes.Equal(body, big) || h.Get("Docker-Content-Digest") != f.bigB.Digest.String() {
		t.Errorf("blob: %d, %d bytes, want %d; %v", code, len(body), len(big), h)
	}
	start, end := int64(3<<20)-100, int64(3<<20)+99 // across a chunk boundary
	code, h, body = e.get("/v2/"+appRepo+"/blobs/"+f.bigB.Digest.String(), "Range", fmt.Sprintf("bytes=%d-%d", start, end))
	if code != http.StatusPartialContent || !bytes.Equal(body, big[start:end+1]) {
		t.Errorf("blob range: %d %v, %d bytes", code, h, len(body))
	}

	// containerd asks the mirror with ns=<upstream host>.
	if code, _, body := e.get("/v2/ferry/app/manifests/1.0?ns=registry.example.com", accept, manifestTypes); code != 200 || digest.FromBytes(body) != f.appA {
		t.Errorf("mirror request with ns: %d", code)
	}

	// Unknowns: repository, tag, digest; and a blob of another repository
	// of the same bundle is not served under this one.
	multiCfg := multiConfig(t, e)
	for path, want := range map[string]int{
		"/v2/registry.example.com/ferry/nope/manifests/1.0":                    404,
		"/v2/" + appRepo + "/manifests/2.0":                                    404,
		"/v2/" + appRepo + "/manifests/" + digest.FromString("x").String():     404,
		"/v2/" + appRepo + "/blobs/" + digest.FromString("x").String():         404,
		"/v2/" + appRepo + "/blobs/" + multiCfg.String():                       404,
		"/v2/" + multiRepo + "/blobs/" + multiCfg.String():                     200,
		"/v2/" + appRepo + "/manifests/" + f.cfgB.Digest.String():              404, // a config is no manifest
		"/v2/" + appRepo + "/blobs/" + f.appA.String():                         200, // a manifest is a blob too
		"/v2/" + appRepo + "/blobs/sha256:" + f.bigB.Digest.Encoded()[:10]:     400,
		"/v2/" + appRepo + "/tags/list?n=1":                                    200,
		"/v2/registry.example.com/ferry/nope/tags/list":                        404,
		"/v2/" + appRepo + "/manifests/" + f.appA.String() + "/../../../x/1.0": 400,
	} {
		if code, _, body := e.get(path); code != want {
			t.Errorf("GET %s: %d, want %d: %s", path, code, want, body)
		}
	}
	if got := metric(t, e.svc.m.requests.WithLabelValues("registry-manifests", "200")); got < 5 {
		t.Errorf("requests{route=registry-manifests,code=200} = %v", got)
	}
}

// multiConfig finds the config blob of the multi image's amd64 instance.
func multiConfig(t *testing.T, e *env) digest.Digest {
	t.Helper()
	_, _, idx := e.get("/v2/"+multiRepo+"/manifests/1.0", "Accept", "application/vnd.oci.image.index.v1+json")
	var index struct {
		Manifests []struct{ Digest digest.Digest }
	}
	if err := json.Unmarshal(idx, &index); err != nil || len(index.Manifests) != 1 {
		t.Fatalf("multi index: %v %s", err, idx)
	}
	_, _, m := e.get("/v2/"+multiRepo+"/manifests/"+index.Manifests[0].Digest.String(), "Accept", "application/vnd.oci.image.manifest.v1+json")
	var mf struct {
		Config struct{ Digest digest.Digest }
	}
	if err := json.Unmarshal(m, &mf); err != nil {
		t.Fatal(err)
	}
	return mf.Config.Digest
}

// TestStore checks the registry.Store contract directly, including the
// errors the handler maps.
func TestStore(t *testing.T) {
	e := newEnv(t, Options{})
	f := e.f
	ctx := context.Background()
	if repos, _ := e.svc.Repositories(ctx); len(repos) != 0 {
		t.Errorf("empty service lists %v", repos)
	}
	e.mustAdd(f.iso100)
	if repos, _ := e.svc.Repositories(ctx); !slices.Equal(repos, []string{appRepo, multiRepo}) {
		t.Errorf("repositories %v", repos)
	}
	if d, err := e.svc.Resolve(ctx, appRepo, "latest"); err != nil || d.Digest != f.appA {
		t.Errorf("latest with 1.0.0 only: %v %v", d, err)
	}
	e.mustAdd(f.iso110)
	if d, err := e.svc.Resolve(ctx, appRepo, "latest"); err != nil || d.Digest != f.appB {
		t.Errorf("latest with 1.1.0 added: %v %v", d, err)
	}
	if _, err := e.svc.Resolve(ctx, "nope/x", "1"); !errors.Is(err, registry.ErrNameUnknown) {
		t.Errorf("unknown repo: %v", err)
	}
	if _, err := e.svc.Resolve(ctx, appRepo, "9"); !errors.Is(err, registry.ErrManifestUnknown) {
		t.Errorf("unknown tag: %v", err)
	}
	if _, _, err := e.svc.Open(ctx, appRepo, digest.FromString("x")); !errors.Is(err, registry.ErrBlobUnknown) {
		t.Errorf("unknown blob: %v", err)
	}
	c, desc, err := e.svc.Open(ctx, appRepo, f.cfgB.Digest)
	if err != nil || desc.Size != f.cfgB.Size || desc.Digest != f.cfgB.Digest {
		t.Fatalf("open config: %v %v", desc, err)
	}
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(c); err != nil || digest.FromBytes(buf.Bytes()) != f.cfgB.Digest {
		t.Errorf("config content: %v", err)
	}
	c.Close()
	c.Close() // twice is harmless
	// Removing 1.1.0: latest falls back to 1.0.0's, B is gone.
	if err := e.svc.Remove("1.1.0"); err != nil {
		t.Fatal(err)
	}
	if d, err := e.svc.Resolve(ctx, appRepo, "latest"); err != nil || d.Digest != f.appA {
		t.Errorf("latest after removing 1.1.0: %v %v", d, err)
	}
	if _, err := e.svc.Resolve(ctx, appRepo, f.appB.String()); !errors.Is(err, registry.ErrManifestUnknown) {
		t.Errorf("B after removing 1.1.0: %v", err)
	}
}
