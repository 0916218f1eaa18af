package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/ferry-k8s/ferry/builder"
	"github.com/ferry-k8s/ferry/internal/example"
	"github.com/ferry-k8s/ferry/internal/testpki"
	"github.com/ferry-k8s/ferry/internal/testutil"
)

// runApp runs the installer in-process with args: stdout to out, logs
// (stderr) to the test log.
func runApp(ctx context.Context, out io.Writer, args ...string) error {
	a := app()
	a.Writer, a.ErrWriter = out, io.Discard
	a.ExitErrHandler = func(*cli.Context, error) {}
	return a.RunContext(ctx, append([]string{"installer"}, args...))
}

func exitCode(err error) int {
	var ec cli.ExitCoder
	if errors.As(err, &ec) {
		return ec.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}

// serveFixture is two example ISOs (1.0.0, 1.1.0), a CA and a server
// certificate for localhost.
type serveFixture struct {
	ex               *example.Example
	iso100, iso110   string
	caPool           *x509.CertPool
	certFile, keyFle string
	dir              string
}

func newServeFixture(t *testing.T) *serveFixture {
	t.Helper()
	dir := t.TempDir()
	ex, err := example.Write(filepath.Join(dir, "in"), example.Options{})
	if err != nil {
		t.Fatal(err)
	}
	f := &serveFixture{ex: ex, dir: dir}
	spec, err := os.ReadFile(ex.Spec)
	if err != nil {
		t.Fatal(err)
	}
	spec110 := filepath.Join(ex.Dir, "bundle-1.1.0.yaml")
	if err := os.WriteFile(spec110, bytes.Replace(spec, []byte("version: 1.0.0"), []byte("version: 1.1.0"), 1), 0o644); err != nil {
		t.Fatal(err)
	}
	for spec, out := range map[string]*string{ex.Spec: &f.iso100, spec110: &f.iso110} {
		*out = filepath.Join(dir, filepath.Base(spec)+".iso")
		if _, err := builder.Build(context.Background(), builder.Options{SpecPath: spec, Output: *out, Signer: ex.Signer, SourceDateEpoch: time.Now().Add(-time.Hour)}); err != nil {
			t.Fatal(err)
		}
	}
	// A CA and a certificate for localhost (DNS name only).
	ca, err := testpki.NewCA("test CA")
	if err != nil {
		t.Fatal(err)
	}
	cert, key, err := ca.Issue("localhost", []string{"localhost"}, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	f.caPool = ca.Pool()
	if f.certFile, f.keyFle, err = ca.WriteFiles(dir, "tls", cert, key); err != nil {
		t.Fatal(err)
	}
	return f
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
}

// server is `installer serve` running in a goroutine.
type server struct {
	t      *testing.T
	cancel context.CancelFunc
	done   chan error
	out    *testutil.SyncBuffer
	url    string
	client *http.Client
}

func startServe(t *testing.T, f *serveFixture, port string, args ...string) *server {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s := &server{t: t, cancel: cancel, done: make(chan error, 1), out: &testutil.SyncBuffer{}, url: "https://localhost:" + port,
		client: &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: f.caPool}}}}
	go func() { s.done <- runApp(ctx, s.out, append([]string{"serve"}, args...)...) }()
	t.Cleanup(func() { s.stop() })
	s.waitBody("/readyz", "ok: serving")
	return s
}

// waitBody polls path until its body contains want.
func (s *server) waitBody(path, want string) string {
	s.t.Helper()
	deadline := time.Now().Add(time.Minute)
	var last string
	for time.Now().Before(deadline) {
		select {
		case err := <-s.done:
			s.t.Fatalf("serve returned %v\n%s", err, s.out)
		default:
		}
		if resp, err := s.client.Get(s.url + path); err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			last = string(b)
			if strings.Contains(last, want) {
				return last
			}
		} else {
			last = err.Error()
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.t.Fatalf("GET %s never said %q (last: %s)\n%s", path, want, last, s.out)
	return ""
}

func (s *server) stop() error {
	if s.cancel == nil {
		return nil
	}
	s.cancel()
	s.cancel = nil
	select {
	case err := <-s.done:
		return err
	case <-time.After(time.Minute):
		s.t.Fatal("serve did not stop")
		return nil
	}
}

func TestServeFlagsTLSOnly(t *testing.T) {
	f := newServeFixture(t)
	port := freePort(t)
	pidFile := filepath.Join(f.dir, "content.pid")
	s := startServe(t, f, port, "--iso", f.iso100, "--iso", f.iso110, "--listen", "127.0.0.1:"+port,
		"--tls-cert", f.certFile, "--tls-key", f.keyFle, "--keyring", f.ex.PublicKey, "--pid-file", pidFile)
	body := s.waitBody("/readyz", "serving 2 bundle(s)")
	if !strings.Contains(body, "example 1.1.0, example 1.0.0") {
		t.Errorf("readyz: %s", body)
	}
	resp, err := s.client.Get(s.url + "/v2/registry.example.com/ferry/app/manifests/1.0")
	if err != nil || resp.StatusCode != 200 || resp.Header.Get("Docker-Content-Digest") != f.ex.AppDigest {
		t.Errorf("manifest: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	// "PID STARTTIME": the server by its pid and its start time.
	if pid, _ := os.ReadFile(pidFile); len(strings.Fields(string(pid))) != 2 || strings.Fields(string(pid))[0] != strconv.Itoa(os.Getpid()) {
		t.Errorf("pid file %q", pid)
	}
	// Plain HTTP on the same port: never a page.
	plain := &http.Client{Timeout: 5 * time.Second}
	if resp, err := plain.Get("http://127.0.0.1:" + port + "/readyz"); err == nil {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == 200 || strings.Contains(string(b), "serving") {
			t.Errorf("plain HTTP answered %d: %s", resp.StatusCode, b)
		}
	}
	if err := s.stop(); err != nil {
		t.Errorf("serve: %v\n%s", err, s.out)
	}
	if _, err := os.Stat(pidFile); !os.IsNotExist(err) {
		t.Errorf("pid file left: %v", err)
	}

	// Usage errors exit 2 and say what is missing; there is no plaintext mode.
	var out testutil.SyncBuffer
	err = runApp(context.Background(), &out, "serve", "--iso", f.iso100, "--keyring", f.ex.PublicKey, "--listen", "127.0.0.1:0")
	if exitCode(err) != 2 || !strings.Contains(err.Error(), "tlsCert and tlsKey") {
		t.Errorf("serve without a certificate: %v", err)
	}
	err = runApp(context.Background(), &out, "serve", "--config", filepath.Join(f.dir, "missing.yaml"))
	if exitCode(err) != 2 {
		t.Errorf("serve with a missing config: %v", err)
	}
}

func TestBundleCommandsReloadTheServer(t *testing.T) {
	f := newServeFixture(t)
	port := freePort(t)
	pidFile := filepath.Join(f.dir, "content.pid")
	cfg := filepath.Join(f.dir, "serve.yaml")
	os.WriteFile(cfg, []byte(`# the content service of this test
apiVersion: ferry.dev/v1alpha1
kind: ContentService
listen: 127.0.0.1:`+port+`
keyring: `+f.ex.PublicKey+`
tlsCert: `+f.certFile+`
tlsKey: `+f.keyFle+`
pidFile: `+pidFile+`
isos:
  - `+f.iso100+`
`), 0o644)
	s := startServe(t, f, port, "--config", cfg)
	s.waitBody("/readyz", "serving 1 bundle(s): example 1.0.0")

	var out testutil.SyncBuffer
	if err := runApp(context.Background(), &out, "bundle", "add", "--iso", f.iso110, "--config", cfg, "--json"); err != nil {
		t.Fatalf("bundle add: %v\n%s", err, out.String())
	}
	var change struct {
		Changed      bool
		SignalledPid int
		Bundle       struct{ Version string }
	}
	if err := json.Unmarshal([]byte(out.String()), &change); err != nil || !change.Changed || change.SignalledPid != os.Getpid() || change.Bundle.Version != "1.1.0" {
		t.Errorf("bundle add --json: %v\n%s", err, out.String())
	}
	s.waitBody("/readyz", "serving 2 bundle(s)")
	if data, _ := os.ReadFile(cfg); !strings.Contains(string(data), "# the content service of this test") {
		t.Errorf("comment lost:\n%s", data)
	}

	out = testutil.SyncBuffer{}
	if err := runApp(context.Background(), &out, "bundle", "list", "--config", cfg); err != nil {
		t.Fatal(err)
	}
	if got := out.String(); strings.Count(got, "  ok\n") != 2 || !strings.Contains(got, "1.1.0") {
		t.Errorf("bundle list:\n%s", got)
	}

	// A tampered ISO is refused and the file is left alone.
	bad := filepath.Join(f.dir, "bad.iso")
	data, _ := os.ReadFile(f.iso110)
	data[len(data)/2] ^= 0xff
	os.WriteFile(bad, data, 0o644)
	before, _ := os.ReadFile(cfg)
	out = testutil.SyncBuffer{}
	err := runApp(context.Background(), &out, "bundle", "add", "--iso", bad, "--config", cfg)
	if exitCode(err) != 1 || !strings.Contains(err.Error(), bad) {
		t.Errorf("bundle add of a tampered ISO: %v", err)
	}
	if after, _ := os.ReadFile(cfg); !bytes.Equal(before, after) {
		t.Error("config changed by a refused add")
	}

	out = testutil.SyncBuffer{}
	if err := runApp(context.Background(), &out, "bundle", "remove", "--config", cfg, "1.0.0"); err != nil {
		t.Fatalf("bundle remove: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "removed "+f.iso100) || !strings.Contains(out.String(), "is reloading") {
		t.Errorf("bundle remove said:\n%s", out.String())
	}
	s.waitBody("/readyz", "serving 1 bundle(s): example 1.1.0")
	if err := s.stop(); err != nil {
		t.Errorf("serve: %v", err)
	}

	// With no server running, the change is made and the output says so.
	out = testutil.SyncBuffer{}
	if err := runApp(context.Background(), &out, "bundle", "add", "--iso", f.iso100, "--config", cfg); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "no running content service") {
		t.Errorf("bundle add without a server:\n%s", out.String())
	}
}
