package verify

import (
	"errors"
	"io"
	"io/fs"
	"path"
	"time"

	"github.com/ferry-k8s/ferry/bundle"
)

// FS is the bundle's file tree as an fs.FS whose every read goes through
// Reader (each chunk checked), for the parsers that take an fs.FS
// (images.ReadIndex, repo.ReadRepodataFSWithOptions). It lists files only
// (Open of a directory fails), and only those of the signed manifest. The
// bundle must have been opened with OpenVerified.
func (b *Bundle) FS() fs.FS {
	return verifiedFS{b: b, files: b.Manifest.FileMap(), created: b.Manifest.Created}
}

type verifiedFS struct {
	b       *Bundle
	files   map[string]bundle.File
	created time.Time
}

func (v verifiedFS) Open(name string) (fs.File, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrInvalid}
	}
	info, ok := v.files[name]
	if !ok {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	}
	f, err := v.b.File(name)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: name, Err: err}
	}
	return &verifiedFile{r: f.NewReader(), info: fileInfo{f: info, mod: v.created}}, nil
}

type verifiedFile struct {
	r    *Reader
	info fileInfo
}

func (f *verifiedFile) Stat() (fs.FileInfo, error) { return f.info, nil }
func (f *verifiedFile) Read(p []byte) (int, error) { return f.r.Read(p) }
func (f *verifiedFile) Close() error               { return f.r.Close() }

// fileInfo describes a manifest file.
type fileInfo struct {
	f   bundle.File
	mod time.Time
}

func (i fileInfo) Name() string       { return path.Base(i.f.Path) }
func (i fileInfo) Size() int64        { return i.f.Size }
func (i fileInfo) Mode() fs.FileMode  { return 0o444 }
func (i fileInfo) ModTime() time.Time { return i.mod }
func (i fileInfo) IsDir() bool        { return false }
func (i fileInfo) Sys() any           { return nil }

// ReadFile reads a whole file of a bundle's FS (at most limit bytes), each
// chunk verified.
func ReadFile(fsys fs.FS, name string, limit int64) ([]byte, error) {
	v, ok := fsys.(verifiedFS)
	if !ok {
		return nil, errors.New("not a verified bundle file system")
	}
	info, ok := v.files[name]
	if !ok {
		return nil, &fs.PathError{Op: "read", Path: name, Err: fs.ErrNotExist}
	}
	if info.Size > limit {
		return nil, &fs.PathError{Op: "read", Path: name, Err: errors.New("larger than the limit for metadata")}
	}
	f, err := v.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, limit))
}
