//go:build e2e

package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ferry-k8s/ferry/internal/testutil"

	"github.com/ferry-k8s/ferry/builder"
	"github.com/ferry-k8s/ferry/internal/example"
	"github.com/ferry-k8s/ferry/internal/testpki"
)

// serviceName is the name the nodes reach the content service by (an
// /etc/hosts entry: the nodes have no DNS).
const serviceName = "ferry.e2e.internal"

// TestAirGappedNodeInstallsFromTheContentService boots one node on a bridge
// with no route out, serves an example bundle from the host with
// `installer serve`, and checks from inside the node that: nothing beyond
// the bridge is reachable; the service's ferry.repo, with the test CA, lets
// dnf install ferry-hello with gpgcheck and repo_gpgcheck; ferry-hello
// runs; the static installer from the ISO verifies the ISO there.
func TestAirGappedNodeInstallsFromTheContentService(t *testing.T) {
	start := time.Now()
	phase := func(what string) { t.Logf("[%6.1fs] %s", time.Since(start).Seconds(), what) }
	Prerequisites(t)
	need(t, "xorriso")

	// The bundle is built while the node boots.
	var b *bundleFixture
	var bErr error
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); b, bErr = buildBundle(t.TempDir()) }()

	c := NewCluster(t, NodeSpec{Name: "node1"})
	node := c.Nodes[0]
	br := c.Bridge()
	phase(fmt.Sprintf("node %s booted at %s on %s (%s)", node.Name, node.IP, br.Name, br.HostIP))
	wg.Wait()
	if bErr != nil {
		t.Fatal(bErr)
	}
	phase("installer and example bundle built")

	// PKI: the server certificate for the service's name and the bridge address.
	ca, err := testpki.NewCA("Ferry e2e CA")
	if err != nil {
		t.Fatal(err)
	}
	pki := t.TempDir()
	caFile, _, err := ca.WriteFiles(pki, "ca", ca.CertPEM, nil)
	if err != nil {
		t.Fatal(err)
	}
	crt, key, err := ca.Issue("ferry content service", []string{serviceName}, []net.IP{br.HostIP}, false)
	if err != nil {
		t.Fatal(err)
	}
	srvCert, srvKey, err := ca.WriteFiles(pki, "server", crt, key)
	if err != nil {
		t.Fatal(err)
	}

	listen := net.JoinHostPort(br.HostIP.String(), "5443")
	startServe(t, b, listen, srvCert, srvKey, ca.Pool())
	phase("installer serve ready on " + listen)

	// The air gap is real: forwarding off on the bridge, and from inside
	// the node neither the Internet nor the Debian mirror answers.
	c.AssertNoForwarding(t)
	if out, err := node.Exec("ip", "route", "show", "default"); err != nil || !strings.Contains(out, "via "+br.HostIP.String()) {
		t.Errorf("node default route: %q %v (want via %s: the host must refuse to route, not the node lack a route)", out, err, br.HostIP)
	}
	unreachable := []string{"https://1.1.1.1/", "http://deb.debian.org/debian/"}
	// The mirror by address, resolved on the host (the node has no DNS):
	// this proves the node cannot use the host's way out even without names.
	if ips, err := net.DefaultResolver.LookupIP(context.Background(), "ip4", "deb.debian.org"); err == nil && len(ips) > 0 {
		u := "http://" + ips[0].String() + "/debian/"
		unreachable = append(unreachable, u)
		// Whether the host itself gets there (it built the rootfs from it):
		// if so, the node's failure below is the air gap, not a dead mirror.
		hc := &http.Client{Timeout: 5 * time.Second}
		if resp, err := hc.Get(u); err == nil {
			resp.Body.Close()
			t.Logf("the host reaches %s (%s)", u, resp.Status)
		} else {
			t.Logf("the host does not reach %s either: %v", u, err)
		}
	} else {
		t.Logf("the host cannot resolve deb.debian.org (%v): checking the node by name only", err)
	}
	var mu sync.Mutex
	var checks sync.WaitGroup
	for _, u := range unreachable {
		checks.Add(1)
		go func() {
			defer checks.Done()
			out, err := node.Exec("curl", "-sS", "-o", "/dev/null", "--connect-timeout", "5", "--max-time", "10", u)
			mu.Lock()
			defer mu.Unlock()
			if err == nil {
				t.Errorf("node reached %s: the air gap leaks\n%s", u, out)
			} else {
				t.Logf("node cannot reach %s, as intended: %s", u, strings.TrimSpace(out))
			}
		}()
	}
	checks.Wait()
	phase("air gap checked")

	// The node trusts the test CA and knows the service by name.
	const nodeCA = "/etc/pki/ferry/ca.crt"
	if err := node.CopyIn(caFile, nodeCA, 0o644); err != nil {
		t.Fatal(err)
	}
	node.MustExec(t, "/bin/sh", "-ec", fmt.Sprintf("echo '%s\t%s' >> /etc/hosts", br.HostIP, serviceName))
	base := "https://" + net.JoinHostPort(serviceName, "5443")
	// Without the CA, TLS is refused: the --cacert below is what makes it work.
	if out, err := node.Exec("curl", "-sS", "-o", "/dev/null", "--max-time", "10", base+"/healthz"); err == nil {
		t.Errorf("curl trusted the service without its CA:\n%s", out)
	}
	repoFile := node.MustExec(t, "curl", "-fsS", "--max-time", "30", "--cacert", nodeCA, base+"/repos/1.0.0/ferry.repo")
	for _, want := range []string{"[ferry-base]", "baseurl=" + base + "/repos/1.0.0/base/", "gpgcheck=1", "repo_gpgcheck=1", "gpgkey=" + base + "/keys/ferry.pub.asc"} {
		if !strings.Contains(repoFile, want) {
			t.Errorf("ferry.repo lacks %q:\n%s", want, repoFile)
		}
	}
	var withCA strings.Builder
	for line := range strings.SplitSeq(strings.TrimRight(repoFile, "\n"), "\n") {
		withCA.WriteString(line + "\n")
		if strings.HasPrefix(line, "[") {
			withCA.WriteString("sslcacert=" + nodeCA + "\nsslverify=1\n")
		}
	}
	if err := node.WriteFile("/etc/yum.repos.d/ferry.repo", []byte(withCA.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	phase("ferry.repo installed in the node")

	// dnf (Debian's 4.14) on the node: only Ferry's repository exists there.
	out, err := node.Exec("dnf", "-y", "--releasever=1", "--setopt=install_weak_deps=False", "install", "ferry-hello")
	if err != nil {
		t.Fatalf("dnf install ferry-hello in the node: %v\n%s", err, out)
	}
	phase("dnf installed ferry-hello")
	t.Logf("dnf in the node:\n%s", strings.TrimSpace(out))
	if got := node.MustExec(t, "ferry-hello"); got != "hello from an air-gapped bundle\n" {
		t.Errorf("ferry-hello printed %q", got)
	}
	q := node.MustExec(t, "rpm", "-q", "ferry-hello", "ferry-hello-data")
	if !strings.Contains(q, "ferry-hello-1.0.0-1.noarch") || !strings.Contains(q, "ferry-hello-data-1.0.0-1.noarch") {
		t.Errorf("rpm -q: %s", q)
	}
	// gpgcheck=1 made dnf import the bundle key into rpm's keyring, and
	// the installed packages carry a signature rpm checked with it.
	if keys, err := node.Exec("rpm", "-q", "gpg-pubkey"); err != nil || !strings.HasPrefix(keys, "gpg-pubkey-") {
		t.Errorf("rpm -q gpg-pubkey: %v %s (dnf did not import the bundle key)", err, keys)
	}
	if sig := node.MustExec(t, "rpm", "-q", "--qf", "%{SIGPGP:pgpsig}%{RSAHEADER:pgpsig}\n", "ferry-hello"); strings.Contains(sig, "(none)(none)") {
		t.Errorf("ferry-hello installed without a signature: %s", sig)
	}

	// The static installer from the ISO verifies the ISO inside the node.
	inst := filepath.Join(t.TempDir(), "installer")
	if out, err := exec.Command("xorriso", "-osirrox", "on", "-indev", b.iso, "-extract", "/installer", inst).CombinedOutput(); err != nil {
		t.Fatalf("xorriso -extract /installer: %v\n%s", err, out)
	}
	for src, dst := range map[string]string{inst: "/usr/local/bin/installer", b.iso: "/root/ferry-1.0.0.iso", b.ex.PublicKey: "/root/release.pub.asc"} {
		mode := os.FileMode(0o644)
		if src == inst {
			mode = 0o755
		}
		if err := node.CopyIn(src, dst, mode); err != nil {
			t.Fatal(err)
		}
	}
	out = node.MustExec(t, "installer", "verify", "--iso", "/root/ferry-1.0.0.iso", "--keyring", "/root/release.pub.asc")
	t.Logf("installer verify in the node:\n%s", strings.TrimSpace(out))
	phase("installer verify passed in the node")
}

// bundleFixture is the example bundle and the installer built for it.
type bundleFixture struct {
	installer string // bin/installer, static
	ex        *example.Example
	iso       string
}

// buildBundle builds the installer (static, like `make build`) and the
// example bundle ISO with it at /installer.
func buildBundle(dir string) (*bundleFixture, error) {
	f := &bundleFixture{installer: filepath.Join(dir, "bin", "installer"), iso: filepath.Join(dir, "ferry-1.0.0.iso")}
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = "/usr/local/go/bin/go"
	}
	build := exec.Command(goBin, "build", "-trimpath", "-tags", "containers_image_openpgp", "-o", f.installer, "github.com/ferry-k8s/ferry/installer/cmd/installer")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("go build installer: %v\n%s", err, out)
	}
	if f.ex, err = example.Write(filepath.Join(dir, "in"), example.Options{}); err != nil {
		return nil, err
	}
	if _, err := builder.Build(context.Background(), builder.Options{SpecPath: f.ex.Spec, Output: f.iso, Signer: f.ex.Signer,
		SourceDateEpoch: time.Now().Add(-time.Hour), InstallerBinary: f.installer}); err != nil {
		return nil, fmt.Errorf("building the example bundle: %w", err)
	}
	return f, nil
}

// listeningRE finds the address in the service's "listening" log line.
var listeningRE = regexp.MustCompile(`(?:msg=listening|"msg":"listening").*?addr"?[=:]"?([0-9.]+:[0-9]+)`)

// startServe runs `installer serve` for the bundle on listen (the bridge
// address only) and waits until /readyz answers 200 there. It is stopped
// (SIGTERM) when the test ends; its log is shown if the test failed.
func startServe(t *testing.T, b *bundleFixture, listen, cert, key string, roots *x509.CertPool) {
	t.Helper()
	args := []string{"--log-level", "debug", "serve", "--iso", b.iso, "--keyring", b.ex.PublicKey,
		"--listen", listen, "--tls-cert", cert, "--tls-key", key, "--pid-file", filepath.Join(t.TempDir(), "serve.pid")}
	log := &testutil.SyncBuffer{}
	cmd := exec.Command(b.installer, args...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("installer serve log:\n%s", log.String())
		}
	})
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: serviceName}}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	deadline := time.Now().Add(60 * time.Second)
	var last error
	for {
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("installer %s exited: %v\n%s", strings.Join(args, " "), err, log.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("installer serve not ready after 60 s (last error %v)", last)
		}
		if m := listeningRE.FindStringSubmatch(log.String()); m != nil {
			if m[1] != listen {
				t.Fatalf("the service listens on %s, not on the bridge address %s only", m[1], listen)
			}
			resp, err := client.Get("https://" + listen + "/readyz")
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					// By the kernel's sockets, not only the log: the
					// process listens on the bridge address and nowhere else.
					if socks, err := listeningSockets(cmd.Process.Pid); err != nil || len(socks) != 1 || socks[0] != listen {
						t.Fatalf("installer serve (pid %d) listens on %v (%v), want %s only", cmd.Process.Pid, socks, err, listen)
					}
					return
				}
				err = fmt.Errorf("/readyz: %s", resp.Status)
			}
			last = err
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// listeningSockets are the local addresses of the TCP sockets process pid
// listens on (ss, iproute2).
func listeningSockets(pid int) ([]string, error) {
	out, err := exec.Command("ss", "-H", "-l", "-t", "-n", "-p").CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("ss: %w: %s", err, out)
	}
	var socks []string
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) < 6 || !strings.Contains(line, fmt.Sprintf("pid=%d,", pid)) {
			continue
		}
		socks = append(socks, f[3])
	}
	return socks, nil
}
