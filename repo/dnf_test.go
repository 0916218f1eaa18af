package repo

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferry-k8s/ferry/internal/testutil"
	"github.com/ferry-k8s/ferry/repo/rpmtest"
)

// dnfOptions selects the signature checks of a dnf run.
type dnfOptions struct {
	// gpgKey is the path of an armored public key; empty turns package
	// signature checks (gpgcheck) off.
	gpgKey string
	// repoGPGCheck checks repodata/repomd.xml.asc against gpgKey.
	repoGPGCheck bool
}

// dnfArgs is the dnf command line that installs pkgs from the repository at
// repoDir, and from nothing else, into the empty root root. It works with
// Debian 12's dnf 4.14:
//
//	dnf --config=<cfg> --noplugins --installroot=<root>
//	    --repofrompath=ferry,<repoDir> --repo=ferry
//	    --setopt=reposdir=/dev/null --setopt=cachedir=<cache>
//	    --setopt=install_weak_deps=False --releasever=1 -y
//	    --setopt=ferry.gpgcheck=0|1 [--setopt=ferry.gpgkey=file://<key>]
//	    --setopt=ferry.repo_gpgcheck=0|1
//	    install <pkgs>
//
// cfg is a file holding just "[main]", so that the host's dnf.conf and repo
// files play no part; cachedir keeps dnf's cache out of /var/cache.
func dnfArgs(cfg, root, cache, repoDir string, o dnfOptions, pkgs ...string) []string {
	args := []string{
		"--config=" + cfg, "--noplugins", "--installroot=" + root,
		"--repofrompath=ferry," + repoDir, "--repo=ferry",
		"--setopt=reposdir=/dev/null", "--setopt=cachedir=" + cache,
		"--setopt=install_weak_deps=False", "--releasever=1", "-y",
	}
	if o.gpgKey != "" {
		args = append(args, "--setopt=ferry.gpgcheck=1", "--setopt=ferry.gpgkey=file://"+o.gpgKey)
	} else {
		args = append(args, "--setopt=ferry.gpgcheck=0")
	}
	if o.repoGPGCheck {
		args = append(args, "--setopt=ferry.repo_gpgcheck=1")
	} else {
		args = append(args, "--setopt=ferry.repo_gpgcheck=0")
	}
	return append(append(args, "install"), pkgs...)
}

// dnfInstall runs dnfArgs in fresh temporary directories and returns the
// install root and dnf's output. With repo_gpgcheck, librepo starts a
// gpg-agent for the keyring it keeps in the cache; it is stopped when the
// test ends.
func dnfInstall(t *testing.T, repoDir string, o dnfOptions, pkgs ...string) (string, string, error) {
	t.Helper()
	tmp := t.TempDir()
	cfg, root, cache := filepath.Join(tmp, "dnf.conf"), filepath.Join(tmp, "root"), filepath.Join(tmp, "cache")
	if err := os.WriteFile(cfg, []byte("[main]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{root, cache} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	testutil.StopDNFKeyringAgents(t, cache)
	out, err := run(t, nil, "dnf", dnfArgs(cfg, root, cache, repoDir, o, pkgs...)...)
	return root, out, err
}

// dnfSpecs are two installable packages: ferry-hello requires ferry-lib
// (which has an epoch), and their files are checked after installation.
func dnfSpecs() []rpmtest.Spec {
	return []rpmtest.Spec{
		{Name: "ferry-hello", Version: "1.0", Release: "1", Requires: []string{"ferry-lib >= 1:1.0"},
			Files: map[string][]byte{"/usr/bin/ferry-hello": []byte("#!/bin/sh\necho hello\n"), "/etc/ferry/hello.conf": []byte("greeting=hello\n")},
			Dirs:  []string{"/etc/ferry"}},
		{Name: "ferry-lib", Version: "1.2", Release: "3", Epoch: 1, Provides: []string{"libferry = 1.2"},
			Files: map[string][]byte{"/usr/lib/ferry/lib.txt": []byte("lib\n")}},
	}
}

// makeDNFRepo builds dnfSpecs (and, when withFixtures, the odd fixture
// packages, so that dnf parses all of our metadata) into a new directory
// with our repodata.
func makeDNFRepo(t *testing.T, sign func([]byte) ([]byte, error), withFixtures bool) string {
	t.Helper()
	dir := t.TempDir()
	var paths []string
	for _, s := range dnfSpecs() {
		p, err := rpmtest.Build(dir, s, sign)
		if err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	if withFixtures {
		paths = append(paths, buildFixtures(t, dir, sign)...)
	}
	if _, err := WriteRepodata(dir, readAll(t, paths), RepodataOptions{Revision: testRevision}); err != nil {
		t.Fatal(err)
	}
	return dir
}

// checkInstalled checks the files of dnfSpecs under root and that rpm's
// database there knows both packages.
func checkInstalled(t *testing.T, root string) {
	t.Helper()
	for path, want := range map[string]string{
		"usr/bin/ferry-hello":   "#!/bin/sh\necho hello\n",
		"etc/ferry/hello.conf":  "greeting=hello\n",
		"usr/lib/ferry/lib.txt": "lib\n",
	} {
		got, err := os.ReadFile(filepath.Join(root, path))
		if err != nil {
			t.Errorf("installed file: %v", err)
		} else if string(got) != want {
			t.Errorf("%s: %q, want %q", path, got, want)
		}
	}
	out := mustRun(t, nil, "rpm", "--root", root, "-q", "--qf", "%{NAME}-%{EPOCHNUM}:%{VERSION}-%{RELEASE}\n", "ferry-hello", "ferry-lib")
	if out != "ferry-hello-0:1.0-1\nferry-lib-1:1.2-3\n" {
		t.Errorf("rpm -q in the install root: %q", out)
	}
}

func TestDNFInstallUnsigned(t *testing.T) {
	testutil.Need(t, "dnf")
	repoDir := makeDNFRepo(t, nil, true)
	root, out, err := dnfInstall(t, repoDir, dnfOptions{}, "ferry-hello")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "Complete!") {
		t.Errorf("dnf output: %s", out)
	}
	checkInstalled(t, root)

	// dnf resolves a virtual provide through our metadata too.
	root, _, err = dnfInstall(t, repoDir, dnfOptions{}, "libferry")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "usr/lib/ferry/lib.txt")); err != nil {
		t.Error(err)
	}
}

func TestDNFInstallSigned(t *testing.T) {
	testutil.Need(t, "dnf")
	key := newGPGKey(t, "Ferry Test <test@ferry.invalid>")
	repoDir := makeDNFRepo(t, key.sign, false)
	pub := filepath.Join(t.TempDir(), "RPM-GPG-KEY-ferry")
	key.exportArmored(pub)
	key.signRepomd(repoDir)

	root, out, err := dnfInstall(t, repoDir, dnfOptions{gpgKey: pub, repoGPGCheck: true}, "ferry-hello")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "Key imported successfully") || !strings.Contains(out, "Complete!") {
		t.Errorf("dnf output: %s", out)
	}
	checkInstalled(t, root)

	// The checks are real: a package signed by another key, unsigned
	// packages, and a repomd.xml changed after signing are all refused.
	other := newGPGKey(t, "Someone Else <else@ferry.invalid>")
	otherRepo := makeDNFRepo(t, other.sign, false)
	if _, out, err := dnfInstall(t, otherRepo, dnfOptions{gpgKey: pub}, "ferry-hello"); err == nil {
		t.Errorf("dnf installed packages signed by an unknown key: %s", out)
	}
	unsigned := makeDNFRepo(t, nil, false)
	if _, out, err := dnfInstall(t, unsigned, dnfOptions{gpgKey: pub}, "ferry-hello"); err == nil {
		t.Errorf("dnf installed unsigned packages with gpgcheck=1: %s", out)
	}
	md := filepath.Join(repoDir, "repodata", "repomd.xml")
	data, err := os.ReadFile(md)
	if err != nil {
		t.Fatal(err)
	}
	tampered := strings.Replace(string(data), "<revision>", "<revision>1", 1)
	if err := os.WriteFile(md, []byte(tampered), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, out, err := dnfInstall(t, repoDir, dnfOptions{gpgKey: pub, repoGPGCheck: true}, "ferry-hello"); err == nil {
		t.Errorf("dnf accepted a repomd.xml changed after signing: %s", out)
	} else if !strings.Contains(out, "GPG signature verification error") {
		t.Errorf("dnf failed for another reason than the signature: %s", out)
	}
}
