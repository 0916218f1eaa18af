package layout

// Ferry's state on a node.
const (
	StateDir   = "/var/lib/ferry"
	BundlesDir = StateDir + "/bundles"
	// DownloadsDir holds bundles and validity statements being fetched.
	DownloadsDir = StateDir + "/downloads"
	// ModeFile records how the node came into the cluster: "bootstrap"
	// (kubeadm init) or "join"; apply continues the same way, and neither
	// command runs on a node the other made.
	ModeFile = StateDir + "/mode"
	// TargetFile names the bundle (its file in BundlesDir) the node runs
	// or is being brought to: set by bootstrap and join, and by the node
	// daemon when a roll-out asks for another version.
	TargetFile = StateDir + "/target"
	// IgnorePreflightFile keeps the kubeadm preflight checks the node's
	// bootstrap or join was told to ignore, for its later applies and
	// upgrades (the same machine, the same environment).
	IgnorePreflightFile = StateDir + "/kubeadm-ignore-preflight-errors"
	// EtcdStateFile is the etcd membership a joining control-plane node's
	// member started into (recorded when Ferry added the member), and
	// EtcdPromotedFile records its promotion from learner.
	EtcdStateFile    = StateDir + "/etcd-initial-cluster"
	EtcdPromotedFile = StateDir + "/etcd-promoted"
	// ApplyLock is held by one convergence at a time.
	ApplyLock = StateDir + "/apply.lock"
	// Journal records every operation of an apply.
	Journal = StateDir + "/journal.jsonl"
	// SnapshotsDir keeps the etcd snapshots taken before roll-outs (R46).
	SnapshotsDir = StateDir + "/snapshots"
	// HostProvidesName is the package that declares what a host not
	// managed by rpm provides; its RPM is made in StateDir.
	HostProvidesName = "ferry-host-provides"
	HostProvidesRPM  = StateDir + "/" + HostProvidesName + ".rpm"
)

// Ferry's configuration on a node.
const (
	ClusterConfig = "/etc/ferry/cluster.yaml"
	KeysDir       = "/etc/ferry/keys"
	KeyringFile   = KeysDir + "/ferry.pub.asc"
	ServeConfig   = "/etc/ferry/serve.yaml"
	SecretsDir    = "/etc/ferry/secrets"
	EncryptionKey = SecretsDir + "/encryption-at-rest.key"
	RepoFile      = "/etc/yum.repos.d/ferry.repo"
	// SELinuxConfig is the host's SELinux configuration file.
	SELinuxConfig = "/etc/selinux/config"
)

// The PKI: Ferry's realms, kubeadm's directory, and the leaves Ferry
// issues outside it.
const (
	PKIDir        = "/etc/ferry/pki"
	KubernetesPKI = "/etc/kubernetes/pki"
	ClusterCA     = KubernetesPKI + "/ca.crt"
	// ContentCert and ContentKey are the content service's.
	ContentCert = "/etc/ferry/tls/content.crt"
	ContentKey  = "/etc/ferry/tls/content.key"
	// KubeProxyCert and KubeProxyKey are kube-proxy's client pair.
	KubeProxyCert = "/etc/ferry/kube-proxy/client.crt"
	KubeProxyKey  = "/etc/ferry/kube-proxy/client.key"
)

// kubeadm's kubeconfigs.
const (
	AdminConf      = "/etc/kubernetes/admin.conf"
	SuperAdminConf = "/etc/kubernetes/super-admin.conf"
	KubeletConf    = "/etc/kubernetes/kubelet.conf"
)

// The node's network and its services.
const (
	// CNIConfig is the pod network's configuration (the bridge plugin).
	CNIConfig = "/etc/cni/net.d/10-ferry-bridge.conflist"
	// KubeProxyConfig, KubeProxyKubeconfig and KubeProxyUnitFile run
	// kube-proxy as a host service.
	KubeProxyConfig     = "/etc/ferry/kube-proxy.yaml"
	KubeProxyKubeconfig = "/etc/kubernetes/kube-proxy.conf"
	KubeProxyUnit       = "kube-proxy.service"
	KubeProxyUnitFile   = "/etc/systemd/system/" + KubeProxyUnit
	// PodRoutesUnit keeps the routes to the other nodes' pod ranges (R35:
	// plain routing, the nodes on one subnet).
	PodRoutesUnit     = "ferry-pod-routes.service"
	PodRoutesUnitFile = "/etc/systemd/system/" + PodRoutesUnit
	// APIProxyUnit, APIProxyConfig and APIProxyCA run the node-local API
	// server proxy (R32), which the node's clients reach at
	// APIProxyServer.
	APIProxyUnit   = "ferry-apiproxy.service"
	APIProxyConfig = "/etc/ferry/apiproxy.yaml"
	APIProxyCA     = "/etc/ferry/apiproxy-ca.crt"
	// ContentUnit and NodeUnit are Ferry's content service and node
	// daemon.
	ContentUnit = "ferry-content.service"
	NodeUnit    = "ferry-node.service"
)

// APIProxyListen is the node-local API server proxy's address (port
// cluster.APIProxyPort), and APIProxyServer its URL.
const (
	APIProxyListen = "127.0.0.1:6444"
	APIProxyServer = "https://" + APIProxyListen
)
