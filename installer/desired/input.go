package desired

import (
	"net/netip"

	"github.com/ferry-k8s/ferry/installer/cluster"
	"github.com/ferry-k8s/ferry/installer/converge"
	"github.com/ferry-k8s/ferry/installer/nodeconfig"
)

// Modes: how the node came into the cluster (layout.ModeFile).
const (
	ModeBootstrap = "bootstrap"
	ModeJoin      = "join"
)

// Input is everything Node depends on.
type Input struct {
	// Cluster is cluster.yaml, defaulted; Node the node's entry in it.
	Cluster *cluster.Cluster
	Node    *cluster.Node
	// ClusterConfig is cluster.yaml as the admin wrote it (kept on the
	// node), Keyring the bundle keyring's public keys, armored.
	ClusterConfig, Keyring []byte
	Bundle                 Bundle
	Host                   Host
	// Mode is ModeBootstrap (the first control plane) or ModeJoin.
	Mode string
	// PKI are the node's certificates and keys, as the node has them or
	// gets them (nodestate.Credentials): on a control plane the realms,
	// kubeadm's CAs and every leaf; on a worker its own leaves.
	PKI []converge.File
	// ClusterCA and ContentCA are the cluster's and the content realm's CA
	// certificates, on a worker (from its join file, then from the node).
	ClusterCA, ContentCA []byte
	// EncryptionKey is the encryption-at-rest key (R9), on a control
	// plane.
	EncryptionKey []byte
	// EtcdInitialCluster is the membership recorded when Ferry added the
	// node's etcd member (a control plane that joins; "" before).
	EtcdInitialCluster string
	// Discovery is the join file's discovery kubeconfig (nil without a
	// join file).
	Discovery []byte
	// IgnorePreflightErrors are passed to kubeadm.
	IgnorePreflightErrors []string
	// ServedISOs are the bundles the node's content service serves
	// (paths on the node).
	ServedISOs []string
	// HostProvidesRPM is the host-provides package's path on the node,
	// where rpm does not know the host's /bin/sh ("" otherwise).
	HostProvidesRPM string
	// OIDCCA is the content of spec.authentication.oidc.caFile.
	OIDCCA []byte
	// Version is Ferry's, for the R19 headers.
	Version string
}

// Bundle is what a node needs to know of the bundle it runs.
type Bundle struct {
	Name, Version     string
	KubernetesVersion string
	// Repo is the yum repository of the distribution's RPMs, Packages
	// each of its packages' version-release.
	Repo     string
	Packages map[string]string
	// ImageRepository is where the distribution's images are named;
	// Images maps an image's base name ("pause") to its reference.
	ImageRepository string
	Images          map[string]string
}

// RepoID is the dnf repository id of the distribution's repository.
func (b Bundle) RepoID() string { return "ferry-" + b.Repo }

// Host is what observation of the host contributes.
type Host struct {
	// IPs are the node's address on each plane (nodeconfig.Planes).
	IPs map[string]string
	// MTU of the interface that carries the workload address (0:
	// unknown); the pod network uses it (R34).
	MTU           int
	CgroupVersion int
	Systemd       bool
	// SELinux is the host's (nil: none).
	SELinux *SELinux
	// Peers are every node's addresses (by node name), resolved.
	Peers map[string][]netip.Addr
	// Firewall is the host firewall's input (R26); nil when the firewall
	// is off and nothing of it is on the node.
	Firewall *nodeconfig.FirewallInput
}

// SELinux is the host's SELinux configuration file and whether its kernel
// runs SELinux now.
type SELinux struct {
	Config  []byte
	Enabled bool
}
