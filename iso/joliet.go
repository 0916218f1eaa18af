package iso

import (
	"bytes"
	"sort"
	"strconv"
	"unicode/utf16"
)

// maxJolietChars is the longest Joliet identifier, in UCS-2 characters.
const maxJolietChars = 64

// maxJolietExtChars is the longest extension kept when a name is truncated.
const maxJolietExtChars = 16

// jolietRune maps r to a character Joliet allows: UCS-2 (no surrogates, no
// characters beyond the Basic Multilingual Plane), no control characters and
// none of * / : ; ? \.
func jolietRune(r rune) uint16 {
	switch {
	case r < 0x20, r > 0xFFFF, r >= 0xD800 && r <= 0xDFFF, r == 0xFFFD:
		return '_'
	case r == '*', r == '/', r == ':', r == ';', r == '?', r == '\\':
		return '_'
	}
	return uint16(r)
}

// jolietChars converts a name to Joliet characters.
func jolietChars(name string) []uint16 {
	var u []uint16
	for _, r := range name {
		u = append(u, jolietRune(r))
	}
	return u
}

// assignJolietNames gives every child of dir a unique Joliet identifier of at
// most 64 characters and orders the children by identifier. Names that are
// too long are truncated, keeping a short extension; clashes get a "~n"
// counter.
func assignJolietNames(dir *node) {
	u := newUniqueNamer()
	for _, c := range dir.children {
		chars := jolietChars(c.name)
		base, ext := chars, []uint16(nil)
		if !c.dir {
			base, ext = splitJolietExt(chars)
		}
		candidate := func(n int) string {
			return string(utf16.Decode(jolietCandidate(base, ext, n)))
		}
		name := u.pick(candidate, func(s string) string { return s }, nil)
		c.jolietID = ucs2(name)
	}
	dir.jolietChildren = append([]*node(nil), dir.children...)
	sort.Slice(dir.jolietChildren, func(i, j int) bool {
		return bytes.Compare(dir.jolietChildren[i].jolietID, dir.jolietChildren[j].jolietID) < 0
	})
}

// splitJolietExt splits a file name at its last dot when what follows is a
// short extension worth keeping through truncation. ext includes the dot.
func splitJolietExt(chars []uint16) (base, ext []uint16) {
	for i := len(chars) - 1; i > 0; i-- {
		if chars[i] == '.' {
			if len(chars)-i <= maxJolietExtChars {
				return chars[:i], chars[i:]
			}
			break
		}
	}
	return chars, nil
}

// jolietCandidate builds base+suffix+ext within maxJolietChars; n > 0 adds a
// "~n" suffix.
func jolietCandidate(base, ext []uint16, n int) []uint16 {
	var suffix []uint16
	if n > 0 {
		suffix = jolietChars("~" + strconv.Itoa(n))
	}
	room := maxJolietChars - len(ext) - len(suffix)
	if len(base) > room {
		base = base[:room]
	}
	out := append([]uint16(nil), base...)
	out = append(out, suffix...)
	return append(out, ext...)
}

// ucs2 encodes s (made only of BMP characters) as UCS-2 big-endian.
func ucs2(s string) []byte {
	b := make([]byte, 0, 2*len(s))
	for _, c := range utf16.Encode([]rune(s)) {
		b = append(b, byte(c>>8), byte(c))
	}
	return b
}

// ucs2Field encodes s as UCS-2 big-endian into a descriptor field of n bytes,
// truncated and padded with UCS-2 spaces.
func ucs2Field(s string, n int) []byte {
	field := make([]byte, n)
	for i := 0; i+1 < n; i += 2 {
		field[i], field[i+1] = 0, ' '
	}
	if n%2 == 1 {
		field[n-1] = 0
	}
	var chars []uint16
	for _, r := range s {
		chars = append(chars, jolietRune(r))
	}
	for i, c := range chars {
		if 2*i+1 >= n {
			break
		}
		field[2*i], field[2*i+1] = byte(c>>8), byte(c)
	}
	return field
}

// decodeUCS2 decodes a UCS-2 (or UTF-16) big-endian identifier. An odd
// trailing byte is ignored.
func decodeUCS2(b []byte) string {
	u := make([]uint16, len(b)/2)
	for i := range u {
		u[i] = uint16(b[2*i])<<8 | uint16(b[2*i+1])
	}
	return string(utf16.Decode(u))
}
