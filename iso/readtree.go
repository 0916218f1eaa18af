package iso

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"strings"
)

// rawRecord is a decoded directory record.
type rawRecord struct {
	lba   uint32 // first block of the data (after any extended attribute record)
	size  uint32
	date  []byte
	flags byte
	id    []byte
	su    []byte
}

// parseRecord decodes the directory record at the start of b; b holds
// exactly the record.
func parseRecord(b []byte) (rawRecord, error) {
	if len(b) < recordHeaderLen+1 {
		return rawRecord{}, fmt.Errorf("directory record of %d bytes is too short", len(b))
	}
	idLen := int(b[32])
	if idLen == 0 || recordHeaderLen+idLen > len(b) {
		return rawRecord{}, fmt.Errorf("directory record identifier of %d bytes does not fit", idLen)
	}
	rec := rawRecord{
		lba:   le32(b[2:]) + uint32(b[1]),
		size:  le32(b[10:]),
		date:  b[18:25],
		flags: b[25],
		id:    b[33 : 33+idLen],
	}
	if rec.lba < uint32(b[1]) {
		return rawRecord{}, errors.New("directory record extent location overflows")
	}
	if b[26] != 0 || b[27] != 0 {
		return rawRecord{}, fmt.Errorf("interleaved file %q is not supported", rec.id)
	}
	if start := recordBaseLen(idLen); start < len(b) {
		rec.su = b[start:]
	}
	return rec, nil
}

// readFullAt fills p from r at off. Unlike a bare ReadAt, it accepts io.EOF
// along with a full read, which io.ReaderAt allows at the end of the input.
func readFullAt(r io.ReaderAt, p []byte, off int64) error {
	n, err := r.ReadAt(p, off)
	if n == len(p) {
		return nil
	}
	if err == nil || err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return err
}

// isSelfOrParent reports whether id is the "." or ".." record.
func isSelfOrParent(id []byte) bool {
	return len(id) == 1 && (id[0] == 0 || id[0] == 1)
}

// treeReader walks the directory tree once.
type treeReader struct {
	r         io.ReaderAt
	size      int64
	names     nameSource
	skip      int // SUSP bytes to skip at the start of each system use field
	visited   map[uint32]bool
	dirBudget int64 // directory bytes that may still be read
	ceBudget  int64 // continuation area bytes that may still be read
	entries   int
	files     []FileInfo
}

// dirToRead is a directory whose records are still to be read.
type dirToRead struct {
	path  string
	lba   uint32
	size  uint32
	depth int
}

// rootRecord decodes the root directory record of a volume descriptor.
func (t *treeReader) rootRecord(desc []byte) (dirToRead, error) {
	rec, err := parseRecord(desc[156 : 156+rootRecordLen])
	if err != nil {
		return dirToRead{}, fmt.Errorf("iso: root directory record: %w", err)
	}
	return dirToRead{lba: rec.lba, size: rec.size}, nil
}

// detectRockRidge looks for SUSP and Rock Ridge in the root's "." record.
func (t *treeReader) detectRockRidge(root dirToRead) (bool, error) {
	if root.size == 0 || int64(root.lba)*blockSize+blockSize > t.size {
		return false, fmt.Errorf("iso: root directory at block %d (%d bytes) is empty or outside the image", root.lba, root.size)
	}
	block := make([]byte, blockSize)
	if err := readFullAt(t.r, block, int64(root.lba)*blockSize); err != nil {
		return false, fmt.Errorf("iso: reading root directory: %w", err)
	}
	n := int(block[0])
	if n == 0 {
		return false, nil
	}
	rec, err := parseRecord(block[:n])
	if err != nil {
		return false, fmt.Errorf("iso: reading root directory: %w", err)
	}
	if len(rec.su) < 7 || string(rec.su[:2]) != "SP" {
		return false, nil
	}
	info, err := parseSystemUse(rec.su, t.readCE)
	if err != nil {
		return false, fmt.Errorf("iso: reading root directory: %w", err)
	}
	t.skip = int(info.skip)
	return info.hasSP && info.hasRRIP, nil
}

// readCE reads a continuation area.
func (t *treeReader) readCE(lba, off, length uint32) ([]byte, error) {
	start := int64(lba)*blockSize + int64(off)
	if length > maxCEAreaSize || start+int64(length) > t.size {
		return nil, fmt.Errorf("continuation area of %d bytes at block %d offset %d is outside the image", length, lba, off)
	}
	if t.ceBudget -= int64(length); t.ceBudget < 0 {
		return nil, errors.New("too much continuation area data")
	}
	b := make([]byte, length)
	if err := readFullAt(t.r, b, start); err != nil {
		return nil, fmt.Errorf("reading continuation area: %w", err)
	}
	return b, nil
}

// walk reads every directory, depth first, without recursion.
func (t *treeReader) walk(root dirToRead) error {
	stack := []dirToRead{root}
	for len(stack) > 0 {
		d := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		subdirs, err := t.readDir(d)
		if err != nil {
			return fmt.Errorf("iso: reading directory %q: %w", "/"+d.path, err)
		}
		stack = append(stack, subdirs...)
	}
	return nil
}

// readDir reads the records of one directory, adds its entries and returns
// its subdirectories.
func (t *treeReader) readDir(d dirToRead) ([]dirToRead, error) {
	if d.depth > maxDepth {
		return nil, fmt.Errorf("directories nested deeper than %d", maxDepth)
	}
	if t.visited[d.lba] {
		return nil, fmt.Errorf("directory loop: block %d visited twice", d.lba)
	}
	t.visited[d.lba] = true
	start := int64(d.lba) * blockSize
	if start+int64(d.size) > t.size {
		return nil, fmt.Errorf("directory extent at block %d (%d bytes) is outside the image", d.lba, d.size)
	}
	blocks := blocksFor(int64(d.size))
	if t.dirBudget -= blocks * blockSize; t.dirBudget < 0 {
		return nil, errors.New("directories add up to more than the image size")
	}
	dr := &dirReader{t: t, dir: d, names: map[string]bool{}, pending: -1}
	block := make([]byte, blockSize)
	for i := int64(0); i < blocks; i++ {
		limit := min(int64(d.size)-i*blockSize, blockSize)
		if err := readFullAt(t.r, block[:limit], start+i*blockSize); err != nil {
			return nil, fmt.Errorf("reading block %d: %w", int64(d.lba)+i, err)
		}
		if err := dr.readBlock(block[:limit]); err != nil {
			return nil, err
		}
	}
	if dr.pending >= 0 {
		return nil, fmt.Errorf("multi-extent file %q has no last extent", t.files[dr.pending].Path)
	}
	return dr.subdirs, nil
}

// dirReader collects the entries of one directory.
type dirReader struct {
	t         *treeReader
	dir       dirToRead
	names     map[string]bool
	subdirs   []dirToRead
	pending   int    // index in t.files of a multi-extent file awaiting more extents, or -1
	pendingID []byte // its identifier
}

// readBlock reads the records of one directory block.
func (dr *dirReader) readBlock(block []byte) error {
	for off := 0; off < len(block); {
		n := int(block[off])
		if n == 0 {
			return nil // the rest of the block is padding
		}
		if off+n > len(block) {
			return fmt.Errorf("directory record at offset %d crosses the block boundary", off)
		}
		rec, err := parseRecord(block[off : off+n])
		if err != nil {
			return err
		}
		off += n
		if err := dr.addRecord(rec); err != nil {
			return err
		}
	}
	return nil
}

// addRecord turns one record into an entry, or into one more extent of the
// multi-extent file before it.
func (dr *dirReader) addRecord(rec rawRecord) error {
	if dr.pending >= 0 {
		return dr.addExtent(rec)
	}
	if isSelfOrParent(rec.id) || rec.flags&flagAssociated != 0 {
		return nil
	}
	t := dr.t
	if t.entries++; t.entries > maxEntries {
		return fmt.Errorf("more than %d entries", maxEntries)
	}
	fi, sub, skip, err := dr.describe(rec)
	if err != nil || skip {
		return err
	}
	if dr.names[fi.Path] {
		return fmt.Errorf("duplicate name %q", path.Base(fi.Path))
	}
	dr.names[fi.Path] = true
	if sub != nil {
		dr.subdirs = append(dr.subdirs, *sub)
	}
	t.files = append(t.files, fi)
	if rec.flags&flagMultiExtent != 0 && sub == nil {
		dr.pending, dr.pendingID = len(t.files)-1, bytes.Clone(rec.id)
	}
	return nil
}

// addExtent adds a record that continues a multi-extent file.
func (dr *dirReader) addExtent(rec rawRecord) error {
	fi := &dr.t.files[dr.pending]
	if !bytes.Equal(rec.id, dr.pendingID) || rec.flags&flagDirectory != 0 {
		return fmt.Errorf("multi-extent file %q is interrupted by %q", fi.Path, rec.id)
	}
	if dr.t.entries++; dr.t.entries > maxEntries {
		return fmt.Errorf("more than %d entries", maxEntries)
	}
	ext, err := dr.t.extent(rec)
	if err != nil {
		return fmt.Errorf("file %q: %w", fi.Path, err)
	}
	fi.Extents = append(fi.Extents, ext)
	fi.Size += ext.Length
	if rec.flags&flagMultiExtent == 0 {
		dr.pending, dr.pendingID = -1, nil
	}
	return nil
}

// extent checks that a record's data lies inside the image.
func (t *treeReader) extent(rec rawRecord) (Extent, error) {
	ext := Extent{Offset: int64(rec.lba) * blockSize, Length: int64(rec.size)}
	if ext.Length > 0 && ext.Offset+ext.Length > t.size {
		return Extent{}, fmt.Errorf("extent at block %d (%d bytes) is outside the image", rec.lba, rec.size)
	}
	return ext, nil
}

// describe builds the entry of a record. sub is set for a directory to
// descend into; skip is set for a record that is not an entry of its own (a
// Rock Ridge relocated directory, shown where its CL entry is).
func (dr *dirReader) describe(rec rawRecord) (fi FileInfo, sub *dirToRead, skip bool, err error) {
	t := dr.t
	isDir := rec.flags&flagDirectory != 0
	name, mode, hasMode := "", fs.FileMode(0), false
	var info rrInfo
	switch t.names {
	case namesRockRidge:
		if len(rec.su) > t.skip {
			if info, err = parseSystemUse(rec.su[t.skip:], t.readCE); err != nil {
				return fi, nil, false, fmt.Errorf("entry %q: %w", rec.id, err)
			}
		}
		if info.relocated {
			return fi, nil, true, nil
		}
		name = primaryName(rec.id, isDir)
		if info.hasName {
			name = string(info.name)
		}
		mode, hasMode = posixToFileMode(info.mode), info.hasMode
	case namesJoliet:
		name = jolietName(rec.id, isDir)
	default:
		name = primaryName(rec.id, isDir)
	}
	if err := checkName(name); err != nil {
		return fi, nil, false, err
	}
	fi = FileInfo{Path: path.Join(dr.dir.path, name), ModTime: parseRecordDate(rec.date)}
	if info.hasChild {
		isDir = true
		if rec, err = t.relocatedDir(info.childLink); err != nil {
			return fi, nil, false, fmt.Errorf("entry %q: %w", name, err)
		}
	}
	fi.Mode = entryMode(isDir, mode, hasMode, info.isLink)
	switch {
	case isDir:
		sub = &dirToRead{path: fi.Path, lba: rec.lba, size: rec.size, depth: dr.dir.depth + 1}
	case fi.Mode&fs.ModeSymlink != 0:
		fi.Target = string(info.target)
	case fi.Mode.IsRegular():
		ext, err := t.extent(rec)
		if err != nil {
			return fi, nil, false, fmt.Errorf("file %q: %w", name, err)
		}
		fi.Extents, fi.Size = []Extent{ext}, ext.Length
	}
	return fi, sub, false, nil
}

// relocatedDir finds the extent of a directory moved by Rock Ridge
// relocation (CL): its own "." record tells its size.
func (t *treeReader) relocatedDir(lba uint32) (rawRecord, error) {
	if int64(lba)*blockSize+blockSize > t.size {
		return rawRecord{}, fmt.Errorf("relocated directory at block %d is outside the image", lba)
	}
	block := make([]byte, blockSize)
	if err := readFullAt(t.r, block, int64(lba)*blockSize); err != nil {
		return rawRecord{}, fmt.Errorf("reading relocated directory: %w", err)
	}
	rec, err := parseRecord(block[:block[0]])
	if err != nil {
		return rawRecord{}, fmt.Errorf("relocated directory: %w", err)
	}
	rec.lba = lba
	return rec, nil
}

// entryMode decides the mode of an entry: the type follows the ISO 9660
// directory flag and Rock Ridge, the permissions Rock Ridge (or read-only
// defaults without it).
func entryMode(isDir bool, mode fs.FileMode, hasMode, isLink bool) fs.FileMode {
	if !hasMode {
		mode = 0o444
		if isDir {
			mode = 0o555
		}
	}
	mode &^= fs.ModeDir
	switch {
	case isDir:
		mode = mode&^fs.ModeType | fs.ModeDir
	case isLink:
		mode = mode&^fs.ModeType | fs.ModeSymlink
	}
	return mode
}

// checkName rejects names that cannot be a path element.
func checkName(name string) error {
	switch {
	case name == "", name == ".", name == "..":
		return fmt.Errorf("invalid name %q", name)
	case strings.ContainsAny(name, "/\x00"):
		return fmt.Errorf("invalid name %q: contains a slash or NUL", name)
	}
	return nil
}

// primaryName turns an ISO 9660 identifier into a name: the version
// (";1") and, for files, a trailing dot of an empty extension are dropped.
func primaryName(id []byte, isDir bool) string {
	name := string(id)
	if isDir {
		return name
	}
	return strings.TrimSuffix(stripVersion(name), ".")
}

// jolietName decodes a Joliet identifier, dropping a file's version.
func jolietName(id []byte, isDir bool) string {
	name := decodeUCS2(id)
	if isDir {
		return name
	}
	return stripVersion(name)
}

// stripVersion removes a ";<digits>" suffix.
func stripVersion(name string) string {
	i := strings.LastIndexByte(name, ';')
	if i < 0 {
		return name
	}
	for _, c := range name[i+1:] {
		if c < '0' || c > '9' {
			return name
		}
	}
	return name[:i]
}
