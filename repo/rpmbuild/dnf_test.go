package rpmbuild

import (
	"bufio"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/ferry-k8s/ferry/internal/testutil"
)

// basePackage packages this machine's own dash as /bin/sh and, when
// withSysusers, systemd-sysusers, with the shared libraries they load: an
// empty dnf --installroot has no shell, and our scriptlets need one
// (they require /bin/sh, as rpmbuild's do). The binaries are Debian's, not
// the target distribution's, which does not matter for a chroot on this
// machine.
func basePackage(t *testing.T, withSysusers bool) Package {
	t.Helper()
	bins := []string{testutil.Need(t, "dash")}
	if withSysusers {
		bins = append(bins, testutil.Need(t, "systemd-sysusers"))
	}
	p := Package{
		Name: "ferry-test-base", Version: "1", Release: "1", Arch: "x86_64",
		Summary: "A shell for scriptlets in a test install root", License: "GPL-2.0-or-later",
		BuildTime: epoch,
		Files: []File{
			{Path: "/etc", Type: Dir, Mode: 0o755},
			{Path: "/bin/sh", Source: bins[0], Mode: 0o755},
		},
	}
	if withSysusers {
		p.Files = append(p.Files, File{Path: "/usr/bin/systemd-sysusers", Source: bins[1], Mode: 0o755})
	}
	seen := map[string]bool{}
	re := regexp.MustCompile(`(?:=> )?(/\S+) \(0x`)
	for _, b := range bins {
		out := mustRun(t, "ldd", b)
		for _, m := range re.FindAllStringSubmatch(out, -1) {
			if lib := m[1]; !seen[lib] {
				seen[lib] = true
				// Source follows the symlink (ld-linux, lib*.so.N) to the
				// library itself.
				p.Files = append(p.Files, File{Path: lib, Source: lib, Mode: 0o755})
			}
		}
	}
	if !seen["/lib64/ld-linux-x86-64.so.2"] {
		t.Fatalf("ldd did not list the x86_64 dynamic loader:\n%v", seen)
	}
	return p
}

// dnfRoot is an install root that dnf installs into from one local
// repository, with gpgcheck on, as the nodes will.
type dnfRoot struct {
	t                   *testing.T
	root, repo, keyPath string
}

func newDNFRoot(t *testing.T, keyPath string) *dnfRoot {
	testutil.Need(t, "dnf")
	testutil.Need(t, "createrepo_c")
	return &dnfRoot{t: t, root: t.TempDir(), repo: t.TempDir(), keyPath: keyPath}
}

// add writes packages into the repository and (re)makes its metadata with
// createrepo_c.
func (d *dnfRoot) add(o Options, pkgs ...Package) {
	d.t.Helper()
	for _, p := range pkgs {
		writeRPM(d.t, d.repo, p, o)
	}
	mustRun(d.t, "createrepo_c", "--quiet", "--update", d.repo)
}

// dnf runs dnf against the repository and the root (with a fresh cache, so
// that changed metadata is read):
//
//	dnf --config=<empty> --noplugins --installroot=<root>
//	    --repofrompath=ferry,<repo> --repo=ferry --setopt=reposdir=/dev/null
//	    --setopt=cachedir=<tmp> --setopt=install_weak_deps=False
//	    --releasever=1 -y --setopt=ferry.gpgcheck=1
//	    --setopt=ferry.gpgkey=file://<key> <args>
func (d *dnfRoot) dnf(args ...string) (string, error) {
	d.t.Helper()
	tmp := d.t.TempDir()
	cfg := filepath.Join(tmp, "dnf.conf")
	if err := os.WriteFile(cfg, []byte("[main]\n"), 0o644); err != nil {
		d.t.Fatal(err)
	}
	base := []string{
		"--config=" + cfg, "--noplugins", "--installroot=" + d.root,
		"--repofrompath=ferry," + d.repo, "--repo=ferry",
		"--setopt=reposdir=/dev/null", "--setopt=cachedir=" + filepath.Join(tmp, "cache"),
		"--setopt=install_weak_deps=False", "--releasever=1", "-y",
		"--setopt=ferry.gpgcheck=1", "--setopt=ferry.gpgkey=file://" + d.keyPath,
	}
	return run(d.t, "dnf", append(base, args...)...)
}

func (d *dnfRoot) mustDNF(args ...string) string {
	d.t.Helper()
	out, err := d.dnf(args...)
	if err != nil {
		d.t.Fatal(err)
	}
	return out
}

func (d *dnfRoot) read(p string) string {
	d.t.Helper()
	b, err := os.ReadFile(filepath.Join(d.root, p))
	if err != nil {
		d.t.Fatal(err)
	}
	return string(b)
}

// ids returns the user and group ids of name in the root's passwd and
// group files, or -1.
func (d *dnfRoot) ids(name string) (uid, gid int) {
	d.t.Helper()
	lookup := func(file string) int {
		f, err := os.Open(filepath.Join(d.root, "etc", file))
		if os.IsNotExist(err) {
			return -1
		}
		if err != nil {
			d.t.Fatal(err)
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			fields := strings.Split(sc.Text(), ":")
			if len(fields) > 2 && fields[0] == name {
				n, err := strconv.Atoi(fields[2])
				if err != nil {
					d.t.Fatalf("%s: %q", file, sc.Text())
				}
				return n
			}
		}
		return -1
	}
	return lookup("passwd"), lookup("group")
}

// checkFile checks the mode, owner ids and (for regular files) content of
// a file in the root.
func (d *dnfRoot) checkFile(p string, mode os.FileMode, uid, gid int, content string) {
	d.t.Helper()
	fi, err := os.Lstat(filepath.Join(d.root, p))
	if err != nil {
		d.t.Error(err)
		return
	}
	st := fi.Sys().(*syscall.Stat_t)
	if fi.Mode() != mode || int(st.Uid) != uid || int(st.Gid) != gid {
		d.t.Errorf("%s: mode %v owner %d:%d, want %v %d:%d", p, fi.Mode(), st.Uid, st.Gid, mode, uid, gid)
	}
	if fi.Mode().IsRegular() {
		if got := d.read(p); got != content {
			d.t.Errorf("%s: %q, want %q", p, got, content)
		}
	}
}

// TestDNFInstallAndUpgrade installs our signed packages with dnf
// (gpgcheck on), checks the files, users and scriptlets, then upgrades
// and checks that a locally edited %config(noreplace) file survives.
func TestDNFInstallAndUpgrade(t *testing.T) {
	key := newKey(t, "Ferry Release")
	d := newDNFRoot(t, key.pubPath)
	signed := Options{Signer: key.signer}
	d.add(signed, basePackage(t, true), libPackage(), demoPackage(t, "1", "listen: 1\n"))

	// systemd cannot run in the root; a stand-in systemctl records how the
	// unit's scriptlets call it when they find /run/systemd/system.
	for _, dir := range []string{"run/systemd/system", "usr/bin"} {
		if err := os.MkdirAll(filepath.Join(d.root, dir), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(d.root, "usr/bin/systemctl"), []byte("#!/bin/sh\necho \"$*\" >> /systemctl.calls\n"), 0o755); err != nil {
		t.Fatal(err)
	}

	// Installing ferry-demo pulls in the library (Requires) and the shell
	// (Requires(pre): /bin/sh, a file of ferry-test-base).
	out := d.mustDNF("install", "ferry-demo")
	for _, want := range []string{"Key imported successfully", "ferry-demo-lib", "ferry-test-base", "Complete!"} {
		if !strings.Contains(out, want) {
			t.Errorf("dnf install output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "does not exist - using root") {
		t.Errorf("rpm did not find the package's user:\n%s", out)
	}
	if got := mustRun(t, "rpm", "--root", d.root, "-q", "--qf", "%{NAME}-%{EPOCHNUM}:%{VERSION}-%{RELEASE}\n", "ferry-demo", "ferry-demo-lib"); got != "ferry-demo-2:1.0-1\nferry-demo-lib-0:1.2-3\n" {
		t.Errorf("rpm -q in the root: %q", got)
	}
	// %pre created the user from the sysusers.d text before rpm laid down
	// the files it owns.
	uid, gid := d.ids("ferry-demo")
	if uid <= 0 || gid <= 0 {
		t.Fatalf("user ferry-demo: uid %d gid %d in the root's passwd/group", uid, gid)
	}
	d.checkFile("usr/bin/ferry-demo", 0o755, 0, 0, "#!/bin/sh\necho demo\n")
	d.checkFile("usr/bin/fdemo", os.ModeSymlink|0o777, 0, 0, "")
	if target, err := os.Readlink(filepath.Join(d.root, "usr/bin/fdemo")); err != nil || target != "ferry-demo" {
		t.Errorf("symlink: %q %v", target, err)
	}
	d.checkFile("etc/ferry-demo", os.ModeDir|0o750, 0, gid, "")
	d.checkFile("etc/ferry-demo/demo.yaml", 0o640, 0, gid, "listen: 1\n")
	d.checkFile("var/lib/ferry-demo", os.ModeDir|0o700, uid, gid, "")
	d.checkFile("usr/libexec/ferry-demo/helper", os.ModeSetgid|0o750, 0, gid, "#!/bin/sh\necho helper 1\n")
	d.checkFile("usr/lib/systemd/system/ferry-demo.service", 0o644, 0, 0, demoUnit)
	d.checkFile("usr/share/ferry-demo-lib/lib.txt", 0o644, 0, 0, "lib\n")
	if _, err := os.Lstat(filepath.Join(d.root, "var/log/ferry-demo.log")); !os.IsNotExist(err) {
		t.Errorf("the ghost file was created: %v", err)
	}
	// Our %post ran ($1 = 1: first install), after the unit's
	// daemon-reload; nothing enabled the unit.
	if got := d.read("systemctl.calls"); got != "daemon-reload\n" {
		t.Errorf("systemctl calls on install: %q", got)
	}
	if got := d.read("var/lib/ferry-demo/scripts.log"); got != "post 1\n" {
		t.Errorf("scripts.log: %q", got)
	}
	// rpm -V finds everything as packaged.
	if out, err := run(t, "rpm", "--root", d.root, "-V", "ferry-demo", "ferry-demo-lib"); err != nil {
		t.Errorf("rpm -V: %v\n%s", err, out)
	}

	// The admin edits demo.yaml; release 2 changes both config files.
	if err := os.WriteFile(filepath.Join(d.root, "etc/ferry-demo/demo.yaml"), []byte("listen: 9\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	d.add(signed, demoPackage(t, "2", "listen: 2\n"))
	out = d.mustDNF("upgrade")
	if !strings.Contains(out, "ferry-demo") || !strings.Contains(out, "Complete!") {
		t.Errorf("dnf upgrade output:\n%s", out)
	}
	if got := mustRun(t, "rpm", "--root", d.root, "-q", "ferry-demo"); got != "ferry-demo-1.0-2.x86_64\n" {
		t.Errorf("after the upgrade: %q", got)
	}
	// The edited noreplace file stays, the new one lands next to it; the
	// unedited one is replaced.
	d.checkFile("etc/ferry-demo/demo.yaml", 0o640, 0, gid, "listen: 9\n")
	d.checkFile("etc/ferry-demo/demo.yaml.rpmnew", 0o640, 0, gid, "listen: 2\n")
	d.checkFile("etc/ferry-demo/defaults.yaml", 0o644, 0, 0, "release: 2\n")
	if _, err := os.Lstat(filepath.Join(d.root, "etc/ferry-demo/defaults.yaml.rpmnew")); !os.IsNotExist(err) {
		t.Errorf("defaults.yaml.rpmnew: %v", err)
	}
	d.checkFile("usr/libexec/ferry-demo/helper", os.ModeSetgid|0o750, 0, gid, "#!/bin/sh\necho helper 2\n")
	if got := d.read("var/lib/ferry-demo/scripts.log"); got != "post 1\npost 2\n" {
		t.Errorf("scripts.log after the upgrade: %q", got)
	}
	// New %post and old %postun reload; the old %preun ($1 = 1) leaves the
	// unit alone.
	if got := d.read("systemctl.calls"); got != "daemon-reload\ndaemon-reload\ndaemon-reload\n" {
		t.Errorf("systemctl calls after the upgrade: %q", got)
	}

	// A release signed by a key dnf does not trust is refused.
	other := newKey(t, "Someone Else")
	d.add(Options{Signer: other.signer}, demoPackage(t, "3", "listen: 3\n"))
	if out, err := d.dnf("upgrade"); err == nil {
		t.Errorf("dnf installed a package signed by an unknown key:\n%s", out)
	} else if !strings.Contains(out, "GPG") && !strings.Contains(out, "signature") {
		t.Errorf("dnf failed for another reason than the signature:\n%s", out)
	}
	if got := mustRun(t, "rpm", "--root", d.root, "-q", "ferry-demo"); got != "ferry-demo-1.0-2.x86_64\n" {
		t.Errorf("after the refused upgrade: %q", got)
	}

	// Erasing stops and disables the unit, then reloads; the edited
	// config file is kept as .rpmsave.
	d.mustDNF("remove", "ferry-demo")
	if got := d.read("systemctl.calls"); got != "daemon-reload\ndaemon-reload\ndaemon-reload\n--no-reload disable --now ferry-demo.service\ndaemon-reload\n" {
		t.Errorf("systemctl calls after erasing: %q", got)
	}
	d.checkFile("etc/ferry-demo/demo.yaml.rpmsave", 0o640, 0, gid, "listen: 9\n")
	for _, p := range []string{"usr/bin/ferry-demo", "usr/lib/systemd/system/ferry-demo.service", "etc/ferry-demo/demo.yaml"} {
		if _, err := os.Lstat(filepath.Join(d.root, p)); !os.IsNotExist(err) {
			t.Errorf("%s after erasing: %v", p, err)
		}
	}
}

// TestDNFInstallWithoutSysusers documents what happens on a host without
// systemd-sysusers: %pre warns, and rpm installs the files of the missing
// user as root (its own fallback), so the install still completes.
func TestDNFInstallWithoutSysusers(t *testing.T) {
	key := newKey(t, "Ferry Release")
	d := newDNFRoot(t, key.pubPath)
	d.add(Options{Signer: key.signer}, basePackage(t, false), libPackage(), demoPackage(t, "1", "listen: 1\n"))
	out := d.mustDNF("install", "ferry-demo")
	for _, want := range []string{
		"ferry-demo: systemd-sysusers not found: the users and groups of /usr/lib/sysusers.d/ferry-demo.conf are not created",
		"user ferry-demo does not exist - using root",
		"group ferry-demo does not exist - using root",
		"Complete!",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("dnf output lacks %q:\n%s", want, out)
		}
	}
	if uid, gid := d.ids("ferry-demo"); uid != -1 || gid != -1 {
		t.Errorf("user ferry-demo exists: %d:%d", uid, gid)
	}
	d.checkFile("var/lib/ferry-demo", os.ModeDir|0o700, 0, 0, "")
	d.checkFile("etc/ferry-demo/demo.yaml", 0o640, 0, 0, "listen: 1\n")
}
