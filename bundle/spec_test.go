package bundle

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const goodSpec = `apiVersion: ferry.dev/v1alpha1
kind: Bundle
metadata:
  name: example
  version: 1.0.0
spec:
  images:
    - source: oci:images/layout:app
  packages:
    - directory: rpms/
`

func TestParseSpecExample(t *testing.T) {
	s, err := ParseSpec([]byte(goodSpec), "/specs")
	if err != nil {
		t.Fatal(err)
	}
	if s.Metadata.Name != "example" || s.Metadata.Version != "1.0.0" || len(s.Spec.Images) != 1 || len(s.Spec.Packages) != 1 {
		t.Fatalf("parsed %+v", s)
	}
	name, err := s.ImageName(0)
	if err != nil || name != "localhost/app:latest" {
		t.Errorf("ImageName = %q, %v; want localhost/app:latest", name, err)
	}
	if got := s.Path("rpms/"); got != "/specs/rpms" {
		t.Errorf("Path = %q", got)
	}
	if d, _ := s.Spec.Validity(); d != DefaultExpiresAfter {
		t.Errorf("validity %s", d)
	}
}

func TestLoadSpecFromFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "bundle.yaml")
	if err := os.WriteFile(p, []byte(goodSpec), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := LoadSpec(p)
	if err != nil {
		t.Fatal(err)
	}
	if s.Dir != dir {
		t.Errorf("Dir = %q, want %q", s.Dir, dir)
	}
	if _, err := LoadSpec(filepath.Join(dir, "missing.yaml")); err == nil || !strings.Contains(err.Error(), "missing.yaml") {
		t.Errorf("missing file: %v", err)
	}
}

func TestSpecErrorsNameTheField(t *testing.T) {
	tests := []struct {
		name, edit, want string
	}{
		{"unknown field", "    - source: oci:images/layout:app\n      tga: x\n", `spec.images[1].tga: unknown field`},
		{"registry without digest", "    - source: docker://registry.k8s.io/pause:3.10\n", "spec.images[1].digest: missing"},
		{"bad digest", "    - source: docker://registry.k8s.io/pause:3.10\n      digest: sha256:abc\n", "spec.images[1].digest: must be sha256"},
		{"unknown top-level field", "  extra: 1\n", `spec.extra: unknown field`},
		{"duplicate name", "    - source: oci:other/layout:app\n", `spec.images[1].name: duplicate image name "localhost/app:latest" (also spec.images[0])`},
		{"duplicate explicit name", "    - source: oci:x:y\n      name: localhost/app:latest\n", "spec.images[1].name: duplicate image name"},
		{"unknown transport", "    - source: ftp://x/y\n", "spec.images[1].source"},
		{"bad platform", "    - source: oci:x:y\n      platforms: [amd64]\n", "spec.images[1].platforms[0]"},
		{"unqualified registry name", "    - source: docker://pause@sha256:" + strings.Repeat("a", 64) + "\n", "spec.images[1].name: cannot derive"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			y := strings.Replace(goodSpec, "  packages:", tt.edit+"  packages:", 1)
			_, err := ParseSpec([]byte(y), "/")
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

func TestSpecMetadataErrors(t *testing.T) {
	tests := []struct{ from, to, want string }{
		{"apiVersion: ferry.dev/v1alpha1", "apiVersion: v1", "apiVersion: must be"},
		{"kind: Bundle", "kind: Cluster", "kind: must be"},
		{"name: example", "name: Ex_ample", "metadata.name"},
		{"version: 1.0.0", "version: v1", "metadata.version"},
		{"spec:\n", "spec:\n  expiresAfter: 3x\n", "spec.expiresAfter"},
		{"spec:\n", "spec:\n  minUpgradeFrom: 2.0.0\n", "spec.minUpgradeFrom: 2.0.0 is newer"},
		{"spec:\n", "spec:\n  kubernetesVersion: 1.34\n", "spec.kubernetesVersion"},
		{"    - directory: rpms/\n", "    - directory: rpms/\n      repo: ../x\n", "spec.packages[0].repo"},
		{"    - directory: rpms/\n", "    - directory: rpms/\n    - directory: rpms\n", "spec.packages[1].directory"},
	}
	for _, tt := range tests {
		_, err := ParseSpec([]byte(strings.Replace(goodSpec, tt.from, tt.to, 1)), "/")
		var fe *FieldError
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%q → %q: got %v, want %q", tt.from, tt.to, err, tt.want)
		} else if !strings.Contains(tt.want, "unknown") && !errors.As(err, &fe) {
			t.Errorf("%q: error %v is not a FieldError", tt.to, err)
		}
	}
}

func TestValidity(t *testing.T) {
	for in, want := range map[string]time.Duration{"": DefaultExpiresAfter, "30d": 30 * 24 * time.Hour, "48h": 48 * time.Hour} {
		b := BundleSpec{ExpiresAfter: in}
		if got, err := b.Validity(); err != nil || got != want {
			t.Errorf("%q: got %s, %v; want %s", in, got, err, want)
		}
	}
	for _, in := range []string{"0d", "-1d", "1m", "x", "99999999d"} {
		b := BundleSpec{ExpiresAfter: in}
		if _, err := b.Validity(); err == nil {
			t.Errorf("%q accepted", in)
		}
	}
}

func TestImageNames(t *testing.T) {
	tests := []struct{ source, want string }{
		{"docker://registry.k8s.io/pause:3.10@sha256:" + strings.Repeat("a", 64), "registry.k8s.io/pause:3.10"},
		{"docker://localhost:5000/x/y@sha256:" + strings.Repeat("a", 64), "localhost:5000/x/y:latest"},
		{"oci:/tmp/layout", "localhost/layout:latest"},
		{"oci-archive:/tmp/app.tar", "localhost/app:latest"},
		{"oci-archive:/tmp/x.tar:app:v2", "localhost/app:v2"},
		{"oci:/tmp/layout:myapp:1.2", "localhost/myapp:1.2"},
		{"docker-archive:/tmp/Busy.tar", "localhost/busy:latest"},
		{"dir:/tmp/img", "localhost/img:latest"},
	}
	for _, tt := range tests {
		s := &Spec{Spec: BundleSpec{Images: []ImageSpec{{Source: tt.source}}}}
		got, err := s.ImageName(0)
		if err != nil || got != tt.want {
			t.Errorf("%s: got %q, %v; want %q", tt.source, got, err, tt.want)
		}
	}
}

func TestVersions(t *testing.T) {
	if !ValidVersion("1.2.3") || !ValidVersion("1.2.3-rc.1") || ValidVersion("1.2") || ValidVersion("v1.2.3") {
		t.Error("ValidVersion")
	}
	if CompareVersions("1.10.0", "1.9.9") <= 0 || CompareVersions("1.0.0-rc.1", "1.0.0") >= 0 {
		t.Error("CompareVersions")
	}
}
