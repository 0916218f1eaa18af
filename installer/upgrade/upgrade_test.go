package upgrade

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/ferry-k8s/ferry/builder/distro/distrotest"
	"github.com/ferry-k8s/ferry/installer/nodeconfig/nodeconfigtest"
	"github.com/ferry-k8s/ferry/internal/testcluster"
	"github.com/ferry-k8s/ferry/internal/testpki"
)

// TestCheckAPIServers: every control plane's API server must answer
// /readyz 200 over TLS verified with the cluster's CA; one that does not
// is named with its answer. The ready API server is the real
// kube-apiserver (internal/testcluster) with the AuthenticationConfiguration
// Ferry renders for a control-plane node: the check is anonymous, and that
// configuration is what lets an anonymous /readyz through.
func TestCheckAPIServers(t *testing.T) {
	c := testcluster.Start(t, testcluster.Options{KubeAPIServer: distrotest.KubeAPIServer(t), Etcd: distrotest.Etcd(t), AuthenticationConfig: nodeconfigtest.AuthenticationConfig(t)})
	u, err := url.Parse(c.Config.Host)
	if err != nil {
		t.Fatal(err)
	}
	ready := "localhost:" + u.Port() // its certificate names localhost
	ctx := context.Background()
	if err := checkAPIServers(ctx, map[string]string{"cp1": ready}, c.CAFile); err != nil {
		t.Fatalf("a ready API server: %v", err)
	}

	// A stand-in for an API server that is up but not ready. The real one
	// answers /readyz 500 only while a check of its own fails (etcd lost
	// for longer than its health timeout, the shutdown delay after
	// SIGTERM): a window that opens after a delay and closes again, not a
	// state a test can hold it in. This server holds it, with a
	// certificate of the cluster's CA and the real one's body shape.
	certPEM, keyPEM, err := c.CA.Issue("localhost", []string{"localhost"}, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	s := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/readyz" {
			http.NotFound(w, r)
			return
		}
		w.WriteHeader(http.StatusInternalServerError)
		io.WriteString(w, "[+]ping ok\n[-]etcd failed: reason withheld\nreadyz check failed")
	}))
	s.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	s.StartTLS()
	t.Cleanup(s.Close)
	_, port, _ := net.SplitHostPort(s.Listener.Addr().String())
	sick := "localhost:" + port
	// A stopped API server: its port, where nothing listens any more.
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ = net.SplitHostPort(closed.Addr().String())
	closed.Close()
	err = checkAPIServers(ctx, map[string]string{"cp1": ready, "cp2": sick, "cp3": "localhost:" + port}, c.CAFile)
	if err == nil || !strings.Contains(err.Error(), "node cp2: GET https://"+sick+"/readyz: 500 Internal Server Error: readyz check failed") ||
		!strings.Contains(err.Error(), "node cp3: ") || !strings.Contains(err.Error(), "connection refused") || strings.Contains(err.Error(), "cp1") {
		t.Fatalf("a sick and a dead API server: %v", err)
	}

	// The real API server checked with another CA: not trusted.
	other, err := testpki.NewCA("other")
	if err != nil {
		t.Fatal(err)
	}
	otherFile := filepath.Join(t.TempDir(), "other.crt")
	if err := os.WriteFile(otherFile, other.CertPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := checkAPIServers(ctx, map[string]string{"cp1": ready}, otherFile); err == nil || !strings.Contains(err.Error(), "certificate signed by unknown authority") {
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
