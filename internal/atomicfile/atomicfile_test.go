package atomicfile

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestWriteFileReplaces(t *testing.T) {
	p := filepath.Join(t.TempDir(), "f")
	if err := WriteFile(p, []byte("one"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := WriteFile(p, []byte("two"), 0o644); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(p)
	fi, _ := os.Stat(p)
	if err != nil || string(b) != "two" || fi.Mode().Perm() != 0o644 {
		t.Fatalf("got %q %v %v", b, fi.Mode(), err)
	}
}

func TestFailedFillLeavesTheOldFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	if err := WriteFile(p, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	err := Write(p, 0o644, func(f *os.File) error {
		f.WriteString("half")
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("got %v", err)
	}
	if b, _ := os.ReadFile(p); string(b) != "old" {
		t.Fatalf("target changed to %q", b)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Fatalf("temporary file left: %v", ents)
	}
}

func TestWriteNamed(t *testing.T) {
	dir := t.TempDir()
	p, err := WriteNamed(dir, 0o644, func(f *os.File) (string, error) {
		_, err := f.WriteString("blob")
		return "abc", err
	})
	if err != nil || p != filepath.Join(dir, "abc") {
		t.Fatalf("got %s %v", p, err)
	}
	if b, _ := os.ReadFile(p); string(b) != "blob" {
		t.Fatalf("wrote %q", b)
	}
	for _, bad := range []string{"", "../x", "a/b"} {
		if _, err := WriteNamed(dir, 0o644, func(*os.File) (string, error) { return bad, nil }); err == nil {
			t.Errorf("name %q accepted", bad)
		}
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Fatalf("left behind: %v", ents)
	}
}
