package apiproxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// The proxy is layer 4: the client completes its TLS handshake with the
// API server itself and sees that server's own certificate, verified for
// the endpoint's name. One backend is named by DNS (localhost).
func TestClientSeesTheBackendsCertificate(t *testing.T) {
	k := newPKI(t)
	a, b := newAPIServer(t, k, "cp1"), newAPIServer(t, k, "cp2")
	cfg := baseConfig(k, a)
	_, port, _ := net.SplitHostPort(b.address())
	cfg.Backends = append(cfg.Backends, "localhost:"+port)
	r := startProxy(t, cfg, Options{})
	waitFor(t, "both backends healthy", func() bool {
		st := r.Status()
		return st[0].State == StateHealthy && st[1].State == StateHealthy
	})
	c := k.client(r.addr)
	seen := map[string]bool{}
	for range 4 {
		seen[mustGet(t, c, "/who", a, b)] = true // get checks the certificate
	}
	if !seen["cp1"] || !seen["cp2"] {
		t.Errorf("four sequential connections reached %v, want both backends (least connections, ties round-robin)", seen)
	}

	// No termination: a client that expects a certificate for the
	// proxy's own address (as a TLS-terminating proxy would present)
	// gets the API server's, which does not carry it.
	conn, err := tls.Dial("tcp", r.addr, &tls.Config{RootCAs: k.roots, ServerName: "proxy.invalid", MinVersion: tls.VersionTLS12})
	if err == nil {
		conn.Close()
		t.Fatal("a client verifying another name completed the handshake")
	}
	var he x509.HostnameError
	if !errors.As(err, &he) {
		t.Errorf("handshake error %v, want a hostname mismatch against the API server's certificate", err)
	}
}

// A backend whose /readyz fails gets no new connections; once it passes
// again it is used again.
func TestUnhealthyBackendGetsNoNewConnections(t *testing.T) {
	k := newPKI(t)
	a, b := newAPIServer(t, k, "cp1"), newAPIServer(t, k, "cp2")
	r := startProxy(t, baseConfig(k, a, b), Options{})
	r.waitState(t, a, StateHealthy)
	r.waitState(t, b, StateHealthy)
	c := k.client(r.addr)

	b.setReady(http.StatusInternalServerError)
	r.waitState(t, b, StateUnhealthy)
	for i := range 20 {
		if got := mustGet(t, c, "/who", a, b); got != "cp1" {
			t.Fatalf("connection %d went to %s, which is unhealthy", i, got)
		}
	}
	if st := r.Status()[1]; !strings.Contains(st.LastError, "500") {
		t.Errorf("cp2's last error %q does not name the 500", st.LastError)
	}
	if got := r.metric(t, "ferry_apiproxy_backend_up", "backend", b.address()); got != 0 {
		t.Errorf("backend_up{cp2} = %v, want 0", got)
	}

	b.setReady(http.StatusOK)
	r.waitState(t, b, StateHealthy)
	waitFor(t, "a new connection reaches cp2 again", func() bool { return mustGet(t, c, "/who", a, b) == "cp2" })
}

// A backend that stops listening: clients still succeed through the
// other, without waiting for a health check (the interval here is long):
// the failed dial is a strike, and the connection moves on.
func TestStoppedBackendFailsOverOnDial(t *testing.T) {
	k := newPKI(t)
	a, b := newAPIServer(t, k, "cp1"), newAPIServer(t, k, "cp2")
	cfg := baseConfig(k, a, b)
	cfg.HealthCheck.Interval = "10m" // one check at start, then only dials tell
	r := startProxy(t, cfg, Options{})
	r.waitState(t, a, StateHealthy)
	r.waitState(t, b, StateHealthy)
	c := k.client(r.addr)

	b.stop()
	for i := range 10 {
		if got := mustGet(t, c, "/who", a, b); got != "cp1" {
			t.Fatalf("connection %d answered by %s, which is stopped", i, got)
		}
	}
	if got := r.metric(t, "ferry_apiproxy_dial_failures_total", "backend", b.address()); got < 2 {
		t.Errorf("dial_failures_total{cp2} = %v, want ≥ 2 (ten connections, ties round-robin)", got)
	}
	st := r.Status()[1]
	if st.State != StateUnhealthy || !strings.Contains(st.LastError, "refused") {
		t.Errorf("cp2 after failed dials: %v, %q; want unhealthy after 2 strikes, connection refused", st.State, st.LastError)
	}
	if got := r.metric(t, "ferry_apiproxy_connections_rejected_total", "reason", "no_backend"); got != 0 {
		t.Errorf("%v connections rejected, want none", got)
	}
}

// All API servers down: a client's connection fails at once, cleanly
// (closed, not hung); the proxy keeps checking, and a server that comes
// back on its address is used again.
func TestAllDownThenBack(t *testing.T) {
	k := newPKI(t)
	a, b := newAPIServer(t, k, "cp1"), newAPIServer(t, k, "cp2")
	r := startProxy(t, baseConfig(k, a, b), Options{})
	r.waitState(t, a, StateHealthy)
	c := k.client(r.addr)
	mustGet(t, c, "/who", a, b)

	a.stop()
	b.stop()
	r.waitState(t, a, StateUnhealthy)
	r.waitState(t, b, StateUnhealthy)
	if got := r.metric(t, "ferry_apiproxy_healthy_backends"); got != 0 {
		t.Errorf("healthy_backends = %v, want 0", got)
	}
	_, err := get(t, c, "/who")
	if err == nil {
		t.Fatal("a request succeeded with every API server down")
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("the client timed out instead of being closed: %v", err)
	}
	if got := r.metric(t, "ferry_apiproxy_connections_rejected_total", "reason", "no_backend"); got < 1 {
		t.Errorf("connections_rejected_total{no_backend} = %v, want ≥ 1", got)
	}

	b.start(t)
	r.waitState(t, b, StateHealthy)
	if got := mustGet(t, c, "/who", a, b); got != "cp2" {
		t.Errorf("answered by %s, want cp2 (the one back)", got)
	}
}

// With no backend known healthy the proxy tries them all: a server whose
// /readyz fails (an API server still starting) still gets the client.
func TestNoHealthyBackendTriesAll(t *testing.T) {
	k := newPKI(t)
	a := newAPIServer(t, k, "cp1")
	a.setReady(http.StatusServiceUnavailable)
	r := startProxy(t, baseConfig(k, a), Options{})
	r.waitState(t, a, StateUnhealthy)
	if got := mustGet(t, k.client(r.addr), "/who", a); got != "cp1" {
		t.Errorf("answered by %s", got)
	}
}

// A long-lived response (a watch) whose backend turns unhealthy while
// another is healthy is closed, so that its client reconnects to the
// healthy one; new connections avoid the unhealthy backend.
func TestStreamMovesOffAnUnhealthyBackend(t *testing.T) {
	k := newPKI(t)
	a, b := newAPIServer(t, k, "cp1"), newAPIServer(t, k, "cp2")
	r := startProxy(t, baseConfig(k, a, b), Options{})
	r.waitState(t, a, StateHealthy)
	r.waitState(t, b, StateHealthy)
	c := k.client(r.addr)

	name, lines, body := stream(t, c)
	defer body.Close()
	srv, other := a, b
	if name == "cp2" {
		srv, other = b, a
	}
	srv.lines <- "one"
	if got := readLine(t, lines); got != "one" {
		t.Fatalf("stream: %q", got)
	}
	srv.setReady(http.StatusInternalServerError)
	r.waitState(t, srv, StateUnhealthy)
	closed := make(chan error, 1)
	go func() { _, err := lines.ReadString('\n'); closed <- err }()
	select {
	case err := <-closed:
		if err == nil {
			t.Fatal("the stream on the unhealthy backend carried a line")
		}
	case <-time.After(time.Minute): // a bound, not a measure: it ends at once when it works
		t.Fatal("the stream on the unhealthy backend is still open")
	}
	if got := r.metric(t, "ferry_apiproxy_connections_moved_total", "backend", srv.address()); got != 1 {
		t.Errorf("connections moved: %v, want 1", got)
	}
	if got := mustGet(t, c, "/who", a, b); got != other.name {
		t.Errorf("a new connection went to %s, which is unhealthy", got)
	}
	name, lines2, body2 := stream(t, c)
	defer body2.Close()
	if name != other.name {
		t.Fatalf("the reconnected stream went to %s", name)
	}
	other.lines <- "two"
	if got := readLine(t, lines2); got != "two" {
		t.Fatalf("the reconnected stream: %q", got)
	}
}

// With no other healthy backend there is nowhere better to go: a stream
// keeps flowing while its backend turns unhealthy and healthy again.
func TestStreamStaysWhenNoOtherBackendIsHealthy(t *testing.T) {
	k := newPKI(t)
	a := newAPIServer(t, k, "cp1")
	r := startProxy(t, baseConfig(k, a), Options{})
	r.waitState(t, a, StateHealthy)
	c := k.client(r.addr)
	_, lines, body := stream(t, c)
	defer body.Close()
	a.setReady(http.StatusInternalServerError)
	r.waitState(t, a, StateUnhealthy)
	a.lines <- "one"
	if got := readLine(t, lines); got != "one" {
		t.Fatalf("stream after its only backend turned unhealthy: %q", got)
	}
	a.setReady(http.StatusOK)
	r.waitState(t, a, StateHealthy)
	a.lines <- "two"
	if got := readLine(t, lines); got != "two" {
		t.Fatalf("stream after the backend recovered: %q", got)
	}
	if st := r.Status(); st[0].ActiveConnections != 1 {
		t.Errorf("active connections %d, want the stream's 1", st[0].ActiveConnections)
	}
}

// Half-close: the client finishes sending (TLS close_notify, then TCP
// FIN) and still reads the server's answer; the server sees both the
// close_notify and the FIN.
func TestHalfClose(t *testing.T) {
	k := newPKI(t)
	a := newAPIServer(t, k, "cp1")
	r := startProxy(t, baseConfig(k, a), Options{})
	r.waitState(t, a, StateHealthy)

	raw, err := net.Dial("tcp", r.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	_ = raw.SetDeadline(time.Now().Add(waitLimit)) // a bound for a broken proxy, not an assertion
	conn := tls.Client(raw, &tls.Config{RootCAs: k.roots, ServerName: apiName, MinVersion: tls.VersionTLS12})
	if _, err := io.WriteString(conn, "POST /halfclose HTTP/1.1\r\nHost: "+apiName+"\r\nContent-Length: 0\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	if l, err := br.ReadString('\n'); err != nil || l != "ready\n" {
		t.Fatalf("server: %q %v", l, err)
	}
	if _, err := io.WriteString(conn, "hello world"); err != nil {
		t.Fatal(err)
	}
	if err := conn.CloseWrite(); err != nil { // close_notify
		t.Fatal(err)
	}
	if err := raw.(*net.TCPConn).CloseWrite(); err != nil { // FIN
		t.Fatal(err)
	}
	rest, err := io.ReadAll(br)
	if err != nil {
		t.Fatalf("reading after our half-close: %v (got %q)", err, rest)
	}
	if got, want := string(rest), "received 11 bytes, fin\n"; got != want {
		t.Errorf("after the half-close the server said %q, want %q", got, want)
	}
}

// Past maxConnections a client is closed at once; when a connection
// ends, a new one is accepted again.
func TestMaxConnections(t *testing.T) {
	k := newPKI(t)
	a := newAPIServer(t, k, "cp1")
	cfg := baseConfig(k, a)
	cfg.MaxConnections = 1
	r := startProxy(t, cfg, Options{})
	r.waitState(t, a, StateHealthy)
	c := k.client(r.addr)

	_, _, body := stream(t, c)
	if _, err := get(t, c, "/who"); err == nil {
		t.Fatal("a second connection was proxied with maxConnections 1")
	}
	if got := r.metric(t, "ferry_apiproxy_connections_rejected_total", "reason", "limit"); got != 1 {
		t.Errorf("connections_rejected_total{limit} = %v, want 1", got)
	}
	body.Close()
	waitFor(t, "a connection accepted once the first ended", func() bool {
		_, err := get(t, c, "/who")
		return err == nil
	})
}

// The metrics endpoint serves over TLS only, with the gauges and
// counters per backend.
func TestMetricsEndpoint(t *testing.T) {
	k := newPKI(t)
	a, b := newAPIServer(t, k, "cp1"), newAPIServer(t, k, "cp2")
	cfg := baseConfig(k, a, b)
	cert, key := k.writeServerCert(t, "metrics.lab.example.com")
	mln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Metrics = &MetricsConf{Listen: "127.0.0.1:9444", TLSCert: cert, TLSKey: key}
	r := startProxy(t, cfg, Options{MetricsListener: mln})
	r.waitState(t, a, StateHealthy)
	r.waitState(t, b, StateHealthy)
	c := k.client(r.addr)
	mustGet(t, c, "/who", a, b)
	mustGet(t, c, "/who", a, b)
	b.setReady(http.StatusInternalServerError)
	r.waitState(t, b, StateUnhealthy)

	mc := &http.Client{Timeout: waitLimit, Transport: &http.Transport{
		Proxy:           nil,
		TLSClientConfig: &tls.Config{RootCAs: k.roots, ServerName: "metrics.lab.example.com", MinVersion: tls.VersionTLS12},
	}}
	defer mc.CloseIdleConnections()
	base := "https://" + mln.Addr().String()
	resp, err := mc.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	text, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/metrics: %s", resp.Status)
	}
	for _, want := range []string{
		`ferry_apiproxy_backend_up{backend="` + a.address() + `"} 1`,
		`ferry_apiproxy_backend_up{backend="` + b.address() + `"} 0`,
		`ferry_apiproxy_healthy_backends 1`,
		`ferry_apiproxy_connections_active{backend="` + a.address() + `"}`,
		`ferry_apiproxy_dial_failures_total{backend="` + b.address() + `"} 0`,
		`ferry_apiproxy_health_check_duration_seconds_count{backend="` + a.address() + `"}`,
		`ferry_apiproxy_health_checks_total{backend="` + b.address() + `",result="failure"}`,
		`ferry_apiproxy_connections_rejected_total{reason="limit"} 0`,
	} {
		if !strings.Contains(string(text), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if got := r.metric(t, "ferry_apiproxy_connections_total", "backend", a.address()) + r.metric(t, "ferry_apiproxy_connections_total", "backend", b.address()); got != 2 {
		t.Errorf("connections_total over both backends = %v, want 2", got)
	}
	resp, err = mc.Get(base + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("/readyz on the metrics endpoint: %s", resp.Status)
	}
	// Plain HTTP is refused.
	resp, err = (&http.Client{Timeout: waitLimit, Transport: &http.Transport{Proxy: nil}}).Get("http://" + mln.Addr().String() + "/metrics")
	if err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Error("/metrics served over plain HTTP")
		}
	}
}

// READY=1 only once a backend is healthy, once; STATUS= follows the
// changes; STOPPING=1 on the way out.
func TestReadyAndNotifications(t *testing.T) {
	k := newPKI(t)
	a := newAPIServer(t, k, "cp1")
	a.setReady(http.StatusServiceUnavailable)
	r := startProxy(t, baseConfig(k, a), Options{})
	r.waitState(t, a, StateUnhealthy)
	select {
	case <-r.Ready():
		t.Fatal("ready with no healthy backend")
	default:
	}
	// The start's STATUS= and the unhealthy verdict's, sent just after
	// the state changed.
	r.notes.Wait(t, "STATUS=0 of 1 API servers healthy", 2)
	if r.notes.Count("READY=1") != 0 {
		t.Fatalf("READY=1 sent with no healthy backend: %q", r.notes.All())
	}
	a.setReady(http.StatusOK)
	select {
	case <-r.Ready():
	case <-time.After(waitLimit):
		t.Fatal("not ready after the backend turned healthy")
	}
	a.setReady(http.StatusInternalServerError)
	r.waitState(t, a, StateUnhealthy)
	a.setReady(http.StatusOK)
	r.waitState(t, a, StateHealthy)
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}
	// Datagrams sent before Run returned are in the socket: wait for the
	// reader to take them.
	r.notes.Wait(t, "STOPPING=1", 1)
	got := r.notes.All()
	if r.notes.Count("READY=1") != 1 || r.notes.Count("STATUS=1 of 1 API servers healthy") < 2 ||
		r.notes.Count("STATUS=0 of 1 API servers healthy") < 2 || got[len(got)-1] != "STOPPING=1" {
		t.Errorf("notifications %q", got)
	}
}

// On stop the listener closes at once while connections in flight go on
// until they end; Run then returns.
func TestDrainLetsConnectionsFinish(t *testing.T) {
	k := newPKI(t)
	a := newAPIServer(t, k, "cp1")
	r := startProxy(t, baseConfig(k, a), Options{DrainTimeout: 10 * time.Minute})
	r.waitState(t, a, StateHealthy)
	_, lines, body := stream(t, k.client(r.addr))

	stopped := make(chan error, 1)
	go func() { stopped <- r.stop() }()
	waitFor(t, "the listener closed", func() bool {
		c, err := net.Dial("tcp", r.addr)
		if err == nil {
			c.Close()
		}
		return err != nil
	})
	a.lines <- "still here"
	if got := readLine(t, lines); got != "still here" {
		t.Fatalf("stream during the drain: %q", got)
	}
	select {
	case err := <-stopped:
		t.Fatalf("Run returned (%v) with a connection in flight", err)
	default:
	}
	body.Close()
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
}

// After the drain timeout the connections left are closed and Run
// returns.
func TestDrainTimeoutClosesWatches(t *testing.T) {
	k := newPKI(t)
	a := newAPIServer(t, k, "cp1")
	r := startProxy(t, baseConfig(k, a), Options{DrainTimeout: 50 * time.Millisecond})
	r.waitState(t, a, StateHealthy)
	_, lines, body := stream(t, k.client(r.addr))
	defer body.Close()
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}
	if l, err := lines.ReadString('\n'); err == nil {
		t.Fatalf("the stream went on after the drain timeout: %q", l)
	}
	if r.Status()[0].ActiveConnections != 0 {
		t.Errorf("active connections left: %+v", r.Status())
	}
}

// Run refuses a second call, and reports an address it cannot bind.
func TestRunErrors(t *testing.T) {
	k := newPKI(t)
	a := newAPIServer(t, k, "cp1")
	r := startProxy(t, baseConfig(k, a), Options{})
	r.waitState(t, a, StateHealthy) // the first Run is running
	if err := r.Run(context.Background()); err == nil || !strings.Contains(err.Error(), "twice") {
		t.Errorf("second Run: %v", err)
	}

	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	cfg := baseConfig(k, a)
	cfg.Listen = busy.Addr().String()
	p, err := New(cfg, Options{Notify: func(string) {}})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Run(context.Background()); err == nil || !strings.Contains(err.Error(), "listening on "+cfg.Listen) {
		t.Errorf("Run on a busy address: %v", err)
	}
}
