package rpmtest

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

func TestBuildIsReproducible(t *testing.T) {
	s := Spec{Name: "a", Version: "1", Epoch: 3, Files: map[string][]byte{"/usr/bin/a": []byte("a"), "/etc/a": []byte("b")},
		Requires: []string{"b >= 2"}, Changelogs: []Changelog{{Time: 1, Author: "x", Text: "y"}}}
	a, err := Bytes(s, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Bytes(s, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) {
		t.Fatal("two builds of the same spec differ")
	}
	dir := t.TempDir()
	p, err := Build(dir, s, nil)
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Base(p) != "a-1-1.noarch.rpm" {
		t.Errorf("file name %s", p)
	}
	if c, err := os.ReadFile(p); err != nil || !bytes.Equal(c, a) {
		t.Errorf("Build wrote other bytes than Bytes returns (%v)", err)
	}
}

func TestSignerSeesHeader(t *testing.T) {
	var calls [][]byte
	sign := func(b []byte) ([]byte, error) {
		calls = append(calls, append([]byte{}, b...))
		return []byte("not a real signature"), nil
	}
	data, err := Bytes(Spec{Name: "s", Version: "1", Files: map[string][]byte{"/x": []byte("x")}}, sign)
	if err != nil {
		t.Fatal(err)
	}
	// Header alone, then header and payload; the header starts with the
	// header magic and the file ends with the payload.
	if len(calls) != 2 || !bytes.HasPrefix(calls[0], []byte{0x8e, 0xad, 0xe8, 0x01}) ||
		!bytes.HasPrefix(calls[1], calls[0]) || !bytes.HasSuffix(data, calls[1][len(calls[0]):]) {
		t.Fatalf("signer called %d times with unexpected data", len(calls))
	}
	if !bytes.Contains(data, []byte("not a real signature")) {
		t.Error("signature not in the package")
	}
}

func TestMany(t *testing.T) {
	dir := t.TempDir()
	paths, err := Many(dir, 3, 100, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"ferry-test-0000-1.0-1.noarch.rpm", "ferry-test-0001-1.0-1.noarch.rpm", "ferry-test-0002-1.0-1.noarch.rpm"}
	for i, p := range paths {
		if filepath.Base(p) != want[i] {
			t.Errorf("path %d: %s, want %s", i, p, want[i])
		}
	}
	if len(paths) != 3 {
		t.Fatalf("%d paths", len(paths))
	}
	if c := Content("x", 100); len(c) != 100 || !bytes.Equal(c, Content("x", 100)) || bytes.Equal(c, Content("y", 100)) {
		t.Error("Content is not deterministic or not seeded")
	}
}

func TestBadSpecs(t *testing.T) {
	for _, s := range []Spec{
		{Version: "1"},
		{Name: "a"},
		{Name: "a", Version: "1", Epoch: -1},
		{Name: "a", Version: "1", Files: map[string][]byte{"relative": nil}},
		{Name: "a", Version: "1", Requires: []string{"a =< 1"}},
		{Name: "a", Version: "1", Compressor: "nope"},
	} {
		if _, err := Bytes(s, nil); err == nil {
			t.Errorf("%+v: no error", s)
		}
	}
}
