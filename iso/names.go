package iso

import (
	"sort"
	"strconv"
	"strings"
)

// uniqueNamer hands out identifiers that are unique within one directory.
// Clashes are resolved deterministically by a counter suffix; next remembers
// the last counter used per clashing first candidate, so that many names
// truncated to the same identifier stay cheap.
type uniqueNamer struct {
	used map[string]bool
	next map[string]int
}

func newUniqueNamer() *uniqueNamer {
	return &uniqueNamer{used: map[string]bool{}, next: map[string]int{}}
}

// pick returns candidate(0) if its key is free, else candidate(1),
// candidate(2), ... until one is free. key maps a candidate to the string
// that must be unique.
// A candidate for which reject (if not nil) returns true is skipped.
func (u *uniqueNamer) pick(candidate func(n int) string, key func(string) string, reject func(string) bool) string {
	ok := func(name string) bool { return reject == nil || !reject(name) }
	first := candidate(0)
	if k := key(first); !u.used[k] && ok(first) {
		u.used[k] = true
		return first
	}
	for n := u.next[first] + 1; ; n++ {
		name := candidate(n)
		if k := key(name); !u.used[k] && ok(name) {
			u.used[k] = true
			u.next[first] = n
			return name
		}
	}
}

// Primary (ECMA-119) identifiers: d-characters (A-Z, 0-9, _), file names
// "NAME.EXT;1" with NAME and EXT together at most 30 characters (level 2 and
// 3), directory names at most 31 characters.
const (
	maxISOFileChars = 30
	maxISOExtChars  = 8
	maxISODirChars  = 31
)

// toDChars upper-cases s and replaces everything that is not a d-character
// with '_'.
func toDChars(s string) string {
	b := []byte(s)
	for i, c := range b {
		switch {
		case c >= 'a' && c <= 'z':
			b[i] = c - 'a' + 'A'
		case c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_':
		default:
			b[i] = '_'
		}
	}
	return string(b)
}

// assignISONames gives every child of dir a unique primary identifier and
// orders the children as ECMA-119 9.3 wants.
//
// A reader without Rock Ridge shows an identifier as is or lower-cased
// (Linux); neither may be the Rock Ridge name of a sibling, or that reader
// would show another file under the sibling's name (OpenStrict refuses
// such images).
func assignISONames(dir *node) {
	u := newUniqueNamer()
	names := make(map[string]*node, len(dir.children))
	for _, c := range dir.children {
		names[c.name] = c
	}
	for _, c := range dir.children {
		reject := func(id string) bool {
			shown := strings.TrimSuffix(id, ".")
			for _, alias := range []string{shown, strings.ToLower(shown)} {
				if other, ok := names[alias]; ok && other != c {
					return true
				}
			}
			return false
		}
		if c.dir {
			c.isoID = []byte(isoDirName(u, c.name, reject))
		} else {
			c.isoID = []byte(isoFileName(u, c.name, reject) + ";1")
		}
	}
	dir.isoChildren = append([]*node(nil), dir.children...)
	sort.Slice(dir.isoChildren, func(i, j int) bool {
		return lessISOID(dir.isoChildren[i].isoID, dir.isoChildren[j].isoID)
	})
}

// isoDirName mangles a directory name.
func isoDirName(u *uniqueNamer, name string, reject func(string) bool) string {
	base := toDChars(name)
	candidate := func(n int) string {
		return withSuffix(base, n, maxISODirChars)
	}
	return u.pick(candidate, func(s string) string { return s }, reject)
}

// isoFileName mangles a file name into "NAME.EXT" (without version).
func isoFileName(u *uniqueNamer, name string, reject func(string) bool) string {
	base, ext := name, ""
	if i := strings.LastIndexByte(name, '.'); i >= 0 {
		base, ext = name[:i], name[i+1:]
	}
	base, ext = toDChars(base), toDChars(ext)
	if len(ext) > maxISOExtChars {
		ext = ext[:maxISOExtChars]
	}
	candidate := func(n int) string {
		return withSuffix(base, n, maxISOFileChars-len(ext)) + "." + ext
	}
	// Readers without Rock Ridge show "NAME." as "NAME", so that is the
	// form that must not clash with a directory.
	key := func(s string) string { return strings.TrimSuffix(s, ".") }
	return u.pick(candidate, key, reject)
}

// withSuffix truncates s to max characters, making room for "_n" when n > 0.
func withSuffix(s string, n, max int) string {
	suffix := ""
	if n > 0 {
		suffix = "_" + strconv.Itoa(n)
	}
	if len(s)+len(suffix) > max {
		s = s[:max-len(suffix)]
	}
	return s + suffix
}

// lessISOID orders identifiers as ECMA-119 9.3: by name, then extension,
// each compared as if padded with spaces (for d-characters that is plain
// byte order), then by version.
func lessISOID(a, b []byte) bool {
	an, ae := splitISOID(a)
	bn, be := splitISOID(b)
	if an != bn {
		return an < bn
	}
	return ae < be
}

// splitISOID splits "NAME.EXT;1" into "NAME" and "EXT;1".
func splitISOID(id []byte) (string, string) {
	s := string(id)
	if i := strings.IndexByte(s, '.'); i >= 0 {
		return s[:i], s[i+1:]
	}
	return s, ""
}
