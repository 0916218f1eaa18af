package converge

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/ferry-k8s/ferry/internal/atomicfile"
)

// maxKubeconfig bounds the kubeconfigs read (a kubelet.conf is about 2 KiB).
const maxKubeconfig = 1 << 20

// observeKubeconfig reads a kubeconfig's clusters: the first one's server
// and TLS server name (by cluster name order), and whether the others
// differ from it.
func observeKubeconfig(p string) (KubeconfigState, error) {
	fi, err := os.Stat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return KubeconfigState{}, nil
	}
	if err != nil {
		return KubeconfigState{}, fmt.Errorf("observing %s: %w", p, err)
	}
	if fi.Size() > maxKubeconfig {
		return KubeconfigState{}, fmt.Errorf("observing %s: larger than %d bytes", p, maxKubeconfig)
	}
	cfg, err := clientcmd.LoadFromFile(p)
	if err != nil {
		return KubeconfigState{}, fmt.Errorf("observing kubeconfig %s: %w", p, err)
	}
	st := KubeconfigState{Exists: true}
	names := sortedKeys(cfg.Clusters)
	if len(names) == 0 {
		return KubeconfigState{}, fmt.Errorf("observing kubeconfig %s: it names no cluster", p)
	}
	for i, n := range names {
		c := cfg.Clusters[n]
		if i == 0 {
			st.Server, st.TLSServerName = c.Server, c.TLSServerName
		} else if c.Server != st.Server || c.TLSServerName != st.TLSServerName {
			st.Mixed = true
		}
	}
	return st, nil
}

// pointKubeconfig sets every cluster of the kubeconfig at p to server,
// verified as tlsServerName (the rest — credentials, CA — stays), and
// replaces the file atomically with its mode kept.
func pointKubeconfig(p, server, tlsServerName string) error {
	fi, err := os.Stat(p)
	if err != nil {
		return fmt.Errorf("pointing kubeconfig %s at %s: %w", p, server, err)
	}
	data, err := PointedKubeconfig(p, server, tlsServerName)
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(p, data, fi.Mode().Perm())
}

// PointedKubeconfig is the kubeconfig at p with every cluster naming
// server, verified as tlsServerName; credentials and CA as they are.
func PointedKubeconfig(p, server, tlsServerName string) ([]byte, error) {
	fi, err := os.Stat(p)
	if err != nil {
		return nil, fmt.Errorf("pointing kubeconfig %s at %s: %w", p, server, err)
	}
	if fi.Size() > maxKubeconfig {
		return nil, fmt.Errorf("pointing kubeconfig %s: larger than %d bytes", p, maxKubeconfig)
	}
	cfg, err := clientcmd.LoadFromFile(p)
	if err != nil {
		return nil, fmt.Errorf("pointing kubeconfig %s: %w", p, err)
	}
	if len(cfg.Clusters) == 0 {
		return nil, fmt.Errorf("pointing kubeconfig %s: it names no cluster", p)
	}
	for _, c := range cfg.Clusters {
		c.Server, c.TLSServerName = server, tlsServerName
	}
	data, err := clientcmd.Write(*cfg)
	if err != nil {
		return nil, fmt.Errorf("pointing kubeconfig %s: %w", p, err)
	}
	return data, nil
}

// KubeClient is a client with the kubeconfig's credentials and CA that
// reaches server (when set) and verifies its certificate for tlsServerName:
// how the node's programs reach the node-local API server proxy
// (layout.APIProxyServer) with kubeadm's and the kubelet's kubeconfigs.
func KubeClient(kubeconfig, server, tlsServerName string) (kubernetes.Interface, error) {
	overrides := &clientcmd.ConfigOverrides{}
	overrides.ClusterInfo.Server = server
	overrides.ClusterInfo.TLSServerName = tlsServerName
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(&clientcmd.ClientConfigLoadingRules{ExplicitPath: kubeconfig}, overrides).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("kubeconfig %s: %w", kubeconfig, err)
	}
	cfg.Timeout = 30 * time.Second
	return kubernetes.NewForConfig(cfg)
}
