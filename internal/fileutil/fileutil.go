package fileutil

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
)

// ErrTooLarge is matched (errors.Is) by the error of a read that found
// more than its limit.
var ErrTooLarge = errors.New("too large")

// TooLargeError is a file (or stream) larger than the limit a read allows.
type TooLargeError struct {
	Name  string
	Limit int64
}

func (e *TooLargeError) Error() string {
	return fmt.Sprintf("%s is larger than %d bytes", e.Name, e.Limit)
}

// Is makes errors.Is(err, ErrTooLarge) hold.
func (e *TooLargeError) Is(target error) bool { return target == ErrTooLarge }

// ReadAll reads r to its end, refusing more than limit bytes; name is what
// the error calls r.
func ReadAll(r io.Reader, name string, limit int64) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", name, err)
	}
	if int64(len(data)) > limit {
		return nil, &TooLargeError{Name: name, Limit: limit}
	}
	return data, nil
}

// ReadFile reads the whole of file, refusing a file of more than limit
// bytes. It reads any kind of file (a pipe, /dev/stdin); the error of a
// missing file is os.Open's (errors.Is(err, fs.ErrNotExist)).
func ReadFile(file string, limit int64) ([]byte, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return ReadAll(f, file, limit)
}

// ReadRegularFile is ReadFile for a regular file only: a directory, device
// or pipe is an error (a layout or cache file that is not a plain file is
// damaged or hostile).
func ReadRegularFile(file string, limit int64) ([]byte, error) {
	return ReadFS(nil, file, limit)
}

// ReadFS reads the regular file name of fsys, refusing more than limit
// bytes (checked on the file's size first, and again while reading). A nil
// fsys is the operating system's file system, name a path.
func ReadFS(fsys fs.FS, name string, limit int64) ([]byte, error) {
	var f fs.File
	var err error
	if fsys == nil {
		f, err = os.Open(name)
	} else {
		f, err = fsys.Open(name)
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", name)
	}
	if st.Size() > limit {
		return nil, &TooLargeError{Name: name, Limit: limit}
	}
	return ReadAll(f, name, limit)
}

// SHA256 is the sha256 of file's content, in hex, and its size.
func SHA256(file string) (sum string, size int64, err error) {
	f, err := os.Open(file)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	return SHA256Reader(f, file)
}

// SHA256Reader is the sha256 of what r holds up to its end, in hex, and its
// size; name is what an error calls r.
func SHA256Reader(r io.Reader, name string) (sum string, size int64, err error) {
	h := sha256.New()
	n, err := io.Copy(h, r)
	if err != nil {
		return "", 0, fmt.Errorf("hashing %s: %w", name, err)
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

// Digest is the OCI-style digest of file's content: "sha256:<hex>".
func Digest(file string) (string, error) {
	sum, _, err := SHA256(file)
	if err != nil {
		return "", err
	}
	return "sha256:" + sum, nil
}
