package registry_test

import (
	"bytes"
	"encoding/json"
	"encoding/pem"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ferry-k8s/ferry/images/registry"
	"github.com/ferry-k8s/ferry/images/registry/registrytest"

	"github.com/ferry-k8s/ferry/images/imagetest"
	"github.com/ferry-k8s/ferry/internal/testutil"
	digest "github.com/opencontainers/go-digest"
	imgspecv1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// skopeo runs the real skopeo binary; a missing binary fails the test.
func skopeo(t *testing.T, args ...string) ([]byte, error) {
	t.Helper()
	bin := testutil.Need(t, "skopeo")
	cmd := exec.Command(bin, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir()) // no user registries.conf or auth
	out, err := cmd.Output()
	if err != nil {
		return out, &exec.ExitError{ProcessState: cmd.ProcessState, Stderr: stderr.Bytes()}
	}
	return out, nil
}

func mustSkopeo(t *testing.T, args ...string) []byte {
	t.Helper()
	out, err := skopeo(t, args...)
	if err != nil {
		t.Fatalf("skopeo %s: %v\n%s", strings.Join(args, " "), err, err.(*exec.ExitError).Stderr)
	}
	return out
}

// tlsRegistry serves a layout made by imagetest over TLS and returns the
// host:port and a --cert-dir holding the server's certificate as ca.crt.
func tlsRegistry(t *testing.T, layout string) (host, certDir string) {
	t.Helper()
	store, err := registrytest.OpenLayoutStore(layout)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(registry.New(store, registry.Options{}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshakes of the test without --cert-dir
	srv.StartTLS()
	t.Cleanup(srv.Close)
	certDir = t.TempDir()
	pemCert := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	if err := os.WriteFile(filepath.Join(certDir, "ca.crt"), pemCert, 0o644); err != nil {
		t.Fatal(err)
	}
	return srv.Listener.Addr().String(), certDir
}

// ociIndexDigest returns the digest of the manifest named ref in an OCI
// layout's index.json.
func ociIndexDigest(t *testing.T, layout, ref string) digest.Digest {
	t.Helper()
	var idx imgspecv1.Index
	if err := readJSON(filepath.Join(layout, "index.json"), &idx); err != nil {
		t.Fatal(err)
	}
	for _, m := range idx.Manifests {
		if m.Annotations[imgspecv1.AnnotationRefName] == ref {
			return m.Digest
		}
	}
	t.Fatalf("%s: no %q in index.json", layout, ref)
	return ""
}

// TestSkopeo pulls from the registry with the real skopeo, over verified
// TLS: inspect, list-tags, and copies (an image, a multi-platform index
// with --all, by tag and by digest) whose digests must equal the source's.
func TestSkopeo(t *testing.T) {
	src := t.TempDir()
	dApp, err := imagetest.WriteImage(src, "registry.example.com/app:1.0", 1, []int64{64 << 10, 700 << 10})
	if err != nil {
		t.Fatal(err)
	}
	dIdx, perPlatform, err := imagetest.WriteIndex(src, "docker.io/library/multi:2", 2)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := imagetest.WriteImage(src, "registry.example.com/app:1.1", 3, []int64{1 << 10}); err != nil {
		t.Fatal(err)
	}
	host, certDir := tlsRegistry(t, src)
	app := "docker://" + host + "/registry.example.com/app"
	multi := "docker://" + host + "/docker.io/library/multi"

	t.Run("inspect", func(t *testing.T) {
		var out struct {
			Digest   digest.Digest
			RepoTags []string
		}
		if err := json.Unmarshal(mustSkopeo(t, "inspect", "--cert-dir", certDir, app+":1.0"), &out); err != nil {
			t.Fatal(err)
		}
		if out.Digest != dApp {
			t.Errorf("skopeo inspect: digest %s, want %s", out.Digest, dApp)
		}
		if !slices.Equal(out.RepoTags, []string{"1.0", "1.1"}) {
			t.Errorf("skopeo inspect: tags %q", out.RepoTags)
		}
		raw := mustSkopeo(t, "inspect", "--raw", "--cert-dir", certDir, multi+":2")
		if got := digest.FromBytes(raw); got != dIdx {
			t.Errorf("skopeo inspect --raw: digest %s, want %s", got, dIdx)
		}
	})
	t.Run("list-tags", func(t *testing.T) {
		var out struct{ Tags []string }
		if err := json.Unmarshal(mustSkopeo(t, "list-tags", "--cert-dir", certDir, app), &out); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(out.Tags, []string{"1.0", "1.1"}) {
			t.Errorf("skopeo list-tags: %q", out.Tags)
		}
	})
	t.Run("copy", func(t *testing.T) {
		dst := filepath.Join(t.TempDir(), "out")
		for _, c := range []struct {
			from, to string
			all      bool
			want     digest.Digest
		}{
			{app + ":1.0", "app", false, dApp},
			{app + "@" + dApp.String(), "app-by-digest", false, dApp},
			{multi + ":2", "multi", true, dIdx},
			{multi + "@" + perPlatform["linux/arm64"].String(), "arm64", false, perPlatform["linux/arm64"]},
		} {
			args := []string{"--insecure-policy", "copy", "--quiet", "--src-cert-dir", certDir}
			if c.all {
				args = append(args, "--all")
			}
			mustSkopeo(t, append(args, c.from, "oci:"+dst+":"+c.to)...)
			if got := ociIndexDigest(t, dst, c.to); got != c.want {
				t.Errorf("skopeo copy %s: digest %s, want %s", c.from, got, c.want)
			}
		}
		// Every blob copied is byte-identical to the source's.
		blobs, err := filepath.Glob(filepath.Join(dst, "blobs", "sha256", "*"))
		if err != nil || len(blobs) < 10 {
			t.Fatalf("%d blobs copied (%v)", len(blobs), err)
		}
		for _, b := range blobs {
			got, _ := os.ReadFile(b)
			want, err := os.ReadFile(filepath.Join(src, "blobs", "sha256", filepath.Base(b)))
			if err != nil || !bytes.Equal(got, want) {
				t.Errorf("blob %s differs from the source (%v)", filepath.Base(b), err)
			}
		}
	})
	t.Run("refusals", func(t *testing.T) {
		_, err := skopeo(t, "inspect", "--cert-dir", certDir, app+":9.9")
		if err == nil || !strings.Contains(string(err.(*exec.ExitError).Stderr), "manifest unknown") {
			t.Errorf("unknown tag: %v", err)
		}
		// The server's certificate is really checked: without it, no pull.
		_, err = skopeo(t, "inspect", app+":1.0")
		if err == nil || !strings.Contains(string(err.(*exec.ExitError).Stderr), "certificate") {
			t.Errorf("without --cert-dir: %v", err)
		}
		// Pushing is refused.
		_, err = skopeo(t, "--insecure-policy", "copy", "--quiet", "--dest-cert-dir", certDir, "oci:"+src+":registry.example.com/app:1.1", app+":pushed")
		if err == nil {
			t.Fatal("skopeo copy to the registry succeeded")
		}
		stderr := string(err.(*exec.ExitError).Stderr)
		t.Logf("push refused: %s", stderr)
		if !strings.Contains(stderr, "unsupported: this registry is read-only") {
			t.Errorf("push refused, but not with UNSUPPORTED: %s", stderr)
		}
	})
}

func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}
