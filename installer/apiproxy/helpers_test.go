package apiproxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/ferry-k8s/ferry/bundle"
	"github.com/ferry-k8s/ferry/installer/pki"
	"github.com/ferry-k8s/ferry/internal/testutil"
)

// apiName is the control-plane endpoint's DNS name: every API server's
// certificate carries it, and clients verify it through the proxy.
const apiName = "api.lab.example.com"

// waitLimit bounds every poll: a condition not met by then fails the
// test. It is a deadline, not a timing assertion.
const waitLimit = 60 * time.Second

// testPKI is the cluster's Kubernetes CA (installer/pki, the project's
// own), with its root written where the proxy's caFile points.
type testPKI struct {
	realm  *pki.Realm
	roots  *x509.CertPool
	dir    string
	caFile string
}

func newPKI(t *testing.T) *testPKI {
	t.Helper()
	r, err := pki.NewRealm(pki.RealmKubernetes, pki.Options{Organization: "apiproxy-test"})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	caFile := filepath.Join(dir, "ca.crt")
	if err := os.WriteFile(caFile, r.RootCertPEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(r.Root)
	return &testPKI{realm: r, roots: roots, dir: dir, caFile: caFile}
}

// serverCert issues a server certificate for names.
func (k *testPKI) serverCert(t *testing.T, names ...string) (tls.Certificate, *x509.Certificate) {
	t.Helper()
	l, err := k.realm.IssueServer(names...)
	if err != nil {
		t.Fatal(err)
	}
	key, err := l.KeyPEM()
	if err != nil {
		t.Fatal(err)
	}
	c, err := tls.X509KeyPair(l.CertPEM(), key)
	if err != nil {
		t.Fatal(err)
	}
	return c, l.Cert
}

// writeServerCert issues a server certificate for names into dir.
func (k *testPKI) writeServerCert(t *testing.T, name string) (certFile, keyFile string) {
	t.Helper()
	l, err := k.realm.IssueServer(name)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(k.dir, name+".crt"), filepath.Join(k.dir, name+".key")
	if err := l.WriteFiles(certFile, keyFile); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

// apiServer is a real HTTPS server on loopback standing in for a
// kube-apiserver (the proxy only needs TLS, /readyz and bytes to carry).
//
//	GET  /readyz     the status code set with setReady
//	GET  /who        its name (every response carries X-Backend: name)
//	GET  /stream     a chunked response, one line per send(), until the client leaves
//	POST /halfclose  hijacks the connection: "ready\n", reads until the client's
//	                 EOF, checks that the TCP FIN came through too, answers
//	                 "received N bytes, fin\n" and closes
//
// stop closes its listener and connections; start listens again on the
// same address.
//
// Why a stand-in, when internal/testcluster runs the real one (and
// TestRealAPIServer puts the proxy in front of it): these tests are about
// the proxy's reaction to faults that a real API server cannot be made to
// show on demand and hold:
//   - /readyz 500 or 503 while it serves (setReady): kube-apiserver reports
//     not ready only in a passing window (etcd lost past its health
//     timeout, the shutdown delay), at a time the test does not choose;
//   - stopped, then listening again on the same address (stop/start):
//     testcluster cannot restart its API server, and one that could would
//     take tens of seconds a time; that one is a cost, not an
//     impossibility, and so is the next: two or three real backends are
//     as many etcd and kube-apiserver pairs on a two-core test machine;
//   - a stream whose lines the test sends one at a time, and a check that
//     the client's TCP FIN reached the backend (/halfclose): no endpoint of
//     kube-apiserver tells what it saw of the connection;
//   - which backend answered, in X-Backend (the certificate tells too, and
//     get checks that it matches).
type apiServer struct {
	name  string
	cert  tls.Certificate
	leaf  *x509.Certificate
	ready atomic.Int32
	lines chan string

	mu   sync.Mutex
	addr string
	srv  *http.Server
}

func newAPIServer(t *testing.T, k *testPKI, name string) *apiServer {
	t.Helper()
	cert, leaf := k.serverCert(t, apiName, name+".lab.example.com")
	s := &apiServer{name: name, cert: cert, leaf: leaf, lines: make(chan string), addr: "127.0.0.1:0"}
	s.ready.Store(http.StatusOK)
	s.start(t)
	t.Cleanup(s.stop)
	return s
}

func (s *apiServer) setReady(code int) { s.ready.Store(int32(code)) }

func (s *apiServer) start(t *testing.T) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	ln, err := net.Listen("tcp", s.addr)
	if err != nil {
		t.Fatalf("%s: listening on %s: %v", s.name, s.addr, err)
	}
	s.addr = ln.Addr().String()
	s.srv = &http.Server{
		Handler:           s.handler(),
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{s.cert}, MinVersion: tls.VersionTLS12},
		ReadHeaderTimeout: 30 * time.Second,
		ErrorLog:          log.New(io.Discard, "", 0),
	}
	go func(srv *http.Server) { _ = srv.ServeTLS(ln, "", "") }(s.srv)
}

func (s *apiServer) stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv != nil {
		s.srv.Close()
		s.srv = nil
	}
}

func (s *apiServer) address() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addr
}

func (s *apiServer) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(int(s.ready.Load()))
		fmt.Fprintln(w, s.name)
	})
	mux.HandleFunc("GET /who", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, s.name) })
	mux.HandleFunc("GET /stream", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		for {
			select {
			case l := <-s.lines:
				fmt.Fprintln(w, l)
				w.(http.Flusher).Flush()
			case <-r.Context().Done():
				return
			}
		}
	})
	mux.HandleFunc("POST /halfclose", func(w http.ResponseWriter, _ *http.Request) {
		conn, rw, err := w.(http.Hijacker).Hijack()
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		defer conn.Close()
		_, _ = rw.WriteString("ready\n")
		_ = rw.Flush()
		n, err := io.Copy(io.Discard, rw.Reader) // until the client's close_notify
		if err != nil {
			fmt.Fprintf(conn, "reading: %v\n", err)
			return
		}
		fin := "no fin"
		if tc, ok := conn.(*tls.Conn); ok {
			// A safety bound, not a timing assertion: without the FIN
			// the test fails either way.
			raw := tc.NetConn()
			_ = raw.SetReadDeadline(time.Now().Add(waitLimit))
			var b [1]byte
			if _, err := raw.Read(b[:]); errors.Is(err, io.EOF) {
				fin = "fin"
			}
			_ = raw.SetReadDeadline(time.Time{})
		}
		fmt.Fprintf(conn, "received %d bytes, %s\n", n, fin)
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Backend", s.name)
		mux.ServeHTTP(w, r)
	})
}

// baseConfig proxies to servers with quick health checks: healthy after
// one success, unhealthy after two failures.
func baseConfig(k *testPKI, servers ...*apiServer) Config {
	c := Config{
		APIVersion: bundle.APIVersion,
		Kind:       KindAPIServerProxy,
		HealthCheck: HealthCheck{
			CAFile:             k.caFile,
			ServerName:         apiName,
			Interval:           "100ms",
			Timeout:            "5s",
			HealthyThreshold:   1,
			UnhealthyThreshold: 2,
		},
		DialTimeout: "5s",
	}
	for _, s := range servers {
		c.Backends = append(c.Backends, s.address())
	}
	return c
}

// running is a proxy started by startProxy.
type running struct {
	*Proxy
	addr string
	// notes are the notifications the proxy sent with the real sd_notify
	// to the test's $NOTIFY_SOCKET.
	notes *testutil.Notifications
	stop  func() error // cancels Run and returns its error
}

// startProxy runs a proxy on a loopback port; the test's cleanup stops it.
// The proxy notifies systemd as in production (Options.Notify nil: the
// real sd_notify), to a notification socket the test reads.
func startProxy(t *testing.T, cfg Config, opts Options) *running {
	t.Helper()
	n := testutil.ListenNotify(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	opts.Listener = ln
	if opts.Log == nil {
		opts.Log = slog.New(slog.NewTextHandler(tlog{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	p, err := New(cfg, opts)
	if err != nil {
		ln.Close()
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	var once sync.Once
	var runErr error
	stop := func() error {
		once.Do(func() {
			cancel()
			runErr = <-done
		})
		return runErr
	}
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return &running{Proxy: p, addr: ln.Addr().String(), notes: n, stop: stop}
}

// tlog sends the proxy's logs to the test's log (Run has returned, and so
// every goroutine of the proxy has ended, before the test does).
type tlog struct{ t *testing.T }

func (l tlog) Write(b []byte) (int, error) {
	l.t.Log(strings.TrimRight(string(b), "\n"))
	return len(b), nil
}

// client makes HTTPS clients that reach apiName through the proxy at addr
// and verify the API server's certificate, as a kubelet does.
func (k *testPKI) client(addr string) *http.Client {
	d := &net.Dialer{Timeout: waitLimit}
	return &http.Client{
		Timeout: waitLimit,
		Transport: &http.Transport{
			Proxy:             nil,
			DialContext:       func(ctx context.Context, _, _ string) (net.Conn, error) { return d.DialContext(ctx, "tcp", addr) },
			TLSClientConfig:   &tls.Config{RootCAs: k.roots, ServerName: apiName, MinVersion: tls.VersionTLS12},
			DisableKeepAlives: true,
		},
	}
}

// get requests path through the proxy and returns the backend that
// answered (checked against the certificate it presented).
func get(t *testing.T, c *http.Client, path string, servers ...*apiServer) (string, error) {
	t.Helper()
	resp, err := c.Get("https://" + apiName + path)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return "", err
	}
	name := resp.Header.Get("X-Backend")
	if resp.StatusCode != http.StatusOK {
		return name, fmt.Errorf("GET %s: %s: %s", path, resp.Status, body)
	}
	if resp.TLS == nil || len(resp.TLS.PeerCertificates) == 0 {
		return name, fmt.Errorf("GET %s: no peer certificate", path)
	}
	for _, s := range servers {
		if s.name == name && !resp.TLS.PeerCertificates[0].Equal(s.leaf) {
			t.Errorf("%s answered with another server's certificate (serial %s)", name, resp.TLS.PeerCertificates[0].SerialNumber)
		}
	}
	return name, nil
}

func mustGet(t *testing.T, c *http.Client, path string, servers ...*apiServer) string {
	t.Helper()
	name, err := get(t, c, path, servers...)
	if err != nil {
		t.Fatalf("through the proxy: %v", err)
	}
	return name
}

// waitFor polls cond until it holds, failing the test after waitLimit.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited %v for: %s", waitLimit, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (r *running) state(addr string) State {
	for _, s := range r.Status() {
		if s.Address == addr {
			return s.State
		}
	}
	return -1
}

func (r *running) waitState(t *testing.T, s *apiServer, want State) {
	t.Helper()
	waitFor(t, fmt.Sprintf("%s (%s) %s", s.name, s.address(), want), func() bool { return r.state(s.address()) == want })
}

// metric is the value of a counter or gauge with the given labels (0 when
// the series does not exist).
func (r *running) metric(t *testing.T, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := r.m.registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if hasLabels(m, labels) {
				switch {
				case m.Counter != nil:
					return m.Counter.GetValue()
				case m.Gauge != nil:
					return m.Gauge.GetValue()
				}
			}
		}
	}
	return 0
}

func hasLabels(m *dto.Metric, kv []string) bool {
	for i := 0; i+1 < len(kv); i += 2 {
		found := false
		for _, lp := range m.GetLabel() {
			if lp.GetName() == kv[i] && lp.GetValue() == kv[i+1] {
				found = true
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// stream opens GET /stream through the proxy; it returns the backend
// serving it and a reader of its lines.
func stream(t *testing.T, c *http.Client) (string, *bufio.Reader, io.Closer) {
	t.Helper()
	resp, err := c.Get("https://" + apiName + "/stream")
	if err != nil {
		t.Fatalf("opening a stream through the proxy: %v", err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("stream: %s", resp.Status)
	}
	return resp.Header.Get("X-Backend"), bufio.NewReader(resp.Body), resp.Body
}

func readLine(t *testing.T, r *bufio.Reader) string {
	t.Helper()
	l, err := r.ReadString('\n')
	if err != nil {
		t.Fatalf("reading the stream: %v", err)
	}
	return strings.TrimSuffix(l, "\n")
}
