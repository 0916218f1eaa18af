package compose

import (
	"bufio"
	"compress/bzip2"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/ferry-k8s/ferry/repo"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	rpmutils "github.com/sassoftware/go-rpmutils"
	"github.com/ulikunitz/xz/lzma"
	"github.com/xi2/xz"
)

// RPM file flags and mode bits used here.
const (
	rpmFileGhost = 1 << 6
	modeType     = 0o170000
	modeReg      = 0o100000
	modeDir      = 0o040000
	modeSymlink  = 0o120000
	modePerm     = 0o7777
)

// Limits on what one package's payload may declare, besides those repo
// applies to headers.
const (
	maxLinkTarget = 4096
	// maxDictSize bounds the dictionary an xz or lzma payload may ask for
	// (xz -9 uses 64 MiB).
	maxDictSize = 1 << 26
	// maxZstdWindow bounds a zstd payload's window (zstd --ultra -22 uses
	// 128 MiB).
	maxZstdWindow = 1 << 27
)

// rpmFile is one file of an RPM header.
type rpmFile struct {
	path        string // as in the header: absolute
	mode        uint32 // type and permission bits
	size        int64
	user, group string
	flags       uint64
	digest      string // hex, algorithm rpmPackage.digestAlgo; "" if none
	linkTo      string
	dev, ino    uint64
}

func (f *rpmFile) ghost() bool { return f.flags&rpmFileGhost != 0 }

// rpmPackage is what composing needs of one RPM.
type rpmPackage struct {
	file       string // path of the .rpm
	nevra      string
	arch       string
	files      []rpmFile
	compressor string // PAYLOADCOMPRESSOR; "" when absent
	digestAlgo uint64
	payloadOff int64
	size       int64
}

// String names the package in errors: NEVRA and file.
func (p *rpmPackage) String() string {
	return fmt.Sprintf("package %s (%s)", p.nevra, p.file)
}

// openPackage opens and validates the RPM at path. The header is checked
// by repo (structure, sizes, no panics on hostile input) before
// go-rpmutils parses it again for the file list.
func openPackage(path string) (*os.File, *rpmPackage, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, fmt.Errorf("package %s: %w", path, err)
	}
	pkg, err := readPackageHeader(f, path)
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	return f, pkg, nil
}

func readPackageHeader(f *os.File, path string) (*rpmPackage, error) {
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("package %s: %w", path, err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("package %s: not a regular file", path)
	}
	meta, err := repo.ReadPackageFrom(f, st.Size(), path)
	if err != nil {
		return nil, err // names the file
	}
	pkg := &rpmPackage{
		file:       path,
		nevra:      meta.NEVRA(),
		arch:       meta.Arch,
		payloadOff: meta.HeaderEnd,
		size:       st.Size(),
	}
	if meta.SourceRPM == "" {
		return nil, fmt.Errorf("%s: is a source package", pkg)
	}
	h, err := rpmutils.ReadHeader(io.NewSectionReader(f, 0, meta.HeaderEnd))
	if err != nil {
		return nil, fmt.Errorf("%s: reading header: %w", pkg, err)
	}
	if err := readFileList(hdr{h}, pkg); err != nil {
		return nil, fmt.Errorf("%s: header: %w", pkg, err)
	}
	return pkg, nil
}

// hdr reads header tags, treating a missing tag as empty.
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

// readFileList fills pkg's file list, compressor and digest algorithm,
// checking that the parallel header arrays agree in length.
func readFileList(h hdr, pkg *rpmPackage) error {
	if format, err := h.strings(rpmutils.PAYLOADFORMAT); err != nil {
		return err
	} else if len(format) > 0 && format[0] != "cpio" {
		return fmt.Errorf("unsupported payload format %q", format[0])
	}
	if c, err := h.strings(rpmutils.PAYLOADCOMPRESSOR); err != nil {
		return err
	} else if len(c) > 0 {
		pkg.compressor = c[0]
	}
	pkg.digestAlgo = digestMD5 // rpm's default when the tag is absent
	if a, err := h.uints(rpmutils.FILEDIGESTALGO); err != nil {
		return err
	} else if len(a) > 0 {
		pkg.digestAlgo = a[0]
	}

	base, err := h.strings(rpmutils.BASENAMES)
	if err != nil {
		return err
	}
	var paths []string
	if base != nil {
		dirs, err := h.strings(rpmutils.DIRNAMES)
		if err != nil {
			return err
		}
		idx, err := h.uints(rpmutils.DIRINDEXES)
		if err != nil {
			return err
		}
		if len(idx) != len(base) {
			return fmt.Errorf("%d base names but %d directory indexes", len(base), len(idx))
		}
		paths = make([]string, len(base))
		for i, b := range base {
			if idx[i] >= uint64(len(dirs)) {
				return fmt.Errorf("file %q: directory index %d out of range", b, idx[i])
			}
			paths[i] = dirs[idx[i]] + b
		}
	} else if paths, err = h.strings(rpmutils.OLDFILENAMES); err != nil {
		return err
	}
	n := len(paths)
	if n == 0 {
		return nil
	}
	sizes, err := h.uints(rpmutils.LONGFILESIZES)
	if err != nil {
		return err
	}
	if sizes == nil {
		if sizes, err = h.uints(rpmutils.FILESIZES); err != nil {
			return err
		}
	}
	modes, err := h.uints(rpmutils.FILEMODES)
	if err != nil {
		return err
	}
	flags, err := h.uints(rpmutils.FILEFLAGS)
	if err != nil {
		return err
	}
	users, err := h.strings(rpmutils.FILEUSERNAME)
	if err != nil {
		return err
	}
	groups, err := h.strings(rpmutils.FILEGROUPNAME)
	if err != nil {
		return err
	}
	digests, err := h.strings(rpmutils.FILEDIGESTS)
	if err != nil {
		return err
	}
	links, err := h.strings(rpmutils.FILELINKTOS)
	if err != nil {
		return err
	}
	devs, err := h.uints(rpmutils.FILEDEVICES)
	if err != nil {
		return err
	}
	inos, err := h.uints(rpmutils.FILEINODES)
	if err != nil {
		return err
	}
	for _, a := range []struct {
		name string
		n    int
		opt  bool // may be absent
	}{
		{"sizes", len(sizes), false}, {"modes", len(modes), false}, {"flags", len(flags), false},
		{"user names", len(users), false}, {"group names", len(groups), false},
		{"digests", len(digests), true}, {"link targets", len(links), true},
		{"devices", len(devs), true}, {"inodes", len(inos), true},
	} {
		if a.n != n && (!a.opt || a.n != 0) {
			return fmt.Errorf("%d files but %d %s", n, a.n, a.name)
		}
	}
	pkg.files = make([]rpmFile, n)
	for i, p := range paths {
		f := rpmFile{
			path:  p,
			mode:  uint32(modes[i]),
			user:  users[i],
			group: groups[i],
			flags: flags[i],
		}
		if sizes[i] > 1<<62 {
			return fmt.Errorf("file %s: size %d out of range", p, sizes[i])
		}
		f.size = int64(sizes[i])
		if digests != nil {
			f.digest = digests[i]
		}
		if links != nil {
			f.linkTo = links[i]
		}
		if inos != nil {
			f.ino = inos[i]
		}
		if devs != nil {
			f.dev = devs[i]
		}
		pkg.files[i] = f
	}
	return nil
}

// decompress wraps the payload r in the decompressor the header names.
// close releases the decompressor's resources.
func decompress(compressor string, r io.Reader) (out io.Reader, close func(), err error) {
	nop := func() {}
	br := bufio.NewReaderSize(r, 1<<16)
	if compressor == "" {
		// rpm writes no PAYLOADCOMPRESSOR for an uncompressed payload;
		// old packages omit it for gzip.
		magic, err := br.Peek(2)
		if err != nil {
			return nil, nil, fmt.Errorf("reading payload: %w", noEOF(err))
		}
		if magic[0] == 0x1f && magic[1] == 0x8b {
			compressor = "gzip"
		} else {
			return br, nop, nil
		}
	}
	switch compressor {
	case "gzip":
		z, err := gzip.NewReader(br)
		if err != nil {
			return nil, nil, fmt.Errorf("reading gzip payload: %w", noEOF(err))
		}
		return z, func() { z.Close() }, nil
	case "bzip2":
		return bzip2.NewReader(br), nop, nil
	case "xz":
		// xi2/xz refuses dictionaries larger than its dictMax.
		z, err := xz.NewReader(br, maxDictSize)
		if err != nil {
			return nil, nil, fmt.Errorf("reading xz payload: %w", noEOF(err))
		}
		return z, nop, nil
	case "lzma":
		// lzma_alone header: properties byte, then the dictionary size
		// (little-endian), which the decoder would allocate as is.
		h, err := br.Peek(5)
		if err != nil {
			return nil, nil, fmt.Errorf("reading lzma payload: %w", noEOF(err))
		}
		if d := binary.LittleEndian.Uint32(h[1:]); d > maxDictSize {
			return nil, nil, fmt.Errorf("reading lzma payload: dictionary of %d bytes exceeds the limit of %d", d, maxDictSize)
		}
		z, err := lzma.NewReader(br)
		if err != nil {
			return nil, nil, fmt.Errorf("reading lzma payload: %w", noEOF(err))
		}
		return z, nop, nil
	case "zstd":
		z, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(maxZstdWindow))
		if err != nil {
			return nil, nil, fmt.Errorf("reading zstd payload: %w", err)
		}
		return z, z.Close, nil
	}
	return nil, nil, fmt.Errorf("unsupported payload compressor %q", compressor)
}

func noEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}
