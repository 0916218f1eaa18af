//go:build e2e

package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// RootfsPackages are the Debian packages every node has, on top of
// debootstrap's minbase variant (iptables, conntrack, ethtool, socat and
// kmod are what kubeadm's preflight and a host kube-proxy need, as on any
// server; nftables is the host firewall's backend). Changing the list (or rootfsRecipe) makes a
// new cached rootfs; old ones stay in the cache until removed by hand.
var RootfsPackages = []string{"systemd", "systemd-sysv", "dbus", "iproute2", "ca-certificates", "dnf", "rpm", "curl", "procps", "iptables", "conntrack", "ethtool", "socat", "kmod", "nftables"}

// rootfsRecipe names everything else that shapes the cached rootfs; bump it
// when prepareRootfs changes.
const rootfsRecipe = "debootstrap --variant=minbase bookworm; ferry-e2e rootfs v1"

// CacheDir is where rootfs builds are kept between runs:
// $FERRY_E2E_CACHE, default /var/cache/ferry-e2e.
func CacheDir() string {
	if d := os.Getenv("FERRY_E2E_CACHE"); d != "" {
		return d
	}
	return "/var/cache/ferry-e2e"
}

// mirror is the Debian mirror debootstrap uses ($FERRY_E2E_MIRROR); the
// nodes never see it.
func mirror() string {
	if m := os.Getenv("FERRY_E2E_MIRROR"); m != "" {
		return m
	}
	return "http://deb.debian.org/debian"
}

// Rootfs returns the cached base rootfs, building it first if needed with
// debootstrap (about a minute). The build happens in a temporary directory
// next to the cache entry, renamed into place only when complete, under a
// lock so that concurrent runs build it once; a directory an interrupted
// build left is removed by the next build. The returned tree must never be
// changed: nodes use it as the lower layer of an overlay.
func Rootfs(t testing.TB) string {
	t.Helper()
	pkgs := slices.Clone(RootfsPackages)
	slices.Sort(pkgs)
	sum := sha256.Sum256([]byte(rootfsRecipe + "\n" + strings.Join(pkgs, ",")))
	key := "rootfs-" + hex.EncodeToString(sum[:])[:16]
	cache := CacheDir()
	final := filepath.Join(cache, key)
	if isDir(final) {
		return final
	}
	if err := os.MkdirAll(cache, 0o755); err != nil {
		t.Fatal(err)
	}
	lock, err := os.OpenFile(filepath.Join(cache, key+".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	if isDir(final) { // another run built it while we waited
		return final
	}
	// Left by interrupted builds (we hold the lock: nobody is writing them).
	stale, _ := filepath.Glob(filepath.Join(cache, key+".tmp-*"))
	for _, s := range stale {
		t.Logf("removing %s, left by an interrupted rootfs build", s)
		if err := os.RemoveAll(s); err != nil {
			t.Fatal(err)
		}
	}
	tmp, err := os.MkdirTemp(cache, key+".tmp-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(tmp) // gone after the rename; on failure, removed
	if err := os.Chmod(tmp, 0o755); err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(tmp, "root")
	logPath := filepath.Join(cache, key+".debootstrap.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	t.Logf("building the node rootfs %s with debootstrap from %s (log: %s)", final, mirror(), logPath)
	cmd := exec.Command(need(t, "debootstrap"), "--variant=minbase", "--include="+strings.Join(pkgs, ","), "bookworm", root, mirror())
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(os.Environ(), "LC_ALL=C", "DEBIAN_FRONTEND=noninteractive")
	err = cmd.Run()
	logf.Close()
	if err != nil {
		t.Fatalf("debootstrap: %v\n%s", err, tail(logPath, 30))
	}
	if err := prepareRootfs(root); err != nil {
		t.Fatalf("preparing the rootfs: %v", err)
	}
	// The rename is the commit: `final` exists only complete.
	if err := os.Rename(root, final); err != nil {
		t.Fatal(err)
	}
	t.Logf("node rootfs built in %s", time.Since(start).Round(time.Second))
	return final
}

// prepareRootfs makes the debootstrapped tree node-neutral: no downloaded
// packages, no machine identity, no DNS (the nodes have none: air gap).
func prepareRootfs(root string) error {
	debs, _ := filepath.Glob(filepath.Join(root, "var/cache/apt/archives/*.deb"))
	for _, d := range debs {
		if err := os.Remove(d); err != nil {
			return err
		}
	}
	for name, content := range map[string]string{
		"etc/machine-id":  "", // each node writes its own
		"etc/hostname":    "node\n",
		"etc/resolv.conf": "# Ferry e2e node: no DNS server (air-gapped)\n",
	} {
		p := filepath.Join(root, name)
		_ = os.Remove(p) // may be a symlink
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			return err
		}
	}
	// A root password is not needed: commands run through nsenter. Units
	// that only slow a container's boot down:
	for _, u := range []string{"apt-daily.timer", "apt-daily-upgrade.timer", "dpkg-db-backup.timer", "e2scrub_all.timer", "fstrim.timer", "systemd-networkd-wait-online.service"} {
		p := filepath.Join(root, "etc/systemd/system", u)
		_ = os.Remove(p)
		if err := os.Symlink("/dev/null", p); err != nil {
			return err
		}
	}
	return nil
}

func isDir(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.IsDir()
}

// tail returns the last n lines of the file at path.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(%v)", err)
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// need returns the path of prog and fails the test when it is missing: an
// end-to-end suite that skips proves nothing.
func need(t testing.TB, prog string) string {
	t.Helper()
	p, err := exec.LookPath(prog)
	if err != nil {
		for _, dir := range []string{"/usr/sbin", "/sbin"} {
			if fi, e := os.Stat(filepath.Join(dir, prog)); e == nil && !fi.IsDir() {
				return filepath.Join(dir, prog)
			}
		}
		t.Fatalf("%s is required by the e2e suites (Debian: apt-get install debootstrap systemd-container util-linux iproute2): %v", prog, err)
	}
	return p
}
