package repo

import (
	"testing"

	"github.com/ferry-k8s/ferry/repo/rpmtest"
)

func benchPackages(b *testing.B, n int) (string, []string) {
	b.Helper()
	dir := b.TempDir()
	paths, err := rpmtest.Many(dir, n, 4096, nil)
	if err != nil {
		b.Fatal(err)
	}
	return dir, paths
}

// BenchmarkWriteRepodata writes repodata for 200 small packages.
func BenchmarkWriteRepodata(b *testing.B) {
	dir, paths := benchPackages(b, 200)
	pkgs := readAll(b, paths)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := WriteRepodata(dir, pkgs, RepodataOptions{Revision: testRevision}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkReadPackage reads (and hashes) 200 small packages.
func BenchmarkReadPackage(b *testing.B) {
	_, paths := benchPackages(b, 200)
	b.ReportAllocs()
	for b.Loop() {
		for _, p := range paths {
			if _, err := ReadPackage(p, ""); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// BenchmarkReadRepodata reads back the repodata of 200 packages.
func BenchmarkReadRepodata(b *testing.B) {
	dir, paths := benchPackages(b, 200)
	if _, err := WriteRepodata(dir, readAll(b, paths), RepodataOptions{Revision: testRevision}); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		pkgs, err := ReadRepodata(dir)
		if err != nil || len(pkgs) != 200 {
			b.Fatal(len(pkgs), err)
		}
	}
}
