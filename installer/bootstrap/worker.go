package bootstrap

import (
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	"github.com/ferry-k8s/ferry/installer/cluster"
	"github.com/ferry-k8s/ferry/installer/converge"
	"github.com/ferry-k8s/ferry/installer/joinfile"
	"github.com/ferry-k8s/ferry/installer/nodeconfig"
	"github.com/ferry-k8s/ferry/installer/pki"
)

// PodRoutesUnit keeps the routes to the other nodes' pod ranges (R35:
// plain routing, the nodes on one subnet).
const (
	PodRoutesUnit     = "ferry-pod-routes.service"
	PodRoutesUnitFile = "/etc/systemd/system/" + PodRoutesUnit
)

// desiredWorker is a worker node as the bundle and cluster.yaml want it:
// the distribution's packages from the control planes' content services,
// containerd mirroring their registry, its own certificates (from its
// join file, kept afterwards), and kubeadm join.
func desiredWorker(c *cluster.Cluster, n *cluster.Node, f *BundleFacts, nf *nodeFacts, o Options, imported string) (converge.Desired, error) {
	keyring, err := publicKeyring(o.Keyring)
	if err != nil {
		return converge.Desired{}, err
	}
	pauseImage, ok := f.Image("pause")
	if !ok {
		return converge.Desired{}, fmt.Errorf("bundle %s %s lacks the pause image", f.Name, f.Version)
	}
	services := nodeContentServices(c, n)
	if len(services) == 0 {
		return converge.Desired{}, errors.New("cluster.yaml has no control-plane node")
	}
	contentCA := filepath.Join(PKIDir, pki.RealmContent, pki.CACertFile)
	files, err := nodeconfig.Render(c, n.Name, nodeconfig.Facts{
		KubernetesVersion: f.KubernetesVersion,
		ImageRepository:   f.ImageRepository,
		PauseImage:        pauseImage,
		ContentServices:   services,
		ContentCAFile:     contentCA,
		NodeIPs:           nf.ips,
		CgroupVersion:     nf.cgroupVersion,
		HasSystemd:        nf.systemd,
		Version:           versionString(),
	})
	if err != nil {
		return converge.Desired{}, err
	}
	d, err := nodeBase(n, f, nf, o, files)
	if err != nil {
		return converge.Desired{}, err
	}
	// The node's own certificates: from the join file when joining, as
	// they are on the node afterwards.
	own := map[string]joinfile.Entry{}
	if o.join != nil {
		for _, e := range o.join.Files {
			own[e.Path] = e
		}
	}
	var pkiOut []converge.File
	for _, p := range []string{nodeconfig.KubeletServingCert, nodeconfig.KubeletServingKey, kubeProxyCert, kubeProxyKey} {
		e, ok := own[p]
		if !ok {
			data, err := os.ReadFile(filepath.Join(o.Root, p))
			if errors.Is(err, fs.ErrNotExist) {
				return converge.Desired{}, fmt.Errorf("node %s has no %s: join it with a join file (installer token create --node %s on a control-plane node, then installer join)", n.Name, p, n.Name)
			}
			if err != nil {
				return converge.Desired{}, err
			}
			e = joinfile.Entry{Path: p, Mode: 0o644, Content: data}
			if strings.HasSuffix(p, ".key") {
				e.Mode = 0o600
			}
		}
		pkiOut = append(pkiOut, converge.File{Path: e.Path, Mode: e.Mode, Content: e.Content, Secret: strings.HasSuffix(p, ".key")})
	}
	d.Files = append(d.Files, pkiOut...)
	// The content realm's CA (the content services' certificates) and
	// the cluster's CA (kube-proxy's kubeconfig): from the join file, then
	// from the node.
	var contentPEM, clusterCA []byte
	if o.join != nil {
		contentPEM = []byte(o.join.ContentCA)
		if clusterCA, err = discoveryCA(o.join.Discovery); err != nil {
			return converge.Desired{}, fmt.Errorf("join file: discovery: %w", err)
		}
	} else {
		if contentPEM, err = os.ReadFile(filepath.Join(o.Root, contentCA)); err != nil {
			return converge.Desired{}, err
		}
		if clusterCA, err = os.ReadFile(filepath.Join(o.Root, KubernetesPKI, "ca.crt")); err != nil {
			return converge.Desired{}, err
		}
	}
	d.Dirs = append(d.Dirs,
		converge.Dir{Path: BundlesDir, Mode: 0o755},
		converge.Dir{Path: "/etc/ferry/keys", Mode: 0o755},
	)
	baseurls := repoURLs(c, n, f)
	d.Files = append(d.Files,
		converge.File{Path: contentCA, Mode: 0o644, Content: contentPEM},
		converge.File{Path: ClusterConfig, Mode: 0o644, Content: mustRead(o.Config)},
		converge.File{Path: KeyringFile, Mode: 0o644, Content: keyring},
		// dnf tries the control planes' content services in turn.
		converge.File{Path: RepoFile, Mode: 0o644, Content: nodeconfig.WithHeader(versionString(), []byte(fmt.Sprintf(
			"[%s]\nname=Ferry %s %s (%s)\nbaseurl=%s\nenabled=1\ngpgcheck=1\nrepo_gpgcheck=1\ngpgkey=file://%s\nsslverify=1\nsslcacert=%s\n",
			repoID(f), f.Name, f.Version, f.Repo, strings.Join(baseurls, "\n        "), KeyringFile, contentCA)))},
	)
	// kube-proxy's kubeconfig carries the cluster's CA; kubeadm join
	// writes ca.crt itself (its preflight wants none there before).
	caFile := converge.File{Path: filepath.Join(KubernetesPKI, "ca.crt"), Content: clusterCA}
	if err := networkFiles(&d, c, n, nf, append(pkiOut, caFile)); err != nil {
		return converge.Desired{}, err
	}
	d.Units = append(d.Units, []converge.Unit{
		{Name: "containerd.service", Start: true},
		{Name: "kubelet.service"},
		{Name: "kube-proxy.service", Start: true},
		{Name: "ferry-node.service", Start: true},
	}...)
	d.Join = &converge.KubeadmJoin{Config: nodeconfig.JoinConfigFile, Discovery: nodeconfig.DiscoveryFile, IgnorePreflightErrors: o.IgnorePreflightErrors}
	// The kubelet (and the node daemon, with its credentials) reach the
	// API through the node-local proxy (R32), not the endpoint kubeadm
	// join wrote: a worker keeps its API while any control plane runs.
	d.Kubeconfigs = []converge.Kubeconfig{{Path: "/etc/kubernetes/kubelet.conf", Server: APIProxyServer, TLSServerName: apiServerName(c), Restarts: []string{"kubelet.service"}}}
	d.KubernetesVersion = f.KubernetesVersion
	d.Upgrade = &converge.KubeadmUpgrade{Config: nodeconfig.UpgradeConfigFile, IgnorePreflightErrors: o.IgnorePreflightErrors}
	if o.join != nil {
		d.Join.DiscoveryContent = []byte(o.join.Discovery)
	}
	return d, nil
}

// discoveryCA is the certificate-authority-data of a discovery kubeconfig.
func discoveryCA(kubeconfig string) ([]byte, error) {
	for _, line := range strings.Split(kubeconfig, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "certificate-authority-data: "); ok {
			return base64.StdEncoding.DecodeString(v)
		}
	}
	return nil, errors.New("no certificate-authority-data")
}

// routeFiles are the unit that routes the other nodes' pod ranges to
// them (none on a cluster of one node).
func routeFiles(c *cluster.Cluster, n *cluster.Node, nf *nodeFacts) ([]converge.File, error) {
	var lines []string
	for i := range c.Spec.Nodes {
		peer := &c.Spec.Nodes[i]
		if peer.Name == n.Name {
			continue
		}
		pfx, err := podCIDR(c, peer)
		if err != nil {
			return nil, err
		}
		var via netip.Addr
		for _, a := range nf.peers[peer.Name] {
			if a.Is4() {
				via = a
				break
			}
		}
		if !via.IsValid() {
			return nil, fmt.Errorf("node %s: no IPv4 address for node %s (%s): its pods would be unreachable", n.Name, peer.Name, peer.Hostname)
		}
		lines = append(lines, fmt.Sprintf("ExecStart=ip route replace %s via %s", pfx, via))
	}
	if len(lines) == 0 {
		return nil, nil
	}
	unit := `[Unit]
Description=Ferry pod network: routes to the other nodes' pod ranges
After=network-online.target
Wants=network-online.target
Before=kubelet.service

[Service]
Type=oneshot
RemainAfterExit=yes
` + strings.Join(lines, "\n") + `

[Install]
WantedBy=multi-user.target
`
	return []converge.File{{Path: PodRoutesUnitFile, Mode: 0o644, Content: nodeconfig.WithHeader(versionString(), []byte(unit)), Restarts: []string{PodRoutesUnit}}}, nil
}
