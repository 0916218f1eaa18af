package testcluster

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/ferry-k8s/ferry/builder/distro/distrotest"
	"github.com/ferry-k8s/ferry/installer/pki"
	"github.com/ferry-k8s/ferry/internal/testutil"
)

// Options shape the control plane.
type Options struct {
	// Authorization is kube-apiserver's --authorization-mode; default
	// "RBAC" ("Node,RBAC" for tests that act as nodes).
	Authorization string
	// APIServerArgs are further kube-apiserver flags.
	APIServerArgs []string
	// QPS of the administrator's client; 0: no client-side throttling.
	QPS float32
	// AuthenticationConfig, when set, is the API server's
	// AuthenticationConfiguration (--authentication-config), e.g. the one
	// installer/nodeconfig renders; its anonymous section then decides
	// anonymous access. Unset: --anonymous-auth=false.
	AuthenticationConfig []byte
}

// Cluster is a running control plane; it stops when the test ends.
type Cluster struct {
	Dir string
	// Config and Client are the administrator's (system:masters).
	Config *rest.Config
	Client kubernetes.Interface
	// Kubeconfig is the administrator's kubeconfig file.
	Kubeconfig string
	// Kubernetes is the cluster's realm (it issued the API server's
	// certificate and verifies clients); CAFile is its CA certificate.
	Kubernetes *pki.Realm
	CAFile     string
	// EtcdURL and EtcdTLS reach etcd as the API server does.
	EtcdURL string
	EtcdTLS *tls.Config
	// APIServerDone is closed when kube-apiserver exits.
	APIServerDone <-chan struct{}
}

// KubeAPIServer, Etcd and Etcdutl are the programs the control plane runs:
// $FERRY_KUBE_APISERVER, $FERRY_ETCD, $FERRY_ETCDUTL, or the builder's own
// builds of the default distribution.
func KubeAPIServer(t testing.TB) string {
	return distrotest.Tool(t, "FERRY_KUBE_APISERVER", "kubernetes", "kube-apiserver")
}
func Etcd(t testing.TB) string    { return distrotest.Tool(t, "FERRY_ETCD", "etcd", "etcd") }
func Etcdutl(t testing.TB) string { return distrotest.Tool(t, "FERRY_ETCDUTL", "etcd", "etcdutl") }

// Start starts etcd and kube-apiserver and waits until the API server is
// ready.
func Start(t testing.TB, o Options) *Cluster {
	t.Helper()
	etcdBin, apiBin := Etcd(t), KubeAPIServer(t)
	if o.Authorization == "" {
		o.Authorization = "RBAC"
	}
	dir := t.TempDir()
	tc := &Cluster{Dir: dir}
	realm := func(name string) *pki.Realm {
		r, err := pki.NewRealm(name, pki.Options{Organization: "ferry-test"})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	k8s, etcdRealm := realm(pki.RealmKubernetes), realm(pki.RealmEtcd)
	tc.Kubernetes = k8s
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
	tc.CAFile = k8sCA
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

	ports := testutil.FreePorts(t, 3)
	tc.EtcdURL = "https://localhost:" + ports[0]
	// --unsafe-no-fsync: the data directory is thrown away with the test.
	etcdDone := testutil.StartProcess(t, "etcd", nil, etcdBin, "--name=test", "--data-dir="+filepath.Join(dir, "etcd"),
		"--listen-client-urls=https://127.0.0.1:"+ports[0], "--advertise-client-urls="+tc.EtcdURL,
		"--listen-peer-urls=https://127.0.0.1:"+ports[1], "--initial-advertise-peer-urls=https://localhost:"+ports[1],
		"--initial-cluster=test=https://localhost:"+ports[1],
		"--cert-file="+etcdServer, "--key-file="+etcdServerKey, "--trusted-ca-file="+etcdCA, "--client-cert-auth",
		"--peer-cert-file="+etcdPeer, "--peer-key-file="+etcdPeerKey, "--peer-trusted-ca-file="+etcdCA, "--peer-client-cert-auth",
		"--unsafe-no-fsync", "--log-level=warn")
	args := append([]string{
		"--etcd-servers=" + tc.EtcdURL, "--etcd-cafile=" + etcdCA, "--etcd-certfile=" + etcdClient, "--etcd-keyfile=" + etcdClientKey,
		"--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", "--secure-port=" + ports[2],
		"--tls-cert-file=" + apiServer, "--tls-private-key-file=" + apiServerKey, "--client-ca-file=" + k8sCA,
		"--service-account-key-file=" + saPub, "--service-account-signing-key-file=" + saKey,
		"--service-account-issuer=https://kubernetes.default.svc", "--service-cluster-ip-range=10.96.0.0/16",
		"--authorization-mode=" + o.Authorization, "--profiling=false",
		// No controller-manager runs, hence no service account controller:
		// Pods are created without service accounts.
		"--disable-admission-plugins=ServiceAccount",
		"--cert-dir=" + filepath.Join(dir, "apiserver-certs"),
	}, o.APIServerArgs...)
	if o.AuthenticationConfig != nil {
		// The flag and the file's anonymous section exclude each other.
		args = append(args, "--authentication-config="+write("authentication-config.yaml", o.AuthenticationConfig))
	} else {
		args = append(args, "--anonymous-auth=false")
	}
	apiDone := testutil.StartProcess(t, "kube-apiserver", nil, apiBin, args...)
	tc.APIServerDone = apiDone

	qps := o.QPS
	if qps == 0 {
		qps = -1
	}
	tc.Config = &rest.Config{
		Host:            "https://127.0.0.1:" + ports[2],
		TLSClientConfig: rest.TLSClientConfig{ServerName: "localhost", CAFile: k8sCA, CertFile: admin, KeyFile: adminKey},
		QPS:             qps,
		ContentConfig:   rest.ContentConfig{ContentType: "application/vnd.kubernetes.protobuf"},
	}
	tc.Client = kubernetes.NewForConfigOrDie(tc.Config)
	deadline := time.Now().Add(2 * time.Minute)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := tc.Client.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
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
	tc.EtcdTLS = &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}, ServerName: "localhost", MinVersion: tls.VersionTLS12}

	tc.Kubeconfig = write("kubeconfig", fmt.Appendf(nil, `apiVersion: v1
kind: Config
clusters: [{name: test, cluster: {server: %q, certificate-authority: %q, tls-server-name: localhost}}]
users: [{name: admin, user: {client-certificate: %q, client-key: %q}}]
contexts: [{name: test, context: {cluster: test, user: admin}}]
current-context: test
`, tc.Config.Host, k8sCA, admin, adminKey))
	return tc
}

// ClientAs is a client of user (in groups) with a client certificate the
// cluster's realm issues: a node ("system:node:n1", "system:nodes"), a
// component.
func (c *Cluster) ClientAs(t testing.TB, user string, groups ...string) kubernetes.Interface {
	t.Helper()
	l, err := c.Kubernetes.IssueClient(user, groups...)
	if err != nil {
		t.Fatal(err)
	}
	key, err := l.KeyPEM()
	if err != nil {
		t.Fatal(err)
	}
	cfg := rest.CopyConfig(c.Config)
	cfg.TLSClientConfig.CertFile, cfg.TLSClientConfig.KeyFile = "", ""
	cfg.TLSClientConfig.CertData, cfg.TLSClientConfig.KeyData = l.CertPEM(), key
	return kubernetes.NewForConfigOrDie(cfg)
}
