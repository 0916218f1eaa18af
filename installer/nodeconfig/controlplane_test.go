package nodeconfig

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ferry-k8s/ferry/installer/cluster"
	"github.com/ferry-k8s/ferry/installer/pki"
	"github.com/ferry-k8s/ferry/internal/testutil"
)

// The control plane of the single-node cluster runs with exactly the
// commands kubeadm writes from the rendered configuration and patches
// (taken from `kubeadm init --dry-run`): etcd and kube-apiserver, built
// from source like the bundle's, with DNS-only certificates of Ferry's
// realms (installer/pki, R29). Then:
//   - the API server reaches etcd by name (https://localhost) and serves
//     on the node's control-plane address only (R31);
//   - anonymous requests get the health endpoints and nothing else (R27);
//   - a Secret is stored in etcd encrypted with secretbox and the
//     install-time key (R9), and read back in clear through the API.
//
// The test adapts what a node has and a test machine has not: files live
// under temporary directories, the ports are free ones instead of 2379,
// 2380, 2381 and 6443, and the processes run as the test's user instead
// of the static Pods' (TestKubeadmInitDryRun checks those).
func TestControlPlaneWithRenderedConfig(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("kubeadm init --dry-run needs root")
	}
	// The single-node cluster as it is, and with the example's OIDC
	// authenticator, aesgcm and ConfigMaps encrypted too.
	withOIDC := load(t, singleConfig)
	example := load(t, exampleConfig)
	withOIDC.Spec.Authentication = example.Spec.Authentication
	withOIDC.Spec.EncryptionAtRest = cluster.EncryptionAtRest{Resources: []string{"*.", "secrets"}, Provider: cluster.ProviderAESGCM}
	withOIDC.Dir = example.Dir
	for _, tc := range []struct {
		name     string
		c        *cluster.Cluster
		provider string
	}{
		{"single", load(t, singleConfig), "secretbox"},
		{"oidc-aesgcm", withOIDC, "aesgcm"},
	} {
		t.Run(tc.name, func(t *testing.T) { runControlPlane(t, tc.c, tc.provider) })
	}
}

func runControlPlane(t *testing.T, c *cluster.Cluster, provider string) {
	hostIP := nodeAddress(t)
	f := facts()
	f.NodeIPs = map[string]string{PlaneControlPlane: hostIP, PlaneEtcd: hostIP, PlaneWorkload: hostIP}
	f.EncryptionKey = make(SecretKey, EncryptionKeySize)
	if _, err := rand.Read(f.EncryptionKey); err != nil {
		t.Fatal(err)
	}
	f.OIDCCA = oidcCA(t)
	files := render(t, c, "n1", f)
	root := nodeRoot(t, files)
	dry := t.TempDir()
	if out, err := runKubeadm(t, dry, "init", "--config", filepath.Join(root, InitConfigFile), "--dry-run", "--ignore-preflight-errors=all"); err != nil {
		t.Fatalf("kubeadm init --dry-run: %v\n%s", err, out)
	}
	var etcdPod, apiPod pod
	readYAML(t, filepath.Join(dry, "etcd.yaml"), &etcdPod)
	readYAML(t, filepath.Join(dry, "kube-apiserver.yaml"), &apiPod)

	dir := t.TempDir()
	pkiDir := filepath.Join(dir, "pki")
	tlsFiles := writeControlPlanePKI(t, pkiDir)
	ports := freePorts(t, 4)
	rewrite := strings.NewReplacer(
		CertificatesDir, pkiDir,
		EtcdDataDir, filepath.Join(dir, "etcd"),
		EncryptionConfigFile, filepath.Join(root, EncryptionConfigFile),
		AuthenticationConfigFile, filepath.Join(root, AuthenticationConfigFile),
		":2379", ":"+ports[0], ":2380", ":"+ports[1], ":2381", ":"+ports[2],
		"--secure-port=6443", "--secure-port="+ports[3],
	)
	command := func(p *pod, bin string) []string {
		c := p.Spec.Containers[0]
		args := []string{bin}
		for _, a := range append(c.Command[1:], c.Args...) {
			args = append(args, rewrite.Replace(a))
		}
		return args
	}
	etcdDone := start(t, "etcd", command(&etcdPod, etcd(t)))
	apiDone := start(t, "kube-apiserver", command(&apiPod, kubeAPIServer(t)))

	api := "https://" + net.JoinHostPort(hostIP, ports[3])
	anonymous := tlsClient(t, tlsFiles.kubernetesCA, nil)
	deadline := time.Now().Add(90 * time.Second)
	for {
		code, _, err := get(anonymous, api+"/readyz")
		if err == nil && code == http.StatusOK {
			break
		}
		select {
		case <-etcdDone:
			t.Fatal("etcd exited")
		case <-apiDone:
			t.Fatal("kube-apiserver exited")
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("the API server is not ready after 90 s: %d %v", code, err)
		}
		time.Sleep(500 * time.Millisecond)
	}
	for path, want := range map[string]int{"/livez": 200, "/healthz": 200, "/readyz": 200, "/api": 401, "/version": 401, "/api/v1/namespaces/default/secrets": 401} {
		if code, body, err := get(anonymous, api+path); err != nil || code != want {
			t.Errorf("anonymous GET %s: %d %v, want %d\n%s", path, code, err, want, body)
		}
	}
	// R31: the API server does not answer on the loopback.
	if c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", ports[3]), 2*time.Second); err == nil {
		c.Close()
		t.Error("the API server listens on 127.0.0.1 (its bind address is the control-plane address)")
	}

	admin := tlsClient(t, tlsFiles.kubernetesCA, tlsFiles.admin)
	const secret = "ferry-plaintext-canary"
	body := fmt.Sprintf(`{"apiVersion":"v1","kind":"Secret","metadata":{"name":"ferry-test"},"stringData":{"canary":%q}}`, secret)
	resp, err := admin.Post(api+"/api/v1/namespaces/default/secrets", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	out, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("creating a Secret: %s\n%s", resp.Status, out)
	}
	if code, got, err := get(admin, api+"/api/v1/namespaces/default/secrets/ferry-test"); err != nil || code != 200 || !strings.Contains(got, "ZmVycnktcGxhaW50ZXh0LWNhbmFyeQ==") {
		t.Errorf("reading the Secret back: %d %v\n%s", code, err, got)
	}

	// In etcd (asked by name, with a client certificate of the etcd realm)
	// the Secret is secretbox ciphertext under Ferry's key name.
	raw, err := exec.Command(etcdctl(t), "--endpoints=https://localhost:"+ports[0],
		"--cacert="+filepath.Join(pkiDir, "etcd/ca.crt"),
		"--cert="+filepath.Join(pkiDir, "etcd/healthcheck-client.crt"), "--key="+filepath.Join(pkiDir, "etcd/healthcheck-client.key"),
		"get", "/registry/secrets/default/ferry-test", "--print-value-only").CombinedOutput()
	if err != nil {
		t.Fatalf("etcdctl get: %v\n%s", err, raw)
	}
	sum := sha256.Sum256(f.EncryptionKey)
	prefix := fmt.Sprintf("k8s:enc:%s:v1:ferry-%x:", provider, sum[:4])
	if !bytes.HasPrefix(raw, []byte(prefix)) || bytes.Contains(raw, []byte(secret)) {
		t.Errorf("the Secret in etcd is not %s ciphertext under %q: %q", provider, prefix, raw[:min(len(raw), 80)])
	}
}

// nodeAddress is a non-loopback IPv4 address of this machine: the test
// node's address on every plane.
func nodeAddress(t *testing.T) string {
	t.Helper()
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && !n.IP.IsLoopback() && !n.IP.IsLinkLocalUnicast() {
			return n.IP.String()
		}
	}
	t.Fatal("this machine has no non-loopback IPv4 address to run the control plane on")
	return ""
}

func freePorts(t *testing.T, n int) []string { return testutil.FreePorts(t, n) }

// start runs a control-plane program (args[0]) until the test ends.
func start(t *testing.T, name string, args []string) <-chan struct{} {
	t.Helper()
	return testutil.StartProcess(t, name, nil, args[0], args[1:]...)
}

func get(c *http.Client, url string) (int, string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, string(b), nil
}

// tlsClient verifies the API server by its DNS name (R29) against ca.
func tlsClient(t *testing.T, ca []byte, cert *tls.Certificate) *http.Client {
	t.Helper()
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca) {
		t.Fatal("no CA certificate")
	}
	cfg := &tls.Config{RootCAs: pool, ServerName: "api.lab.example.com", MinVersion: tls.VersionTLS12}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}}
}

type controlPlaneTLS struct {
	kubernetesCA []byte
	admin        *tls.Certificate
}

// writeControlPlanePKI writes the certificates and keys kubeadm's commands
// name, issued by Ferry's realms with DNS names only (R29): the etcd
// server's carry the node's hostname and localhost, the API server's the
// endpoint's name.
func writeControlPlanePKI(t *testing.T, dir string) controlPlaneTLS {
	t.Helper()
	realm := func(name string) *pki.Realm {
		r, err := pki.NewRealm(name, pki.Options{Organization: "lab"})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	k8s, etcdRealm, fp := realm(pki.RealmKubernetes), realm(pki.RealmEtcd), realm(pki.RealmFrontProxy)
	write := func(name string, data []byte, mode os.FileMode) {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, mode); err != nil {
			t.Fatal(err)
		}
	}
	leaf := func(name string) func(*pki.Leaf, error) {
		return func(l *pki.Leaf, err error) {
			if err != nil {
				t.Fatal(err)
			}
			key, err := l.KeyPEM()
			if err != nil {
				t.Fatal(err)
			}
			write(name+".crt", l.CertPEM(), 0o644)
			write(name+".key", key, 0o600)
		}
	}
	write("ca.crt", k8s.CACertPEM(), 0o644)
	write("etcd/ca.crt", etcdRealm.CACertPEM(), 0o644)
	write("front-proxy-ca.crt", fp.CACertPEM(), 0o644)
	leaf("apiserver")(k8s.IssueServer("api.lab.example.com", "n1.lab.example.com"))
	leaf("apiserver-kubelet-client")(k8s.IssueClient("kube-apiserver-kubelet-client", "kubeadm:cluster-admins"))
	leaf("front-proxy-client")(fp.IssueClient("front-proxy-client"))
	leaf("apiserver-etcd-client")(etcdRealm.IssueClient("kube-apiserver-etcd-client"))
	leaf("etcd/server")(etcdRealm.IssueServer("n1.lab.example.com", "localhost"))
	leaf("etcd/peer")(etcdRealm.IssuePeer("n1", "n1.lab.example.com"))
	leaf("etcd/healthcheck-client")(etcdRealm.IssueClient("kube-etcd-healthcheck-client"))
	sa, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKCS8PrivateKey(sa)
	write("sa.key", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600)
	pub, _ := x509.MarshalPKIXPublicKey(&sa.PublicKey)
	write("sa.pub", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}), 0o644)

	// The admin: a client of the kubernetes realm in system:masters (a test
	// user; Ferry's static users never are, see installer/cluster).
	admin, err := k8s.IssueClient("ferry-test-admin", "system:masters")
	if err != nil {
		t.Fatal(err)
	}
	key, _ := admin.KeyPEM()
	cert, err := tls.X509KeyPair(admin.CertPEM(), key)
	if err != nil {
		t.Fatal(err)
	}
	return controlPlaneTLS{kubernetesCA: k8s.CACertPEM(), admin: &cert}
}

// A control-plane node that joins starts its etcd member into the
// membership Ferry recorded (state existing); the first node's starts a
// cluster of one. A membership without this member is refused.
func TestEtcdInitialCluster(t *testing.T) {
	c := load(t, exampleConfig)
	etcdPatch := func(f Facts) string {
		return string(render(t, c, "cp2", f)[PatchesDir+"/etcd+strategic.yaml"].Content)
	}
	f := exampleFacts(t, "cp2")
	first := etcdPatch(f)
	if !strings.Contains(first, "--initial-cluster=cp2=https://cp2.prod.example.com:2380") || strings.Contains(first, "initial-cluster-state") {
		t.Errorf("first member's etcd patch:\n%s", first)
	}
	f.EtcdInitialCluster = "cp1=https://cp1.prod.example.com:2380,cp2=https://cp2.prod.example.com:2380"
	joined := etcdPatch(f)
	if !strings.Contains(joined, "--initial-cluster="+f.EtcdInitialCluster) || !strings.Contains(joined, "--initial-cluster-state=existing") {
		t.Errorf("joining member's etcd patch:\n%s", joined)
	}
	for _, bad := range []string{"cp1=https://cp1.prod.example.com:2380", "cp2=http://cp2.prod.example.com:2380", "cp2 = https://x"} {
		f.EtcdInitialCluster = bad
		if _, err := Render(c, "cp2", f); err == nil || !strings.Contains(err.Error(), "facts.EtcdInitialCluster") {
			t.Errorf("initial cluster %q: %v", bad, err)
		}
	}
}
