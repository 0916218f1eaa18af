package iso

import (
	"encoding/binary"
	"fmt"
	"io/fs"
)

// Rock Ridge (RRIP 1.10, "RRIP_1991A") over SUSP 1.10: the system use field
// of every primary directory record carries PX (POSIX attributes), TF (time
// stamps) and NM (the full name); the root's "." record also carries SP and,
// in a continuation area, ER. Whatever does not fit in the 255-byte record
// goes to a continuation area pointed at by CE.

const (
	rrID     = "RRIP_1991A"
	rrDesc   = "THE ROCK RIDGE INTERCHANGE PROTOCOL PROVIDES SUPPORT FOR POSIX FILE SYSTEM SEMANTICS"
	rrSource = "PLEASE CONTACT DISC PUBLISHER FOR SPECIFICATION SOURCE.  SEE PUBLISHER IDENTIFIER IN PRIMARY VOLUME DESCRIPTOR FOR CONTACT INFORMATION."

	ceLen       = 28  // length of a CE entry
	maxNMChunk  = 250 // name bytes per NM entry (255 minus the 5-byte header)
	posixDir    = 0o040755
	posixFile   = 0o100644
	posixExec   = 0o100755
	posixIFMT   = 0o170000
	nmContinue  = 0x01
	nmCurrent   = 0x02
	nmParent    = 0x04
	tfModify    = 0x02
	tfAccess    = 0x04
	tfAttribute = 0x08
)

// suspHeader starts a SUSP entry of the given signature and total length.
func suspHeader(sig string, length int) []byte {
	e := make([]byte, length)
	e[0], e[1], e[2], e[3] = sig[0], sig[1], byte(length), 1
	return e
}

// suspSP is the SUSP indicator, first entry of the root's "." record.
func suspSP() []byte {
	e := suspHeader("SP", 7)
	e[4], e[5], e[6] = 0xBE, 0xEF, 0
	return e
}

// suspER announces the Rock Ridge extension.
func suspER() []byte {
	e := suspHeader("ER", 8+len(rrID)+len(rrDesc)+len(rrSource))
	e[4], e[5], e[6], e[7] = byte(len(rrID)), byte(len(rrDesc)), byte(len(rrSource)), 1
	copy(e[8:], rrID+rrDesc+rrSource)
	return e
}

// suspCE points to a continuation area.
func suspCE(lba, offset, length uint32) []byte {
	e := suspHeader("CE", ceLen)
	putBoth32(e[4:], lba)
	putBoth32(e[12:], offset)
	putBoth32(e[20:], length)
	return e
}

// rrPX carries POSIX mode, link count, owner and group (all owned by root).
func rrPX(mode, nlink uint32) []byte {
	e := suspHeader("PX", 36)
	putBoth32(e[4:], mode)
	putBoth32(e[12:], nlink)
	putBoth32(e[20:], 0) // uid
	putBoth32(e[28:], 0) // gid
	return e
}

// rrTF carries modification, access and attribute change times, all the
// same.
func rrTF(date [7]byte) []byte {
	e := suspHeader("TF", 5+3*len(date))
	e[4] = tfModify | tfAccess | tfAttribute
	for i := 0; i < 3; i++ {
		copy(e[5+i*len(date):], date[:])
	}
	return e
}

// rrNM carries a name, split into as many NM entries as needed.
func rrNM(name string) []byte {
	var out []byte
	for {
		chunk, flags := name, byte(0)
		if len(chunk) > maxNMChunk {
			chunk, flags = chunk[:maxNMChunk], nmContinue
		}
		e := suspHeader("NM", 5+len(chunk))
		e[4] = flags
		copy(e[5:], chunk)
		out = append(out, e...)
		name = name[len(chunk):]
		if name == "" {
			return out
		}
	}
}

// systemUse is the Rock Ridge information of one directory record: groups
// of entries, each group kept whole, in order.
type systemUse [][]byte

// split decides what goes into a record with avail bytes of system use
// space. If everything fits, cont is nil. Otherwise the leading groups that
// fit next to a CE entry stay inline and the rest goes to a continuation
// area; the caller appends the CE entry to inline.
func (su systemUse) split(avail int) (inline, cont []byte) {
	total := 0
	for _, g := range su {
		total += len(g)
	}
	if total <= avail {
		for _, g := range su {
			inline = append(inline, g...)
		}
		return inline, nil
	}
	i := 0
	for ; i < len(su) && len(inline)+len(su[i])+ceLen <= avail; i++ {
		inline = append(inline, su[i]...)
	}
	for ; i < len(su); i++ {
		cont = append(cont, su[i]...)
	}
	return inline, cont
}

// ceAllocator places continuation areas one after the other in a region of
// blocks, never letting an area cross a block boundary (Linux insists).
type ceAllocator struct {
	next int64 // byte offset of the next free byte in the region
}

// alloc reserves n bytes and returns their offset in the region.
func (a *ceAllocator) alloc(n int) (int64, error) {
	if n > blockSize {
		return 0, fmt.Errorf("continuation area of %d bytes does not fit a block", n)
	}
	if a.next%blockSize+int64(n) > blockSize {
		a.next = (a.next/blockSize + 1) * blockSize
	}
	off := a.next
	a.next += int64(n)
	return off, nil
}

// Reading.

// rrInfo is what the reader learns from one record's Rock Ridge entries.
type rrInfo struct {
	name      []byte
	hasName   bool
	mode      uint32
	hasMode   bool
	target    []byte
	isLink    bool
	slSep     bool // the next SL component needs a separating slash
	childLink uint32
	hasChild  bool   // CL: this entry stands for a relocated directory
	relocated bool   // RE: this directory is shown elsewhere via CL
	hasSP     bool   // SP: SUSP is in use (root "." record)
	skip      byte   // SP: bytes to skip at the start of each system use field
	hasRRIP   bool   // ER naming Rock Ridge, or a PX entry
	hasER     bool   // ER naming Rock Ridge
	hasParent bool   // PL: the parent of a relocated directory
	transform string // ZF (zisofs) or SF (sparse): content is not read as stored
}

const (
	maxCEHops     = 32   // continuation areas followed per record
	maxTargetLen  = 4096 // longest symlink target accepted
	slContinue    = 0x01
	slCurrent     = 0x02
	slParent      = 0x04
	slRoot        = 0x08
	maxCEAreaSize = blockSize
)

// parseSystemUse parses the system use entries of one record, following
// continuation areas through readCE.
func parseSystemUse(su []byte, readCE func(lba, off, length uint32) ([]byte, error)) (rrInfo, error) {
	var info rrInfo
	type area struct{ lba, off uint32 }
	var seen []area
	for hops := 0; ; hops++ {
		next, hasNext, err := info.parseArea(su)
		if err != nil {
			return info, err
		}
		if !hasNext {
			return info, nil
		}
		if hops >= maxCEHops {
			return info, fmt.Errorf("more than %d continuation areas", maxCEHops)
		}
		a := area{next[0], next[1]}
		for _, s := range seen {
			if s == a {
				return info, fmt.Errorf("continuation area loop at block %d", a.lba)
			}
		}
		seen = append(seen, a)
		if su, err = readCE(next[0], next[1], next[2]); err != nil {
			return info, err
		}
	}
}

// parseArea parses the entries of one system use area and returns the
// continuation area (lba, offset, length) named by a CE entry, if any.
func (info *rrInfo) parseArea(b []byte) (next [3]uint32, hasNext bool, err error) {
	for len(b) >= 4 {
		n := int(b[2])
		if n < 4 || n > len(b) {
			break // padding or garbage ends the area
		}
		e := b[:n]
		b = b[n:]
		switch string(e[:2]) {
		case "ST":
			return next, hasNext, nil
		case "CE":
			if n >= ceLen {
				next = [3]uint32{le32(e[4:]), le32(e[12:]), le32(e[20:])}
				hasNext = true
			}
		case "SP":
			if n >= 7 && e[4] == 0xBE && e[5] == 0xEF {
				info.hasSP, info.skip = true, e[6]
			}
		case "ER":
			if n >= 8 && 8+int(e[4]) <= n {
				id := string(e[8 : 8+int(e[4])])
				rrip := id == rrID || id == "IEEE_P1282" || id == "IEEE_1282"
				info.hasRRIP, info.hasER = info.hasRRIP || rrip, info.hasER || rrip
			}
		case "PX":
			if n >= 36 {
				info.mode, info.hasMode, info.hasRRIP = le32(e[4:]), true, true
			}
		case "NM":
			err = info.parseNM(e)
		case "SL":
			err = info.parseSL(e)
		case "CL":
			if n >= 12 {
				info.childLink, info.hasChild = le32(e[4:]), true
			}
		case "RE":
			info.relocated = true
		case "PL":
			info.hasParent = true
		case "ZF", "SF":
			info.transform = string(e[:2])
		}
		if err != nil {
			return next, false, err
		}
	}
	return next, hasNext, nil
}

// parseNM appends the name piece of an NM entry.
func (info *rrInfo) parseNM(e []byte) error {
	if len(e) < 5 {
		return nil
	}
	info.hasName = true
	switch {
	case e[4]&nmCurrent != 0:
		info.name = append(info.name, '.')
	case e[4]&nmParent != 0:
		info.name = append(info.name, ".."...)
	default:
		info.name = append(info.name, e[5:]...)
	}
	if len(info.name) > maxNameLen {
		return fmt.Errorf("rock ridge name longer than %d bytes", maxNameLen)
	}
	return nil
}

// parseSL appends the components of an SL entry to the symlink target.
func (info *rrInfo) parseSL(e []byte) error {
	if len(e) < 5 {
		return nil
	}
	info.isLink = true
	for c := e[5:]; len(c) >= 2; {
		flags, n := c[0], int(c[1])
		if 2+n > len(c) {
			return fmt.Errorf("symlink component overruns its entry")
		}
		text := c[2 : 2+n]
		c = c[2+n:]
		switch {
		case flags&slRoot != 0:
			info.target = append(info.target[:0], '/')
			info.slSep = false
			continue
		case flags&slCurrent != 0:
			text = []byte(".")
		case flags&slParent != 0:
			text = []byte("..")
		}
		if info.slSep {
			info.target = append(info.target, '/')
		}
		info.target = append(info.target, text...)
		info.slSep = flags&slContinue == 0
		if len(info.target) > maxTargetLen {
			return fmt.Errorf("symlink target longer than %d bytes", maxTargetLen)
		}
	}
	return nil
}

// le32 reads the little-endian half of a both-byte-order number.
func le32(b []byte) uint32 { return binary.LittleEndian.Uint32(b) }

// posixToFileMode converts a POSIX st_mode to an fs.FileMode.
func posixToFileMode(m uint32) fs.FileMode {
	mode := fs.FileMode(m & 0o777)
	if m&0o4000 != 0 {
		mode |= fs.ModeSetuid
	}
	if m&0o2000 != 0 {
		mode |= fs.ModeSetgid
	}
	if m&0o1000 != 0 {
		mode |= fs.ModeSticky
	}
	switch m & posixIFMT {
	case 0o040000:
		mode |= fs.ModeDir
	case 0o120000:
		mode |= fs.ModeSymlink
	case 0o020000:
		mode |= fs.ModeDevice | fs.ModeCharDevice
	case 0o060000:
		mode |= fs.ModeDevice
	case 0o010000:
		mode |= fs.ModeNamedPipe
	case 0o140000:
		mode |= fs.ModeSocket
	}
	return mode
}
