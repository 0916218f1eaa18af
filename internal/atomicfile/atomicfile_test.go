package atomicfile

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
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

// WriteLine writes a missing record, leaves an equal one untouched (its
// modification time stays) and replaces another.
func TestWriteLine(t *testing.T) {
	p := filepath.Join(t.TempDir(), "state", "target")
	if err := WriteLine(p, "a.iso", 0o644); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-time.Hour).Truncate(time.Second)
	if err := os.Chtimes(p, old, old); err != nil {
		t.Fatal(err)
	}
	if err := WriteLine(p, "a.iso", 0o644); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(p); err != nil || !fi.ModTime().Equal(old) {
		t.Errorf("an equal record was rewritten: %v %v", fi.ModTime(), err)
	}
	if err := WriteLine(p, "b.iso", 0o644); err != nil {
		t.Fatal(err)
	}
	if data, _ := os.ReadFile(p); string(data) != "b.iso\n" {
		t.Errorf("record %q, want b.iso", data)
	}
}
