package bundle

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"regexp"
	"sort"
	"strings"
	"time"
)

// Product is the manifest's product name.
const Product = "ferry"

// ManifestSchemaVersion is the manifest format this code writes and reads.
const ManifestSchemaVersion = 1

// Well-known paths on a bundle.
const (
	ManifestPath     = "manifest.json"
	ManifestSigPath  = "manifest.json.asc"
	SumsPath         = "SHA256SUMS"
	SumsSigPath      = "SHA256SUMS.asc"
	ImagesDir        = "images"
	PackagesDir      = "packages"
	InstallerPath    = "installer"
	PublicKeyPath    = "ferry-bundle.pub.asc"
	RepoMDSigRelPath = "repodata/repomd.xml.asc"
)

// Limits for hostile manifests.
const (
	MaxManifestSize = 64 << 20
	MaxFiles        = 1_000_000
	MaxPathLen      = 1024
)

// Manifest lists everything on a bundle except itself and its signature.
type Manifest struct {
	SchemaVersion     int          `json:"schemaVersion"`
	Product           string       `json:"product"`
	Name              string       `json:"name"`
	Version           string       `json:"version"`
	KubernetesVersion string       `json:"kubernetesVersion,omitempty"`
	Created           time.Time    `json:"created"`
	Expires           time.Time    `json:"expires"`
	MinUpgradeFrom    string       `json:"minUpgradeFrom,omitempty"`
	Images            []Image      `json:"images"`
	Repositories      []Repository `json:"repositories"`
	Files             []File       `json:"files"`
}

// Image is one image of the bundle's OCI layout.
type Image struct {
	Name      string   `json:"name"`
	Digest    string   `json:"digest"`
	MediaType string   `json:"mediaType"`
	Platforms []string `json:"platforms,omitempty"`
	Source    string   `json:"source,omitempty"`
}

// Repository is one yum repository under packages/.
type Repository struct {
	Name     string `json:"name"`
	Path     string `json:"path"`
	Packages int    `json:"packages"`
}

// File is one file of the bundle.
type File struct {
	Path   string `json:"path"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

var hex64 = regexp.MustCompile(`^[a-f0-9]{64}$`)

// Marshal renders the manifest deterministically: files sorted by path,
// indented, newline-terminated.
func (m *Manifest) Marshal() ([]byte, error) {
	c := *m
	c.Files = append([]File(nil), m.Files...)
	sort.Slice(c.Files, func(i, j int) bool { return c.Files[i].Path < c.Files[j].Path })
	if c.Images == nil {
		c.Images = []Image{}
	}
	if c.Repositories == nil {
		c.Repositories = []Repository{}
	}
	c.Created, c.Expires = c.Created.UTC(), c.Expires.UTC()
	b, err := json.MarshalIndent(&c, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// ParseManifest decodes and validates a manifest. Unknown fields and a newer
// schema are refused: an installer must not half-understand a signed file.
func ParseManifest(data []byte) (*Manifest, error) {
	if len(data) > MaxManifestSize {
		return nil, fmt.Errorf("manifest is %d bytes, more than the limit of %d", len(data), MaxManifestSize)
	}
	var probe struct {
		SchemaVersion int `json:"schemaVersion"`
	}
	if err := json.Unmarshal(data, &probe); err != nil {
		return nil, fmt.Errorf("parsing manifest: %w", err)
	}
	if probe.SchemaVersion != ManifestSchemaVersion {
		return nil, fieldErr("schemaVersion", "%d is not supported (this program reads %d); use a newer installer", probe.SchemaVersion, ManifestSchemaVersion)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var m Manifest
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("parsing manifest: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("parsing manifest: trailing data after the JSON object")
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return &m, nil
}

// Validate checks every field a consumer relies on.
func (m *Manifest) Validate() error {
	var errs []error
	add := func(err error) { errs = append(errs, err) }
	if m.Product != Product {
		add(fieldErr("product", "must be %q, got %q", Product, m.Product))
	}
	if !dnsLabel.MatchString(m.Name) || len(m.Name) > 63 {
		add(fieldErr("name", "must be a DNS label, got %q", m.Name))
	}
	if !ValidVersion(m.Version) {
		add(fieldErr("version", "must be a semantic version, got %q", m.Version))
	}
	if m.MinUpgradeFrom != "" && !ValidVersion(m.MinUpgradeFrom) {
		add(fieldErr("minUpgradeFrom", "must be a semantic version, got %q", m.MinUpgradeFrom))
	}
	if m.Created.IsZero() || m.Expires.IsZero() || !m.Expires.After(m.Created) {
		add(fieldErr("expires", "must be after created (created %s, expires %s)", m.Created, m.Expires))
	}
	if len(m.Files) > MaxFiles {
		add(fieldErr("files", "lists %d files, more than the limit of %d", len(m.Files), MaxFiles))
		return errors.Join(errs...)
	}
	seen := make(map[string]bool, len(m.Files))
	for i, f := range m.Files {
		fe := fmt.Sprintf("files[%d]", i)
		if err := CheckPath(f.Path); err != nil {
			add(fieldErr(fe+".path", "%v", err))
			continue
		}
		switch f.Path {
		case ManifestPath, ManifestSigPath:
			add(fieldErr(fe+".path", "%q cannot be listed in the manifest", f.Path))
		}
		if seen[f.Path] {
			add(fieldErr(fe+".path", "%q is listed twice", f.Path))
		}
		seen[f.Path] = true
		if f.Size < 0 {
			add(fieldErr(fe+".size", "negative size %d for %s", f.Size, f.Path))
		}
		if !hex64.MatchString(f.SHA256) {
			add(fieldErr(fe+".sha256", "not 64 lower-case hex digits for %s", f.Path))
		}
	}
	for i, im := range m.Images {
		if !digestRE.MatchString(im.Digest) {
			add(fieldErr(fmt.Sprintf("images[%d].digest", i), "must be sha256:<64 hex>, got %q", im.Digest))
		}
		if err := ValidImageName(im.Name); err != nil {
			add(fieldErr(fmt.Sprintf("images[%d].name", i), "%v", err))
		}
	}
	for i, r := range m.Repositories {
		if !repoName.MatchString(r.Name) {
			add(fieldErr(fmt.Sprintf("repositories[%d].name", i), "invalid repository name %q", r.Name))
		}
		if r.Path != PackagesDir+"/"+r.Name {
			add(fieldErr(fmt.Sprintf("repositories[%d].path", i), "must be %q, got %q", PackagesDir+"/"+r.Name, r.Path))
		}
	}
	return errors.Join(errs...)
}

// CheckPath accepts only clean, relative, slash-separated paths that stay
// inside the bundle: no "..", no ".", no empty elements, no backslashes, no
// control characters.
func CheckPath(p string) error {
	switch {
	case p == "":
		return errors.New("empty path")
	case len(p) > MaxPathLen:
		return fmt.Errorf("path longer than %d bytes", MaxPathLen)
	case strings.HasPrefix(p, "/"):
		return fmt.Errorf("absolute path %q", p)
	case strings.ContainsAny(p, "\\\x00"):
		return fmt.Errorf("path %q contains a backslash or NUL", p)
	case path.Clean(p) != p:
		return fmt.Errorf("path %q is not clean", p)
	}
	for _, el := range strings.Split(p, "/") {
		if el == ".." || el == "." {
			return fmt.Errorf("path %q leaves the bundle", p)
		}
		for _, r := range el {
			if r < 0x20 || r == 0x7f {
				return fmt.Errorf("path %q contains a control character", p)
			}
		}
	}
	return nil
}

// FileMap indexes the manifest's files by path.
func (m *Manifest) FileMap() map[string]File {
	out := make(map[string]File, len(m.Files))
	for _, f := range m.Files {
		out[f.Path] = f
	}
	return out
}
