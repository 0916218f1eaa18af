package nodeconfig

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"slices"
	"strings"

	"github.com/ferry-k8s/ferry/installer/cluster"
)

// Paths on the node. The kubeadm files live under /etc/ferry/kubeadm, the
// files read by the components where they expect them.
const (
	// KubeadmDir holds the kubeadm configurations and patches.
	KubeadmDir = "/etc/ferry/kubeadm"
	// InitConfigFile is `kubeadm init --config` of a control-plane node:
	// InitConfiguration, ClusterConfiguration, KubeletConfiguration and
	// KubeProxyConfiguration.
	InitConfigFile = KubeadmDir + "/kubeadm.yaml"
	// JoinConfigFile is `kubeadm join --config` (every node).
	JoinConfigFile = KubeadmDir + "/join.yaml"
	// UpgradeConfigFile is `kubeadm upgrade apply|node --config` (every node).
	UpgradeConfigFile = KubeadmDir + "/upgrade.yaml"
	// PatchesDir holds the node's kubeadm patches (--patches); Render
	// returns every file that belongs in it.
	PatchesDir = KubeadmDir + "/patches"
	// DiscoveryFile is the kubeconfig `kubeadm join` discovers the cluster
	// from: the cluster's CA, the API endpoint and a bootstrap token. It is
	// written at join time (the token is short-lived), not rendered here.
	DiscoveryFile = KubeadmDir + "/discovery.conf"

	// CertificatesDir is kubeadm's certificatesDir.
	CertificatesDir = "/etc/kubernetes/pki"
	// SignerCertFile is the kubernetes realm's intermediate CA alone (ca.crt
	// holds the chain): the controller-manager's CSR signer.
	SignerCertFile = CertificatesDir + "/ca-signer.crt"
	// EncryptionConfigFile is the API server's EncryptionConfiguration (R9).
	EncryptionConfigFile = "/etc/kubernetes/encryption-config.yaml"
	// AuthenticationConfigFile is the API server's AuthenticationConfiguration.
	AuthenticationConfigFile = "/etc/kubernetes/authentication-config.yaml"
	// EtcdDataDir is etcd's data directory, owned by the etcd user (R12).
	EtcdDataDir = "/var/lib/etcd"
	// KubeletServingCert and KubeletServingKey are the kubelet's serving
	// certificate (DNS SAN: the node's hostname, R29) and key, issued by
	// Ferry from the kubernetes realm and written before the kubelet starts:
	// the kubelet neither makes its own (a self-signed certificate with IP
	// SANs) nor asks for one (serverTLSBootstrap).
	KubeletServingCert = "/var/lib/kubelet/pki/kubelet-serving.crt"
	KubeletServingKey  = "/var/lib/kubelet/pki/kubelet-serving.key"

	// ContainerdConfigFile is containerd's configuration (version 3, containerd 2.x).
	ContainerdConfigFile = "/etc/containerd/config.toml"
	// ContainerdHostsDir holds a hosts.toml per mirrored registry host.
	ContainerdHostsDir = "/etc/containerd/certs.d"
	// CRISocket is containerd's CRI endpoint.
	CRISocket = "unix:///run/containerd/containerd.sock"

	// SysctlFile and ModulesFile are the kernel settings Kubernetes needs.
	SysctlFile  = "/etc/sysctl.d/90-ferry-kubernetes.conf"
	ModulesFile = "/etc/modules-load.d/ferry-kubernetes.conf"
	// SysusersFile and TmpfilesFile declare the control plane's system
	// users and the ownership of their files (systemd hosts only; see
	// Users and ControlPlaneOwnership for others).
	SysusersFile = "/etc/sysusers.d/ferry-control-plane.conf"
	TmpfilesFile = "/etc/tmpfiles.d/ferry-control-plane.conf"
)

// The planes of Facts.NodeIPs (R31), named as in spec.networks.
const (
	PlaneControlPlane = "controlPlane"
	PlaneWorkload     = "workload"
	PlaneEtcd         = "etcd"
)

// Planes are the plane names Facts.NodeIPs may use.
var Planes = []string{PlaneControlPlane, PlaneWorkload, PlaneEtcd}

// MinKubernetesVersion is the oldest Kubernetes the rendered files are
// for: kubeadm v1beta4, the API server's structured authentication
// configuration (GA in 1.34) and the kubelet's failCgroupV1.
const MinKubernetesVersion = "v1.34.0"

// EncryptionKeySize is the size of the encryption-at-rest key (secretbox
// and aesgcm with AES-256).
const EncryptionKeySize = 32

// Facts are what Render needs beyond the cluster configuration: from the
// bundle and from observing the node.
type Facts struct {
	// KubernetesVersion is the bundle's Kubernetes ("v1.36.3").
	KubernetesVersion string
	// ImageRepository prefixes the bundle's Kubernetes images
	// ("registry.ferry.dev/k8s"): kubeadm's imageRepository.
	ImageRepository string
	// EtcdImageTag ("3.6.8-0") and CoreDNSImageTag ("v1.14.2") are the
	// tags of the bundle's etcd and CoreDNS images under ImageRepository.
	EtcdImageTag, CoreDNSImageTag string
	// PauseImage is the bundle's pod sandbox image, a full reference
	// ("registry.ferry.dev/k8s/pause:3.10.2").
	PauseImage string
	// Registries are further upstream registry hosts ("quay.io") whose
	// images the bundle carries; containerd resolves them, like the host
	// of ImageRepository and PauseImage, only at the content service.
	Registries []string
	// ContentServices are the content services (the registry mirrors:
	// every control-plane node runs one) as host:port with a DNS name
	// (R29): "cp1.example.com:5443". TLS only. containerd asks them in
	// this order, each once, and nothing else.
	ContentServices []string
	// ContentCAFile is the content realm's CA bundle on the node
	// (/etc/ferry/pki/content/ca.crt): containerd verifies the service with it.
	ContentCAFile string
	// NodeIPs is the node's address on each plane (PlaneControlPlane,
	// PlaneWorkload, PlaneEtcd), as observed. Every node needs its
	// control-plane address, control-plane nodes their etcd address.
	NodeIPs map[string]string
	// EtcdInitialCluster is the etcd membership a joining control-plane
	// node's member starts into ("n1=https://n1.example.com:2380,n2=…",
	// recorded when Ferry added the member); empty on the first node,
	// whose member starts a cluster of its own.
	EtcdInitialCluster string
	// CgroupVersion is the node's cgroup version, 1 or 2 (observed).
	CgroupVersion int
	// HasSystemd: the node runs systemd (observed).
	HasSystemd bool
	// EncryptionKey is the encryption-at-rest key (R9), EncryptionKeySize
	// bytes, generated once at install. It prints as [redacted].
	EncryptionKey SecretKey
	// OIDCCA is the content of spec.authentication.oidc.caFile (PEM), read
	// by the caller; required when that file is set.
	OIDCCA []byte
	// Version is Ferry's version, written into every file's header (R19).
	Version string
}

// SecretKey is key material. It prints as [redacted] in every fmt verb and
// in JSON or YAML, so a logged Facts does not carry the key.
type SecretKey []byte

// Format prints [redacted] whatever the verb.
func (SecretKey) Format(f fmt.State, _ rune) { io.WriteString(f, "[redacted]") }

// String is [redacted].
func (SecretKey) String() string { return "[redacted]" }

// MarshalText is [redacted].
func (SecretKey) MarshalText() ([]byte, error) { return []byte("[redacted]"), nil }

// File is a file the node should have.
type File struct {
	// Path is absolute.
	Path string
	// Mode holds the permission bits.
	Mode fs.FileMode
	// Owner and Group are names (see Users for the control plane's).
	Owner, Group string
	// Content starts with the R19 header (see SplitHeader).
	Content []byte
	// Secret: the content holds key material; never log or diff it.
	Secret bool
}

// String describes the file without its content.
func (f File) String() string {
	return fmt.Sprintf("%s (%04o %s:%s, %d bytes, sha256:%x)", f.Path, f.Mode.Perm(), f.Owner, f.Group, len(f.Content), sha256.Sum256(f.Content))
}

// Render computes the files node should have: a pure function of the
// cluster configuration (validated and defaulted here; c is not changed),
// the node's name and the facts. The same input gives the same bytes.
// Every node gets the containerd, kernel and kubeadm join/upgrade files
// and its kubelet patch; control-plane nodes also the init configuration,
// the static Pod patches, the API server's encryption and authentication
// configurations, and (with systemd) the system users and file ownership
// of the control plane. Files are sorted by path.
func Render(c *cluster.Cluster, node string, f Facts) ([]File, error) {
	r, err := newRenderer(c, node, f)
	if err != nil {
		return nil, err
	}
	type gen struct {
		path string
		fn   func() (File, error)
	}
	gens := []gen{
		{JoinConfigFile, r.joinConfig},
		{UpgradeConfigFile, r.upgradeConfig},
		{PatchesDir + "/kubeletconfiguration+merge.yaml", r.kubeletPatch},
		{ContainerdConfigFile, r.containerdConfig},
		{SysctlFile, r.sysctl},
		{ModulesFile, r.modules},
	}
	if r.controlPlane {
		gens = append(gens,
			gen{InitConfigFile, r.initConfig},
			gen{EncryptionConfigFile, r.encryptionConfig},
			gen{AuthenticationConfigFile, r.authenticationConfig},
		)
		for _, p := range staticPods {
			gens = append(gens, gen{PatchesDir + "/" + p.name + "+strategic.yaml", r.podPatch(p)})
		}
		if f.HasSystemd {
			gens = append(gens, gen{SysusersFile, r.sysusers}, gen{TmpfilesFile, r.tmpfiles})
		}
	}
	var files []File
	for _, g := range gens {
		file, err := g.fn()
		if err != nil {
			return nil, fmt.Errorf("node %s: rendering %s: %w", node, g.path, err)
		}
		file.Path = g.path
		files = append(files, file)
	}
	hosts, err := r.hostsFiles()
	if err != nil {
		return nil, fmt.Errorf("node %s: rendering containerd's hosts.toml: %w", node, err)
	}
	files = append(files, hosts...)
	slices.SortFunc(files, func(a, b File) int { return strings.Compare(a.Path, b.Path) })
	for i := 1; i < len(files); i++ {
		if files[i].Path == files[i-1].Path {
			return nil, fmt.Errorf("node %s: %s rendered twice", node, files[i].Path)
		}
	}
	return files, nil
}

// rootFile is a file owned by root with the header over body.
func (r *renderer) rootFile(mode fs.FileMode, body []byte) File {
	return File{Mode: mode, Owner: "root", Group: "root", Content: WithHeader(r.f.Version, body)}
}

// ErrUnknownNode is wrapped by Render's error for a node the cluster
// configuration does not list.
var ErrUnknownNode = errors.New("not in the cluster configuration")
