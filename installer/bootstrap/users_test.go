package bootstrap

import (
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferry-k8s/ferry/installer/pki"
)

// A static user's kubeconfig carries a client certificate from the
// kubernetes realm with the user's name and groups; a user not listed in
// cluster.yaml gets none.
func TestUserKubeconfig(t *testing.T) {
	root := t.TempDir()
	cfg := singleNode + `  authentication:
    staticUsers:
      - {name: alice, groups: [dev, ops]}
`
	os.MkdirAll(filepath.Join(root, "etc/ferry"), 0o755)
	os.WriteFile(filepath.Join(root, ClusterConfig), []byte(cfg), 0o644)
	realm, err := pki.NewRealm(pki.RealmKubernetes, pki.Options{Organization: "test"})
	if err != nil {
		t.Fatal(err)
	}
	if err := realm.WriteFiles(filepath.Join(root, PKIDir, pki.RealmKubernetes), pki.Passphrase("a long enough test passphrase")); err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(root, KubernetesPKI), 0o755)
	os.WriteFile(filepath.Join(root, KubernetesPKI, "ca.crt"), realm.CACertPEM(), 0o644)

	kc, expires, err := UserKubeconfig(UserOptions{Name: "alice", Root: root})
	if err != nil {
		t.Fatal(err)
	}
	var certB64 string
	for _, l := range strings.Split(string(kc), "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), "client-certificate-data: "); ok {
			certB64 = v
		}
	}
	data, _ := base64.StdEncoding.DecodeString(certB64)
	blk, _ := pem.Decode(data)
	if blk == nil {
		t.Fatalf("no certificate in:\n%s", kc)
	}
	cert, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if cert.Subject.CommonName != "alice" || strings.Join(cert.Subject.Organization, ",") != "dev,ops" || !cert.NotAfter.Equal(expires) ||
		len(cert.ExtKeyUsage) != 1 || cert.ExtKeyUsage[0] != x509.ExtKeyUsageClientAuth {
		t.Errorf("certificate %s %v %v %v", cert.Subject, cert.NotAfter, expires, cert.ExtKeyUsage)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(realm.CACertPEM())
	if _, err := cert.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("the user's certificate does not verify under the cluster CA: %v", err)
	}
	if !strings.Contains(string(kc), "server: https://api.lab.example:6443") {
		t.Errorf("kubeconfig server:\n%s", kc)
	}
	if _, _, err := UserKubeconfig(UserOptions{Name: "mallory", Root: root}); err == nil || !strings.Contains(err.Error(), `user "mallory" is not in spec.authentication.staticUsers`) || !strings.Contains(err.Error(), "listed: alice") {
		t.Errorf("unlisted user: %v", err)
	}
}

// TestWriteSecretFile: a kubeconfig with a client key (installer user
// kubeconfig --out) is written 0600 even over an existing 0644 file, and
// never through a symbolic link (which would put the key where the link
// points).
func TestWriteSecretFile(t *testing.T) {
	dir := t.TempDir()
	existing := filepath.Join(dir, "alice.kubeconfig")
	if err := os.WriteFile(existing, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := WriteSecretFile("kubeconfig", existing, []byte("secret")); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(existing); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("an existing 0644 file: %v %v", fi.Mode(), err)
	}
	target := filepath.Join(dir, "public.txt")
	if err := os.WriteFile(target, []byte("public"), 0o644); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "bob.kubeconfig")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	if err := WriteSecretFile("kubeconfig", link, []byte("secret")); err == nil || !strings.Contains(err.Error(), "symbolic link") {
		t.Fatalf("through a symbolic link: %v", err)
	}
	if data, _ := os.ReadFile(target); string(data) != "public" {
		t.Fatalf("the link's target was written: %q", data)
	}
	if err := WriteSecretFile("kubeconfig", dir, []byte("secret")); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Fatalf("over a directory: %v", err)
	}
}
