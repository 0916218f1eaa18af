package repo

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferry-k8s/ferry/repo/rpmtest"
)

// TestRPMReadsGeneratedPackages checks that rpm itself reads the rpmtest
// packages and agrees with ReadPackage on the header fields.
func TestRPMReadsGeneratedPackages(t *testing.T) {
	dir := t.TempDir()
	paths := buildFixtures(t, dir, nil)
	many, err := rpmtest.Many(dir, 3, 1000, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range append(paths, many...) {
		pkg, err := ReadPackage(p, "")
		if err != nil {
			t.Fatal(err)
		}
		got := mustRun(t, nil, "rpm", "-qp", "--qf", "%{NAME}|%{EPOCHNUM}|%{VERSION}|%{RELEASE}|%|SOURCEPACKAGE?{src}:{%{ARCH}}||%{LONGSIZE}|%{BUILDTIME}|%{LONGARCHIVESIZE}", p)
		want := strings.Join([]string{pkg.Name, itoa(int64(pkg.Epoch)), pkg.Version, pkg.Release, pkg.Arch,
			itoa(pkg.InstalledSize), itoa(pkg.BuildTime), itoa(pkg.ArchiveSize)}, "|")
		if got != want {
			t.Errorf("%s: rpm says %q, ReadPackage %q", filepath.Base(p), got, want)
		}
		// rpm lists the same files.
		files := strings.Fields(mustRun(t, nil, "rpm", "-qpl", p))
		var ours []string
		for _, f := range pkg.Files {
			ours = append(ours, f.Path)
		}
		if len(ours) == 0 {
			ours = []string{"(contains", "no", "files)"}
		}
		if strings.Join(files, " ") != strings.Join(ours, " ") {
			t.Errorf("%s: rpm lists %v, ReadPackage %v", filepath.Base(p), files, ours)
		}
		// Digests are valid (no signature to check).
		if out := mustRun(t, nil, "rpmkeys", "--root", t.TempDir(), "--checksig", p); !strings.Contains(out, "digests OK") {
			t.Errorf("%s: rpmkeys -K: %s", filepath.Base(p), out)
		}
	}
	// Reproducible: building the same spec twice gives the same bytes.
	s := fixtureSpecs()[0]
	a, err := rpmtest.Bytes(s, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := rpmtest.Bytes(s, nil)
	if err != nil {
		t.Fatal(err)
	}
	if string(a) != string(b) {
		t.Error("rpmtest.Bytes is not reproducible")
	}
}

// TestRPMVerifiesSignature signs packages with a gpg key through the
// rpmtest signer and has rpmkeys check them against an rpmdb that has (and
// one that lacks) the public key.
func TestRPMVerifiesSignature(t *testing.T) {
	key := newGPGKey(t, "Ferry Test <test@ferry.invalid>")
	dir := t.TempDir()
	signed, err := rpmtest.Build(dir, rpmtest.Spec{Name: "signed", Version: "1", Files: map[string][]byte{"/usr/share/signed/x": []byte("x")}}, key.sign)
	if err != nil {
		t.Fatal(err)
	}
	pub := filepath.Join(dir, "key.asc")
	key.exportArmored(pub)

	// Without the key: the signature is there but cannot be checked.
	noKeyRoot := t.TempDir()
	if out, err := run(t, nil, "rpmkeys", "--root", noKeyRoot, "--checksig", "-v", signed); err == nil {
		t.Errorf("rpmkeys accepted a signature without the key: %s", out)
	} else if !strings.Contains(out, "NOKEY") {
		t.Errorf("rpmkeys without the key: %s", out)
	}

	root := t.TempDir()
	mustRun(t, nil, "rpmkeys", "--root", root, "--import", pub)
	out := mustRun(t, nil, "rpmkeys", "--root", root, "--checksig", "-v", signed)
	if !strings.Contains(out, "Header V4 RSA/SHA256 Signature, key ID") || !strings.Contains(out, ": OK") || strings.Contains(out, "NOKEY") {
		t.Errorf("rpmkeys -Kv: %s", out)
	}
	if out := mustRun(t, nil, "rpmkeys", "--root", root, "--checksig", signed); !strings.Contains(out, "digests signatures OK") {
		t.Errorf("rpmkeys -K: %s", out)
	}

	// A flipped payload byte breaks the payload digest and signature.
	data, err := os.ReadFile(signed)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)-10] ^= 0xff
	bad := filepath.Join(dir, "bad.rpm")
	if err := os.WriteFile(bad, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := run(t, nil, "rpmkeys", "--root", root, "--checksig", bad); err == nil {
		t.Errorf("rpmkeys accepted a corrupted package: %s", out)
	}

	// ReadPackage reads signed packages too.
	if _, err := ReadPackage(signed, ""); err != nil {
		t.Fatal(err)
	}
}

// TestReadRepodataVerifiesRepomd checks that VerifyRepomd sees the exact
// repomd.xml and repomd.xml.asc bytes, here checked by gpg --verify.
func TestReadRepodataVerifiesRepomd(t *testing.T) {
	key := newGPGKey(t, "Ferry Test <test@ferry.invalid>")
	dir := t.TempDir()
	if _, err := WriteRepodata(dir, readAll(t, buildFixtures(t, dir, nil)), RepodataOptions{Revision: testRevision}); err != nil {
		t.Fatal(err)
	}
	key.signRepomd(dir)
	calls := 0
	verify := func(md, asc []byte) error {
		calls++
		if asc == nil {
			return errors.New("repomd.xml is not signed")
		}
		tmp := t.TempDir()
		mdPath, ascPath := filepath.Join(tmp, "repomd.xml"), filepath.Join(tmp, "repomd.xml.asc")
		if err := os.WriteFile(mdPath, md, 0o644); err != nil {
			return err
		}
		if err := os.WriteFile(ascPath, asc, 0o644); err != nil {
			return err
		}
		_, err := run(t, key.env, "gpg", "--batch", "--verify", ascPath, mdPath)
		return err
	}
	opts := ReadOptions{VerifyRepomd: verify}
	pkgs, err := ReadRepodataFSWithOptions(os.DirFS(dir), ".", opts)
	if err != nil || len(pkgs) != len(fixtureSpecs()) || calls != 1 {
		t.Fatalf("signed repository: %d packages, %d calls, %v", len(pkgs), calls, err)
	}
	md := filepath.Join(dir, "repodata", "repomd.xml")
	data, err := os.ReadFile(md)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(md, append(data, ' '), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadRepodataFSWithOptions(os.DirFS(dir), ".", opts); err == nil || !strings.Contains(err.Error(), "verifying repodata/repomd.xml") {
		t.Errorf("changed repomd.xml: %v", err)
	}
	if err := os.Remove(md + ".asc"); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadRepodataFSWithOptions(os.DirFS(dir), ".", opts); err == nil || !strings.Contains(err.Error(), "not signed") {
		t.Errorf("unsigned repomd.xml: %v", err)
	}
}
