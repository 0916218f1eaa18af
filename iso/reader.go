package iso

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"sort"
	"strings"
	"time"
)

// Limits that keep the reader safe on hostile images.
const (
	maxDepth       = 64        // directory nesting
	maxEntries     = 1_000_000 // entries in the whole image
	maxDescriptors = 64        // volume descriptors examined
)

// Extent is a contiguous piece of a file's content in the image.
type Extent struct {
	Offset int64 // byte offset in the image
	Length int64
}

// FileInfo describes one entry of an image.
type FileInfo struct {
	// Path is the slash-separated path from the root, without a leading
	// slash: Rock Ridge names if present, else Joliet, else ISO 9660 names
	// without version.
	Path    string
	Size    int64       // content size of a regular file; 0 for others
	Mode    fs.FileMode // from Rock Ridge PX if present
	ModTime time.Time   // recording date of the directory record
	Target  string      // symlink target (Rock Ridge SL)
	Extents []Extent    // where the content is; several for a multi-extent file
}

// Image is an opened ISO 9660 image. Its tree is read once by Open; file
// contents are read from the underlying io.ReaderAt on demand.
type Image struct {
	r     io.ReaderAt
	size  int64
	files []FileInfo       // sorted by Path
	index map[string]int   // Path to position in files
	dirs  map[string][]int // directory Path ("" for the root) to its children
}

// nameSource says which tree and names the reader uses.
type nameSource int

const (
	namesAuto nameSource = iota // Rock Ridge, else Joliet, else primary
	namesPrimary
	namesJoliet
	namesRockRidge
)

// Open reads the volume descriptors and the whole directory tree of an
// image of the given size. Rock Ridge is preferred, then Joliet, then plain
// ISO 9660.
func Open(r io.ReaderAt, size int64) (*Image, error) {
	return open(r, size, namesAuto)
}

// open reads an image using the names (and tree) asked for.
func open(r io.ReaderAt, size int64, names nameSource) (*Image, error) {
	if size < (firstDescriptor+1)*blockSize {
		return nil, fmt.Errorf("iso: image of %d bytes is too small", size)
	}
	primary, joliet, err := readDescriptors(r, size)
	if err != nil {
		return nil, err
	}
	t := &treeReader{r: r, size: size, visited: map[uint32]bool{}, dirBudget: size, ceBudget: size + 1<<20}
	root, err := t.rootRecord(primary)
	if err != nil {
		return nil, err
	}
	rr, err := t.detectRockRidge(root)
	if err != nil {
		return nil, err
	}
	if names == namesAuto {
		names = namesPrimary
		switch {
		case rr:
			names = namesRockRidge
		case joliet != nil:
			names = namesJoliet
		}
	}
	switch {
	case names == namesRockRidge && !rr:
		return nil, errors.New("iso: no rock ridge")
	case names == namesJoliet && joliet == nil:
		return nil, errors.New("iso: no joliet volume descriptor")
	case names == namesJoliet:
		if root, err = t.rootRecord(joliet); err != nil {
			return nil, err
		}
	}
	t.names = names
	if err := t.walk(root); err != nil {
		return nil, err
	}
	return newImage(r, size, t.files), nil
}

// readDescriptors returns the primary volume descriptor and the Joliet
// supplementary volume descriptor (nil if there is none).
func readDescriptors(r io.ReaderAt, size int64) (primary, joliet []byte, err error) {
	for i := int64(0); i < maxDescriptors; i++ {
		off := (firstDescriptor + i) * blockSize
		if off+blockSize > size {
			break
		}
		d := make([]byte, blockSize)
		if err := readFullAt(r, d, off); err != nil {
			return nil, nil, fmt.Errorf("iso: reading volume descriptor %d: %w", i, err)
		}
		if string(d[1:6]) != standardID {
			if primary != nil {
				break // tolerate a missing terminator
			}
			return nil, nil, fmt.Errorf("iso: no ISO 9660 volume descriptor at block %d", firstDescriptor+i)
		}
		switch d[0] {
		case descTerminator:
			i = maxDescriptors
		case descPrimary:
			if primary == nil {
				primary = d
			}
		case descSupplementary:
			if joliet == nil && isJolietEscape(d[88:120]) {
				joliet = d
			}
		}
	}
	if primary == nil {
		return nil, nil, errors.New("iso: no primary volume descriptor")
	}
	if bs := int(primary[128]) | int(primary[129])<<8; bs != blockSize {
		return nil, nil, fmt.Errorf("iso: unsupported logical block size %d", bs)
	}
	return primary, joliet, nil
}

// isJolietEscape reports whether the escape sequences announce UCS-2
// (levels 1 to 3).
func isJolietEscape(esc []byte) bool {
	for _, level := range []string{"%/@", "%/C", "%/E"} {
		if bytes.HasPrefix(esc, []byte(level)) {
			return true
		}
	}
	return false
}

// newImage indexes the entries read from an image.
func newImage(r io.ReaderAt, size int64, files []FileInfo) *Image {
	sort.Slice(files, func(i, j int) bool { return files[i].Path < files[j].Path })
	im := &Image{r: r, size: size, files: files, index: make(map[string]int, len(files)), dirs: map[string][]int{"": nil}}
	for i, f := range files {
		im.index[f.Path] = i
		parent := path.Dir(f.Path)
		if parent == "." {
			parent = ""
		}
		im.dirs[parent] = append(im.dirs[parent], i)
		if f.Mode.IsDir() {
			if _, ok := im.dirs[f.Path]; !ok {
				im.dirs[f.Path] = nil
			}
		}
	}
	return im
}

// Files returns every entry (directories, files, symlinks), sorted by Path.
// The root itself is not listed.
func (im *Image) Files() []FileInfo {
	return append([]FileInfo(nil), im.files...)
}

// Stat returns the entry at p (relative, slash-separated). The error wraps
// fs.ErrNotExist if there is none.
func (im *Image) Stat(p string) (FileInfo, error) {
	i, ok := im.index[strings.TrimPrefix(p, "/")]
	if !ok {
		return FileInfo{}, fmt.Errorf("iso: stat %q: %w", p, fs.ErrNotExist)
	}
	return im.files[i], nil
}

// Open returns a reader of the content of the regular file at p. Reads go
// straight to the image's io.ReaderAt.
func (im *Image) Open(p string) (io.ReadSeeker, error) {
	r, _, err := im.ReaderAt(p)
	if err != nil {
		return nil, err
	}
	return r.(io.ReadSeeker), nil
}

// ReaderAt returns a reader of the content of the regular file at p and its
// size, for serving ranges.
func (im *Image) ReaderAt(p string) (io.ReaderAt, int64, error) {
	fi, err := im.Stat(p)
	if err != nil {
		return nil, 0, err
	}
	if !fi.Mode.IsRegular() {
		return nil, 0, fmt.Errorf("iso: open %q: not a regular file (%v)", p, fi.Mode.Type())
	}
	return im.contentReader(fi), fi.Size, nil
}

// contentReader reads a file's extents as one stream.
func (im *Image) contentReader(fi FileInfo) contentReader {
	if len(fi.Extents) == 1 {
		return io.NewSectionReader(im.r, fi.Extents[0].Offset, fi.Extents[0].Length)
	}
	return newMultiReader(im.r, fi.Extents)
}

// contentReader is what contentReader returns.
type contentReader interface {
	io.ReadSeeker
	io.ReaderAt
}
