package nodestate

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ferry-k8s/ferry/installer/cluster"
	"github.com/ferry-k8s/ferry/installer/cluster/clustertest"
	"github.com/ferry-k8s/ferry/installer/converge"
	"github.com/ferry-k8s/ferry/installer/desired"
	"github.com/ferry-k8s/ferry/installer/layout"
	"github.com/ferry-k8s/ferry/installer/pki"
)

func testCluster(t *testing.T) (*cluster.Cluster, *cluster.Node) {
	t.Helper()
	c, err := cluster.Parse([]byte(clustertest.SingleNode))
	if err != nil {
		t.Fatal(err)
	}
	c = c.Defaulted()
	return c, c.Node("node1")
}

func parseCert(t *testing.T, p string) *x509.Certificate {
	t.Helper()
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := pem.Decode(data)
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// The PKI is made once and then left alone: a second run plans nothing; a
// leaf due for rotation, and only that one, is issued again.
func TestPKIIsConvergent(t *testing.T) {
	c, n := testCluster(t)
	root := t.TempDir()
	all, err := desired.ControlPlaneLeaves(c, n, "192.0.2.10")
	if err != nil {
		t.Fatal(err)
	}
	// kubeadm's leaves and the content service's.
	leaves := all[:8]
	now := time.Now()
	opts := CredentialOptions{Root: root, Passphrase: pki.Passphrase("a long test passphrase"), Now: func() time.Time { return now }}
	realms := []string{pki.RealmKubernetes, pki.RealmEtcd, pki.RealmFrontProxy, pki.RealmContent}
	h := &converge.Host{Root: root, StateDir: "/var/lib/ferry"}
	converge1 := func() int {
		files, err := Credentials(opts, leaves, realms)
		if err != nil {
			t.Fatal(err)
		}
		d := converge.Desired{Files: files}
		o, err := h.Observe(context.Background(), d)
		if err != nil {
			t.Fatal(err)
		}
		ops := converge.Plan(d, o)
		if _, err := h.Apply(context.Background(), ops); err != nil {
			t.Fatal(err)
		}
		return len(ops)
	}
	if n := converge1(); n != 4*4+3*2+1+8*2 {
		t.Fatalf("first run wrote %d files", n)
	}
	if n := converge1(); n != 0 {
		t.Fatalf("second run: %d changes", n)
	}
	api := parseCert(t, filepath.Join(root, layout.KubernetesPKI, "apiserver.crt"))
	if len(api.IPAddresses) != 2 || !api.IPAddresses[0].Equal(net.ParseIP("10.96.0.1")) || !api.IPAddresses[1].Equal(net.ParseIP("192.0.2.10")) {
		t.Errorf("apiserver IP SANs %v: want the service IP and the node's API address", api.IPAddresses)
	}
	for _, want := range []string{"api.lab.example", "node1.lab.example", "kubernetes.default.svc.cluster.local"} {
		if err := api.VerifyHostname(want); err != nil {
			t.Error(err)
		}
	}
	// Every other certificate has DNS names only (R29), and realms do not
	// cross: the etcd server certificate does not verify under the
	// kubernetes CA.
	filepath.Walk(filepath.Join(root, layout.KubernetesPKI), func(p string, fi os.FileInfo, err error) error {
		if err != nil || !strings.HasSuffix(p, ".crt") || strings.HasSuffix(p, "apiserver.crt") {
			return err
		}
		if c := parseCert(t, p); len(c.IPAddresses) != 0 {
			t.Errorf("%s has IP SANs %v", p, c.IPAddresses)
		}
		return nil
	})
	k8sPool := x509.NewCertPool()
	k8sPool.AppendCertsFromPEM(must(os.ReadFile(filepath.Join(root, layout.KubernetesPKI, "ca.crt"))))
	etcdServer := parseCert(t, filepath.Join(root, layout.KubernetesPKI, "etcd/server.crt"))
	if _, err := etcdServer.Verify(x509.VerifyOptions{Roots: k8sPool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err == nil {
		t.Error("an etcd certificate verifies under the kubernetes CA")
	}

	// 25 days later (30-day leaves, rotated at a third left) every leaf is
	// due, the realms are not.
	now = now.Add(25 * 24 * time.Hour)
	if n := converge1(); n != 8*2 {
		t.Fatalf("after 25 days: %d changes, want the 8 leaves re-issued", n)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
