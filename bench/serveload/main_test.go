package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"

	digest "github.com/opencontainers/go-digest"

	"github.com/ferry-k8s/ferry/images/registry/distributiontest"
)

func TestParseConfigRefusesRemoteServers(t *testing.T) {
	for _, base := range []string{"https://example.com:443", "https://10.0.0.1:5443", "http://127.0.0.1:80", "https://127.0.0.1:5443/prefix", "127.0.0.1:5443"} {
		if _, err := parseConfig(base, "registry", "a/b:1", 16, 10); err == nil {
			t.Errorf("%s accepted", base)
		}
	}
	for _, base := range []string{"https://127.0.0.1:5443", "https://localhost:5443", "https://[::1]:5443"} {
		if _, err := parseConfig(base, "registry", "a/b:1", 16, 10); err != nil {
			t.Errorf("%s: %v", base, err)
		}
	}
	for _, repos := range []string{"", "a/b", "a/b:", "host:5000/a"} {
		if _, err := parseConfig("https://127.0.0.1:1", "registry", repos, 16, 10); err == nil {
			t.Errorf("repos %q accepted", repos)
		}
	}
}

// testRegistry starts the distribution registry with one image, ex/app:1.0,
// of a config and one layer; it returns the registry and the layer's
// digest.
func testRegistry(t *testing.T) (*distributiontest.Registry, digest.Digest) {
	reg := distributiontest.Start(t)
	layer := []byte(strings.Repeat("layer", 100000))
	config := []byte(`{"architecture":"amd64","os":"linux"}`)
	man, err := json.Marshal(map[string]any{
		"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
		"config": map[string]any{"mediaType": "application/vnd.oci.image.config.v1+json", "digest": digestOf(config), "size": len(config)},
		"layers": []any{map[string]any{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": digestOf(layer), "size": len(layer)}},
	})
	if err != nil {
		t.Fatal(err)
	}
	reg.PutBlob(t, "ex/app", config)
	dLayer := reg.PutBlob(t, "ex/app", layer)
	reg.PutManifest(t, "ex/app", "1.0", "application/vnd.oci.image.manifest.v1+json", man)
	return reg, dLayer
}

func TestRun(t *testing.T) {
	reg, dLayer := testRegistry(t)
	cfg, err := parseConfig("https://"+reg.Host, "registry", "ex/app:1.0", 4, 50)
	if err != nil {
		t.Fatal(err)
	}
	cfg.verify = true
	c, err := newClient(reg.CAFile, "", "", cfg.clients, cfg.base.Hostname())
	if err != nil {
		t.Fatal(err)
	}
	rep, err := run(context.Background(), c, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Pull.Blobs != 2 || rep.Pull.Bytes != 500000+37 || !rep.Pull.Verified || rep.Latency.Requests != 50 || rep.Latency.P99ms <= 0 {
		t.Errorf("report %+v", rep)
	}
	if len(rep.Manifests) != 1 {
		t.Errorf("manifests %v", rep.Manifests)
	}
	// The layer's first byte changed in the registry's storage: it serves
	// the corrupt bytes, with the right size, as after a disk fault.
	blob := reg.BlobPath(dLayer)
	data, err := os.ReadFile(blob)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(blob, append([]byte("X"), data[1:]...), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := run(context.Background(), c, cfg); err == nil || !strings.Contains(err.Error(), "digest") {
		t.Errorf("a corrupt blob was not noticed: %v", err)
	}
	// Without -verify the corruption is not looked for (sizes still are).
	cfg.verify = false
	if _, err := run(context.Background(), c, cfg); err != nil {
		t.Errorf("without -verify: %v", err)
	}
	cfg.images[0].tag = "2.0"
	if _, err := run(context.Background(), c, cfg); err == nil || !strings.Contains(err.Error(), fmt.Sprint(http.StatusNotFound)) {
		t.Errorf("unknown tag: %v", err)
	}
}
