package rpmbuild

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"time"

	"github.com/google/rpmpack"

	"github.com/ferry-k8s/ferry/internal/atomicfile"
	"github.com/ferry-k8s/ferry/signing"
)

// ErrInvalid is wrapped by every error about the Package description
// itself (as opposed to I/O or signing errors).
var ErrInvalid = errors.New("invalid package")

// Package describes one binary RPM.
type Package struct {
	// Name, Version, Release and Arch are required. Arch is "x86_64",
	// "aarch64" or "noarch".
	Name, Version, Release, Arch string
	// Epoch is written when it is not zero.
	Epoch uint32

	// Summary (one line) and License are required; Description defaults
	// to Summary.
	Summary, Description, License, URL, Vendor, Packager, Group string

	// BuildTime is the build time and every file's mtime; pass
	// SOURCE_DATE_EPOCH. Required.
	BuildTime time.Time

	Files []File
	// Units are systemd unit files; see the package documentation.
	Units []Unit
	// Sysusers are sysusers.d configurations; see the package
	// documentation.
	Sysusers []Sysusers

	Requires, Provides, Conflicts, Obsoletes, Recommends []Relation

	// Scripts run with /bin/sh, after the ones Units and Sysusers add.
	Scripts Scripts
}

// FileType says what a File is.
type FileType int

// File types.
const (
	Regular FileType = iota
	Dir
	Symlink
)

// File is one path of the package.
type File struct {
	// Path is absolute and clean: "/usr/bin/kubelet".
	Path string
	Type FileType
	// Source names a file on disk to read, or Body holds the content (a
	// regular file only; both empty is an empty file).
	Source string
	Body   []byte
	// LinkTarget is a symlink's target, absolute or relative.
	LinkTarget string
	// Mode holds the permission bits (and setuid, setgid, sticky); it is
	// required for regular files and directories and ignored (0777) for
	// symlinks. The type goes in Type, not in Mode.
	Mode fs.FileMode
	// Owner and Group are user and group names; "" is root.
	Owner, Group string
	// Config marks %config; NoReplace marks %config(noreplace) (and
	// implies Config); Doc marks %doc; Ghost marks %ghost: listed in the
	// header, not in the payload (no Source or Body).
	Config, NoReplace, Doc, Ghost bool
}

// Relation is one entry of Requires, Provides and the other dependency
// lists: Name alone, or Name Flags Version as in "etcd >= 3.5.0-1".
type Relation struct {
	Name string
	// Flags is "", "=", "<", "<=", ">" or ">=".
	Flags string
	// Version is [epoch:]version[-release]; empty when Flags is.
	Version string
}

// Scripts are the package's shell scriptlets.
type Scripts struct {
	Pre, Post, PreUn, PostUn string
}

// Unit is a systemd unit file, installed as /usr/lib/systemd/system/Name.
type Unit struct {
	Name string // "kubelet.service"
	Body []byte
}

// Sysusers is a sysusers.d(5) configuration, installed as
// /usr/lib/sysusers.d/Name.conf and applied in %pre.
type Sysusers struct {
	Name string // "etcd"
	Conf []byte // "u etcd - \"etcd\" /var/lib/etcd\n"
}

// Options are how to write a package.
type Options struct {
	// Signer signs the header and the header+payload; nil writes an
	// unsigned package.
	Signer *signing.Signer
	// Compression is the payload's: "zstd" (the default), "gzip" or "xz".
	// rpm reads zstd since 4.14 (RHEL 8), and on Debian 12.
	Compression string
}

// FileName is the name rpmbuild gives the package:
// NAME-VERSION-RELEASE.ARCH.rpm.
func (p Package) FileName() string {
	return fmt.Sprintf("%s-%s-%s.%s.rpm", p.Name, p.Version, p.Release, p.Arch)
}

// Write writes the package to w. Nothing is written unless the whole
// package was built.
func Write(w io.Writer, p Package, o Options) error {
	data, err := build(p, o)
	if err != nil {
		return err
	}
	if _, err := w.Write(data); err != nil {
		return fmt.Errorf("writing rpm %q: %w", p.Name, err)
	}
	return nil
}

// WriteFile writes the package to path (mode 0644) atomically: on any
// error path is left as it was.
func WriteFile(path string, p Package, o Options) error {
	data, err := build(p, o)
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(path, data, 0o644)
}

// Tags and flags rpmpack has no name for.
const (
	tagEncoding       = 5062
	sigTagPayloadSize = 1007 // uncompressed cpio archive size

	senseInterp     = 1 << 8
	senseScriptPre  = 1 << 9
	senseScriptPost = 1 << 10
	senseScriptPreU = 1 << 11
	senseScriptPstU = 1 << 12
)

// buildHost replaces the host name: the output must not depend on the
// machine.
const buildHost = "localhost"

// build validates p and returns the bytes of the package.
func build(p Package, o Options) ([]byte, error) {
	c, err := compressor(o.Compression)
	if err != nil {
		return nil, fmt.Errorf("rpm %q: %w", p.Name, err)
	}
	if err := p.validateMeta(); err != nil {
		return nil, err
	}
	files, err := p.files()
	if err != nil {
		return nil, err
	}
	scripts, err := p.scripts()
	if err != nil {
		return nil, err
	}
	md := rpmpack.RPMMetaData{
		Name:        p.Name,
		Version:     p.Version,
		Release:     p.Release,
		Arch:        p.Arch,
		OS:          "linux",
		Epoch:       rpmpack.NoEpoch,
		Summary:     p.Summary,
		Description: p.Description,
		Licence:     p.License,
		URL:         p.URL,
		Vendor:      p.Vendor,
		Packager:    p.Packager,
		Group:       p.Group,
		BuildHost:   buildHost,
		BuildTime:   p.BuildTime.UTC().Truncate(time.Second),
		Compressor:  c,
	}
	if md.Description == "" {
		md.Description = p.Summary
	}
	if p.Epoch != 0 {
		md.Epoch = p.Epoch
	}
	rels, err := p.relations(len(files) > 0, c, scripts)
	if err != nil {
		return nil, err
	}
	md.Requires, md.Conflicts, md.Obsoletes, md.Recommends = rels.requires, rels.conflicts, rels.obsoletes, rels.recommends
	r, err := rpmpack.NewRPM(md)
	if err != nil {
		return nil, fmt.Errorf("rpm %q: %w", p.Name, err)
	}
	// NewRPM adds a self-provide without the epoch; ours has it.
	r.Provides = rels.provides
	r.AddCustomTag(tagEncoding, rpmpack.EntryString("utf-8"))
	mtime := uint32(md.BuildTime.Unix())
	for _, f := range files {
		f.MTime = mtime
		r.AddFile(f)
	}
	// rpmpack writes the sum of file sizes where rpm expects the size of
	// the uncompressed cpio archive.
	size := archiveSize(files)
	if size > math.MaxInt32 {
		return nil, p.invalid("the payload archive would be %d bytes; rpm's 32-bit header holds at most %d", size, math.MaxInt32)
	}
	r.AddCustomSig(sigTagPayloadSize, rpmpack.EntryInt32([]int32{int32(size)}))
	if scripts.Pre != "" {
		r.AddPrein(scripts.Pre)
	}
	if scripts.Post != "" {
		r.AddPostin(scripts.Post)
	}
	if scripts.PreUn != "" {
		r.AddPreun(scripts.PreUn)
	}
	if scripts.PostUn != "" {
		r.AddPostun(scripts.PostUn)
	}
	if o.Signer != nil {
		signer, at := o.Signer, md.BuildTime
		r.SetPGPSigner(func(b []byte) ([]byte, error) { return signer.SignBinary(b, at) })
	}
	var buf bytes.Buffer
	if err := r.Write(&buf); err != nil {
		return nil, fmt.Errorf("writing rpm %q: %w", p.Name, err)
	}
	return buf.Bytes(), nil
}

// compressor maps Options.Compression to rpmpack's name.
func compressor(c string) (string, error) {
	switch c {
	case "":
		return "zstd", nil
	case "zstd", "gzip", "xz":
		return c, nil
	}
	return "", fmt.Errorf("%w: compression %q: want zstd, gzip or xz", ErrInvalid, c)
}

// archiveSize is the length of the cpio (newc) archive rpmpack writes for
// files: per entry a 110-byte header and the NUL-terminated name padded to
// 4 bytes, then the data padded to 4; then the trailer entry.
func archiveSize(files []rpmpack.RPMFile) int64 {
	entry := func(name string, size int) int64 {
		return int64(pad4(110+len(name)+1) + pad4(size))
	}
	n := entry("TRAILER!!!", 0)
	for _, f := range files {
		if f.Type&rpmpack.GhostFile == 0 {
			n += entry(f.Name, len(f.Body))
		}
	}
	return n
}

func pad4(n int) int { return (n + 3) &^ 3 }

// readSource reads a regular file of at most limit bytes.
func readSource(name string, limit int64) ([]byte, error) {
	// Stat first: opening a FIFO would block.
	if st, err := os.Stat(name); err != nil {
		return nil, err
	} else if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file (%s)", name, st.Mode().Type())
	}
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file (%s)", name, st.Mode().Type())
	}
	if st.Size() > limit {
		return nil, fmt.Errorf("%s is %d bytes: too large (a package's files may total %d MiB)", name, st.Size(), maxPayload>>20)
	}
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%s grew while being read: too large (a package's files may total %d MiB)", name, maxPayload>>20)
	}
	return data, nil
}
