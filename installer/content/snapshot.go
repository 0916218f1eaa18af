package content

import (
	"slices"
	"strings"

	digest "github.com/opencontainers/go-digest"

	"github.com/ferry-k8s/ferry/bundle"
)

// snapshot is the immutable index every request reads, swapped atomically
// when the set of served bundles changes. A request that loaded an older
// snapshot may find its bundle withdrawn: acquire then fails and the
// request is answered from a fresh snapshot (see Service.acquire).
type snapshot struct {
	bundles []*served // newest version first
	repos   map[string]*repoView
	names   []string // image repository names, sorted
}

// repoView is one image repository across all served bundles.
type repoView struct {
	holders []*served         // bundles holding the repository, newest first
	tags    map[string]tagRef // the newest bundle's wins
	tagList []string          // sorted
}

type tagRef struct {
	b *served
	d digest.Digest
}

// newSnapshot indexes bs; it sorts bs (newest version first, then by path).
func newSnapshot(bs []*served) *snapshot {
	bs = slices.Clone(bs)
	slices.SortStableFunc(bs, func(a, b *served) int {
		if c := bundle.CompareVersions(b.info.Version, a.info.Version); c != 0 {
			return c
		}
		return strings.Compare(a.info.Path, b.info.Path)
	})
	s := &snapshot{bundles: bs, repos: map[string]*repoView{}}
	for _, b := range bs {
		for name, ir := range b.repos {
			v := s.repos[name]
			if v == nil {
				v = &repoView{tags: map[string]tagRef{}}
				s.repos[name] = v
				s.names = append(s.names, name)
			}
			v.holders = append(v.holders, b)
			for tag, d := range ir.tags {
				if _, ok := v.tags[tag]; !ok { // bundles come newest first
					v.tags[tag] = tagRef{b: b, d: d}
					v.tagList = append(v.tagList, tag)
				}
			}
		}
	}
	slices.Sort(s.names)
	for _, v := range s.repos {
		slices.Sort(v.tagList)
	}
	return s
}

// version finds the bundle of a version, or the newest for "latest".
func (s *snapshot) version(v string) *served {
	if v == "latest" {
		if len(s.bundles) > 0 {
			return s.bundles[0]
		}
		return nil
	}
	for _, b := range s.bundles {
		if b.info.Version == v {
			return b
		}
	}
	return nil
}

// object finds the manifest or blob d reachable from repository name in
// the newest bundle that has it.
func (s *snapshot) object(name string, d digest.Digest) (*served, object, bool) {
	v := s.repos[name]
	if v == nil {
		return nil, object{}, false
	}
	for _, b := range v.holders {
		if b.repos[name].reach[d] {
			return b, b.objects[d], true
		}
	}
	return nil, object{}, false
}
