package access

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/client-go/tools/clientcmd"

	"github.com/ferry-k8s/ferry/installer/cluster/clustertest"
	"github.com/ferry-k8s/ferry/installer/layout"
	"github.com/ferry-k8s/ferry/installer/nodeconfig"
)

// singleNode is one server (control plane and worker).
const singleNode = clustertest.SingleNode

// TestProxiedKubeconfig: a private copy naming the proxy, credentials kept,
// removed by its cleanup.
func TestProxiedKubeconfig(t *testing.T) {
	root := t.TempDir()
	src := filepath.Join(root, "admin.conf")
	kc := nodeconfig.Kubeconfig("lab", "api.lab.example:6443", "", []byte("ca"), "kubernetes-admin", "admin", nodeconfig.KubeconfigCreds{CertPEM: []byte("cert"), KeyPEM: []byte("key")})
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
	if cl.Server != layout.APIProxyServer || cl.TLSServerName != "api.lab.example" || string(cl.CertificateAuthorityData) != "ca" ||
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
