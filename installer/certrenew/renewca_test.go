package certrenew

import (
	"bytes"
	"crypto/x509"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ferry-k8s/ferry/installer/layout"
	"github.com/ferry-k8s/ferry/installer/pki"
)

// TestRenewCAs: the intermediate CAs live a year. Renewed from the
// offline roots (a copy of the root keys brought back for the occasion,
// then taken away again), each keeps its key, so leaves issued before
// still verify; leaves issued after outlive the old intermediate, for
// clients that have the new ca.crt and for those that kept the old one
// (a worker's, joined long ago: its bundle holds the root).
func TestRenewCAs(t *testing.T) {
	start := time.Now()
	clock := start
	now := func() time.Time { return clock }
	root := t.TempDir()
	pass := pki.Passphrase("correct horse battery staple")
	offline := t.TempDir() // the root keys' copy off the node
	for _, name := range []string{pki.RealmKubernetes, pki.RealmEtcd} {
		r, err := pki.NewRealm(name, pki.Options{Organization: "lab", Now: now})
		if err != nil {
			t.Fatal(err)
		}
		dir := filepath.Join(root, layout.PKIDir, name)
		if err := r.WriteFiles(dir, pass); err != nil {
			t.Fatal(err)
		}
		// R25: the root key leaves the node.
		if err := os.MkdirAll(filepath.Join(offline, name), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(filepath.Join(dir, pki.RootKeyFile), filepath.Join(offline, name, pki.RootKeyFile)); err != nil {
			t.Fatal(err)
		}
	}
	k8sDir := filepath.Join(root, layout.PKIDir, pki.RealmKubernetes)
	read := func(p string) []byte {
		t.Helper()
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	oldCA, oldKey := read(filepath.Join(k8sDir, pki.CACertFile)), read(filepath.Join(k8sDir, pki.CAKeyFile))
	online, err := pki.LoadRealm(k8sDir, nil, pki.Options{Now: now})
	if err != nil {
		t.Fatal(err)
	}
	oldInter := online.Intermediate

	// Not due: nothing asked, nothing written.
	got, err := RenewCAs(RenewCAOptions{Root: root, Now: now})
	if err != nil || len(got) != 2 || got[0].Renewed || got[1].Renewed {
		t.Fatalf("fresh intermediates: %+v %v", got, err)
	}
	// Ten days before the end: due (from month 8 on). Without the passphrase, with a wrong one, without the
	// keys: refused, and nothing changed.
	clock = start.Add(355 * 24 * time.Hour)
	before, err := online.IssueServer("node1.lab.example") // a leaf of the old intermediate
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		o    RenewCAOptions
		want string
	}{
		{RenewCAOptions{}, "the root keys' passphrase is needed"},
		{RenewCAOptions{Passphrase: pass}, "give --root-keys DIR"}, // the keys are off the node
		{RenewCAOptions{Passphrase: pki.Passphrase("wrong passphrase here"), RootKeys: offline}, "root key"},
	} {
		tc.o.Root, tc.o.Now = root, now
		if _, err := RenewCAs(tc.o); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", tc.o.RootKeys, err, tc.want)
		}
		if !bytes.Equal(read(filepath.Join(k8sDir, pki.CACertFile)), oldCA) {
			t.Fatalf("a refused renewal changed %s", pki.CACertFile)
		}
	}
	got, err = RenewCAs(RenewCAOptions{Root: root, Now: now, Passphrase: pass, RootKeys: offline})
	if err != nil || len(got) != 2 || !got[0].Renewed || !got[1].Renewed || !got[0].NotAfter.After(got[0].Before) {
		t.Fatalf("renewal: %+v %v", got, err)
	}
	t.Logf("renewed: %+v", got)
	if bytes.Equal(read(filepath.Join(k8sDir, pki.CACertFile)), oldCA) || !bytes.Equal(read(filepath.Join(k8sDir, pki.CAKeyFile)), oldKey) {
		t.Fatal("want a new ca.crt and the same ca.key")
	}
	if _, err := os.Stat(filepath.Join(k8sDir, pki.RootKeyFile)); !os.IsNotExist(err) {
		t.Fatalf("the root key was written back to the node: %v", err)
	}
	// Again: nothing due.
	if got, err := RenewCAs(RenewCAOptions{Root: root, Now: now}); err != nil || got[0].Renewed {
		t.Fatalf("renewed again: %+v %v", got, err)
	}

	renewed, err := pki.LoadRealm(k8sDir, nil, pki.Options{Now: now})
	if err != nil {
		t.Fatal(err)
	}
	after, err := renewed.IssueServer("node1.lab.example")
	if err != nil {
		t.Fatal(err)
	}
	if !after.Cert.NotAfter.After(oldInter.NotAfter) {
		t.Fatalf("a leaf issued after the renewal ends %s, with the old intermediate (%s)", after.Cert.NotAfter, oldInter.NotAfter)
	}
	pool := func(pemData []byte) *x509.CertPool {
		p := x509.NewCertPool()
		if !p.AppendCertsFromPEM(pemData) {
			t.Fatal("no certificates")
		}
		return p
	}
	presented := func(l *pki.Leaf) *x509.CertPool { // what a TLS server sends after the leaf
		p := x509.NewCertPool()
		p.AddCert(l.Intermediate)
		return p
	}
	verify := func(what string, l *pki.Leaf, roots []byte, at time.Time) {
		t.Helper()
		if _, err := l.Cert.Verify(x509.VerifyOptions{Roots: pool(roots), Intermediates: presented(l), CurrentTime: at, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
			t.Errorf("%s: %v", what, err)
		}
	}
	newCA := read(filepath.Join(k8sDir, pki.CACertFile))
	verify("an old leaf, a client with the new ca.crt", before, newCA, clock)
	verify("an old leaf, a client with the old ca.crt", before, oldCA, clock)
	pastOld := oldInter.NotAfter.Add(24 * time.Hour)
	verify("a new leaf after the old intermediate ended, the new ca.crt", after, newCA, pastOld)
	verify("a new leaf after the old intermediate ended, a worker's old ca.crt", after, oldCA, pastOld)
}
