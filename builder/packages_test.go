package builder

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ferry-k8s/ferry/bundle"
	"github.com/ferry-k8s/ferry/bundle/verify"
	"github.com/ferry-k8s/ferry/internal/fetch"
	"github.com/ferry-k8s/ferry/repo/rpmtest"
	"github.com/ferry-k8s/ferry/repo/yum/yumtest"
	"github.com/ferry-k8s/ferry/signing"
)

// upstreamSpecs: app needs a chain app → libmid (soname) → base-tool >= 2
// → /bin/sh (bash), a file (/usr/bin/helper) and packages the target OS
// has (glibc, systemd: excluded); socat comes in three versions.
func upstreamSpecs() []rpmtest.Spec {
	return []rpmtest.Spec{
		{Name: "app", Version: "1.0", Arch: "x86_64", Files: map[string][]byte{"/usr/bin/app": []byte("#!/bin/sh\necho app\n")},
			Requires: []string{"libmid.so.1()(64bit)", "/usr/bin/helper", "libc.so.6()(64bit)", "systemd"}},
		{Name: "libmid", Version: "2.0", Arch: "x86_64", Provides: []string{"libmid.so.1()(64bit)"}, Requires: []string{"base-tool >= 2"},
			Files: map[string][]byte{"/usr/lib64/libmid.so.1": []byte("mid")}},
		{Name: "base-tool", Version: "1.0"},
		{Name: "base-tool", Version: "2.1", Requires: []string{"/bin/sh"}, Files: map[string][]byte{"/usr/share/base-tool/v": []byte("2.1")}},
		{Name: "helper", Version: "1", Arch: "x86_64", Files: map[string][]byte{"/usr/bin/helper": []byte("h")}},
		{Name: "glibc", Version: "2.34", Arch: "x86_64", Provides: []string{"libc.so.6()(64bit)"}},
		{Name: "bash", Version: "5.1", Arch: "x86_64", Provides: []string{"/bin/sh"}, Files: map[string][]byte{"/usr/bin/bash": []byte("sh")}},
		{Name: "socat", Version: "1.7.3", Release: "1.el9", Arch: "x86_64", Files: map[string][]byte{"/usr/bin/socat": []byte("1.7.3")}},
		{Name: "socat", Version: "1.7.4", Release: "2.el9", Arch: "x86_64", Files: map[string][]byte{"/usr/bin/socat": []byte("1.7.4")}},
		{Name: "socat", Version: "1.8.0", Release: "1.el9", Arch: "x86_64", Files: map[string][]byte{"/usr/bin/socat": []byte("1.8.0")}},
	}
}

type upstreamFixture struct {
	key    *yumtest.Key
	repo   *yumtest.Repo
	server *yumtest.Server
	dir    string // spec directory
	spec   string // spec path
	specY  string
}

const namedPackagesSpec = `apiVersion: ferry.dev/v1alpha1
kind: Bundle
metadata:
  name: named
  version: 1.0.0
spec:
  repositories:
    - name: up
      baseurl: BASEURL
      gpgkey: keys/up.asc
      caFile: certs/up-ca.pem
  packages:
    - repo: extras
      names: ["app"]
      exclude: ["glibc", "systemd*"]
    - repo: tools
      names: ["socat < 1.8", "libmid"]
      from: [up]
`

func newUpstreamFixture(t *testing.T) *upstreamFixture {
	t.Helper()
	f := &upstreamFixture{key: yumtest.NewKey(t, "Upstream <upstream@example.invalid>"), dir: t.TempDir()}
	f.repo = yumtest.BuildRepo(t, t.TempDir(), upstreamSpecs(), f.key, true)
	f.server = yumtest.NewServer(t, f.repo.Dir)
	for src, dst := range map[string]string{f.key.PublicKey: "keys/up.asc", f.server.CAFile: "certs/up-ca.pem"} {
		data, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Join(f.dir, filepath.Dir(dst)), 0o755); err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(f.dir, dst), string(data))
	}
	f.spec = filepath.Join(f.dir, "bundle.yaml")
	f.specY = strings.Replace(namedPackagesSpec, "BASEURL", f.server.URL+"/", 1)
	writeFile(t, f.spec, f.specY)
	return f
}

// TestNamedPackagesLockBuildInstall: builder lock resolves the names with
// their dependencies into bundle.lock; builder build downloads exactly
// those files through the cache, checks them, and makes an ISO whose
// repositories dnf installs from (gpgcheck against the upstream key,
// repo_gpgcheck against the bundle's); a second build with the same lock
// and cache makes no request at all.
func TestNamedPackagesLockBuildInstall(t *testing.T) {
	f := newUpstreamFixture(t)
	ctx := context.Background()
	signer := testSigner(t)
	epoch := signer.Created() // the test key is made now
	out := filepath.Join(t.TempDir(), "named.iso")

	// Without a lock the build stops at once, naming builder lock.
	_, err := Build(ctx, Options{SpecPath: f.spec, Output: out, Signer: signer, SourceDateEpoch: epoch})
	if !errors.Is(err, bundle.ErrNotLocked) || !strings.Contains(err.Error(), "spec.packages[0].names") || !strings.Contains(err.Error(), "builder lock") {
		t.Fatalf("build without a lock: %v", err)
	}
	if n := f.server.Requests(""); n != 0 {
		t.Errorf("%d requests before locking", n)
	}

	cache := t.TempDir()
	res, err := Lock(ctx, LockOptions{SpecPath: f.spec, CacheDir: cache})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range res.Lock.Packages {
		got = append(got, p.Repo+"/"+p.NEVRA())
	}
	want := "extras/app-1.0-1.x86_64 extras/base-tool-2.1-1.noarch extras/bash-5.1-1.x86_64 extras/helper-1-1.x86_64 extras/libmid-2.0-1.x86_64 " +
		"tools/base-tool-2.1-1.noarch tools/bash-5.1-1.x86_64 tools/libmid-2.0-1.x86_64 tools/socat-1.7.4-2.el9.x86_64"
	if strings.Join(got, " ") != want {
		t.Fatalf("locked %s\nwant   %s", strings.Join(got, " "), want)
	}
	lockData, err := os.ReadFile(res.Output)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"requiredBy: libmid-2.0-1.x86_64 (base-tool >= 2)", "- socat < 1.8", "url: " + f.server.URL + "/Packages/s/socat-1.7.4-2.el9.x86_64.rpm", "from: up"} {
		if !strings.Contains(string(lockData), s) {
			t.Errorf("lock lacks %q:\n%s", s, lockData)
		}
	}
	// Locking again gives the same bytes.
	again := filepath.Join(t.TempDir(), "again.lock")
	if _, err := Lock(ctx, LockOptions{SpecPath: f.spec, CacheDir: cache, Output: again}); err != nil {
		t.Fatal(err)
	}
	if data, _ := os.ReadFile(again); string(data) != string(lockData) {
		t.Errorf("two locks of the same state differ:\n%s\n%s", lockData, data)
	}
	if n := f.server.Requests(".rpm"); n != 0 {
		t.Errorf("locking downloaded %d packages; it needs metadata only", n)
	}

	work := t.TempDir()
	r1, err := Build(ctx, Options{SpecPath: f.spec, Output: out, Signer: signer, SourceDateEpoch: epoch, CacheDir: cache, WorkDir: work})
	if err != nil {
		t.Fatal(err)
	}
	if n := f.server.Requests(".rpm"); n != 6 {
		t.Errorf("%d package requests, want one per distinct locked file (6)", n)
	}
	ring, err := signing.ReadKeyring(strings.NewReader(mustPublicKey(t, signer)))
	if err != nil {
		t.Fatal(err)
	}
	rep, err := verify.Verify(ctx, verify.Options{ISO: out, Keyring: ring, Now: epoch.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	onISO := map[string]bool{}
	for _, file := range rep.Manifest.Files {
		onISO[file.Path] = true
	}
	for _, p := range res.Lock.Packages {
		if path := "packages/" + p.Repo + "/Packages/" + p.FileName(); !onISO[path] {
			t.Errorf("%s is not on the ISO", path)
		}
	}
	if len(r1.Repositories) != 2 {
		t.Errorf("repositories %+v", r1.Repositories)
	}

	// The same lock and cache again: not one request.
	before := f.server.Requests("")
	r2, err := Build(ctx, Options{SpecPath: f.spec, Output: filepath.Join(t.TempDir(), "again.iso"), Signer: signer, SourceDateEpoch: epoch, CacheDir: cache})
	if err != nil {
		t.Fatal(err)
	}
	if n := f.server.Requests("") - before; n != 0 {
		t.Errorf("second build made %d requests, want none", n)
	}
	if r1.SHA256 != r2.SHA256 {
		t.Errorf("two builds of one lock differ: %s %s", r1.SHA256, r2.SHA256)
	}

	// dnf installs from the bundle's repository: every dependency is there
	// and the packages' upstream signatures check.
	installroot := filepath.Join(t.TempDir(), "root")
	pub := filepath.Join(t.TempDir(), "bundle.asc")
	writeFile(t, pub, mustPublicKey(t, signer))
	dnfOut := run(t, "", "dnf",
		"--installroot="+installroot,
		"--setopt=reposdir=/dev/null", "--setopt=cachedir="+filepath.Join(t.TempDir(), "cache"),
		"--setopt=install_weak_deps=False", "--releasever=1", "--disableplugin=*",
		"--repofrompath=tools,"+filepath.Join(work, "tree", "packages", "tools"), "--repo=tools",
		"--setopt=tools.gpgcheck=1", "--setopt=tools.repo_gpgcheck=1",
		"--setopt=tools.gpgkey=file://"+f.key.PublicKey+",file://"+pub,
		"-y", "install", "socat", "libmid")
	q := run(t, "", "rpm", "--root", installroot, "-q", "socat", "libmid", "base-tool", "bash")
	for _, p := range []string{"socat-1.7.4-2.el9.x86_64", "libmid-2.0-1.x86_64", "base-tool-2.1-1.noarch", "bash-5.1-1.x86_64"} {
		if !strings.Contains(q, p) {
			t.Errorf("%s not installed: rpm -q says %s\n%s", p, q, dnfOut)
		}
	}
	if b, err := os.ReadFile(filepath.Join(installroot, "usr/bin/socat")); err != nil || string(b) != "1.7.4" {
		t.Errorf("installed socat: %q, %v", b, err)
	}
}

func mustPublicKey(t *testing.T, s *signing.Signer) string {
	t.Helper()
	pub, err := s.PublicKey()
	if err != nil {
		t.Fatal(err)
	}
	return string(pub)
}

// TestNamedPackagesRefused: what the build checks after the lock.
func TestNamedPackagesRefused(t *testing.T) {
	f := newUpstreamFixture(t)
	ctx := context.Background()
	signer := testSigner(t)
	if _, err := Lock(ctx, LockOptions{SpecPath: f.spec}); err != nil {
		t.Fatal(err)
	}
	build := func(t *testing.T, cache string) (string, error) {
		t.Helper()
		work := t.TempDir()
		out := filepath.Join(t.TempDir(), "x.iso")
		_, err := Build(ctx, Options{SpecPath: f.spec, Output: out, Signer: signer, SourceDateEpoch: epoch, CacheDir: cache, WorkDir: work})
		if _, serr := os.Stat(out); serr == nil {
			t.Error("an ISO was written by a failed build")
		}
		return work, err
	}

	t.Run("tampered package", func(t *testing.T) {
		path := "/Packages/h/helper-1-1.x86_64.rpm"
		good, err := os.ReadFile(f.repo.Files["helper-1-1.x86_64.rpm"])
		if err != nil {
			t.Fatal(err)
		}
		bad := append([]byte{}, good...)
		bad[len(bad)-10] ^= 1
		f.server.Replace(path, bad)
		defer f.server.Replace(path, good)
		lock, err := bundle.LoadLock(bundle.DefaultLockPath(f.spec))
		if err != nil {
			t.Fatal(err)
		}
		var digest string
		for _, p := range lock.Packages {
			if p.Name == "helper" {
				digest = p.SHA256
			}
		}
		cache := t.TempDir()
		work, err := build(t, cache)
		if err == nil || !errors.Is(err, fetch.ErrMismatch) || !strings.Contains(err.Error(), "package helper-1-1.x86_64 (sha256:"+digest+") from up") {
			t.Fatalf("tampered package: %v", err)
		}
		// Nothing placed, nothing cached under the digest.
		if ents, _ := os.ReadDir(filepath.Join(work, "tree", bundle.PackagesDir)); len(ents) != 0 {
			t.Errorf("packages placed by a failed build: %v", ents)
		}
		if _, err := os.Stat(filepath.Join(cache, "sha256", digest)); err == nil {
			t.Error("the tampered file is in the cache under the locked digest")
		}
	})

	t.Run("package signed by another key", func(t *testing.T) {
		// The same lock, but the spec's key is another one: the packages'
		// signatures no longer check (the metadata was locked already).
		keyFile := filepath.Join(f.dir, "keys", "up.asc")
		orig, err := os.ReadFile(keyFile)
		if err != nil {
			t.Fatal(err)
		}
		other := yumtest.NewKey(t, "Someone Else <else@example.invalid>")
		otherPub, err := os.ReadFile(other.PublicKey)
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, keyFile, string(otherPub))
		defer writeFile(t, keyFile, string(orig))
		_, err = build(t, t.TempDir())
		if !errors.Is(err, signing.ErrUnknownKey) || !strings.Contains(err.Error(), "signature check with the gpgkey of repository up") {
			t.Fatalf("another key: %v", err)
		}
		// And locking with it is refused: repomd.xml.asc does not verify.
		_, err = Lock(ctx, LockOptions{SpecPath: f.spec, Output: filepath.Join(t.TempDir(), "l")})
		if !errors.Is(err, signing.ErrUnknownKey) || !strings.Contains(err.Error(), "spec.repositories[0]: repository up: repodata/repomd.xml.asc does not verify") {
			t.Fatalf("lock with another key: %v", err)
		}
	})

	t.Run("stale lock", func(t *testing.T) {
		defer writeFile(t, f.spec, f.specY)
		writeFile(t, f.spec, strings.Replace(f.specY, `names: ["app"]`, `names: ["app", "socat"]`, 1))
		_, err := build(t, t.TempDir())
		if !errors.Is(err, bundle.ErrStaleLock) || !strings.Contains(err.Error(), `spec.packages[0].names[1]: "socat" (repository extras) is not in the lock`) {
			t.Fatalf("stale lock: %v", err)
		}
	})

	t.Run("unmet requirements", func(t *testing.T) {
		defer writeFile(t, f.spec, f.specY)
		writeFile(t, f.spec, strings.Replace(f.specY, `exclude: ["glibc", "systemd*"]`, `exclude: ["glibc"]`, 1))
		_, err := Lock(ctx, LockOptions{SpecPath: f.spec, Output: filepath.Join(t.TempDir(), "l")})
		if err == nil || !strings.Contains(err.Error(), "spec.packages[0].names: 1 unmet requirement(s):\n  app-1.0-1.x86_64 requires systemd: nothing provides it") {
			t.Fatalf("unmet: %v", err)
		}
	})
}
