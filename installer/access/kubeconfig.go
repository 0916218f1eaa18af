package access

import (
	"os"
	"path/filepath"

	"github.com/ferry-k8s/ferry/installer/converge"
	"github.com/ferry-k8s/ferry/installer/layout"
)

// proxiedKubeconfig writes a copy of the kubeconfig src whose clusters
// name the node-local API server proxy (for programs that take only a
// kubeconfig file, such as kubeadm token create) in a private directory
// under the node's /run, and returns its path and a function that removes
// it. The copy carries src's credentials: it is 0600 and short-lived.
func proxiedKubeconfig(root, src, serverName string) (string, func(), error) {
	data, err := converge.PointedKubeconfig(src, layout.APIProxyServer, serverName)
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
