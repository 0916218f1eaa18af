package testpki

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestMutualTLSOnLoopback(t *testing.T) {
	ca, err := NewCA("testpki test CA")
	if err != nil {
		t.Fatal(err)
	}
	if !ca.Cert.IsCA || ca.Cert.MaxPathLen != 0 || !ca.Cert.MaxPathLenZero {
		t.Errorf("CA: IsCA %v MaxPathLen %d zero %v", ca.Cert.IsCA, ca.Cert.MaxPathLen, ca.Cert.MaxPathLenZero)
	}
	if d := ca.Cert.NotAfter.Sub(ca.Cert.NotBefore); d > Validity+2*60*60e9 {
		t.Errorf("CA valid for %v", d)
	}
	dir := t.TempDir()
	srvCert, srvKey, err := ca.Issue("server", []string{"localhost"}, []net.IP{net.IPv4(127, 0, 0, 1)}, false)
	if err != nil {
		t.Fatal(err)
	}
	certPath, keyPath, err := ca.WriteFiles(dir, "server", srvCert, srvKey)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(keyPath); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("key file %s: %v %v", keyPath, fi, err)
	}
	if filepath.Base(certPath) != "server.crt" || filepath.Base(keyPath) != "server.key" {
		t.Errorf("paths %s %s", certPath, keyPath)
	}
	caPath, noKey, err := ca.WriteFiles(dir, "ca", ca.CertPEM, nil)
	if err != nil || noKey != "" {
		t.Fatalf("writing CA: %q %v", noKey, err)
	}
	pair, err := tls.LoadX509KeyPair(certPath, keyPath)
	if err != nil {
		t.Fatal(err)
	}
	cliCert, cliKey, err := ca.Issue("node-1", nil, nil, true)
	if err != nil {
		t.Fatal(err)
	}
	cliPair, err := tls.X509KeyPair(cliCert, cliKey)
	if err != nil {
		t.Fatal(err)
	}

	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.TLS.PeerCertificates[0].Subject.CommonName)
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{pair}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: ca.Pool()}
	srv.StartTLS()
	defer srv.Close()

	caPEM, err := os.ReadFile(caPath)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		t.Fatal("CA file holds no certificate")
	}
	get := func(serverName string, certs ...tls.Certificate) (string, error) {
		c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: serverName, Certificates: certs}}}
		defer c.CloseIdleConnections()
		resp, err := c.Get(srv.URL)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return string(b), err
	}
	for _, name := range []string{"localhost", "127.0.0.1"} {
		if got, err := get(name, cliPair); err != nil || got != "node-1" {
			t.Errorf("server name %s with client certificate: %q %v", name, got, err)
		}
	}
	if _, err := get("localhost"); err == nil {
		t.Error("server accepted a client without a certificate")
	}
	if _, err := get("other.example", cliPair); err == nil {
		t.Error("client accepted a server certificate for another name")
	}
	// A client certificate is not a server certificate, and vice versa.
	if _, err := get("localhost", pair); err == nil {
		t.Error("server accepted a server certificate as a client certificate")
	}
	if _, _, err := ca.Issue("nameless", nil, nil, false); err == nil {
		t.Error("a server certificate without names was issued")
	}
	// Another CA's leaves are not trusted.
	other, err := NewCA("other")
	if err != nil {
		t.Fatal(err)
	}
	oc, ok, err := other.Issue("intruder", nil, nil, true)
	if err != nil {
		t.Fatal(err)
	}
	intruder, err := tls.X509KeyPair(oc, ok)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := get("localhost", intruder); err == nil {
		t.Error("server accepted a client certificate from another CA")
	}
}

// TestIssueLeaf: a client certificate carries its groups (subject O), a
// peer certificate both usages, and a leaf that is neither is refused.
func TestIssueLeaf(t *testing.T) {
	ca, err := NewCA("testpki test CA")
	if err != nil {
		t.Fatal(err)
	}
	parse := func(certPEM []byte, err error) *x509.Certificate {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		b, _ := pem.Decode(certPEM)
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	first := func(cert, _ []byte, err error) ([]byte, error) { return cert, err }
	c := parse(first(ca.IssueClient("system:node:n1", "system:nodes")))
	if c.Subject.CommonName != "system:node:n1" || !slices.Equal(c.Subject.Organization, []string{"system:nodes"}) ||
		!slices.Equal(c.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}) {
		t.Errorf("client: CN %q O %q usage %v", c.Subject.CommonName, c.Subject.Organization, c.ExtKeyUsage)
	}
	p := parse(first(ca.IssueLeaf(Leaf{CommonName: "etcd", DNSNames: []string{"localhost"}, Server: true, Client: true})))
	if !slices.Equal(p.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}) {
		t.Errorf("peer: usage %v", p.ExtKeyUsage)
	}
	for _, u := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
		if _, err := p.Verify(x509.VerifyOptions{Roots: ca.Pool(), KeyUsages: []x509.ExtKeyUsage{u}}); err != nil {
			t.Errorf("peer as %v: %v", u, err)
		}
	}
	if _, _, err := ca.IssueLeaf(Leaf{CommonName: "nothing"}); err == nil {
		t.Error("a leaf that is neither server nor client was issued")
	}
}
