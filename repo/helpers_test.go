package repo

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ferry-k8s/ferry/internal/testutil"
	"github.com/ferry-k8s/ferry/repo/rpmtest"
)

// testRevision stands for SOURCE_DATE_EPOCH in tests.
const testRevision = 1700000000

// fixtureSpecs are packages that exercise what repodata carries: epochs,
// versioned and rich dependencies, weak and reverse dependencies, pre
// requires, requires that createrepo_c drops (rpmlib, own primary files,
// self-provided, duplicates, lower libc.so.6 versions), bad epochs, files of
// every type, primary and non-primary paths, changelogs with equal dates,
// XML special characters, Latin-1 text, a package without files and one
// marked as a source package.
func fixtureSpecs() []rpmtest.Spec {
	var cl []rpmtest.Changelog
	for i := 0; i < 12; i++ {
		cl = append(cl, rpmtest.Changelog{
			Time:   int64(1700000000 - (i/3)*86400),
			Author: fmt.Sprintf("Dev %d <dev%d@example.invalid> - 1.%d  ", i, i, i),
			Text:   fmt.Sprintf("- change %d\n- escape <&> \"q\"", i),
		})
	}
	return []rpmtest.Spec{
		{
			Name: "alpha", Version: "1.2.3", Release: "4.el9", Arch: "x86_64", Epoch: 2,
			Files: map[string][]byte{
				"/usr/bin/alpha":              []byte("#!/bin/sh\necho alpha\n"),
				"/etc/alpha.conf":             []byte("a=1\n"),
				"/usr/share/doc/alpha/README": []byte("readme <&>\n"),
			},
			Dirs:        []string{"/usr/share/doc/alpha"},
			Ghosts:      []string{"/var/log/alpha.log"},
			Requires:    []string{"beta >= 1.0", "/bin/sh", "/usr/bin/alpha", "(gamma or delta)", "rpmlib(CompressedFileNames) <= 3.0.4-1", "alpha-libs = 2:1.2.3-4.el9", "selfprov"},
			PreRequires: []string{"shadow-utils"},
			Provides:    []string{"alpha-cap = 5", "selfprov"},
			Conflicts:   []string{"oldalpha < 1"},
			Obsoletes:   []string{"alpha-legacy <= 0.9"},
			Recommends:  []string{"beta-extras"},
			Suggests:    []string{"alpha-doc > 1:0"},
			URL:         "https://example.invalid/alpha", Vendor: "Ferry", Packager: "Ferry Team <team@example.invalid>", Group: "System/Tools",
		},
		{Name: "beta", Version: "1.0", Files: map[string][]byte{"/usr/lib/beta/x": []byte("x")}},
		{
			Name: "gamma", Version: "3.0", Release: "1", Arch: "x86_64",
			Files: map[string][]byte{
				"/usr/sbin/gammad": []byte("x"), "/opt/x/bin/tool": []byte("y"), "/usr/lib/sendmail": []byte("z"),
				"/usr/share/gamma/x": []byte("w"), "/etc/gamma.conf": []byte("c"),
			},
			Dirs:     []string{"/etc/gamma.d", "/usr/share/gamma"},
			Ghosts:   []string{"/etc/gamma.ghost"},
			Provides: []string{"foo = 1.0", "bar"},
			Requires: []string{"foo = 1.0", "foo", "bar", "/etc/gamma.conf", "/usr/share/gamma/x", "/usr/sbin/gammad"},
			RawRequires: []rpmtest.RawDep{
				{Name: "libc.so.6()(64bit)"}, {Name: "libc.so.6(GLIBC_2.34)(64bit)"}, {Name: "libc.so.6(GLIBC_2.4)(64bit)"},
				{Name: "weakold", Flags: 1 << 19}, {Name: "prereq", Flags: 1 << 6}, {Name: "postreq", Flags: 1 << 10},
				{Name: "preunreq", Flags: 1 << 11},
				{Name: "badepoch", Version: "abc:1.0", Flags: 8}, {Name: "noflagver", Version: "1.0"},
				{Name: "emptyepoch", Version: ":1.0-2", Flags: 12},
				{Name: "dupe", Version: "1", Flags: 12}, {Name: "dupe", Version: "1", Flags: 12},
				{Name: "dupe", Version: "2", Flags: 12}, {Name: "dupe", Version: "1", Flags: 12},
				{Name: "prover", Version: "1.0", Flags: 8 | 1<<9},
			},
			Supplements: []string{"(kernel and gamma-mod)"},
			Enhances:    []string{"delta >= 2"},
			Changelogs:  cl,
			Summary:     "Gamma <&> \"quoted\" 'apos' ünïcode",
			Description: "  line1\nline2 & <b>\r\n\ttab\n\n  ",
		},
		{Name: "latin", Version: "1", Summary: "caf\xe9", Description: "d\xe9j\xe0"},
		{Name: "nofiles", Version: "1", Epoch: 1},
		{Name: "srcpkg", Version: "2", Release: "1", SourcePackage: true, Files: map[string][]byte{"/srcpkg.spec": []byte("Name: srcpkg\n")}},
	}
}

// buildFixtures builds fixtureSpecs into dir.
func buildFixtures(t testing.TB, dir string, sign func([]byte) ([]byte, error)) []string {
	t.Helper()
	var paths []string
	for _, s := range fixtureSpecs() {
		p, err := rpmtest.Build(dir, s, sign)
		if err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	return paths
}

// readAll reads every path with ReadPackage.
func readAll(t testing.TB, paths []string) []*Package {
	t.Helper()
	var pkgs []*Package
	for _, p := range paths {
		pkg, err := ReadPackage(p, "")
		if err != nil {
			t.Fatal(err)
		}
		pkgs = append(pkgs, pkg)
	}
	return pkgs
}

// run runs a program with a time limit and returns its combined output;
// a non-zero exit is returned as an error with the output.
func run(t testing.TB, env []string, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, testutil.Need(t, name), args...)
	cmd.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	err := cmd.Run()
	if err != nil {
		return out.String(), fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, out.String())
	}
	return out.String(), nil
}

// mustRun is run that fails the test on error.
func mustRun(t testing.TB, env []string, name string, args ...string) string {
	t.Helper()
	out, err := run(t, env, name, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// gpgKey is a throw-away OpenPGP signing key in its own GNUPGHOME.
type gpgKey struct {
	t    testing.TB
	home string
	env  []string
}

// newGPGKey makes an RSA signing key without a passphrase in a temporary
// GNUPGHOME and stops that home's gpg-agent when the test ends.
func newGPGKey(t testing.TB, uid string) *gpgKey {
	t.Helper()
	home := testutil.GPGHome(t)
	k := &gpgKey{t: t, home: home, env: []string{"GNUPGHOME=" + home}}
	k.gpg("--quick-gen-key", uid, "rsa2048", "sign", "never")
	return k
}

func (k *gpgKey) gpg(args ...string) string {
	k.t.Helper()
	base := []string{"--batch", "--yes", "--pinentry-mode", "loopback", "--passphrase", ""}
	return mustRun(k.t, k.env, "gpg", append(base, args...)...)
}

// sign is an rpmtest signer: a binary detached signature made by gpg.
func (k *gpgKey) sign(data []byte) ([]byte, error) {
	dir, err := os.MkdirTemp(k.home, "sign-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	in, sig := filepath.Join(dir, "data"), filepath.Join(dir, "data.sig")
	if err := os.WriteFile(in, data, 0o600); err != nil {
		return nil, err
	}
	if _, err := run(k.t, k.env, "gpg", "--batch", "--yes", "--pinentry-mode", "loopback", "--passphrase", "",
		"--digest-algo", "SHA256", "--detach-sign", "-o", sig, in); err != nil {
		return nil, err
	}
	return os.ReadFile(sig)
}

// exportArmored writes the public key, armored, to path.
func (k *gpgKey) exportArmored(path string) {
	k.t.Helper()
	k.gpg("--armor", "--output", path, "--export")
}

// signRepomd writes repodata/repomd.xml.asc for the repository at dir.
func (k *gpgKey) signRepomd(dir string) {
	k.t.Helper()
	md := filepath.Join(dir, "repodata", "repomd.xml")
	k.gpg("--digest-algo", "SHA256", "--armor", "--detach-sign", "--output", md+".asc", md)
}
