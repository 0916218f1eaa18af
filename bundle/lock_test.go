package bundle

import (
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

func FuzzParseLock(f *testing.F) {
	f.Add([]byte(goodLock))
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
		// A valid lock survives a round trip.
		out, err := l.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ParseLock(out); err != nil {
			t.Fatalf("round trip of a valid lock: %v\n%s", err, out)
		}
	})
}
