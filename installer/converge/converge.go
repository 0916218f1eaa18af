package converge

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"slices"
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
	// Manifests are Kubernetes objects (the CNI, CoreDNS) applied with
	// server-side apply after kubeadm, by name → YAML.
	Manifests map[string][]byte
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
// last set the node up for is recorded with the applied manifests.
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
	// Applied maps a manifest name to the content hash last applied.
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

// Op is one small, idempotent operation of a plan.
type Op struct {
	// Kind and Target name it: "install packages" "kubelet-1.36.3-1.ferry …".
	Kind, Target string
	// Reason says why the plan contains it ("missing", "content differs").
	Reason string
	// what to do; kept as data so that the plan stays printable and testable.
	File     *File
	Dir      *Dir
	Packages []string // name-version-release
	Unit     string
	Command  []string
	Kubeadm  *KubeadmInit
	Join     *KubeadmJoin
	Etcd     *EtcdMember
	Upgrade  *KubeadmUpgrade
	Labels   map[string]string
	Taint    string
	Manifest string
	// NoBlock: start or restart Unit without waiting for it (Unit.NoBlock).
	NoBlock    bool
	Kubeconfig *Kubeconfig
}

// String is how the plan shows an operation.
func (o Op) String() string {
	s := o.Kind + " " + o.Target
	if o.Reason != "" {
		s += " (" + o.Reason + ")"
	}
	return s
}

// KubeadmRecord is the name under which the digest of kubeadm's inputs
// is recorded with the applied manifests.
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
	KindManifest    = "apply manifest"
	KindLabel       = "label node"
	KindRemoveNode  = "remove node"
	KindTaint       = "taint node"
	KindUntaint     = "remove taint"
	KindPermFixup   = "set owner and mode"
	KindKubeconfig  = "point kubeconfig"
)

// Plan is a pure function of the desired and observed node: the operations
// that make the node as desired, in order; none when it already is (R3).
//
//	nodes removed from the configuration (R50) →
//	root-owned directories and files → packages (one dnf transaction) →
//	paths owned by system users (created by the packages) → commands the
//	changed files trigger → daemon-reload → units (restarted when their
//	configuration changed) → kubeadm init → manifests → labels and taints
//
// The last three need the API server: while it does not answer
// (Observed.APIUnknown), they are left to a later round.
//
// Root-owned files come before packages so that configuration (the
// repository file, containerd's config) is in place when a package's
// scriptlets run; %config(noreplace) keeps ours.
func Plan(d Desired, o Observed) []Op {
	var ops []Op
	// Nodes that left the configuration go first, while the firewall and
	// the routes (rendered without them) still admit them: an etcd member
	// must be removed before its peers stop hearing it.
	if d.ClusterNodes != nil && !o.APIUnknown {
		for _, n := range o.ClusterNodes {
			if !slices.Contains(d.ClusterNodes, n) {
				ops = append(ops, Op{Kind: KindRemoveNode, Target: n, Reason: "not in the cluster configuration"})
			}
		}
	}
	restart := map[string]bool{}
	var after [][]string
	seenAfter := map[string]bool{}
	// Root-owned paths first; paths owned by a system user come after the
	// packages, whose %pre creates that user.
	fileOps := func(rootOwned bool) {
		for _, dir := range d.Dirs {
			if (owner(dir.Owner) == "root" && owner(dir.Group) == "root") != rootOwned {
				continue
			}
			st, ok := o.Files[dir.Path]
			dir := dir
			switch {
			case !ok || !st.Exists:
				ops = append(ops, Op{Kind: KindDir, Target: dir.Path, Reason: "missing", Dir: &dir})
			case !st.Dir:
				ops = append(ops, Op{Kind: KindDir, Target: dir.Path, Reason: "a file is in the way", Dir: &dir})
			case st.Mode.Perm() != dir.Mode.Perm() || st.Owner != owner(dir.Owner) || st.Group != owner(dir.Group):
				ops = append(ops, Op{Kind: KindPermFixup, Target: dir.Path, Reason: permReason(st, dir.Mode, dir.Owner, dir.Group), Dir: &dir})
			}
		}
		for _, f := range d.Files {
			if (owner(f.Owner) == "root" && owner(f.Group) == "root") != rootOwned {
				continue
			}
			st := o.Files[f.Path]
			reason := ""
			switch {
			case !st.Exists:
				reason = "missing"
			case st.Dir:
				reason = "a directory is in the way"
			case st.SHA256 != Digest(f.Content):
				reason = "content differs"
			}
			f := f
			if reason != "" {
				ops = append(ops, Op{Kind: KindFile, Target: f.Path, Reason: reason, File: &f})
				for _, u := range f.Restarts {
					restart[u] = true
				}
				for _, c := range f.After {
					if !seenAfter[c] {
						seenAfter[c] = true
						after = append(after, strings.Fields(c))
					}
				}
				continue
			}
			if st.Mode.Perm() != f.Mode.Perm() || st.Owner != owner(f.Owner) || st.Group != owner(f.Group) {
				ops = append(ops, Op{Kind: KindPermFixup, Target: f.Path, Reason: permReason(st, f.Mode, f.Owner, f.Group), File: &f})
			}
		}
	}
	fileOps(true)
	var install []string
	for _, name := range sortedKeys(d.Packages) {
		want := d.Packages[name]
		have, ok := o.Packages[name]
		if !ok || have != want {
			install = append(install, name+"-"+want)
		}
	}
	for _, name := range sortedKeys(d.LocalPackages) {
		if _, ok := o.Packages[name]; !ok {
			install = append(install, d.LocalPackages[name])
		}
	}
	for name, units := range d.PackageRestarts {
		if have, ok := o.Packages[name]; ok && d.Packages[name] != "" && have != d.Packages[name] {
			for _, u := range units {
				restart[u] = true
			}
		}
	}
	if len(install) > 0 {
		ops = append(ops, Op{Kind: KindInstall, Target: strings.Join(install, " "), Reason: packagesReason(d.Packages, o.Packages), Packages: install})
	}
	// Commands the root-owned files trigger (systemd-sysusers makes the
	// users the next files belong to) run before those files.
	for _, c := range after {
		ops = append(ops, Op{Kind: KindRun, Target: strings.Join(c, " "), Reason: "its configuration changed", Command: c})
	}
	after = nil
	fileOps(false)
	for _, c := range after {
		ops = append(ops, Op{Kind: KindRun, Target: strings.Join(c, " "), Reason: "its configuration changed", Command: c})
	}
	if len(d.Units) > 0 && (len(install) > 0 || len(restart) > 0 || unitsMissing(d, o)) {
		ops = append(ops, Op{Kind: KindReload, Target: "daemon-reload", Reason: "units or their configuration changed"})
	}
	for _, u := range d.Units {
		st := o.Units[u.Name]
		if !st.Enabled {
			ops = append(ops, Op{Kind: KindEnable, Target: u.Name, Reason: "disabled", Unit: u.Name})
		}
		switch {
		case u.Start && !st.Active:
			ops = append(ops, Op{Kind: KindStart, Target: u.Name, Reason: "not running", Unit: u.Name, NoBlock: u.NoBlock})
		case restart[u.Name] && st.Active:
			ops = append(ops, Op{Kind: KindRestart, Target: u.Name, Reason: "its configuration changed", Unit: u.Name, NoBlock: u.NoBlock})
		}
	}
	if d.Kubeadm != nil && !o.KubeadmDone && d.Join == nil {
		ops = append(ops, Op{Kind: KindKubeadm, Target: d.Kubeadm.Config, Reason: "the control plane is not initialized", Kubeadm: d.Kubeadm})
	}
	if d.EtcdMember != nil && !o.EtcdMemberAdded {
		ops = append(ops, Op{Kind: KindEtcdAdd, Target: d.EtcdMember.Name + " " + d.EtcdMember.PeerURL, Reason: "not a member of the cluster's etcd yet", Etcd: d.EtcdMember})
	}
	// A control-plane node joins once its etcd member is added: its etcd
	// configuration (rendered from the recorded membership) is then final.
	if d.Join != nil && !o.Joined && (d.EtcdMember == nil || o.EtcdMemberAdded) {
		ops = append(ops, Op{Kind: KindJoin, Target: d.Join.Config, Reason: "the node has not joined the cluster", Join: d.Join, Etcd: d.EtcdMember})
	}
	if d.EtcdMember != nil && o.EtcdMemberAdded && o.Joined && !o.EtcdPromoted {
		ops = append(ops, Op{Kind: KindEtcdPromote, Target: d.EtcdMember.Name, Reason: "a learner until its member has caught up", Etcd: d.EtcdMember})
	}
	upgrading := d.Upgrade != nil && (o.KubeadmDone || o.Joined) && o.Applied[VersionRecord] != d.KubernetesVersion
	if upgrading {
		from := o.Applied[VersionRecord]
		if from == "" {
			from = "an unrecorded version"
		}
		ops = append(ops, Op{Kind: KindUpgrade, Target: d.KubernetesVersion, Reason: "the node runs " + from, Upgrade: d.Upgrade})
	}
	// An upgrade renders the static Pods from the current inputs itself.
	if !upgrading && d.Kubeadm != nil && o.KubeadmDone && d.Kubeadm.InputDigest != "" && o.Applied[KubeadmRecord] != d.Kubeadm.InputDigest {
		ops = append(ops, Op{Kind: KindKubeadmRe, Target: d.Kubeadm.Config, Reason: "its configuration or patches changed since kubeadm last ran", Kubeadm: d.Kubeadm})
	}
	// Kubeconfigs that kubeadm or the kubelet write: pointed at the
	// proxy once they exist, or right after the init or join (planned
	// above) that writes them.
	writes := slices.ContainsFunc(ops, func(op Op) bool { return op.Kind == KindKubeadm || op.Kind == KindJoin })
	for _, kc := range d.Kubeconfigs {
		st := o.Kubeconfigs[kc.Path]
		reason := ""
		switch {
		case !st.Exists && writes:
			reason = "written by kubeadm above"
		case !st.Exists:
		case st.Mixed || st.Server != kc.Server || st.TLSServerName != kc.TLSServerName:
			reason = fmt.Sprintf("names %s", st.Server)
			if st.TLSServerName != "" {
				reason += " as " + st.TLSServerName
			}
		}
		if reason != "" {
			kc := kc
			ops = append(ops, Op{Kind: KindKubeconfig, Target: kc.Path + " → " + kc.Server, Reason: reason, Kubeconfig: &kc})
		}
	}
	if d.Kubeadm == nil || o.KubeadmDone {
		for _, w := range d.Owned {
			st, ok := o.Files[w.Path]
			if !ok || !st.Exists {
				continue
			}
			if st.Mode.Perm() != w.Mode.Perm() || st.Owner != owner(w.Owner) || st.Group != owner(w.Group) {
				dir := Dir{Path: w.Path, Mode: w.Mode, Owner: w.Owner, Group: w.Group}
				ops = append(ops, Op{Kind: KindPermFixup, Target: w.Path, Reason: permReason(st, w.Mode, w.Owner, w.Group), Dir: &dir})
			}
		}
	}
	if o.APIUnknown {
		return ops
	}
	for _, name := range sortedKeys(d.Manifests) {
		if o.Applied[name] != Digest(d.Manifests[name]) {
			ops = append(ops, Op{Kind: KindManifest, Target: name, Reason: "not applied or changed", Manifest: name})
		}
	}
	missing := map[string]string{}
	for k, v := range d.Labels {
		if have, ok := o.NodeLabels[k]; !ok || have != v {
			missing[k] = v
		}
	}
	if len(missing) > 0 {
		keys := sortedKeys(missing)
		ops = append(ops, Op{Kind: KindLabel, Target: strings.Join(keys, ","), Reason: "missing or different", Labels: missing})
	}
	for _, t := range d.Taints {
		key, effect := taintKeyEffect(t)
		if !slices.Contains(o.NodeTaints, key+":"+effect) {
			ops = append(ops, Op{Kind: KindTaint, Target: t, Reason: "missing", Taint: t})
		}
	}
	for _, t := range d.RemoveTaints {
		for _, have := range o.NodeTaints {
			if have == t {
				ops = append(ops, Op{Kind: KindUntaint, Target: t, Reason: "single server runs workloads (R4)", Taint: t})
			}
		}
	}
	return ops
}

func unitsMissing(d Desired, o Observed) bool {
	for _, u := range d.Units {
		if _, ok := o.Units[u.Name]; !ok {
			return true
		}
	}
	return false
}

func owner(n string) string {
	if n == "" {
		return "root"
	}
	return n
}

func permReason(st FileState, mode fs.FileMode, own, grp string) string {
	return fmt.Sprintf("is %s %s:%s, want %s %s:%s", st.Mode.Perm(), st.Owner, st.Group, mode.Perm(), owner(own), owner(grp))
}

func packagesReason(want, have map[string]string) string {
	var missing, other int
	for n, v := range want {
		h, ok := have[n]
		switch {
		case !ok:
			missing++
		case h != v:
			other++
		}
	}
	var parts []string
	if missing > 0 {
		parts = append(parts, fmt.Sprintf("%d missing", missing))
	}
	if other > 0 {
		parts = append(parts, fmt.Sprintf("%d at another version", other))
	}
	return strings.Join(parts, ", ")
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
// (manifests, labels, taints): a plan is final only when the API answered.
func (d Desired) NeedsAPI() bool {
	return d.Kubeadm != nil && len(d.Manifests)+len(d.Labels)+len(d.Taints)+len(d.RemoveTaints) > 0
}

// taintKeyEffect is a taint's key and effect ("key[=value]:Effect"), as
// Observed.NodeTaints lists them.
func taintKeyEffect(t string) (key, effect string) {
	kv, effect, _ := strings.Cut(t, ":")
	key, _, _ = strings.Cut(kv, "=")
	return key, effect
}
