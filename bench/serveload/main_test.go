package main

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
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

// fakeRegistry serves one image of two blobs, the second as corrupt as
// the test wants.
func fakeRegistry(t *testing.T, corrupt *bool) (*httptest.Server, string) {
	layer := []byte(strings.Repeat("layer", 100000))
	config := []byte(`{"architecture":"amd64","os":"linux"}`)
	man, _ := json.Marshal(map[string]any{
		"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
		"config": map[string]any{"mediaType": "application/vnd.oci.image.config.v1+json", "digest": digestOf(config), "size": len(config)},
		"layers": []any{map[string]any{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": digestOf(layer), "size": len(layer)}},
	})
	blobs := map[string][]byte{digestOf(config): config, digestOf(layer): layer}
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/v2/":
			w.WriteHeader(200)
		case r.URL.Path == "/v2/ex/app/manifests/1.0":
			w.Header().Set("Docker-Content-Digest", digestOf(man))
			w.Write(man)
		case strings.HasPrefix(r.URL.Path, "/v2/ex/app/blobs/"):
			b, ok := blobs[strings.TrimPrefix(r.URL.Path, "/v2/ex/app/blobs/")]
			if !ok {
				http.NotFound(w, r)
				return
			}
			if *corrupt && len(b) == len(layer) {
				b = append([]byte("X"), b[1:]...)
			}
			w.Write(b)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	ca := filepath.Join(t.TempDir(), "ca.crt")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	return srv, ca
}

func TestRun(t *testing.T) {
	corrupt := false
	srv, ca := fakeRegistry(t, &corrupt)
	cfg, err := parseConfig(srv.URL, "registry", "ex/app:1.0", 4, 50)
	if err != nil {
		t.Fatal(err)
	}
	cfg.verify = true
	c, err := newClient(ca, "", "", cfg.clients, cfg.base.Hostname())
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
	corrupt = true
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
