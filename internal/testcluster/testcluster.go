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

	"github.com/ferry-k8s/ferry/internal/testpki"
	"github.com/ferry-k8s/ferry/internal/testutil"
)

// Options shape the control plane.
type Options struct {
	// KubeAPIServer and Etcd are the programs it runs (required): the
	// distribution's own builds, distrotest.KubeAPIServer and
	// distrotest.Etcd.
	KubeAPIServer, Etcd string
	// CA is the cluster's CA: it issues the API server's certificate and
	// the clients', and the API server trusts the clients it issued. Nil:
	// a new one (testpki.NewCA). A test of code that signs with Ferry's
	// kubernetes realm passes that realm's intermediate, so that the
	// API server accepts what the code signs.
	CA *testpki.CA
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
	// CA is the cluster's CA (Options.CA or a new one): it issued the API
	// server's certificate and verifies clients; CAFile holds its
	// CertPEM.
	CA     *testpki.CA
	CAFile string
	// EtcdURL and EtcdTLS reach etcd as the API server does.
	EtcdURL string
	EtcdTLS *tls.Config
	// APIServerDone is closed when kube-apiserver exits.
	APIServerDone <-chan struct{}
}

// Start starts etcd and kube-apiserver and waits until the API server is
// ready.
func Start(t testing.TB, o Options) *Cluster {
	t.Helper()
	if o.KubeAPIServer == "" || o.Etcd == "" {
		t.Fatal("testcluster: Options.KubeAPIServer and Options.Etcd name the programs to run (distrotest.KubeAPIServer, distrotest.Etcd)")
	}
	if o.Authorization == "" {
		o.Authorization = "RBAC"
	}
	dir := t.TempDir()
	tc := &Cluster{Dir: dir, CA: o.CA}
	if tc.CA == nil {
		tc.CA = newCA(t, "ferry-test kubernetes CA")
	}
	// etcd has a CA of its own, as on a Ferry node (its realm).
	etcdCA := newCA(t, "ferry-test etcd CA")
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	// leaf writes name.crt and name.key of a leaf ca issues.
	leaf := func(ca *testpki.CA, name string, l testpki.Leaf) (string, string) {
		cert, key, err := ca.IssueLeaf(l)
		if err != nil {
			t.Fatalf("issuing %s: %v", name, err)
		}
		return write(name+".crt", cert), write(name+".key", key)
	}
	k8sCAFile, etcdCAFile := write("ca.crt", tc.CA.CertPEM), write("etcd-ca.crt", etcdCA.CertPEM)
	tc.CAFile = k8sCAFile
	// etcd dials itself with its server certificate too: a peer's.
	etcdServer, etcdServerKey := leaf(etcdCA, "etcd-server", testpki.Leaf{CommonName: "localhost", DNSNames: []string{"localhost"}, Server: true, Client: true})
	etcdPeer, etcdPeerKey := leaf(etcdCA, "etcd-peer", testpki.Leaf{CommonName: "test", DNSNames: []string{"localhost"}, Server: true, Client: true})
	etcdClient, etcdClientKey := leaf(etcdCA, "etcd-client", testpki.Leaf{CommonName: "kube-apiserver-etcd-client", Client: true})
	apiServer, apiServerKey := leaf(tc.CA, "apiserver", testpki.Leaf{CommonName: "localhost", DNSNames: []string{"localhost"}, Server: true})
	admin, adminKey := leaf(tc.CA, "admin", testpki.Leaf{CommonName: "ferry-test-admin", Organizations: []string{"system:masters"}, Client: true})
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
	etcdDone := testutil.StartProcess(t, "etcd", nil, o.Etcd, "--name=test", "--data-dir="+filepath.Join(dir, "etcd"),
		"--listen-client-urls=https://127.0.0.1:"+ports[0], "--advertise-client-urls="+tc.EtcdURL,
		"--listen-peer-urls=https://127.0.0.1:"+ports[1], "--initial-advertise-peer-urls=https://localhost:"+ports[1],
		"--initial-cluster=test=https://localhost:"+ports[1],
		"--cert-file="+etcdServer, "--key-file="+etcdServerKey, "--trusted-ca-file="+etcdCAFile, "--client-cert-auth",
		"--peer-cert-file="+etcdPeer, "--peer-key-file="+etcdPeerKey, "--peer-trusted-ca-file="+etcdCAFile, "--peer-client-cert-auth",
		"--unsafe-no-fsync", "--log-level=warn")
	args := append([]string{
		"--etcd-servers=" + tc.EtcdURL, "--etcd-cafile=" + etcdCAFile, "--etcd-certfile=" + etcdClient, "--etcd-keyfile=" + etcdClientKey,
		"--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", "--secure-port=" + ports[2],
		"--tls-cert-file=" + apiServer, "--tls-private-key-file=" + apiServerKey, "--client-ca-file=" + k8sCAFile,
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
	apiDone := testutil.StartProcess(t, "kube-apiserver", nil, o.KubeAPIServer, args...)
	tc.APIServerDone = apiDone

	qps := o.QPS
	if qps == 0 {
		qps = -1
	}
	tc.Config = &rest.Config{
		Host:            "https://127.0.0.1:" + ports[2],
		TLSClientConfig: rest.TLSClientConfig{ServerName: "localhost", CAFile: k8sCAFile, CertFile: admin, KeyFile: adminKey},
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
	tc.EtcdTLS = &tls.Config{RootCAs: etcdCA.Pool(), Certificates: []tls.Certificate{cert}, ServerName: "localhost", MinVersion: tls.VersionTLS12}

	tc.Kubeconfig = write("kubeconfig", fmt.Appendf(nil, `apiVersion: v1
kind: Config
clusters: [{name: test, cluster: {server: %q, certificate-authority: %q, tls-server-name: localhost}}]
users: [{name: admin, user: {client-certificate: %q, client-key: %q}}]
contexts: [{name: test, context: {cluster: test, user: admin}}]
current-context: test
`, tc.Config.Host, k8sCAFile, admin, adminKey))
	return tc
}

// ClientAs is a client of user (in groups) with a client certificate the
// cluster's CA issues: a node ("system:node:n1", "system:nodes"), a
// component.
func (c *Cluster) ClientAs(t testing.TB, user string, groups ...string) kubernetes.Interface {
	t.Helper()
	cert, key, err := c.CA.IssueClient(user, groups...)
	if err != nil {
		t.Fatal(err)
	}
	cfg := rest.CopyConfig(c.Config)
	cfg.TLSClientConfig.CertFile, cfg.TLSClientConfig.KeyFile = "", ""
	cfg.TLSClientConfig.CertData, cfg.TLSClientConfig.KeyData = cert, key
	return kubernetes.NewForConfigOrDie(cfg)
}

func newCA(t testing.TB, name string) *testpki.CA {
	t.Helper()
	ca, err := testpki.NewCA(name)
	if err != nil {
		t.Fatal(err)
	}
	return ca
}
