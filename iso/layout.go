package iso

import (
	"encoding/binary"
	"fmt"
	"math"
	"sort"
)

// recordFunc receives the directory records of a directory, in order.
type recordFunc func(rec []byte) error

// areaFunc receives a Rock Ridge continuation area and its offset in the
// region of continuation areas.
type areaFunc func(off int64, area []byte) error

// layout is the complete plan of an image, computed from names and sizes
// alone before a single byte is written.
type layout struct {
	root       *node
	date       [7]byte // the one time stamp of every directory record
	isoDirs    []*node // primary directories in path table order
	jolietDirs []*node // Joliet directories in path table order
	files      []*node // files with content, in path order

	isoPathTableSize    uint32
	jolietPathTableSize uint32
	isoPathL, isoPathM  uint32 // path table locations
	jolPathL, jolPathM  uint32
	ceStart             uint32 // first block of the continuation areas
	ceBlocks            uint32
	totalBlocks         uint32
}

// planLayout names every node in both trees and assigns every block.
func planLayout(root *node, opts WriteOptions) (*layout, error) {
	l := &layout{root: root, date: recordDate(opts.ModTime)}
	walkDirs(root, func(d *node) {
		assignISONames(d)
		assignJolietNames(d)
	})
	l.isoDirs = pathTableOrder(root, func(d *node) []*node { return d.isoChildren })
	l.jolietDirs = pathTableOrder(root, func(d *node) []*node { return d.jolietChildren })
	if len(l.isoDirs) > math.MaxUint16 {
		return nil, fmt.Errorf("iso: %d directories, more than a path table can number (%d)", len(l.isoDirs), math.MaxUint16)
	}
	for i, d := range l.isoDirs {
		d.isoNum = uint16(i + 1)
	}
	for i, d := range l.jolietDirs {
		d.jolietNum = uint16(i + 1)
	}
	l.files = filesInPathOrder(root)
	if err := l.assignBlocks(); err != nil {
		return nil, err
	}
	return l, nil
}

// pathTableOrder lists directories level by level, each level ordered by
// parent number and then by identifier (ECMA-119 6.9.1): a breadth-first walk
// over children in identifier order.
func pathTableOrder(root *node, children func(*node) []*node) []*node {
	dirs := []*node{root}
	for i := 0; i < len(dirs); i++ {
		for _, c := range children(dirs[i]) {
			if c.dir {
				dirs = append(dirs, c)
			}
		}
	}
	return dirs
}

// filesInPathOrder lists all files sorted by full path, byte order.
func filesInPathOrder(root *node) []*node {
	var files []*node
	walkDirs(root, func(d *node) {
		for _, c := range d.children {
			if !c.dir {
				files = append(files, c)
			}
		}
	})
	sort.Slice(files, func(i, j int) bool { return files[i].path < files[j].path })
	return files
}

// assignBlocks lays the image out: system area, descriptors, path tables,
// primary directories, continuation areas, Joliet directories, file data.
func (l *layout) assignBlocks() error {
	next := int64(firstDescriptor + 3) // PVD, Joliet SVD, terminator
	take := func(blocks int64) uint32 {
		lba := uint32(next)
		next += blocks
		return lba
	}
	l.isoPathTableSize = uint32(len(l.pathTable(l.isoDirs, false, false)))
	l.jolietPathTableSize = uint32(len(l.pathTable(l.jolietDirs, true, false)))
	isoPT, jolPT := blocksFor(int64(l.isoPathTableSize)), blocksFor(int64(l.jolietPathTableSize))
	l.isoPathL, l.isoPathM = take(isoPT), take(isoPT)
	l.jolPathL, l.jolPathM = take(jolPT), take(jolPT)

	ce := &ceAllocator{}
	for _, d := range l.isoDirs {
		blocks, err := countBlocks(func(add recordFunc) error {
			return l.primaryRecords(d, ce, add, nil)
		})
		if err != nil {
			return err
		}
		d.isoDir = extentPos{lba: take(blocks), blocks: uint32(blocks)}
	}
	l.ceBlocks = uint32(blocksFor(ce.next))
	l.ceStart = take(int64(l.ceBlocks))
	for _, d := range l.jolietDirs {
		blocks, _ := countBlocks(func(add recordFunc) error {
			return l.jolietRecords(d, add)
		})
		d.jolietDir = extentPos{lba: take(blocks), blocks: uint32(blocks)}
	}
	for _, f := range l.files {
		if f.size > 0 {
			f.dataLBA = take(blocksFor(f.size))
		}
	}
	if next > math.MaxUint32 {
		return fmt.Errorf("iso: image of %d blocks is too large", next)
	}
	l.totalBlocks = uint32(next)
	return nil
}

// countBlocks counts the blocks the records produced by emit occupy when
// packed so that no record crosses a block boundary.
func countBlocks(emit func(add recordFunc) error) (int64, error) {
	var p recordPacker
	err := emit(func(rec []byte) error { p.place(len(rec)); return nil })
	return p.blocks, err
}

// recordPacker tracks where directory records land in their blocks.
type recordPacker struct {
	used   int   // bytes used in the current block
	blocks int64 // blocks started
}

// place accounts for a record of n bytes and returns the number of padding
// bytes to emit before it.
func (p *recordPacker) place(n int) (pad int) {
	if p.blocks == 0 {
		p.blocks = 1
	}
	if p.used+n > blockSize {
		pad = blockSize - p.used
		p.blocks++
		p.used = 0
	}
	p.used += n
	return pad
}

// extents splits a file's content into the extents of its directory
// records: all but the last are maxExtentSize bytes.
func extents(size int64) []int64 {
	if size <= maxExtentSize {
		return []int64{size}
	}
	var out []int64
	for size > maxExtentSize {
		out = append(out, maxExtentSize)
		size -= maxExtentSize
	}
	return append(out, size)
}

// primaryRecords produces the directory records of dir in the primary tree,
// with Rock Ridge fields, calling add for each. Continuation areas are
// reserved from ce in a fixed order, so every pass over the directories
// agrees on their places; cont, if not nil, receives each area's offset in
// the region and its content.
func (l *layout) primaryRecords(dir *node, ce *ceAllocator, add recordFunc, cont areaFunc) error {
	parent := dir.parent
	if parent == nil {
		parent = dir
	}
	dot := systemUse{rrPX(posixDir, 2+dir.subdirs), rrTF(l.date)}
	if dir == l.root {
		dot = systemUse{suspSP(), dot[0], dot[1], suspER()}
	}
	dotdot := systemUse{rrPX(posixDir, 2+parent.subdirs), rrTF(l.date)}
	rec := dirRecord{lba: dir.isoDir.lba, size: dir.isoDir.blocks * blockSize, date: l.date, flags: flagDirectory}
	if err := l.addPrimary(rec, []byte{0}, dot, ce, add, cont); err != nil {
		return err
	}
	rec.lba, rec.size = parent.isoDir.lba, parent.isoDir.blocks*blockSize
	if err := l.addPrimary(rec, []byte{1}, dotdot, ce, add, cont); err != nil {
		return err
	}
	for _, c := range dir.isoChildren {
		if err := l.addChildRecords(c, ce, add, cont); err != nil {
			return err
		}
	}
	return nil
}

// addChildRecords adds the record(s) of one child: one for a directory, one
// per extent for a file. All records of a multi-extent file carry the same
// Rock Ridge fields and share one continuation area.
func (l *layout) addChildRecords(c *node, ce *ceAllocator, add recordFunc, cont areaFunc) error {
	if c.dir {
		su := systemUse{rrPX(posixDir, 2+c.subdirs), rrTF(l.date), rrNM(c.name)}
		rec := dirRecord{lba: c.isoDir.lba, size: c.isoDir.blocks * blockSize, date: l.date, flags: flagDirectory}
		return l.addPrimary(rec, c.isoID, su, ce, add, cont)
	}
	mode := uint32(posixFile)
	if c.exec {
		mode = posixExec
	}
	su := systemUse{rrPX(mode, 1), rrTF(l.date), rrNM(c.name)}
	field, err := l.systemUseField(len(c.isoID), su, ce, cont)
	if err != nil {
		return fmt.Errorf("iso: entry %q: %w", c.path, err)
	}
	rec := dirRecord{id: c.isoID, lba: c.dataLBA, date: l.date, su: field}
	parts := extents(c.size)
	for i, n := range parts {
		rec.size = uint32(n)
		rec.flags = 0
		if i < len(parts)-1 {
			rec.flags = flagMultiExtent
		}
		if err := add(appendDirRecord(nil, rec)); err != nil {
			return err
		}
		rec.lba += uint32(n / blockSize)
	}
	return nil
}

// addPrimary adds one record with identifier id and Rock Ridge fields su.
func (l *layout) addPrimary(rec dirRecord, id []byte, su systemUse, ce *ceAllocator, add recordFunc, cont areaFunc) error {
	field, err := l.systemUseField(len(id), su, ce, cont)
	if err != nil {
		return fmt.Errorf("iso: directory record %q: %w", id, err)
	}
	rec.id, rec.su = id, field
	return add(appendDirRecord(nil, rec))
}

// systemUseField builds the system use field of a record whose identifier
// is idLen bytes long: the entries that fit, plus a CE entry pointing to a
// continuation area for the rest. The area is reserved from ce and its
// content handed to cont (if not nil).
func (l *layout) systemUseField(idLen int, su systemUse, ce *ceAllocator, cont areaFunc) ([]byte, error) {
	inline, area := su.split(maxRecordLen - recordBaseLen(idLen))
	if area == nil {
		return inline, nil
	}
	off, err := ce.alloc(len(area))
	if err != nil {
		return nil, err
	}
	if cont != nil {
		if err := cont(off, area); err != nil {
			return nil, err
		}
	}
	lba := l.ceStart + uint32(off/blockSize)
	return append(inline, suspCE(lba, uint32(off%blockSize), uint32(len(area)))...), nil
}

// jolietRecords produces the directory records of dir in the Joliet tree.
func (l *layout) jolietRecords(dir *node, add recordFunc) error {
	parent := dir.parent
	if parent == nil {
		parent = dir
	}
	dirRec := func(id []byte, d *node) dirRecord {
		return dirRecord{id: id, lba: d.jolietDir.lba, size: d.jolietDir.blocks * blockSize, date: l.date, flags: flagDirectory}
	}
	if err := add(appendDirRecord(nil, dirRec([]byte{0}, dir))); err != nil {
		return err
	}
	if err := add(appendDirRecord(nil, dirRec([]byte{1}, parent))); err != nil {
		return err
	}
	for _, c := range dir.jolietChildren {
		if c.dir {
			if err := add(appendDirRecord(nil, dirRec(c.jolietID, c))); err != nil {
				return err
			}
			continue
		}
		lba := c.dataLBA
		parts := extents(c.size)
		for i, n := range parts {
			rec := dirRecord{id: c.jolietID, lba: lba, size: uint32(n), date: l.date}
			if i < len(parts)-1 {
				rec.flags = flagMultiExtent
			}
			if err := add(appendDirRecord(nil, rec)); err != nil {
				return err
			}
			lba += uint32(n / blockSize)
		}
	}
	return nil
}

// pathTable encodes the path table of a tree (ECMA-119 9.4), little-endian
// (type L) or big-endian (type M).
func (l *layout) pathTable(dirs []*node, joliet, bigEndian bool) []byte {
	var order binary.ByteOrder = binary.LittleEndian
	if bigEndian {
		order = binary.BigEndian
	}
	var b []byte
	for _, d := range dirs {
		id, lba, parentNum := d.isoID, d.isoDir.lba, uint16(1)
		if joliet {
			id, lba = d.jolietID, d.jolietDir.lba
		}
		if d.parent != nil {
			parentNum = d.parent.isoNum
			if joliet {
				parentNum = d.parent.jolietNum
			}
		}
		if d == l.root {
			id = []byte{0}
		}
		rec := make([]byte, 8+len(id)+len(id)%2)
		rec[0] = byte(len(id))
		order.PutUint32(rec[2:], lba)
		order.PutUint16(rec[6:], parentNum)
		copy(rec[8:], id)
		b = append(b, rec...)
	}
	return b
}
