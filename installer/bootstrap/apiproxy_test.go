package bootstrap

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"k8s.io/client-go/tools/clientcmd"

	"github.com/ferry-k8s/ferry/installer/apiproxy"
	"github.com/ferry-k8s/ferry/installer/cluster"
)

const haCluster = `apiVersion: ferry.dev/v1alpha1
kind: Cluster
metadata: {name: lab}
spec:
  controlPlaneEndpoint: api.lab.example:6443
  nodes:
    - {name: cp1, hostname: cp1.lab.example, roles: [control-plane]}
    - {name: w1, hostname: w1.lab.example, roles: [worker]}
    - {name: cp2, hostname: cp2.lab.example, roles: [control-plane]}
    - {name: w2, hostname: w2.lab.example, roles: [worker]}
    - {name: cp3, hostname: cp3.lab.example, roles: [control-plane]}
    - {name: w3, hostname: w3.lab.example, roles: [worker]}
    - {name: w4, hostname: w4.lab.example, roles: [worker]}
`

func parseHA(t *testing.T) *cluster.Cluster {
	t.Helper()
	c, err := cluster.Parse([]byte(haCluster))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	return c.Defaulted()
}

// TestAPIProxyFiles: the configuration the proxy loads names every
// control plane's API server and checks them for the endpoint's name with
// the cluster's CA written beside it.
func TestAPIProxyFiles(t *testing.T) {
	c := parseHA(t)
	files, unit, err := apiProxyFiles(c, []byte("-----BEGIN CERTIFICATE-----\n"))
	if err != nil {
		t.Fatal(err)
	}
	if unit.Name != APIProxyUnit || !unit.Start || !unit.NoBlock {
		t.Errorf("unit %+v: want started without waiting for readiness", unit)
	}
	root := t.TempDir()
	for _, f := range files {
		p := filepath.Join(root, f.Path)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, f.Content, f.Mode); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(f.Restarts, []string{APIProxyUnit}) {
			t.Errorf("%s restarts %v", f.Path, f.Restarts)
		}
	}
	cfg, err := apiproxy.LoadConfig(filepath.Join(root, APIProxyConfig))
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"cp1.lab.example:6443", "cp2.lab.example:6443", "cp3.lab.example:6443"}; !reflect.DeepEqual(cfg.Backends, want) {
		t.Errorf("backends %v, want %v", cfg.Backends, want)
	}
	if cfg.HealthCheck.ServerName != "api.lab.example" || cfg.HealthCheck.CAFile != APIProxyCA || cfg.Listen != "127.0.0.1:6444" {
		t.Errorf("health check %+v, listen %s", cfg.HealthCheck, cfg.Listen)
	}
	if "https://"+cfg.Listen != APIProxyServer {
		t.Errorf("listens on %s, clients dial %s", cfg.Listen, APIProxyServer)
	}
}

// TestNodeContentServices: a control plane asks its own service first; the
// workers start at different services, in turn; every list holds each
// service once.
func TestNodeContentServices(t *testing.T) {
	c := parseHA(t)
	want := map[string]string{
		"cp1": "cp1 cp2 cp3",
		"cp2": "cp2 cp1 cp3",
		"cp3": "cp3 cp1 cp2",
		"w1":  "cp1 cp2 cp3",
		"w2":  "cp2 cp3 cp1",
		"w3":  "cp3 cp1 cp2",
		"w4":  "cp1 cp2 cp3",
	}
	for name, w := range want {
		var got []string
		for _, s := range nodeContentServices(c, c.Node(name)) {
			got = append(got, strings.TrimSuffix(s, ".lab.example:5443"))
		}
		if strings.Join(got, " ") != w {
			t.Errorf("%s asks %v, want %s", name, got, w)
		}
	}
}

// TestProxiedKubeconfig: a private copy naming the proxy, credentials kept,
// removed by its cleanup.
func TestProxiedKubeconfig(t *testing.T) {
	root := t.TempDir()
	src := filepath.Join(root, "admin.conf")
	kc := kubeconfig("lab", "api.lab.example:6443", "", []byte("ca"), "kubernetes-admin", "admin", kubeconfigCreds{CertPEM: []byte("cert"), KeyPEM: []byte("key")})
	if err := os.WriteFile(src, []byte(kc), 0o600); err != nil {
		t.Fatal(err)
	}
	p, cleanup, err := proxiedKubeconfig(root, src, "api.lab.example")
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(p)
	if err != nil || fi.Mode().Perm() != 0o600 || !strings.HasPrefix(p, filepath.Join(root, "run/ferry")+"/") {
		t.Fatalf("copy %s: %v %v", p, fi, err)
	}
	cfg, err := clientcmd.LoadFromFile(p)
	if err != nil {
		t.Fatal(err)
	}
	cl := cfg.Clusters["lab"]
	if cl.Server != APIProxyServer || cl.TLSServerName != "api.lab.example" || string(cl.CertificateAuthorityData) != "ca" ||
		string(cfg.AuthInfos["kubernetes-admin"].ClientKeyData) != "key" {
		t.Errorf("copy: %+v %+v", cl, cfg.AuthInfos["kubernetes-admin"])
	}
	cleanup()
	if _, err := os.Stat(p); !os.IsNotExist(err) {
		t.Errorf("copy left after cleanup: %v", err)
	}
	if _, _, err := proxiedKubeconfig(root, filepath.Join(root, "none.conf"), "x"); err == nil || !strings.Contains(err.Error(), "none.conf") {
		t.Errorf("missing kubeconfig: %v", err)
	}
}

// TestCNIMTU: the bridge carries the host interface's MTU (R34), and the
// configuration is valid JSON with or without it.
func TestCNIMTU(t *testing.T) {
	c := parseHA(t)
	for _, tc := range []struct {
		mtu, want int
	}{{9000, 9000}, {1450, 1450}, {0, 0}, {100, 0}} {
		files := cniFiles(c, c.Node("w1"), tc.mtu)
		if len(files) == 0 {
			t.Fatal("no CNI configuration")
		}
		var conf struct {
			Plugins []struct {
				Type string `json:"type"`
				MTU  int    `json:"mtu"`
			} `json:"plugins"`
		}
		if err := json.Unmarshal(files[0].Content, &conf); err != nil {
			t.Fatalf("mtu %d: %v\n%s", tc.mtu, err, files[0].Content)
		}
		if conf.Plugins[0].Type != "bridge" || conf.Plugins[0].MTU != tc.want {
			t.Errorf("host MTU %d: bridge %+v, want mtu %d", tc.mtu, conf.Plugins[0], tc.want)
		}
	}
}
