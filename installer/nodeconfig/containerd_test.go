package nodeconfig

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/ferry-k8s/ferry/builder"
	"github.com/ferry-k8s/ferry/images/imagetest"
	"github.com/ferry-k8s/ferry/installer/content"
	"github.com/ferry-k8s/ferry/installer/pki"
	"github.com/ferry-k8s/ferry/internal/testutil"
	"github.com/ferry-k8s/ferry/signing"
)

// containerd 2.x reads the rendered config.toml as it is: `containerd
// config dump` shows it merged with the defaults, with no warning (an
// unknown key would be one) and the values Ferry set.
func TestContainerdConfigDump(t *testing.T) {
	c := load(t, exampleConfig)
	for _, tc := range []struct {
		node                         string
		systemd, restrictOOM, selinx bool
	}{
		{"cp1", true, false, true},
		{"lab1", false, true, false},
	} {
		t.Run(tc.node, func(t *testing.T) {
			f := exampleFacts(t, tc.node)
			files := render(t, c, tc.node, f)
			root := t.TempDir()
			writeRoot(t, root, files)
			cmd := exec.Command(containerd(t), "--config", filepath.Join(root, ContainerdConfigFile), "config", "dump")
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			if err := cmd.Run(); err != nil {
				t.Fatalf("containerd config dump: %v\n%s", err, stderr.String())
			}
			if strings.Contains(stderr.String(), "level=warning") || strings.Contains(stderr.String(), "level=error") {
				t.Errorf("containerd config dump warns:\n%s", stderr.String())
			}
			var dump map[string]any
			if _, err := toml.Decode(stdout.String(), &dump); err != nil {
				t.Fatalf("reading the dump: %v\n%s", err, stdout.String())
			}
			get := func(path ...string) any {
				var v any = dump
				for _, k := range path {
					m, _ := v.(map[string]any)
					v = m[k]
				}
				return v
			}
			images := []string{"plugins", "io.containerd.cri.v1.images"}
			rt := []string{"plugins", "io.containerd.cri.v1.runtime"}
			for _, check := range []struct {
				path []string
				want any
			}{
				{[]string{"version"}, int64(3)},
				{[]string{"grpc", "address"}, "/run/containerd/containerd.sock"},
				{append(images, "pinned_images", "sandbox"), f.PauseImage},
				{append(images, "registry", "config_path"), ContainerdHostsDir},
				{[]string{"plugins", "io.containerd.transfer.v1.local", "config_path"}, ContainerdHostsDir},
				{append(rt, "containerd", "runtimes", "runc", "options", "SystemdCgroup"), tc.systemd},
				{append(rt, "restrict_oom_score_adj"), tc.restrictOOM},
				{append(rt, "enable_selinux"), tc.selinx},
				{[]string{"plugins", "io.containerd.grpc.v1.cri", "stream_server_address"}, "127.0.0.1"},
			} {
				if got := get(check.path...); got != check.want {
					t.Errorf("%s = %v, want %v", strings.Join(check.path, "."), got, check.want)
				}
			}
		})
	}
}

// A node's containerd (2.x, with the rendered config.toml; its CRI plugin
// loads it) pulls the bundle's pause image through the rendered
// hosts.toml: from the content service only, over TLS checked against the
// content realm's CA (a DNS-only certificate, R29), with the upstream host
// as ns=. An image the service does not hold is not found, and nothing is
// asked of the upstream registry (R2: the air gap).
func TestContainerdPullsFromTheContentService(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("this test runs containerd, which needs root")
	}
	// A server certificate of the content realm for "localhost", for the
	// content services.
	realm, err := pki.NewRealm(pki.RealmContent, pki.Options{Organization: "nodeconfig-test"})
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := realm.IssueServer("localhost")
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, err := leaf.KeyPEM()
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.X509KeyPair(leaf.CertPEM(), keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	// The upstream registry: a TLS server that counts connections. It
	// must get none: the upstream is not reachable from an air-gapped node.
	// Not a real registry, on purpose: the property is "no connection at
	// all", and a connection containerd made would most likely fail its
	// TLS handshake (the upstream's CA is not the content realm's) before
	// any request a real registry could record; this listener counts TCP
	// connections, handshake or not.
	var upstreamConns atomic.Int64
	upstream := httptest.NewUnstartedServer(http.NotFoundHandler())
	upstream.Config.ErrorLog = log.New(io.Discard, "", 0)
	upstream.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			upstreamConns.Add(1)
		}
	}
	upstream.StartTLS()
	defer upstream.Close()
	_, upstreamPort, _ := net.SplitHostPort(upstream.Listener.Addr().String())
	repo := "localhost:" + upstreamPort + "/k8s"

	dir := t.TempDir()
	layout := filepath.Join(dir, "layout")
	pause := repo + "/pause:3.10.2"
	pauseDigest, err := imagetest.WriteImage(layout, "pause", 1, []int64{4096})
	if err != nil {
		t.Fatal(err)
	}
	cni := "quay.example.com/ferry/cni:1.0"
	if _, err := imagetest.WriteImage(layout, "cni", 2, []int64{2048}); err != nil {
		t.Fatal(err)
	}
	// The content service itself (installer/content), serving a signed
	// bundle built from the images; its handler is served here with the
	// content realm's certificate, behind a wrapper that records the
	// requests (the service logs no query strings, and ns= is one).
	iso, ring := contentBundle(t, dir, "oci:"+layout+":pause", pause, "oci:"+layout+":cni", cni)
	svc := content.New(content.Options{Keyring: ring})
	defer svc.Close()
	if _, err := svc.Add(context.Background(), iso); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var requests []*http.Request
	handler := svc.Handler()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		requests = append(requests, r.Clone(r.Context()))
		mu.Unlock()
		handler.ServeHTTP(w, r)
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	srv.StartTLS()
	defer srv.Close()
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	caFile := filepath.Join(dir, "content-ca.crt")
	if err := os.WriteFile(caFile, realm.CACertPEM(), 0o644); err != nil {
		t.Fatal(err)
	}

	// Two services before it: one that is down (a closed port) and one
	// that has not imported the images (a content service with no
	// bundle). containerd passes over both.
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, closedPort, _ := net.SplitHostPort(closed.Addr().String())
	closed.Close()
	emptySvc := content.New(content.Options{Keyring: ring})
	defer emptySvc.Close()
	emptyHandler := emptySvc.Handler()
	var emptyRequests atomic.Int64
	empty := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		emptyRequests.Add(1)
		emptyHandler.ServeHTTP(w, r)
	}))
	empty.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	empty.StartTLS()
	defer empty.Close()
	_, emptyPort, _ := net.SplitHostPort(empty.Listener.Addr().String())

	f := facts()
	f.ImageRepository, f.PauseImage = repo, pause
	f.ContentServices = []string{"localhost:" + closedPort, "localhost:" + emptyPort, "localhost:" + port}
	f.ContentCAFile = caFile
	f.Registries = []string{"quay.example.com"}
	files := render(t, load(t, singleConfig), "n1", f)
	root := filepath.Join(dir, "node")
	writeRoot(t, root, files)
	c := startContainerd(t, filepath.Join(root, ContainerdConfigFile))
	plugins := c.ctr(t, "plugins", "ls")
	for _, p := range []string{"images", "runtime"} {
		if !regexp.MustCompile(`(?m)^io\.containerd\.cri\.v1\s+` + p + `\s+\S+\s+ok\s*$`).MatchString(plugins) {
			t.Errorf("the CRI %s plugin did not load with the rendered configuration:\n%s", p, plugins)
		}
	}

	hosts := filepath.Join(root, ContainerdHostsDir)
	c.ctr(t, "image", "pull", "--hosts-dir", hosts, pause)
	if ls := c.ctr(t, "image", "ls"); !strings.Contains(ls, pause) || !strings.Contains(ls, pauseDigest.String()) {
		t.Errorf("ctr image ls does not show %s at %s:\n%s", pause, pauseDigest, ls)
	}
	c.ctr(t, "image", "pull", "--hosts-dir", hosts, cni)

	mu.Lock()
	n := len(requests)
	for _, r := range requests {
		ns := r.URL.Query().Get("ns")
		if r.URL.Path != "/v2/" && ns != "localhost:"+upstreamPort && ns != "quay.example.com" {
			t.Errorf("request %s %s without the upstream host as ns=", r.Method, r.URL)
		}
	}
	mu.Unlock()
	if n == 0 {
		t.Fatal("the content service saw no request")
	}
	if emptyRequests.Load() == 0 {
		t.Error("the service without the images, listed before, was not asked first")
	}

	if out, err := c.ctrErr(t, "image", "pull", "--hosts-dir", hosts, repo+"/absent:1.0"); err == nil {
		t.Fatalf("pulled an image the content service does not hold:\n%s", out)
	}
	if n := upstreamConns.Load(); n != 0 {
		t.Errorf("containerd connected to the upstream registry %d times", n)
	}
}

type containerdProc struct {
	ctrBin, sock string
}

// startContainerd runs containerd 2.x with config (the rendered file, and
// NRI off so that nothing is created under /var/run/nri) and its own
// root, state and socket; it stops it when the test ends. containerd 2.x
// always creates /run/containerd (its shims' socket directory is fixed):
// the test removes it again when it made it and it is empty.
func startContainerd(t *testing.T, config string) *containerdProc {
	t.Helper()
	bin, ctrBin := containerd(t), ctr(t)
	dir := t.TempDir()
	data, err := os.ReadFile(config)
	if err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "config.toml")
	data = append(data, "\n[plugins.\"io.containerd.nri.v1.nri\"]\n  disable = true\n"...)
	if err := os.WriteFile(cfg, data, 0o644); err != nil {
		t.Fatal(err)
	}
	// A unix socket path is limited to 108 bytes: keep it short.
	sockDir, err := os.MkdirTemp("", "ctd")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sockDir) })
	hadRun := exists("/run/containerd")
	c := &containerdProc{ctrBin: ctrBin, sock: filepath.Join(sockDir, "c.sock")}
	t.Cleanup(func() { // runs after the process is gone (cleanups run last-registered first)
		if !hadRun {
			_ = os.Remove("/run/containerd") // only when empty
		}
	})
	exited := testutil.StartProcess(t, "containerd", nil, bin, "--config", cfg, "--root", filepath.Join(dir, "root"), "--state", filepath.Join(dir, "state"),
		"--address", c.sock, "--log-level", "info")
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case <-exited:
			t.Fatal("containerd exited (its log follows)")
		default:
		}
		if _, err := c.ctrErr(t, "version"); err == nil {
			return c
		}
		if time.Now().After(deadline) {
			t.Fatal("containerd did not start in 30 s (its log follows)")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (c *containerdProc) ctrErr(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(c.ctrBin, append([]string{"--address", c.sock, "--namespace", "nodeconfig-test"}, args...)...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (c *containerdProc) ctr(t *testing.T, args ...string) string {
	t.Helper()
	out, err := c.ctrErr(t, args...)
	if err != nil {
		t.Fatalf("ctr %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// contentBundle builds a signed bundle ISO carrying images (pairs of an
// oci: source and the name it is served as) with a key of its own, and
// returns the ISO and the keyring that verifies it.
func contentBundle(t *testing.T, dir string, images ...string) (string, *signing.Keyring) {
	t.Helper()
	// Built an hour ago (not "in the future" for a skewed check), valid a
	// year.
	epoch := time.Now().Add(-time.Hour).Truncate(time.Second)
	sec, pub, err := signing.GenerateKey(signing.KeyOptions{Name: "Nodeconfig Test", Email: "nodeconfig@example.com", Created: epoch})
	if err != nil {
		t.Fatal(err)
	}
	signer, err := signing.LoadSigner(bytes.NewReader(sec), nil)
	if err != nil {
		t.Fatal(err)
	}
	ring, err := signing.ReadKeyring(bytes.NewReader(pub))
	if err != nil {
		t.Fatal(err)
	}
	spec := "apiVersion: ferry.dev/v1alpha1\nkind: Bundle\nmetadata:\n  name: nodeconfig-test\n  version: 1.0.0\nspec:\n  expiresAfter: 365d\n  images:\n"
	for i := 0; i+1 < len(images); i += 2 {
		spec += fmt.Sprintf("    - source: %q\n      name: %q\n", images[i], images[i+1])
	}
	specPath := filepath.Join(dir, "bundle.yaml")
	if err := os.WriteFile(specPath, []byte(spec), 0o644); err != nil {
		t.Fatal(err)
	}
	iso := filepath.Join(dir, "bundle.iso")
	if _, err := builder.Build(context.Background(), builder.Options{SpecPath: specPath, Output: iso, Signer: signer, SourceDateEpoch: epoch}); err != nil {
		t.Fatalf("building the bundle: %v", err)
	}
	return iso, ring
}
