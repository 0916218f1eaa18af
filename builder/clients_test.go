package builder

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ferry-k8s/ferry/bundle"
	"github.com/ferry-k8s/ferry/bundle/verify"
	"github.com/ferry-k8s/ferry/internal/example"
	"github.com/ferry-k8s/ferry/internal/testutil"
	"github.com/ferry-k8s/ferry/signing"
)

// These tests hand the bundle to the programs people will use on it: gpg,
// sha256sum, xorriso, skopeo and dnf. A missing program fails the test;
// `make deps` installs them all.

func run(t *testing.T, dir string, prog string, args ...string) string {
	t.Helper()
	cmd := exec.Command(testutil.Need(t, prog), args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", prog, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// extract unpacks the ISO with xorriso (user space, no mount).
func extract(t *testing.T, isoPath string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "root")
	run(t, "", "xorriso", "-osirrox", "on", "-indev", isoPath, "-extract", "/", dir)
	return dir
}

func TestXorrisoListsFullNames(t *testing.T) {
	f := buildExample(t)
	out := run(t, "", "xorriso", "-indev", f.iso, "-find", "/", "-type", "f")
	blob := "/images/blobs/sha256/" + strings.TrimPrefix(f.ex.AppDigest, "sha256:")
	for _, want := range []string{blob, "/packages/base/Packages/" + example.LongRPMName, "/manifest.json.asc", "/packages/base/repodata/repomd.xml.asc"} {
		if !strings.Contains(out, "'"+want+"'") {
			t.Errorf("xorriso -find does not list %s:\n%s", want, out)
		}
	}
	// The Joliet tree is there too, for readers without Rock Ridge.
	joliet := run(t, "", "xorriso", "-rockridge", "off", "-indev", f.iso, "-find", "/packages/base/repodata")
	if !strings.Contains(joliet, "repomd.xml") {
		t.Errorf("Joliet tree lacks repomd.xml:\n%s", joliet)
	}
}

func TestGPGAndSha256sumCheckTheBundle(t *testing.T) {
	f := buildExample(t)
	root := extract(t, f.iso)
	home := testutil.GPGHome(t)
	gpg := func(args ...string) string {
		return run(t, root, "gpg", append([]string{"--homedir", home, "--batch", "--no-tty"}, args...)...)
	}
	gpg("--import", f.ex.PublicKey)
	for _, file := range []string{bundle.ManifestPath, bundle.SumsPath, "packages/base/repodata/repomd.xml"} {
		gpg("--verify", file+".asc", file)
	}
	// coreutils alone can check every content file.
	out := run(t, root, "sha256sum", "--strict", "-c", bundle.SumsPath)
	if strings.Count(out, ": OK") < 20 {
		t.Errorf("sha256sum checked too few files:\n%s", out)
	}
	// And the check can fail: a changed file is caught.
	blob := filepath.Join(root, "images/blobs/sha256", strings.TrimPrefix(f.ex.AppDigest, "sha256:"))
	if err := os.Chmod(blob, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(blob, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("sha256sum", "--strict", "--quiet", "-c", bundle.SumsPath)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err == nil {
		t.Fatalf("sha256sum accepted a changed blob:\n%s", out)
	}
}

func TestSkopeoReadsTheLayout(t *testing.T) {
	f := buildExample(t)
	root := extract(t, f.iso)
	layout := filepath.Join(root, "images")
	out := run(t, "", "skopeo", "inspect", "--raw", "oci:"+layout+":registry.example.com/ferry/app:1.0")
	if got := sha256Hex([]byte(out)); "sha256:"+got != f.ex.AppDigest {
		t.Errorf("skopeo read manifest %s, source %s", got, f.ex.AppDigest)
	}
	var inspect struct{ Digest string }
	if err := json.Unmarshal([]byte(run(t, "", "skopeo", "inspect", "oci:"+layout+":registry.example.com/ferry/app:1.0")), &inspect); err != nil {
		t.Fatal(err)
	}
	if inspect.Digest != f.ex.AppDigest {
		t.Errorf("skopeo inspect digest %s, want %s", inspect.Digest, f.ex.AppDigest)
	}
	// The multi-platform image keeps only linux/amd64, as the spec asks.
	var idx struct {
		Manifests []struct {
			Digest   string
			Platform struct{ Architecture string }
		}
	}
	if err := json.Unmarshal([]byte(run(t, "", "skopeo", "inspect", "--raw", "oci:"+layout+":registry.example.com/ferry/multi:1.0")), &idx); err != nil {
		t.Fatal(err)
	}
	if len(idx.Manifests) != 1 || idx.Manifests[0].Digest != f.ex.IndexAmd64 || idx.Manifests[0].Platform.Architecture != "amd64" {
		t.Errorf("multi-platform index on the ISO: %+v, want only amd64 %s", idx.Manifests, f.ex.IndexAmd64)
	}
	// A full copy out of the layout works and checks every blob.
	run(t, "", "skopeo", "copy", "--preserve-digests", "oci:"+layout+":registry.example.com/ferry/app:1.0", "oci:"+filepath.Join(t.TempDir(), "copy")+":app")
}

func TestDNFInstallsFromTheBundle(t *testing.T) {
	f := buildExample(t)
	root := extract(t, f.iso)
	installroot := filepath.Join(t.TempDir(), "root")
	repo := filepath.Join(root, "packages", "base")
	args := []string{
		"--installroot=" + installroot,
		"--setopt=reposdir=/dev/null", "--setopt=cachedir=" + filepath.Join(t.TempDir(), "cache"),
		"--setopt=install_weak_deps=False", "--releasever=1", "--disableplugin=*",
		"--repofrompath=ferry," + repo, "--repo=ferry",
		"--setopt=ferry.gpgcheck=1", "--setopt=ferry.repo_gpgcheck=1",
		"--setopt=ferry.gpgkey=file://" + f.ex.PublicKey,
		"-y", "install", "ferry-hello",
	}
	out := run(t, "", "dnf", args...)
	// ferry-hello-data comes in as a dependency.
	for _, p := range []string{"usr/bin/ferry-hello", "usr/share/ferry-hello/greeting"} {
		if _, err := os.Stat(filepath.Join(installroot, p)); err != nil {
			t.Errorf("%s not installed: %v\n%s", p, err, out)
		}
	}
	q := run(t, "", "rpm", "--root", installroot, "-q", "ferry-hello", "ferry-hello-data")
	if !strings.Contains(q, "ferry-hello-1.0.0-1.noarch") || !strings.Contains(q, "ferry-hello-data-1.0.0-1.noarch") {
		t.Errorf("rpm -q: %s", q)
	}
}

// TestDNFRefusesTamperedRepodata proves that repo_gpgcheck in the test above
// is really checking: a repomd.xml that no longer matches its signature is
// refused.
func TestDNFRefusesTamperedRepodata(t *testing.T) {
	f := buildExample(t)
	root := extract(t, f.iso)
	repo := filepath.Join(root, "packages", "base")
	md := filepath.Join(repo, "repodata", "repomd.xml")
	if err := os.Chmod(md, 0o644); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(md)
	if err := os.WriteFile(md, []byte(strings.Replace(string(b), "<revision>", "<revision>1", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(testutil.Need(t, "dnf"),
		"--installroot="+filepath.Join(t.TempDir(), "root"),
		"--setopt=reposdir=/dev/null", "--setopt=cachedir="+filepath.Join(t.TempDir(), "cache"),
		"--releasever=1", "--disableplugin=*",
		"--repofrompath=ferry,"+repo, "--repo=ferry",
		"--setopt=ferry.gpgcheck=1", "--setopt=ferry.repo_gpgcheck=1",
		"--setopt=ferry.gpgkey=file://"+f.ex.PublicKey,
		"-y", "install", "ferry-hello")
	if out, err := cmd.CombinedOutput(); err == nil {
		t.Fatalf("dnf installed from a repo whose repomd.xml does not match its signature:\n%s", out)
	}
}

// TestVerifyRefusesForeignISOs feeds verify ISOs that Ferry's writer would
// never make, built with xorriso: a symbolic link leaving the image, and a
// correctly signed manifest that lists a path outside the bundle.
func TestVerifyRefusesForeignISOs(t *testing.T) {
	ex, err := example.Write(filepath.Join(t.TempDir(), "in"), example.Options{})
	if err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	opts := Options{SpecPath: ex.Spec, Output: filepath.Join(t.TempDir(), "x.iso"), Signer: ex.Signer, SourceDateEpoch: epoch, WorkDir: work}
	if _, err := Build(context.Background(), opts); err != nil {
		t.Fatal(err)
	}
	tree := filepath.Join(work, "tree")
	ring, err := signing.LoadKeyringFile(ex.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	mkiso := func() string {
		out := filepath.Join(t.TempDir(), "foreign.iso")
		run(t, "", "xorriso", "-as", "mkisofs", "-quiet", "-R", "-J", "-o", out, tree)
		return out
	}
	// The untouched tree, written by xorriso, verifies: the checks below fail
	// because of what they add, not because xorriso wrote the image.
	if _, err := verify.Verify(context.Background(), verify.Options{ISO: mkiso(), Keyring: ring, Now: epoch.Add(time.Hour)}); err != nil {
		t.Fatalf("xorriso image of an intact tree: %v", err)
	}

	if err := os.Symlink("../../../etc/shadow", filepath.Join(tree, "images", "escape")); err != nil {
		t.Fatal(err)
	}
	rep, err := verify.Verify(context.Background(), verify.Options{ISO: mkiso(), Keyring: ring, Now: epoch.Add(time.Hour)})
	if err == nil || !hasProblem(rep, "images/escape", `symbolic link to "../../../etc/shadow"`) {
		t.Fatalf("symlink: %v %+v", err, rep.Problems)
	}
	if err := os.Remove(filepath.Join(tree, "images", "escape")); err != nil {
		t.Fatal(err)
	}

	// A manifest signed by the trusted key that lists ../../etc/passwd.
	mp := filepath.Join(tree, bundle.ManifestPath)
	data, _ := os.ReadFile(mp)
	evil := strings.Replace(string(data), `"path": "SHA256SUMS"`, `"path": "../../etc/passwd"`, 1)
	if evil == string(data) {
		t.Fatal("manifest has no SHA256SUMS entry to replace")
	}
	writeFile(t, mp, evil)
	sig, err := ex.Signer.SignBytes([]byte(evil), epoch, true)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(tree, bundle.ManifestSigPath), string(sig))
	rep, err = verify.Verify(context.Background(), verify.Options{ISO: mkiso(), Keyring: ring, Now: epoch.Add(time.Hour)})
	if err == nil || !hasProblem(rep, bundle.ManifestPath, `"../../etc/passwd" leaves the bundle`) {
		t.Fatalf("traversal: %v %+v", err, rep.Problems)
	}
}

// TestInstallerVerifiedBeforeItRuns is the README's first step on a node:
// the /installer binary is checked with gpg and sha256sum alone (the signed
// SHA256SUMS lists it) before it is ever run, and a changed binary fails
// that check.
func TestInstallerVerifiedBeforeItRuns(t *testing.T) {
	f := buildExample(t)
	dir := t.TempDir()
	run(t, dir, "xorriso", "-osirrox", "on", "-indev", f.iso,
		"-extract", "/installer", "installer", "-extract", "/SHA256SUMS", "SHA256SUMS", "-extract", "/SHA256SUMS.asc", "SHA256SUMS.asc")
	home := testutil.GPGHome(t)
	run(t, dir, "gpg", "--homedir", home, "--batch", "--no-tty", "--import", f.ex.PublicKey)
	run(t, dir, "gpg", "--homedir", home, "--batch", "--no-tty", "--verify", "SHA256SUMS.asc", "SHA256SUMS")
	if out := run(t, dir, "sha256sum", "--strict", "--ignore-missing", "-c", "SHA256SUMS"); strings.TrimSpace(out) != "installer: OK" {
		t.Fatalf("sha256sum did not check the installer alone:\n%s", out)
	}
	p := filepath.Join(dir, "installer")
	if err := os.Chmod(p, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte("#!/bin/sh\necho evil\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("sha256sum", "--strict", "--ignore-missing", "-c", "SHA256SUMS")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err == nil {
		t.Fatalf("sha256sum accepted a changed installer:\n%s", out)
	}
}
