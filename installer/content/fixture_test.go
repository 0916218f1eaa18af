package content

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferry-k8s/ferry/internal/testutil"

	digest "github.com/opencontainers/go-digest"
	imgspecv1 "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/ferry-k8s/ferry/builder"
	"github.com/ferry-k8s/ferry/images/imagetest"
	"github.com/ferry-k8s/ferry/internal/example"
	"github.com/ferry-k8s/ferry/iso"
	"github.com/ferry-k8s/ferry/signing"
)

// Image names of the two example bundles. 1.0.0 holds app:1.0 and
// app:latest (image A), 1.1.0 holds app:1.1 and app:latest (image B, with
// a 32 MiB layer): app:latest must resolve to B (newest bundle wins), and
// A stays reachable by tag 1.0 and by digest.
const (
	appRepo   = "registry.example.com/ferry/app"
	multiRepo = "registry.example.com/ferry/multi"
)

// fixture is two example bundle ISOs, built once per test binary.
type fixture struct {
	ex     *example.Example
	ring   *signing.Keyring
	iso100 string
	iso110 string
	appA   digest.Digest // image of app:1.0 (bundle 1.0.0)
	appB   digest.Digest // image of app:1.1 (bundle 1.1.0)
	bigB   imgspecv1.Descriptor
	cfgB   imgspecv1.Descriptor
	layout string
	rpm    string // path of ferry-hello's RPM among the inputs
}

var (
	fixOnce sync.Once
	fix     *fixture
	fixErr  error
	fixDir  string
)

func TestMain(m *testing.M) {
	if pf := os.Getenv("FERRY_TEST_PIDFILE"); pf != "" {
		os.Exit(pidFileChild(pf)) // TestSignalReloadOnlyTheServer's child
	}
	code := m.Run()
	if fixDir != "" {
		os.RemoveAll(fixDir)
	}
	os.Exit(code)
}

// bundles builds (once) the two example ISOs.
func bundles(t *testing.T) *fixture {
	t.Helper()
	fixOnce.Do(func() { fix, fixErr = buildFixture() })
	if fixErr != nil {
		t.Fatal(fixErr)
	}
	return fix
}

func buildFixture() (*fixture, error) {
	dir, err := os.MkdirTemp("", "ferry-content-test-")
	if err != nil {
		return nil, err
	}
	fixDir = dir
	ex, err := example.Write(filepath.Join(dir, "in"), example.Options{})
	if err != nil {
		return nil, err
	}
	f := &fixture{ex: ex, appA: digest.Digest(ex.AppDigest), layout: filepath.Join(ex.Dir, "images", "layout")}
	if f.ring, err = signing.LoadKeyringFile(ex.PublicKey); err != nil {
		return nil, err
	}
	if f.appB, err = imagetest.WriteImage(f.layout, "app2", 2, []int64{64 << 10, 32 << 20}); err != nil {
		return nil, err
	}
	var mf imgspecv1.Manifest
	if err := json.Unmarshal(layoutBlob(f.layout, f.appB), &mf); err != nil {
		return nil, err
	}
	f.cfgB, f.bigB = mf.Config, mf.Layers[1]
	for _, p := range ex.RPMs {
		if strings.HasPrefix(filepath.Base(p), "ferry-hello-1.0.0") {
			f.rpm = p
		}
	}
	specs := map[string]string{
		"1.0.0": `
    - source: oci:images/layout:app
      name: registry.example.com/ferry/app:1.0
      digest: ` + ex.AppDigest + `
    - source: oci:images/layout:app
      name: registry.example.com/ferry/app:latest`,
		"1.1.0": `
    - source: oci:images/layout:app2
      name: registry.example.com/ferry/app:1.1
    - source: oci:images/layout:app2
      name: registry.example.com/ferry/app:latest`,
	}
	// Built an hour ago (so not "in the future" for a skewed check), valid a year.
	epoch := time.Now().Add(-time.Hour).Truncate(time.Second)
	for _, v := range []string{"1.0.0", "1.1.0"} {
		spec := filepath.Join(ex.Dir, "bundle-"+v+".yaml")
		text := `apiVersion: ferry.dev/v1alpha1
kind: Bundle
metadata:
  name: example
  version: ` + v + `
spec:
  expiresAfter: 365d
  images:` + specs[v] + `
    - source: oci:images/layout:multi
      name: registry.example.com/ferry/multi:1.0
      platforms: [linux/amd64]
  packages:
    - directory: rpms/
      repo: base
`
		if err := os.WriteFile(spec, []byte(text), 0o644); err != nil {
			return nil, err
		}
		out := filepath.Join(dir, "example-"+v+".iso")
		if _, err := builder.Build(context.Background(), builder.Options{SpecPath: spec, Output: out, Signer: ex.Signer, SourceDateEpoch: epoch}); err != nil {
			return nil, fmt.Errorf("building bundle %s: %w", v, err)
		}
		if v == "1.0.0" {
			f.iso100 = out
		} else {
			f.iso110 = out
		}
	}
	return f, nil
}

func layoutBlob(layout string, d digest.Digest) []byte {
	b, _ := os.ReadFile(filepath.Join(layout, "blobs", "sha256", d.Encoded()))
	return b
}

// copyISO copies an ISO to a new file of the test (one the test may change).
func copyISO(t *testing.T, src string) string {
	t.Helper()
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(t.TempDir(), filepath.Base(src))
	if err := os.WriteFile(dst, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return dst
}

// flipByte changes one byte of the file p of the bundle in the ISO file,
// at offset off within that file.
func flipByte(t *testing.T, isoPath, p string, off int64) {
	t.Helper()
	f, err := os.OpenFile(isoPath, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, _ := f.Stat()
	im, err := iso.Open(f, fi.Size())
	if err != nil {
		t.Fatal(err)
	}
	st, err := im.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Extents) != 1 || off >= st.Extents[0].Length {
		t.Fatalf("%s: extents %+v", p, st.Extents)
	}
	at := st.Extents[0].Offset + off
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, at); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0xff
	if _, err := f.WriteAt(b, at); err != nil {
		t.Fatal(err)
	}
}

func blobPath(d digest.Digest) string { return "images/blobs/sha256/" + d.Encoded() }

// testPKI is a throwaway CA and a server certificate for "localhost"
// (a DNS name only, as the project's certificates carry no IP SANs).
type testPKI struct {
	caPEM    []byte
	caFile   string
	pool     *x509.CertPool
	ca       *x509.Certificate
	caKey    *ecdsa.PrivateKey
	certFile string
	keyFile  string
	cert     tls.Certificate
}

func newPKI(t *testing.T) *testPKI {
	t.Helper()
	dir := t.TempDir()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "ferry content test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(der)
	p := &testPKI{ca: ca, caKey: key, pool: x509.NewCertPool(), caFile: filepath.Join(dir, "ca.crt")}
	p.pool.AddCert(ca)
	p.caPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	if err := os.WriteFile(p.caFile, p.caPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	p.certFile, p.keyFile = filepath.Join(dir, "server.crt"), filepath.Join(dir, "server.key")
	p.cert = p.issue(t, "localhost", 2, x509.ExtKeyUsageServerAuth, p.certFile, p.keyFile)
	return p
}

// issue makes a leaf certificate and writes it and its key (PEM) to files.
func (p *testPKI) issue(t *testing.T, name string, serial int64, usage x509.ExtKeyUsage, certFile, keyFile string) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name}, DNSNames: []string{name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.ca, key.Public(), p.caKey)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
	if certFile != "" {
		if err := os.WriteFile(certFile, certPEM, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	c, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// client trusts the test CA only and presents certs, if any.
func (p *testPKI) client(certs ...tls.Certificate) *http.Client {
	return &http.Client{Transport: &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: p.pool, Certificates: certs, MinVersion: tls.VersionTLS12},
		ForceAttemptHTTP2: true,
	}, Timeout: time.Minute}
}

// env is a Service behind an httptest TLS server with the test PKI,
// reached at https://localhost:<port>.
type env struct {
	t    *testing.T
	f    *fixture
	svc  *Service
	reg  *prometheus.Registry
	pki  *testPKI
	srv  *httptest.Server
	base string
	c    *http.Client
	logs *testutil.SyncBuffer
}

func newEnv(t *testing.T, opts Options) *env {
	t.Helper()
	f := bundles(t)
	e := &env{t: t, f: f, pki: newPKI(t), reg: prometheus.NewRegistry(), logs: &testutil.SyncBuffer{}}
	if opts.Keyring == nil {
		opts.Keyring = f.ring
	}
	if opts.Registerer == nil {
		opts.Registerer = e.reg
	}
	if opts.Log == nil {
		opts.Log = newTestLogger(e.logs)
	}
	e.svc = New(opts)
	t.Cleanup(func() { e.svc.Close() })
	e.srv = httptest.NewUnstartedServer(e.svc.Handler())
	e.srv.TLS = &tls.Config{Certificates: []tls.Certificate{e.pki.cert}, MinVersion: tls.VersionTLS12}
	e.srv.EnableHTTP2 = true
	e.srv.StartTLS()
	t.Cleanup(e.srv.Close)
	e.base = "https://" + strings.Replace(e.srv.Listener.Addr().String(), "127.0.0.1", "localhost", 1)
	e.c = e.pki.client()
	return e
}

// get fetches path and returns status, headers and body; it fails the test
// on a transport error.
func (e *env) get(path string, hdr ...string) (int, http.Header, []byte) {
	e.t.Helper()
	code, h, body, err := e.tryGet(path, hdr...)
	if err != nil {
		e.t.Fatalf("GET %s: %v", path, err)
	}
	return code, h, body
}

func (e *env) tryGet(path string, hdr ...string) (int, http.Header, []byte, error) {
	req, err := http.NewRequest(http.MethodGet, e.base+path, nil)
	if err != nil {
		return 0, nil, nil, err
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := e.c.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, body, err
}

func (e *env) mustAdd(isos ...string) {
	e.t.Helper()
	for _, p := range isos {
		if _, err := e.svc.Add(context.Background(), p); err != nil {
			e.t.Fatal(err)
		}
	}
}

// metric reads one counter or gauge.
func metric(t *testing.T, m prometheus.Metric) float64 {
	t.Helper()
	var d dto.Metric
	if err := m.Write(&d); err != nil {
		t.Fatal(err)
	}
	switch {
	case d.Counter != nil:
		return d.Counter.GetValue()
	case d.Gauge != nil:
		return d.Gauge.GetValue()
	}
	t.Fatalf("metric %v is neither a counter nor a gauge", m.Desc())
	return 0
}

func newTestLogger(w io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}
