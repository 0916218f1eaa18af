package integration

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferry-k8s/ferry/internal/testutil"
)

// TestDNFInstallsOverHTTPS installs ferry-hello (and its dependency
// ferry-hello-data) with dnf from the service, using the .repo file the
// service generates (baseurl, gpgcheck=1, repo_gpgcheck=1, gpgkey from
// /keys/ferry.pub.asc) plus sslcacert for the test CA.
func TestDNFInstallsOverHTTPS(t *testing.T) {
	testutil.Need(t, "dnf")
	testutil.Need(t, "rpm")
	s := startServer(t, serveOptions{})
	code, body, err := s.get(t, s.client(t, false), "/repos/1.0.0/ferry.repo")
	if err != nil || code != http.StatusOK {
		t.Fatalf("GET /repos/1.0.0/ferry.repo: %d %v %s", code, err, body)
	}
	repoFile := string(body)
	for _, want := range []string{"[ferry-base]", "baseurl=" + s.url + "/repos/1.0.0/base/", "gpgcheck=1", "repo_gpgcheck=1", "gpgkey=" + s.url + "/keys/ferry.pub.asc"} {
		if !strings.Contains(repoFile, want) {
			t.Errorf("ferry.repo lacks %q:\n%s", want, repoFile)
		}
	}
	// What an admin adds for a private CA: sslcacert in every section.
	var withCA strings.Builder
	for line := range strings.SplitSeq(strings.TrimRight(repoFile, "\n"), "\n") {
		withCA.WriteString(line + "\n")
		if strings.HasPrefix(line, "[") {
			withCA.WriteString("sslcacert=" + shared.caFile + "\nsslverify=1\n")
		}
	}

	// The key served is the keyring given to the service.
	code, key, err := s.get(t, s.client(t, false), "/keys/ferry.pub.asc")
	if err != nil || code != http.StatusOK || !strings.Contains(string(key), "BEGIN PGP PUBLIC KEY BLOCK") {
		t.Fatalf("GET /keys/ferry.pub.asc: %d %v %.100s", code, err, key)
	}

	root, out := dnfInstall(t, withCA.String(), "ferry-hello")
	for _, p := range []string{"usr/bin/ferry-hello", "usr/share/ferry-hello/greeting"} {
		if _, err := os.Stat(filepath.Join(root, p)); err != nil {
			t.Errorf("%s not installed: %v\n%s", p, err, out)
		}
	}
	q := run(t, "rpm", "--root", root, "-q", "ferry-hello", "ferry-hello-data")
	if !strings.Contains(q, "ferry-hello-1.0.0-1.noarch") || !strings.Contains(q, "ferry-hello-data-1.0.0-1.noarch") {
		t.Errorf("rpm -q: %s", q)
	}
	// "latest" serves the same repository.
	code, body, err = s.get(t, s.client(t, false), "/repos/latest/base/repodata/repomd.xml")
	if err != nil || code != http.StatusOK || !strings.Contains(string(body), "<repomd") {
		t.Errorf("GET /repos/latest/base/repodata/repomd.xml: %d %v", code, err)
	}

	// Without the CA dnf refuses the server (the check above is real).
	noCA := strings.ReplaceAll(withCA.String(), "sslcacert="+shared.caFile+"\n", "")
	if _, out, err := dnfInstallErr(t, noCA, "ferry-hello"); err == nil {
		t.Errorf("dnf installed from a server whose CA it was not given:\n%s", out)
	}
}

// dnfInstall runs dnf with only repoFile's repositories, into a new root.
func dnfInstall(t *testing.T, repoFile string, pkgs ...string) (root, out string) {
	t.Helper()
	root, out, err := dnfInstallErr(t, repoFile, pkgs...)
	if err != nil {
		t.Fatalf("dnf install %v: %v\n%s", pkgs, err, out)
	}
	return root, out
}

// dnfInstallErr: Debian 12's dnf 4.14, with a config holding only [main]
// (the host's dnf.conf and repos play no part) and its cache in the test's
// directory. librepo starts a gpg-agent for the repo_gpgcheck keyring in
// the cache; it is stopped when the test ends.
func dnfInstallErr(t *testing.T, repoFile string, pkgs ...string) (root, out string, err error) {
	t.Helper()
	tmp := t.TempDir()
	cfg, repos, cache := filepath.Join(tmp, "dnf.conf"), filepath.Join(tmp, "repos.d"), filepath.Join(tmp, "cache")
	root = filepath.Join(tmp, "root")
	for _, d := range []string{root, cache, repos} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(cfg, []byte("[main]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(repos, "ferry.repo"), []byte(repoFile), 0o644); err != nil {
		t.Fatal(err)
	}
	testutil.StopDNFKeyringAgents(t, cache)
	args := []string{"--config=" + cfg, "--noplugins", "--installroot=" + root,
		"--setopt=reposdir=" + repos, "--setopt=cachedir=" + cache,
		"--setopt=install_weak_deps=False", "--releasever=1", "-y", "install"}
	out, err = runErr(t, "dnf", append(args, pkgs...)...)
	return root, out, err
}
