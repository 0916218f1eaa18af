package bootstrap

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/ferry-k8s/ferry/bundle"
	"github.com/ferry-k8s/ferry/installer/apiproxy"
	"github.com/ferry-k8s/ferry/installer/cluster"
	"github.com/ferry-k8s/ferry/installer/converge"
	"github.com/ferry-k8s/ferry/installer/nodeconfig"
)

// apiProxyFiles run the node-local API server proxy (R32) on every node:
// a TCP proxy on 127.0.0.1:6444 to every control plane's API server,
// health-checked over HTTPS with the cluster's CA for the endpoint's
// name. The kubelet of a worker, kube-proxy, and Ferry's own API clients
// go through it, so a node keeps its API while any API server runs, with
// no load balancer and no virtual IP. The unit starts without waiting
// for readiness: on the first control plane no API server runs before
// kubeadm init, later in the same plan.
func apiProxyFiles(c *cluster.Cluster, clusterCA []byte) ([]converge.File, converge.Unit, error) {
	var b strings.Builder
	fmt.Fprintf(&b, "apiVersion: %s\nkind: %s\nlisten: %s\nbackends:\n", bundle.APIVersion, apiproxy.KindAPIServerProxy, strings.TrimPrefix(APIProxyServer, "https://"))
	for _, n := range c.Spec.Nodes {
		if n.HasRole(cluster.RoleControlPlane) {
			fmt.Fprintf(&b, "  - %s\n", net.JoinHostPort(n.Hostname, strconv.Itoa(APIServerPort)))
		}
	}
	// Two failed checks, 5 s apart, make an API server unhealthy and move
	// its clients: well within the kubelet's 40 s lease grace.
	fmt.Fprintf(&b, "healthCheck:\n  caFile: %s\n  serverName: %s\n  unhealthyThreshold: 2\n", APIProxyCA, apiServerName(c))
	// What the proxy would refuse at its start is refused here, before
	// anything is written.
	cfg, err := apiproxy.ParseConfig([]byte(b.String()))
	if err == nil {
		err = cfg.Validate()
	}
	if err != nil {
		return nil, converge.Unit{}, fmt.Errorf("the API server proxy's configuration: %w", err)
	}
	v := versionString()
	return []converge.File{
		{Path: APIProxyCA, Mode: 0o644, Content: clusterCA, Restarts: []string{APIProxyUnit}},
		{Path: APIProxyConfig, Mode: 0o644, Content: nodeconfig.WithHeader(v, []byte(b.String())), Restarts: []string{APIProxyUnit}},
	}, converge.Unit{Name: APIProxyUnit, Start: true, NoBlock: true}, nil
}

// apiServerName is the name the API servers' certificates carry for every
// client: the control-plane endpoint's host.
func apiServerName(c *cluster.Cluster) string {
	host, _, err := net.SplitHostPort(c.Spec.ControlPlaneEndpoint)
	if err != nil {
		return c.Spec.ControlPlaneEndpoint
	}
	return host
}

// proxiedKubeconfig writes a copy of the kubeconfig src whose clusters
// name the node-local API server proxy (for programs that take only a
// kubeconfig file, such as kubeadm token create) in a private directory
// under the node's /run, and returns its path and a function that removes
// it. The copy carries src's credentials: it is 0600 and short-lived.
func proxiedKubeconfig(root, src, serverName string) (string, func(), error) {
	data, err := converge.PointedKubeconfig(src, APIProxyServer, serverName)
	if err != nil {
		return "", nil, err
	}
	base := filepath.Join(root, "/run/ferry")
	if err := os.MkdirAll(base, 0o755); err != nil {
		return "", nil, err
	}
	dir, err := os.MkdirTemp(base, "kubeconfig-")
	if err != nil {
		return "", nil, err
	}
	cleanup := func() { os.RemoveAll(dir) }
	p := filepath.Join(dir, filepath.Base(src))
	if err := os.WriteFile(p, data, 0o600); err != nil {
		cleanup()
		return "", nil, err
	}
	return p, cleanup, nil
}
