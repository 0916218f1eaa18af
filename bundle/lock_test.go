package bundle

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

const goodLock = `apiVersion: ferry.dev/v1alpha1
kind: BundleLock
specDigest: sha256:0000000000000000000000000000000000000000000000000000000000000000
images:
  - name: registry.example.com/ferry/app:1.0
    source: docker://registry.example.com/ferry/app:1.0
    digest: sha256:1111111111111111111111111111111111111111111111111111111111111111
    mediaType: application/vnd.oci.image.index.v1+json
    platforms:
      linux/amd64: sha256:2222222222222222222222222222222222222222222222222222222222222222
`

func TestParseLock(t *testing.T) {
	l, err := ParseLock([]byte(goodLock))
	if err != nil {
		t.Fatal(err)
	}
	if li := l.Image("registry.example.com/ferry/app:1.0"); li == nil || li.Platforms["linux/amd64"] == "" {
		t.Fatalf("parsed %+v", l)
	}
	// A marshalled lock parses back to the same.
	data, err := l.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ParseLock(data); err != nil {
		t.Fatalf("round trip: %v\n%s", err, data)
	}
	for _, c := range []struct{ name, from, to, want string }{
		{"kind", "kind: BundleLock", "kind: Bundle", `kind: must be "BundleLock"`},
		{"apiVersion", "ferry.dev/v1alpha1", "ferry.dev/v2", "apiVersion: must be"},
		{"spec digest", "specDigest: sha256:0", "specDigest: sha256:z", "specDigest: must be sha256"},
		{"unknown field", "    mediaType:", "    tag: x\n    mediaType:", "images[0].tag: unknown field"},
		{"name", "  - name: registry.example.com/ferry/app:1.0", "  - name: app", "images[0].name:"},
		{"source by digest", "source: docker://registry.example.com/ferry/app:1.0", "source: docker://registry.example.com/ferry/app@sha256:1", "images[0].source: must be a docker:// reference by tag"},
		{"source transport", "source: docker://", "source: oci:", "images[0].source:"},
		{"digest", "digest: sha256:1111", "digest: md5:1111", "images[0].digest: must be sha256"},
		{"media type", "mediaType: application/vnd.oci.image.index.v1+json", "mediaType: text plain", "images[0].mediaType:"},
		{"platform key", "linux/amd64:", "Linux:", "images[0].platforms: key must be os/arch"},
		{"platform digest", "linux/amd64: sha256:2222", "linux/amd64: sha256:x2222", "images[0].platforms.linux/amd64: must be sha256"},
		{"type", "images:\n", "images: 3\n#", "parsing:"},
	} {
		t.Run(c.name, func(t *testing.T) {
			bad := strings.Replace(goodLock, c.from, c.to, 1)
			if bad == goodLock {
				t.Fatalf("edit %q did not apply", c.from)
			}
			_, err := ParseLock([]byte(bad))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want %q", err, c.want)
			}
		})
	}
}

func TestLockCheck(t *testing.T) {
	specYAML := "apiVersion: ferry.dev/v1alpha1\nkind: Bundle\nmetadata: {name: x, version: 1.0.0}\nspec:\n  images:\n    - source: docker://registry.example.com/ferry/app:1.0\n    - source: docker://registry.example.com/ferry/pinned@sha256:1111111111111111111111111111111111111111111111111111111111111111\n"
	if _, err := ParseSpec([]byte(specYAML), "/"); err == nil || !strings.Contains(err.Error(), "builder lock") {
		t.Fatalf("strict spec: %v", err)
	}
	s, err := parseSpec([]byte(specYAML), "/", SpecOptions{AllowUnpinned: true})
	if err != nil {
		t.Fatal(err)
	}
	s.FileDigest = "sha256:0000000000000000000000000000000000000000000000000000000000000000"
	l, err := ParseLock([]byte(goodLock))
	if err != nil {
		t.Fatal(err)
	}
	pins, err := l.Check(s)
	if err != nil || len(pins) != 1 || pins[0] != l.Images[0].Digest {
		t.Fatalf("pins %v, %v", pins, err)
	}
	s.FileDigest = "sha256:3333333333333333333333333333333333333333333333333333333333333333"
	if _, err := l.Check(s); err == nil || !strings.Contains(err.Error(), "spec changed") {
		t.Fatalf("stale lock: %v", err)
	}
	s.FileDigest = l.SpecDigest
	s.Spec.Images[0].Source = "docker://registry.example.com/ferry/app:1.0"
	s.Spec.Images[0].Name = "registry.example.com/ferry/other:1.0"
	if _, err := l.Check(s); err == nil || !strings.Contains(err.Error(), "spec.images[0]: image registry.example.com/ferry/other:1.0") {
		t.Fatalf("missing image: %v", err)
	}
}

// FuzzParseLock: whatever the file holds, ParseLock returns a lock or an
// error, and a lock it accepts marshals to a file that parses to the same
// lock (deep-equal, packages in their sorted order).
func FuzzParseLock(f *testing.F) {
	f.Add([]byte(goodLock))
	f.Add([]byte(packagesLock))
	f.Add([]byte("packages:\n  - {repo: a, name: b, version: '1', release: '1', arch: noarch, size: 1, requested: ['b = 1']}\n"))
	f.Add([]byte(`{"apiVersion":"ferry.dev/v1alpha1","kind":"BundleLock","specDigest":"sha256:00","images":[{"name":"a"}]}`))
	f.Add([]byte("images:\n  - platforms: {linux/amd64: 1}\n"))
	f.Add([]byte(""))
	f.Fuzz(func(t *testing.T, data []byte) {
		l, err := ParseLock(data)
		if err != nil {
			if l != nil {
				t.Fatal("a lock with an error")
			}
			return
		}
		// A valid lock survives a round trip whole. Marshal sorts the
		// packages of l in place, so l is compared in that order.
		out, err := l.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		back, err := ParseLock(out)
		if err != nil {
			t.Fatalf("round trip of a valid lock: %v\n%s", err, out)
		}
		if !reflect.DeepEqual(back, l) {
			t.Fatalf("round trip changed the lock:\n%#v\n→ %s\n→ %#v", l, out, back)
		}
	})
}

const packagesLock = `apiVersion: ferry.dev/v1alpha1
kind: BundleLock
specDigest: sha256:0000000000000000000000000000000000000000000000000000000000000000
packages:
  - repo: extras
    name: socat
    version: 1.7.4.1
    release: 5.el9
    arch: x86_64
    sha256: "3333333333333333333333333333333333333333333333333333333333333333"
    size: 312345
    from: el9-baseos
    url: https://mirror.example/el9/BaseOS/x86_64/os/Packages/s/socat-1.7.4.1-5.el9.x86_64.rpm
    requested: ["socat >= 1.7.4"]
  - repo: extras
    name: libfoo
    epoch: 2
    version: "1.0"
    release: "1"
    arch: x86_64
    sha256: "4444444444444444444444444444444444444444444444444444444444444444"
    size: 1000
    from: el9-baseos
    url: https://mirror.example/el9/BaseOS/x86_64/os/Packages/l/libfoo-1.0-1.x86_64.rpm
    requiredBy: socat-1.7.4.1-5.el9.x86_64 (libfoo.so.1()(64bit))
`

func TestParseLockPackages(t *testing.T) {
	l, err := ParseLock([]byte(packagesLock))
	if err != nil {
		t.Fatal(err)
	}
	if len(l.PackagesOf("extras")) != 2 || l.Packages[1].NEVRA() != "libfoo-2:1.0-1.x86_64" || l.Packages[1].FileName() != "libfoo-1.0-1.x86_64.rpm" {
		t.Fatalf("parsed %+v", l.Packages)
	}
	// Marshal sorts, and sorted output is stable: two locks of the same
	// state are byte-identical whatever order they were made in.
	a, err := l.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if l.Packages[0].Name != "libfoo" {
		t.Errorf("not sorted: %s first", l.Packages[0].Name)
	}
	l.Packages[0], l.Packages[1] = l.Packages[1], l.Packages[0]
	b, err := l.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if string(a) != string(b) {
		t.Errorf("marshalled locks differ:\n%s\n%s", a, b)
	}
	if _, err := ParseLock(a); err != nil {
		t.Fatalf("round trip: %v\n%s", err, a)
	}
	for _, c := range []struct{ name, from, to, want string }{
		{"repo", "  - repo: extras\n    name: socat", "  - repo: ../x\n    name: socat", "packages[0].repo: must be"},
		{"name", "name: socat", "name: so cat", `packages[0].name: "so cat" is not a package name`},
		{"version", "version: 1.7.4.1", "version: 1.7-4", `packages[0].version: "1.7-4" is not a version`},
		{"release", "release: 5.el9", "release: ''", `packages[0].release: "" is not a release`},
		{"arch", "arch: x86_64\n    sha256: \"3", "arch: x86/64\n    sha256: \"3", `packages[0].arch: "x86/64" is not an architecture`},
		{"sha256", "sha256: \"3333", "sha256: \"Z333", "packages[0].sha256: must be 64 lower-case hex digits"},
		{"size", "size: 312345", "size: -1", "packages[0].size: -1 is not a package size"},
		{"from", "from: el9-baseos\n    url: https://mirror.example/el9/BaseOS/x86_64/os/Packages/s/", "from: ''\n    url: https://mirror.example/el9/BaseOS/x86_64/os/Packages/s/", "packages[0].from: must be a repository name"},
		{"http url", "url: https://mirror.example/el9/BaseOS/x86_64/os/Packages/s/", "url: http://mirror.example/el9/BaseOS/x86_64/os/Packages/s/", "packages[0].url: \"http://mirror.example/el9/BaseOS/x86_64/os/Packages/s/socat-1.7.4.1-5.el9.x86_64.rpm\": plain http is refused"},
		{"not an rpm", "socat-1.7.4.1-5.el9.x86_64.rpm", "socat-1.7.4.1-5.el9.x86_64.txt", "packages[0].url: \"https://mirror.example/el9/BaseOS/x86_64/os/Packages/s/socat-1.7.4.1-5.el9.x86_64.txt\" does not name an .rpm file"},
		{"why", "    requested: [\"socat >= 1.7.4\"]\n", "", "packages[0]: has neither requested nor requiredBy"},
		{"both", "    requested: [\"socat >= 1.7.4\"]\n", "    requested: [\"socat >= 1.7.4\"]\n    requiredBy: x\n", "packages[0]: has both requested and requiredBy"},
		{"requested", `requested: ["socat >= 1.7.4"]`, `requested: ["socat >> 1.7.4"]`, "packages[0].requested[0]:"},
		{"duplicate file", "name: libfoo\n    epoch: 2\n    version: \"1.0\"\n    release: \"1\"", "name: socat\n    epoch: 2\n    version: 1.7.4.1\n    release: 5.el9", "packages[1]: socat-1.7.4.1-5.el9.x86_64.rpm is in repository extras twice (also packages[0])"},
		{"unknown field", "    epoch: 2\n", "    epoch: 2\n    vendor: x\n", "packages[1].vendor: unknown field"},
	} {
		t.Run(c.name, func(t *testing.T) {
			bad := strings.Replace(packagesLock, c.from, c.to, 1)
			if bad == packagesLock {
				t.Fatalf("edit %q did not apply", c.from)
			}
			_, err := ParseLock([]byte(bad))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want %q", err, c.want)
			}
		})
	}
}

func TestLockCheckPackages(t *testing.T) {
	specYAML := `apiVersion: ferry.dev/v1alpha1
kind: Bundle
metadata: {name: x, version: 1.0.0}
spec:
  repositories:
    - {name: el9-baseos, baseurl: "https://mirror.example/el9/", gpgkey: k.asc}
  packages:
    - repo: extras
      names: ["socat >= 1.7.4"]
`
	load := func(y string) *Spec {
		t.Helper()
		s, err := parseSpec([]byte(y), "/", SpecOptions{AllowUnpinned: true})
		if err != nil {
			t.Fatal(err)
		}
		s.FileDigest = "sha256:0000000000000000000000000000000000000000000000000000000000000000"
		return s
	}
	l, err := ParseLock([]byte(packagesLock))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Check(load(specYAML)); err != nil {
		t.Fatalf("check: %v", err)
	}
	for _, c := range []struct{ name, from, to, want string }{
		{"name not locked", `names: ["socat >= 1.7.4"]`, `names: ["socat >= 1.7.4", "conntrack-tools"]`, `spec.packages[0].names[1]: "conntrack-tools" (repository extras) is not in the lock`},
		{"constraint changed", `names: ["socat >= 1.7.4"]`, `names: ["socat >= 1.7.5"]`, `spec.packages[0].names[0]: "socat >= 1.7.5" (repository extras) is not in the lock`},
		{"other repo", "repo: extras", "repo: tools", "spec.packages[0].names: the lock holds no packages for repository tools"},
		{"upstream renamed", "name: el9-baseos", "name: el9", "comes from repository el9-baseos, which is not in spec.repositories"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := l.Check(load(strings.Replace(specYAML, c.from, c.to, 1)))
			if err == nil || !errors.Is(err, ErrStaleLock) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want %q", err, c.want)
			}
		})
	}
}
