package desired

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/ferry-k8s/ferry/installer/apiproxy"
	"github.com/ferry-k8s/ferry/installer/cluster"
	"github.com/ferry-k8s/ferry/installer/cluster/clustertest"
	"github.com/ferry-k8s/ferry/installer/layout"
)

func parseHA(t *testing.T) *cluster.Cluster {
	t.Helper()
	c, err := cluster.Parse([]byte(clustertest.HA))
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
	files, unit, err := apiProxy(Input{Cluster: c, Version: "1.2.3"}, []byte("-----BEGIN CERTIFICATE-----\n"))
	if err != nil {
		t.Fatal(err)
	}
	if unit.Name != layout.APIProxyUnit || !unit.Start || !unit.NoBlock {
		t.Errorf("unit %+v: want started without waiting for readiness", unit)
	}
	root := t.TempDir()
	for _, f := range files {
		p := filepath.Join(root, f.Path)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, f.Content, f.Mode); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(f.Restarts, []string{layout.APIProxyUnit}) {
			t.Errorf("%s restarts %v", f.Path, f.Restarts)
		}
	}
	cfg, err := apiproxy.LoadConfig(filepath.Join(root, layout.APIProxyConfig))
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"cp1.lab.example:6443", "cp2.lab.example:6443", "cp3.lab.example:6443"}; !reflect.DeepEqual(cfg.Backends, want) {
		t.Errorf("backends %v, want %v", cfg.Backends, want)
	}
	if cfg.HealthCheck.ServerName != "api.lab.example" || cfg.HealthCheck.CAFile != layout.APIProxyCA || cfg.Listen != "127.0.0.1:6444" {
		t.Errorf("health check %+v, listen %s", cfg.HealthCheck, cfg.Listen)
	}
	if "https://"+cfg.Listen != layout.APIProxyServer {
		t.Errorf("listens on %s, clients dial %s", cfg.Listen, layout.APIProxyServer)
	}
}
