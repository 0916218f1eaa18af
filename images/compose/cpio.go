package compose

import (
	"errors"
	"fmt"
	"io"
)

// The cpio variants found in RPM payloads: "newc" (SVR4 without CRC), and
// rpm ≥ 4.12's stripped form for packages with files of 4 GiB or more, whose
// entries carry only an index into the header's file list.
const (
	cpioNewcMagic     = "070701"
	cpioStrippedMagic = "07070X"
	cpioTrailer       = "TRAILER!!!"
	cpioNewcLen       = 110 // magic + 13 eight-digit hex fields
	cpioStrippedLen   = 14  // magic + one eight-digit hex field
	// maxCpioName bounds a name (rpm's own limit is PATH_MAX).
	maxCpioName = 4096 + 2
)

// cpioEntry is one entry header of an RPM payload.
type cpioEntry struct {
	// name is the entry's path as stored ("./usr/bin/x" or "/usr/bin/x");
	// empty for a stripped entry.
	name string
	// index is the header file index of a stripped entry, -1 otherwise.
	index int
	mode  uint32
	size  int64 // bytes of data that follow the header
}

// cpioReader reads the entries of an RPM payload. It allocates nothing
// proportional to sizes declared in the stream: names are bounded by
// maxCpioName and data is streamed.
type cpioReader struct {
	r   io.Reader
	off int64 // bytes consumed from r
	// left is the unread data of the current entry.
	left int64
	// strippedSize gives the data size of a stripped entry, which only the
	// RPM header knows.
	strippedSize func(index int) (int64, error)
	buf          [cpioNewcLen]byte
	done         bool
}

func newCpioReader(r io.Reader, strippedSize func(int) (int64, error)) *cpioReader {
	return &cpioReader{r: r, strippedSize: strippedSize}
}

// Next skips what is left of the current entry and returns the next
// entry's header, or io.EOF after the trailer.
func (c *cpioReader) Next() (*cpioEntry, error) {
	if c.done {
		return nil, io.EOF
	}
	if err := c.skip(c.left); err != nil {
		return nil, err
	}
	c.left = 0
	if err := c.align(); err != nil {
		return nil, err
	}
	start := c.off
	if err := c.readFull(c.buf[:6]); err != nil {
		return nil, fmt.Errorf("cpio header at offset %d: %w", start, err)
	}
	switch string(c.buf[:6]) {
	case cpioStrippedMagic:
		if err := c.readFull(c.buf[6:cpioStrippedLen]); err != nil {
			return nil, fmt.Errorf("cpio header at offset %d: %w", start, err)
		}
		idx, err := parseHex8(c.buf[6:14])
		if err != nil {
			return nil, fmt.Errorf("cpio header at offset %d: file index: %w", start, err)
		}
		if c.strippedSize == nil {
			return nil, fmt.Errorf("cpio header at offset %d: stripped entry without a file list", start)
		}
		size, err := c.strippedSize(int(idx))
		if err != nil {
			return nil, fmt.Errorf("cpio header at offset %d: %w", start, err)
		}
		if err := c.align(); err != nil {
			return nil, err
		}
		c.left = size
		return &cpioEntry{index: int(idx), size: size}, nil
	case cpioNewcMagic:
	default:
		return nil, fmt.Errorf("cpio header at offset %d: bad magic %q", start, c.buf[:6])
	}
	if err := c.readFull(c.buf[6:cpioNewcLen]); err != nil {
		return nil, fmt.Errorf("cpio header at offset %d: %w", start, err)
	}
	// Fields after the magic: ino, mode, uid, gid, nlink, mtime, filesize,
	// devmajor, devminor, rdevmajor, rdevminor, namesize, check.
	var f [13]uint32
	for i := range f {
		v, err := parseHex8(c.buf[6+8*i : 14+8*i])
		if err != nil {
			return nil, fmt.Errorf("cpio header at offset %d: field %d: %w", start, i, err)
		}
		f[i] = v
	}
	namesize := int64(f[11])
	if namesize < 2 || namesize > maxCpioName {
		return nil, fmt.Errorf("cpio header at offset %d: name size %d out of range (2..%d)", start, namesize, maxCpioName)
	}
	name := make([]byte, namesize)
	if err := c.readFull(name); err != nil {
		return nil, fmt.Errorf("cpio header at offset %d: name: %w", start, err)
	}
	if name[namesize-1] != 0 {
		return nil, fmt.Errorf("cpio header at offset %d: name not NUL-terminated", start)
	}
	name = name[:namesize-1]
	for _, b := range name {
		if b == 0 {
			return nil, fmt.Errorf("cpio header at offset %d: NUL in name", start)
		}
	}
	if err := c.align(); err != nil {
		return nil, err
	}
	e := &cpioEntry{name: string(name), index: -1, mode: f[1], size: int64(f[6])}
	if e.name == cpioTrailer {
		c.done = true
		return nil, io.EOF
	}
	c.left = e.size
	return e, nil
}

// Read reads the current entry's data.
func (c *cpioReader) Read(p []byte) (int, error) {
	if c.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.r.Read(p)
	c.off += int64(n)
	c.left -= int64(n)
	if err == io.EOF && c.left > 0 {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}

func (c *cpioReader) readFull(p []byte) error {
	n, err := io.ReadFull(c.r, p)
	c.off += int64(n)
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// align skips the padding to the next multiple of 4 of the stream offset.
func (c *cpioReader) align() error {
	if pad := (4 - c.off%4) % 4; pad > 0 {
		if err := c.readFull(c.buf[:pad]); err != nil {
			return fmt.Errorf("cpio padding at offset %d: %w", c.off, err)
		}
	}
	return nil
}

// skip discards n bytes of entry data.
func (c *cpioReader) skip(n int64) error {
	if n <= 0 {
		return nil
	}
	m, err := io.CopyN(io.Discard, c.r, n)
	c.off += m
	if err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return fmt.Errorf("cpio data at offset %d: %w", c.off, err)
	}
	return nil
}

// parseHex8 parses eight hexadecimal digits (no sign, no prefix).
func parseHex8(b []byte) (uint32, error) {
	var v uint32
	for _, c := range b {
		var d byte
		switch {
		case c >= '0' && c <= '9':
			d = c - '0'
		case c >= 'a' && c <= 'f':
			d = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			d = c - 'A' + 10
		default:
			return 0, fmt.Errorf("invalid hex digits %q", b)
		}
		v = v<<4 | uint32(d)
	}
	return v, nil
}
