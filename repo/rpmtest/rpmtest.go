package rpmtest

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/google/rpmpack"
)

// BuildTime is the fixed build time (and file mtime) of every package built
// here: 2024-01-01T00:00:00Z.
var BuildTime = time.Unix(1704067200, 0).UTC()

// Spec describes a package to build. Only Name and Version are required.
type Spec struct {
	Name, Version, Release, Arch string
	// Epoch is written as the EPOCH tag when it is not zero; a zero Epoch
	// means the tag is absent, as in most real packages.
	Epoch int
	// Files maps an absolute path to the content of a regular file. Paths
	// containing "bin/" get mode 0755, others 0644.
	Files map[string][]byte
	// Dirs are directories owned by the package (mode 0755).
	Dirs []string
	// Ghosts are %ghost files: listed in the header, absent from the payload.
	Ghosts []string
	// Requires, Provides and the other relations take rpm's syntax:
	// "name", "name >= 1.2-3" or a rich dependency "(a or b)".
	Requires, Provides                         []string
	Conflicts, Obsoletes, Recommends, Suggests []string
	// Supplements and Enhances are reverse weak dependencies (same syntax).
	Supplements, Enhances []string
	// PreRequires are written as Requires(pre): the RPMSENSE_SCRIPT_PRE bit
	// is set on them.
	PreRequires []string
	// RawRequires are extra Requires with exact RPMSENSE flag bits, for
	// testing how odd flags are handled.
	RawRequires []RawDep
	// Changelogs are written in the given order (rpm keeps newest first).
	Changelogs []Changelog
	// SourcePackage sets the SOURCEPACKAGE tag, which marks a source rpm.
	// (The result is not a usable src.rpm: it has a binary payload.)
	SourcePackage bool

	Summary, Description, License, URL, Vendor, Packager, Group string
	// Compressor is rpmpack's payload compressor ("gzip" when empty).
	Compressor string
}

// RawDep is a dependency with explicit RPMSENSE flag bits.
type RawDep struct {
	Name, Version string
	Flags         uint32
}

// Changelog is one %changelog entry.
type Changelog struct {
	Time         int64
	Author, Text string
}

// senseScriptPre is RPMSENSE_SCRIPT_PRE, a Requires(pre) marker.
const senseScriptPre = 1 << 9

// Build writes a real .rpm for s into dir and returns its path. The file is
// named like rpmbuild names it: NAME-VERSION-RELEASE.ARCH.rpm. If sign is not
// nil the package carries OpenPGP header and header+payload signatures made by
// sign, which must return a binary detached OpenPGP signature of its input.
func Build(dir string, s Spec, sign func([]byte) ([]byte, error)) (string, error) {
	data, err := Bytes(s, sign)
	if err != nil {
		return "", err
	}
	p := filepath.Join(dir, FileName(s))
	if err := os.WriteFile(p, data, 0o644); err != nil {
		return "", fmt.Errorf("writing rpm %s: %w", p, err)
	}
	return p, nil
}

// FileName returns the file name Build uses for s.
func FileName(s Spec) string {
	s = withDefaults(s)
	return fmt.Sprintf("%s-%s-%s.%s.rpm", s.Name, s.Version, s.Release, s.Arch)
}

func withDefaults(s Spec) Spec {
	if s.Release == "" {
		s.Release = "1"
	}
	if s.Arch == "" {
		s.Arch = "noarch"
	}
	if s.Summary == "" {
		s.Summary = "Test package " + s.Name
	}
	if s.Description == "" {
		s.Description = "Test package " + s.Name + " built by rpmtest."
	}
	if s.License == "" {
		s.License = "Apache-2.0"
	}
	return s
}

// Bytes returns the content of the RPM that Build would write.
func Bytes(s Spec, sign func([]byte) ([]byte, error)) ([]byte, error) {
	if s.Name == "" || s.Version == "" {
		return nil, errors.New("rpmtest: spec needs a name and a version")
	}
	if s.Epoch < 0 || int64(s.Epoch) >= int64(rpmpack.NoEpoch) {
		return nil, fmt.Errorf("rpmtest: epoch %d out of range", s.Epoch)
	}
	s = withDefaults(s)
	md := rpmpack.RPMMetaData{
		Name:        s.Name,
		Version:     s.Version,
		Release:     s.Release,
		Arch:        s.Arch,
		Summary:     s.Summary,
		Description: s.Description,
		Licence:     s.License,
		URL:         s.URL,
		Vendor:      s.Vendor,
		Packager:    s.Packager,
		Group:       s.Group,
		BuildHost:   "rpmtest.invalid",
		Compressor:  s.Compressor,
		BuildTime:   BuildTime,
		Epoch:       rpmpack.NoEpoch,
	}
	if s.Epoch > 0 {
		md.Epoch = uint32(s.Epoch)
	}
	for _, rel := range []struct {
		in  []string
		out *rpmpack.Relations
	}{
		{s.Requires, &md.Requires},
		{s.Provides, &md.Provides},
		{s.Conflicts, &md.Conflicts},
		{s.Obsoletes, &md.Obsoletes},
		{s.Recommends, &md.Recommends},
		{s.Suggests, &md.Suggests},
	} {
		for _, r := range rel.in {
			if err := rel.out.Set(r); err != nil {
				return nil, fmt.Errorf("rpmtest: relation %q: %w", r, err)
			}
		}
	}
	for _, r := range s.PreRequires {
		rel, err := rpmpack.NewRelation(r)
		if err != nil {
			return nil, fmt.Errorf("rpmtest: relation %q: %w", r, err)
		}
		rel.Sense |= senseScriptPre
		md.Requires = append(md.Requires, rel)
	}
	for _, d := range s.RawRequires {
		rel := &rpmpack.Relation{Name: d.Name, Version: d.Version}
		for bit := 0; bit < 32; bit++ {
			if d.Flags&(1<<bit) != 0 {
				rel.Sense |= 1 << bit
			}
		}
		md.Requires = append(md.Requires, rel)
	}
	r, err := rpmpack.NewRPM(md)
	if err != nil {
		return nil, fmt.Errorf("rpmtest: %w", err)
	}
	if s.Epoch > 0 {
		// rpmpack's self-provide "name = version-release" lacks the epoch,
		// which rpm then reads as 0: write it as rpmbuild does.
		for _, rel := range r.Provides {
			if rel.Name == s.Name && rel.Version == r.FullVersion() && rel.Sense == rpmpack.SenseEqual {
				rel.Version = fmt.Sprintf("%d:%s", s.Epoch, rel.Version)
			}
		}
	}
	if err := addReverseDeps(r, tagSupplementName, s.Supplements); err != nil {
		return nil, err
	}
	if err := addReverseDeps(r, tagEnhanceName, s.Enhances); err != nil {
		return nil, err
	}
	if s.SourcePackage {
		r.AddCustomTag(tagSourcePackage, rpmpack.EntryInt32([]int32{1}))
	}
	if len(s.Changelogs) > 0 {
		times := make([]int32, len(s.Changelogs))
		names := make([]string, len(s.Changelogs))
		texts := make([]string, len(s.Changelogs))
		for i, c := range s.Changelogs {
			times[i] = int32(c.Time)
			names[i] = c.Author
			texts[i] = c.Text
		}
		r.AddCustomTag(tagChangelogTime, rpmpack.EntryInt32(times))
		r.AddCustomTag(tagChangelogName, rpmpack.EntryStringSlice(names))
		r.AddCustomTag(tagChangelogText, rpmpack.EntryStringSlice(texts))
	}
	mtime := uint32(BuildTime.Unix())
	paths := make([]string, 0, len(s.Files))
	for p := range s.Files {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, p := range paths {
		if !path.IsAbs(p) {
			return nil, fmt.Errorf("rpmtest: file path %q is not absolute", p)
		}
		mode := uint(0o644)
		if strings.Contains(p, "bin/") {
			mode = 0o755
		}
		r.AddFile(rpmpack.RPMFile{Name: p, Body: s.Files[p], Mode: mode, Owner: "root", Group: "root", MTime: mtime})
	}
	for _, d := range s.Dirs {
		r.AddFile(rpmpack.RPMFile{Name: d, Mode: 0o40755, Owner: "root", Group: "root", MTime: mtime})
	}
	for _, g := range s.Ghosts {
		r.AddFile(rpmpack.RPMFile{Name: g, Mode: 0o644, Owner: "root", Group: "root", MTime: mtime, Type: rpmpack.GhostFile})
	}
	if sign != nil {
		r.SetPGPSigner(sign)
	}
	var buf bytes.Buffer
	if err := r.Write(&buf); err != nil {
		return nil, fmt.Errorf("rpmtest: writing %s: %w", s.Name, err)
	}
	return buf.Bytes(), nil
}

// Header tags rpmpack has no field for.
const (
	tagChangelogTime  = 1080
	tagChangelogName  = 1081
	tagChangelogText  = 1082
	tagSourcePackage  = 1106
	tagSupplementName = 5052 // version 5053, flags 5054
	tagEnhanceName    = 5055 // version 5056, flags 5057
)

// addReverseDeps writes deps as the name/version/flags tag triple starting at
// nameTag.
func addReverseDeps(r *rpmpack.RPM, nameTag int, deps []string) error {
	if len(deps) == 0 {
		return nil
	}
	var rels rpmpack.Relations
	for _, d := range deps {
		if err := rels.Set(d); err != nil {
			return fmt.Errorf("rpmtest: relation %q: %w", d, err)
		}
	}
	names := make([]string, len(rels))
	versions := make([]string, len(rels))
	flags := make([]uint32, len(rels))
	for i, rel := range rels {
		names[i] = rel.Name
		versions[i] = rel.Version
		flags[i] = uint32(rel.Sense)
	}
	r.AddCustomTag(nameTag, rpmpack.EntryStringSlice(names))
	r.AddCustomTag(nameTag+1, rpmpack.EntryStringSlice(versions))
	r.AddCustomTag(nameTag+2, rpmpack.EntryUint32(flags))
	return nil
}

// Many builds n small packages into dir and returns their paths, in order.
// Package i is named ferry-test-NNNN (NNNN = i, zero-padded), version 1.0,
// release 1, noarch, and holds one file /usr/share/ferry-test/NNNN/data of
// sizeEach pseudo-random (so hardly compressible) but deterministic bytes.
// It provides ferry-test-capability-NNNN = 1.0 and, for i > 0, requires
// package i-1, so that installing the last one pulls in all of them.
func Many(dir string, n int, sizeEach int, sign func([]byte) ([]byte, error)) ([]string, error) {
	if n < 0 || sizeEach < 0 {
		return nil, fmt.Errorf("rpmtest: bad count %d or size %d", n, sizeEach)
	}
	paths := make([]string, 0, n)
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("ferry-test-%04d", i)
		s := Spec{
			Name:     name,
			Version:  "1.0",
			Release:  "1",
			Files:    map[string][]byte{fmt.Sprintf("/usr/share/ferry-test/%04d/data", i): Content(name, sizeEach)},
			Provides: []string{fmt.Sprintf("ferry-test-capability-%04d = 1.0", i)},
		}
		if i > 0 {
			s.Requires = []string{fmt.Sprintf("ferry-test-%04d", i-1)}
		}
		p, err := Build(dir, s, sign)
		if err != nil {
			return nil, err
		}
		paths = append(paths, p)
	}
	return paths, nil
}

// Content returns n deterministic pseudo-random bytes derived from seed.
func Content(seed string, n int) []byte {
	out := make([]byte, 0, n+sha256.Size)
	var ctr [8]byte
	for i := uint64(0); len(out) < n; i++ {
		binary.BigEndian.PutUint64(ctr[:], i)
		h := sha256.New()
		h.Write([]byte(seed))
		h.Write(ctr[:])
		out = h.Sum(out)
	}
	return out[:n]
}
