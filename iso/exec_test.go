package iso

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

func TestExecutableMode(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "tool"), []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "data"), []byte("x"), 0o664); err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(t.TempDir(), "x.iso")
	f, err := os.Create(img)
	if err != nil {
		t.Fatal(err)
	}
	if err := WriteTree(f, dir, WriteOptions{VolumeID: "X"}); err != nil {
		t.Fatal(err)
	}
	f.Close()
	data, _ := os.ReadFile(img)
	im := openBytes(t, data)
	for p, want := range map[string]os.FileMode{"tool": 0o755, "data": 0o644} {
		fi, err := im.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode.Perm() != want {
			t.Errorf("%s: mode %v, want %v", p, fi.Mode.Perm(), want)
		}
	}
	// xorriso sees the same modes.
	xo, err := exec.LookPath("xorriso")
	if err != nil {
		t.Fatal("xorriso is required:", err)
	}
	out := filepath.Join(t.TempDir(), "out")
	if b, err := exec.Command(xo, "-osirrox", "on", "-indev", img, "-extract", "/", out).CombinedOutput(); err != nil {
		t.Fatalf("xorriso: %v\n%s", err, b)
	}
	fi, err := os.Stat(filepath.Join(out, "tool"))
	if err != nil || fi.Mode().Perm()&0o111 == 0 {
		t.Errorf("extracted tool is not executable: %v %v", fi.Mode(), err)
	}
}
