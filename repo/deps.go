package repo

import (
	"fmt"
	"strings"

	rpmutils "github.com/sassoftware/go-rpmutils"
)

// RPMSENSE bits used when reading dependencies.
const (
	sensePrereq    = 1 << 6
	senseScriptPre = 1 << 9
	senseScriptPst = 1 << 10
	senseMissingOK = 1 << 19 // legacy weak dependency (Requires(missingok))
	senseStrong    = 1 << 27 // legacy strong weak dependency
)

// depKind is one dependency list of the header, in the order createrepo_c
// processes them (the order matters for the filtering of requires).
type depKind int

const (
	depProvides depKind = iota
	depConflicts
	depObsoletes
	depRequires
	depSuggests
	depEnhances
	depRecommends
	depSupplements
	depOldSuggests
	depOldEnhances
)

var depTags = []struct {
	kind                 depKind
	name, flags, version int
}{
	{depProvides, rpmutils.PROVIDENAME, rpmutils.PROVIDEFLAGS, rpmutils.PROVIDEVERSION},
	{depConflicts, rpmutils.CONFLICTNAME, rpmutils.CONFLICTFLAGS, rpmutils.CONFLICTVERSION},
	{depObsoletes, rpmutils.OBSOLETENAME, rpmutils.OBSOLETEFLAGS, rpmutils.OBSOLETEVERSION},
	{depRequires, rpmutils.REQUIRENAME, rpmutils.REQUIREFLAGS, rpmutils.REQUIREVERSION},
	{depSuggests, tagSuggestName, tagSuggestName + 2, tagSuggestName + 1},
	{depEnhances, tagEnhanceName, tagEnhanceName + 2, tagEnhanceName + 1},
	{depRecommends, tagRecommendName, tagRecommendName + 2, tagRecommendName + 1},
	{depSupplements, tagSupplementName, tagSupplementName + 2, tagSupplementName + 1},
	{depOldSuggests, tagOldSuggestsName, tagOldSuggestsName + 2, tagOldSuggestsName + 1},
	{depOldEnhances, tagOldEnhancesName, tagOldEnhancesName + 2, tagOldEnhancesName + 1},
}

// isPrimaryFile reports whether createrepo_c lists path in primary.xml (and
// so drops requires on it when the package itself owns it).
func isPrimaryFile(path string) bool {
	return strings.HasPrefix(path, "/etc/") || path == "/usr/lib/sendmail" || strings.Contains(path, "bin/")
}

// flagsString maps the comparison bits of RPMSENSE flags to createrepo_c's
// names; any other combination is "".
func flagsString(f uint64) string {
	switch f & 0xf {
	case 2:
		return "LT"
	case 4:
		return "GT"
	case 8:
		return "EQ"
	case 10:
		return "LE"
	case 12:
		return "GE"
	}
	return ""
}

// splitEVR splits a dependency version "[epoch:]version[-release]" the way
// createrepo_c does: the epoch defaults to "0", the release starts at the
// first '-'. ok is false for a non-numeric epoch (createrepo_c skips such
// dependencies with a warning).
func splitEVR(s string) (epoch, version, release string, ok bool) {
	if s == "" {
		return "", "", "", true
	}
	epoch = "0"
	if i := strings.IndexByte(s, ':'); i >= 0 {
		e := s[:i]
		if e != "" {
			if !isCNumber(e) {
				return "", "", "", false
			}
			epoch = e
		}
		s = s[i+1:]
	}
	if j := strings.IndexByte(s, '-'); j >= 0 {
		return epoch, s[:j], s[j+1:], true
	}
	return epoch, s, "", true
}

// isCNumber reports whether strtol(s, &end, 10) consumes all of s: optional
// white space, an optional sign, at least one digit.
func isCNumber(s string) bool {
	s = strings.TrimLeft(s, " \t\n\v\f\r")
	if s != "" && (s[0] == '+' || s[0] == '-') {
		s = s[1:]
	}
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// readDeps fills pkg's dependency lists from the header, filtered as
// createrepo_c filters them. pkg.Files must already be set.
func readDeps(h hdr, pkg *Package) error {
	files := make(map[string]bool, len(pkg.Files))
	for _, f := range pkg.Files {
		files[f.Path] = true
	}
	provided := map[string]bool{} // name+flags+version of every provide
	type lastReq struct {
		flags, version string
		pre            bool
	}
	seenReq := map[string]lastReq{} // the last require kept, by name
	for _, t := range depTags {
		names, err := h.strings(t.name)
		if err != nil {
			return err
		}
		if len(names) == 0 {
			continue
		}
		flags, err := h.uints(t.flags)
		if err != nil {
			return err
		}
		versions, err := h.strings(t.version)
		if err != nil {
			return err
		}
		// rpm treats missing flag and version tags as unversioned
		// dependencies (old packages); any other mismatch is corrupt.
		if flags == nil {
			flags = make([]uint64, len(names))
		}
		if versions == nil {
			versions = make([]string, len(names))
		}
		if len(flags) != len(names) || len(versions) != len(names) {
			return fmt.Errorf("dependency tag %d: %d names, %d flags, %d versions", t.name, len(names), len(flags), len(versions))
		}
		var libc *Dependency // the highest libc.so.6 require
		for i, name := range names {
			if name == "" {
				// createrepo_c does not write nameless entries.
				continue
			}
			fl := flagsString(flags[i])
			ver := versions[i]
			nfv := name + "\x00" + fl + "\x00" + ver
			pre := false
			if t.kind == depRequires {
				if strings.HasPrefix(name, "rpmlib(") {
					continue
				}
				if strings.HasPrefix(name, "/") && files[name] && isPrimaryFile(name) {
					continue
				}
				if provided[nfv] {
					continue
				}
				pre = flags[i]&(sensePrereq|senseScriptPre|senseScriptPst) != 0
				if last, ok := seenReq[name]; ok && last.flags == fl && last.version == ver && last.pre == pre {
					continue
				}
			}
			e, v, r, ok := splitEVR(ver)
			if !ok {
				continue
			}
			d := Dependency{Name: name, Flags: fl, Epoch: e, Version: v, Release: r}
			if fl == "" {
				// createrepo_c writes no version without a comparison.
				d.Epoch, d.Version, d.Release = "", "", ""
			}
			switch t.kind {
			case depProvides:
				provided[nfv] = true
				pkg.Provides = append(pkg.Provides, d)
			case depConflicts:
				pkg.Conflicts = append(pkg.Conflicts, d)
			case depObsoletes:
				pkg.Obsoletes = append(pkg.Obsoletes, d)
			case depRequires:
				if flags[i]&senseMissingOK != 0 {
					pkg.Recommends = append(pkg.Recommends, d)
					continue
				}
				d.Pre = pre
				if strings.HasPrefix(name, "libc.so.6") {
					if libc == nil || compareLibcDep(libc.Name, name) == 2 {
						dd := d
						libc = &dd
					}
					continue
				}
				pkg.Requires = append(pkg.Requires, d)
				seenReq[name] = lastReq{fl, ver, pre}
			case depSuggests:
				pkg.Suggests = append(pkg.Suggests, d)
			case depEnhances:
				pkg.Enhances = append(pkg.Enhances, d)
			case depRecommends:
				pkg.Recommends = append(pkg.Recommends, d)
			case depSupplements:
				pkg.Supplements = append(pkg.Supplements, d)
			case depOldSuggests:
				if flags[i]&senseStrong != 0 {
					pkg.Recommends = append(pkg.Recommends, d)
				} else {
					pkg.Suggests = append(pkg.Suggests, d)
				}
			case depOldEnhances:
				if flags[i]&senseStrong != 0 {
					pkg.Supplements = append(pkg.Supplements, d)
				} else {
					pkg.Enhances = append(pkg.Enhances, d)
				}
			}
		}
		if libc != nil {
			pkg.Requires = append(pkg.Requires, *libc)
		}
	}
	return nil
}

// compareLibcDep compares two libc.so.6 dependency names by the version in
// their first parentheses, as createrepo_c does to keep only the highest
// one: 0 same, 1 the first is higher, 2 the second is, -1 undecidable.
func compareLibcDep(a, b string) int {
	if a == b {
		return 0
	}
	i, j := strings.IndexByte(a, '('), strings.IndexByte(b, '(')
	switch {
	case i < 0 && j < 0:
		return 0
	case i < 0:
		return 2
	case j < 0:
		return 1
	}
	ie, je := strings.IndexByte(a[i:], ')'), strings.IndexByte(b[j:], ')')
	switch {
	case ie < 0 && je < 0:
		return -1
	case ie < 0:
		return 2
	case je < 0:
		return 1
	}
	ie += i
	je += j
	i++
	j++
	switch {
	case i == ie && j == je:
		return 0
	case i == ie:
		return 2
	case j == je:
		return 1
	}
	// Skip to the first digit, which may lie past the closing parenthesis.
	for i < len(a) && (a[i] < '0' || a[i] > '9') {
		i++
	}
	for j < len(b) && (b[j] < '0' || b[j] > '9') {
		j++
	}
	switch {
	case i > ie && j > je:
		return 0
	case i > ie:
		return 2
	case j > je:
		return 1
	}
	switch rpmutils.Vercmp(a[i:ie], b[j:je]) {
	case 0:
		return 0
	case 1:
		return 1
	default:
		return 2
	}
}
