package bundletest

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"

	"github.com/ferry-k8s/ferry/bundle"
	"github.com/ferry-k8s/ferry/images"
	"github.com/ferry-k8s/ferry/internal/atomicfile"
	"github.com/ferry-k8s/ferry/signing"
)

// Resign rewrites tree/manifest.json (a builder work tree's, "<work>/tree")
// to list every file of tree as it is now, and the images of its
// images/index.json, and signs it with signer at the manifest's creation
// time. It applies none of the rules the builder applies.
func Resign(tree string, signer *signing.Signer) error {
	data, err := os.ReadFile(filepath.Join(tree, bundle.ManifestPath))
	if err != nil {
		return err
	}
	m, err := bundle.ParseManifest(data)
	if err != nil {
		return fmt.Errorf("resigning %s: %w", tree, err)
	}
	var jobs []bundle.HashJob
	err = filepath.WalkDir(tree, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(tree, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if rel == bundle.ManifestPath || rel == bundle.ManifestSigPath {
			return nil
		}
		jobs = append(jobs, bundle.HashJob{Path: rel, Open: func() (io.ReadCloser, error) { return os.Open(p) }})
		return nil
	})
	if err != nil {
		return fmt.Errorf("resigning %s: %w", tree, err)
	}
	m.Files = m.Files[:0]
	for _, r := range bundle.HashFiles(context.Background(), jobs, 1, nil) {
		if r.Err != nil {
			return fmt.Errorf("resigning %s: %w", tree, r.Err)
		}
		m.Files = append(m.Files, bundle.File{Path: r.Path, Size: r.Size, SHA256: r.SHA256})
	}
	sort.Slice(m.Files, func(i, j int) bool { return m.Files[i].Path < m.Files[j].Path })
	if _, err := os.Stat(filepath.Join(tree, bundle.ImagesDir, "index.json")); err == nil {
		imgs, err := images.ReadIndex(os.DirFS(tree), bundle.ImagesDir)
		if err != nil {
			return fmt.Errorf("resigning %s: %w", tree, err)
		}
		m.Images = m.Images[:0]
		for _, im := range imgs {
			m.Images = append(m.Images, bundle.Image{Name: im.Name, Digest: im.Digest.String(), MediaType: im.MediaType, Platforms: im.Platforms, Source: im.Source})
		}
	}
	out, err := m.Marshal()
	if err != nil {
		return err
	}
	if err := atomicfile.WriteFile(filepath.Join(tree, bundle.ManifestPath), out, 0o644); err != nil {
		return err
	}
	sig, err := signer.SignBytes(out, m.Created, true)
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(filepath.Join(tree, bundle.ManifestSigPath), sig, 0o644)
}
