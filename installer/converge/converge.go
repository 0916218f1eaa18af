package converge

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"sort"
	"strings"
)

// File is a file the node must have, with exactly this content, mode and
// owner.
type File struct {
	Path         string
	Mode         fs.FileMode
	Owner, Group string // names; "" is root
	Content      []byte
	// Restarts names units to restart when the file changes (containerd
	// after its configuration); Reload runs "sysctl --system" and
	// "modprobe" style refreshes: a command line run after a change.
	Restarts []string
	After    []string
	// Secret files' contents are never logged or shown in a plan.
	Secret bool
}

// Dir is a directory the node must have.
type Dir struct {
	Path         string
	Mode         fs.FileMode
	Owner, Group string
}

// Unit is a systemd unit that must be enabled and running.
type Unit struct {
	Name string
	// Start: also running (not just enabled). kubelet is enabled before
	// kubeadm init, which starts it.
	Start bool
	// NoBlock starts and restarts the unit without waiting for it to be
	// ready (systemctl --no-block): a Type=notify unit that becomes ready
	// only once something later in the plan runs (the API server proxy,
	// ready once an API server answers).
	NoBlock bool
}

// Kubeconfig is a kubeconfig written by someone else (the kubelet's,
// after its TLS bootstrap) whose clusters must name Server, verified as
// TLSServerName: the node-local API server proxy (R32). Units in Restarts
// are restarted after a change (the kubelet reads its kubeconfig once).
type Kubeconfig struct {
	Path, Server, TLSServerName string
	Restarts                    []string
}

// KubeconfigState is one observed Kubeconfig: its first cluster's server
// and TLS server name, and whether all clusters agree with them.
type KubeconfigState struct {
	Exists                bool
	Server, TLSServerName string
	Mixed                 bool
}

// Desired is the node as the bundle and cluster.yaml want it.
type Desired struct {
	// Packages maps a package name to the exact version-release the bundle
	// carries; all are installed in one dnf transaction.
	Packages map[string]string
	// LocalPackages maps a package name to an RPM file made on the node
	// (the host-provides package of a host not managed by rpm), installed
	// in the same transaction when the name is not installed.
	LocalPackages map[string]string
	// PackageRestarts names the unit to restart when a package is
	// upgraded (its running binary is the old one): containerd,
	// kube-proxy, the content service and the API server proxy (both the
	// installer's). The kubelet restarts after
	// kubeadm's upgrade (KubeadmUpgrade).
	PackageRestarts map[string][]string
	Dirs            []Dir
	Files           []File
	Units           []Unit
	// Kubeadm is the kubeadm init of the first control-plane node; nil on
	// nodes that join.
	Kubeadm *KubeadmInit
	// Join is the kubeadm join of a node that joins an existing cluster;
	// nil on the first control-plane node.
	Join *KubeadmJoin
	// KubernetesVersion is the bundle's ("v1.36.3"); Upgrade brings a
	// node that runs another (recorded at init, join and each upgrade)
	// to it.
	KubernetesVersion string
	Upgrade           *KubeadmUpgrade
	// EtcdMember is the etcd member a control-plane node that joins adds
	// before kubeadm join (by name, R29); nil otherwise.
	EtcdMember *EtcdMember
	// Owned are paths (some written by kubeadm) whose owner and mode are
	// kept once they exist.
	Owned []Owned
	// ClusterNodes are the names of the cluster's nodes (cluster.yaml), on
	// a control-plane node: a Node Ferry manages that is not among them
	// is drained, deleted and its etcd member removed (R50). nil: not
	// checked (workers).
	ClusterNodes []string
	// LocalEtcd reaches the local etcd member (its client endpoint and
	// certificates), for removing members.
	LocalEtcd *EtcdMember
	// Labels and Taints the Node object must carry (R10, R47); applied
	// after kubeadm through the API.
	Labels map[string]string
	// Taints are taints the Node must have ("key[=value]:Effect"; a
	// control plane that joins: kubeadm's own marking is skipped), and
	// RemoveTaints taints to remove (R4: the single server runs workloads).
	Taints, RemoveTaints []string
	// Kubeconfigs are pointed at the node-local API server proxy once
	// they exist (the worker's kubelet.conf).
	Kubeconfigs []Kubeconfig
}

// KubeadmInit is `kubeadm init` with Ferry's configuration, in two
// steps: first the phases that write files (certificates that are not on
// disk yet, the service-account key, the kubeconfigs), then Owned is
// applied (so that the control plane's static Pods, which run as their own
// users, can read their keys and kubeconfigs: R12), then the rest of init.
type KubeadmInit struct {
	Config     string // path of kubeadm.yaml (it names its patches directory)
	SkipPhases []string
	Owned      []Owned
	// IgnorePreflightErrors are passed on (documented per environment).
	IgnorePreflightErrors []string
	// InputDigest is the hash of kubeadm's inputs (the configuration and
	// its patches). The digest of the last init or reconfiguration is
	// recorded; when the inputs change after init (a new node address,
	// R30; a changed setting), the static Pods and the kubelet's
	// configuration are rendered again by kubeadm's own phases.
	InputDigest string
	// Servers rewrites the server URL of kubeconfigs kubeadm writes with
	// the node's IP address (controller-manager.conf, scheduler.conf) to a
	// DNS name the API server's certificate carries (R29).
	Servers map[string]string
}

// KubeadmJoin is `kubeadm join` with Ferry's configuration: the
// discovery kubeconfig (the cluster's CA, the endpoint and a short-lived
// bootstrap token, from a join file) is written for the join only and
// removed afterwards.
type KubeadmJoin struct {
	Config    string // path of join.yaml
	Discovery string // path join.yaml names as its discovery file
	// DiscoveryContent is the discovery kubeconfig; nil when the node
	// has no join file (apply on a node that has not joined yet fails,
	// saying so).
	DiscoveryContent []byte
	// IgnorePreflightErrors are passed on (documented per environment).
	IgnorePreflightErrors []string
	// ControlPlane joins a control-plane node: with Ferry's certificates
	// (kubeadm's certificate phases skipped), the kubeconfigs pointed at
	// names (Servers) and owned by the control plane's users (Owned)
	// before the static Pods start, and etcd's static Pod rendered from
	// InitConfig (the member Ferry added) instead of kubeadm's etcd join.
	ControlPlane bool
	InitConfig   string
	Servers      map[string]string
	Owned        []Owned
	// InputDigest is recorded as kubeadm's inputs (see KubeadmInit).
	InputDigest string
}

// KubeadmUpgrade is `kubeadm upgrade apply` (on the first control-plane
// node to upgrade: the cluster's configuration is older) or `kubeadm
// upgrade node` (every other node), after the packages were upgraded, and
// a restart of the kubelet.
type KubeadmUpgrade struct {
	Config       string // upgrade.yaml
	ControlPlane bool
	// InitConfig is the node's kubeadm.yaml (its ClusterConfiguration is
	// uploaded before kubeadm upgrade apply).
	InitConfig string
	// IgnorePreflightErrors are passed on (documented per environment).
	IgnorePreflightErrors []string
}

// UpgradedAnnotation marks kube-system/kubeadm-config with the Kubernetes
// version `kubeadm upgrade apply` brought the cluster to.
const UpgradedAnnotation = "ferry.dev/upgraded-to"

// VersionRecord is the name under which the Kubernetes version kubeadm
// last set the node up for is recorded in the node's applied record
// (Observed.Applied).
const VersionRecord = "kubeadm:version"

// EtcdMember adds a member to the cluster's etcd with etcdctl, through
// the other members' client URLs, as a learner (it does not count for
// the quorum, so the cluster stays writable while the node joins), and
// records the membership it starts into (name=peerURL,…) in StateFile.
// Once the node has joined and its member runs, the learner is promoted
// (PromotedFile records it). Both steps are idempotent: a member with the
// same peer URL is not added twice, a voting member not promoted.
type EtcdMember struct {
	Name, PeerURL string
	// Endpoints are the other members' client URLs.
	Endpoints []string
	// CACert, Cert and Key authenticate to etcd (the etcd realm's CA and
	// the API server's etcd client certificate).
	CACert, Cert, Key       string
	StateFile, PromotedFile string
}

// Owned is a path whose owner and mode the node must have once it exists
// (kubeadm writes some of them); a Dir is created when missing.
type Owned struct {
	Path         string
	Owner, Group string
	Mode         fs.FileMode
	Dir          bool
}

// Observed is what the node has now.
type Observed struct {
	Packages map[string]string // name → version-release installed
	Files    map[string]FileState
	Units    map[string]UnitState
	// KubeadmDone: /etc/kubernetes/admin.conf and the API server manifest
	// exist (kubeadm init finished on this node).
	KubeadmDone bool
	// Joined: /etc/kubernetes/kubelet.conf exists (kubeadm join finished).
	Joined bool
	// EtcdMemberAdded: the membership of Desired.EtcdMember is recorded;
	// EtcdPromoted: so is its promotion from learner.
	EtcdMemberAdded, EtcdPromoted bool
	// APIUnknown: the node's objects could not be read (the API server
	// does not answer yet, or restarts after a change of this apply). The
	// operations that need the API wait for a later round.
	APIUnknown bool
	// ClusterNodes are the Nodes Ferry manages (annotated with a version).
	ClusterNodes []string
	// NodeLabels and NodeTaints are the Node object's, when the API answers.
	NodeLabels map[string]string
	NodeTaints []string
	// Applied is the node's record of what kubeadm last set it up with
	// (applied.json in Host.StateDir): VersionRecord and KubeadmRecord.
	Applied map[string]string
	// Kubeconfigs are Desired.Kubeconfigs as they are, by path.
	Kubeconfigs map[string]KubeconfigState
}

// FileState is one observed path.
type FileState struct {
	Exists       bool
	Dir          bool
	Mode         fs.FileMode
	Owner, Group string
	SHA256       string
}

// UnitState is one observed systemd unit.
type UnitState struct {
	Enabled, Active bool
}

// Op is one small, idempotent operation of a plan. Each family of
// operations has its file (files.go, packages.go, units.go, kubeadm.go,
// etcd.go, node.go) with its types, its sub-planners and their Apply; an
// operation carries everything it needs, so it applies alone.
type Op interface {
	// Kind and Target name it: "install packages" "kubelet-1.36.3-1.ferry …".
	Kind() string
	Target() string
	// Reason says why the plan contains it ("missing", "content differs").
	Reason() string
	// String is how a plan shows it: "kind target (reason)".
	String() string
	// Apply makes the change on the node. Running it again after it
	// succeeded (or half-way through) changes nothing more.
	Apply(ctx context.Context, h *Host) error
}

// Because is why a plan holds an operation; every operation embeds it.
type Because string

// Reason is why the plan holds the operation.
func (b Because) Reason() string { return string(b) }

// describe is an operation as plans show it: "kind target (reason)".
func describe(o Op) string {
	s := o.Kind() + " " + o.Target()
	if r := o.Reason(); r != "" {
		s += " (" + r + ")"
	}
	return s
}

// KubeadmRecord is the name under which the digest of kubeadm's inputs
// is recorded in the node's applied record (Observed.Applied).
const KubeadmRecord = "kubeadm:inputs"

// Op kinds, in the order a plan runs them.
const (
	KindDir         = "create directory"
	KindFile        = "write file"
	KindInstall     = "install packages"
	KindRun         = "run"
	KindReload      = "reload systemd"
	KindRestart     = "restart unit"
	KindEnable      = "enable unit"
	KindStart       = "start unit"
	KindKubeadm     = "kubeadm init"
	KindKubeadmRe   = "kubeadm reconfigure"
	KindEtcdAdd     = "add etcd member"
	KindJoin        = "kubeadm join"
	KindEtcdPromote = "promote etcd member"
	KindUpgrade     = "kubeadm upgrade"
	KindLabel       = "label node"
	KindRemoveNode  = "remove node"
	KindTaint       = "taint node"
	KindUntaint     = "remove taint"
	KindPermFixup   = "set owner and mode"
	KindKubeconfig  = "point kubeconfig"
)

func owner(n string) string {
	if n == "" {
		return "root"
	}
	return n
}

func permReason(st FileState, mode fs.FileMode, own, grp string) string {
	return fmt.Sprintf("is %s %s:%s, want %s %s:%s", st.Mode.Perm(), st.Owner, st.Group, mode.Perm(), owner(own), owner(grp))
}

// Digest is the content hash plans compare files by.
func Digest(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// Format prints a plan for `apply --dry-run`: one operation a line, and
// the count (R3: "0 changes").
func Format(ops []Op) string {
	var b bytes.Buffer
	for i, o := range ops {
		fmt.Fprintf(&b, "%3d. %s\n", i+1, o)
	}
	fmt.Fprintf(&b, "%d changes\n", len(ops))
	return b.String()
}

// NeedsAPI says whether the desired node has objects in the API to check
// (its Node's labels and taints, the Nodes to remove): a plan is final
// only when the API answered.
func (d Desired) NeedsAPI() bool {
	return d.Kubeadm != nil && (len(d.Labels)+len(d.Taints)+len(d.RemoveTaints) > 0 || d.ClusterNodes != nil)
}

// taintKeyEffect is a taint's key and effect ("key[=value]:Effect"), as
// Observed.NodeTaints lists them.
func taintKeyEffect(t string) (key, effect string) {
	kv, effect, _ := strings.Cut(t, ":")
	key, _, _ = strings.Cut(kv, "=")
	return key, effect
}
