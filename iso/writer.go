package iso

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Entry is one file or directory of the image. Path is slash-separated and
// relative ("images/blobs/sha256/<64 hex>"): no leading slash, no "." or
// ".." elements.
type Entry struct {
	Path   string
	Source string // host file to read the content from (regular files only); empty for directories
	Size   int64  // size of Source; the writer fails if the file does not have exactly this size
	Dir    bool
	// Executable files get mode 0755 in Rock Ridge (others 0644), so a
	// binary on the disc runs straight from a mounted image.
	Executable bool
}

// WriteOptions are the volume-wide settings of an image.
type WriteOptions struct {
	// VolumeID is the volume label, up to 32 characters; it is upper-cased
	// and characters other than A-Z, 0-9 and _ become '_' in the primary
	// descriptor. The Joliet descriptor keeps it as given (16 characters).
	VolumeID string
	// Publisher is optional.
	Publisher string
	// ModTime is the one time stamp of the image: volume creation and
	// modification dates, every directory record and every Rock Ridge TF
	// entry. Pass a time derived from SOURCE_DATE_EPOCH. The zero time means
	// the Unix epoch.
	ModTime time.Time
	// Progress, if set, is called as the image is written, with the bytes
	// written so far and the image size, about every MiB and at the end.
	Progress func(done, total int64)
}

// copyBufferSize is the buffer size used to copy file content.
const copyBufferSize = 1 << 20

// progressInterval is how many bytes pass between Progress calls.
const progressInterval = 1 << 20

// Write writes the image of entries to w. Parent directories of entries are
// implied even if not listed. The output is produced strictly sequentially,
// in one pass over the file contents, and is byte-identical for the same
// entries (in any order) and options.
func Write(w io.Writer, entries []Entry, opts WriteOptions) error {
	root, err := buildTree(entries)
	if err != nil {
		return err
	}
	l, err := planLayout(root, opts)
	if err != nil {
		return err
	}
	out := &countingWriter{w: w, total: int64(l.totalBlocks) * blockSize, progress: opts.Progress}
	iw := &imageWriter{l: l, opts: opts, out: out, meta: bufio.NewWriterSize(out, 64<<10)}
	if err := iw.write(); err != nil {
		return err
	}
	if opts.Progress != nil && out.reported != out.n {
		opts.Progress(out.n, out.total)
	}
	return nil
}

// WriteTree writes an image of the contents of dir (not dir itself), which
// may be a symlink to a directory. Below it, only regular files and
// directories are allowed; anything else (a symlink, a device, ...) is an
// error naming the path.
func WriteTree(w io.Writer, dir string, opts WriteOptions) error {
	// A symlink naming the tree itself is followed; any below it is an error.
	dir, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return fmt.Errorf("iso: %w", err)
	}
	var entries []Entry
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("iso: walking %s: %w", p, err)
		}
		if p == dir {
			if !d.IsDir() {
				return fmt.Errorf("iso: %s is not a directory", p)
			}
			return nil
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return fmt.Errorf("iso: walking %s: %w", p, err)
		}
		e, err := treeEntry(p, filepath.ToSlash(rel), d)
		if err != nil {
			return err
		}
		entries = append(entries, e)
		return nil
	})
	if err != nil {
		return err
	}
	return Write(w, entries, opts)
}

// treeEntry describes one file found by WriteTree.
func treeEntry(hostPath, rel string, d fs.DirEntry) (Entry, error) {
	switch {
	case d.IsDir():
		return Entry{Path: rel, Dir: true}, nil
	case d.Type().IsRegular():
		info, err := d.Info()
		if err != nil {
			return Entry{}, fmt.Errorf("iso: %s: %w", hostPath, err)
		}
		exec := info.Mode().Perm()&0o100 != 0
		return Entry{Path: rel, Source: hostPath, Size: info.Size(), Executable: exec}, nil
	}
	return Entry{}, fmt.Errorf("iso: %s: unsupported file type %v", hostPath, d.Type())
}

// countingWriter counts the bytes written and reports progress.
type countingWriter struct {
	w        io.Writer
	n        int64
	total    int64
	reported int64
	progress func(done, total int64)
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	if c.progress != nil && (c.n-c.reported >= progressInterval || c.n == c.total) {
		c.reported = c.n
		c.progress(c.n, c.total)
	}
	return n, err
}

// imageWriter writes a planned image.
type imageWriter struct {
	l    *layout
	opts WriteOptions
	out  *countingWriter
	meta *bufio.Writer // buffers everything before the file data
}

var zeroBlock [blockSize]byte

// write emits the whole image in order.
func (iw *imageWriter) write() error {
	steps := []func() error{
		iw.writeSystemArea,
		iw.writeDescriptors,
		iw.writePathTables,
		iw.writePrimaryDirs,
		iw.writeContinuationAreas,
		iw.writeJolietDirs,
		iw.meta.Flush,
		iw.writeFiles,
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return err
		}
	}
	if iw.out.n != int64(iw.l.totalBlocks)*blockSize {
		return fmt.Errorf("iso: internal error: wrote %d bytes, planned %d blocks", iw.out.n, iw.l.totalBlocks)
	}
	return nil
}

// pos is the offset of the next byte written to meta.
func (iw *imageWriter) pos() int64 {
	return iw.out.n + int64(iw.meta.Buffered())
}

// expect checks that the next byte goes to block lba, as planned.
func (iw *imageWriter) expect(what string, lba uint32) error {
	if p := iw.pos(); p != int64(lba)*blockSize {
		return fmt.Errorf("iso: internal error: %s at byte %d, planned for block %d", what, p, lba)
	}
	return nil
}

// writeMeta writes metadata bytes.
func (iw *imageWriter) writeMeta(b []byte) error {
	if _, err := iw.meta.Write(b); err != nil {
		return fmt.Errorf("iso: writing image: %w", err)
	}
	return nil
}

// zeros writes n zero bytes to meta.
func (iw *imageWriter) zeros(n int64) error {
	for n > 0 {
		chunk := min(n, blockSize)
		if err := iw.writeMeta(zeroBlock[:chunk]); err != nil {
			return err
		}
		n -= chunk
	}
	return nil
}

// padBlock pads meta to the next block boundary.
func (iw *imageWriter) padBlock() error {
	if r := iw.pos() % blockSize; r != 0 {
		return iw.zeros(blockSize - r)
	}
	return nil
}

func (iw *imageWriter) writeSystemArea() error {
	return iw.zeros(systemAreaBlocks * blockSize)
}

func (iw *imageWriter) writeDescriptors() error {
	if err := iw.expect("volume descriptors", firstDescriptor); err != nil {
		return err
	}
	term := make([]byte, blockSize)
	term[0] = descTerminator
	copy(term[1:], standardID)
	term[6] = 1
	for _, d := range [][]byte{iw.descriptor(false), iw.descriptor(true), term} {
		if err := iw.writeMeta(d); err != nil {
			return err
		}
	}
	return nil
}

// descriptor encodes the primary volume descriptor or the Joliet
// supplementary volume descriptor (ECMA-119 8.4 and 8.5).
func (iw *imageWriter) descriptor(joliet bool) []byte {
	l := iw.l
	d := make([]byte, blockSize)
	d[0] = descPrimary
	copy(d[1:], standardID)
	d[6] = 1
	text := func(off, n int, s string, conv func(string) string) {
		if joliet {
			copy(d[off:off+n], ucs2Field(s, n))
			return
		}
		copy(d[off:off+n], padRight(conv(s), n))
	}
	text(8, 32, "", aChars)                  // system identifier
	text(40, 32, iw.opts.VolumeID, toDChars) // volume identifier
	putBoth32(d[80:], l.totalBlocks)         // volume space size
	putBoth16(d[120:], 1)                    // volume set size
	putBoth16(d[124:], 1)                    // volume sequence number
	putBoth16(d[128:], blockSize)            // logical block size
	root := dirRecord{id: []byte{0}, date: l.date, flags: flagDirectory}
	if joliet {
		d[0] = descSupplementary
		copy(d[88:], jolietEscape)
		putBoth32(d[132:], l.jolietPathTableSize)
		binary.LittleEndian.PutUint32(d[140:], l.jolPathL)
		binary.BigEndian.PutUint32(d[148:], l.jolPathM)
		root.lba, root.size = l.root.jolietDir.lba, l.root.jolietDir.blocks*blockSize
	} else {
		putBoth32(d[132:], l.isoPathTableSize)
		binary.LittleEndian.PutUint32(d[140:], l.isoPathL)
		binary.BigEndian.PutUint32(d[148:], l.isoPathM)
		root.lba, root.size = l.root.isoDir.lba, l.root.isoDir.blocks*blockSize
	}
	copy(d[156:156+rootRecordLen], appendDirRecord(nil, root))
	text(190, 128, "", toDChars)              // volume set identifier
	text(318, 128, iw.opts.Publisher, aChars) // publisher identifier
	text(446, 128, "", aChars)                // data preparer identifier
	text(574, 128, "", aChars)                // application identifier
	text(702, 37, "", toDChars)               // copyright file identifier
	text(739, 37, "", toDChars)               // abstract file identifier
	text(776, 37, "", toDChars)               // bibliographic file identifier
	created, unset := volumeDate(iw.opts.ModTime), unsetVolumeDate()
	copy(d[813:], created[:]) // creation
	copy(d[830:], created[:]) // modification
	copy(d[847:], unset[:])   // expiration
	copy(d[864:], unset[:])   // effective
	d[881] = 1                // file structure version
	return d
}

// aChars upper-cases s and replaces what is not an a-character with '_'.
func aChars(s string) string {
	const allowed = " !\"%&'()*+,-./:;<=>?"
	b := []byte(strings.ToUpper(s))
	for i, c := range b {
		if !(c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || strings.IndexByte(allowed, c) >= 0) {
			b[i] = '_'
		}
	}
	return string(b)
}

// padRight truncates or pads s with spaces to n bytes.
func padRight(s string, n int) []byte {
	b := []byte(strings.Repeat(" ", n))
	copy(b, s)
	return b
}

func (iw *imageWriter) writePathTables() error {
	l := iw.l
	tables := []struct {
		lba    uint32
		dirs   []*node
		joliet bool
		big    bool
	}{
		{l.isoPathL, l.isoDirs, false, false},
		{l.isoPathM, l.isoDirs, false, true},
		{l.jolPathL, l.jolietDirs, true, false},
		{l.jolPathM, l.jolietDirs, true, true},
	}
	for _, t := range tables {
		if err := iw.expect("path table", t.lba); err != nil {
			return err
		}
		if err := iw.writeMeta(l.pathTable(t.dirs, t.joliet, t.big)); err != nil {
			return err
		}
		if err := iw.padBlock(); err != nil {
			return err
		}
	}
	return nil
}

// writeRecords writes the records produced by emit as one directory extent.
func (iw *imageWriter) writeRecords(what string, pos extentPos, emit func(add recordFunc) error) error {
	if err := iw.expect(what, pos.lba); err != nil {
		return err
	}
	var p recordPacker
	err := emit(func(rec []byte) error {
		if err := iw.zeros(int64(p.place(len(rec)))); err != nil {
			return err
		}
		return iw.writeMeta(rec)
	})
	if err != nil {
		return err
	}
	if p.blocks != int64(pos.blocks) {
		return fmt.Errorf("iso: internal error: %s has %d blocks, planned %d", what, p.blocks, pos.blocks)
	}
	return iw.padBlock()
}

func (iw *imageWriter) writePrimaryDirs() error {
	ce := &ceAllocator{}
	for _, d := range iw.l.isoDirs {
		err := iw.writeRecords(fmt.Sprintf("directory %q", d.path), d.isoDir, func(add recordFunc) error {
			return iw.l.primaryRecords(d, ce, add, nil)
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// writeContinuationAreas writes the Rock Ridge continuation areas, replaying
// the allocation of writePrimaryDirs.
func (iw *imageWriter) writeContinuationAreas() error {
	start := int64(iw.l.ceStart) * blockSize
	if err := iw.expect("continuation areas", iw.l.ceStart); err != nil {
		return err
	}
	ce := &ceAllocator{}
	skip := func([]byte) error { return nil }
	cont := func(off int64, area []byte) error {
		if err := iw.zeros(start + off - iw.pos()); err != nil {
			return err
		}
		return iw.writeMeta(area)
	}
	for _, d := range iw.l.isoDirs {
		if err := iw.l.primaryRecords(d, ce, skip, cont); err != nil {
			return err
		}
	}
	return iw.padBlock()
}

func (iw *imageWriter) writeJolietDirs() error {
	for _, d := range iw.l.jolietDirs {
		err := iw.writeRecords(fmt.Sprintf("joliet directory %q", d.path), d.jolietDir, func(add recordFunc) error {
			return iw.l.jolietRecords(d, add)
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// writeFiles copies every file's content, each padded to a block.
func (iw *imageWriter) writeFiles() error {
	buf := make([]byte, copyBufferSize)
	for _, f := range iw.l.files {
		if f.size == 0 {
			continue
		}
		if err := iw.expect(fmt.Sprintf("file %q", f.path), f.dataLBA); err != nil {
			return err
		}
		if err := iw.copyFile(f, buf); err != nil {
			return err
		}
		if r := f.size % blockSize; r != 0 {
			if _, err := iw.out.Write(zeroBlock[:blockSize-r]); err != nil {
				return fmt.Errorf("iso: writing image: %w", err)
			}
		}
	}
	return nil
}

// errSizeChanged reports a source file whose size is not the one promised.
var errSizeChanged = errors.New("size changed")

// copyFile copies exactly f.size bytes of f.source, failing if the file is
// shorter or longer.
func (iw *imageWriter) copyFile(f *node, buf []byte) error {
	src, err := os.Open(f.source)
	if err != nil {
		return fmt.Errorf("iso: entry %q: %w", f.path, err)
	}
	defer src.Close()
	info, err := src.Stat()
	if err != nil {
		return fmt.Errorf("iso: entry %q: %w", f.path, err)
	}
	if !info.Mode().IsRegular() {
		return fmt.Errorf("iso: entry %q: %s is not a regular file", f.path, f.source)
	}
	if info.Size() != f.size {
		return fmt.Errorf("iso: entry %q: %s: %w: expected %d bytes, found %d", f.path, f.source, errSizeChanged, f.size, info.Size())
	}
	n, err := io.CopyBuffer(onlyWriter{iw.out}, io.LimitReader(src, f.size), buf)
	if err != nil {
		return fmt.Errorf("iso: entry %q: copying %s: %w", f.path, f.source, err)
	}
	if n != f.size {
		return fmt.Errorf("iso: entry %q: %s: %w: shrank to %d bytes while copying", f.path, f.source, errSizeChanged, n)
	}
	if m, _ := src.Read(buf[:1]); m > 0 {
		return fmt.Errorf("iso: entry %q: %s: %w: grew while copying", f.path, f.source, errSizeChanged)
	}
	return nil
}

// onlyWriter hides every method but Write, so io.CopyBuffer uses our buffer.
type onlyWriter struct{ w io.Writer }

func (o onlyWriter) Write(p []byte) (int, error) { return o.w.Write(p) }
