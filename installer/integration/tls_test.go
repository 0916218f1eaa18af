package integration

import (
	"bufio"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ferry-k8s/ferry/internal/testpki"
	"github.com/ferry-k8s/ferry/internal/testutil"
)

// TestServesOnlyTLS: a plain HTTP request to the service's port gets no
// content, only Go's "HTTP request to an HTTPS server" 400 or a closed
// connection.
func TestServesOnlyTLS(t *testing.T) {
	s := startServer(t, serveOptions{})
	for _, p := range []string{"/healthz", "/v2/", "/repos/1.0.0/ferry.repo", "/keys/ferry.pub.asc"} {
		c := &http.Client{Timeout: 10 * time.Second}
		resp, err := c.Get("http://" + s.addr + p)
		if err != nil {
			continue // refused or closed: fine
		}
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		if resp.StatusCode < 400 || strings.Contains(string(body), "PGP") || strings.Contains(string(body), "baseurl") {
			t.Errorf("plain HTTP GET %s: %s\n%s", p, resp.Status, body)
		}
	}
	// Old protocol versions are refused.
	conn, err := tls.Dial("tcp", s.addr, &tls.Config{RootCAs: shared.roots, MaxVersion: tls.VersionTLS11, MinVersion: tls.VersionTLS10})
	if err == nil {
		conn.Close()
		t.Errorf("TLS 1.1 handshake succeeded")
	}
	// Only loopback was asked for: the service must not listen elsewhere.
	if !strings.HasPrefix(s.addr, "127.0.0.1:") {
		t.Fatalf("listening on %s", s.addr)
	}
}

// TestClientCertificates: with --client-ca, a client without a
// certificate, or with one from another CA, gets nothing; one with a
// certificate from the client CA is served.
func TestClientCertificates(t *testing.T) {
	s := startServer(t, serveOptions{clientCA: shared.caFile})

	code, body, err := s.get(t, s.client(t, true), "/v2/registry.example.com/ferry/app/manifests/1.0",
		"Accept", "application/vnd.oci.image.manifest.v1+json")
	if err != nil || code != http.StatusOK || sha256Digest(body) != shared.ex.AppDigest {
		t.Fatalf("with a client certificate: %d %v digest %s", code, err, sha256Digest(body))
	}

	if code, body, err := s.get(t, s.client(t, false), "/v2/"); err == nil {
		t.Errorf("without a client certificate: %d %s", code, body)
	}

	other, err := testpki.NewCA("another CA")
	if err != nil {
		t.Fatal(err)
	}
	cp, kp, err := other.Issue("intruder", nil, nil, true)
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.X509KeyPair(cp, kp)
	if err != nil {
		t.Fatal(err)
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: shared.roots, Certificates: []tls.Certificate{pair}}}
	defer tr.CloseIdleConnections()
	if resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Get(s.url + "/v2/"); err == nil {
		resp.Body.Close()
		t.Errorf("with a certificate from another CA: %s", resp.Status)
	}

	// The server certificate (serverAuth only) is not a client certificate.
	srvPair, err := tls.LoadX509KeyPair(shared.srvCert, shared.srvKey)
	if err != nil {
		t.Fatal(err)
	}
	tr2 := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: shared.roots, Certificates: []tls.Certificate{srvPair}}}
	defer tr2.CloseIdleConnections()
	if resp, err := (&http.Client{Transport: tr2, Timeout: 10 * time.Second}).Get(s.url + "/v2/"); err == nil {
		resp.Body.Close()
		t.Errorf("with a server certificate as client certificate: %s", resp.Status)
	}

	// skopeo with a client certificate (cert dir: ca.crt, client.cert, client.key).
	testutil.Need(t, "skopeo")
	dir := t.TempDir()
	cc, ck, err := shared.ca.Issue("skopeo", nil, nil, true)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := shared.ca.WriteFiles(dir, "ca", shared.ca.CertPEM, nil); err != nil {
		t.Fatal(err)
	}
	if _, _, err := shared.ca.WriteFiles(dir, "client", cc, ck); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(dir, "client.crt"), filepath.Join(dir, "client.cert")); err != nil {
		t.Fatal(err)
	}
	raw := run(t, "skopeo", "inspect", "--raw", "--cert-dir", dir, "docker://"+s.addr+"/registry.example.com/ferry/app:1.0")
	if sha256Digest([]byte(raw)) != shared.ex.AppDigest {
		t.Errorf("skopeo with a client certificate: digest %s", sha256Digest([]byte(raw)))
	}
	if o, err := runErr(t, "skopeo", "inspect", "--raw", "--cert-dir", shared.certDir, "docker://"+s.addr+"/registry.example.com/ferry/app:1.0"); err == nil {
		t.Errorf("skopeo without a client certificate was served:\n%s", o)
	}
}

// rawResponse sends req (bytes as given) over a new TLS connection and
// reads the status line; it returns errClosed when the server closes the
// connection without one.
func rawResponse(t *testing.T, s *server, req string) (status int, head string, body string, err error) {
	t.Helper()
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", s.addr, &tls.Config{RootCAs: shared.roots, ServerName: "127.0.0.1", NextProtos: []string{"http/1.1"}})
	if err != nil {
		return 0, "", "", err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := io.WriteString(conn, req); err != nil {
		return 0, "", "", err
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return 0, "", "", errClosed
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	var h strings.Builder
	resp.Header.Write(&h)
	return resp.StatusCode, h.String(), string(b), nil
}
