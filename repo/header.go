package repo

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Limits on RPM headers. They are those rpm itself enforces: fewer than
// 65536 index entries and less than 256 MiB of data per header.
const (
	leadSize        = 96
	headerIntroSize = 16
	maxHeaderTags   = 0xffff
	maxHeaderData   = 0x0fffffff
)

const (
	leadMagic      = 0xedabeedb
	headerMagic    = 0x8eade801
	sigTypeHeader  = 5
	regionTagImage = 61
	regionTagSigs  = 62
	regionTagImmut = 63
)

// rpm tag data types.
const (
	typeNull = iota
	typeChar
	typeInt8
	typeInt16
	typeInt32
	typeInt64
	typeString
	typeBin
	typeStringArray
	typeI18NString
)

// rawHeaders is the byte image of an RPM's lead, signature header (with its
// padding) and main header, after structural validation.
type rawHeaders struct {
	bytes []byte // lead + signature header + padding + main header
	start int64  // offset of the main header (createrepo_c's header-range start)
	end   int64  // end of the main header, start of the payload
}

// readRawHeaders reads and validates the lead and both headers of an RPM of
// size bytes (size < 0: unknown) from r. Every length is checked against the
// remaining size before anything is allocated, and every index entry is
// checked the way rpm checks it (type, alignment, range, no overlap), so the
// result can be handed to go-rpmutils without risking a panic.
func readRawHeaders(r io.Reader, size int64) (*rawHeaders, error) {
	buf := make([]byte, leadSize+headerIntroSize, 4096)
	if _, err := io.ReadFull(r, buf); err != nil {
		return nil, fmt.Errorf("reading lead: %w", noEOF(err))
	}
	if binary.BigEndian.Uint32(buf) != leadMagic {
		return nil, errors.New("not an rpm file (bad lead magic)")
	}
	if major := buf[4]; major < 3 || major > 4 {
		return nil, fmt.Errorf("unsupported rpm format version %d", major)
	}
	if st := binary.BigEndian.Uint16(buf[78:80]); st != sigTypeHeader {
		return nil, fmt.Errorf("unsupported signature type %d", st)
	}
	// Signature header: padded to a multiple of 8 bytes.
	n, dl, err := checkIntro(buf[leadSize:], size, leadSize)
	if err != nil {
		return nil, fmt.Errorf("signature header: %w", err)
	}
	sigLen := headerIntroSize + 16*n + dl
	pad := (8 - sigLen%8) % 8
	if buf, err = readMore(r, buf, 16*n+dl+pad, size); err != nil {
		return nil, fmt.Errorf("reading signature header: %w", err)
	}
	if err := checkEntries(buf[leadSize+headerIntroSize:], n, dl); err != nil {
		return nil, fmt.Errorf("signature header: %w", err)
	}
	start := int64(len(buf))
	// Main header.
	if buf, err = readMore(r, buf, headerIntroSize, size); err != nil {
		return nil, fmt.Errorf("reading main header: %w", err)
	}
	n, dl, err = checkIntro(buf[start:], size, start)
	if err != nil {
		return nil, fmt.Errorf("main header: %w", err)
	}
	if buf, err = readMore(r, buf, 16*n+dl, size); err != nil {
		return nil, fmt.Errorf("reading main header: %w", err)
	}
	if err := checkEntries(buf[start+headerIntroSize:], n, dl); err != nil {
		return nil, fmt.Errorf("main header: %w", err)
	}
	return &rawHeaders{bytes: buf, start: start, end: int64(len(buf))}, nil
}

// checkIntro validates a header intro at offset off of the file and returns
// its entry count and data length.
func checkIntro(intro []byte, size, off int64) (n, dl int64, err error) {
	if binary.BigEndian.Uint32(intro) != headerMagic {
		return 0, 0, errors.New("bad header magic")
	}
	n = int64(binary.BigEndian.Uint32(intro[8:]))
	dl = int64(binary.BigEndian.Uint32(intro[12:]))
	if n > maxHeaderTags {
		return 0, 0, fmt.Errorf("%d index entries, more than rpm allows", n)
	}
	if dl > maxHeaderData {
		return 0, 0, fmt.Errorf("%d bytes of data, more than rpm allows", dl)
	}
	if size >= 0 && off+headerIntroSize+16*n+dl > size {
		return 0, 0, fmt.Errorf("declares %d entries and %d bytes of data, past the end of the %d-byte file", n, dl, size)
	}
	return n, dl, nil
}

// readMore appends exactly n more bytes from r to buf.
func readMore(r io.Reader, buf []byte, n, size int64) ([]byte, error) {
	have := int64(len(buf))
	if size >= 0 && have+n > size {
		return nil, fmt.Errorf("needs %d bytes, past the end of the %d-byte file", have+n, size)
	}
	out := make([]byte, have+n)
	copy(out, buf)
	if _, err := io.ReadFull(r, out[have:]); err != nil {
		return nil, noEOF(err)
	}
	return out, nil
}

func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

var typeAlign = [...]int64{typeInt16: 2, typeInt32: 4, typeInt64: 8}
var typeSize = [...]int64{typeChar: 1, typeInt8: 1, typeInt16: 2, typeInt32: 4, typeInt64: 8, typeBin: 1}

// checkEntries validates the index entries (16 bytes each, n of them) that
// start blob, against the dl bytes of data that follow them. Like rpm, it
// requires entries after an optional leading region tag to have known types,
// aligned offsets, data inside the data area and increasing, non-overlapping
// data ranges; strings must be NUL-terminated inside the data.
func checkEntries(blob []byte, n, dl int64) error {
	index := blob[:16*n]
	data := blob[16*n : 16*n+dl]
	var end int64
	for i := int64(0); i < n; i++ {
		e := index[16*i:]
		tag := int32(binary.BigEndian.Uint32(e))
		typ := int64(binary.BigEndian.Uint32(e[4:]))
		off := int64(int32(binary.BigEndian.Uint32(e[8:])))
		cnt := int64(int32(binary.BigEndian.Uint32(e[12:])))
		if typ <= typeNull || typ > typeI18NString {
			return fmt.Errorf("tag %d: bad type %d", tag, typ)
		}
		if off < 0 || off >= dl {
			return fmt.Errorf("tag %d: offset %d outside %d bytes of data", tag, off, dl)
		}
		if cnt < 1 || cnt > dl {
			return fmt.Errorf("tag %d: bad count %d", tag, cnt)
		}
		if int(typ) < len(typeAlign) && typeAlign[typ] != 0 && off%typeAlign[typ] != 0 {
			return fmt.Errorf("tag %d: offset %d not aligned for type %d", tag, off, typ)
		}
		region := i == 0 && (tag == regionTagImage || tag == regionTagSigs || tag == regionTagImmut)
		if !region && off < end {
			return fmt.Errorf("tag %d: data at offset %d overlaps the previous entry", tag, off)
		}
		var length int64
		switch typ {
		case typeString, typeStringArray, typeI18NString:
			if typ == typeString && cnt != 1 {
				return fmt.Errorf("tag %d: string with count %d", tag, cnt)
			}
			p := off
			for j := int64(0); j < cnt; j++ {
				k := bytes.IndexByte(data[p:], 0)
				if k < 0 {
					return fmt.Errorf("tag %d: string %d not terminated inside the data", tag, j)
				}
				p += int64(k) + 1
			}
			length = p - off
		default:
			length = cnt * typeSize[typ]
			if off+length > dl {
				return fmt.Errorf("tag %d: %d bytes at offset %d past %d bytes of data", tag, length, off, dl)
			}
		}
		if !region {
			// The region trailer of a leading region tag lives at the end
			// of the data, outside the ordering the other entries follow.
			// Checking the order before scanning strings keeps the total
			// work linear in the data size.
			end = off + length
		}
	}
	return nil
}
