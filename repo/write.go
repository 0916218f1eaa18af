package repo

import (
	"bufio"
	"cmp"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	rpmutils "github.com/sassoftware/go-rpmutils"
)

// RepodataOptions controls WriteRepodata.
type RepodataOptions struct {
	// Revision is written as <revision> and as every timestamp: the
	// <timestamp> of each repomd.xml entry, <time file=> of packages
	// whose FileTime is 0, and the modification time of the files and of
	// the repodata directory. Callers pass SOURCE_DATE_EPOCH.
	Revision int64
	// ChangelogLimit is how many of each package's newest changelog
	// entries go into other.xml: 0 means createrepo_c's default of 10, a
	// negative value means all of them.
	ChangelogLimit int
}

const defaultChangelogLimit = 10

// gzipLevel is fixed so that output is reproducible.
const gzipLevel = gzip.BestCompression

// XML namespaces of the repodata files.
const (
	nsCommon    = "http://linux.duke.edu/metadata/common"
	nsRPM       = "http://linux.duke.edu/metadata/rpm"
	nsFilelists = "http://linux.duke.edu/metadata/filelists"
	nsOther     = "http://linux.duke.edu/metadata/other"
	nsRepo      = "http://linux.duke.edu/metadata/repo"
)

// WriteRepodata writes dir/repodata/{<sha256>-primary.xml.gz,
// <sha256>-filelists.xml.gz, <sha256>-other.xml.gz, repomd.xml} for pkgs and
// returns the paths written (repomd.xml last). The packages are sorted by
// name, epoch, version, release, arch and location. Locations must be clean
// relative paths (as fs.ValidPath: no "./", "..", or leading "/"); two
// packages with the same location are an error, as is text that XML cannot
// carry (control characters other than tab, newline and carriage return:
// createrepo_c rejects those packages too). Text that is not valid UTF-8 is
// read as Latin-1, as createrepo_c does.
//
// The metadata is written to a temporary directory dir/.repodata-*, which
// then replaces dir/repodata whole: files previously there (such as a stale
// repomd.xml.asc) are removed. The temporary directory is removed on error,
// but a crash can leave it behind.
func WriteRepodata(dir string, pkgs []*Package, opts RepodataOptions) ([]string, error) {
	sorted, err := sortPackages(pkgs)
	if err != nil {
		return nil, fmt.Errorf("writing repodata in %s: %w", dir, err)
	}
	stage, err := os.MkdirTemp(dir, ".repodata-")
	if err != nil {
		return nil, fmt.Errorf("writing repodata in %s: %w", dir, err)
	}
	defer os.RemoveAll(stage) // a no-op once renamed into place
	if err := os.Chmod(stage, 0o755); err != nil {
		return nil, fmt.Errorf("writing repodata in %s: %w", dir, err)
	}
	var recs []repomdRecord
	var names []string
	for _, kind := range []struct {
		typ    string
		encode func(io.Writer, []*Package, RepodataOptions) error
	}{
		{"primary", encodePrimary},
		{"filelists", encodeFilelists},
		{"other", encodeOther},
	} {
		rec, err := writeCompressed(stage, kind.typ, func(w io.Writer) error { return kind.encode(w, sorted, opts) })
		if err != nil {
			return nil, fmt.Errorf("writing %s metadata in %s: %w", kind.typ, dir, err)
		}
		recs = append(recs, rec)
		names = append(names, filepath.Base(rec.href))
	}
	repomd := encodeRepomd(recs, opts.Revision)
	if err := os.WriteFile(filepath.Join(stage, "repomd.xml"), repomd, 0o644); err != nil {
		return nil, fmt.Errorf("writing repomd.xml in %s: %w", dir, err)
	}
	names = append(names, "repomd.xml")
	// Like createrepo_c --set-timestamp-to-revision: file times are part
	// of what an image build may copy.
	rev := time.Unix(opts.Revision, 0)
	for _, n := range append(names, ".") {
		if err := os.Chtimes(filepath.Join(stage, n), rev, rev); err != nil {
			return nil, fmt.Errorf("writing repodata in %s: %w", dir, err)
		}
	}
	if err := replaceDir(stage, filepath.Join(dir, "repodata")); err != nil {
		return nil, fmt.Errorf("writing repodata in %s: %w", dir, err)
	}
	paths := make([]string, len(names))
	for i, n := range names {
		paths[i] = filepath.Join(dir, "repodata", n)
	}
	return paths, nil
}

// replaceDir moves stage to dst, replacing whatever dst was.
func replaceDir(stage, dst string) error {
	old := ""
	if _, err := os.Lstat(dst); err == nil {
		old = stage + ".old"
		if err := os.Rename(dst, old); err != nil {
			return err
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if err := os.Rename(stage, dst); err != nil {
		if old != "" {
			_ = os.Rename(old, dst)
		}
		return err
	}
	if old != "" {
		return os.RemoveAll(old)
	}
	return nil
}

// sortPackages returns a sorted copy of pkgs after checking what the writer
// relies on.
func sortPackages(pkgs []*Package) ([]*Package, error) {
	out := make([]*Package, 0, len(pkgs))
	for i, p := range pkgs {
		if p == nil {
			return nil, fmt.Errorf("package %d is nil", i)
		}
		if p.Name == "" {
			return nil, fmt.Errorf("package %d (at %q) has no name", i, p.Location)
		}
		if !fs.ValidPath(p.Location) || p.Location == "." {
			return nil, fmt.Errorf("package %s: location %q is not a clean relative path", p.Name, p.Location)
		}
		if !isSHA256Hex(p.Checksum) {
			return nil, fmt.Errorf("package %s: checksum %q is not a sha256 hex digest", p.Location, p.Checksum)
		}
		if p.Epoch < 0 {
			return nil, fmt.Errorf("package %s: negative epoch", p.Location)
		}
		out = append(out, p)
	}
	slices.SortStableFunc(out, comparePackages)
	for i := 1; i < len(out); i++ {
		if out[i].Location == out[i-1].Location {
			return nil, fmt.Errorf("two packages at location %s", out[i].Location)
		}
	}
	return out, nil
}

// comparePackages orders by name, epoch, version, release (rpm's version
// comparison, then bytes, so that the order is total), arch and location.
func comparePackages(a, b *Package) int {
	if c := strings.Compare(a.Name, b.Name); c != 0 {
		return c
	}
	if c := cmp.Compare(a.Epoch, b.Epoch); c != 0 {
		return c
	}
	if c := rpmutils.Vercmp(a.Version, b.Version); c != 0 {
		return c
	}
	if c := strings.Compare(a.Version, b.Version); c != 0 {
		return c
	}
	if c := rpmutils.Vercmp(a.Release, b.Release); c != 0 {
		return c
	}
	if c := strings.Compare(a.Release, b.Release); c != 0 {
		return c
	}
	if c := strings.Compare(a.Arch, b.Arch); c != 0 {
		return c
	}
	return strings.Compare(a.Location, b.Location)
}

// repomdRecord is one <data> entry of repomd.xml.
type repomdRecord struct {
	typ, href              string
	checksum, openChecksum string
	size, openSize         int64
}

// writeCompressed gzips what encode writes into dir/<sha256>-<typ>.xml.gz.
func writeCompressed(dir, typ string, encode func(io.Writer) error) (repomdRecord, error) {
	tmp, err := os.CreateTemp(dir, "."+typ+"-")
	if err != nil {
		return repomdRecord{}, err
	}
	defer func() {
		tmp.Close()
		os.Remove(tmp.Name())
	}()
	zsum, osum := sha256.New(), sha256.New()
	zcount, ocount := &countWriter{}, &countWriter{}
	fileW := bufio.NewWriterSize(io.MultiWriter(tmp, zsum, zcount), 1<<16)
	zw, err := gzip.NewWriterLevel(fileW, gzipLevel) // no name, no mtime
	if err != nil {
		return repomdRecord{}, err
	}
	xmlW := bufio.NewWriterSize(io.MultiWriter(zw, osum, ocount), 1<<16)
	if err := encode(xmlW); err != nil {
		return repomdRecord{}, err
	}
	if err := xmlW.Flush(); err != nil {
		return repomdRecord{}, err
	}
	if err := zw.Close(); err != nil {
		return repomdRecord{}, err
	}
	if err := fileW.Flush(); err != nil {
		return repomdRecord{}, err
	}
	if err := tmp.Chmod(0o644); err != nil {
		return repomdRecord{}, err
	}
	if err := tmp.Close(); err != nil {
		return repomdRecord{}, err
	}
	sum := hex.EncodeToString(zsum.Sum(nil))
	name := sum + "-" + typ + ".xml.gz"
	if err := os.Rename(tmp.Name(), filepath.Join(dir, name)); err != nil {
		return repomdRecord{}, err
	}
	return repomdRecord{
		typ: typ, href: "repodata/" + name,
		checksum: sum, openChecksum: hex.EncodeToString(osum.Sum(nil)),
		size: zcount.n, openSize: ocount.n,
	}, nil
}

func encodeRepomd(recs []repomdRecord, revision int64) []byte {
	var b strings.Builder
	ts := strconv.FormatInt(revision, 10)
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?>` + "\n")
	b.WriteString(`<repomd xmlns="` + nsRepo + `" xmlns:rpm="` + nsRPM + `">` + "\n")
	b.WriteString("  <revision>" + ts + "</revision>\n")
	for _, r := range recs {
		b.WriteString(`  <data type="` + r.typ + `">` + "\n")
		b.WriteString(`    <checksum type="sha256">` + r.checksum + "</checksum>\n")
		b.WriteString(`    <open-checksum type="sha256">` + r.openChecksum + "</open-checksum>\n")
		b.WriteString(`    <location href="` + r.href + `"/>` + "\n")
		b.WriteString("    <timestamp>" + ts + "</timestamp>\n")
		b.WriteString("    <size>" + strconv.FormatInt(r.size, 10) + "</size>\n")
		b.WriteString("    <open-size>" + strconv.FormatInt(r.openSize, 10) + "</open-size>\n")
		b.WriteString("  </data>\n")
	}
	b.WriteString("</repomd>\n")
	return []byte(b.String())
}

// xmlWriter writes escaped XML and remembers the first error, including
// text that XML cannot carry.
type xmlWriter struct {
	w   io.Writer
	buf []byte
	err error
	pkg string // names the package in errors
}

func (x *xmlWriter) raw(s string) {
	x.buf = append(x.buf, s...)
	if len(x.buf) >= 1<<15 {
		x.flush()
	}
}

func (x *xmlWriter) flush() {
	if x.err == nil && len(x.buf) > 0 {
		_, x.err = x.w.Write(x.buf)
	}
	x.buf = x.buf[:0]
}

// clean returns s as valid UTF-8 (reading it as Latin-1 if it is not) and
// records an error if it holds a character XML 1.0 forbids.
func (x *xmlWriter) clean(s string) string {
	if !utf8.ValidString(s) {
		var b strings.Builder
		for i := 0; i < len(s); i++ {
			b.WriteRune(rune(s[i]))
		}
		s = b.String()
	}
	for _, r := range s {
		if !xmlChar(r) {
			if x.err == nil {
				x.err = fmt.Errorf("package %s: character %U cannot be written in XML", x.pkg, r)
			}
			break
		}
	}
	return s
}

func xmlChar(r rune) bool {
	return r == '\t' || r == '\n' || r == '\r' ||
		r >= 0x20 && r <= 0xd7ff || r >= 0xe000 && r <= 0xfffd || r >= 0x10000 && r <= 0x10ffff
}

// text writes s escaped as element content.
func (x *xmlWriter) text(s string) {
	s = x.clean(s)
	start := 0
	for i := 0; i < len(s); i++ {
		var esc string
		switch s[i] {
		case '&':
			esc = "&amp;"
		case '<':
			esc = "&lt;"
		case '>':
			esc = "&gt;"
		case '\r':
			esc = "&#13;"
		default:
			continue
		}
		x.buf = append(x.buf, s[start:i]...)
		x.buf = append(x.buf, esc...)
		start = i + 1
	}
	x.raw(s[start:])
}

// attr writes ` name="value"` with value escaped.
func (x *xmlWriter) attr(name, value string) {
	value = x.clean(value)
	x.buf = append(x.buf, ' ')
	x.buf = append(x.buf, name...)
	x.buf = append(x.buf, '=', '"')
	start := 0
	for i := 0; i < len(value); i++ {
		var esc string
		switch value[i] {
		case '&':
			esc = "&amp;"
		case '<':
			esc = "&lt;"
		case '>':
			esc = "&gt;"
		case '"':
			esc = "&quot;"
		case '\t':
			esc = "&#9;"
		case '\n':
			esc = "&#10;"
		case '\r':
			esc = "&#13;"
		default:
			continue
		}
		x.buf = append(x.buf, value[start:i]...)
		x.buf = append(x.buf, esc...)
		start = i + 1
	}
	x.buf = append(x.buf, value[start:]...)
	x.buf = append(x.buf, '"')
}

// element writes <name>text</name> on its own line.
func (x *xmlWriter) element(indent, name, text string) {
	x.raw(indent + "<" + name + ">")
	x.text(text)
	x.raw("</" + name + ">\n")
}

func itoa(i int64) string { return strconv.FormatInt(i, 10) }

func (x *xmlWriter) version(indent string, p *Package) {
	x.raw(indent + "<version")
	x.attr("epoch", strconv.Itoa(p.Epoch))
	x.attr("ver", p.Version)
	x.attr("rel", p.Release)
	x.raw("/>\n")
}

func (x *xmlWriter) file(indent string, f File) {
	x.raw(indent + "<file")
	if f.Type != FileRegular {
		x.attr("type", f.Type)
	}
	x.raw(">")
	x.text(f.Path)
	x.raw("</file>\n")
}

func (x *xmlWriter) deps(name string, deps []Dependency, requires bool) {
	if !slices.ContainsFunc(deps, func(d Dependency) bool { return d.Name != "" }) {
		return
	}
	x.raw("    <rpm:" + name + ">\n")
	for _, d := range deps {
		if d.Name == "" {
			continue // as createrepo_c: a nameless entry means nothing
		}
		x.raw("      <rpm:entry")
		x.attr("name", d.Name)
		if d.Flags != "" {
			x.attr("flags", d.Flags)
			if d.Epoch != "" {
				x.attr("epoch", d.Epoch)
			}
			if d.Version != "" {
				x.attr("ver", d.Version)
			}
			if d.Release != "" {
				x.attr("rel", d.Release)
			}
		}
		if requires && d.Pre {
			x.attr("pre", "1")
		}
		x.raw("/>\n")
	}
	x.raw("    </rpm:" + name + ">\n")
}

// fileTime is what <time file=> says for p.
func fileTime(p *Package, opts RepodataOptions) int64 {
	if p.FileTime != 0 {
		return p.FileTime
	}
	return opts.Revision
}

func encodePrimary(w io.Writer, pkgs []*Package, opts RepodataOptions) error {
	x := &xmlWriter{w: w}
	x.raw(`<?xml version="1.0" encoding="UTF-8"?>` + "\n")
	x.raw(`<metadata xmlns="` + nsCommon + `" xmlns:rpm="` + nsRPM + `" packages="` + strconv.Itoa(len(pkgs)) + `">` + "\n")
	for _, p := range pkgs {
		x.pkg = p.Location
		x.raw("<package type=\"rpm\">\n")
		x.element("  ", "name", p.Name)
		x.element("  ", "arch", p.Arch)
		x.version("  ", p)
		x.raw(`  <checksum type="sha256" pkgid="YES">` + p.Checksum + "</checksum>\n")
		x.element("  ", "summary", p.Summary)
		x.element("  ", "description", p.Description)
		x.element("  ", "packager", p.Packager)
		x.element("  ", "url", p.URL)
		x.raw(`  <time file="` + itoa(fileTime(p, opts)) + `" build="` + itoa(p.BuildTime) + `"/>` + "\n")
		x.raw(`  <size package="` + itoa(p.Size) + `" installed="` + itoa(p.InstalledSize) + `" archive="` + itoa(p.ArchiveSize) + `"/>` + "\n")
		x.raw("  <location")
		x.attr("href", p.Location)
		x.raw("/>\n")
		x.raw("  <format>\n")
		x.element("    ", "rpm:license", p.License)
		x.element("    ", "rpm:vendor", p.Vendor)
		x.element("    ", "rpm:group", p.Group)
		x.element("    ", "rpm:buildhost", p.BuildHost)
		x.element("    ", "rpm:sourcerpm", p.SourceRPM)
		x.raw(`    <rpm:header-range start="` + itoa(p.HeaderStart) + `" end="` + itoa(p.HeaderEnd) + `"/>` + "\n")
		x.deps("provides", p.Provides, false)
		x.deps("requires", p.Requires, true)
		x.deps("conflicts", p.Conflicts, false)
		x.deps("obsoletes", p.Obsoletes, false)
		x.deps("suggests", p.Suggests, false)
		x.deps("enhances", p.Enhances, false)
		x.deps("recommends", p.Recommends, false)
		x.deps("supplements", p.Supplements, false)
		for _, f := range p.Files {
			if isPrimaryFile(f.Path) {
				x.file("    ", f)
			}
		}
		x.raw("  </format>\n</package>\n")
		if x.err != nil {
			return x.err
		}
	}
	x.raw("</metadata>")
	x.flush()
	return x.err
}

func encodeFilelists(w io.Writer, pkgs []*Package, _ RepodataOptions) error {
	x := &xmlWriter{w: w}
	x.raw(`<?xml version="1.0" encoding="UTF-8"?>` + "\n")
	x.raw(`<filelists xmlns="` + nsFilelists + `" packages="` + strconv.Itoa(len(pkgs)) + `">` + "\n")
	for _, p := range pkgs {
		x.pkg = p.Location
		x.pkgOpen(p)
		for _, f := range p.Files {
			x.file("  ", f)
		}
		x.raw("</package>\n")
		if x.err != nil {
			return x.err
		}
	}
	x.raw("</filelists>")
	x.flush()
	return x.err
}

func (x *xmlWriter) pkgOpen(p *Package) {
	x.raw(`<package pkgid="` + p.Checksum + `"`)
	x.attr("name", p.Name)
	x.attr("arch", p.Arch)
	x.raw(">\n")
	x.version("  ", p)
}

func encodeOther(w io.Writer, pkgs []*Package, opts RepodataOptions) error {
	x := &xmlWriter{w: w}
	x.raw(`<?xml version="1.0" encoding="UTF-8"?>` + "\n")
	x.raw(`<otherdata xmlns="` + nsOther + `" packages="` + strconv.Itoa(len(pkgs)) + `">` + "\n")
	for _, p := range pkgs {
		x.pkg = p.Location
		x.pkgOpen(p)
		for _, c := range changelogsForOther(p.Changelogs, opts.ChangelogLimit) {
			x.raw("  <changelog")
			x.attr("author", c.Author)
			x.attr("date", itoa(c.Date))
			x.raw(">")
			x.text(c.Text)
			x.raw("</changelog>\n")
		}
		x.raw("</package>\n")
		if x.err != nil {
			return x.err
		}
	}
	x.raw("</otherdata>")
	x.flush()
	return x.err
}

// changelogsForOther returns the entries other.xml lists, as createrepo_c
// picks them from the header's newest-first list: the newest limit entries,
// oldest first, with trailing spaces trimmed from the author (except its
// first character) and entries that share a date with older ones moved
// one second later each, so that dates are unique within a run.
func changelogsForOther(cl []Changelog, limit int) []Changelog {
	if limit == 0 {
		limit = defaultChangelogLimit
	}
	if limit > 0 && len(cl) > limit {
		cl = cl[:limit]
	}
	out := make([]Changelog, len(cl))
	var last int64
	for i, c := range cl {
		a := c.Author
		for len(a) > 1 && a[len(a)-1] == ' ' {
			a = a[:len(a)-1]
		}
		pos := len(cl) - 1 - i // out is oldest first
		out[pos] = Changelog{Author: a, Date: c.Date, Text: c.Text}
		if c.Date == last {
			// Bump the run of newer entries with this date.
			t := c.Date
			for k := pos + 1; k < len(out) && out[k].Date == t; k++ {
				out[k].Date++
				t++
			}
		} else {
			last = c.Date
		}
	}
	return out
}
