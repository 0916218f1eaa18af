package builder

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/ferry-k8s/ferry/builder/distro"
	"github.com/ferry-k8s/ferry/bundle"
	"github.com/ferry-k8s/ferry/images"
	"github.com/ferry-k8s/ferry/internal/testutil"
	"github.com/ferry-k8s/ferry/repo/rpmbuild"
	"github.com/ferry-k8s/ferry/signing"
)

// sourceCache is where source builds are cached across test runs (CI keeps
// FERRY_CACHE_DIR between runs on a machine; cold, the first run compiles
// Kubernetes, etcd, CoreDNS, containerd, runc, CNI plugins and crictl).
func sourceCache(t *testing.T) string {
	if d := os.Getenv("FERRY_CACHE_DIR"); d != "" {
		return d
	}
	d, err := os.UserCacheDir()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(d, "ferry")
}

// fixedSigner is a release key made from fixed entropy, so its fingerprint
// (part of the cached RPMs' key) is the same in every run.
func fixedSigner(t *testing.T, dir string) (*signing.Signer, string) {
	t.Helper()
	sec, pub, err := signing.GenerateKey(signing.KeyOptions{Name: "Ferry Test Release", Email: "release@test.invalid",
		Created: epoch.Add(-time.Hour), Rand: rand.NewChaCha8([32]byte{'f', 'e', 'r', 'r', 'y'})})
	if err != nil {
		t.Fatal(err)
	}
	s, err := signing.LoadSigner(bytes.NewReader(sec), nil)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "release.pub.asc")
	if err := os.WriteFile(p, pub, 0o644); err != nil {
		t.Fatal(err)
	}
	return s, p
}

// buildInstaller compiles this repository's installer, to be packaged.
func buildInstaller(t *testing.T, dir string) string {
	t.Helper()
	out := filepath.Join(dir, "installer")
	cmd := exec.Command("go", "build", "-tags", "containers_image_openpgp", "-trimpath",
		"-ldflags", "-X github.com/ferry-k8s/ferry/internal/version.Version=0.0.0-test", "-o", out, "../installer/cmd/installer")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building the installer: %v\n%s", err, b)
	}
	return out
}

// TestDefaultBundleFromSource builds the default bundle (the newest
// Kubernetes, everything compiled from its Go module sources) and checks
// it with the real tools: rpm reads and verifies the RPMs, dnf installs the
// node packages with gpgcheck, the installed kubeadm lists exactly the
// bundle's images, and each image's binary runs under the runc the bundle
// ships. A second build from the warm cache is byte-identical.
func TestDefaultBundleFromSource(t *testing.T) {
	for _, p := range []string{"go", "rpm", "rpmkeys", "dnf", "xorriso", "umoci", "skopeo"} {
		testutil.Need(t, p)
	}
	ctx := context.Background()
	dir := t.TempDir()
	signer, pub := fixedSigner(t, dir)
	inst := buildInstaller(t, dir)
	out := filepath.Join(dir, "ferry.iso")
	opts := Options{Default: true, Output: out, Signer: signer, SourceDateEpoch: epoch, InstallerBinary: inst, CacheDir: sourceCache(t)}
	start := time.Now()
	res, err := Build(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("first build: %s (%s, %d files)", time.Since(start).Round(time.Second), out, res.Files)
	kv := distro.SupportedKubernetesVersions()[0]
	if res.Version != strings.TrimPrefix(kv, "v") {
		t.Errorf("bundle version %s, want %s", res.Version, kv)
	}

	root := extract(t, out)
	repoDir := filepath.Join(root, "packages", "kubernetes")
	rpms, _ := filepath.Glob(filepath.Join(repoDir, "Packages", "*.rpm"))
	rpmByName := map[string]string{}
	for _, p := range rpms {
		out := strings.Split(strings.TrimSpace(run(t, "", "rpm", "-qp", "--nosignature", "--qf", "%{NAME}\n", p)), "\n")
		name := out[len(out)-1]
		rpmByName[name] = p
	}
	for _, want := range []string{"kubelet", "kubeadm", "kubectl", "containerd", "runc", "kubernetes-cni", "cri-tools",
		"kube-apiserver", "kube-controller-manager", "kube-scheduler", "kube-proxy", "etcd", "coredns", "ferry-pause", "ferry-installer"} {
		if rpmByName[want] == "" {
			t.Errorf("no %s RPM in the bundle (have %v)", want, rpms)
		}
	}

	// rpm -qip names the package and its origin; rpm -K checks digests and
	// the signature with the bundle's key.
	info := run(t, "", "rpm", "-qip", rpmByName["kubelet"])
	for _, want := range []string{"Name        : kubelet", "Version     : " + strings.TrimPrefix(kv, "v"), "Release     : " + distro.Release, "License     : Apache-2.0", "Vendor      : Ferry"} {
		if !strings.Contains(info, want) {
			t.Errorf("rpm -qip kubelet lacks %q:\n%s", want, info)
		}
	}
	keyroot := t.TempDir()
	run(t, "", "rpmkeys", "--root", keyroot, "--import", pub)
	for name, p := range rpmByName {
		if out := run(t, "", "rpmkeys", "--root", keyroot, "-K", p); !strings.Contains(out, "digests signatures OK") {
			t.Errorf("rpm -K %s: %s", name, out)
		}
	}

	// dnf installs the node packages from the bundle's repository with
	// gpgcheck and repo_gpgcheck. The install root stands for a host whose
	// system is not managed by rpm (like the e2e nodes): it has a shell, and
	// a package declares what the host provides so that scriptlets'
	// /bin/sh requirement is met.
	installroot := hostRoot(t, signer)
	args := []string{
		"--installroot=" + installroot,
		"--setopt=reposdir=/dev/null", "--setopt=cachedir=" + filepath.Join(t.TempDir(), "cache"),
		"--setopt=install_weak_deps=False", "--releasever=1", "--disableplugin=*",
		"--repofrompath=ferry," + repoDir, "--repo=ferry",
		"--setopt=ferry.gpgcheck=1", "--setopt=ferry.repo_gpgcheck=1", "--setopt=ferry.gpgkey=file://" + pub,
		"-y", "install", filepath.Join(installroot, "host.rpm"), "kubelet", "kubeadm", "kubectl", "containerd", "runc", "cri-tools", "kubernetes-cni",
	}
	run(t, "", "dnf", args...)
	bin := func(name string) string { return filepath.Join(installroot, "usr", "bin", name) }
	for _, c := range []struct {
		bin  string
		args []string
		want string
	}{
		{"kubelet", []string{"--version"}, "Kubernetes " + kv},
		{"kubeadm", []string{"version", "-o", "short"}, kv},
		{"kubectl", []string{"version", "--client"}, "Client Version: " + kv},
		{"runc", []string{"--version"}, "runc version 1."},
		{"containerd", []string{"--version"}, "containerd github.com/containerd/containerd/v2 v2."},
		{"crictl", []string{"--version"}, "crictl version v1."},
	} {
		if out := run(t, "", bin(c.bin), c.args...); !strings.Contains(out, c.want) {
			t.Errorf("%s %v: %q lacks %q", c.bin, c.args, out, c.want)
		}
	}
	if _, err := os.Stat(filepath.Join(installroot, "opt", "cni", "bin", "bridge")); err != nil {
		t.Errorf("kubernetes-cni: %v", err)
	}

	// The installed kubeadm lists exactly the images the bundle holds.
	cfg := filepath.Join(dir, "kubeadm.yaml")
	writeFile(t, cfg, fmt.Sprintf("apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\nkubernetesVersion: %s\nimageRepository: registry.ferry.dev/k8s\n", kv))
	want := strings.Fields(run(t, "", bin("kubeadm"), "config", "images", "list", "--config", cfg))
	idx, err := images.ReadIndex(os.DirFS(filepath.Join(root, "images")), ".")
	if err != nil {
		t.Fatal(err)
	}
	var have []string
	for _, e := range idx {
		have = append(have, e.Name)
	}
	sort.Strings(want)
	sort.Strings(have)
	if !slices.Equal(want, have) {
		t.Errorf("kubeadm config images list:\n%v\nbundle images:\n%v", want, have)
	}

	// Each image runs its binary (--version) under the bundle's runc.
	runcBin := bin("runc")
	for _, name := range have {
		img := name[strings.LastIndex(name, "/")+1:]
		img, tag, _ := strings.Cut(img, ":")
		arg, wantOut := "--version", ""
		switch img {
		case "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kube-proxy":
			wantOut = "Kubernetes " + kv
		case "etcd":
			wantOut = "etcd Version: " + strings.Split(tag, "-")[0]
		case "coredns":
			arg, wantOut = "-version", "CoreDNS-"+strings.TrimPrefix(tag, "v")
		case "pause":
			wantOut = "pause " + tag
		}
		if out := runImage(t, runcBin, filepath.Join(root, "images"), name, arg); !strings.Contains(out, wantOut) {
			t.Errorf("%s %s: %q lacks %q", name, arg, out, wantOut)
		}
	}

	// The build record traces every binary and keeps R8's check.
	var rec bundle.DistributionRecord
	data, err := os.ReadFile(filepath.Join(root, bundle.DistributionRecordName))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &rec); err != nil {
		t.Fatal(err)
	}
	if len(rec.KernelMemoryAccounting) != 2 || len(rec.Components) != 8 || len(rec.Images) != len(have) {
		t.Errorf("record: %s", data)
	}

	// Warm: the same build again gives the same bytes.
	start = time.Now()
	out2 := filepath.Join(dir, "ferry2.iso")
	opts.Output = out2
	if _, err := Build(ctx, opts); err != nil {
		t.Fatal(err)
	}
	t.Logf("warm rebuild: %s", time.Since(start).Round(time.Second))
	if fileSHA256(t, out) != fileSHA256(t, out2) {
		t.Error("two builds of the default bundle differ")
	}
}

// hostRoot makes an install root that stands for a non-RPM host: a shell
// with its libraries in place, and host.rpm (signed with the bundle key, as
// the installer would make it on such a host) that declares /bin/sh.
func hostRoot(t *testing.T, signer *signing.Signer) string {
	t.Helper()
	root := filepath.Join(t.TempDir(), "root")
	sh, err := filepath.EvalSymlinks("/bin/sh")
	if err != nil {
		t.Fatal(err)
	}
	files := []string{sh}
	ldd, err := exec.Command("ldd", sh).Output()
	if err != nil {
		t.Fatalf("ldd %s: %v", sh, err)
	}
	for _, f := range strings.Fields(string(ldd)) {
		if strings.HasPrefix(f, "/") {
			files = append(files, f)
		}
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		dst := filepath.Join(root, f)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, data, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if sh != "/bin/sh" {
		if err := os.MkdirAll(filepath.Join(root, "bin"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(sh, filepath.Join(root, "bin", "sh")); err != nil {
			t.Fatal(err)
		}
	}
	host := rpmbuild.Package{Name: "host-provides", Version: "1", Release: "1", Arch: "noarch", Summary: "what the host system provides",
		License: "Apache-2.0", BuildTime: epoch, Provides: []rpmbuild.Relation{{Name: "/bin/sh"}}}
	if err := rpmbuild.WriteFile(filepath.Join(root, "host.rpm"), host, rpmbuild.Options{Signer: signer}); err != nil {
		t.Fatal(err)
	}
	return root
}

// runImage unpacks an image of the layout with umoci and runs its
// entrypoint with arg under runc.
func runImage(t *testing.T, runc, layout, name, arg string) string {
	t.Helper()
	dir := t.TempDir()
	copyDir := filepath.Join(dir, "oci")
	// umoci wants a writable layout with the image under a simple tag.
	run(t, "", "skopeo", "--insecure-policy", "copy", "--quiet", "oci:"+layout+":"+name, "oci:"+copyDir+":img")
	bundle := filepath.Join(dir, "bundle")
	run(t, "", "umoci", "unpack", "--image", copyDir+":img", bundle)
	specFile := filepath.Join(bundle, "config.json")
	var spec map[string]any
	data, err := os.ReadFile(specFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &spec); err != nil {
		t.Fatal(err)
	}
	proc := spec["process"].(map[string]any)
	proc["terminal"] = false
	args := proc["args"].([]any)
	proc["args"] = []any{args[0], arg}
	if data, err = json.Marshal(spec); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(specFile, data, 0o644); err != nil {
		t.Fatal(err)
	}
	id := fmt.Sprintf("ferry-distro-%d-%d", os.Getpid(), time.Now().UnixNano())
	runcRoot := filepath.Join(dir, "runc-state")
	t.Cleanup(func() { exec.Command(runc, "--root", runcRoot, "delete", "--force", id).Run() })
	cmd := exec.Command(runc, "--root", runcRoot, "run", "--bundle", bundle, id)
	cmd.Dir = bundle
	b, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("runc run %s %s: %v\n%s", name, arg, err, b)
	}
	return string(b)
}
