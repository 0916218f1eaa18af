package rpmbuild

import (
	"bytes"
	"errors"
	"slices"
	"testing"

	"github.com/ferry-k8s/ferry/repo"
)

// FuzzWrite feeds arbitrary names, versions, paths, owners, dependencies
// and sysusers text to Write: it must either refuse them with ErrInvalid or
// write a package that our own reader (go-rpmutils underneath) reads back
// with the same name, version, file and dependency. Never a panic.
func FuzzWrite(f *testing.F) {
	f.Add("kubelet", "1.34.4", "1", "/usr/bin/kubelet", "root", "containerd", ">=", "2.0", "u etcd -\n", "../x")
	f.Add("a", "1~rc1^git", "0.el9", "/etc/k/../x", "Etcd", "(a or b)", "=>", "1:2-3", "FERRY_SYSUSERS_EOF\n", "")
	f.Add("", "", "", "", "", "", "", "", "", "")
	f.Add("x+y", "1_2", "3", "/a b/\u00e9", "etcd$", "/bin/sh", "", "", "g x -\r\n", "/abs")
	f.Fuzz(func(t *testing.T, name, version, release, path, owner, dep, flags, depVersion, conf, link string) {
		p := Package{
			Name: name, Version: version, Release: release, Arch: "noarch",
			Summary: "fuzz", License: "MIT", BuildTime: epoch,
			Files: []File{
				{Path: path, Body: []byte("x"), Mode: 0o644, Owner: owner},
				{Path: "/usr/share/fuzz/link", Type: Symlink, LinkTarget: link},
			},
			Requires: []Relation{{Name: dep, Flags: flags, Version: depVersion}},
			Sysusers: []Sysusers{{Name: "fuzz", Conf: []byte(conf)}},
		}
		var b bytes.Buffer
		err := Write(&b, p, Options{Compression: "gzip"})
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("not ErrInvalid: %v", err)
			}
			if b.Len() != 0 {
				t.Fatalf("%d bytes written with error %v", b.Len(), err)
			}
			return
		}
		pkg, err := repo.ReadPackageFrom(bytes.NewReader(b.Bytes()), int64(b.Len()), "fuzz.rpm")
		if err != nil {
			t.Fatalf("our reader refuses what we wrote: %v", err)
		}
		if pkg.Name != name || pkg.Version != version || pkg.Release != release {
			t.Fatalf("read %s-%s-%s, wrote %s-%s-%s", pkg.Name, pkg.Version, pkg.Release, name, version, release)
		}
		if !slices.ContainsFunc(pkg.Files, func(f repo.File) bool { return f.Path == path }) {
			t.Fatalf("file %q not in %v", path, pkg.Files)
		}
		// The reader drops requirements the package satisfies itself, as
		// createrepo_c does.
		self := slices.ContainsFunc(pkg.Provides, func(d repo.Dependency) bool { return d.Name == dep }) ||
			slices.ContainsFunc(pkg.Files, func(f repo.File) bool { return f.Path == dep })
		if !self && !slices.ContainsFunc(pkg.Requires, func(d repo.Dependency) bool { return d.Name == dep }) {
			t.Fatalf("requirement %q not in %v", dep, pkg.Requires)
		}
	})
}
