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
	for in, want := range map[string]time.Duration{"": DefaultExpiresAfter, "30d": 30 * 24 * time.Hour, "48h": 48 * time.Hour, "36500d": MaxExpiresAfter} {
		b := BundleSpec{ExpiresAfter: in}
		if got, err := b.Validity(); err != nil || got != want {
			t.Errorf("%q: got %s, %v; want %s", in, got, err, want)
		}
	}
	for _, in := range []string{"0d", "-1d", "1m", "x", "99999999d", "36501d", "2562047h", "876001h"} {
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

const namedSpec = `apiVersion: ferry.dev/v1alpha1
kind: Bundle
metadata:
  name: example
  version: 1.0.0
spec:
  repositories:
    - name: el9-baseos
      baseurl: https://mirror.example/el9/BaseOS/x86_64/os/
      gpgkey: keys/RPM-GPG-KEY-el9
      caFile: certs/ca.pem
    - name: local
      baseurl: file:///srv/mirror/extras/
      gpgkey: keys/local.asc
  packages:
    - directory: rpms/
      repo: base
    - repo: extras
      names: ["conntrack-tools", "socat >= 1.7.4", "iptables-nft = 1.8.10-11.el9", "kernel-tools>=2:5.14"]
      from: [el9-baseos]
      exclude: ["glibc", "bash", "systemd*"]
      arches: [x86_64, noarch]
`

func TestNamedPackagesSpec(t *testing.T) {
	if _, err := ParseSpec([]byte(namedSpec), "/specs"); !errors.Is(err, ErrNotLocked) || !strings.Contains(err.Error(), "spec.packages[1].names: ") || !strings.Contains(err.Error(), "builder lock") {
		t.Fatalf("strict reading of a spec with names: %v, want ErrNotLocked naming builder lock", err)
	}
	s, err := parseSpec([]byte(namedSpec), "/specs", SpecOptions{AllowUnpinned: true})
	if err != nil {
		t.Fatal(err)
	}
	if !s.HasNamedPackages() || len(s.Spec.Repositories) != 2 {
		t.Fatalf("parsed %+v", s.Spec)
	}
	p := s.Spec.Packages[1]
	if p.RepoName() != "extras" || !p.Excluded("systemd-libs") || p.Excluded("socat") || len(p.ArchList()) != 2 {
		t.Errorf("entry %+v", p)
	}
	if src := s.PackageSources(1); len(src) != 1 || src[0].Name != "el9-baseos" {
		t.Errorf("sources %+v", src)
	}
	s.Spec.Packages[1].From = nil
	if src := s.PackageSources(1); len(src) != 2 || src[1].Name != "local" {
		t.Errorf("default sources %+v", src)
	}
	if a := (PackagesSpec{}).ArchList(); strings.Join(a, ",") != "x86_64,noarch" {
		t.Errorf("default arches %v", a)
	}

	tests := []struct{ from, to, want string }{
		{"      repo: base\n", "      repo: base\n      names: [a]\n", "spec.packages[0]: has both directory and names"},
		{"    - repo: extras\n      names: [", "    - repo: extras\n      unknown: 1\n      names: [", "spec.packages[1].unknown: unknown field"},
		{`names: ["conntrack-tools", `, `names: ["conntrack tools", `, `spec.packages[1].names[0]: "conntrack tools" is not a package name`},
		{`"socat >= 1.7.4"`, `"socat => 1.7.4"`, `spec.packages[1].names[1]: "socat => 1.7.4": unknown comparison "=>"`},
		{`"socat >= 1.7.4"`, `"socat >= 1.7-"`, `spec.packages[1].names[1]: "socat >= 1.7-": "1.7-" is not a version`},
		{`"socat >= 1.7.4"`, `"conntrack-tools = 1"`, `spec.packages[1].names[1]: package conntrack-tools is named twice (also spec.packages[1].names[0])`},
		{`"socat >= 1.7.4"`, `"bash"`, `spec.packages[1].names[1]: package bash is also excluded`},
		{"from: [el9-baseos]", "from: [el9-appstream]", `spec.packages[1].from[0]: no repository named "el9-appstream" in spec.repositories`},
		{`exclude: ["glibc"`, `exclude: ["glibc["`, `spec.packages[1].exclude[0]: "glibc[" is not a package name or shell glob`},
		{"arches: [x86_64, noarch]", "arches: [x86_64, X86]", `spec.packages[1].arches[1]: "X86" is not an architecture`},
		{"arches: [x86_64, noarch]", "arches: [noarch, noarch]", `spec.packages[1].arches[1]: noarch is listed twice`},
		{"    - directory: rpms/\n      repo: base\n", "    - repo: base\n", "spec.packages[0].directory: is required (or names"},
		{"baseurl: https://mirror.example/el9/BaseOS/x86_64/os/", "baseurl: http://mirror.example/el9/", "spec.repositories[0].baseurl: \"http://mirror.example/el9/\": plain http is refused"},
		{"baseurl: https://mirror.example/el9/BaseOS/x86_64/os/", "baseurl: https://user:pw@mirror.example/el9/", "spec.repositories[0].baseurl: \"https://user:pw@mirror.example/el9/\" holds credentials"},
		{"baseurl: https://mirror.example/el9/BaseOS/x86_64/os/", "baseurl: ftp://mirror.example/", "spec.repositories[0].baseurl: \"ftp://mirror.example/\": the scheme must be https://"},
		{"baseurl: file:///srv/mirror/extras/", "baseurl: file://srv/mirror/", "spec.repositories[1].baseurl: \"file://srv/mirror/\": a file URL must hold an absolute local path"},
		{"      gpgkey: keys/local.asc\n", "", "spec.repositories[1].gpgkey: is required"},
		{"      gpgkey: keys/local.asc\n", "      gpgkey: k\n      caFile: ca.pem\n", "spec.repositories[1].caFile: applies to https:// repositories only"},
		{"    - name: local\n", "    - name: el9-baseos\n", `spec.repositories[1].name: duplicate repository name "el9-baseos" (also spec.repositories[0])`},
		{"    - name: local\n", "    - name: ../local\n", `spec.repositories[1].name: must be letters`},
		{"    - directory: rpms/\n      repo: base\n", "    - directory: rpms/\n      repo: base\n      exclude: [x]\n", "spec.packages[0].exclude: applies to names only"},
	}
	for _, tt := range tests {
		y := strings.Replace(namedSpec, tt.from, tt.to, 1)
		if y == namedSpec {
			t.Fatalf("edit %q did not apply", tt.from)
		}
		_, err := parseSpec([]byte(y), "/", SpecOptions{AllowUnpinned: true})
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%q → %q: got %v, want %q", tt.from, tt.to, err, tt.want)
		}
	}
	// Names without any repository to resolve them from.
	noRepos := namedSpec[:strings.Index(namedSpec, "  repositories:")] + namedSpec[strings.Index(namedSpec, "  packages:"):]
	noRepos = strings.Replace(noRepos, "      from: [el9-baseos]\n", "", 1)
	if _, err := parseSpec([]byte(noRepos), "/", SpecOptions{AllowUnpinned: true}); err == nil || !strings.Contains(err.Error(), "spec.packages[1].names: packages by name need spec.repositories") {
		t.Errorf("names without repositories: %v", err)
	}
}

func TestParsePackageConstraint(t *testing.T) {
	for in, want := range map[string]PackageConstraint{
		"socat":                        {Name: "socat"},
		"  socat ":                     {Name: "socat"},
		"socat >= 1.7.4":               {Name: "socat", Op: ">=", EVR: "1.7.4"},
		"socat>=1.7.4":                 {Name: "socat", Op: ">=", EVR: "1.7.4"},
		"iptables-nft = 1.8.10-11.el9": {Name: "iptables-nft", Op: "=", EVR: "1.8.10-11.el9"},
		"k == 2:1.0~rc1^git2":          {Name: "k", Op: "=", EVR: "2:1.0~rc1^git2"},
		"libstdc++ < 12":               {Name: "libstdc++", Op: "<", EVR: "12"},
		"a <= 1":                       {Name: "a", Op: "<=", EVR: "1"},
		"a > 1":                        {Name: "a", Op: ">", EVR: "1"},
	} {
		got, err := ParsePackageConstraint(in)
		if err != nil || got != want {
			t.Errorf("%q: %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "a b", ">= 1", "a >=", "a >= 1 2", "a =< 1", "a >= x:1", "a = 1-2-3", "a/b", "-a", "a >= 1:"} {
		if c, err := ParsePackageConstraint(in); err == nil {
			t.Errorf("%q accepted as %+v", in, c)
		}
	}
}

func FuzzParsePackageConstraint(f *testing.F) {
	for _, s := range []string{"socat", "socat >= 1.7.4", "a=1:2-3", "a <= ~^", " x > 0 ", "=="} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParsePackageConstraint(s)
		if err != nil {
			return
		}
		// Its canonical form parses back to the same.
		again, err := ParsePackageConstraint(c.String())
		if err != nil || again != c {
			t.Fatalf("%q → %+v → %q → %+v, %v", s, c, c.String(), again, err)
		}
	})
}
