package rollout

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/ferry-k8s/ferry/installer/pki"
	"github.com/ferry-k8s/ferry/internal/testutil"
)

// testCluster is a real control plane started by the test: etcd and
// kube-apiserver (built from source like the bundle's), both on 127.0.0.1
// at free ports, TLS everywhere with certificates of Ferry's realms
// (installer/pki), and kwok simulating the nodes' kubelets.
type testCluster struct {
	dir      string
	config   *rest.Config // the administrator (system:masters)
	client   kubernetes.Interface
	etcdURL  string
	etcdTLS  *tls.Config
	kwokDone <-chan struct{}
}

func startCluster(t testing.TB) *testCluster {
	t.Helper()
	etcdBin, apiBin, kwokBin := etcd(t), kubeAPIServer(t), kwok(t)
	dir := t.TempDir()
	tc := &testCluster{dir: dir}
	realm := func(name string) *pki.Realm {
		r, err := pki.NewRealm(name, pki.Options{Organization: "ferry-test"})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	k8s, etcdRealm := realm(pki.RealmKubernetes), realm(pki.RealmEtcd)
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	// leaf writes name.crt and name.key of an issued leaf.
	leaf := func(name string) func(*pki.Leaf, error) (string, string) {
		return func(l *pki.Leaf, err error) (string, string) {
			if err != nil {
				t.Fatal(err)
			}
			key, err := l.KeyPEM()
			if err != nil {
				t.Fatal(err)
			}
			return write(name+".crt", l.CertPEM()), write(name+".key", key)
		}
	}
	k8sCA, etcdCA := write("ca.crt", k8s.CACertPEM()), write("etcd-ca.crt", etcdRealm.CACertPEM())
	etcdServer, etcdServerKey := leaf("etcd-server")(etcdRealm.IssuePeer("localhost", "localhost")) // etcd dials itself with it too
	etcdPeer, etcdPeerKey := leaf("etcd-peer")(etcdRealm.IssuePeer("test", "localhost"))
	etcdClient, etcdClientKey := leaf("etcd-client")(etcdRealm.IssueClient("kube-apiserver-etcd-client"))
	apiServer, apiServerKey := leaf("apiserver")(k8s.IssueServer("localhost"))
	admin, adminKey := leaf("admin")(k8s.IssueClient("ferry-test-admin", "system:masters"))
	sa, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKCS8PrivateKey(sa)
	saKey := write("sa.key", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	pub, _ := x509.MarshalPKIXPublicKey(&sa.PublicKey)
	saPub := write("sa.pub", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}))

	ports := freePorts(t, 3)
	tc.etcdURL = "https://localhost:" + ports[0]
	// --unsafe-no-fsync: the data directory is thrown away with the test.
	etcdDone := start(t, "etcd", etcdBin, "--name=test", "--data-dir="+filepath.Join(dir, "etcd"),
		"--listen-client-urls=https://127.0.0.1:"+ports[0], "--advertise-client-urls="+tc.etcdURL,
		"--listen-peer-urls=https://127.0.0.1:"+ports[1], "--initial-advertise-peer-urls=https://localhost:"+ports[1],
		"--initial-cluster=test=https://localhost:"+ports[1],
		"--cert-file="+etcdServer, "--key-file="+etcdServerKey, "--trusted-ca-file="+etcdCA, "--client-cert-auth",
		"--peer-cert-file="+etcdPeer, "--peer-key-file="+etcdPeerKey, "--peer-trusted-ca-file="+etcdCA, "--peer-client-cert-auth",
		"--unsafe-no-fsync", "--log-level=warn")
	apiDone := start(t, "kube-apiserver", apiBin,
		"--etcd-servers="+tc.etcdURL, "--etcd-cafile="+etcdCA, "--etcd-certfile="+etcdClient, "--etcd-keyfile="+etcdClientKey,
		"--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", "--secure-port="+ports[2],
		"--tls-cert-file="+apiServer, "--tls-private-key-file="+apiServerKey, "--client-ca-file="+k8sCA,
		"--service-account-key-file="+saPub, "--service-account-signing-key-file="+saKey,
		"--service-account-issuer=https://kubernetes.default.svc", "--service-cluster-ip-range=10.96.0.0/16",
		"--authorization-mode=RBAC", "--anonymous-auth=false", "--profiling=false",
		// No controller-manager runs, hence no service account controller:
		// Pods are created without service accounts.
		"--disable-admission-plugins=ServiceAccount",
		"--max-requests-inflight=2000", "--max-mutating-requests-inflight=1000",
		"--cert-dir="+filepath.Join(dir, "apiserver-certs"))

	tc.config = &rest.Config{
		Host:            "https://127.0.0.1:" + ports[2],
		TLSClientConfig: rest.TLSClientConfig{ServerName: "localhost", CAFile: k8sCA, CertFile: admin, KeyFile: adminKey},
		QPS:             -1, // no client-side throttling: the figures are the orchestrator's
		ContentConfig:   rest.ContentConfig{ContentType: "application/vnd.kubernetes.protobuf"},
	}
	tc.client = kubernetes.NewForConfigOrDie(tc.config)
	deadline := time.Now().Add(2 * time.Minute)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := tc.client.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
		cancel()
		if err == nil {
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
			t.Fatalf("the API server is not ready after 2 minutes: %v", err)
		}
		time.Sleep(300 * time.Millisecond)
	}
	cert, err := tls.LoadX509KeyPair(etcdClient, etcdClientKey)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(etcdRealm.CACertPEM())
	tc.etcdTLS = &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}, ServerName: "localhost", MinVersion: tls.VersionTLS12}

	kubeconfig := write("kubeconfig", fmt.Appendf(nil, `apiVersion: v1
kind: Config
clusters: [{name: test, cluster: {server: %q, certificate-authority: %q, tls-server-name: localhost}}]
users: [{name: admin, user: {client-certificate: %q, client-key: %q}}]
contexts: [{name: test, context: {cluster: test, user: admin}}]
current-context: test
`, tc.config.Host, k8sCA, admin, adminKey))
	home := filepath.Join(dir, "kwok-home")
	if err := os.MkdirAll(home, 0o700); err != nil {
		t.Fatal(err)
	}
	tc.kwokDone = startEnv(t, "kwok", []string{"HOME=" + home}, kwokBin, "--kubeconfig="+kubeconfig, "--config="+strings.Join(kwokStages(t), ","),
		"--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake", "--node-lease-duration-seconds=40")
	return tc
}

// countingClient is a client whose requests are counted: the
// orchestrator's, for the figures.
func (tc *testCluster) countingClient(n *atomic.Int64) kubernetes.Interface {
	cfg := rest.CopyConfig(tc.config)
	cfg.WrapTransport = func(rt http.RoundTripper) http.RoundTripper {
		return roundTripper(func(req *http.Request) (*http.Response, error) {
			n.Add(1)
			return rt.RoundTrip(req)
		})
	}
	return kubernetes.NewForConfigOrDie(cfg)
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// addNodes creates kwok nodes n-000… (the first cps are control-plane
// nodes), at bundle version 1.0.0 and kubelet testOldKubelet, and waits
// until kwok has made every one Ready.
func (tc *testCluster) addNodes(t testing.TB, prefix string, count, cps int) []string {
	t.Helper()
	ctx := context.Background()
	var names []string
	for i := range count {
		name := fmt.Sprintf("%s-%03d", prefix, i)
		n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name,
			Annotations: map[string]string{"kwok.x-k8s.io/node": "fake", AnnotationVersion: "1.0.0", AnnotationDesiredVersion: "1.0.0"},
			Labels:      map[string]string{"kubernetes.io/hostname": name, "type": "kwok"}},
			Status: corev1.NodeStatus{NodeInfo: corev1.NodeSystemInfo{KubeletVersion: testOldKubelet}}}
		if i < cps {
			n.Labels[LabelControlPlane] = ""
		}
		if _, err := tc.client.CoreV1().Nodes().Create(ctx, n, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		names = append(names, name)
	}
	deadline := time.Now().Add(3 * time.Minute)
	for {
		list, err := tc.client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		ready := 0
		for i := range list.Items {
			if strings.HasPrefix(list.Items[i].Name, prefix+"-") && Observe(&list.Items[i]).Ready {
				ready++
			}
		}
		if ready == count {
			return names
		}
		select {
		case <-tc.kwokDone:
			t.Fatal("kwok exited")
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d kwok nodes Ready after 3 minutes", ready, count)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func freePorts(t testing.TB, n int) []string { return testutil.FreePorts(t, n) }

func start(t testing.TB, name, bin string, args ...string) <-chan struct{} {
	return testutil.StartProcess(t, name, nil, bin, args...)
}

func startEnv(t testing.TB, name string, env []string, bin string, args ...string) <-chan struct{} {
	return testutil.StartProcess(t, name, env, bin, args...)
}

// kwokStages are the stage configurations kwok's release ships (its
// kustomize/stage directory, in the module built): nodes become Ready and
// keep a lease, Pods run and go when deleted.
func kwokStages(t testing.TB) []string {
	t.Helper()
	cmd := exec.Command("go", "mod", "download", "-json", kwokComponent.Module+"@"+kwokComponent.Version)
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOWORK=off", "GOTOOLCHAIN=local")
	cmd.Dir = os.TempDir()
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("locating the kwok module: %v\n%s", err, out)
	}
	var info struct{ Dir string }
	if err := json.Unmarshal(out, &info); err != nil || info.Dir == "" {
		t.Fatalf("locating the kwok module: %v %s", err, out)
	}
	var files []string
	for _, f := range []string{"node/fast/node-initialize.yaml", "node/heartbeat-with-lease/node-heartbeat-with-lease.yaml",
		"pod/general/pod-create.yaml", "pod/general/pod-init-container-running.yaml", "pod/general/pod-init-container-completed.yaml",
		"pod/general/pod-ready.yaml", "pod/general/pod-complete.yaml", "pod/general/pod-delete.yaml"} {
		p := filepath.Join(info.Dir, "kustomize", "stage", f)
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("kwok's stages: %v", err)
		}
		files = append(files, p)
	}
	return files
}
