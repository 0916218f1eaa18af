package content

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ferry-k8s/ferry/internal/testutil"

	digest "github.com/opencontainers/go-digest"
)

// notes records systemd notifications.
type notes struct {
	mu    sync.Mutex
	all   []string
	ready chan struct{}
	once  sync.Once
}

func newNotes() *notes { return &notes{ready: make(chan struct{})} }

func (n *notes) notify(state string) {
	n.mu.Lock()
	n.all = append(n.all, state)
	n.mu.Unlock()
	if strings.Contains(state, "READY=1") {
		n.once.Do(func() { close(n.ready) })
	}
}

func (n *notes) String() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return strings.Join(n.all, "\n")
}

func writeConfig(t *testing.T, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestServerTLSReloadAndShutdown(t *testing.T) {
	f := bundles(t)
	pki := newPKI(t)
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "serve.yaml")
	pidFile := filepath.Join(dir, "run", "content.pid")
	base := `apiVersion: ferry.dev/v1alpha1
kind: ContentService
# loopback, any port
listen: 127.0.0.1:0
keyring: ` + f.ex.PublicKey + `
tlsCert: ` + pki.certFile + `
tlsKey: ` + pki.keyFile + `
pidFile: ` + pidFile + `
shutdownTimeout: 1m
`
	writeConfig(t, cfgPath, base+"isos:\n  - "+f.iso100+" # the first bundle\n")
	n := newNotes()
	logs := &testutil.SyncBuffer{}
	srv, err := NewServer(ServerOptions{ConfigPath: cfgPath, Log: newTestLogger(logs), Notify: n.notify})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	runErr := make(chan error, 1)
	go func() { runErr <- srv.Run(ctx) }()
	select {
	case <-n.ready:
	case err := <-runErr:
		t.Fatalf("Run: %v\n%s", err, logs)
	case <-time.After(time.Minute):
		t.Fatal("no READY=1")
	}
	port := srv.Addr().(*net.TCPAddr).Port
	url := "https://localhost:" + strconv.Itoa(port)
	get := func(c *http.Client, path string) (int, error) {
		resp, err := c.Get(url + path)
		if err != nil {
			return 0, err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	if code, err := get(pki.client(), "/readyz"); err != nil || code != 200 {
		t.Fatalf("readyz: %d %v", code, err)
	}
	// The server owns its metrics registry: /metrics has ours and the runtime's.
	if resp, err := pki.client().Get(url + "/metrics"); err != nil {
		t.Error(err)
	} else {
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		for _, want := range []string{"go_goroutines", "process_open_fds", `ferry_content_requests_total{code="200",route="readyz"}`, `ferry_content_bundles_served{name="example",version="1.0.0"} 1`} {
			if !strings.Contains(string(body), want) {
				t.Errorf("/metrics lacks %s", want)
			}
		}
	}
	if !strings.Contains(n.String(), "STATUS=serving 1 bundle: example 1.0.0") {
		t.Errorf("notifications:\n%s", n)
	}
	if data, err := os.ReadFile(pidFile); err != nil || !strings.HasPrefix(string(data), strconv.Itoa(os.Getpid())+" ") {
		t.Errorf("pid file: %q %v", data, err)
	}

	// TLS only: plain HTTP gets no content, TLS 1.1 no handshake.
	plain := &http.Client{Timeout: 5 * time.Second}
	if resp, err := plain.Get("http://127.0.0.1:" + strconv.Itoa(port) + "/readyz"); err == nil {
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == 200 {
			t.Errorf("plain HTTP answered 200: %s", body)
		}
	}
	old := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pki.pool, MaxVersion: tls.VersionTLS11}}}
	if _, err := get(old, "/healthz"); err == nil {
		t.Error("a TLS 1.1 client was served")
	}

	// Reload: a second ISO in the file (comments kept), a new certificate.
	if _, err := AddISOToConfig(cfgPath, f.iso110, "1.1.0"); err != nil {
		t.Fatal(err)
	}
	if data, _ := os.ReadFile(cfgPath); !strings.Contains(string(data), "# the first bundle") || !strings.Contains(string(data), "# loopback, any port") {
		t.Errorf("comments lost:\n%s", data)
	}
	pki.issue(t, "localhost", 99, x509.ExtKeyUsageServerAuth, pki.certFile, pki.keyFile)
	if err := srv.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if bs := srv.Service().Bundles(); len(bs) != 2 {
		t.Fatalf("after reload: %+v", bs)
	}
	if !strings.Contains(n.String(), "STATUS=serving 2 bundles: example 1.1.0, example 1.0.0") || !strings.Contains(n.String(), "RELOADING=1") {
		t.Errorf("notifications:\n%s", n)
	}
	if serial := peerSerial(t, pki, url); serial != 99 {
		t.Errorf("certificate after reload has serial %d, want 99", serial)
	}

	// SIGHUP: the same, from the signal (1.0.0 removed from the file).
	if _, err := RemoveISOFromConfig(cfgPath, "1.0.0"); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "SIGHUP to drop 1.0.0", func() bool { return len(srv.Service().Bundles()) == 1 })

	// A broken file changes nothing.
	writeConfig(t, cfgPath, base+"isos: [\n")
	if err := srv.Reload(ctx); err == nil {
		t.Error("reload of a broken config succeeded")
	}
	if bs := srv.Service().Bundles(); len(bs) != 1 || bs[0].Version != "1.1.0" {
		t.Errorf("after a failed reload: %+v", bs)
	}

	// Client certificates, switched on by a reload.
	writeConfig(t, cfgPath, base+"clientCA: "+pki.caFile+"\nisos: ["+f.iso110+"]\n")
	if err := srv.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := get(pki.client(), "/healthz"); err == nil {
		t.Error("served a client without a certificate although clientCA is set")
	}
	clientCert := pki.issue(t, "node1", 7, x509.ExtKeyUsageClientAuth, "", "")
	mtls := pki.client(clientCert)
	if code, err := get(mtls, "/readyz"); err != nil || code != 200 {
		t.Fatalf("client with a certificate: %d %v", code, err)
	}

	// Stop while a download runs: it finishes, then Run returns.
	h11 := pki.client(clientCert)
	h11.Transport.(*http.Transport).ForceAttemptHTTP2 = false
	h11.Transport.(*http.Transport).TLSClientConfig.NextProtos = []string{"http/1.1"}
	resp, err := h11.Get(url + "/v2/" + appRepo + "/blobs/" + f.bigB.Digest.String())
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("download: %v %v", resp, err)
	}
	sum := sha256.New()
	io.CopyN(sum, resp.Body, 4096)
	cancel()
	waitFor(t, "STOPPING=1", func() bool { return strings.Contains(n.String(), "STOPPING=1") })
	select {
	case err := <-runErr:
		t.Fatalf("Run returned (%v) with a download in flight", err)
	case <-time.After(200 * time.Millisecond):
	}
	if _, err := io.Copy(sum, resp.Body); err != nil {
		t.Fatalf("download during shutdown: %v", err)
	}
	resp.Body.Close()
	if got := digest.NewDigestFromBytes(digest.SHA256, sum.Sum(nil)); got != f.bigB.Digest {
		t.Errorf("downloaded %s", got)
	}
	select {
	case err := <-runErr:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return after the download")
	}
	if _, err := os.Stat(pidFile); !os.IsNotExist(err) {
		t.Errorf("pid file left behind: %v", err)
	}
	waitFor(t, "bundles to close", func() bool { return srv.Service().openISO.Load() == 0 })
}

// peerSerial connects anew and returns the server certificate's serial.
func peerSerial(t *testing.T, pki *testPKI, url string) int64 {
	t.Helper()
	conn, err := tls.Dial("tcp", strings.TrimPrefix(url, "https://"), &tls.Config{RootCAs: pki.pool, ServerName: "localhost"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].SerialNumber.Int64()
}

func TestServerRefusesBadConfig(t *testing.T) {
	f := bundles(t)
	dir := t.TempDir()
	for name, tc := range map[string]struct{ text, want string }{
		"unknown field":   {"apiVersion: ferry.dev/v1alpha1\nkind: ContentService\nlisten: :0\nplaintext: true\n", "plaintext: unknown field"},
		"wrong kind":      {"apiVersion: ferry.dev/v1alpha1\nkind: Bundle\n", `kind: must be "ContentService"`},
		"no TLS":          {"apiVersion: ferry.dev/v1alpha1\nkind: ContentService\nkeyring: " + f.ex.PublicKey + "\n", "tlsCert and tlsKey: both required"},
		"bad listen":      {"apiVersion: ferry.dev/v1alpha1\nkind: ContentService\nlisten: nope\n", "listen:"},
		"bad externalURL": {"apiVersion: ferry.dev/v1alpha1\nkind: ContentService\nexternalURL: http://x\n", "externalURL"},
	} {
		p := filepath.Join(dir, strings.ReplaceAll(name, " ", "-")+".yaml")
		writeConfig(t, p, tc.text)
		_, err := NewServer(ServerOptions{ConfigPath: p, Notify: func(string) {}})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", name, err, tc.want)
		}
	}
}

// TestServerSystemdNotify runs the server with the real sd_notify (no
// Notify option) against a notification socket, as systemd would provide
// with Type=notify and WatchdogSec.
func TestServerSystemdNotify(t *testing.T) {
	f := bundles(t)
	pki := newPKI(t)
	sock := filepath.Join(t.TempDir(), "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	t.Setenv("NOTIFY_SOCKET", sock)
	t.Setenv("WATCHDOG_USEC", "200000") // 200 ms: pings every 100 ms
	t.Setenv("WATCHDOG_PID", strconv.Itoa(os.Getpid()))
	srv, err := NewServer(ServerOptions{Flags: Config{
		Listen: "127.0.0.1:0", ISOs: []string{f.iso100}, Keyring: f.ex.PublicKey,
		TLSCert: pki.certFile, TLSKey: pki.keyFile, PIDFile: filepath.Join(t.TempDir(), "pid"),
	}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()

	var got []string
	read := func(until string, n int) {
		t.Helper()
		buf := make([]byte, 4096)
		for count := 0; count < n; {
			conn.SetReadDeadline(time.Now().Add(30 * time.Second))
			m, err := conn.Read(buf)
			if err != nil {
				t.Fatalf("waiting for %s: %v; got %q", until, err, got)
			}
			got = append(got, string(buf[:m]))
			if strings.Contains(string(buf[:m]), until) {
				count++
			}
		}
	}
	read("READY=1", 1)
	read("WATCHDOG=1", 3)
	cancel()
	read("STOPPING=1", 1)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	all := strings.Join(got, "\n")
	for _, want := range []string{"STATUS=verifying 1 bundle(s)", "READY=1\nSTATUS=serving 1 bundle: example 1.0.0"} {
		if !strings.Contains(all, want) {
			t.Errorf("notifications lack %q:\n%s", want, all)
		}
	}
}
