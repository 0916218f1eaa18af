// Package registrytest serves an OCI image layout directory through the
// registry handler, for tests that need a real registry with content made by
// images/imagetest. It reads files as they are and verifies nothing: it is
// not a Store for production (installer/content is).
package registrytest

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	digest "github.com/opencontainers/go-digest"
	imgspecv1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/ferry-k8s/ferry/images/registry"
)

// LayoutStore serves an OCI image layout (as imagetest writes it, and as the
// ISO's /images/ is): each index.json entry is named by its full reference
// in org.opencontainers.image.ref.name, e.g. "registry.example.com/app:1.0".
// A repository may serve the manifests, configs and layers reachable from
// its tags. It reads real files, for the tests with real clients; the
// installer's Store does the same over a verified ISO.
type LayoutStore struct {
	mu    sync.RWMutex
	dir   string
	tags  map[string]map[string]imgspecv1.Descriptor // repo → tag → manifest
	owned map[string]map[digest.Digest]string        // repo → digest → media type ("" for blobs)
}

// OpenLayoutStore reads dir/index.json and every manifest it reaches.
func OpenLayoutStore(dir string) (*LayoutStore, error) {
	var index imgspecv1.Index
	if err := readJSON(filepath.Join(dir, "index.json"), &index); err != nil {
		return nil, err
	}
	s := &LayoutStore{dir: dir, tags: map[string]map[string]imgspecv1.Descriptor{}, owned: map[string]map[digest.Digest]string{}}
	for _, m := range index.Manifests {
		ref := m.Annotations[imgspecv1.AnnotationRefName]
		slash := strings.LastIndexByte(ref, '/')
		colon := strings.LastIndexByte(ref, ':')
		if colon < slash {
			return nil, fmt.Errorf("index.json: %q is not a full name with a tag", ref)
		}
		repo, tag := ref[:colon], ref[colon+1:]
		if s.tags[repo] == nil {
			s.tags[repo] = map[string]imgspecv1.Descriptor{}
			s.owned[repo] = map[digest.Digest]string{}
		}
		s.tags[repo][tag] = m
		if err := s.walk(repo, m); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// Reload re-reads index.json, as after a push that moves a tag; like a real
// registry, the store keeps serving by digest what the moved tags left.
func (s *LayoutStore) Reload() error {
	fresh, err := OpenLayoutStore(s.dir)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for repo, owned := range s.owned {
		if fresh.owned[repo] == nil {
			continue
		}
		for d, mt := range owned {
			if _, ok := fresh.owned[repo][d]; !ok {
				fresh.owned[repo][d] = mt
			}
		}
	}
	s.tags, s.owned = fresh.tags, fresh.owned
	return nil
}

// walk records everything reachable from a manifest or index as owned.
func (s *LayoutStore) walk(repo string, d imgspecv1.Descriptor) error {
	s.owned[repo][d.Digest] = d.MediaType
	var m struct {
		Config    *imgspecv1.Descriptor  `json:"config"`
		Layers    []imgspecv1.Descriptor `json:"layers"`
		Manifests []imgspecv1.Descriptor `json:"manifests"`
	}
	if err := readJSON(s.blobPath(d.Digest), &m); err != nil {
		return err
	}
	if m.Config != nil {
		s.owned[repo][m.Config.Digest] = ""
	}
	for _, l := range m.Layers {
		s.owned[repo][l.Digest] = ""
	}
	for _, c := range m.Manifests {
		if err := s.walk(repo, c); err != nil {
			return err
		}
	}
	return nil
}

func (s *LayoutStore) blobPath(d digest.Digest) string {
	return filepath.Join(s.dir, "blobs", d.Algorithm().String(), d.Encoded())
}

func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

// Repositories implements registry.Store.
func (s *LayoutStore) Repositories(context.Context) ([]string, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var repos []string
	for r := range s.tags {
		repos = append(repos, r)
	}
	slices.Sort(repos)
	return repos, nil
}

// Tags implements registry.Store.
func (s *LayoutStore) Tags(_ context.Context, repo string) ([]string, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	tags, ok := s.tags[repo]
	if !ok {
		return nil, registry.ErrNameUnknown
	}
	var list []string
	for t := range tags {
		list = append(list, t)
	}
	slices.Sort(list)
	return list, nil
}

// Resolve implements registry.Store.
func (s *LayoutStore) Resolve(_ context.Context, repo, reference string) (registry.Descriptor, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	tags, ok := s.tags[repo]
	if !ok {
		return registry.Descriptor{}, registry.ErrNameUnknown
	}
	if m, ok := tags[reference]; ok {
		return registry.Descriptor{MediaType: m.MediaType, Digest: m.Digest, Size: m.Size}, nil
	}
	d := digest.Digest(reference)
	if mt := s.owned[repo][d]; mt != "" {
		fi, err := os.Stat(s.blobPath(d))
		if err != nil {
			return registry.Descriptor{}, err
		}
		return registry.Descriptor{MediaType: mt, Digest: d, Size: fi.Size()}, nil
	}
	return registry.Descriptor{}, registry.ErrManifestUnknown
}

// Open implements registry.Store.
func (s *LayoutStore) Open(_ context.Context, repo string, d digest.Digest) (registry.Content, registry.Descriptor, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	owned, ok := s.owned[repo]
	if !ok {
		return nil, registry.Descriptor{}, registry.ErrNameUnknown
	}
	mt, ok := owned[d]
	if !ok {
		return nil, registry.Descriptor{}, registry.ErrBlobUnknown
	}
	f, err := os.Open(s.blobPath(d))
	if err != nil {
		return nil, registry.Descriptor{}, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, registry.Descriptor{}, err
	}
	return f, registry.Descriptor{MediaType: mt, Digest: d, Size: fi.Size()}, nil
}

var _ registry.Store = (*LayoutStore)(nil)
