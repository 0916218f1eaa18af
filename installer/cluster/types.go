package cluster

import (
	"path/filepath"
	"slices"
)

// KindCluster is the kind of a cluster configuration file; its apiVersion
// is bundle.APIVersion (ferry.dev/v1alpha1).
const KindCluster = "Cluster"

// Defaults filled in by SetDefaults.
const (
	DefaultAPIServerPort   = 6443
	DefaultPodSubnet       = "10.244.0.0/16"
	DefaultServiceSubnet   = "10.96.0.0/12"
	DefaultClusterDomain   = "cluster.local"
	DefaultUsernameClaim   = "sub"
	DefaultMaxUnavailable  = 1
	DefaultEncryptedObject = "secrets"
)

// Cluster is a cluster configuration file (kind: Cluster). See
// testdata/cluster.yaml for a complete, commented example.
type Cluster struct {
	APIVersion string   `json:"apiVersion"`
	Kind       string   `json:"kind"`
	Metadata   Metadata `json:"metadata"`
	Spec       Spec     `json:"spec"`

	// Dir is the directory of the file; relative paths (an OIDC CA file)
	// resolve against it.
	Dir string `json:"-"`
}

// Metadata names the cluster.
type Metadata struct {
	// Name is the cluster's name, a DNS label; it goes into the kubeadm
	// ClusterConfiguration and the subjects of the cluster's CAs.
	Name string `json:"name"`
}

// Spec is the desired state of the cluster.
type Spec struct {
	// ControlPlaneEndpoint is the API servers' shared address, a DNS name
	// with an optional port (default 6443): "api.prod.example.com:6443".
	// Never an IP address (R29): the certificates carry DNS names only, and
	// a name lets a server's address change (R30).
	ControlPlaneEndpoint string `json:"controlPlaneEndpoint"`
	// Kubernetes holds cluster-wide Kubernetes settings.
	Kubernetes Kubernetes `json:"kubernetes,omitempty"`
	// Networks are the per-plane host networks (R31).
	Networks Networks `json:"networks,omitempty"`
	// NodeDefaults are the settings every node starts from; a node's own
	// fields override them key by key.
	NodeDefaults NodeSettings `json:"nodeDefaults,omitempty"`
	// Nodes are the cluster's machines; at least one has the control-plane role.
	Nodes []Node `json:"nodes"`
	// Security holds cluster-wide security policy.
	Security Security `json:"security,omitempty"`
	// EncryptionAtRest configures the API server's encryption of stored
	// objects (R9); it cannot be turned off.
	EncryptionAtRest EncryptionAtRest `json:"encryptionAtRest,omitempty"`
	// Authentication configures how people authenticate to the API server (R17).
	Authentication Authentication `json:"authentication,omitempty"`
	// Firewall configures the host firewall (R26).
	Firewall Firewall `json:"firewall,omitempty"`
	// Upgrade configures rolling upgrades (R7).
	Upgrade Upgrade `json:"upgrade,omitempty"`
}

// Kubernetes holds cluster-wide Kubernetes settings.
type Kubernetes struct {
	// PodSubnet is the CIDR pods get their addresses from (default 10.244.0.0/16).
	PodSubnet string `json:"podSubnet,omitempty"`
	// ServiceSubnet is the CIDR of ClusterIP services (default 10.96.0.0/12).
	ServiceSubnet string `json:"serviceSubnet,omitempty"`
	// ClusterDomain is the DNS domain of services (default cluster.local).
	ClusterDomain string `json:"clusterDomain,omitempty"`
	// FeatureGates are set on every component: {"SomeGate": true}.
	FeatureGates map[string]bool `json:"featureGates,omitempty"`
}

// Networks are the host networks of the three planes (R31). Each is a CIDR;
// a node's address on a plane is the one of its addresses in that CIDR
// (found when the node is observed), and each service binds only to the
// address of its plane. An empty plane means: the node's address on its
// default route. Planes may be the same network.
type Networks struct {
	// ControlPlane carries the API server, kubelet and the node daemon.
	ControlPlane string `json:"controlPlane,omitempty"`
	// Workload carries pod-to-pod traffic (the CNI's underlay).
	Workload string `json:"workload,omitempty"`
	// Etcd carries etcd's client and peer traffic (control-plane nodes only).
	Etcd string `json:"etcd,omitempty"`
}

// Role is what a node does in the cluster.
type Role string

// The roles a node may have; a node may have both.
const (
	RoleControlPlane Role = "control-plane"
	RoleWorker       Role = "worker"
)

// SELinuxMode is the SELinux mode Ferry keeps a node in (R13).
type SELinuxMode string

// SELinux modes.
const (
	SELinuxEnforcing  SELinuxMode = "enforcing"
	SELinuxPermissive SELinuxMode = "permissive"
	SELinuxDisabled   SELinuxMode = "disabled"
)

// NodeSettings are the per-node settings that spec.nodeDefaults gives to
// every node and a node may override.
type NodeSettings struct {
	// SELinux is the node's SELinux mode: enforcing (default), permissive
	// or disabled. See Security.AllowNonEnforcingControlPlane.
	SELinux SELinuxMode `json:"selinux,omitempty"`
	// Kubelet are overrides merged into the node's KubeletConfiguration
	// (camelCase keys as in kubelet.config.k8s.io/v1beta1). Only the knobs
	// in KubeletKnobs are accepted; a node's key replaces the default's key
	// whole (maps are not merged deeper).
	Kubelet map[string]any `json:"kubelet,omitempty"`
	// Containerd are containerd settings for the node.
	Containerd *Containerd `json:"containerd,omitempty"`
}

// Node is one machine of the cluster.
type Node struct {
	// Name is the Kubernetes Node name, a DNS label, unique in the cluster.
	Name string `json:"name"`
	// Hostname is the node's fully qualified DNS name: its certificates
	// carry it (R29) and other nodes reach it by it. Unique.
	Hostname string `json:"hostname"`
	// Roles: control-plane, worker, or both.
	Roles []Role `json:"roles"`
	// Labels are applied to the Node (R10): Kubernetes label keys and
	// values ("topology.kubernetes.io/zone": "zone-a"). The role labels
	// node-role.kubernetes.io/<role> are added for the node's roles.
	Labels map[string]string `json:"labels,omitempty"`
	// Taints are applied to the Node, kubectl style: "key[=value]:Effect"
	// with Effect NoSchedule, PreferNoSchedule or NoExecute. A
	// control-plane node without the worker role gets
	// node-role.kubernetes.io/control-plane:NoSchedule.
	Taints []string `json:"taints,omitempty"`
	// SELinux overrides spec.nodeDefaults.selinux for this node.
	SELinux SELinuxMode `json:"selinux,omitempty"`
	// Kubelet overrides spec.nodeDefaults.kubelet for this node, key by key.
	Kubelet map[string]any `json:"kubelet,omitempty"`
	// Containerd overrides spec.nodeDefaults.containerd for this node, field by field.
	Containerd *Containerd `json:"containerd,omitempty"`
}

// Containerd are the containerd knobs Ferry exposes. They exist for hosts
// that are not ordinary machines, such as systemd-nspawn containers.
type Containerd struct {
	// RestrictOOMScoreAdj sets containerd's restrict_oom_score_adj: it
	// never gives a container a lower oom_score_adj than its own. Needed
	// where containerd lacks CAP_SYS_RESOURCE (systemd-nspawn machines);
	// without it every pod fails in runc. Default false.
	RestrictOOMScoreAdj *bool `json:"restrictOOMScoreAdj,omitempty"`
	// SystemdCgroup sets runc's SystemdCgroup option. It must agree with
	// the kubelet's cgroupDriver, and defaults to it: true for systemd
	// (the kubelet's default), false for cgroupfs.
	SystemdCgroup *bool `json:"systemdCgroup,omitempty"`
}

// Security is cluster-wide security policy.
type Security struct {
	// AllowNonEnforcingControlPlane lets a control-plane node run with
	// SELinux permissive or disabled (R13 allows it for workers only).
	// Meant for hosts without SELinux; default false.
	AllowNonEnforcingControlPlane bool `json:"allowNonEnforcingControlPlane,omitempty"`
}

// Encryption providers of the API server's EncryptionConfiguration (R9).
const (
	ProviderSecretbox = "secretbox"
	ProviderAESGCM    = "aesgcm"
)

// EncryptionAtRest configures the encryption of stored API objects (R9).
// The key is generated at install and kept in a 0600 file.
type EncryptionAtRest struct {
	// Resources are encrypted: "secrets", "configmaps", "widgets.example.com",
	// "*.example.com" (a whole group), "*." (the core group) or "*.*".
	// Must cover secrets. Default [secrets].
	Resources []string `json:"resources,omitempty"`
	// Provider is secretbox (default) or aesgcm.
	Provider string `json:"provider,omitempty"`
}

// Authentication configures human access to the API server (R17): OIDC
// against an external directory, and/or static users who get client
// certificates (issued later by the installer).
type Authentication struct {
	OIDC        *OIDC        `json:"oidc,omitempty"`
	StaticUsers []StaticUser `json:"staticUsers,omitempty"`
}

// OIDC is the API server's OpenID Connect authenticator.
type OIDC struct {
	// IssuerURL is the issuer, https only, by DNS name.
	IssuerURL string `json:"issuerURL"`
	// ClientID is the audience the tokens must be issued for.
	ClientID string `json:"clientID"`
	// UsernameClaim is the claim that names the user (default sub).
	UsernameClaim string `json:"usernameClaim,omitempty"`
	// UsernamePrefix is prepended to user names ("oidc:"); by default the
	// API server prefixes claims other than email with the issuer URL.
	UsernamePrefix string `json:"usernamePrefix,omitempty"`
	// GroupsClaim is the claim that lists the user's groups (optional).
	GroupsClaim string `json:"groupsClaim,omitempty"`
	// GroupsPrefix is prepended to group names (optional).
	GroupsPrefix string `json:"groupsPrefix,omitempty"`
	// CAFile is a PEM file of the CAs the issuer's certificate chains to
	// (optional; the host's trust store otherwise). Relative to this file.
	CAFile string `json:"caFile,omitempty"`
}

// StaticUser is a person without a directory account: the installer issues
// them a short-lived client certificate (CN name, O groups).
type StaticUser struct {
	Name   string   `json:"name"`
	Groups []string `json:"groups,omitempty"`
}

// Firewall backends.
const (
	FirewallAuto      = "auto"
	FirewallFirewalld = "firewalld"
	FirewallNftables  = "nftables"
)

// Firewall configures the host firewall rules per role (R26).
type Firewall struct {
	// Enabled: Ferry manages the host firewall (default true).
	Enabled *bool `json:"enabled,omitempty"`
	// Backend: auto (firewalld when it runs, nftables otherwise; default),
	// firewalld or nftables.
	Backend string `json:"backend,omitempty"`
}

// Upgrade configures rolling upgrades (R7).
type Upgrade struct {
	// MaxUnavailable is how many workers may be upgraded at once: a number
	// (≥ 1) or a percentage of the workers ("25%", at least one). Default 1.
	// Control-plane nodes go one at a time regardless.
	MaxUnavailable *IntOrPercent `json:"maxUnavailable,omitempty"`
}

// Path resolves a path of the configuration ("" stays "").
func (c *Cluster) Path(p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(c.Dir, p)
}

// HasRole says whether the node has role r.
func (n *Node) HasRole(r Role) bool { return slices.Contains(n.Roles, r) }

// ControlPlaneNodes are the nodes with the control-plane role, in order.
func (c *Cluster) ControlPlaneNodes() []*Node {
	var out []*Node
	for i := range c.Spec.Nodes {
		if c.Spec.Nodes[i].HasRole(RoleControlPlane) {
			out = append(out, &c.Spec.Nodes[i])
		}
	}
	return out
}

// Node returns the node named name, or nil.
func (c *Cluster) Node(name string) *Node {
	for i := range c.Spec.Nodes {
		if c.Spec.Nodes[i].Name == name {
			return &c.Spec.Nodes[i]
		}
	}
	return nil
}
