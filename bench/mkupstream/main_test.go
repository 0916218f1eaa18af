package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/ferry-k8s/ferry/builder"
	"github.com/ferry-k8s/ferry/internal/testutil"
	"github.com/ferry-k8s/ferry/repo/rpmtest"
)

func TestPlanClosure(t *testing.T) {
	for _, n := range []int{16, 40, 200, 500} {
		pkgs, err := plan(n, 1)
		if err != nil {
			t.Fatalf("plan(%d): %v", n, err)
		}
		if len(pkgs) != n {
			t.Errorf("plan(%d) made %d packages", n, len(pkgs))
		}
		files := map[string]bool{}
		for _, p := range pkgs {
			f := rpmtest.FileName(p.Spec)
			if files[f] {
				t.Errorf("plan(%d): %s twice", n, f)
			}
			files[f] = true
		}
		want, err := closure(pkgs)
		if err != nil {
			t.Fatalf("plan(%d): %v", n, err)
		}
		for _, p := range pkgs {
			f := rpmtest.FileName(p.Spec)
			in := slices.Contains(want, f)
			if p.Tool && !in {
				t.Errorf("plan(%d): the closure lacks the tool %s", n, f)
			}
			if p.Spec.Version == "1.0" && in {
				t.Errorf("plan(%d): the closure has the old version %s", n, f)
			}
		}
		if n == 200 && (len(want) < 120 || len(want) >= n) {
			t.Errorf("plan(200): closure of %d packages, want most but not all of them", len(want))
		}
		again, _ := plan(n, 1)
		if !reflect.DeepEqual(pkgs, again) {
			t.Errorf("plan(%d) is not deterministic", n)
		}
	}
}

func TestPlanRefusesBadSizes(t *testing.T) {
	for _, c := range []struct {
		n     int
		scale float64
	}{{15, 1}, {200, 0}, {200, -1}, {200, 17}} {
		if _, err := plan(c.n, c.scale); err == nil {
			t.Errorf("plan(%d, %g) accepted", c.n, c.scale)
		}
	}
}

func TestClosureRefusesAmbiguity(t *testing.T) {
	pkgs := []plannedRPM{
		{Spec: rpmtest.Spec{Name: "tool", Version: "1", Requires: []string{"cap"}}, Tool: true},
		{Spec: rpmtest.Spec{Name: "a", Version: "1", Provides: []string{"cap"}}},
		{Spec: rpmtest.Spec{Name: "b", Version: "1", Provides: []string{"cap"}}},
	}
	if _, err := closure(pkgs); err == nil || !strings.Contains(err.Error(), "2 providers") {
		t.Errorf("two providers: %v", err)
	}
	pkgs = pkgs[:1]
	if _, err := closure(pkgs); err == nil || !strings.Contains(err.Error(), "0 providers") {
		t.Errorf("no provider: %v", err)
	}
}

func TestPinned(t *testing.T) {
	const d = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	for _, c := range []struct{ source, want string }{
		{"docker://127.0.0.1:5000/bench/etcd:3.6.5-0", "docker://127.0.0.1:5000/bench/etcd@" + d},
		{"docker://127.0.0.1:5000/bench/etcd", "docker://127.0.0.1:5000/bench/etcd@" + d},
		{"docker://registry.example.com/a/b/c:v1", "docker://registry.example.com/a/b/c@" + d},
	} {
		got, err := pinned(c.source, d)
		if err != nil || got != c.want {
			t.Errorf("pinned(%q) = %q, %v; want %q", c.source, got, err, c.want)
		}
	}
	for _, c := range []struct{ source, digest string }{
		{"oci:layout:x", d},
		{"docker://etcd:3.6", d},
		{"docker://127.0.0.1:5000/bench/etcd:1", "sha256:abc"},
		{"docker://127.0.0.1:5000/bench/etcd:1", "md5:" + strings.Repeat("0", 64)},
	} {
		if got, err := pinned(c.source, c.digest); err == nil {
			t.Errorf("pinned(%q, %q) = %q, want an error", c.source, c.digest, got)
		}
	}
}

func TestLockInfoRefusesBadLock(t *testing.T) {
	p := filepath.Join(t.TempDir(), "bundle.lock")
	if err := os.WriteFile(p, []byte("apiVersion: nope\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := run([]string{"lockinfo", "-lock", p}, &bytes.Buffer{}); err == nil {
		t.Error("a bad lock was accepted")
	}
	if err := run([]string{"frobnicate"}, &bytes.Buffer{}); err == nil {
		t.Error("an unknown command was accepted")
	}
}

// need fails the test when a program is missing.
func need(t *testing.T, prog, debian string) {
	t.Helper()
	if _, err := exec.LookPath(prog); err != nil {
		t.Fatalf("%s is required by this test (Debian package %s): %v", prog, debian, err)
	}
}

// TestInputResolvesAlike makes a small input with the real gpg and
// createrepo_c, then resolves its tools with the real dnf (install
// --downloadonly into an empty root, repo_gpgcheck on: the resolution of
// bench/upstream.sh's `dnf download --resolve` without needing the plugin)
// and with builder.Lock: both must pick exactly the planned closure,
// rpmkeys must accept every signature, and lockinfo must give each file's
// sha256.
func TestInputResolvesAlike(t *testing.T) {
	for _, p := range [][2]string{{"gpg", "gnupg"}, {"createrepo_c", "createrepo-c"}, {"dnf", "dnf"}, {"rpmkeys", "rpm"}} {
		need(t, p[0], p[1])
	}
	dir := filepath.Join(t.TempDir(), "in")
	if err := run([]string{"input", "-dir", dir, "-rpms", "32", "-scale", "0.01"}, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	closureFile, err := os.ReadFile(filepath.Join(dir, "closure"))
	if err != nil {
		t.Fatal(err)
	}
	want := strings.Fields(string(closureFile))
	names := strings.Fields(string(mustRead(t, filepath.Join(dir, "names"))))
	repoURL := "file://" + filepath.Join(dir, "repo")
	key := filepath.Join(dir, "RPM-GPG-KEY")

	// dnf.
	work := t.TempDir()
	cfg, dest, cache := filepath.Join(work, "dnf.conf"), filepath.Join(work, "rpms"), filepath.Join(work, "cache")
	if err := os.WriteFile(cfg, []byte("[main]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	testutil.StopDNFKeyringAgents(t, cache)
	args := []string{"--config=" + cfg, "--noplugins", "--installroot=" + filepath.Join(work, "root"), "--releasever=1", "-y",
		"--repofrompath=up," + repoURL, "--repo=up", "--setopt=reposdir=/dev/null", "--setopt=cachedir=" + cache,
		"--setopt=up.gpgcheck=1", "--setopt=up.repo_gpgcheck=1", "--setopt=up.gpgkey=file://" + key,
		"install", "--downloadonly", "--destdir", dest}
	if out, err := exec.Command("dnf", append(args, names...)...).CombinedOutput(); err != nil {
		t.Fatalf("dnf install --downloadonly: %v\n%s", err, out)
	}
	entries, err := os.ReadDir(dest)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range entries {
		got = append(got, e.Name())
	}
	if !slices.Equal(got, want) {
		t.Errorf("dnf downloaded %v, the plan wants %v", got, want)
	}
	db := filepath.Join(work, "rpmdb")
	if out, err := exec.Command("rpmkeys", "--dbpath", db, "--import", key).CombinedOutput(); err != nil {
		t.Fatalf("rpmkeys --import: %v\n%s", err, out)
	}
	for _, f := range got {
		if out, err := exec.Command("rpmkeys", "--dbpath", db, "--checksig", filepath.Join(dest, f)).CombinedOutput(); err != nil {
			t.Errorf("rpmkeys --checksig %s: %v\n%s", f, err, out)
		}
	}

	// Ferry.
	spec := filepath.Join(work, "bundle.yaml")
	yaml := "apiVersion: ferry.dev/v1alpha1\nkind: Bundle\nmetadata:\n  name: t\n  version: 1.0.0\nspec:\n" +
		"  repositories:\n    - name: up\n      baseurl: " + repoURL + "/\n      gpgkey: " + key + "\n" +
		"  packages:\n    - repo: upstream\n      names: [" + strings.Join(names, ", ") + "]\n"
	if err := os.WriteFile(spec, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	res, err := builder.Lock(context.Background(), builder.LockOptions{SpecPath: spec, CacheDir: filepath.Join(work, "ferry-cache")})
	if err != nil {
		t.Fatal(err)
	}
	var info bytes.Buffer
	if err := run([]string{"lockinfo", "-lock", res.Output}, &info); err != nil {
		t.Fatal(err)
	}
	var locked []string
	for line := range strings.Lines(info.String()) {
		f := strings.Fields(line)
		if len(f) != 3 || f[0] != "rpm" {
			t.Fatalf("lockinfo line %q", line)
		}
		sum := sha256.Sum256(mustRead(t, filepath.Join(dest, f[2])))
		if hex.EncodeToString(sum[:]) != f[1] {
			t.Errorf("lockinfo gives %s for %s, the file dnf downloaded has %x", f[1], f[2], sum)
		}
		locked = append(locked, f[2])
	}
	if !slices.Equal(locked, want) {
		t.Errorf("builder lock pinned %v, the plan wants %v", locked, want)
	}
}

func TestLockInfoImages(t *testing.T) {
	const d = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	lock := "apiVersion: ferry.dev/v1alpha1\nkind: BundleLock\nspecDigest: " + d + "\nimages:\n" +
		"- name: registry.example.com/bench/etcd:3.6.5-0\n  source: docker://127.0.0.1:5000/bench/etcd:3.6.5-0\n" +
		"  digest: " + d + "\n  mediaType: application/vnd.oci.image.manifest.v1+json\n"
	p := filepath.Join(t.TempDir(), "bundle.lock")
	if err := os.WriteFile(p, []byte(lock), 0o644); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := run([]string{"lockinfo", "-lock", p}, &out); err != nil {
		t.Fatal(err)
	}
	want := "image docker://127.0.0.1:5000/bench/etcd@" + d + " registry.example.com/bench/etcd:3.6.5-0\n"
	if out.String() != want {
		t.Errorf("lockinfo printed %q, want %q", out.String(), want)
	}
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return data
}
