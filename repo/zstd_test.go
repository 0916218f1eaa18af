package repo

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// TestReadZstdPrimary reads primary metadata compressed by the real zstd
// tool (as Fedora's repositories are), through ReadRepodataFS and through
// ParseRepomdPrimary + ReadPrimary, the entry points for downloaded files.
func TestReadZstdPrimary(t *testing.T) {
	prim := validPrimary(t)
	in := filepath.Join(t.TempDir(), "primary.xml")
	if err := os.WriteFile(in, prim, 0o644); err != nil {
		t.Fatal(err)
	}
	mustRun(t, nil, "zstd", "-q", "-19", in)
	zst, err := os.ReadFile(in + ".zst")
	if err != nil {
		t.Fatal(err)
	}
	const href = "repodata/x-primary.xml.zst"
	fsys := repoFS(href, zst, prim)
	pkgs, err := ReadRepodataFS(fsys, ".")
	if err != nil || len(pkgs) != len(fixtureSpecs()) {
		t.Fatalf("zstd primary: %d packages, %v", len(pkgs), err)
	}

	md, err := ParseRepomdPrimary(fsys["repodata/repomd.xml"].Data)
	if err != nil {
		t.Fatal(err)
	}
	if md.Href != href || md.Size != int64(len(zst)) || md.OpenSize != int64(len(prim)) || md.SHA256 != sha256Hex(zst) {
		t.Fatalf("repomd entry %+v", md)
	}
	again, err := ReadPrimary(bytes.NewReader(zst), md, ReadOptions{})
	if err != nil || len(again) != len(pkgs) || again[0].NEVRA() != pkgs[0].NEVRA() {
		t.Fatalf("ReadPrimary: %d packages, %v", len(again), err)
	}
	// The checks hold on this path too: a changed byte, a bound.
	bad := bytes.Clone(zst)
	bad[len(bad)/2] ^= 0x55
	if _, err := ReadPrimary(bytes.NewReader(bad), md, ReadOptions{}); err == nil {
		t.Error("ReadPrimary accepted a damaged file")
	}
	if _, err := ReadPrimary(bytes.NewReader(zst), md, ReadOptions{MaxPrimaryOpenSize: 100}); !errors.Is(err, ErrTooLarge) {
		t.Errorf("open-size over the limit: %v", err)
	}
	if _, err := ParseRepomdPrimary([]byte("<repomd/>")); err == nil {
		t.Error("repomd.xml without primary accepted")
	}

	// A zstd bomb: a small file that expands past the declared open-size.
	big := filepath.Join(t.TempDir(), "big.xml")
	if err := os.WriteFile(big, append([]byte("<metadata>"), bytes.Repeat([]byte(" "), 64<<20)...), 0o644); err != nil {
		t.Fatal(err)
	}
	mustRun(t, nil, "zstd", "-q", big)
	bomb, err := os.ReadFile(big + ".zst")
	if err != nil {
		t.Fatal(err)
	}
	fsys = repoFS(href, bomb, prim) // declares the small open-size of prim
	if _, err := ReadRepodataFS(fsys, "."); !errors.Is(err, ErrTooLarge) {
		t.Errorf("zstd bomb: %v", err)
	}
}
