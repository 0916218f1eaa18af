package bootstrap

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/ferry-k8s/ferry/internal/testpki"
)

func TestMayFollow(t *testing.T) {
	b := func(name, v, k string) release {
		return release{Name: name, Version: v, KubernetesVersion: k}
	}
	min := func(r release, v string) release { r.MinUpgradeFrom = v; return r }
	cur := b("ferry-kubernetes", "1.0.0", "v1.35.4")
	for _, tc := range []struct {
		next      release
		downgrade bool
		want      string
	}{
		{b("ferry-kubernetes", "1.1.0", "v1.36.3"), false, ""},
		{b("ferry-kubernetes", "1.0.1", "v1.35.5"), false, ""},
		{b("ferry-kubernetes", "1.0.0", "v1.35.4"), false, ""}, // the same: resume or nothing to do
		{b("other", "2.0.0", "v1.36.3"), false, "is not a ferry-kubernetes bundle"},
		{b("ferry-kubernetes", "0.9.0", "v1.35.4"), false, "older than the installed 1.0.0: installer upgrade --allow-downgrade"},
		{b("ferry-kubernetes", "0.9.0", "v1.35.4"), true, ""},
		{b("ferry-kubernetes", "2.0.0", "v1.37.0"), false, "upgrade one minor version at a time (1.36 first)"},
		{b("ferry-kubernetes", "2.0.0", "v1.34.4"), true, "Kubernetes is never downgraded"},
		{b("ferry-kubernetes", "x", "v1.36.3"), false, "want semantic versions"},
		// minUpgradeFrom: enforced when upgrading, on every path.
		{min(b("ferry-kubernetes", "1.2.0", "v1.36.3"), "1.0.0"), false, ""},
		{min(b("ferry-kubernetes", "1.2.0", "v1.36.3"), "1.1.0"), false, "upgrades from 1.1.0 or later only (its minUpgradeFrom), and 1.0.0 is installed"},
		{min(b("ferry-kubernetes", "1.0.0", "v1.35.4"), "1.0.0-rc.1"), false, ""},
		{min(b("ferry-kubernetes", "1.2.0", "v1.36.3"), "one"), false, `minUpgradeFrom "one" is not a semantic version`},
	} {
		err := mayFollow(cur, tc.next, tc.downgrade)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s %s: %v", tc.next.Version, tc.next.KubernetesVersion, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s %s: %v, want %q", tc.next.Version, tc.next.KubernetesVersion, err, tc.want)
		}
	}
}

// TestCheckAPIServers: every control plane's API server must answer
// /readyz 200 over TLS verified with the cluster's CA; one that does not
// is named with its answer.
func TestCheckAPIServers(t *testing.T) {
	ca, err := testpki.NewCA("cluster")
	if err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM, err := ca.Issue("kube-apiserver", []string{"localhost"}, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	server := func(status int, body string) string {
		s := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/readyz" {
				http.NotFound(w, r)
				return
			}
			w.WriteHeader(status)
			io.WriteString(w, body)
		}))
		s.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		s.StartTLS()
		t.Cleanup(s.Close)
		_, port, _ := net.SplitHostPort(s.Listener.Addr().String())
		return "localhost:" + port
	}
	dir := t.TempDir()
	caFile := filepath.Join(dir, "ca.crt")
	if err := os.WriteFile(caFile, ca.CertPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	ok1, ok2 := server(200, "ok"), server(200, "ok")
	if err := checkAPIServers(ctx, map[string]string{"cp1": ok1, "cp2": ok2}, caFile); err != nil {
		t.Fatalf("ready API servers: %v", err)
	}
	sick := server(500, "[-]etcd failed: reason withheld\nreadyz check failed")
	closed, _ := net.Listen("tcp", "127.0.0.1:0")
	_, port, _ := net.SplitHostPort(closed.Addr().String())
	closed.Close()
	err = checkAPIServers(ctx, map[string]string{"cp1": ok1, "cp2": sick, "cp3": "localhost:" + port}, caFile)
	if err == nil || !strings.Contains(err.Error(), "node cp2: GET https://"+sick+"/readyz: 500 Internal Server Error: readyz check failed") || !strings.Contains(err.Error(), "node cp3: ") || strings.Contains(err.Error(), "cp1") {
		t.Fatalf("a sick and a dead API server: %v", err)
	}
	// Another CA: not trusted.
	other, _ := testpki.NewCA("other")
	otherFile := filepath.Join(dir, "other.crt")
	os.WriteFile(otherFile, other.CertPEM, 0o644)
	if err := checkAPIServers(ctx, map[string]string{"cp1": ok1}, otherFile); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("an API server with a certificate of another CA: %v", err)
	}
}

// TestCheckSpace: an ISO larger than the free space is refused before
// anything is copied; one imported already needs no space.
func TestCheckSpace(t *testing.T) {
	dir := t.TempDir()
	iso := filepath.Join(dir, "new.iso")
	f, err := os.Create(iso)
	if err != nil {
		t.Fatal(err)
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	// A sparse file as large as the free space: with the margin, too large.
	if err := f.Truncate(int64(st.Bavail * uint64(st.Bsize))); err != nil {
		t.Fatal(err)
	}
	f.Close()
	dst := filepath.Join(dir, "var/lib/ferry/bundles/new.iso")
	err = checkSpace(iso, dst, filepath.Join(dir, "var/lib/ferry/snapshots"))
	if err == nil || !strings.Contains(err.Error(), "free some space first") {
		t.Fatalf("an ISO as large as the free space: %v", err)
	}
	small := filepath.Join(dir, "small.iso")
	os.WriteFile(small, []byte("iso"), 0o644)
	if err := checkSpace(small, dst, filepath.Join(dir, "snapshots")); err != nil && st.Bavail*uint64(st.Bsize) > 2<<30 {
		t.Fatalf("a small ISO: %v", err)
	}
	os.MkdirAll(filepath.Dir(dst), 0o755)
	os.WriteFile(dst, nil, 0o644)
	if err := checkSpace(iso, dst, filepath.Join(dir, "snapshots")); err != nil {
		t.Fatalf("imported already: %v", err)
	}
}
