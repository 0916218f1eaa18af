package iso

import (
	"encoding/binary"
	"time"
)

// Sizes and constants of ECMA-119.
const (
	blockSize        = 2048
	systemAreaBlocks = 16
	firstDescriptor  = systemAreaBlocks // block of the primary volume descriptor

	descPrimary       = 1
	descSupplementary = 2
	descTerminator    = 255

	// File flags of a directory record (ECMA-119 9.1.6).
	flagHidden      = 0x01
	flagDirectory   = 0x02
	flagAssociated  = 0x04
	flagMultiExtent = 0x80

	recordHeaderLen = 33  // fixed part of a directory record, before the identifier
	maxRecordLen    = 254 // a record is at most 255 bytes and always of even length
	rootRecordLen   = 34  // the root record embedded in a volume descriptor
)

// standardID is the identifier carried by every volume descriptor.
const standardID = "CD001"

// jolietEscape marks a supplementary volume descriptor as Joliet UCS-2 level 3.
const jolietEscape = "%/E"

// maxExtentSize is the largest extent the writer records in one directory
// record. It is a multiple of the block size and below 4 GiB, the limit of
// the 32-bit data length field; larger files are split into several extents
// (ISO 9660 level 3 multi-extent files). Tests lower it to exercise that path
// without writing gigabytes.
var maxExtentSize int64 = 0xFFFFF800

// putBoth32 stores v in both-byte orders (ECMA-119 7.3.3): little-endian
// followed by big-endian, 8 bytes.
func putBoth32(b []byte, v uint32) {
	binary.LittleEndian.PutUint32(b[0:4], v)
	binary.BigEndian.PutUint32(b[4:8], v)
}

// putBoth16 stores v in both-byte orders (ECMA-119 7.2.3), 4 bytes.
func putBoth16(b []byte, v uint16) {
	binary.LittleEndian.PutUint16(b[0:2], v)
	binary.BigEndian.PutUint16(b[2:4], v)
}

// clampTime brings t into the range every date field can hold (the 7-byte
// directory record date counts years from 1900 in one byte). The zero time is
// mapped to the Unix epoch, the natural SOURCE_DATE_EPOCH=0.
func clampTime(t time.Time) time.Time {
	if t.IsZero() {
		return time.Unix(0, 0).UTC()
	}
	t = t.UTC()
	lo := time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC)
	hi := time.Date(2155, 12, 31, 23, 59, 59, 0, time.UTC)
	if t.Before(lo) {
		return lo
	}
	if t.After(hi) {
		return hi
	}
	return t
}

// recordDate encodes t as the 7-byte date of a directory record
// (ECMA-119 9.1.5), in UTC.
func recordDate(t time.Time) [7]byte {
	t = clampTime(t)
	return [7]byte{
		byte(t.Year() - 1900), byte(t.Month()), byte(t.Day()),
		byte(t.Hour()), byte(t.Minute()), byte(t.Second()),
		0, // offset from GMT in 15-minute intervals
	}
}

// parseRecordDate decodes a 7-byte directory record date. Invalid dates
// yield the zero time.
func parseRecordDate(b []byte) time.Time {
	if len(b) < 7 || b[1] < 1 || b[1] > 12 || b[2] < 1 || b[2] > 31 {
		return time.Time{}
	}
	offset := int(int8(b[6]))
	if offset < -48 || offset > 52 {
		offset = 0
	}
	zone := time.FixedZone("", offset*15*60)
	return time.Date(1900+int(b[0]), time.Month(b[1]), int(b[2]),
		int(b[3]), int(b[4]), int(b[5]), 0, zone).UTC()
}

// volumeDate encodes t as the 17-byte date of a volume descriptor
// (ECMA-119 8.4.26.1): "YYYYMMDDHHMMSScc" and a GMT offset byte.
func volumeDate(t time.Time) [17]byte {
	t = clampTime(t)
	var d [17]byte
	copy(d[:16], t.Format("20060102150405")+"00")
	return d
}

// unsetVolumeDate is the "not specified" 17-byte date: sixteen '0' digits and
// a zero offset.
func unsetVolumeDate() [17]byte {
	var d [17]byte
	copy(d[:16], "0000000000000000")
	return d
}

// dirRecord is one directory record to be encoded.
type dirRecord struct {
	id    []byte // file identifier; 0x00 is ".", 0x01 is ".."
	lba   uint32
	size  uint32
	date  [7]byte
	flags byte
	su    []byte // system use field (Rock Ridge); may be empty
}

// recordBaseLen is the length of a directory record without its system use
// field: header, identifier and the padding byte that keeps the system use
// field at an even offset.
func recordBaseLen(idLen int) int {
	n := recordHeaderLen + idLen
	if idLen%2 == 0 {
		n++
	}
	return n
}

// recordLen is the encoded length of a record, rounded up to even.
func recordLen(idLen, suLen int) int {
	n := recordBaseLen(idLen) + suLen
	return n + n%2
}

// appendDirRecord appends the encoding of r to b (ECMA-119 9.1).
func appendDirRecord(b []byte, r dirRecord) []byte {
	n := recordLen(len(r.id), len(r.su))
	start := len(b)
	b = append(b, make([]byte, n)...)
	rec := b[start:]
	rec[0] = byte(n)
	putBoth32(rec[2:], r.lba)
	putBoth32(rec[10:], r.size)
	copy(rec[18:25], r.date[:])
	rec[25] = r.flags
	putBoth16(rec[28:], 1) // volume sequence number
	rec[32] = byte(len(r.id))
	copy(rec[33:], r.id)
	copy(rec[recordBaseLen(len(r.id)):], r.su)
	return b
}

// blocksFor is the number of blocks needed for n bytes.
func blocksFor(n int64) int64 {
	return (n + blockSize - 1) / blockSize
}
