package certrenew

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	certv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/ferry-k8s/ferry/builder/distro/distrotest"
	"github.com/ferry-k8s/ferry/installer/pki"
	"github.com/ferry-k8s/ferry/internal/testcluster"
	"github.com/ferry-k8s/ferry/internal/testpki"
)

// pair writes a leaf's certificate and key as a join file puts them on a
// worker.
func pair(t *testing.T, dir, name string, l *pki.Leaf, err error) (string, string) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	key, err := l.KeyPEM()
	if err != nil {
		t.Fatal(err)
	}
	cert, keyFile := filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	if err := os.WriteFile(cert, l.CertPEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, key, 0o600); err != nil {
		t.Fatal(err)
	}
	return cert, keyFile
}

// TestRenewal runs the whole renewal against a real API server with the
// Node authorizer: the worker (with its node identity) asks, the control
// plane's signer approves and signs, the worker installs the new pair;
// requests outside the policy are denied with the reason.
func TestRenewal(t *testing.T) {
	// The cluster's CA is a kubernetes realm's intermediate: the signer
	// signs with that realm, and the API server accepts what it signs.
	realm, err := pki.NewRealm(pki.RealmKubernetes, pki.Options{Organization: "ferry-test"})
	if err != nil {
		t.Fatal(err)
	}
	c := testcluster.Start(t, testcluster.Options{KubeAPIServer: distrotest.KubeAPIServer(t), Etcd: distrotest.Etcd(t), Authorization: "Node,RBAC",
		CA: &testpki.CA{Cert: realm.Intermediate, Key: realm.IntermediateKey, CertPEM: realm.CACertPEM()}})
	ctx := context.Background()
	dir := t.TempDir()
	w1 := c.ClientAs(t, "system:node:w1", "system:nodes")
	signer := &Signer{Realm: func() (*pki.Realm, error) { return realm, nil }, Nodes: map[string]string{"w1": "w1.lab.example"}}
	later := func() time.Time { return time.Now().Add(21 * 24 * time.Hour) } // 9 of 30 days left

	for _, tc := range []struct {
		signer string
		leaf   func() (*pki.Leaf, error)
	}{
		{SignerKubeletServing, func() (*pki.Leaf, error) {
			return realm.Issue(pki.LeafRequest{CommonName: "system:node:w1", Organizations: []string{"system:nodes"}, DNSNames: []string{"w1.lab.example"}, Usage: pki.ServerAuth})
		}},
		{SignerKubeProxy, func() (*pki.Leaf, error) { return realm.IssueClient(KubeProxyUser) }},
	} {
		t.Run(strings.TrimPrefix(tc.signer, "ferry.dev/"), func(t *testing.T) {
			l, err := tc.leaf()
			certFile, keyFile := pair(t, dir, tc.signer[len("ferry.dev/"):], l, err)
			oldKey, _ := os.ReadFile(keyFile)
			r := Request{Signer: tc.signer, Node: "w1", Hostname: "w1.lab.example", CertFile: certFile, KeyFile: keyFile, CAFile: c.CAFile}

			// Not due: nothing asked.
			if done, err := Renew(ctx, w1, r); err != nil || done {
				t.Fatalf("renewal of a fresh certificate: %v %v", done, err)
			}
			requests := func() []certv1.CertificateSigningRequest {
				list, err := c.Client.CertificatesV1().CertificateSigningRequests().List(ctx, metav1.ListOptions{})
				if err != nil {
					t.Fatal(err)
				}
				var out []certv1.CertificateSigningRequest
				for _, r := range list.Items {
					if r.Spec.SignerName == tc.signer {
						out = append(out, r)
					}
				}
				return out
			}
			if n := len(requests()); n != 0 {
				t.Fatalf("a fresh certificate was asked for: %d requests", n)
			}
			r.Now = later
			for i := 0; i < 2; i++ { // the request, then waiting for it
				if done, err := Renew(ctx, w1, r); err != nil || done {
					t.Fatalf("renewal round %d: %v %v", i, done, err)
				}
			}
			res, err := signer.Process(ctx, c.Client)
			if err != nil || res.Signed != 1 || res.Denied != 0 {
				t.Fatalf("signer: %+v %v", res, err)
			}
			if res, err := signer.Process(ctx, c.Client); err != nil || res != (Result{}) {
				t.Fatalf("signer again: %+v %v", res, err)
			}
			done, err := Renew(ctx, w1, r)
			if err != nil || !done {
				t.Fatalf("installing the signed certificate: %v %v", done, err)
			}
			newKey, _ := os.ReadFile(keyFile)
			if string(newKey) == string(oldKey) {
				t.Error("the key was not replaced")
			}
			if fi, _ := os.Stat(keyFile); fi.Mode().Perm() != 0o600 {
				t.Errorf("key mode %v", fi.Mode().Perm())
			}
			for _, p := range []string{keyFile + ".next", certFile + ".next"} {
				if _, err := os.Stat(p); !os.IsNotExist(err) {
					t.Errorf("%s left: %v", p, err)
				}
			}
			cert, err := readCert(certFile)
			if err != nil {
				t.Fatal(err)
			}
			key, _ := readKey(keyFile)
			if !key.PublicKey.Equal(cert.PublicKey) || len(cert.IPAddresses) != 0 {
				t.Errorf("new pair: key matches %v, IPs %v", key.PublicKey.Equal(cert.PublicKey), cert.IPAddresses)
			}
			if reqs := requests(); len(reqs) != 1 || reqs[0].Spec.Username != "system:node:w1" || !answered(&reqs[0]) {
				t.Errorf("requests after the renewal: %d (want the one answered, by the node)", len(reqs))
			}
			r.Now = nil
			if done, err := Renew(ctx, w1, r); err != nil || done {
				t.Errorf("renewal of the renewed certificate: %v %v", done, err)
			}
		})
	}

	// Outside the policy: another node's name, an IP address, a node
	// not in the configuration, a requester that is not a node.
	request := func(client kubernetes.Interface, name, signer, cn string, orgs, dns []string, ips bool, usage certv1.KeyUsage) {
		t.Helper()
		k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.CertificateRequest{Subject: pkix.Name{CommonName: cn, Organization: orgs}, DNSNames: dns}
		if ips {
			tmpl.IPAddresses = append(tmpl.IPAddresses, []byte{10, 0, 0, 1})
		}
		der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, k)
		if err != nil {
			t.Fatal(err)
		}
		_, err = client.CertificatesV1().CertificateSigningRequests().Create(ctx, &certv1.CertificateSigningRequest{ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: certv1.CertificateSigningRequestSpec{Request: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}), SignerName: signer,
				Usages: []certv1.KeyUsage{certv1.UsageDigitalSignature, usage}}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("creating %s: %v", name, err)
		}
	}
	request(w1, "other-node", SignerKubeletServing, "system:node:w2", []string{"system:nodes"}, []string{"w2.lab.example"}, false, certv1.UsageServerAuth)
	request(w1, "with-ip", SignerKubeletServing, "system:node:w1", []string{"system:nodes"}, []string{"w1.lab.example"}, true, certv1.UsageServerAuth)
	request(w1, "admin-proxy", SignerKubeProxy, "system:masters-wannabe", []string{"system:masters"}, nil, false, certv1.UsageClientAuth)
	request(w1, "proxy-serving", SignerKubeProxy, KubeProxyUser, nil, nil, false, certv1.UsageServerAuth)
	request(c.ClientAs(t, "system:node:w9", "system:nodes"), "unknown-node", SignerKubeProxy, KubeProxyUser, nil, nil, false, certv1.UsageClientAuth)
	request(c.Client, "not-a-node", SignerKubeProxy, KubeProxyUser, nil, nil, false, certv1.UsageClientAuth)
	res, err := signer.Process(ctx, c.Client)
	if err != nil || res.Denied != 6 || res.Signed != 0 {
		t.Fatalf("signer over six requests outside the policy: %+v %v", res, err)
	}
	want := map[string]string{
		"other-node":    `node w1 may ask for CN="system:node:w1"`,
		"with-ip":       "no IP addresses, R29",
		"admin-proxy":   `node w1 may ask for CN="system:kube-proxy"`,
		"proxy-serving": `usage "server auth"`,
		"unknown-node":  "node w9 is not a worker of the cluster's configuration",
		"not-a-node":    "not by a node",
	}
	for name, msg := range want {
		csr, err := c.Client.CertificatesV1().CertificateSigningRequests().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		denied := false
		for _, cond := range csr.Status.Conditions {
			if cond.Type == certv1.CertificateDenied && cond.Status == corev1.ConditionTrue && strings.Contains(cond.Message, msg) {
				denied = true
			}
		}
		if !denied || len(csr.Status.Certificate) != 0 {
			t.Errorf("%s: want denied with %q: %+v", name, msg, csr.Status)
		}
	}
}

// TestFinish: a renewal stopped between renaming the key and the
// certificate is completed; a waiting certificate of a key not renamed
// yet is left for the renewal to go on.
func TestFinish(t *testing.T) {
	realm, err := pki.NewRealm(pki.RealmKubernetes, pki.Options{Organization: "t"})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	old, err := realm.IssueClient(KubeProxyUser)
	certFile, keyFile := pair(t, dir, "proxy", old, err)
	next, err := realm.IssueClient(KubeProxyUser)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(certFile+".next", next.CertPEM(), 0o644)
	if done, err := finish(certFile+".next", certFile, keyFile); err != nil || done {
		t.Fatalf("key not renamed yet: %v %v", done, err)
	}
	k, _ := next.KeyPEM()
	os.WriteFile(keyFile, k, 0o600)
	if done, err := finish(certFile+".next", certFile, keyFile); err != nil || !done {
		t.Fatalf("key renamed: %v %v", done, err)
	}
	if c, _ := readCert(certFile); !c.Equal(next.Cert) {
		t.Error("the waiting certificate was not put in place")
	}
}
