package iso

import (
	"fmt"
	"sort"
	"strings"
)

// maxNameLen is the longest name Rock Ridge (and POSIX) can carry.
const maxNameLen = 255

// node is one file or directory of the image being written.
type node struct {
	name     string // full (Rock Ridge) name
	path     string // slash-separated path from the root; "" for the root
	dir      bool
	size     int64
	source   string
	exec     bool // mode 0755 instead of 0644
	parent   *node
	children []*node // sorted by name, byte order

	isoID          []byte  // primary identifier ("NAME.EXT;1" or "DIR")
	isoChildren    []*node // children in primary identifier order
	jolietID       []byte  // Joliet identifier, UCS-2 big-endian
	jolietChildren []*node // children in Joliet identifier order
	subdirs        uint32  // number of child directories

	// Layout, filled in by planLayout.
	isoDir    extentPos // primary directory extent (directories)
	jolietDir extentPos // Joliet directory extent (directories)
	isoNum    uint16    // path table number in the primary tree
	jolietNum uint16    // path table number in the Joliet tree
	dataLBA   uint32    // first block of the content (files)
}

// extentPos is where a directory extent lives.
type extentPos struct {
	lba    uint32
	blocks uint32
}

// buildTree turns entries into a tree of nodes, implying parent directories
// and sorting children by name. Entries are validated first, in path order,
// so the error for bad input does not depend on the order of entries.
func buildTree(entries []Entry) (*node, error) {
	sorted := make([]Entry, len(entries))
	copy(sorted, entries)
	sort.SliceStable(sorted, func(i, j int) bool { return sorted[i].Path < sorted[j].Path })

	root := &node{dir: true}
	byPath := map[string]*node{"": root}
	for _, e := range sorted {
		if err := addEntry(root, byPath, e); err != nil {
			return nil, err
		}
	}
	sortChildren(root)
	return root, nil
}

// addEntry adds one entry and its implied parents to the tree.
func addEntry(root *node, byPath map[string]*node, e Entry) error {
	if err := validatePath(e.Path); err != nil {
		return err
	}
	if !e.Dir {
		if e.Size < 0 {
			return fmt.Errorf("iso: entry %q: negative size %d", e.Path, e.Size)
		}
		if e.Source == "" && e.Size != 0 {
			return fmt.Errorf("iso: entry %q: no source for %d bytes", e.Path, e.Size)
		}
	}
	parent := root
	elems := strings.Split(e.Path, "/")
	for i, name := range elems {
		p := strings.Join(elems[:i+1], "/")
		last := i == len(elems)-1
		n, ok := byPath[p]
		if !ok {
			n = &node{name: name, path: p, parent: parent, dir: !last || e.Dir}
			byPath[p] = n
			parent.children = append(parent.children, n)
			if n.dir {
				parent.subdirs++
			}
		}
		if !last && !n.dir {
			return fmt.Errorf("iso: entry %q: %q is not a directory", e.Path, p)
		}
		if last {
			if err := describe(n, e, ok); err != nil {
				return err
			}
		}
		parent = n
	}
	return nil
}

// describe records what entry e says about node n, which may already exist
// (as an implied parent or from an earlier entry).
func describe(n *node, e Entry, existed bool) error {
	if existed {
		if e.Dir != n.dir {
			return fmt.Errorf("iso: entry %q: listed both as a file and as a directory", e.Path)
		}
		if !e.Dir {
			return fmt.Errorf("iso: entry %q: listed twice", e.Path)
		}
		return nil
	}
	n.size = e.Size
	n.source = e.Source
	n.exec = e.Executable
	return nil
}

// validatePath checks that p is a relative slash-separated path whose every
// element can be carried as a Rock Ridge name.
func validatePath(p string) error {
	if p == "" {
		return fmt.Errorf("iso: entry with an empty path")
	}
	for _, name := range strings.Split(p, "/") {
		if err := validateName(name); err != nil {
			return fmt.Errorf("iso: entry %q: %w", p, err)
		}
	}
	return nil
}

// validateName checks one path element.
func validateName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("empty name (leading, trailing or double slash)")
	case name == "." || name == "..":
		return fmt.Errorf("name %q is not allowed", name)
	case strings.IndexByte(name, 0) >= 0:
		return fmt.Errorf("name contains a NUL byte")
	case len(name) > maxNameLen:
		return fmt.Errorf("name is %d bytes long, more than %d", len(name), maxNameLen)
	}
	return nil
}

// sortChildren orders every directory's children by name, recursively.
func sortChildren(dir *node) {
	sort.Slice(dir.children, func(i, j int) bool { return dir.children[i].name < dir.children[j].name })
	for _, c := range dir.children {
		if c.dir {
			sortChildren(c)
		}
	}
}

// walkDirs calls fn for dir and every directory below it, parents first.
func walkDirs(dir *node, fn func(*node)) {
	fn(dir)
	for _, c := range dir.children {
		if c.dir {
			walkDirs(c, fn)
		}
	}
}
