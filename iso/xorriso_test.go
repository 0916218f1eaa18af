package iso

import (
	"bytes"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"testing/fstest"
)

// xorriso runs xorriso and returns its combined output. The test fails if
// xorriso is not installed: these tests are the proof that other tools read
// our images, so they must not silently go away.
func xorriso(t *testing.T, args ...string) string {
	t.Helper()
	return runXorriso(t, true, args...)
}

// runXorriso runs xorriso; if strict, warnings are failures too.
func runXorriso(t *testing.T, strict bool, args ...string) string {
	t.Helper()
	bin, err := exec.LookPath("xorriso")
	if err != nil {
		t.Fatalf("xorriso is required for this test (apt-get install xorriso): %v", err)
	}
	args = append([]string{"-local_charset", "UTF-8"}, args...)
	if strict {
		// Any event of severity WARNING or worse makes xorriso exit non-zero.
		args = append([]string{"-abort_on", "NEVER", "-return_with", "WARNING", "32"}, args...)
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "LANG=C.UTF-8")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("xorriso %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	if m := regexp.MustCompile(`(?m)^.*: (WARNING|SORRY|FAILURE|FATAL|MISHAP) : .*$`).FindString(string(out)); strict && m != "" {
		t.Fatalf("xorriso %s reported a problem: %s\n%s", strings.Join(args, " "), m, out)
	}
	return string(out)
}

// xorrisoPaths parses the quoted paths printed by -find.
func xorrisoPaths(out string) []string {
	var paths []string
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "'") && strings.HasSuffix(line, "'") {
			paths = append(paths, unquoteXorriso(line))
		}
	}
	return paths
}

// unquoteXorriso undoes xorriso's shell-style quoting of a path.
func unquoteXorriso(s string) string {
	s = strings.TrimSuffix(strings.TrimPrefix(s, "'"), "'")
	return strings.ReplaceAll(s, `'"'"'`, `'`)
}

// lsdlLine matches a line of -exec lsdl: mode, links, owner, group, size,
// date (3 fields) and the quoted path.
var lsdlLine = regexp.MustCompile(`^(\S+)\s+\d+\s+\S+\s+\S+\s+(\d+)\s+\S+\s+\S+\s+\S+\s+('.*')$`)

// xorrisoSizes parses -exec lsdl output into sizes and modes by path.
func xorrisoSizes(out string) (sizes map[string]int64, modes map[string]string) {
	sizes, modes = map[string]int64{}, map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		m := lsdlLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		p := unquoteXorriso(m[3])
		sizes[p], _ = strconv.ParseInt(m[2], 10, 64)
		modes[p] = m[1]
	}
	return sizes, modes
}

// saveImage writes an image to a temporary file.
func saveImage(t *testing.T, img []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "image.iso")
	if err := os.WriteFile(p, img, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// compareExtracted compares a directory extracted by xorriso with files.
func compareExtracted(t *testing.T, dir string, files []testFile) {
	t.Helper()
	want := expectedPaths(files)
	seen := 0
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		rel = filepath.ToSlash(rel)
		w, ok := want[rel]
		switch {
		case !ok:
			t.Errorf("xorriso extracted unexpected %q", rel)
		case w.dir != d.IsDir():
			t.Errorf("xorriso extracted %q with dir=%v", rel, d.IsDir())
		case !w.dir:
			got, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			if !bytes.Equal(got, w.content) {
				t.Errorf("xorriso extracted %q with different content (%d bytes, want %d)", rel, len(got), len(w.content))
			}
		}
		seen++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if seen != len(want) {
		t.Errorf("xorriso extracted %d entries, want %d", seen, len(want))
	}
}

func TestXorrisoReadsOurImage(t *testing.T) {
	files := roundTripFiles()
	img := saveImage(t, imageOf(t, files))
	want := expectedPaths(files)

	// Rock Ridge: full names, sizes, modes.
	sizes, modes := xorrisoSizes(xorriso(t, "-indev", img, "-find", "/", "-exec", "lsdl"))
	if len(sizes) != len(want)+1 {
		t.Errorf("xorriso lists %d entries, want %d", len(sizes), len(want)+1)
	}
	for p, f := range want {
		size, ok := sizes["/"+p]
		switch {
		case !ok:
			t.Errorf("xorriso does not list %q", p)
		case f.dir && modes["/"+p] != "drwxr-xr-x":
			t.Errorf("xorriso: %q has mode %s", p, modes["/"+p])
		case !f.dir && (modes["/"+p] != "-rw-r--r--" || size != int64(len(f.content))):
			t.Errorf("xorriso: %q has mode %s size %d, want %d", p, modes["/"+p], size, len(f.content))
		}
	}

	// Extraction gives back the same content.
	out := filepath.Join(t.TempDir(), "out")
	xorriso(t, "-osirrox", "on", "-indev", img, "-extract", "/", out)
	compareExtracted(t, out, files)

	// The Joliet and the plain ISO 9660 trees are readable and complete.
	for _, tree := range []string{"norock", "ecma119"} {
		paths := xorrisoPaths(xorriso(t, "-read_fs", tree, "-indev", img, "-find", "/"))
		if len(paths) != len(want)+1 {
			t.Errorf("xorriso -read_fs %s lists %d entries, want %d", tree, len(paths), len(want)+1)
		}
		if tree == "norock" && !contains(paths, "/unicode/日本語.txt") {
			t.Errorf("xorriso -read_fs norock does not list the unicode name")
		}
	}

	// Every block is readable.
	report := xorriso(t, "-indev", img, "-check_media", "--")
	if !regexp.MustCompile(`Media region :\s+0 ,\s+\d+ , \+ good`).MatchString(report) {
		t.Errorf("xorriso -check_media did not report the image as good:\n%s", report)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// TestReadXorrisoImage reads images made by xorriso: with Rock Ridge (and a
// symlink), with Joliet only, and plain.
func TestReadXorrisoImage(t *testing.T) {
	src := filepath.Join(t.TempDir(), "src")
	files := []testFile{
		{path: "sub/Hello.txt", content: []byte("hello\n")},
		{path: "sub/deeper/x", content: content(9, 5000)},
		{path: "kubernetes-cni-1.7.1-150500.1.1.x86_64.rpm", content: content(10, 3000)},
		{path: strings.Repeat("L", 200), content: []byte("long")},
		{path: "日本語", content: []byte("unicode")},
		{path: "empty", content: nil},
		{path: "emptydir", dir: true},
	}
	writeSources(t, src, files)
	if err := os.Symlink("sub/Hello.txt", filepath.Join(src, "link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/sub/Hello.txt", filepath.Join(src, "abslink")); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	build := func(name string, flags ...string) *Image {
		p := filepath.Join(dir, name)
		// Symlinks cannot go into the Joliet tree: xorriso warns.
		args := append(append([]string{"-as", "mkisofs"}, flags...), "-o", p, src)
		runXorriso(t, false, args...)
		img, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		return openBytes(t, img)
	}

	rr := build("rr.iso", "-R", "-J")
	checkTree(t, rr, append(files[:len(files):len(files)],
		testFile{path: "link", target: "sub/Hello.txt"}, testFile{path: "abslink", target: "/sub/Hello.txt"}))
	if got, err := fs.ReadFile(rr.FS(), "link"); err != nil || string(got) != "hello\n" {
		t.Errorf("reading through the symlink: %q, %v", got, err)
	}
	if err := fstest.TestFS(rr.FS(), "sub/Hello.txt", "link", "abslink", "sub/deeper/x"); err != nil {
		t.Error(err)
	}

	joliet := build("joliet.iso", "-J")
	if _, err := joliet.Stat("kubernetes-cni-1.7.1-150500.1.1.x86_64.rpm"); err != nil {
		t.Errorf("joliet-only image: %v", err)
	}
	checkContent(t, joliet, "sub/deeper/x", files[1].content)
	checkContent(t, joliet, "日本語", []byte("unicode"))

	plain := build("plain.iso")
	for _, fi := range plain.Files() {
		if strings.ContainsAny(fi.Path, ";") {
			t.Errorf("plain image: version not stripped from %q", fi.Path)
		}
	}
}

// TestXorrisoMultiExtent checks multi-extent files with xorriso, using a
// small extent limit.
func TestXorrisoMultiExtent(t *testing.T) {
	lowerExtentSize(t, 4*blockSize)
	files := multiExtentFiles()
	img := saveImage(t, imageOf(t, files))
	sizes, _ := xorrisoSizes(xorriso(t, "-indev", img, "-find", "/", "-exec", "lsdl"))
	for _, f := range files {
		if sizes["/"+f.path] != int64(len(f.content)) {
			t.Errorf("xorriso: %q has size %d, want %d", f.path, sizes["/"+f.path], len(f.content))
		}
	}
	out := filepath.Join(t.TempDir(), "out")
	xorriso(t, "-osirrox", "on", "-indev", img, "-extract", "/", out)
	compareExtracted(t, out, files)
}

// lowerExtentSize sets maxExtentSize for the duration of a test.
func lowerExtentSize(t *testing.T, n int64) {
	old := maxExtentSize
	maxExtentSize = n
	t.Cleanup(func() { maxExtentSize = old })
}

// multiExtentFiles are sized around a 4-block extent limit.
func multiExtentFiles() []testFile {
	return []testFile{
		{path: "a-small", content: []byte("small")},
		{path: "b-exact", content: content(20, 4*blockSize)},
		{path: "c-one-more", content: content(21, 4*blockSize+1)},
		{path: "d-big", content: content(22, 10*blockSize+123)},
		{path: "e-two-full", content: content(23, 8*blockSize)},
		{path: "z-after", content: []byte("after")},
	}
}

// readAllAt reads a whole ReaderAt of the given size in odd-sized pieces.
func readAllAt(t *testing.T, r io.ReaderAt, size int64) []byte {
	t.Helper()
	var out []byte
	buf := make([]byte, 777)
	for off := int64(0); off < size; {
		n, err := r.ReadAt(buf, off)
		out = append(out, buf[:n]...)
		off += int64(n)
		if err != nil && (err != io.EOF || off != size) {
			t.Fatalf("ReadAt(%d): %v", off, err)
		}
	}
	return out
}
