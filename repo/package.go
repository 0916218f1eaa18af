package repo

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"strings"

	rpmutils "github.com/sassoftware/go-rpmutils"
)

// Package is what repodata needs of one RPM, read from its header.
type Package struct {
	Name, Arch, Version, Release string
	Epoch                        int // 0 when the header has no epoch

	Summary, Description, URL, License, Vendor, Group, BuildHost, SourceRPM, Packager string

	BuildTime int64
	// FileTime is written as <time file=>. ReadPackage leaves it 0 and
	// WriteRepodata then writes RepodataOptions.Revision: createrepo_c
	// writes the file's mtime, which would make the output depend on the
	// host.
	FileTime int64

	Size          int64 // size of the .rpm file
	InstalledSize int64
	ArchiveSize   int64

	// HeaderStart and HeaderEnd are the byte range of the main header in
	// the file, as createrepo_c writes <rpm:header-range>.
	HeaderStart, HeaderEnd int64

	Checksum string // sha256 hex of the whole .rpm file
	// Location is the href relative to the repository root, e.g.
	// "Packages/k/kubelet-1.34.4-1.x86_64.rpm" or just the file name.
	Location string

	// Dependencies as createrepo_c writes them (already filtered, see the
	// package documentation).
	Provides, Requires, Conflicts, Obsoletes    []Dependency
	Recommends, Suggests, Supplements, Enhances []Dependency

	Files      []File      // every file, in header order
	Changelogs []Changelog // as in the header: newest first
}

// Dependency is one entry of a dependency list. Flags is createrepo_c's
// comparison name (EQ, LT, LE, GT, GE) or "" for an unversioned dependency;
// Epoch, Version and Release are empty when Flags is. Rich (boolean)
// dependencies such as "(a or b)" are kept whole in Name.
type Dependency struct {
	Name, Flags             string
	Epoch, Version, Release string
	Pre                     bool // Requires(pre), (post) or PreReq
}

// File types, as in filelists.xml.
const (
	FileRegular = ""
	FileDir     = "dir"
	FileGhost   = "ghost"
)

// File is one path the package owns.
type File struct {
	Path string
	Type string // FileRegular, FileDir or FileGhost
}

// Changelog is one %changelog entry.
type Changelog struct {
	Author string
	Date   int64
	Text   string
}

// NEVRA returns name-[epoch:]version-release.arch.
func (p *Package) NEVRA() string {
	if p.Epoch != 0 {
		return fmt.Sprintf("%s-%d:%s-%s.%s", p.Name, p.Epoch, p.Version, p.Release, p.Arch)
	}
	return fmt.Sprintf("%s-%s-%s.%s", p.Name, p.Version, p.Release, p.Arch)
}

// FileName is the package's conventional file name,
// name-version-release.arch.rpm (no epoch, as rpmbuild and dnf name them;
// a source package's arch is "src").
func (p *Package) FileName() string {
	return fmt.Sprintf("%s-%s-%s.%s.rpm", p.Name, p.Version, p.Release, p.Arch)
}

// ReadPackageHeader reads only the headers of the RPM at path (a regular
// file): the package's identity and metadata, Location its base name,
// Checksum empty. Nothing past the main header is read or checked.
func ReadPackageHeader(path string) (*Package, error) {
	f, st, err := openRPM(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	raw, err := readRawHeaders(f, st.Size())
	if err != nil {
		return nil, fmt.Errorf("reading rpm header of %s: %w", path, err)
	}
	pkg, err := packageFromHeaders(raw, st.Size())
	if err != nil {
		return nil, fmt.Errorf("reading rpm header of %s: %w", path, err)
	}
	pkg.Location = filepath.Base(path)
	return pkg, nil
}

// ReadPackage reads the RPM at path. location is the href to record ("" for
// the file's base name). The file is read once: its sha256 is computed while
// the header is parsed and the rest is streamed through the hash.
func ReadPackage(path string, location string) (*Package, error) {
	return readPackageFile(path, location, "")
}

// ReadPackageWithDigest is ReadPackage for a caller that already has the
// sha256 (hex) of the file: only the header is read. The file must still be
// a well-formed RPM whose size matches its signature header; the digest is
// trusted, not checked.
func ReadPackageWithDigest(path, location, sha256hex string) (*Package, error) {
	sha256hex = strings.ToLower(sha256hex)
	if !isSHA256Hex(sha256hex) {
		return nil, fmt.Errorf("reading rpm %s: %q is not a sha256 hex digest", path, sha256hex)
	}
	return readPackageFile(path, location, sha256hex)
}

// openRPM opens the RPM at path, which must be a regular file.
func openRPM(path string) (*os.File, os.FileInfo, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, fmt.Errorf("reading rpm %s: %w", path, err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("reading rpm %s: %w", path, err)
	}
	if !st.Mode().IsRegular() {
		f.Close()
		return nil, nil, fmt.Errorf("reading rpm %s: not a regular file", path)
	}
	return f, st, nil
}

func readPackageFile(path, location, digest string) (*Package, error) {
	f, st, err := openRPM(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if location == "" {
		location = filepath.Base(path)
	}
	return readPackage(f, st.Size(), path, location, digest)
}

// ReadPackageFrom reads an RPM of size bytes from r, hashing all of it.
// location is recorded as the href and names the package in errors.
func ReadPackageFrom(r io.ReaderAt, size int64, location string) (*Package, error) {
	if size < 0 {
		return nil, fmt.Errorf("reading rpm %s: negative size %d", location, size)
	}
	return readPackage(io.NewSectionReader(r, 0, size), size, location, location, "")
}

// readPackage reads from r, positioned at the start of an RPM of size bytes.
// If digest is empty the whole file is hashed; otherwise only the header is
// read and digest is recorded.
func readPackage(src io.Reader, size int64, name, location, digest string) (pkg *Package, err error) {
	var h hash.Hash
	var counter countWriter
	r := src
	if digest == "" {
		h = sha256.New()
		r = io.TeeReader(src, io.MultiWriter(h, &counter))
	}
	raw, err := readRawHeaders(r, size)
	if err != nil {
		return nil, fmt.Errorf("reading rpm header of %s: %w", name, err)
	}
	pkg, err = packageFromHeaders(raw, size)
	if err != nil {
		return nil, fmt.Errorf("reading rpm header of %s: %w", name, err)
	}
	if digest == "" {
		// The tee hashed exactly what the header parser read; hash the
		// rest straight from src, in large reads (the struct hides
		// os.File's WriteTo, which would ignore the buffer).
		buf := make([]byte, 1<<20)
		if _, err := io.CopyBuffer(io.MultiWriter(h, &counter), struct{ io.Reader }{src}, buf); err != nil {
			return nil, fmt.Errorf("reading rpm %s: %w", name, err)
		}
		if counter.n != size {
			return nil, fmt.Errorf("reading rpm %s: read %d bytes, expected %d", name, counter.n, size)
		}
		digest = hex.EncodeToString(h.Sum(nil))
	}
	pkg.Checksum = digest
	pkg.Location = location
	return pkg, nil
}

type countWriter struct{ n int64 }

func (c *countWriter) Write(p []byte) (int, error) {
	c.n += int64(len(p))
	return len(p), nil
}

func isSHA256Hex(s string) bool {
	if len(s) != 2*sha256.Size {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// Tags go-rpmutils has no name for.
const (
	tagSigLongSize        = 270 // signature header: header+payload size (64-bit)
	tagSigLongArchiveSize = 271 // signature header: uncompressed payload size (64-bit)
	tagSourcePackage      = 1106
	tagOldSuggestsName    = 1156 // version 1157, flags 1158
	tagOldEnhancesName    = 1159 // version 1160, flags 1161
	tagRecommendName      = 5046 // version 5047, flags 5048
	tagSuggestName        = 5049
	tagSupplementName     = 5052
	tagEnhanceName        = 5055
)

// hdr wraps a go-rpmutils header with accessors that treat a missing tag as
// empty and any other problem as an error.
type hdr struct{ h *rpmutils.RpmHeader }

func (h hdr) strings(tag int) ([]string, error) {
	if !h.h.HasTag(tag) {
		return nil, nil
	}
	v, err := h.h.GetStrings(tag)
	if err != nil {
		return nil, fmt.Errorf("tag %d: %w", tag, err)
	}
	return v, nil
}

// str returns a single string tag; for an i18n string, the first (C
// locale) value.
func (h hdr) str(tag int) (string, error) {
	v, err := h.strings(tag)
	if err != nil || len(v) == 0 {
		return "", err
	}
	return v[0], nil
}

func (h hdr) uints(tag int) ([]uint64, error) {
	if !h.h.HasTag(tag) {
		return nil, nil
	}
	v, err := h.h.GetUint64s(tag)
	if err != nil {
		return nil, fmt.Errorf("tag %d: %w", tag, err)
	}
	return v, nil
}

// uint returns the first value of an integer tag and whether it was there.
func (h hdr) uint(tag int) (uint64, bool, error) {
	v, err := h.uints(tag)
	if err != nil || len(v) == 0 {
		return 0, false, err
	}
	return v[0], true, nil
}

// firstUint returns the first present tag's value.
func (h hdr) firstUint(tags ...int) (uint64, error) {
	for _, t := range tags {
		v, ok, err := h.uint(t)
		if err != nil || ok {
			return v, err
		}
	}
	return 0, nil
}

func toInt64(v uint64, what string) (int64, error) {
	if v > 1<<62 {
		return 0, fmt.Errorf("%s %d out of range", what, v)
	}
	return int64(v), nil
}

// packageFromHeaders builds a Package from validated raw headers of a file
// of size bytes.
func packageFromHeaders(raw *rawHeaders, size int64) (pkg *Package, err error) {
	// readRawHeaders checked everything go-rpmutils relies on; this is a
	// last line of defence so that a bug there is an error, not a crash.
	defer func() {
		if r := recover(); r != nil {
			pkg, err = nil, fmt.Errorf("malformed header: %v", r)
		}
	}()
	rh, err := rpmutils.ReadHeader(bytes.NewReader(raw.bytes))
	if err != nil {
		return nil, err
	}
	h := hdr{rh}
	pkg = &Package{Size: size, HeaderStart: raw.start, HeaderEnd: raw.end}

	// The signature header's size tags cover header and payload: a
	// mismatch means a truncated or padded file.
	if size >= 0 {
		sigSize, err := h.firstUint(tagSigLongSize, rpmutils.SIG_SIZE)
		if err != nil {
			return nil, err
		}
		if sigSize != 0 && int64(sigSize) != size-raw.start {
			return nil, fmt.Errorf("header and payload are %d bytes, the signature header says %d", size-raw.start, sigSize)
		}
	}

	strs := []struct {
		tag int
		dst *string
	}{
		{rpmutils.NAME, &pkg.Name}, {rpmutils.VERSION, &pkg.Version}, {rpmutils.RELEASE, &pkg.Release},
		{rpmutils.ARCH, &pkg.Arch}, {rpmutils.SUMMARY, &pkg.Summary}, {rpmutils.DESCRIPTION, &pkg.Description},
		{rpmutils.URL, &pkg.URL}, {rpmutils.LICENSE, &pkg.License}, {rpmutils.VENDOR, &pkg.Vendor},
		{rpmutils.GROUP, &pkg.Group}, {rpmutils.BUILDHOST, &pkg.BuildHost}, {rpmutils.SOURCERPM, &pkg.SourceRPM},
		{rpmutils.PACKAGER, &pkg.Packager},
	}
	for _, s := range strs {
		if *s.dst, err = h.str(s.tag); err != nil {
			return nil, err
		}
	}
	if pkg.Name == "" || pkg.Version == "" {
		return nil, errors.New("header has no name or version")
	}
	if src, _, err := h.uint(tagSourcePackage); err != nil {
		return nil, err
	} else if src != 0 {
		pkg.Arch = "src"
	}
	epoch, _, err := h.uint(rpmutils.EPOCH)
	if err != nil {
		return nil, err
	}
	if epoch > 1<<31-1 {
		return nil, fmt.Errorf("epoch %d out of range", epoch)
	}
	pkg.Epoch = int(epoch)
	bt, _, err := h.uint(rpmutils.BUILDTIME)
	if err != nil {
		return nil, err
	}
	if pkg.BuildTime, err = toInt64(bt, "build time"); err != nil {
		return nil, err
	}
	is, err := h.firstUint(rpmutils.LONGSIZE, rpmutils.SIZE)
	if err != nil {
		return nil, err
	}
	if pkg.InstalledSize, err = toInt64(is, "installed size"); err != nil {
		return nil, err
	}
	as, err := h.firstUint(tagSigLongArchiveSize, rpmutils.SIG_PAYLOADSIZE, rpmutils.ARCHIVESIZE)
	if err != nil {
		return nil, err
	}
	if pkg.ArchiveSize, err = toInt64(as, "archive size"); err != nil {
		return nil, err
	}
	if pkg.Files, err = readFiles(h); err != nil {
		return nil, err
	}
	if err := readDeps(h, pkg); err != nil {
		return nil, err
	}
	if pkg.Changelogs, err = readChangelogs(h); err != nil {
		return nil, err
	}
	return pkg, nil
}

const (
	fileFlagGhost = 1 << 6
	modeTypeMask  = 0o170000
	modeDir       = 0o040000
)

func readFiles(h hdr) ([]File, error) {
	base, err := h.strings(rpmutils.BASENAMES)
	if err != nil {
		return nil, err
	}
	var paths []string
	if base != nil {
		dirs, err := h.strings(rpmutils.DIRNAMES)
		if err != nil {
			return nil, err
		}
		idx, err := h.uints(rpmutils.DIRINDEXES)
		if err != nil {
			return nil, err
		}
		if len(idx) != len(base) {
			return nil, fmt.Errorf("%d base names but %d directory indexes", len(base), len(idx))
		}
		paths = make([]string, len(base))
		for i, b := range base {
			if idx[i] >= uint64(len(dirs)) {
				return nil, fmt.Errorf("file %q: directory index %d out of range", b, idx[i])
			}
			paths[i] = dirs[idx[i]] + b
		}
	} else if paths, err = h.strings(rpmutils.OLDFILENAMES); err != nil {
		return nil, err
	}
	if len(paths) == 0 {
		return nil, nil
	}
	flags, err := h.uints(rpmutils.FILEFLAGS)
	if err != nil {
		return nil, err
	}
	modes, err := h.uints(rpmutils.FILEMODES)
	if err != nil {
		return nil, err
	}
	if len(flags) != len(paths) || len(modes) != len(paths) {
		return nil, fmt.Errorf("%d files but %d flags and %d modes", len(paths), len(flags), len(modes))
	}
	files := make([]File, len(paths))
	for i, p := range paths {
		t := FileRegular
		switch {
		case modes[i]&modeTypeMask == modeDir:
			t = FileDir
		case flags[i]&fileFlagGhost != 0:
			t = FileGhost
		}
		files[i] = File{Path: p, Type: t}
	}
	return files, nil
}

func readChangelogs(h hdr) ([]Changelog, error) {
	times, err := h.uints(rpmutils.CHANGELOGTIME)
	if err != nil {
		return nil, err
	}
	names, err := h.strings(rpmutils.CHANGELOGNAME)
	if err != nil {
		return nil, err
	}
	texts, err := h.strings(rpmutils.CHANGELOGTEXT)
	if err != nil {
		return nil, err
	}
	if len(times) != len(names) || len(times) != len(texts) {
		return nil, fmt.Errorf("%d changelog times, %d names and %d texts", len(times), len(names), len(texts))
	}
	if len(times) == 0 {
		return nil, nil
	}
	out := make([]Changelog, len(times))
	for i := range times {
		d, err := toInt64(times[i], "changelog time")
		if err != nil {
			return nil, err
		}
		out[i] = Changelog{Author: names[i], Date: d, Text: texts[i]}
	}
	return out, nil
}
