package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"

	digest "github.com/opencontainers/go-digest"
	imgspecv1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// memStore is a Store held in memory. A fake is right here: the real Store
// is the installer's content service over a verified bundle, in another
// package; these tests are about the HTTP API over any Store. The tests
// with real clients use layoutStore (an OCI image layout on disk) instead.
type memStore struct {
	mu    sync.Mutex
	repos map[string]*memRepo
	blobs map[digest.Digest][]byte
	// failAt makes a Content's Read fail once it reaches that offset, as a
	// verified reader does when a chunk no longer matches its digest.
	failAt map[digest.Digest]int64
	// asked records every repository name the handler asked about.
	asked []string
}

type memRepo struct {
	tags      map[string]digest.Digest
	manifests map[digest.Digest]string // digest → media type
	blobs     map[digest.Digest]bool   // configs and layers
}

var errCorrupt = errors.New("chunk 3 changed since the bundle was verified")

func newMemStore() *memStore {
	return &memStore{repos: map[string]*memRepo{}, blobs: map[digest.Digest][]byte{}, failAt: map[digest.Digest]int64{}}
}

func (s *memStore) repo(name string) *memRepo {
	r := s.repos[name]
	if r == nil {
		r = &memRepo{tags: map[string]digest.Digest{}, manifests: map[digest.Digest]string{}, blobs: map[digest.Digest]bool{}}
		s.repos[name] = r
	}
	return r
}

func (s *memStore) putBlob(b []byte) digest.Digest {
	d := digest.FromBytes(b)
	s.blobs[d] = b
	return d
}

// setFailAt makes reads of d fail from offset off on.
func (s *memStore) setFailAt(d digest.Digest, off int64) {
	s.mu.Lock()
	s.failAt[d] = off
	s.mu.Unlock()
}

// fakeImage is what addImage made.
type fakeImage struct {
	manifest []byte
	digest   digest.Digest
	config   digest.Digest
	layers   []digest.Digest
}

// addImage adds an OCI image of the given layer contents to repo, tagged
// with each of tags.
func (s *memStore) addImage(repo string, layers []string, tags ...string) fakeImage {
	config := s.putBlob([]byte(fmt.Sprintf(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]},"author":%q}`, repo)))
	m := imgspecv1.Manifest{MediaType: imgspecv1.MediaTypeImageManifest,
		Config: imgspecv1.Descriptor{MediaType: imgspecv1.MediaTypeImageConfig, Digest: config, Size: int64(len(s.blobs[config]))}}
	m.SchemaVersion = 2
	img := fakeImage{config: config}
	r := s.repo(repo)
	r.blobs[config] = true
	for _, l := range layers {
		d := s.putBlob([]byte(l))
		m.Layers = append(m.Layers, imgspecv1.Descriptor{MediaType: imgspecv1.MediaTypeImageLayerGzip, Digest: d, Size: int64(len(l))})
		img.layers = append(img.layers, d)
		r.blobs[d] = true
	}
	img.manifest, _ = json.Marshal(m)
	img.digest = s.putBlob(img.manifest)
	r.manifests[img.digest] = imgspecv1.MediaTypeImageManifest
	for _, t := range tags {
		r.tags[t] = img.digest
	}
	return img
}

// addIndex adds an image index over the given manifests (already in repo).
func (s *memStore) addIndex(repo string, children []fakeImage, tags ...string) ([]byte, digest.Digest) {
	idx := imgspecv1.Index{MediaType: imgspecv1.MediaTypeImageIndex}
	idx.SchemaVersion = 2
	for _, c := range children {
		idx.Manifests = append(idx.Manifests, imgspecv1.Descriptor{MediaType: imgspecv1.MediaTypeImageManifest, Digest: c.digest, Size: int64(len(c.manifest))})
	}
	b, _ := json.Marshal(idx)
	d := s.putBlob(b)
	r := s.repo(repo)
	r.manifests[d] = imgspecv1.MediaTypeImageIndex
	for _, t := range tags {
		r.tags[t] = d
	}
	return b, d
}

func (s *memStore) record(repo string) {
	s.mu.Lock()
	s.asked = append(s.asked, repo)
	s.mu.Unlock()
}

// takeAsked returns the names asked about so far, and forgets them.
func (s *memStore) takeAsked() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.asked
	s.asked = nil
	return a
}

// askedNames returns the names the handler asked about so far.
func (s *memStore) askedNames() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.asked)
}

func (s *memStore) Repositories(context.Context) ([]string, error) {
	var names []string
	for n := range s.repos {
		names = append(names, n)
	}
	slices.Sort(names)
	return names, nil
}

func (s *memStore) Tags(_ context.Context, repo string) ([]string, error) {
	s.record(repo)
	r, ok := s.repos[repo]
	if !ok {
		return nil, ErrNameUnknown
	}
	var tags []string
	for t := range r.tags {
		tags = append(tags, t)
	}
	slices.Sort(tags)
	return tags, nil
}

func (s *memStore) Resolve(_ context.Context, repo, reference string) (Descriptor, error) {
	s.record(repo)
	r, ok := s.repos[repo]
	if !ok {
		return Descriptor{}, ErrNameUnknown
	}
	d, ok := r.tags[reference]
	if !ok {
		d = digest.Digest(reference)
	}
	mt, ok := r.manifests[d]
	if !ok {
		return Descriptor{}, ErrManifestUnknown
	}
	return Descriptor{MediaType: mt, Digest: d, Size: int64(len(s.blobs[d]))}, nil
}

func (s *memStore) Open(_ context.Context, repo string, d digest.Digest) (Content, Descriptor, error) {
	s.record(repo)
	r, ok := s.repos[repo]
	if !ok {
		return nil, Descriptor{}, ErrNameUnknown
	}
	mt, isManifest := r.manifests[d]
	if !isManifest && !r.blobs[d] {
		return nil, Descriptor{}, ErrBlobUnknown
	}
	b := s.blobs[d]
	var c Content = nopCloser{bytes.NewReader(b)}
	s.mu.Lock()
	off, ok := s.failAt[d]
	s.mu.Unlock()
	if ok {
		c = &failingContent{r: bytes.NewReader(b), at: off}
	}
	return c, Descriptor{MediaType: mt, Digest: d, Size: int64(len(b))}, nil
}

type nopCloser struct{ *bytes.Reader }

func (nopCloser) Close() error { return nil }

// failingContent reads like a verified reader over content that changed
// from offset at on: every byte before at, then an error.
type failingContent struct {
	r  *bytes.Reader
	at int64
}

func (f *failingContent) Read(p []byte) (int, error) {
	pos, _ := f.r.Seek(0, io.SeekCurrent)
	if pos >= f.at {
		return 0, fmt.Errorf("reading at %d: %w", pos, errCorrupt)
	}
	if rest := f.at - pos; int64(len(p)) > rest {
		p = p[:rest]
	}
	return f.r.Read(p)
}

func (f *failingContent) Seek(off int64, whence int) (int64, error) { return f.r.Seek(off, whence) }
func (f *failingContent) Close() error                              { return nil }

// validStoreName reports whether a name the handler gave the Store is one
// it may give: a valid <name>, or host[:port]/<name> from ns.
func validStoreName(name string) bool {
	if len(name) <= maxNameLength && nameRE.MatchString(name) {
		return true
	}
	host, rest, ok := strings.Cut(name, "/")
	return ok && validHost(host) && len(rest) <= maxNameLength && nameRE.MatchString(rest)
}
