package compose

import (
	"bytes"
	"fmt"
	"path"
	"slices"
	"strconv"
	"strings"
)

// Limits on the file tree of one image.
const (
	maxPathLen      = 4096
	maxNameLen      = 255
	maxFiles        = 1 << 20
	maxAccountsFile = 1 << 20 // /etc/passwd, /etc/group
)

type kind uint8

const (
	kindReg kind = iota
	kindDir
	kindSymlink
)

func (k kind) String() string {
	switch k {
	case kindDir:
		return "directory"
	case kindSymlink:
		return "symlink"
	}
	return "regular file"
}

// node is one entry of the image's file tree.
type node struct {
	path string // clean, relative to the image root: "usr/bin/x"
	kind kind
	perm uint32 // permission bits, setuid/setgid/sticky included
	// Owner: names from an RPM header (resolved through the image's
	// /etc/passwd and /etc/group once the tree is complete), or numbers.
	user, group string
	uid, gid    int
	link        string // symlink target
	// Regular files: content is body, or size bytes at off in the spool.
	size int64
	sum  [32]byte // sha256 of the content
	off  int64
	body []byte
	// hardlink > 0 groups regular files that are hard links to each other.
	hardlink int
	// src names where the entry comes from, for errors.
	src string
}

// sameAs reports whether two entries for the same path may be merged,
// owners aside: those are compared once resolved (sameOwner).
func (n *node) sameAs(o *node) (bool, string) {
	switch {
	case n.kind != o.kind:
		return false, fmt.Sprintf("%s vs %s", n.kind, o.kind)
	case n.perm != o.perm:
		return false, fmt.Sprintf("mode %04o vs %04o", n.perm, o.perm)
	case n.kind == kindSymlink && n.link != o.link:
		return false, fmt.Sprintf("target %q vs %q", n.link, o.link)
	case n.kind == kindReg && (n.size != o.size || n.sum != o.sum):
		return false, "content"
	}
	return true, ""
}

// sameOwner compares resolved owners.
func (n *node) sameOwner(o *node) (bool, string) {
	if n.uid != o.uid || n.gid != o.gid {
		return false, fmt.Sprintf("owner %d:%d vs %d:%d", n.uid, n.gid, o.uid, o.gid)
	}
	return true, ""
}

// tree is an image's file tree under construction.
type tree struct {
	nodes map[string]*node
	// dirs holds package directories left out by Include, whose metadata
	// is used when a kept entry needs them as parents.
	dirs map[string]*node
	// dups are entries merged into an existing one of the same path, kept
	// to compare owners once resolved.
	dups      []*node
	hardlinks int
}

func newTree() *tree {
	return &tree{nodes: map[string]*node{}, dirs: map[string]*node{}}
}

// add puts n in the tree. The same path twice is fine when both entries are
// the same (same type, mode, owner and content); otherwise it is an error
// naming both sources.
func (t *tree) add(n *node) error {
	if old, ok := t.nodes[n.path]; ok {
		if same, why := old.sameAs(n); !same {
			return fmt.Errorf("/%s: %s and %s differ (%s)", n.path, old.src, n.src, why)
		}
		t.dups = append(t.dups, n)
		return nil
	}
	if len(t.nodes) >= maxFiles {
		return fmt.Errorf("more than %d files", maxFiles)
	}
	t.nodes[n.path] = n
	return nil
}

// addParents adds every missing parent directory: from a package's
// metadata when one listed it, else owned by root with mode 0755. A parent
// that exists but is not a directory is an error.
func (t *tree) addParents() error {
	paths := make([]string, 0, len(t.nodes))
	for p := range t.nodes {
		paths = append(paths, p)
	}
	slices.Sort(paths)
	for _, p := range paths {
		for dir := path.Dir(p); dir != "."; dir = path.Dir(dir) {
			if d, ok := t.nodes[dir]; ok {
				if d.kind != kindDir {
					src := t.nodes[p].src
					if d.src != src {
						src += ", /" + dir + " from " + d.src
					}
					return fmt.Errorf("/%s: parent /%s is a %s (%s)", p, dir, d.kind, src)
				}
				break
			}
			d := t.dirs[dir]
			if d == nil {
				d = &node{path: dir, kind: kindDir, perm: 0o755, user: "root", group: "root", src: "implied parent directory"}
			}
			t.nodes[dir] = d
		}
	}
	return nil
}

// sorted returns the entries in tar order: by path, so that parents come
// before their children.
func (t *tree) sorted() []*node {
	out := make([]*node, 0, len(t.nodes))
	for _, n := range t.nodes {
		out = append(out, n)
	}
	slices.SortFunc(out, func(a, b *node) int { return strings.Compare(a.path, b.path) })
	return out
}

// cleanPath checks an absolute path from a package or Image.Files and
// returns it relative to the image root ("" for the root itself).
func cleanPath(p string) (string, error) {
	switch {
	case p == "":
		return "", fmt.Errorf("empty path")
	case len(p) > maxPathLen:
		return "", fmt.Errorf("path %.64q…: longer than %d bytes", p, maxPathLen)
	case strings.IndexByte(p, 0) >= 0:
		return "", fmt.Errorf("path %q: contains NUL", p)
	case !strings.HasPrefix(p, "/"):
		if slices.Contains(strings.Split(p, "/"), "..") {
			return "", fmt.Errorf("path %q: escapes the image root (\"..\")", p)
		}
		return "", fmt.Errorf("path %q: not absolute", p)
	}
	rel := strings.TrimPrefix(p, "/")
	if rel == "" {
		return "", nil
	}
	for _, c := range strings.Split(rel, "/") {
		switch {
		case c == "..":
			return "", fmt.Errorf("path %q: escapes the image root (\"..\")", p)
		case c == "" || c == ".":
			return "", fmt.Errorf("path %q: not clean", p)
		case len(c) > maxNameLen:
			return "", fmt.Errorf("path %q: component longer than %d bytes", p, maxNameLen)
		case strings.HasPrefix(c, ".wh."):
			// Layer whiteouts: a runtime would delete files instead.
			return "", fmt.Errorf("path %q: %q is reserved for OCI layer whiteouts", p, c)
		}
	}
	return rel, nil
}

// checkLinkTarget checks a symlink target: any path (absolute targets
// resolve inside the container), bounded and without NUL.
func checkLinkTarget(target string) error {
	switch {
	case target == "":
		return fmt.Errorf("empty symlink target")
	case len(target) > maxLinkTarget:
		return fmt.Errorf("symlink target longer than %d bytes", maxLinkTarget)
	case strings.IndexByte(target, 0) >= 0:
		return fmt.Errorf("symlink target %q contains NUL", target)
	}
	return nil
}

// selector implements Image.Include.
type selector struct {
	patterns []string // without leading '/'
	used     []bool
}

func newSelector(patterns []string) (*selector, error) {
	s := &selector{used: make([]bool, len(patterns))}
	for _, p := range patterns {
		q := strings.TrimPrefix(p, "/")
		if q == "" {
			return nil, fmt.Errorf("include pattern %q: empty", p)
		}
		if !strings.HasSuffix(q, "/") {
			if _, err := path.Match(q, ""); err != nil {
				return nil, fmt.Errorf("include pattern %q: %w", p, err)
			}
		}
		s.patterns = append(s.patterns, q)
	}
	return s, nil
}

// match reports whether rel (a clean relative path) is selected.
func (s *selector) match(rel string) bool {
	if len(s.patterns) == 0 {
		return true
	}
	hit := false
	for i, p := range s.patterns {
		var ok bool
		if dir, isPrefix := strings.CutSuffix(p, "/"); isPrefix {
			ok = rel == dir || strings.HasPrefix(rel, p)
		} else {
			ok, _ = path.Match(p, rel)
		}
		if ok {
			s.used[i] = true
			hit = true
		}
	}
	return hit
}

// unused returns the patterns that matched nothing.
func (s *selector) unused() []string {
	var out []string
	for i, u := range s.used {
		if !u {
			out = append(out, "/"+s.patterns[i])
		}
	}
	return out
}

// accounts maps user and group names to ids, from the image's /etc/passwd
// and /etc/group. root is 0 even without them.
type accounts struct {
	users, groups map[string]int
}

// parseAccounts parses an /etc/passwd (idField 2) or /etc/group (idField 2)
// file: name:password:id:…, one per line; blank lines and # comments are
// skipped; anything else malformed is an error naming the line.
func parseAccounts(name string, data []byte, minFields int) (map[string]int, error) {
	ids := map[string]int{}
	for i, line := range bytes.Split(data, []byte("\n")) {
		l := strings.TrimSpace(string(line))
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		f := strings.Split(l, ":")
		if len(f) < minFields || f[0] == "" {
			return nil, fmt.Errorf("%s line %d: malformed entry", name, i+1)
		}
		id, err := strconv.ParseUint(f[2], 10, 31)
		if err != nil {
			return nil, fmt.Errorf("%s line %d: id %q: not a number below 2^31", name, i+1, f[2])
		}
		if _, dup := ids[f[0]]; !dup {
			ids[f[0]] = int(id)
		}
	}
	return ids, nil
}

func (a *accounts) uid(name string) (int, bool) {
	if id, ok := a.users[name]; ok {
		return id, true
	}
	return 0, name == "root"
}

func (a *accounts) gid(name string) (int, bool) {
	if id, ok := a.groups[name]; ok {
		return id, true
	}
	return 0, name == "root"
}

// maxSymlinks bounds symlink resolution (Linux's MAXSYMLINKS).
const maxSymlinks = 40

// lookup resolves an absolute path in the tree as the kernel would inside
// the container, following symlinks in every component, and returns the
// entry it names.
func (t *tree) lookup(p string) (*node, error) {
	links := 0
	var walk func(dir, rest string) (*node, error)
	walk = func(dir, rest string) (*node, error) {
		for rest != "" {
			var c string
			c, rest, _ = strings.Cut(rest, "/")
			switch c {
			case "", ".":
				continue
			case "..":
				dir = path.Dir(dir)
				continue
			}
			next := path.Join(dir, c)
			n := t.nodes[strings.TrimPrefix(next, "/")]
			switch {
			case n == nil:
				return nil, fmt.Errorf("%s does not exist", next)
			case n.kind == kindSymlink:
				if links++; links > maxSymlinks {
					return nil, fmt.Errorf("too many levels of symlinks")
				}
				target := n.link
				if !strings.HasPrefix(target, "/") {
					target = path.Join(dir, target)
				}
				if rest != "" {
					target += "/" + rest
				}
				return walk("/", strings.TrimPrefix(target, "/"))
			case rest != "" && n.kind != kindDir:
				return nil, fmt.Errorf("%s is not a directory", next)
			case rest == "":
				return n, nil
			}
			dir = next
		}
		return nil, fmt.Errorf("%s is a directory", dir)
	}
	return walk("/", strings.TrimPrefix(p, "/"))
}
