package content

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferry-k8s/ferry/internal/testutil"
)

// TestDNFInstallsOverHTTPS points a real dnf at the service the way a node
// would: the served ferry.repo (baseurl and gpgkey over HTTPS,
// gpgcheck=1, repo_gpgcheck=1), the test CA as sslcacert, and nothing
// else. dnf is required (`make deps` installs it); a missing dnf fails.
func TestDNFInstallsOverHTTPS(t *testing.T) {
	dnf, err := exec.LookPath("dnf")
	if err != nil {
		t.Fatalf("dnf is required for this test (make deps installs it): %v", err)
	}
	e := newEnv(t, Options{})
	e.mustAdd(e.f.iso100, e.f.iso110)
	root, out, err := e.dnfInstall(t, dnf, "ferry-hello")
	if err != nil {
		t.Fatalf("%v\n%s\nserver log:\n%s", err, out, e.logs)
	}
	for _, p := range []string{"usr/bin/ferry-hello", "usr/share/ferry-hello/greeting"} {
		if _, err := os.Stat(filepath.Join(root, p)); err != nil {
			t.Errorf("%s not installed: %v\n%s", p, err, out)
		}
	}
	q, err := exec.Command("rpm", "--root", root, "-q", "ferry-hello", "ferry-hello-data").CombinedOutput()
	if err != nil || !strings.Contains(string(q), "ferry-hello-1.0.0-1.noarch") || !strings.Contains(string(q), "ferry-hello-data-1.0.0-1.noarch") {
		t.Errorf("rpm -q: %v\n%s", err, q)
	}
	// dnf really fetched the key, the signed metadata and the packages here.
	for _, route := range []string{"key", "yum"} {
		if got := metric(t, e.svc.m.requests.WithLabelValues(route, "200")); got < 1 {
			t.Errorf("no %s request answered 200", route)
		}
	}
	// The key came from the service, and dnf checked with it.
	if !strings.Contains(string(out), "Key imported successfully") || !strings.Contains(string(out), "From       : "+e.base+KeyPath) {
		t.Errorf("dnf did not import the key from %s%s:\n%s", e.base, KeyPath, out)
	}
}

// dnfInstall installs pkg with the real dnf into a new root from the
// service's latest ferry.repo, as a node would; it returns the root and
// dnf's output.
func (e *env) dnfInstall(t *testing.T, dnf, pkg string) (string, []byte, error) {
	t.Helper()
	code, _, repoFile := e.get("/repos/latest/ferry.repo")
	if code != 200 {
		t.Fatalf("ferry.repo: %d", code)
	}
	tmp := t.TempDir()
	cfg, reposd, root, cache := filepath.Join(tmp, "dnf.conf"), filepath.Join(tmp, "repos.d"), filepath.Join(tmp, "root"), filepath.Join(tmp, "cache")
	for _, d := range []string{reposd, root, cache} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(cfg, []byte("[main]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(reposd, "ferry.repo"), repoFile, 0o644); err != nil {
		t.Fatal(err)
	}
	testutil.StopDNFKeyringAgents(t, cache)
	args := []string{
		"--config=" + cfg, "--noplugins", "--installroot=" + root,
		"--setopt=reposdir=" + reposd, "--setopt=cachedir=" + cache,
		"--setopt=install_weak_deps=False", "--releasever=1", "-y",
		"--setopt=ferry-base.sslcacert=" + e.pki.caFile,
		"install", pkg,
	}
	out, err := exec.Command(dnf, args...).CombinedOutput()
	if err != nil {
		return root, out, fmt.Errorf("dnf %s: %w", strings.Join(args, " "), err)
	}
	return root, out, nil
}
