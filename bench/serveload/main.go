// Command serveload is the load generator of bench/serve.sh: it pulls every
// blob of every given image from an OCI registry (or from a static web
// server laid out like one) over TLS with a number of concurrent clients,
// then measures manifest latency, and prints one JSON report on stdout.
//
//	serveload -base https://127.0.0.1:5443 -cacert ca.crt -kind registry \
//	    -repos registry.example.com/bench/img00:1.0,registry.example.com/bench/img01:1.0
//
// It speaks HTTP/1.1 with keep-alive (no HTTP/2), trusts only -cacert, and
// refuses any base URL that is not on the loopback interface: it is a
// benchmark of local servers, never a load on somebody else's. The run is
// bounded by the number of blobs and requests and by -timeout.
//
// URLs, for both kinds: GET /v2/<repo>/manifests/<tag> and
// GET /v2/<repo>/blobs/<digest>. With -kind registry the manifest requests
// carry the OCI and Docker Accept headers and the /v2/ endpoint is checked
// first; with -kind static they are plain GETs, the server being expected to
// map those paths to files.
//
// serveload -pki DIR writes a throwaway CA (DIR/ca.crt) and a server
// certificate for 127.0.0.1 and localhost (DIR/server.crt, DIR/server.key)
// made with internal/testpki, for the servers under test, and exits.
package main

import (
	"cmp"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/ferry-k8s/ferry/internal/testpki"
)

const acceptManifests = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, " +
	"application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json"

// Limits that keep a run bounded whatever the server answers.
const (
	maxManifestBytes = 4 << 20
	maxBlobs         = 100_000
	maxManifestGets  = 1_000_000
	maxClients       = 256
)

// Report is what serveload prints.
type Report struct {
	Kind    string `json:"kind"`
	Base    string `json:"base"`
	Clients int    `json:"clients"`
	// TLS is the protocol version and cipher suite of the first response.
	TLS string `json:"tls"`
	// Manifests maps each image ("repo:tag") to the sha256 digest of the
	// manifest bytes received, so that servers can be compared.
	Manifests map[string]string `json:"manifests"`
	Pull      PullReport        `json:"pull"`
	Latency   LatencyReport     `json:"manifest_latency"`
}

// PullReport is the blob phase.
type PullReport struct {
	Blobs    int     `json:"blobs"`
	Bytes    int64   `json:"bytes"`
	Seconds  float64 `json:"seconds"`
	MBPerSec float64 `json:"mb_per_s"` // 10^6 bytes per second
	Verified bool    `json:"verified"` // every blob's sha256 was checked
	// ClientCPUSeconds is serveload's own CPU time (user + system) during
	// the pull: on a small machine client and server share the cores.
	ClientCPUSeconds float64 `json:"client_cpu_seconds"`
}

// LatencyReport is the manifest phase: time from sending a GET to having
// read the whole body.
type LatencyReport struct {
	Requests int     `json:"requests"`
	Seconds  float64 `json:"seconds"`
	P50ms    float64 `json:"p50_ms"`
	P90ms    float64 `json:"p90_ms"`
	P99ms    float64 `json:"p99_ms"`
	MaxMs    float64 `json:"max_ms"`
	PerSec   float64 `json:"per_s"`
}

type image struct{ repo, tag string }

type blob struct {
	repo, digest string
	size         int64
}

type config struct {
	base         *url.URL
	kind         string
	images       []image
	clients      int
	manifestGets int
	verify       bool
	skipPull     bool
}

func main() {
	base := flag.String("base", "", "base URL of the server, https://127.0.0.1:PORT (loopback only)")
	caFile := flag.String("cacert", "", "PEM file of the CA that issued the server's certificate")
	certFile := flag.String("cert", "", "client certificate (PEM), if the server asks for one")
	keyFile := flag.String("key", "", "client key (PEM)")
	kind := flag.String("kind", "registry", "registry (OCI distribution API) or static (files at the same paths)")
	repos := flag.String("repos", "", "comma-separated images, repo:tag")
	clients := flag.Int("clients", 16, "concurrent clients (connections)")
	gets := flag.Int("manifest-gets", 2000, "manifest GETs for the latency figures (0: none)")
	verify := flag.Bool("verify", false, "check the sha256 of every blob received (costs client CPU)")
	skipPull := flag.Bool("skip-pull", false, "measure manifest latency only")
	timeout := flag.Duration("timeout", 10*time.Minute, "give up after this long")
	pki := flag.String("pki", "", "write ca.crt, server.crt and server.key into this directory and exit")
	flag.Parse()
	if *pki != "" {
		if err := writePKI(*pki); err != nil {
			fmt.Fprintln(os.Stderr, "serveload:", err)
			os.Exit(1)
		}
		return
	}

	cfg, err := parseConfig(*base, *kind, *repos, *clients, *gets)
	if err == nil && *caFile == "" {
		err = errors.New("-cacert is required")
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "serveload:", err)
		os.Exit(2)
	}
	cfg.verify, cfg.skipPull = *verify, *skipPull
	client, err := newClient(*caFile, *certFile, *keyFile, cfg.clients, cfg.base.Hostname())
	if err != nil {
		fmt.Fprintln(os.Stderr, "serveload:", err)
		os.Exit(2)
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	rep, err := run(ctx, client, cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "serveload:", err)
		os.Exit(1)
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(rep); err != nil {
		os.Exit(1)
	}
}

// writePKI makes the benchmark's CA and server certificate.
func writePKI(dir string) error {
	ca, err := testpki.NewCA("Ferry serve benchmark CA")
	if err != nil {
		return err
	}
	cert, key, err := ca.Issue("ferry serve benchmark", []string{"localhost"}, []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}, false)
	if err != nil {
		return err
	}
	if _, _, err := ca.WriteFiles(dir, "ca", ca.CertPEM, nil); err != nil {
		return err
	}
	_, _, err = ca.WriteFiles(dir, "server", cert, key)
	return err
}

func parseConfig(base, kind, repos string, clients, gets int) (*config, error) {
	u, err := url.Parse(base)
	if err != nil || u.Scheme != "https" || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
		return nil, fmt.Errorf("-base %q: want https://HOST:PORT", base)
	}
	if !isLoopback(u.Hostname()) {
		return nil, fmt.Errorf("-base %q: only loopback servers (127.0.0.0/8, ::1, localhost) are benchmarked", base)
	}
	u.Path = ""
	if kind != "registry" && kind != "static" {
		return nil, fmt.Errorf("-kind %q: want registry or static", kind)
	}
	if clients < 1 || clients > maxClients {
		return nil, fmt.Errorf("-clients %d: want 1 to %d", clients, maxClients)
	}
	if gets < 0 || gets > maxManifestGets {
		return nil, fmt.Errorf("-manifest-gets %d: want 0 to %d", gets, maxManifestGets)
	}
	cfg := &config{base: u, kind: kind, clients: clients, manifestGets: gets}
	for r := range strings.SplitSeq(repos, ",") {
		if r = strings.TrimSpace(r); r == "" {
			continue
		}
		i := strings.LastIndex(r, ":")
		if i <= 0 || strings.Contains(r[i:], "/") || i == len(r)-1 {
			return nil, fmt.Errorf("-repos: %q is not repo:tag", r)
		}
		cfg.images = append(cfg.images, image{repo: r[:i], tag: r[i+1:]})
	}
	if len(cfg.images) == 0 {
		return nil, errors.New("-repos: no image given")
	}
	return cfg, nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func newClient(caFile, certFile, keyFile string, clients int, host string) (*http.Client, error) {
	caPEM, err := os.ReadFile(caFile)
	if err != nil {
		return nil, err
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("%s: no PEM certificate", caFile)
	}
	tlsConf := &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	if certFile != "" {
		pair, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, err
		}
		tlsConf.Certificates = []tls.Certificate{pair}
	}
	dialer := &net.Dialer{Timeout: 5 * time.Second}
	tr := &http.Transport{
		TLSClientConfig: tlsConf,
		// Loopback only, whatever a name resolves to or a redirect says.
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			h, _, err := net.SplitHostPort(addr)
			if err != nil || !isLoopback(h) {
				return nil, fmt.Errorf("refusing to connect to %s: not loopback", addr)
			}
			return dialer.DialContext(ctx, network, addr)
		},
		ForceAttemptHTTP2:     false,
		TLSNextProto:          map[string]func(string, *tls.Conn) http.RoundTripper{}, // HTTP/1.1 only
		MaxIdleConns:          clients,
		MaxIdleConnsPerHost:   clients,
		MaxConnsPerHost:       clients,
		IdleConnTimeout:       time.Minute,
		TLSHandshakeTimeout:   5 * time.Second,
		ResponseHeaderTimeout: 30 * time.Second,
		DisableCompression:    true,
		// Large reads: the client should not be the bottleneck.
		ReadBufferSize:  256 << 10,
		WriteBufferSize: 16 << 10,
	}
	return &http.Client{
		Transport: tr,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= 3 || !isLoopback(req.URL.Hostname()) {
				return fmt.Errorf("refusing redirect to %s", req.URL)
			}
			return nil
		},
	}, nil
}

func run(ctx context.Context, c *http.Client, cfg *config) (*Report, error) {
	rep := &Report{Kind: cfg.kind, Base: cfg.base.String(), Clients: cfg.clients, Manifests: map[string]string{}}
	if err := ping(ctx, c, cfg, rep); err != nil {
		return nil, err
	}
	// Resolve every image: manifests (and the manifests of an index) and
	// the blobs they name.
	var blobs []blob
	seen := map[string]bool{}
	for _, im := range cfg.images {
		body, err := getManifest(ctx, c, cfg, im.repo, im.tag)
		if err != nil {
			return nil, err
		}
		rep.Manifests[im.repo+":"+im.tag] = digestOf(body)
		bs, err := blobsOf(ctx, c, cfg, im.repo, body, 0)
		if err != nil {
			return nil, fmt.Errorf("%s:%s: %w", im.repo, im.tag, err)
		}
		for _, b := range bs {
			if k := b.repo + "@" + b.digest; !seen[k] {
				seen[k] = true
				blobs = append(blobs, b)
			}
		}
		if len(blobs) > maxBlobs {
			return nil, fmt.Errorf("more than %d blobs", maxBlobs)
		}
	}
	if !cfg.skipPull {
		p, err := pull(ctx, c, cfg, blobs)
		if err != nil {
			return nil, err
		}
		rep.Pull = *p
	}
	if cfg.manifestGets > 0 {
		l, err := latency(ctx, c, cfg)
		if err != nil {
			return nil, err
		}
		rep.Latency = *l
	}
	return rep, nil
}

// ping checks /v2/ of a registry (a static server need not answer it) and
// records the TLS parameters.
func ping(ctx context.Context, c *http.Client, cfg *config, rep *Report) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, cfg.base.String()+"/v2/", nil)
	if err != nil {
		return err
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	if resp.TLS != nil {
		rep.TLS = tls.VersionName(resp.TLS.Version) + " " + tls.CipherSuiteName(resp.TLS.CipherSuite)
	}
	if cfg.kind == "registry" && resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET /v2/: %s", resp.Status)
	}
	return nil
}

func (cfg *config) url(repo, kind, ref string) string {
	return cfg.base.String() + "/v2/" + repo + "/" + kind + "/" + ref
}

func getManifest(ctx context.Context, c *http.Client, cfg *config, repo, ref string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, cfg.url(repo, "manifests", ref), nil)
	if err != nil {
		return nil, err
	}
	if cfg.kind == "registry" {
		req.Header.Set("Accept", acceptManifests)
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxManifestBytes+1))
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", req.URL, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s: %.200s", req.URL, resp.Status, body)
	}
	if len(body) > maxManifestBytes {
		return nil, fmt.Errorf("GET %s: manifest larger than %d bytes", req.URL, maxManifestBytes)
	}
	if strings.HasPrefix(ref, "sha256:") && digestOf(body) != ref {
		return nil, fmt.Errorf("GET %s: got content with digest %s", req.URL, digestOf(body))
	}
	if dcd := resp.Header.Get("Docker-Content-Digest"); cfg.kind == "registry" && dcd != "" && dcd != digestOf(body) {
		return nil, fmt.Errorf("GET %s: Docker-Content-Digest %s, body %s", req.URL, dcd, digestOf(body))
	}
	return body, nil
}

type descriptor struct {
	MediaType string `json:"mediaType"`
	Digest    string `json:"digest"`
	Size      int64  `json:"size"`
}

// blobsOf lists the blobs of a manifest, following an index's manifests.
func blobsOf(ctx context.Context, c *http.Client, cfg *config, repo string, body []byte, depth int) ([]blob, error) {
	var m struct {
		MediaType string       `json:"mediaType"`
		Config    *descriptor  `json:"config"`
		Layers    []descriptor `json:"layers"`
		Manifests []descriptor `json:"manifests"`
	}
	if err := json.Unmarshal(body, &m); err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	var out []blob
	if len(m.Manifests) > 0 {
		if depth > 0 {
			return nil, errors.New("nested index")
		}
		for _, d := range m.Manifests {
			if !validDigest(d.Digest) {
				return nil, fmt.Errorf("manifest names digest %q", d.Digest)
			}
			child, err := getManifest(ctx, c, cfg, repo, d.Digest)
			if err != nil {
				return nil, err
			}
			bs, err := blobsOf(ctx, c, cfg, repo, child, depth+1)
			if err != nil {
				return nil, err
			}
			out = append(out, bs...)
		}
		return out, nil
	}
	if m.Config == nil {
		return nil, errors.New("manifest has neither config nor manifests")
	}
	for _, d := range append([]descriptor{*m.Config}, m.Layers...) {
		if !validDigest(d.Digest) || d.Size < 0 {
			return nil, fmt.Errorf("manifest names blob %q of size %d", d.Digest, d.Size)
		}
		out = append(out, blob{repo: repo, digest: d.Digest, size: d.Size})
	}
	return out, nil
}

func validDigest(d string) bool {
	h, ok := strings.CutPrefix(d, "sha256:")
	if !ok || len(h) != 64 {
		return false
	}
	_, err := hex.DecodeString(h)
	return err == nil && strings.ToLower(h) == h
}

func digestOf(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 256<<10); return &b }}

// pull fetches every blob with cfg.clients workers, largest first so that
// the workers finish together.
func pull(ctx context.Context, c *http.Client, cfg *config, blobs []blob) (*PullReport, error) {
	blobs = slices.Clone(blobs)
	slices.SortStableFunc(blobs, func(a, b blob) int { return cmp.Compare(b.size, a.size) })
	jobs := make(chan blob)
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var total atomic.Int64
	var wg sync.WaitGroup
	cpu0 := cpuSeconds()
	start := time.Now()
	for range cfg.clients {
		wg.Go(func() {
			for b := range jobs {
				n, err := getBlob(ctx, c, cfg, b)
				total.Add(n)
				if err != nil {
					cancel(err)
					return
				}
			}
		})
	}
feed:
	for _, b := range blobs {
		select {
		case jobs <- b:
		case <-ctx.Done():
			break feed
		}
	}
	close(jobs)
	wg.Wait()
	elapsed := time.Since(start)
	cpu := cpuSeconds() - cpu0
	if err := context.Cause(ctx); err != nil {
		return nil, err
	}
	var want int64
	for _, b := range blobs {
		want += b.size
	}
	if total.Load() != want {
		return nil, fmt.Errorf("received %d bytes, the manifests list %d", total.Load(), want)
	}
	return &PullReport{Blobs: len(blobs), Bytes: want, Seconds: elapsed.Seconds(),
		MBPerSec: float64(want) / 1e6 / elapsed.Seconds(), Verified: cfg.verify, ClientCPUSeconds: cpu}, nil
}

// cpuSeconds is the process's user and system CPU time so far.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

func getBlob(ctx context.Context, c *http.Client, cfg *config, b blob) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, cfg.url(b.repo, "blobs", b.digest), nil)
	if err != nil {
		return 0, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return 0, fmt.Errorf("GET %s: %s: %s", req.URL, resp.Status, msg)
	}
	var w io.Writer = io.Discard
	h := sha256.New()
	if cfg.verify {
		w = h
	}
	buf := bufPool.Get().(*[]byte)
	defer bufPool.Put(buf)
	// One byte more than announced tells a server that sends too much.
	n, err := io.CopyBuffer(w, io.LimitReader(onlyReader{resp.Body}, b.size+1), *buf)
	if err != nil {
		return n, fmt.Errorf("GET %s: after %d bytes: %w", req.URL, n, err)
	}
	if n != b.size {
		return n, fmt.Errorf("GET %s: %d bytes, manifest says %d", req.URL, n, b.size)
	}
	if cfg.verify {
		if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); got != b.digest {
			return n, fmt.Errorf("GET %s: content has digest %s", req.URL, got)
		}
	}
	return n, nil
}

// onlyReader hides WriterTo/ReaderFrom so that CopyBuffer uses our buffer.
type onlyReader struct{ r io.Reader }

func (o onlyReader) Read(p []byte) (int, error) { return o.r.Read(p) }

// latency makes cfg.manifestGets manifest GETs, spread over the images and
// cfg.clients workers, and reports percentiles.
func latency(ctx context.Context, c *http.Client, cfg *config) (*LatencyReport, error) {
	var next atomic.Int64
	lat := make([]time.Duration, cfg.manifestGets)
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	// One unmeasured GET per client first: the figures are for requests
	// on open keep-alive connections, not for TLS handshakes.
	var wg sync.WaitGroup
	for range cfg.clients {
		wg.Go(func() {
			if _, err := getManifest(ctx, c, cfg, cfg.images[0].repo, cfg.images[0].tag); err != nil {
				cancel(err)
			}
		})
	}
	wg.Wait()
	if err := context.Cause(ctx); err != nil {
		return nil, err
	}
	start := time.Now()
	for range cfg.clients {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= len(lat) || ctx.Err() != nil {
					return
				}
				im := cfg.images[i%len(cfg.images)]
				t0 := time.Now()
				if _, err := getManifest(ctx, c, cfg, im.repo, im.tag); err != nil {
					cancel(err)
					return
				}
				lat[i] = time.Since(t0)
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	if err := context.Cause(ctx); err != nil {
		return nil, err
	}
	slices.Sort(lat)
	pct := func(p float64) float64 {
		i := min(len(lat)-1, int(p*float64(len(lat))+0.5)-1)
		return float64(lat[max(i, 0)]) / 1e6
	}
	return &LatencyReport{Requests: len(lat), Seconds: elapsed.Seconds(), P50ms: pct(0.50), P90ms: pct(0.90),
		P99ms: pct(0.99), MaxMs: float64(lat[len(lat)-1]) / 1e6, PerSec: float64(len(lat)) / elapsed.Seconds()}, nil
}
