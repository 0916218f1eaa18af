package iso

import (
	"errors"
	"io"
	"io/fs"
	"path"
	"strings"
	"time"
)

// maxLinkHops bounds symlink resolution in the fs.FS view.
const maxLinkHops = 40

// FS returns a read-only fs.FS view of the image. It also implements
// fs.ReadDirFS, fs.StatFS and fs.ReadLinkFS. Open follows symlinks within
// the image: absolute targets are taken from the image root, as in a chroot,
// and relative targets that climb out of the image do not resolve.
func (im *Image) FS() fs.FS { return imageFS{im} }

type imageFS struct{ im *Image }

var (
	_ fs.ReadDirFS  = imageFS{}
	_ fs.StatFS     = imageFS{}
	_ fs.ReadLinkFS = imageFS{}
)

// rootInfo describes the root directory.
var rootInfo = FileInfo{Path: ".", Mode: fs.ModeDir | 0o555}

func (f imageFS) Open(name string) (fs.File, error) {
	fi, err := f.resolve("open", name, true)
	if err != nil {
		return nil, err
	}
	info := entryInfo{fi: fi, name: path.Base(name)}
	if fi.Mode.IsDir() {
		return &openDir{fs: f, info: info}, nil
	}
	var r contentReader = io.NewSectionReader(f.im.r, 0, 0)
	if fi.Mode.IsRegular() {
		r = f.im.contentReader(fi)
	}
	return &openFile{info: info, r: r}, nil
}

func (f imageFS) Stat(name string) (fs.FileInfo, error) {
	fi, err := f.resolve("stat", name, true)
	if err != nil {
		return nil, err
	}
	return entryInfo{fi: fi, name: path.Base(name)}, nil
}

func (f imageFS) Lstat(name string) (fs.FileInfo, error) {
	fi, err := f.resolve("lstat", name, false)
	if err != nil {
		return nil, err
	}
	return entryInfo{fi: fi, name: path.Base(name)}, nil
}

func (f imageFS) ReadLink(name string) (string, error) {
	fi, err := f.resolve("readlink", name, false)
	if err != nil {
		return "", err
	}
	if fi.Mode&fs.ModeSymlink == 0 {
		return "", &fs.PathError{Op: "readlink", Path: name, Err: fs.ErrInvalid}
	}
	return fi.Target, nil
}

func (f imageFS) ReadDir(name string) ([]fs.DirEntry, error) {
	fi, err := f.resolve("readdir", name, true)
	if err != nil {
		return nil, err
	}
	if !fi.Mode.IsDir() {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: errors.New("not a directory")}
	}
	return f.dirEntries(fi), nil
}

// dirEntries lists a directory's children, sorted by name.
func (f imageFS) dirEntries(dir FileInfo) []fs.DirEntry {
	key := dir.Path
	if key == "." {
		key = ""
	}
	children := f.im.dirs[key]
	entries := make([]fs.DirEntry, len(children))
	for i, c := range children {
		fi := f.im.files[c]
		entries[i] = entryInfo{fi: fi, name: path.Base(fi.Path)}
	}
	return entries
}

// resolve finds the entry name refers to, following symlinks in its
// directories and, if follow is set, in its last element.
func (f imageFS) resolve(op, name string, follow bool) (FileInfo, error) {
	if !fs.ValidPath(name) {
		return FileInfo{}, &fs.PathError{Op: op, Path: name, Err: fs.ErrInvalid}
	}
	notExist := &fs.PathError{Op: op, Path: name, Err: fs.ErrNotExist}
	p := name
	for hops := 0; hops <= maxLinkHops; hops++ {
		if p == "." {
			return rootInfo, nil
		}
		fi, rest, target, ok := f.walk(p, follow)
		if !ok {
			return FileInfo{}, notExist
		}
		if target == "" {
			return fi, nil
		}
		if path.IsAbs(target) {
			p = path.Join(".", path.Clean(target)[1:], rest)
		} else {
			p = path.Join(path.Dir(fi.Path), target, rest)
		}
		if p == ".." || strings.HasPrefix(p, "../") {
			return FileInfo{}, notExist
		}
	}
	return FileInfo{}, &fs.PathError{Op: op, Path: name, Err: errors.New("too many levels of symbolic links")}
}

// walk looks p up element by element. It stops at the first symlink to
// follow and returns it with its target and the rest of p.
func (f imageFS) walk(p string, follow bool) (fi FileInfo, rest, target string, ok bool) {
	elems := strings.Split(p, "/")
	for i := range elems {
		cur := strings.Join(elems[:i+1], "/")
		idx, found := f.im.index[cur]
		if !found {
			return FileInfo{}, "", "", false
		}
		fi = f.im.files[idx]
		last := i == len(elems)-1
		if fi.Mode&fs.ModeSymlink != 0 && (!last || follow) {
			if fi.Target == "" {
				return FileInfo{}, "", "", false
			}
			return fi, strings.Join(elems[i+1:], "/"), fi.Target, true
		}
		if !last && !fi.Mode.IsDir() {
			return FileInfo{}, "", "", false
		}
	}
	return fi, "", "", true
}

// entryInfo is a FileInfo seen as fs.FileInfo and fs.DirEntry.
type entryInfo struct {
	fi   FileInfo
	name string
}

func (e entryInfo) Name() string               { return e.name }
func (e entryInfo) Size() int64                { return e.fi.Size }
func (e entryInfo) Mode() fs.FileMode          { return e.fi.Mode }
func (e entryInfo) ModTime() time.Time         { return e.fi.ModTime }
func (e entryInfo) IsDir() bool                { return e.fi.Mode.IsDir() }
func (e entryInfo) Sys() any                   { return e.fi }
func (e entryInfo) Type() fs.FileMode          { return e.fi.Mode.Type() }
func (e entryInfo) Info() (fs.FileInfo, error) { return e, nil }
func (e entryInfo) String() string             { return fs.FormatFileInfo(e) }

// openFile is an open non-directory.
type openFile struct {
	info entryInfo
	r    contentReader
}

func (o *openFile) Stat() (fs.FileInfo, error)                   { return o.info, nil }
func (o *openFile) Read(p []byte) (int, error)                   { return o.r.Read(p) }
func (o *openFile) ReadAt(p []byte, off int64) (int, error)      { return o.r.ReadAt(p, off) }
func (o *openFile) Seek(offset int64, whence int) (int64, error) { return o.r.Seek(offset, whence) }
func (o *openFile) Close() error                                 { return nil }

// openDir is an open directory.
type openDir struct {
	fs      imageFS
	info    entryInfo
	entries []fs.DirEntry
	read    bool
}

func (d *openDir) Stat() (fs.FileInfo, error) { return d.info, nil }
func (d *openDir) Close() error               { return nil }

func (d *openDir) Read([]byte) (int, error) {
	return 0, &fs.PathError{Op: "read", Path: d.info.fi.Path, Err: errors.New("is a directory")}
}

// ReadDir follows fs.ReadDirFile: n > 0 reads in batches, n <= 0 reads all
// that is left.
func (d *openDir) ReadDir(n int) ([]fs.DirEntry, error) {
	if !d.read {
		d.entries, d.read = d.fs.dirEntries(d.info.fi), true
	}
	if n <= 0 {
		out := d.entries
		d.entries = nil
		return out, nil
	}
	if len(d.entries) == 0 {
		return nil, io.EOF
	}
	n = min(n, len(d.entries))
	out := d.entries[:n]
	d.entries = d.entries[n:]
	return out, nil
}
