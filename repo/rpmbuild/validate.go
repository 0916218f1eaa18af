package rpmbuild

import (
	"cmp"
	"fmt"
	"io/fs"
	"math"
	"path"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/rpmpack"
)

// maxPayload bounds the content of one package: rpmpack writes 32-bit
// sizes (signed for the header+payload size) and holds it all in memory.
const maxPayload = 2000 << 20

// maxPath is PATH_MAX.
const maxPath = 4096

var (
	// rpm's package names: no whitespace, no comparison operators, no
	// leading dash (it would read as an option).
	nameRE = regexp.MustCompile(`^[A-Za-z0-9_+][A-Za-z0-9._+-]*$`)
	// Version and release: rpm forbids "-" (the separator) and ":" (the
	// epoch's); keep to the characters rpm's version comparison knows.
	versionRE = regexp.MustCompile(`^[A-Za-z0-9._+~^]+$`)
	evrRE     = regexp.MustCompile(`^([0-9]+:)?[A-Za-z0-9._+~^]+(-[A-Za-z0-9._+~^]+)?$`)
	// shadow-utils' default user and group name rule.
	userRE = regexp.MustCompile(`^[a-z_][a-z0-9_-]{0,30}[$]?$`)
	unitRE = regexp.MustCompile(`^[A-Za-z0-9:_.@\\-]+\.(service|socket|timer|target|path|mount|automount|slice)$`)
	// sysusers.d names: a file name without ".conf".
	sysusersRE = regexp.MustCompile(`^[A-Za-z0-9_@-][A-Za-z0-9._@-]*$`)
)

var arches = map[string]string{"x86_64": "x86-64", "aarch64": "aarch-64", "noarch": ""}

var senses = map[string]uint32{
	"":   uint32(rpmpack.SenseAny),
	"<":  uint32(rpmpack.SenseLess),
	"<=": uint32(rpmpack.SenseLess | rpmpack.SenseEqual),
	"=":  uint32(rpmpack.SenseEqual),
	">=": uint32(rpmpack.SenseGreater | rpmpack.SenseEqual),
	">":  uint32(rpmpack.SenseGreater),
}

// invalid returns an ErrInvalid error about package p.
func (p *Package) invalid(format string, args ...any) error {
	return fmt.Errorf("rpm %q: %w: %s", p.Name, ErrInvalid, fmt.Sprintf(format, args...))
}

// validateMeta checks the package's own fields.
func (p *Package) validateMeta() error {
	if p.Name == "" {
		return p.invalid("name is empty")
	}
	if len(p.Name) > 255 || !nameRE.MatchString(p.Name) {
		return p.invalid("name %q: use letters, digits and . _ + - (not first)", p.Name)
	}
	for _, f := range []struct{ field, v string }{{"version", p.Version}, {"release", p.Release}} {
		if f.v == "" {
			return p.invalid("%s is empty", f.field)
		}
		if len(f.v) > 255 || !versionRE.MatchString(f.v) {
			return p.invalid("%s %q: use letters, digits and . _ + ~ ^ (no - or :)", f.field, f.v)
		}
	}
	if _, ok := arches[p.Arch]; !ok {
		return p.invalid("arch %q: want x86_64, aarch64 or noarch", p.Arch)
	}
	if p.Epoch > math.MaxInt32 {
		return p.invalid("epoch %d is larger than %d", p.Epoch, math.MaxInt32)
	}
	if p.Summary == "" {
		return p.invalid("summary is empty")
	}
	if p.License == "" {
		return p.invalid("license is empty")
	}
	for _, f := range []struct{ field, v string }{
		{"summary", p.Summary}, {"license", p.License}, {"url", p.URL},
		{"vendor", p.Vendor}, {"packager", p.Packager}, {"group", p.Group},
	} {
		if err := checkText(f.v, false); err != nil {
			return p.invalid("%s: %v", f.field, err)
		}
	}
	if err := checkText(p.Description, true); err != nil {
		return p.invalid("description: %v", err)
	}
	if p.BuildTime.IsZero() {
		return p.invalid("build time is not set (pass SOURCE_DATE_EPOCH)")
	}
	if s := p.BuildTime.Unix(); s < 0 || s > math.MaxInt32 {
		return p.invalid("build time %s is outside 1970..2038, which rpm's 32-bit header holds", p.BuildTime.UTC().Format(time.RFC3339))
	}
	return nil
}

// checkText refuses invalid UTF-8, NUL and control characters other than
// tab (and newline when multiline).
func checkText(s string, multiline bool) error {
	if !utf8.ValidString(s) {
		return fmt.Errorf("not valid UTF-8")
	}
	for _, r := range s {
		if r == '\n' && multiline || r == '\t' {
			continue
		}
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("control character %q", r)
		}
	}
	return nil
}

// files returns the package's files (its own, its units' and its
// sysusers'), validated, with their content read, in rpmpack's form.
func (p *Package) files() ([]rpmpack.RPMFile, error) {
	all := slices.Clone(p.Files)
	for _, u := range p.Units {
		if !unitRE.MatchString(u.Name) {
			return nil, p.invalid("unit %q: want a unit file name such as kubelet.service", u.Name)
		}
		if len(u.Body) == 0 {
			return nil, p.invalid("unit %s is empty", u.Name)
		}
		all = append(all, File{Path: unitDir + u.Name, Body: u.Body, Mode: 0o644})
	}
	for _, s := range p.Sysusers {
		if err := s.check(); err != nil {
			return nil, p.invalid("sysusers %q: %v", s.Name, err)
		}
		all = append(all, File{Path: s.path(), Body: s.Conf, Mode: 0o644})
	}
	byPath := make(map[string]FileType, len(all))
	for _, f := range all {
		if err := checkPath(f.Path); err != nil {
			return nil, p.invalid("file %q: %v", f.Path, err)
		}
		if _, dup := byPath[f.Path]; dup {
			return nil, p.invalid("file %s is listed twice (or is also a unit or sysusers file)", f.Path)
		}
		byPath[f.Path] = f.Type
	}
	var out []rpmpack.RPMFile
	budget := int64(maxPayload)
	for _, f := range all {
		for dir := path.Dir(f.Path); dir != "/"; dir = path.Dir(dir) {
			if t, ok := byPath[dir]; ok && t != Dir {
				return nil, p.invalid("file %s: its parent %s is not a directory in the package", f.Path, dir)
			}
		}
		rf, err := p.file(f, &budget)
		if err != nil {
			return nil, err
		}
		out = append(out, rf)
	}
	return out, nil
}

// checkPath accepts absolute, clean paths without control characters.
func checkPath(p string) error {
	switch {
	case p == "":
		return fmt.Errorf("path is empty")
	case !strings.HasPrefix(p, "/"):
		return fmt.Errorf("path is not absolute")
	case slices.Contains(strings.Split(p, "/"), ".."):
		return fmt.Errorf("path contains \"..\"")
	case p == "/":
		return fmt.Errorf("the root directory cannot be packaged")
	case path.Clean(p) != p:
		return fmt.Errorf("path is not clean (want %q)", path.Clean(p))
	case len(p) > maxPath:
		return fmt.Errorf("path is longer than %d bytes", maxPath)
	}
	return checkText(p, false)
}

// file validates one file and converts it, reading its Source; budget is
// what the package's content may still grow by.
func (p *Package) file(f File, budget *int64) (rpmpack.RPMFile, error) {
	bad := func(format string, args ...any) error {
		return p.invalid("file %s: %s", f.Path, fmt.Sprintf(format, args...))
	}
	if f.Mode&^(fs.ModePerm|fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky) != 0 {
		return rpmpack.RPMFile{}, bad("mode %v has type bits; set Type instead", f.Mode)
	}
	rf := rpmpack.RPMFile{Name: f.Path, Owner: "root", Group: "root"}
	for _, o := range []struct {
		field, v string
		dst      *string
	}{{"owner", f.Owner, &rf.Owner}, {"group", f.Group, &rf.Group}} {
		if o.v == "" {
			continue
		}
		if !userRE.MatchString(o.v) {
			return rf, bad("%s %q is not a valid user or group name", o.field, o.v)
		}
		*o.dst = o.v
	}
	hasContent := f.Source != "" || f.Body != nil
	if f.Source != "" && f.Body != nil {
		return rf, bad("both Source and Body are set")
	}
	if f.Type != Regular && (f.Config || f.NoReplace) {
		return rf, bad("only regular files can be config files")
	}
	if f.Type != Regular && f.Doc {
		return rf, bad("only regular files can be doc files")
	}
	if f.Type != Symlink && f.LinkTarget != "" {
		return rf, bad("LinkTarget is set on a file that is not a symlink")
	}
	perm := unixPerm(f.Mode)
	switch f.Type {
	case Regular:
		if perm == 0 {
			return rf, bad("mode has no permission bits (want e.g. 0644 or 0755)")
		}
		rf.Mode = perm
		switch {
		case f.Ghost && hasContent:
			return rf, bad("a ghost file has no content; drop Source and Body")
		case f.Source != "":
			data, err := readSource(f.Source, *budget)
			if err != nil {
				return rf, fmt.Errorf("rpm %q: file %s: reading source: %w", p.Name, f.Path, err)
			}
			rf.Body = data
		default:
			rf.Body = f.Body
		}
	case Dir:
		if hasContent {
			return rf, bad("a directory has no content; drop Source and Body")
		}
		if perm == 0 {
			return rf, bad("mode has no permission bits (want e.g. 0755)")
		}
		rf.Mode = 0o040000 | perm
	case Symlink:
		if hasContent {
			return rf, bad("a symlink has no content; set LinkTarget only")
		}
		if f.LinkTarget == "" {
			return rf, bad("symlink has no LinkTarget")
		}
		if len(f.LinkTarget) > maxPath || strings.ContainsRune(f.LinkTarget, 0) {
			return rf, bad("link target is longer than %d bytes or holds a NUL", maxPath)
		}
		if err := checkText(f.LinkTarget, false); err != nil {
			return rf, bad("link target: %v", err)
		}
		if perm != 0 && perm != 0o777 {
			return rf, bad("symlink mode is always 0777; leave Mode 0")
		}
		rf.Mode = 0o120777
		rf.Body = []byte(f.LinkTarget)
	default:
		return rf, bad("unknown type %d", f.Type)
	}
	if int64(len(rf.Body)) > *budget {
		return rf, bad("too large: the package's files may total %d MiB", maxPayload>>20)
	}
	*budget -= int64(len(rf.Body))
	var t rpmpack.FileType
	if f.Config || f.NoReplace {
		t |= rpmpack.ConfigFile
	}
	if f.NoReplace {
		t |= rpmpack.NoReplaceFile
	}
	if f.Doc {
		t |= rpmpack.DocFile
	}
	if f.Ghost {
		t |= rpmpack.GhostFile
	}
	rf.Type = t
	return rf, nil
}

// unixPerm converts Go's permission bits to the Unix ones.
func unixPerm(m fs.FileMode) uint {
	u := uint(m.Perm())
	if m&fs.ModeSetuid != 0 {
		u |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		u |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		u |= 0o1000
	}
	return u
}

// relationSet is the package's dependencies in rpmpack's form.
type relationSet struct {
	requires, provides, conflicts, obsoletes, recommends rpmpack.Relations
}

// rpmlib(feature) requirements: rpm refuses a package whose features it
// lacks instead of misreading it.
const senseRPMLib = uint32(rpmpack.SenseRPMLIB | rpmpack.SenseLess | rpmpack.SenseEqual)

// relations validates the declared dependencies and adds the ones rpmbuild
// would: self-provides, rpmlib() features and scriptlet interpreters.
func (p *Package) relations(hasFiles bool, comp string, s Scripts) (relationSet, error) {
	var out relationSet
	lists := []struct {
		field string
		in    []Relation
		dst   *rpmpack.Relations
	}{
		{"requires", p.Requires, &out.requires}, {"provides", p.Provides, &out.provides},
		{"conflicts", p.Conflicts, &out.conflicts}, {"obsoletes", p.Obsoletes, &out.obsoletes},
		{"recommends", p.Recommends, &out.recommends},
	}
	for _, l := range lists {
		seen := map[Relation]bool{}
		for _, r := range l.in {
			if err := checkRelation(r); err != nil {
				return out, p.invalid("%s %q: %v", l.field, r.String(), err)
			}
			if seen[r] {
				return out, p.invalid("%s %q is listed twice", l.field, r.String())
			}
			seen[r] = true
			*l.dst = append(*l.dst, relation(r.Name, r.Version, senses[r.Flags]))
		}
	}
	evr := p.Version + "-" + p.Release
	if p.Epoch != 0 {
		evr = fmt.Sprintf("%d:%s", p.Epoch, evr)
	}
	self := []*rpmpack.Relation{{Name: p.Name, Version: evr, Sense: rpmpack.SenseEqual}}
	if isa := arches[p.Arch]; isa != "" {
		self = append(self, &rpmpack.Relation{Name: p.Name + "(" + isa + ")", Version: evr, Sense: rpmpack.SenseEqual})
	}
	for _, r := range self {
		if !slices.ContainsFunc(out.provides, r.Equal) {
			out.provides = append(out.provides, r)
		}
	}
	var lib []string
	if hasFiles {
		lib = append(lib, "CompressedFileNames=3.0.4-1", "FileDigests=4.6.0-1")
	}
	switch comp {
	case "zstd":
		lib = append(lib, "PayloadIsZstd=5.4.18-1")
	case "xz":
		lib = append(lib, "PayloadIsXz=5.2-1")
	}
	for _, l := range lib {
		name, ver, _ := strings.Cut(l, "=")
		out.requires = append(out.requires, relation("rpmlib("+name+")", ver, senseRPMLib))
	}
	for _, sc := range []struct {
		body  string
		sense uint32
	}{{s.Pre, senseScriptPre}, {s.Post, senseScriptPost}, {s.PreUn, senseScriptPreU}, {s.PostUn, senseScriptPstU}} {
		if sc.body != "" {
			out.requires = append(out.requires, relation("/bin/sh", "", senseInterp|sc.sense))
		}
	}
	for _, l := range lists {
		sortRelations(*l.dst)
	}
	return out, nil
}

// relation makes an rpmpack relation with the given flag bits (rpmpack's
// flag type is unexported: set it bit by bit).
func relation(name, version string, bits uint32) *rpmpack.Relation {
	r := &rpmpack.Relation{Name: name, Version: version}
	for bit := 0; bit < 32; bit++ {
		if bits&(1<<bit) != 0 {
			r.Sense |= 1 << bit
		}
	}
	return r
}

func sortRelations(rs rpmpack.Relations) {
	slices.SortStableFunc(rs, func(a, b *rpmpack.Relation) int {
		return cmp.Or(cmp.Compare(a.Name, b.Name), cmp.Compare(a.Sense, b.Sense), cmp.Compare(a.Version, b.Version))
	})
}

// checkRelation validates one dependency.
func checkRelation(r Relation) error {
	if r.Name == "" {
		return fmt.Errorf("name is empty")
	}
	if len(r.Name) > 1024 || strings.ContainsAny(r.Name, "<>= \t") || strings.HasPrefix(r.Name, "(") || strings.HasPrefix(r.Name, "-") {
		return fmt.Errorf("name %q: no spaces, comparison operators, rich dependencies or leading dash", r.Name)
	}
	if strings.HasPrefix(r.Name, "rpmlib(") {
		return fmt.Errorf("rpmlib() dependencies are added automatically")
	}
	if err := checkText(r.Name, false); err != nil {
		return err
	}
	if _, ok := senses[r.Flags]; !ok {
		return fmt.Errorf("flags %q: want one of \"\", =, <, <=, >, >=", r.Flags)
	}
	if r.Flags == "" && r.Version != "" {
		return fmt.Errorf("a version without flags; set Flags (e.g. \">=\")")
	}
	if r.Flags != "" && !evrRE.MatchString(r.Version) {
		return fmt.Errorf("version %q is not [epoch:]version[-release]", r.Version)
	}
	return nil
}

// String formats r as rpm does: "name >= 1.0-1".
func (r Relation) String() string {
	if r.Flags == "" {
		return r.Name
	}
	return r.Name + " " + r.Flags + " " + r.Version
}
