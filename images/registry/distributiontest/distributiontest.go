package distributiontest

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	digest "github.com/opencontainers/go-digest"

	"github.com/ferry-k8s/ferry/internal/testpki"
	"github.com/ferry-k8s/ferry/internal/testutil"
)

// The registry built and run.
const (
	Module  = "github.com/distribution/distribution/v3"
	Version = "v3.1.2"
	command = Module + "/cmd/registry"
)

// startTimeout bounds how long Start waits for the registry to listen; it
// only keeps a broken binary from hanging the test run.
const startTimeout = 2 * time.Minute

// logTail is how many lines of the registry's log a failed test shows.
const logTail = 15

// Registry is a running distribution registry.
type Registry struct {
	// Host is "127.0.0.1:PORT" of the counting TLS proxy in front of the
	// registry: the address clients use (docker://Host/repo:tag).
	Host string
	// CertDir holds ca.crt, the CA of the registry's certificate, as
	// containers-certs.d(5) wants it (skopeo --cert-dir, the builder's
	// RegistryOptions.CertDir).
	CertDir string
	// CAFile is CertDir/ca.crt.
	CAFile string
	// DataDir is the registry's filesystem storage.
	DataDir string

	t       testing.TB
	cmd     *exec.Cmd
	exited  chan struct{}
	logPath string
	proxy   *httptest.Server
	stop    sync.Once

	mu       sync.Mutex
	requests []Request
}

// Request is one request a client made to the registry.
type Request struct {
	Method string
	Path   string
}

// Kind classifies r by its path: "manifest" (/v2/<name>/manifests/<ref>),
// "blob" (/v2/<name>/blobs/<digest>), "upload" (/v2/<name>/blobs/uploads/…)
// or "other" (/v2/, tags lists, …).
func (r Request) Kind() string {
	switch {
	case strings.Contains(r.Path, "/blobs/uploads/"):
		return "upload"
	case strings.Contains(r.Path, "/manifests/"):
		return "manifest"
	case strings.Contains(r.Path, "/blobs/"):
		return "blob"
	}
	return "other"
}

func (r Request) String() string { return r.Method + " " + r.Path }

// Start builds (once) and starts a registry for the test; it is stopped when
// the test ends. Any failure fails the test.
func Start(t testing.TB) *Registry {
	t.Helper()
	bin := Binary(t)
	dir := t.TempDir()
	r := &Registry{t: t, DataDir: filepath.Join(dir, "data"), CertDir: filepath.Join(dir, "certs.d"), logPath: filepath.Join(dir, "registry.log")}

	ca, err := testpki.NewCA("ferry distributiontest CA")
	if err != nil {
		t.Fatal(err)
	}
	loopback := []net.IP{net.IPv4(127, 0, 0, 1)}
	certPEM, keyPEM, err := ca.Issue("distribution registry", []string{"localhost"}, loopback, false)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile, err := ca.WriteFiles(filepath.Join(dir, "tls"), "registry", certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	if r.CAFile, _, err = ca.WriteFiles(r.CertDir, "ca", ca.CertPEM, nil); err != nil {
		t.Fatal(err)
	}
	secret := make([]byte, 16)
	if _, err := rand.Read(secret); err != nil {
		t.Fatal(err)
	}
	config := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(config, fmt.Appendf(nil, configTemplate, r.DataDir, hex.EncodeToString(secret), certFile, keyFile), 0o600); err != nil {
		t.Fatal(err)
	}

	backend := r.startRegistry(bin, config)
	t.Cleanup(r.Stop)
	r.startProxy(backend, ca, certPEM, keyPEM)
	return r
}

// configTemplate: filesystem storage, deletes enabled, TLS, a port the
// kernel picks (Start reads it from the log), JSON logs.
const configTemplate = `version: 0.1
log:
  level: info
  formatter: json
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: %q
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:0
  secret: %q
  tls:
    certificate: %q
    key: %q
`

// startRegistry runs the binary and returns the address it listens on.
func (r *Registry) startRegistry(bin, config string) string {
	t := r.t
	logFile, err := os.Create(r.logPath)
	if err != nil {
		t.Fatal(err)
	}
	pr, pw := io.Pipe()
	cmd := exec.Command(bin, "serve", config)
	cmd.Stdout = logFile
	cmd.Stderr = pw
	// No OpenTelemetry exporter: it would try to reach a collector.
	cmd.Env = append(os.Environ(), "OTEL_TRACES_EXPORTER=none", "OTEL_METRICS_EXPORTER=none", "OTEL_LOGS_EXPORTER=none", "OTEL_SDK_DISABLED=true")
	if err := cmd.Start(); err != nil {
		_ = logFile.Close()
		t.Fatalf("starting the distribution registry: %v", err)
	}
	r.cmd, r.exited = cmd, make(chan struct{})
	go func() {
		_ = cmd.Wait()
		_ = pw.Close()
		close(r.exited)
	}()

	// Copy the log to the file, and pick the address from
	// {"msg":"listening on 127.0.0.1:PORT, tls",…}.
	addr := make(chan string, 1)
	go func() {
		defer logFile.Close()
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		found := false
		for sc.Scan() {
			line := sc.Bytes()
			_, _ = logFile.Write(append(line, '\n'))
			if found {
				continue
			}
			var entry struct {
				Msg string `json:"msg"`
			}
			if json.Unmarshal(line, &entry) == nil && strings.HasPrefix(entry.Msg, "listening on ") {
				a := strings.TrimSuffix(strings.TrimPrefix(entry.Msg, "listening on "), ", tls")
				if _, _, err := net.SplitHostPort(a); err == nil {
					found = true
					addr <- a
				}
			}
		}
		_, _ = io.Copy(io.Discard, pr)
	}()
	select {
	case a := <-addr:
		return a
	case <-r.exited:
		t.Fatalf("the distribution registry exited before listening:\n%s", r.Log())
	case <-time.After(startTimeout):
		r.Stop()
		t.Fatalf("the distribution registry did not listen within %s:\n%s", startTimeout, r.Log())
	}
	return ""
}

// startProxy serves Host: a TLS reverse proxy to the registry that records
// each request as it arrives.
func (r *Registry) startProxy(backend string, ca *testpki.CA, certPEM, keyPEM []byte) {
	t := r.t
	target := &url.URL{Scheme: "https", Host: backend}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	transport := &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: ca.Pool(), MinVersion: tls.VersionTLS12},
		ForceAttemptHTTP2: true,
	}
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			// The registry writes upload locations for the host the client
			// asked, which is the proxy's.
			pr.Out.Host = pr.In.Host
			pr.SetXForwarded()
		},
		Transport: transport,
	}
	r.proxy = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		r.requests = append(r.requests, Request{Method: req.Method, Path: req.URL.Path})
		r.mu.Unlock()
		rp.ServeHTTP(w, req)
	}))
	r.proxy.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	// Handshakes that tests make fail on purpose are not news.
	r.proxy.Config.ErrorLog = log.New(io.Discard, "", 0)
	r.proxy.StartTLS()
	r.Host = r.proxy.Listener.Addr().String()
}

// Requests returns the requests made so far, in arrival order.
func (r *Registry) Requests() []Request {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Request(nil), r.requests...)
}

// ResetRequests forgets the requests made so far.
func (r *Registry) ResetRequests() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.requests = nil
}

// Count returns how many of reqs are of the kind (see Request.Kind) and
// method ("" for any).
func Count(reqs []Request, method, kind string) int {
	n := 0
	for _, q := range reqs {
		if (method == "" || q.Method == method) && q.Kind() == kind {
			n++
		}
	}
	return n
}

// Stop stops the proxy and the registry: Host then refuses connections. It
// may be called more than once.
func (r *Registry) Stop() {
	r.stop.Do(func() {
		if r.proxy != nil {
			r.proxy.Close()
		}
		if r.cmd == nil || r.cmd.Process == nil {
			return
		}
		_ = r.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-r.exited:
		case <-time.After(30 * time.Second):
			_ = r.cmd.Process.Kill()
			<-r.exited
		}
		if r.t.Failed() {
			lines := strings.SplitAfter(r.Log(), "\n")
			r.t.Logf("distribution registry log, last lines (%s):\n%s", r.logPath, strings.Join(lines[max(0, len(lines)-logTail):], ""))
		}
	})
}

// Log returns what the registry logged.
func (r *Registry) Log() string {
	data, err := os.ReadFile(r.logPath)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	return string(data)
}

// Push copies src (a containers-transports reference, e.g.
// "oci:DIR:NAME") to Host/dst ("repo:tag") with the real skopeo, every
// instance of an index and every digest as it is.
func (r *Registry) Push(t testing.TB, src, dst string) {
	t.Helper()
	Skopeo(t, "--insecure-policy", "copy", "--quiet", "--all", "--preserve-digests",
		"--dest-cert-dir", r.CertDir, src, "docker://"+r.Host+"/"+dst)
}

// Delete deletes the manifest ref ("repo@sha256:…") from the registry with
// the real skopeo (the registry then also drops the tags pointing to it).
func (r *Registry) Delete(t testing.TB, ref string) {
	t.Helper()
	Skopeo(t, "delete", "--cert-dir", r.CertDir, "docker://"+r.Host+"/"+ref)
}

// Skopeo runs the real skopeo and returns its standard output; a missing
// binary or a failure fails the test.
func Skopeo(t testing.TB, args ...string) []byte {
	t.Helper()
	return testutil.MustRun(t, "skopeo", args...)
}

// Binary returns the path of the registry binary, building it first if the
// cache does not hold it. Concurrent test processes build it once: the
// build runs under a file lock.
func Binary(t testing.TB) string {
	t.Helper()
	path, err := binary()
	if err != nil {
		t.Fatalf("building the distribution registry %s: %v", Version, err)
	}
	return path
}

// CacheDir is where built binaries are kept: $FERRY_TEST_CACHE, else
// os.UserCacheDir()/ferry-test.
func CacheDir() (string, error) {
	if d := os.Getenv("FERRY_TEST_CACHE"); d != "" {
		return filepath.Abs(d)
	}
	d, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("no cache directory (set FERRY_TEST_CACHE): %w", err)
	}
	return filepath.Join(d, "ferry-test"), nil
}

func binary() (string, error) {
	root, err := CacheDir()
	if err != nil {
		return "", err
	}
	dir := filepath.Join(root, "distribution-registry", Version+"-"+runtime.GOOS+"-"+runtime.GOARCH)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	lock, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return "", err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return "", fmt.Errorf("locking %s: %w", lock.Name(), err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN) //nolint:errcheck // closing unlocks too

	bin := filepath.Join(dir, "registry")
	if checkBinary(bin) == nil {
		return bin, nil
	}
	if err := build(dir, bin); err != nil {
		return "", err
	}
	if err := checkBinary(bin); err != nil {
		return "", fmt.Errorf("the binary built does not run: %w", err)
	}
	return bin, nil
}

// checkBinary runs `registry --version` and wants Version in its output.
func checkBinary(bin string) error {
	out, err := exec.Command(bin, "--version").CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s --version: %w: %s", bin, err, out)
	}
	if !bytes.Contains(out, []byte(Version)) {
		return fmt.Errorf("%s --version says %q, want %s", bin, bytes.TrimSpace(out), Version)
	}
	return nil
}

// build compiles the registry in a throwaway module that requires only
// distribution, and renames the binary to bin when done.
func build(dir, bin string) error {
	goBin, err := exec.LookPath("go")
	if err != nil {
		return fmt.Errorf("the go command is needed to build the registry: %w", err)
	}
	mod, err := os.MkdirTemp(dir, "build-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(mod)
	env := append(os.Environ(), "GOFLAGS=-mod=mod", "CGO_ENABLED=0", "GOWORK=off", "GO111MODULE=on")
	run := func(args ...string) error {
		cmd := exec.Command(goBin, args...)
		cmd.Dir, cmd.Env = mod, env
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, out)
		}
		return nil
	}
	tmp := filepath.Join(mod, "registry")
	for _, args := range [][]string{
		{"mod", "init", "ferry.test/distribution-registry"},
		{"get", Module + "@" + Version},
		{"build", "-o", tmp, command},
	} {
		if err := run(args...); err != nil {
			return err
		}
	}
	if err := os.Rename(tmp, bin); err != nil {
		return errors.Join(err, os.Remove(tmp))
	}
	return nil
}

// Client returns an HTTP client that trusts the registry's certificate.
func (r *Registry) Client(t testing.TB) *http.Client {
	t.Helper()
	pem, err := os.ReadFile(r.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatalf("%s holds no certificate", r.CAFile)
	}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
}

// PutBlob uploads data as a blob of repo through the registry's API (a
// monolithic upload: POST, then PUT ?digest=) and returns its digest.
func (r *Registry) PutBlob(t testing.TB, repo string, data []byte) digest.Digest {
	t.Helper()
	c := r.Client(t)
	defer c.CloseIdleConnections()
	d := digest.FromBytes(data)
	resp := do(t, c, http.MethodPost, "https://"+r.Host+"/v2/"+repo+"/blobs/uploads/", "", nil, http.StatusAccepted)
	loc, err := resp.Location()
	if err != nil {
		t.Fatalf("upload of %s to %s: %v", d, repo, err)
	}
	q := loc.Query()
	q.Set("digest", d.String())
	loc.RawQuery = q.Encode()
	do(t, c, http.MethodPut, loc.String(), "application/octet-stream", data, http.StatusCreated)
	return d
}

// PutManifest puts data, of mediaType, as the manifest ref (a tag or its
// digest) of repo through the registry's API; the blobs and manifests it
// refers to must be in repo already. The registry keeps the bytes as they
// are: the manifest's digest is that of data.
func (r *Registry) PutManifest(t testing.TB, repo, ref, mediaType string, data []byte) {
	t.Helper()
	c := r.Client(t)
	defer c.CloseIdleConnections()
	resp := do(t, c, http.MethodPut, "https://"+r.Host+"/v2/"+repo+"/manifests/"+ref, mediaType, data, http.StatusCreated)
	if got, want := resp.Header.Get("Docker-Content-Digest"), digest.FromBytes(data).String(); got != want {
		t.Fatalf("manifest %s:%s stored as %s, want %s", repo, ref, got, want)
	}
}

// do makes a request and wants the status; it returns the response, its
// body read and closed.
func do(t testing.TB, c *http.Client, method, u, contentType string, body []byte, status int) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, u, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	resp.Body.Close()
	if resp.StatusCode != status {
		t.Fatalf("%s %s: %s: %s", method, u, resp.Status, msg)
	}
	return resp
}

// BlobPath is the file holding blob d in the registry's storage: a test
// may alter it to have the registry serve corrupt bytes, as a disk would.
func (r *Registry) BlobPath(d digest.Digest) string {
	return filepath.Join(r.DataDir, "docker", "registry", "v2", "blobs", d.Algorithm().String(), d.Encoded()[:2], d.Encoded(), "data")
}
