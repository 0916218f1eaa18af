package bundle

import (
	"bytes"
	"sort"
)

// FormatSums renders files in the format of coreutils' sha256sum, sorted by
// path, so `sha256sum -c SHA256SUMS` works at the root of a mounted bundle.
func FormatSums(files []File) []byte {
	sorted := append([]File(nil), files...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Path < sorted[j].Path })
	var b bytes.Buffer
	for _, f := range sorted {
		b.WriteString(f.SHA256)
		b.WriteString("  ")
		b.WriteString(f.Path)
		b.WriteByte('\n')
	}
	return b.Bytes()
}
