package fileutil

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
)

func write(t *testing.T, data string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestReadFileBounded(t *testing.T) {
	p := write(t, "12345")
	for _, read := range []struct {
		name string
		fn   func(string, int64) ([]byte, error)
	}{{"ReadFile", ReadFile}, {"ReadRegularFile", ReadRegularFile}} {
		if got, err := read.fn(p, 5); err != nil || string(got) != "12345" {
			t.Errorf("%s at the limit: %q %v", read.name, got, err)
		}
		_, err := read.fn(p, 4)
		var tl *TooLargeError
		if !errors.Is(err, ErrTooLarge) || !errors.As(err, &tl) || tl.Limit != 4 {
			t.Fatalf("%s over the limit: %v", read.name, err)
		}
		if want := p + " is larger than 4 bytes"; err.Error() != want {
			t.Errorf("%s: error %q, want %q", read.name, err, want)
		}
		if _, err := read.fn(p+".missing", 5); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s of a missing file: %v", read.name, err)
		}
	}
}

func TestReadRegularFileRefusesADirectory(t *testing.T) {
	dir := t.TempDir()
	if _, err := ReadRegularFile(dir, 10); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Fatalf("got %v", err)
	}
	if _, err := ReadFile(dir, 10); err == nil {
		t.Fatal("reading a directory succeeded")
	}
}

func TestReadFS(t *testing.T) {
	fsys := fstest.MapFS{"a/b": {Data: []byte("hello")}, "d": {Mode: fs.ModeDir}}
	if got, err := ReadFS(fsys, "a/b", 5); err != nil || string(got) != "hello" {
		t.Fatalf("got %q %v", got, err)
	}
	if _, err := ReadFS(fsys, "a/b", 2); !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "a/b") {
		t.Fatalf("got %v", err)
	}
	if _, err := ReadFS(fsys, "d", 5); err == nil {
		t.Fatal("read a directory")
	}
}

func TestReadAll(t *testing.T) {
	if _, err := ReadAll(strings.NewReader("abc"), "the body", 2); err == nil || err.Error() != "the body is larger than 2 bytes" {
		t.Fatalf("got %v", err)
	}
	if got, err := ReadAll(strings.NewReader("abc"), "the body", 3); err != nil || string(got) != "abc" {
		t.Fatalf("got %q %v", got, err)
	}
}

func TestSHA256(t *testing.T) {
	p := write(t, "abc")
	const abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
	sum, n, err := SHA256(p)
	if err != nil || sum != abc || n != 3 {
		t.Fatalf("got %s %d %v", sum, n, err)
	}
	if d, err := Digest(p); err != nil || d != "sha256:"+abc {
		t.Fatalf("got %s %v", d, err)
	}
	if _, err := Digest(p + ".missing"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("got %v", err)
	}
}
