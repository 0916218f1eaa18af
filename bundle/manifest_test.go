package bundle

import (
	"strings"
	"testing"
	"time"
)

func sampleManifest() *Manifest {
	created := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	return &Manifest{
		SchemaVersion: ManifestSchemaVersion, Product: Product, Name: "example", Version: "1.0.0",
		Created: created, Expires: created.Add(DefaultExpiresAfter),
		Images:       []Image{{Name: "localhost/app:latest", Digest: "sha256:" + strings.Repeat("b", 64), MediaType: "application/vnd.oci.image.manifest.v1+json"}},
		Repositories: []Repository{{Name: "base", Path: "packages/base", Packages: 1}},
		Files: []File{
			{Path: "images/oci-layout", Size: 30, SHA256: strings.Repeat("a", 64)},
			{Path: "SHA256SUMS", Size: 10, SHA256: strings.Repeat("c", 64)},
		},
	}
}

func TestManifestRoundTrip(t *testing.T) {
	m := sampleManifest()
	b, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseManifest(b)
	if err != nil {
		t.Fatal(err)
	}
	if got.Files[0].Path != "SHA256SUMS" {
		t.Errorf("files not sorted: %v", got.Files)
	}
	b2, _ := got.Marshal()
	if string(b) != string(b2) {
		t.Errorf("marshal is not stable:\n%s\n%s", b, b2)
	}
}

func TestManifestRefusals(t *testing.T) {
	tests := []struct {
		name string
		edit func(m *Manifest)
		want string
	}{
		{"traversal", func(m *Manifest) { m.Files[0].Path = "../etc/passwd" }, "leaves the bundle"},
		{"traversal inside", func(m *Manifest) { m.Files[0].Path = "images/../../x" }, "not clean"},
		{"absolute", func(m *Manifest) { m.Files[0].Path = "/etc/passwd" }, "absolute"},
		{"dot element", func(m *Manifest) { m.Files[0].Path = "./x" }, "not clean"},
		{"backslash", func(m *Manifest) { m.Files[0].Path = `a\..\b` }, "backslash"},
		{"control char", func(m *Manifest) { m.Files[0].Path = "a\nb" }, "control"},
		{"duplicate", func(m *Manifest) { m.Files[1].Path = m.Files[0].Path }, "listed twice"},
		{"lists itself", func(m *Manifest) { m.Files[0].Path = ManifestPath }, "cannot be listed"},
		{"bad digest", func(m *Manifest) { m.Files[0].SHA256 = "XYZ" }, "sha256: not 64 lower-case hex digits for images/oci-layout"},
		{"negative size", func(m *Manifest) { m.Files[0].Size = -1 }, "negative size"},
		{"expires before created", func(m *Manifest) { m.Expires = m.Created.Add(-time.Hour) }, "expires"},
		{"wrong product", func(m *Manifest) { m.Product = "other" }, "product"},
		{"bad image digest", func(m *Manifest) { m.Images[0].Digest = "md5:x" }, "images[0].digest"},
		{"bad repo path", func(m *Manifest) { m.Repositories[0].Path = "packages/../x" }, "repositories[0].path"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := sampleManifest()
			tt.edit(m)
			b, err := m.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			if _, err := ParseManifest(b); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want %q", err, tt.want)
			}
		})
	}
}

func TestManifestStrictDecoding(t *testing.T) {
	b, _ := sampleManifest().Marshal()
	for name, in := range map[string]string{
		"unknown field":  strings.Replace(string(b), `"product"`, `"extra": 1, "product"`, 1),
		"newer schema":   strings.Replace(string(b), `"schemaVersion": 1`, `"schemaVersion": 2`, 1),
		"trailing data":  string(b) + "{}",
		"not json":       "hello",
		"wrong type":     strings.Replace(string(b), `"size": 30`, `"size": "30"`, 1),
		"too many files": "", // handled below
	} {
		if name == "too many files" {
			continue
		}
		if _, err := ParseManifest([]byte(in)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := ParseManifest(make([]byte, MaxManifestSize+1)); err == nil || !strings.Contains(err.Error(), "limit") {
		t.Errorf("oversized manifest: %v", err)
	}
}

func TestFormatSums(t *testing.T) {
	got := string(FormatSums(sampleManifest().Files))
	want := strings.Repeat("c", 64) + "  SHA256SUMS\n" + strings.Repeat("a", 64) + "  images/oci-layout\n"
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

func FuzzParseManifest(f *testing.F) {
	b, _ := sampleManifest().Marshal()
	f.Add(b)
	f.Add([]byte(`{"schemaVersion":1}`))
	f.Add([]byte(`{"schemaVersion":1,"files":[{"path":"../x","size":-1,"sha256":""}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := ParseManifest(data)
		if err != nil {
			return
		}
		// Whatever parses must satisfy the invariants consumers rely on.
		for _, file := range m.Files {
			if CheckPath(file.Path) != nil || file.Size < 0 || len(file.SHA256) != 64 {
				t.Fatalf("accepted bad file %+v", file)
			}
		}
		if _, err := m.Marshal(); err != nil {
			t.Fatal(err)
		}
	})
}
