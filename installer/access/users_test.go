package access

import (
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferry-k8s/ferry/installer/layout"
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
	os.WriteFile(filepath.Join(root, layout.ClusterConfig), []byte(cfg), 0o644)
	realm, err := pki.NewRealm(pki.RealmKubernetes, pki.Options{Organization: "test"})
	if err != nil {
		t.Fatal(err)
	}
	if err := realm.WriteFiles(filepath.Join(root, layout.PKIDir, pki.RealmKubernetes), pki.Passphrase("a long enough test passphrase")); err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(root, layout.KubernetesPKI), 0o755)
	os.WriteFile(filepath.Join(root, layout.ClusterCA), realm.CACertPEM(), 0o644)

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
