package iso

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"sort"
	"strings"
	"time"
	"unicode/utf16"
)

// Strict reading: an image that several readers could read differently is
// refused. Open picks one tree (Rock Ridge, else Joliet, else the primary
// names); xorriso, bsdtar, 7z, isoinfo and the Linux kernel each have their
// own rules for which tree, which descriptor and which records count. An
// attacker who edits a signed image can therefore show our reader the
// signed files and another reader something else. OpenStrict reads every
// structure any of them might use and accepts the image only when all agree
// and nothing else is on it.

// StrictOptions bound a strict open.
type StrictOptions struct {
	// MaxEntries caps the entries (files and directories, a multi-extent
	// file counting once) of each tree; 0 means the reader's own limit.
	// A caller that knows how many files to expect (a signed manifest)
	// passes that number plus a margin, so a hostile image cannot make the
	// reader hold more than the signer listed.
	MaxEntries int
}

// StrictError is a refusal by OpenStrict: which structure (Tree: "primary",
// "rock ridge", "joliet", "path table", "volume descriptors", "el torito",
// "layout"), which path in it, if any, and what is wrong.
type StrictError struct {
	Tree   string
	Path   string // "/"-rooted path in Tree, or empty
	Reason string
}

func (e *StrictError) Error() string {
	if e.Path == "" {
		return fmt.Sprintf("iso: inconsistent image: %s: %s", e.Tree, e.Reason)
	}
	return fmt.Sprintf("iso: inconsistent image: %s %s: %s", e.Tree, e.Path, e.Reason)
}

// ErrInconsistent is wrapped by every StrictError.
var ErrInconsistent = errors.New("iso: inconsistent image")

// Unwrap makes errors.Is(err, ErrInconsistent) hold.
func (e *StrictError) Unwrap() error { return ErrInconsistent }

func refuse(tree, p, format string, args ...any) error {
	return &StrictError{Tree: tree, Path: p, Reason: fmt.Sprintf(format, args...)}
}

// Tree names used in errors.
const (
	treePrimary   = "primary"
	treeRockRidge = "rock ridge"
	treeJoliet    = "joliet"
	treePathTable = "path table"
	treeVD        = "volume descriptors"
	treeElTorito  = "el torito"
	treeLayout    = "layout"
)

// volume is one directory hierarchy announced by a volume descriptor.
type volume struct {
	name       string // treePrimary or treeJoliet
	desc       []byte
	root       rawRecord
	ptSize     uint32
	ptL, ptM   uint32 // mandatory path tables
	ptOL, ptOM uint32 // optional ones (0: none)
}

// descriptorSet is what the volume descriptors of an image announce.
type descriptorSet struct {
	primary, joliet *volume
	bootCatalog     uint32 // El Torito boot catalog block; 0: none
	end             int64  // block after the terminator
}

// region is a claimed range of the image, in bytes.
type region struct {
	start, end int64
	what       string
	file       bool
}

// sNode is one entry of a tree read strictly.
type sNode struct {
	name     string // Rock Ridge, Joliet or primary name
	pname    string // primary name (version stripped), primary tree only
	dir      bool
	exts     []Extent
	size     int64
	children []*sNode
	lba      uint32 // directory extent
	dsize    uint32
	id       []byte // raw identifier
	minData  int64  // smallest data offset in the subtree, -1 if none
	mode     fs.FileMode
	hasMode  bool
	modTime  time.Time
}

// strictReader reads one image strictly.
type strictReader struct {
	r          io.ReaderAt
	size       int64
	maxEntries int
	regions    []region
	seenDirs   map[uint32]bool
	dirBudget  int64
	ceBudget   int64
}

// OpenStrict is Open for images from outside that will also be read by
// other tools: it reads the primary tree with its Rock Ridge names, the
// Joliet tree, the L and M path tables of both and every volume
// descriptor, and refuses the image (with a *StrictError naming the tree,
// the path and the field) unless
//
//   - there is exactly one primary volume descriptor, at most one Joliet
//     supplementary descriptor, at most one El Torito boot record and no
//     other descriptor;
//   - Rock Ridge is announced unambiguously (SP and ER in the root),
//     relocates nothing and transforms no content (ZF, SF); entries are
//     directories and regular files;
//   - the Joliet tree has the same shape as the Rock Ridge tree, each file
//     with the same extents and size, and every Joliet name that is also a
//     Rock Ridge name in its directory names the same entry (as must every
//     Joliet name that could carry the Rock Ridge name whole);
//   - no primary name (as is, or lower-cased as Linux shows it without
//     Rock Ridge) names another entry than its own record's Rock Ridge name;
//   - every path table lists exactly the directories of its tree;
//   - file extents overlap neither each other nor any metadata, and every
//     block that nothing claims is zero: the system area too (an MBR or
//     GPT would show partitioning readers something else), and whatever
//     lies beyond the volume or between its structures (no hidden second
//     file system, UDF bridge or earlier session).
//
// The image it returns uses Rock Ridge names, as Open does.
func OpenStrict(r io.ReaderAt, size int64, opts StrictOptions) (*Image, error) {
	s := &strictReader{r: r, size: size, maxEntries: opts.MaxEntries, seenDirs: map[uint32]bool{}, dirBudget: size, ceBudget: size + 1<<20}
	if s.maxEntries <= 0 || s.maxEntries > maxEntries {
		s.maxEntries = maxEntries
	}
	ds, err := s.readDescriptors()
	if err != nil {
		return nil, err
	}
	skip, err := s.checkRockRidge(ds.primary.root)
	if err != nil {
		return nil, err
	}
	rr, err := s.readTree(ds.primary, skip)
	if err != nil {
		return nil, err
	}
	if err := checkPrimaryNames(rr, "/"); err != nil {
		return nil, err
	}
	if err := s.checkPathTables(ds.primary, rr); err != nil {
		return nil, err
	}
	if ds.joliet != nil {
		jt, err := s.readTree(ds.joliet, 0)
		if err != nil {
			return nil, err
		}
		if err := compareJoliet(rr, jt, "/"); err != nil {
			return nil, err
		}
		if err := s.checkPathTables(ds.joliet, jt); err != nil {
			return nil, err
		}
	}
	var files []FileInfo
	collectFiles(rr, "", &files)
	for _, f := range files {
		for _, e := range f.Extents {
			if e.Length > 0 {
				s.regions = append(s.regions, region{e.Offset, e.Offset + e.Length, "file /" + f.Path, true})
			}
		}
	}
	if ds.bootCatalog != 0 {
		if err := s.checkElTorito(ds.bootCatalog, files); err != nil {
			return nil, err
		}
	}
	if err := s.checkLayout(); err != nil {
		return nil, err
	}
	return newImage(r, size, files), nil
}

// readDescriptors reads the volume descriptor set strictly.
func (s *strictReader) readDescriptors() (*descriptorSet, error) {
	if s.size < (firstDescriptor+2)*blockSize {
		return nil, refuse(treeVD, "", "image of %d bytes is too small", s.size)
	}
	ds := &descriptorSet{}
	for i := int64(0); ; i++ {
		blk := firstDescriptor + i
		if i >= maxDescriptors || (blk+1)*blockSize > s.size {
			return nil, refuse(treeVD, "", "no terminator among the first %d descriptors", i)
		}
		d := make([]byte, blockSize)
		if err := readFullAt(s.r, d, blk*blockSize); err != nil {
			return nil, fmt.Errorf("iso: reading volume descriptor %d: %w", i, err)
		}
		if string(d[1:6]) != standardID {
			return nil, refuse(treeVD, "", "block %d: no terminator before a block that is not a volume descriptor", blk)
		}
		switch {
		case d[0] == descTerminator:
			s.regions = append(s.regions, region{firstDescriptor * blockSize, (blk + 1) * blockSize, "volume descriptors", false})
			ds.end = blk + 1
			if ds.primary == nil {
				return nil, refuse(treeVD, "", "no primary volume descriptor")
			}
			return ds, nil
		case d[6] != 1:
			return nil, refuse(treeVD, "", "block %d: descriptor of type %d has version %d", blk, d[0], d[6])
		case d[0] == descPrimary:
			if ds.primary != nil {
				return nil, refuse(treeVD, "", "block %d: a second primary volume descriptor", blk)
			}
			v, err := s.volume(treePrimary, d, blk)
			if err != nil {
				return nil, err
			}
			ds.primary = v
		case d[0] == descSupplementary:
			if !isJolietEscape(d[88:120]) {
				return nil, refuse(treeVD, "", "block %d: supplementary volume descriptor that is not Joliet", blk)
			}
			if ds.joliet != nil {
				return nil, refuse(treeVD, "", "block %d: a second Joliet volume descriptor", blk)
			}
			v, err := s.volume(treeJoliet, d, blk)
			if err != nil {
				return nil, err
			}
			ds.joliet = v
		case d[0] == 0:
			if !bytes.HasPrefix(d[7:39], []byte("EL TORITO SPECIFICATION")) {
				return nil, refuse(treeVD, "", "block %d: boot record that is not El Torito", blk)
			}
			if ds.bootCatalog != 0 {
				return nil, refuse(treeVD, "", "block %d: a second El Torito boot record", blk)
			}
			if ds.bootCatalog = le32(d[71:]); ds.bootCatalog == 0 {
				return nil, refuse(treeElTorito, "", "boot catalog at block 0")
			}
		default:
			return nil, refuse(treeVD, "", "block %d: volume descriptor of type %d", blk, d[0])
		}
	}
}

// volume decodes the fields of a primary or Joliet descriptor.
func (s *strictReader) volume(name string, d []byte, blk int64) (*volume, error) {
	if bs := binary.LittleEndian.Uint16(d[128:]); bs != blockSize || binary.BigEndian.Uint16(d[130:]) != bs {
		return nil, refuse(treeVD, "", "%s descriptor (block %d): logical block size %d", name, blk, bs)
	}
	if n := int64(le32(d[80:])); n*blockSize > s.size || n != int64(binary.BigEndian.Uint32(d[84:])) {
		return nil, refuse(treeVD, "", "%s descriptor (block %d): volume space of %d blocks does not fit the image of %d bytes", name, blk, n, s.size)
	}
	if !bothEndian32(d[132:]) {
		return nil, refuse(treeVD, "", "%s descriptor: path table size differs in its two byte orders", name)
	}
	root, err := parseRecord(d[156 : 156+rootRecordLen])
	if err != nil {
		return nil, refuse(treeVD, "", "%s descriptor: root directory record: %v", name, err)
	}
	if !bothEndian32(d[156+2:]) || !bothEndian32(d[156+10:]) || d[156+1] != 0 {
		return nil, refuse(treeVD, "", "%s descriptor: root directory record: extent fields disagree", name)
	}
	return &volume{
		name: name, desc: d, root: root, ptSize: le32(d[132:]),
		ptL: le32(d[140:]), ptOL: le32(d[144:]),
		ptM: binary.BigEndian.Uint32(d[148:]), ptOM: binary.BigEndian.Uint32(d[152:]),
	}, nil
}

// bothEndian32 reports whether the two halves of a both-byte-order number
// agree.
func bothEndian32(b []byte) bool {
	return binary.LittleEndian.Uint32(b) == binary.BigEndian.Uint32(b[4:])
}

// checkRockRidge requires Rock Ridge to be announced so that every reader
// agrees it is there: SP and an ER naming RRIP in the root's "." record.
// It returns SP's skip count.
func (s *strictReader) checkRockRidge(root rawRecord) (int, error) {
	if root.size == 0 || int64(root.lba)*blockSize+blockSize > s.size {
		return 0, refuse(treePrimary, "/", "root directory at block %d (%d bytes) is empty or outside the image", root.lba, root.size)
	}
	block := make([]byte, blockSize)
	if err := readFullAt(s.r, block, int64(root.lba)*blockSize); err != nil {
		return 0, fmt.Errorf("iso: reading root directory: %w", err)
	}
	n := int(block[0])
	if n == 0 {
		return 0, refuse(treePrimary, "/", "root directory has no \".\" record")
	}
	rec, err := parseRecord(block[:n])
	if err != nil {
		return 0, refuse(treePrimary, "/", "root \".\" record: %v", err)
	}
	if len(rec.su) < 7 || string(rec.su[:2]) != "SP" {
		return 0, refuse(treeRockRidge, "/", "no SUSP SP entry in the root's \".\" record: strict reading needs Rock Ridge")
	}
	info, err := parseSystemUse(rec.su, s.readCE)
	if err != nil {
		return 0, refuse(treeRockRidge, "/", "root \".\" record: %v", err)
	}
	if !info.hasSP || !info.hasER {
		return 0, refuse(treeRockRidge, "/", "SP without an ER entry naming Rock Ridge: readers disagree on whether Rock Ridge is present")
	}
	return int(info.skip), nil
}

// readCE reads a continuation area and claims it.
func (s *strictReader) readCE(lba, off, length uint32) ([]byte, error) {
	start := int64(lba)*blockSize + int64(off)
	if length > maxCEAreaSize || int64(off)+int64(length) > blockSize || start+int64(length) > s.size {
		return nil, fmt.Errorf("continuation area of %d bytes at block %d offset %d is outside the image or crosses a block", length, lba, off)
	}
	if s.ceBudget -= int64(length); s.ceBudget < 0 {
		return nil, errors.New("too much continuation area data")
	}
	b := make([]byte, length)
	if err := readFullAt(s.r, b, start); err != nil {
		return nil, fmt.Errorf("reading continuation area: %w", err)
	}
	blk := int64(lba) * blockSize
	s.regions = append(s.regions, region{blk, blk + blockSize, "rock ridge continuation area", false})
	return b, nil
}

// treeWalk is the state of reading one tree.
type treeWalk struct {
	s       *strictReader
	v       *volume
	rr      bool // primary tree: Rock Ridge names
	skip    int
	entries int
	extents int64
	// keep, if set, is the only names to hold on to (OpenRoot): other
	// entries are counted and checked, then dropped.
	keep map[string]bool
}

// readTree reads the whole tree of a volume, breadth first. For the
// primary volume it reads the Rock Ridge names as well.
func (s *strictReader) readTree(v *volume, skip int) (*sNode, error) {
	w := &treeWalk{s: s, v: v, rr: v.name == treePrimary, skip: skip}
	root := &sNode{dir: true, lba: v.root.lba, dsize: v.root.size}
	type item struct {
		n      *sNode
		parent *sNode
		path   string
		depth  int
	}
	queue := []item{{root, root, "/", 0}}
	for len(queue) > 0 {
		it := queue[0]
		queue = queue[1:]
		if it.depth > maxDepth {
			return nil, refuse(w.treeName(), it.path, "directories nested deeper than %d", maxDepth)
		}
		if err := w.readDir(it.n, it.parent, it.path); err != nil {
			return nil, err
		}
		for _, c := range it.n.children {
			if c.dir {
				queue = append(queue, item{c, it.n, path.Join(it.path, c.name), it.depth + 1})
			}
		}
	}
	setMinData(root)
	return root, nil
}

func (w *treeWalk) treeName() string {
	if w.rr {
		return treeRockRidge
	}
	return w.v.name
}

// readDir reads one directory's records into d.children.
func (w *treeWalk) readDir(d, parent *sNode, p string) error {
	s := w.s
	tree := w.treeName()
	if s.seenDirs[d.lba] {
		return refuse(tree, p, "directory extent at block %d is used twice", d.lba)
	}
	s.seenDirs[d.lba] = true
	start := int64(d.lba) * blockSize
	blocks := blocksFor(int64(d.dsize))
	if d.dsize == 0 || start+blocks*blockSize > s.size {
		return refuse(tree, p, "directory extent at block %d (%d bytes) is empty or outside the image", d.lba, d.dsize)
	}
	if s.dirBudget -= blocks * blockSize; s.dirBudget < 0 {
		return refuse(tree, p, "directories add up to more than the image size")
	}
	s.regions = append(s.regions, region{start, start + blocks*blockSize, tree + " directory " + p, false})
	block := make([]byte, blockSize)
	names := map[string]bool{}
	lower := map[string]bool{}
	var pending *sNode // multi-extent file awaiting more records
	recNum := 0
	for i := int64(0); i < blocks; i++ {
		limit := min(int64(d.dsize)-i*blockSize, blockSize)
		if err := readFullAt(s.r, block[:limit], start+i*blockSize); err != nil {
			return fmt.Errorf("iso: reading directory %s: %w", p, err)
		}
		for off := 0; off < int(limit); {
			n := int(block[off])
			if n == 0 {
				break
			}
			if off+n > int(limit) {
				return refuse(tree, p, "directory record at block %d offset %d crosses the block boundary", int64(d.lba)+i, off)
			}
			raw := block[off : off+n]
			rec, err := parseRecord(raw)
			if err != nil {
				return refuse(tree, p, "record at block %d offset %d: %v", int64(d.lba)+i, off, err)
			}
			if raw[1] != 0 || !bothEndian32(raw[2:]) || !bothEndian32(raw[10:]) {
				return refuse(tree, p, "record %q: extended attribute record or extent fields that disagree", rec.id)
			}
			off += n
			recNum++
			if recNum <= 2 {
				if err := w.checkDots(rec, recNum, d, parent, p); err != nil {
					return err
				}
				continue
			}
			if isSelfOrParent(rec.id) {
				return refuse(tree, p, "a \".\" or \"..\" record after the first two")
			}
			if rec.flags&(flagAssociated|flagHidden) != 0 {
				return refuse(tree, p, "record %q is associated or hidden: readers disagree on whether to show it", rec.id)
			}
			if pending != nil {
				if w.rr && len(rec.su) > w.skip {
					// Read only to claim the continuation areas.
					if _, err := parseSystemUse(rec.su[w.skip:], s.readCE); err != nil {
						return refuse(treeRockRidge, path.Join(p, pending.name), "%v", err)
					}
				}
				if err := w.addExtent(pending, rec, p); err != nil {
					return err
				}
				if rec.flags&flagMultiExtent == 0 {
					pending = nil
				}
				continue
			}
			c, err := w.entry(rec, p)
			if err != nil {
				return err
			}
			if w.entries++; w.entries > s.maxEntries {
				return refuse(tree, "", "more than %d entries", s.maxEntries)
			}
			if w.keep != nil && !w.keep[c.name] {
				if rec.flags&flagMultiExtent != 0 {
					pending = c // its further extents are consumed, then dropped
				}
				continue
			}
			if names[c.name] {
				return refuse(tree, path.Join(p, c.name), "duplicate name")
			}
			names[c.name] = true
			if w.rr {
				key := strings.ToLower(c.pname)
				if lower[key] {
					return refuse(treePrimary, path.Join(p, c.pname), "two primary names that differ only in case")
				}
				lower[key] = true
			}
			d.children = append(d.children, c)
			if rec.flags&flagMultiExtent != 0 {
				if c.dir {
					return refuse(tree, path.Join(p, c.name), "multi-extent directory")
				}
				pending = c
			}
		}
	}
	if recNum < 2 {
		return refuse(tree, p, "directory lacks its \".\" and \"..\" records")
	}
	if pending != nil {
		return refuse(tree, path.Join(p, pending.name), "multi-extent file has no last extent")
	}
	return nil
}

// checkDots requires "." to describe the directory itself and ".." its
// parent, as readers that take either record's extent expect.
func (w *treeWalk) checkDots(rec rawRecord, num int, d, parent *sNode, p string) error {
	want, what := d, "."
	if num == 2 {
		want, what = parent, ".."
	}
	if len(rec.id) != 1 || rec.id[0] != byte(num-1) {
		return refuse(w.treeName(), p, "record %d is %q, not %q", num, rec.id, what)
	}
	// libisofs points a Joliet subdirectory's ".." at the directory
	// itself; readers take a directory's parent from the walk, not from
	// "..", so either is accepted there.
	if num == 2 && !w.rr && rec.lba == d.lba && rec.size == d.dsize {
		return nil
	}
	if rec.flags&flagDirectory == 0 || rec.lba != want.lba || rec.size != want.dsize {
		return refuse(w.treeName(), p, "%q record names block %d (%d bytes), the directory is at block %d (%d bytes)", what, rec.lba, rec.size, want.lba, want.dsize)
	}
	return nil
}

// entry builds the node of a record.
func (w *treeWalk) entry(rec rawRecord, p string) (*sNode, error) {
	isDir := rec.flags&flagDirectory != 0
	c := &sNode{dir: isDir, id: bytes.Clone(rec.id), minData: -1, modTime: parseRecordDate(rec.date)}
	tree := w.treeName()
	switch {
	case w.rr:
		c.pname = primaryName(rec.id, isDir)
		c.name = c.pname
		var info rrInfo
		if len(rec.su) > w.skip {
			var err error
			if info, err = parseSystemUse(rec.su[w.skip:], w.s.readCE); err != nil {
				return nil, refuse(treeRockRidge, path.Join(p, c.pname), "%v", err)
			}
		}
		if info.relocated || info.hasChild || info.hasParent {
			return nil, refuse(treeRockRidge, path.Join(p, c.pname), "directory relocation (CL, PL or RE) is not accepted")
		}
		if info.hasName {
			c.name = string(info.name)
		}
		if info.transform != "" {
			return nil, refuse(treeRockRidge, path.Join(p, c.name), "%s entry: readers that honour it (xorriso, Linux) would not read the stored bytes", info.transform)
		}
		if info.isLink {
			return nil, refuse(treeRockRidge, path.Join(p, c.name), "symbolic link to %q: only directories and regular files are accepted", info.target)
		}
		if info.hasMode {
			c.mode, c.hasMode = posixToFileMode(info.mode), true
			if t := c.mode.Type(); !(t == 0 && !isDir || t == fs.ModeDir && isDir) {
				return nil, refuse(treeRockRidge, path.Join(p, c.name), "PX file type %v does not match the record's directory flag (%v)", t, isDir)
			}
		}
	case w.v.name == treeJoliet:
		c.name = jolietName(rec.id, isDir)
	default:
		c.name = primaryName(rec.id, isDir)
	}
	if err := checkName(c.name); err != nil {
		return nil, refuse(tree, p, "%v", err)
	}
	if isDir {
		c.lba, c.dsize = rec.lba, rec.size
		return c, nil
	}
	if err := w.addExtent(c, rec, p); err != nil {
		return nil, err
	}
	return c, nil
}

// addExtent adds a record's extent to file c.
func (w *treeWalk) addExtent(c *sNode, rec rawRecord, p string) error {
	tree := w.treeName()
	if c.dir || rec.flags&flagDirectory != 0 || !bytes.Equal(rec.id, c.id) && len(c.exts) > 0 {
		return refuse(tree, path.Join(p, c.name), "multi-extent file is interrupted by %q", rec.id)
	}
	ext := Extent{Offset: int64(rec.lba) * blockSize, Length: int64(rec.size)}
	if ext.Length > 0 && ext.Offset+ext.Length > w.s.size {
		return refuse(tree, path.Join(p, c.name), "extent at block %d (%d bytes) is outside the image", rec.lba, rec.size)
	}
	if len(c.exts) > 0 && c.exts[len(c.exts)-1].Length%blockSize != 0 {
		return refuse(tree, path.Join(p, c.name), "a multi-extent file's extent that is not the last is not a whole number of blocks")
	}
	if w.extents++; w.extents > w.s.size/blockSize+int64(w.s.maxEntries) {
		return refuse(tree, path.Join(p, c.name), "more extents than the image has blocks")
	}
	c.exts = append(c.exts, ext)
	c.size += ext.Length
	return nil
}

// setMinData computes each node's smallest data offset, bottom up.
func setMinData(n *sNode) int64 {
	n.minData = -1
	if !n.dir {
		for _, e := range n.exts {
			if e.Length > 0 && (n.minData < 0 || e.Offset < n.minData) {
				n.minData = e.Offset
			}
		}
		return n.minData
	}
	for _, c := range n.children {
		if m := setMinData(c); m >= 0 && (n.minData < 0 || m < n.minData) {
			n.minData = m
		}
	}
	return n.minData
}

// checkPrimaryNames refuses primary names that a reader without Rock Ridge
// would show for another entry than their own record's: the name as is, or
// lower-cased (Linux, mounting without Rock Ridge).
func checkPrimaryNames(d *sNode, p string) error {
	byName := make(map[string]*sNode, len(d.children))
	for _, c := range d.children {
		byName[c.name] = c
	}
	for _, c := range d.children {
		for _, alias := range []string{c.pname, strings.ToLower(c.pname)} {
			if other, ok := byName[alias]; ok && other != c {
				return refuse(treePrimary, path.Join(p, c.pname), "primary name shows another entry than Rock Ridge %s", path.Join(p, other.name))
			}
		}
		if c.dir {
			if err := checkPrimaryNames(c, path.Join(p, c.name)); err != nil {
				return err
			}
		}
	}
	return nil
}

// compareJoliet requires the Joliet directory j to hold the same entries
// as the Rock Ridge directory r: paired first by name, then by data, then
// (entries without data) in name order; paired entries must be of the same
// kind with the same extents, and a Joliet name may differ from its Rock
// Ridge name only where Joliet cannot carry that name whole.
func compareJoliet(r, j *sNode, p string) error {
	if len(r.children) != len(j.children) {
		return refuse(treeJoliet, p, "%d entries, rock ridge has %d", len(j.children), len(r.children))
	}
	pair := make(map[*sNode]*sNode, len(j.children)) // joliet -> rock ridge
	taken := make(map[*sNode]bool, len(r.children))
	byName := make(map[string]*sNode, len(r.children))
	byData := make(map[int64]*sNode)
	for _, c := range r.children {
		byName[c.name] = c
		if c.minData >= 0 {
			byData[c.minData] = c
		}
	}
	var jRest []*sNode
	for _, c := range j.children {
		if rc, ok := byName[c.name]; ok {
			pair[c], taken[rc] = rc, true
		}
	}
	for _, c := range j.children {
		if pair[c] != nil {
			continue
		}
		if rc, ok := byData[c.minData]; ok && c.minData >= 0 && !taken[rc] {
			pair[c], taken[rc] = rc, true
			continue
		}
		jRest = append(jRest, c)
	}
	var rRest []*sNode
	for _, c := range r.children {
		if !taken[c] {
			rRest = append(rRest, c)
		}
	}
	if len(rRest) != len(jRest) {
		return refuse(treeJoliet, p, "entries do not pair with rock ridge's")
	}
	sort.Slice(jRest, func(a, b int) bool { return jRest[a].name < jRest[b].name })
	sort.Slice(rRest, func(a, b int) bool { return rRest[a].name < rRest[b].name })
	for i, c := range jRest {
		pair[c] = rRest[i]
	}
	for _, c := range j.children {
		rc := pair[c]
		jp := path.Join(p, c.name)
		switch {
		case c.dir != rc.dir:
			return refuse(treeJoliet, jp, "directory=%v, rock ridge %s directory=%v", c.dir, path.Join(p, rc.name), rc.dir)
		case c.name != rc.name && jolietCarries(rc.name):
			return refuse(treeJoliet, jp, "stands for rock ridge %s, whose name Joliet can carry whole", path.Join(p, rc.name))
		case !c.dir && !sameExtents(c.exts, rc.exts):
			return refuse(treeJoliet, jp, "extents %v (size %d), rock ridge %s has %v (size %d)", c.exts, c.size, path.Join(p, rc.name), rc.exts, rc.size)
		case c.dir:
			if err := compareJoliet(rc, c, path.Join(p, rc.name)); err != nil {
				return err
			}
		}
	}
	return nil
}

// jolietCarries reports whether a Joliet identifier can hold name exactly.
func jolietCarries(name string) bool {
	chars := jolietChars(name)
	return len(chars) <= maxJolietChars && string(utf16.Decode(chars)) == name
}

// sameExtents compares two extent lists; empty extents match wherever they
// are.
func sameExtents(a, b []Extent) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Length != b[i].Length || a[i].Length > 0 && a[i].Offset != b[i].Offset {
			return false
		}
	}
	return true
}

// checkPathTables requires every path table of v to list exactly the
// directories of tree, each under its parent with its identifier and extent.
func (s *strictReader) checkPathTables(v *volume, tree *sNode) error {
	var dirs int
	var count func(*sNode)
	count = func(n *sNode) {
		dirs++
		for _, c := range n.children {
			if c.dir {
				count(c)
			}
		}
	}
	count(tree)
	if int64(v.ptSize) > int64(dirs)*(8+256) || int64(v.ptSize) > s.size {
		return refuse(treePathTable, "", "%s path table of %d bytes for %d directories", v.name, v.ptSize, dirs)
	}
	tables := []struct {
		lba      uint32
		big, opt bool
	}{{v.ptL, false, false}, {v.ptM, true, false}, {v.ptOL, false, true}, {v.ptOM, true, true}}
	for _, t := range tables {
		if t.opt && t.lba == 0 {
			continue
		}
		kind := "L"
		if t.big {
			kind = "M"
		}
		name := fmt.Sprintf("%s %s table at block %d", v.name, kind, t.lba)
		start := int64(t.lba) * blockSize
		if t.lba == 0 || start+int64(v.ptSize) > s.size {
			return refuse(treePathTable, "", "%s: outside the image", name)
		}
		b := make([]byte, v.ptSize)
		if err := readFullAt(s.r, b, start); err != nil {
			return fmt.Errorf("iso: reading %s: %w", name, err)
		}
		s.regions = append(s.regions, region{start, start + blocksFor(int64(v.ptSize))*blockSize, name, false})
		if err := checkPathTable(b, t.big, tree, dirs); err != nil {
			return refuse(treePathTable, "", "%s: %v", name, err)
		}
	}
	return nil
}

// checkPathTable checks one path table against the directories of tree.
func checkPathTable(b []byte, big bool, tree *sNode, dirs int) error {
	var order binary.ByteOrder = binary.LittleEndian
	if big {
		order = binary.BigEndian
	}
	var listed []*sNode
	seen := map[*sNode]bool{}
	for off := 0; off < len(b); {
		if off+8 > len(b) {
			return fmt.Errorf("entry at offset %d is cut short", off)
		}
		idLen := int(b[off])
		if idLen == 0 || off+8+idLen > len(b) {
			return fmt.Errorf("entry at offset %d has an identifier of %d bytes", off, idLen)
		}
		if b[off+1] != 0 {
			return fmt.Errorf("entry at offset %d has an extended attribute record", off)
		}
		lba, parent, id := order.Uint32(b[off+2:]), int(order.Uint16(b[off+6:])), b[off+8:off+8+idLen]
		off += 8 + idLen + idLen%2
		var n *sNode
		if len(listed) == 0 {
			if parent != 1 || idLen != 1 || id[0] != 0 {
				return errors.New("the first entry is not the root")
			}
			n = tree
		} else {
			if parent < 1 || parent > len(listed) {
				return fmt.Errorf("entry %d names parent %d, not an earlier entry", len(listed)+1, parent)
			}
			for _, c := range listed[parent-1].children {
				if c.dir && bytes.Equal(c.id, id) {
					n = c
					break
				}
			}
			if n == nil {
				return fmt.Errorf("entry %d (%q under entry %d) is no directory of the tree", len(listed)+1, id, parent)
			}
		}
		if seen[n] {
			return fmt.Errorf("entry %d lists a directory twice", len(listed)+1)
		}
		if n.lba != lba {
			return fmt.Errorf("entry %d (%q) names block %d, the directory is at block %d", len(listed)+1, id, lba, n.lba)
		}
		seen[n] = true
		listed = append(listed, n)
	}
	if len(listed) != dirs {
		return fmt.Errorf("lists %d directories, the tree has %d", len(listed), dirs)
	}
	return nil
}

// checkElTorito claims the boot catalog and requires every boot image to
// start where a listed file does.
func (s *strictReader) checkElTorito(catalog uint32, files []FileInfo) error {
	start := int64(catalog) * blockSize
	if start+blockSize > s.size {
		return refuse(treeElTorito, "", "boot catalog at block %d is outside the image", catalog)
	}
	b := make([]byte, blockSize)
	if err := readFullAt(s.r, b, start); err != nil {
		return fmt.Errorf("iso: reading the boot catalog: %w", err)
	}
	if b[0] != 1 || b[30] != 0x55 || b[31] != 0xAA {
		return refuse(treeElTorito, "", "boot catalog at block %d has no validation entry", catalog)
	}
	fileAt := map[int64]bool{}
	for _, f := range files {
		if len(f.Extents) > 0 && f.Size > 0 {
			fileAt[f.Extents[0].Offset] = true
		}
	}
	if !fileAt[start] {
		s.regions = append(s.regions, region{start, start + blockSize, "el torito boot catalog", false})
	}
	// Entries follow the validation entry: the default entry, then
	// section headers (0x90, 0x91) with their entries and extensions
	// (0x44). A bootable entry (0x88) names its image's first block.
	for off := 32; off+32 <= len(b); off += 32 {
		e := b[off : off+32]
		switch e[0] {
		case 0x88:
			if rba := le32(e[8:]); !fileAt[int64(rba)*blockSize] {
				return refuse(treeElTorito, "", "boot image at block %d is not a listed file", rba)
			}
		case 0x00, 0x90, 0x91, 0x44:
		default:
			return nil
		}
	}
	return nil
}

// checkLayout refuses file extents that overlap each other or metadata,
// and unclaimed blocks that are not zero.
func (s *strictReader) checkLayout() error {
	rs := s.regions
	sort.Slice(rs, func(i, j int) bool {
		if rs[i].start != rs[j].start {
			return rs[i].start < rs[j].start
		}
		return rs[i].end < rs[j].end
	})
	var prev *region
	var covered int64 // end of the claimed bytes so far
	var gaps [][2]int64
	for i := range rs {
		r := &rs[i]
		if prev != nil && r.start < prev.end && (r.file || prev.file) {
			// Continuation areas share blocks, and so do identical
			// claims; a file shares nothing.
			if !(r.start == prev.start && r.end == prev.end && !r.file && !prev.file) {
				return refuse(treeLayout, "", "%s (bytes %d-%d) overlaps %s (bytes %d-%d)", r.what, r.start, r.end, prev.what, prev.start, prev.end)
			}
		}
		if blk := r.start / blockSize * blockSize; blk > covered {
			gaps = append(gaps, [2]int64{covered, blk})
		}
		if end := blocksFor(r.end) * blockSize; end > covered {
			covered = end
			prev = r
		}
	}
	if covered < s.size {
		gaps = append(gaps, [2]int64{covered, s.size})
	}
	buf := make([]byte, 64<<10)
	for _, g := range gaps {
		for off := g[0]; off < g[1]; {
			n := min(int64(len(buf)), g[1]-off)
			if err := readFullAt(s.r, buf[:n], off); err != nil {
				return fmt.Errorf("iso: reading unclaimed bytes at %d: %w", off, err)
			}
			for i, c := range buf[:n] {
				if c != 0 {
					return refuse(treeLayout, "", "block %d is claimed by no descriptor, directory, path table or file but is not zero", (off+int64(i))/blockSize)
				}
			}
			off += n
		}
	}
	return nil
}

// collectFiles turns a tree into FileInfos, as Open would report them.
func collectFiles(n *sNode, dir string, out *[]FileInfo) {
	for _, c := range n.children {
		p := path.Join(dir, c.name)
		fi := FileInfo{Path: p, Size: c.size, Extents: c.exts, ModTime: c.modTime}
		fi.Mode = entryMode(c.dir, c.mode, c.hasMode, false)
		*out = append(*out, fi)
		if c.dir {
			collectFiles(c, p, out)
		}
	}
}

// OpenRoot reads only the root directory of the Rock Ridge tree, after the
// volume descriptor and Rock Ridge checks of OpenStrict, and returns an
// image of the root entries named in names, nothing else. It is for
// reading a bundle's manifest and signature before anything is trusted:
// its memory does not grow with the number of entries on the image, and a
// file's extents may not overlap each other, so no file is larger than the
// image. The full check (OpenStrict, capped by what the verified manifest
// lists) comes after.
func OpenRoot(r io.ReaderAt, size int64, names ...string) (*Image, error) {
	s := &strictReader{r: r, size: size, maxEntries: maxEntries, seenDirs: map[uint32]bool{}, dirBudget: size, ceBudget: size + 1<<20}
	ds, err := s.readDescriptors()
	if err != nil {
		return nil, err
	}
	skip, err := s.checkRockRidge(ds.primary.root)
	if err != nil {
		return nil, err
	}
	w := &treeWalk{s: s, v: ds.primary, rr: true, skip: skip, keep: map[string]bool{}}
	for _, n := range names {
		w.keep[n] = true
	}
	root := &sNode{dir: true, lba: ds.primary.root.lba, dsize: ds.primary.root.size}
	if err := w.readDir(root, root, "/"); err != nil {
		return nil, err
	}
	var files []FileInfo
	for _, c := range root.children {
		exts := append([]Extent(nil), c.exts...)
		sort.Slice(exts, func(i, j int) bool { return exts[i].Offset < exts[j].Offset })
		for i := 1; i < len(exts); i++ {
			if exts[i-1].Length > 0 && exts[i].Offset < exts[i-1].Offset+exts[i-1].Length {
				return nil, refuse(treeLayout, "/"+c.name, "extents overlap each other")
			}
		}
		files = append(files, FileInfo{Path: c.name, Size: c.size, Extents: c.exts, ModTime: c.modTime, Mode: entryMode(c.dir, c.mode, c.hasMode, false)})
	}
	return newImage(r, size, files), nil
}
