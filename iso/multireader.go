package iso

import (
	"errors"
	"io"
	"sort"
)

// multiReader reads the extents of a multi-extent file as one stream.
type multiReader struct {
	r      io.ReaderAt
	parts  []Extent
	starts []int64 // offset in the file of each part
	size   int64
	off    int64 // for Read and Seek
}

func newMultiReader(r io.ReaderAt, parts []Extent) *multiReader {
	m := &multiReader{r: r, parts: parts, starts: make([]int64, len(parts))}
	for i, p := range parts {
		m.starts[i] = m.size
		m.size += p.Length
	}
	return m
}

// ReadAt reads from the file at offset off, across extents.
func (m *multiReader) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, errors.New("iso: negative offset")
	}
	n := 0
	for len(p) > 0 && off < m.size {
		i := sort.Search(len(m.starts), func(i int) bool { return m.starts[i] > off }) - 1
		within := off - m.starts[i]
		chunk := p[:min(int64(len(p)), m.parts[i].Length-within)]
		k, err := m.r.ReadAt(chunk, m.parts[i].Offset+within)
		n += k
		off += int64(k)
		p = p[k:]
		if err != nil && !(err == io.EOF && k == len(chunk)) {
			return n, err
		}
		if k == 0 {
			return n, io.ErrNoProgress
		}
	}
	if len(p) > 0 {
		return n, io.EOF
	}
	return n, nil
}

func (m *multiReader) Read(p []byte) (int, error) {
	n, err := m.ReadAt(p, m.off)
	m.off += int64(n)
	if err == io.EOF && n > 0 {
		err = nil
	}
	return n, err
}

func (m *multiReader) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		offset += m.off
	case io.SeekEnd:
		offset += m.size
	default:
		return 0, errors.New("iso: invalid whence")
	}
	if offset < 0 {
		return 0, errors.New("iso: negative position")
	}
	m.off = offset
	return offset, nil
}
