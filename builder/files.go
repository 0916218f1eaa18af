package builder

import (
	"fmt"
	"io"
	"os"

	"github.com/ferry-k8s/ferry/internal/atomicfile"
)

// linkOrCopy makes dst a hard link to src when both are on one file system
// (no byte is copied: the ISO write is the only full write of the content),
// and copies otherwise.
func linkOrCopy(src, dst string, mode os.FileMode) error {
	if err := os.Link(src, dst); err == nil {
		return nil
	}
	return copyFile(src, dst, mode)
}

// copyFile copies src to dst through a temporary file renamed into place.
func copyFile(src, dst string, mode os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("opening %s: %w", src, err)
	}
	defer in.Close()
	return atomicfile.Write(dst, mode, func(w *os.File) error {
		if _, err := io.Copy(w, in); err != nil {
			return fmt.Errorf("copying %s: %w", src, err)
		}
		return nil
	})
}
