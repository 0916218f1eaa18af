package integration

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ferry-k8s/ferry/internal/testutil"

	"github.com/ferry-k8s/ferry/builder"
	"github.com/ferry-k8s/ferry/bundle"
	"github.com/ferry-k8s/ferry/internal/example"
	"github.com/ferry-k8s/ferry/internal/testpki"
	"github.com/ferry-k8s/ferry/iso"
)

// shared is built once by TestMain: the installer binary, an example
// bundle and a PKI. Tests that change the ISO work on a copy (copyISO).
var shared struct {
	installer string // the `installer` binary, built with go build
	ex        *example.Example
	iso       string
	ca        *testpki.CA
	caFile    string // the CA certificate, PEM
	certDir   string // ca.crt only: skopeo's --cert-dir
	srvCert   string // server certificate for 127.0.0.1 and localhost
	srvKey    string
	cliCert   string // client certificate issued by ca
	cliKey    string
	roots     *x509.CertPool
}

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "ferry-integration-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	err = setup(dir)
	code := 1
	if err != nil {
		fmt.Fprintln(os.Stderr, "integration setup:", err)
	} else {
		code = m.Run()
	}
	os.RemoveAll(dir)
	os.Exit(code)
}

func setup(dir string) error {
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = "/usr/local/go/bin/go"
	}
	shared.installer = filepath.Join(dir, "bin", "installer")
	build := exec.Command(goBin, "build", "-tags", "containers_image_openpgp", "-o", shared.installer, "github.com/ferry-k8s/ferry/installer/cmd/installer")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("go build installer: %v\n%s", err, out)
	}
	if shared.ex, err = example.Write(filepath.Join(dir, "in"), example.Options{}); err != nil {
		return err
	}
	shared.iso = filepath.Join(dir, "example-1.0.0.iso")
	if _, err := builder.Build(context.Background(), builder.Options{SpecPath: shared.ex.Spec, Output: shared.iso,
		Signer: shared.ex.Signer, SourceDateEpoch: time.Now().Add(-time.Hour)}); err != nil {
		return err
	}
	if shared.ca, err = testpki.NewCA("Ferry integration test CA"); err != nil {
		return err
	}
	pki := filepath.Join(dir, "pki")
	if shared.caFile, _, err = shared.ca.WriteFiles(pki, "ca", shared.ca.CertPEM, nil); err != nil {
		return err
	}
	shared.certDir = filepath.Join(dir, "certs.d")
	if _, _, err = shared.ca.WriteFiles(shared.certDir, "ca", shared.ca.CertPEM, nil); err != nil {
		return err
	}
	c, k, err := shared.ca.Issue("ferry content service", []string{"localhost"}, []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}, false)
	if err != nil {
		return err
	}
	if shared.srvCert, shared.srvKey, err = shared.ca.WriteFiles(pki, "server", c, k); err != nil {
		return err
	}
	c, k, err = shared.ca.Issue("node-1", nil, nil, true)
	if err != nil {
		return err
	}
	if shared.cliCert, shared.cliKey, err = shared.ca.WriteFiles(pki, "client", c, k); err != nil {
		return err
	}
	shared.roots = shared.ca.Pool()
	return nil
}

// run runs prog and fails the test if it fails.
func run(t *testing.T, prog string, args ...string) string {
	t.Helper()
	out, err := runErr(t, prog, args...)
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", prog, strings.Join(args, " "), err, out)
	}
	return out
}

// runErr runs prog with a time limit and returns its combined output.
func runErr(t *testing.T, prog string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, testutil.Need(t, prog), args...)
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// server is a running `installer serve`.
type server struct {
	addr string // 127.0.0.1:PORT
	url  string // https://127.0.0.1:PORT
	cmd  *exec.Cmd
	log  *testutil.SyncBuffer
}

type serveOptions struct {
	isos     []string // default: the shared example ISO
	clientCA string   // --client-ca
	args     []string // more flags
}

// startServer runs the installer binary's serve command on 127.0.0.1:0
// (the port is read from its "listening" log line) and waits until /readyz
// answers 200. It is stopped when the test ends.
func startServer(t *testing.T, o serveOptions) *server {
	t.Helper()
	if len(o.isos) == 0 {
		o.isos = []string{shared.iso}
	}
	args := []string{"--log-level", "debug", "serve", "--listen", "127.0.0.1:0",
		"--tls-cert", shared.srvCert, "--tls-key", shared.srvKey, "--keyring", shared.ex.PublicKey,
		"--pid-file", filepath.Join(t.TempDir(), "content.pid")}
	for _, p := range o.isos {
		args = append(args, "--iso", p)
	}
	if o.clientCA != "" {
		args = append(args, "--client-ca", o.clientCA)
	}
	args = append(args, o.args...)
	s := &server{log: &testutil.SyncBuffer{}}
	s.cmd = exec.Command(shared.installer, args...)
	s.cmd.Stdout, s.cmd.Stderr = s.log, s.log
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- s.cmd.Wait() }()
	t.Cleanup(func() {
		if s.cmd.ProcessState == nil {
			_ = s.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-exited:
			case <-time.After(10 * time.Second):
				_ = s.cmd.Process.Kill()
				<-exited
			}
		}
		if t.Failed() {
			t.Logf("installer serve log:\n%s", s.log.String())
		}
	})
	deadline := time.Now().Add(60 * time.Second)
	var c *http.Client
	var last error
	for {
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("installer %s exited: %v", strings.Join(args, " "), err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("installer serve not ready after 60 s (address %q, last error %v)", s.addr, last)
		}
		if s.addr == "" {
			if m := listeningRE.FindStringSubmatch(s.log.String()); m != nil {
				s.addr, s.url = m[1], "https://"+m[1]
				c = s.client(t, true)
			}
		}
		if s.addr != "" {
			resp, err := c.Get(s.url + "/readyz")
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					break
				}
				err = fmt.Errorf("/readyz: %s", resp.Status)
			}
			last = err
		}
		time.Sleep(50 * time.Millisecond)
	}
	if host, _, _ := net.SplitHostPort(s.addr); host != "127.0.0.1" {
		t.Fatalf("the service listens on %s, not on loopback only", s.addr)
	}
	return s
}

// listeningRE finds the address in the service's "listening" log line
// (text or JSON format).
var listeningRE = regexp.MustCompile(`(?:msg=listening|"msg":"listening").*?addr"?[=:]"?([0-9.]+:[0-9]+)`)

// client returns an HTTPS client trusting the test CA, with the test
// client certificate when withCert.
func (s *server) client(t *testing.T, withCert bool) *http.Client {
	t.Helper()
	conf := &tls.Config{RootCAs: shared.roots}
	if withCert {
		pair, err := tls.LoadX509KeyPair(shared.cliCert, shared.cliKey)
		if err != nil {
			t.Fatal(err)
		}
		conf.Certificates = []tls.Certificate{pair}
	}
	tr := &http.Transport{TLSClientConfig: conf, DisableKeepAlives: false, ForceAttemptHTTP2: true}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// get fetches path and returns the status and body; a transport error or
// a body cut short is returned as err.
func (s *server) get(t *testing.T, c *http.Client, path string, hdr ...string) (int, []byte, error) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, s.url+path, nil)
	if err != nil {
		return 0, nil, err
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, body, err
}

// metric returns the sum of the samples of a counter or gauge family in
// the Prometheus text exposition at /metrics, of those whose labels
// contain every one of labels (`route="registry-blobs"`).
func (s *server) metric(t *testing.T, name string, labels ...string) float64 {
	t.Helper()
	code, body, err := s.get(t, s.client(t, true), "/metrics")
	if err != nil || code != http.StatusOK {
		t.Fatalf("GET /metrics: %d %v", code, err)
	}
	var sum float64
	found := false
	for line := range strings.SplitSeq(string(body), "\n") {
		if !strings.HasPrefix(line, name) || strings.HasPrefix(line, "#") {
			continue
		}
		rest := line[len(name):]
		if rest == "" || (rest[0] != ' ' && rest[0] != '{') {
			continue
		}
		matches := true
		for _, l := range labels {
			matches = matches && strings.Contains(rest, l)
		}
		if !matches {
			continue
		}
		f := strings.Fields(rest[strings.LastIndex(rest, "}")+1:])
		if len(f) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			t.Fatalf("metric line %q: %v", line, err)
		}
		sum += v
		found = true
	}
	if !found {
		t.Fatalf("/metrics has no %s%v:\n%s", name, labels, body)
	}
	return sum
}

func sha256Digest(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

// ociManifest is the part of an image manifest the tests read.
type ociManifest struct {
	MediaType string `json:"mediaType"`
	Config    struct {
		Digest string `json:"digest"`
		Size   int64  `json:"size"`
	} `json:"config"`
	Layers []struct {
		Digest string `json:"digest"`
		Size   int64  `json:"size"`
	} `json:"layers"`
	Manifests []struct {
		Digest string `json:"digest"`
	} `json:"manifests"`
}

// bundleFile reads a file of an ISO with the project's ISO reader and
// returns its content and where it is in the ISO file.
func bundleFile(t *testing.T, isoPath, p string) ([]byte, iso.FileInfo) {
	t.Helper()
	fh, err := os.Open(isoPath)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	st, err := fh.Stat()
	if err != nil {
		t.Fatal(err)
	}
	im, err := iso.Open(fh, st.Size())
	if err != nil {
		t.Fatal(err)
	}
	fi, err := im.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	r, err := im.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	data, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return data, fi
}

func blobPath(d string) string {
	return bundle.ImagesDir + "/blobs/sha256/" + strings.TrimPrefix(d, "sha256:")
}

// appManifest is the example app image's manifest, read from the ISO.
func appManifest(t *testing.T, isoPath string) ociManifest {
	t.Helper()
	data, _ := bundleFile(t, isoPath, blobPath(shared.ex.AppDigest))
	if got := sha256Digest(data); got != shared.ex.AppDigest {
		t.Fatalf("app manifest on the ISO has digest %s, want %s", got, shared.ex.AppDigest)
	}
	var m ociManifest
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	if len(m.Layers) < 2 {
		t.Fatalf("app manifest has %d layers", len(m.Layers))
	}
	return m
}

// copyISO copies the shared ISO for a test that changes it.
func copyISO(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile(shared.iso)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), filepath.Base(shared.iso))
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

var errClosed = errors.New("connection closed without a response")
