package converge

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/ferry-k8s/ferry/internal/atomicfile"
)

// InitControlPlane is kubeadm init on the first control-plane node (see
// KubeadmInit), then the record of the Kubernetes version and of kubeadm's
// inputs it set the node up with.
type InitControlPlane struct {
	Init              *KubeadmInit
	KubernetesVersion string
	Because
}

func (InitControlPlane) Kind() string      { return KindKubeadm }
func (op InitControlPlane) Target() string { return op.Init.Config }
func (op InitControlPlane) String() string { return describe(op) }
func (op InitControlPlane) Apply(ctx context.Context, h *Host) error {
	k := op.Init
	for _, phase := range [][]string{{"certs", "all"}, {"kubeconfig", "all"}} {
		if _, err := h.run(ctx, "kubeadm", append(append([]string{"init", "phase"}, phase...), "--config", k.Config)...); err != nil {
			return err
		}
	}
	if err := h.serversAndOwners(k.Servers, k.Owned); err != nil {
		return err
	}
	args := []string{"init", "--config", k.Config, "--skip-phases", strings.Join(append([]string{"certs", "kubeconfig"}, k.SkipPhases...), ",")}
	if len(k.IgnorePreflightErrors) > 0 {
		args = append(args, "--ignore-preflight-errors", strings.Join(k.IgnorePreflightErrors, ","))
	}
	if _, err := h.run(ctx, "kubeadm", args...); err != nil {
		return err
	}
	if err := h.recordApplied(VersionRecord, op.KubernetesVersion); err != nil {
		return err
	}
	return h.recordApplied(KubeadmRecord, k.InputDigest)
}

// ReconfigureControlPlane renders the static Pods and the kubelet's
// configuration again with kubeadm's phases when kubeadm's inputs changed
// after init (R30), and records the new inputs.
type ReconfigureControlPlane struct {
	Init *KubeadmInit
	Because
}

func (ReconfigureControlPlane) Kind() string      { return KindKubeadmRe }
func (op ReconfigureControlPlane) Target() string { return op.Init.Config }
func (op ReconfigureControlPlane) String() string { return describe(op) }
func (op ReconfigureControlPlane) Apply(ctx context.Context, h *Host) error {
	// The phases that render from the configuration and change nothing
	// else: etcd's and the control plane's static Pods (the kubelet
	// restarts a Pod whose manifest changed, only that one), then the
	// kubelet's configuration and flags (kubelet-start restarts it).
	// Certificates and kubeconfigs are Ferry's (written above).
	for _, phase := range [][]string{{"etcd", "local"}, {"control-plane", "all"}, {"kubelet-start"}} {
		if _, err := h.run(ctx, "kubeadm", append(append([]string{"init", "phase"}, phase...), "--config", op.Init.Config)...); err != nil {
			return err
		}
	}
	return h.recordApplied(KubeadmRecord, op.Init.InputDigest)
}

// JoinCluster is kubeadm join (see KubeadmJoin); a control-plane node's
// etcd member (Etcd, added before) is promoted right after, and the
// Kubernetes version and kubeadm's inputs are recorded.
type JoinCluster struct {
	Join              *KubeadmJoin
	Etcd              *EtcdMember
	KubernetesVersion string
	Because
}

func (JoinCluster) Kind() string      { return KindJoin }
func (op JoinCluster) Target() string { return op.Join.Config }
func (op JoinCluster) String() string { return describe(op) }
func (op JoinCluster) Apply(ctx context.Context, h *Host) error {
	j := op.Join
	if j.DiscoveryContent == nil {
		return errors.New("the node has not joined the cluster and there is no join file: run installer join --join-file (made by installer token create on a control-plane node)")
	}
	disc := h.path(j.Discovery)
	if err := os.MkdirAll(filepath.Dir(disc), 0o700); err != nil {
		return err
	}
	if err := atomicfile.WriteFile(disc, j.DiscoveryContent, 0o600); err != nil {
		return err
	}
	// The bootstrap token is not left on the node.
	defer os.Remove(disc)
	args := []string{"join", "--config", j.Config}
	ignore := j.IgnorePreflightErrors
	if j.ControlPlane {
		// Ferry's kubeconfigs first (kubeadm's, pointed at names and
		// readable by the control plane's users), and etcd's static
		// Pod for the member Ferry added.
		if _, err := h.run(ctx, "kubeadm", "join", "phase", "control-plane-prepare", "kubeconfig", "--config", j.Config); err != nil {
			return err
		}
		if err := h.serversAndOwners(j.Servers, j.Owned); err != nil {
			return err
		}
		if _, err := h.run(ctx, "kubeadm", "init", "phase", "etcd", "local", "--config", j.InitConfig); err != nil {
			return err
		}
		// kubeadm's etcd-join is Ferry's (the member by name, as a
		// learner); what waits for the local API server is skipped:
		// it answers once that member is promoted (below), and the
		// node's kubelet bootstraps against it then. Roles and taints
		// are applied through the API afterwards, like labels.
		args = append(args, "--skip-phases", "control-plane-prepare/download-certs,control-plane-prepare/certs,control-plane-prepare/kubeconfig,etcd-join,kubelet-wait-bootstrap,control-plane-join,wait-control-plane")
		ignore = append(slices.Clone(ignore), "FileAvailable--etc-kubernetes-manifests-etcd.yaml")
	}
	if len(ignore) > 0 {
		args = append(args, "--ignore-preflight-errors", strings.Join(ignore, ","))
	}
	if _, err := h.run(ctx, "kubeadm", args...); err != nil {
		return err
	}
	if op.Etcd != nil {
		if err := h.promoteEtcdMember(ctx, op.Etcd); err != nil {
			return err
		}
	}
	if err := h.recordApplied(VersionRecord, op.KubernetesVersion); err != nil {
		return err
	}
	if j.InputDigest != "" {
		return h.recordApplied(KubeadmRecord, j.InputDigest)
	}
	return nil
}

// UpgradeKubernetes runs kubeadm's upgrade for the node: on the first
// control-plane node of a roll-out (the cluster's kubeadm-config does not
// say it was upgraded to KubernetesVersion), the node's
// ClusterConfiguration is uploaded (the bundle's image tags and settings)
// and `kubeadm upgrade apply` runs, then kubeadm-config is marked; every
// other node runs `kubeadm upgrade node`. Then the kubelet, whose package
// was upgraded before, restarts, and the version is recorded, with
// InputDigest (kubeadm's inputs the upgrade rendered from) when set.
type UpgradeKubernetes struct {
	Upgrade           *KubeadmUpgrade
	KubernetesVersion string
	InputDigest       string
	Because
}

func (UpgradeKubernetes) Kind() string      { return KindUpgrade }
func (op UpgradeKubernetes) Target() string { return op.KubernetesVersion }
func (op UpgradeKubernetes) String() string { return describe(op) }
func (op UpgradeKubernetes) Apply(ctx context.Context, h *Host) error {
	u := op.Upgrade
	args := []string{"upgrade", "node", "--config", u.Config}
	first := false
	if u.ControlPlane {
		out, err := h.run(ctx, "kubectl", h.kubectlArgs("--request-timeout=20s", "-n", "kube-system", "get", "configmap", "kubeadm-config",
			"-o", `jsonpath={.metadata.annotations.ferry\.dev/upgraded-to}`)...)
		if err != nil {
			return fmt.Errorf("reading the cluster's kubeadm configuration: %w", err)
		}
		if strings.TrimSpace(string(out)) != op.KubernetesVersion {
			first = true
			if _, err := h.run(ctx, "kubeadm", "init", "phase", "upload-config", "kubeadm", "--config", u.InitConfig); err != nil {
				return err
			}
			args = []string{"upgrade", "apply", "--config", u.Config, "--yes"}
		}
	}
	if len(u.IgnorePreflightErrors) > 0 {
		args = append(args, "--ignore-preflight-errors", strings.Join(u.IgnorePreflightErrors, ","))
	}
	if _, err := h.run(ctx, "kubeadm", args...); err != nil {
		return err
	}
	if first {
		if _, err := h.run(ctx, "kubectl", h.kubectlArgs("--request-timeout=20s", "-n", "kube-system", "annotate", "--overwrite",
			"configmap", "kubeadm-config", UpgradedAnnotation+"="+op.KubernetesVersion)...); err != nil {
			return err
		}
	}
	if _, err := h.run(ctx, "systemctl", "restart", "kubelet.service"); err != nil {
		return err
	}
	if op.InputDigest != "" {
		if err := h.recordApplied(KubeadmRecord, op.InputDigest); err != nil {
			return err
		}
	}
	return h.recordApplied(VersionRecord, op.KubernetesVersion)
}

// PointKubeconfig points a kubeconfig someone else wrote at the
// node-local API server proxy (see Kubeconfig) and restarts the units
// that read it.
type PointKubeconfig struct {
	Kubeconfig Kubeconfig
	Because
}

func (PointKubeconfig) Kind() string { return KindKubeconfig }
func (op PointKubeconfig) Target() string {
	return op.Kubeconfig.Path + " → " + op.Kubeconfig.Server
}
func (op PointKubeconfig) String() string { return describe(op) }
func (op PointKubeconfig) Apply(ctx context.Context, h *Host) error {
	if err := pointKubeconfig(h.path(op.Kubeconfig.Path), op.Kubeconfig.Server, op.Kubeconfig.TLSServerName); err != nil {
		return err
	}
	for _, u := range op.Kubeconfig.Restarts {
		if _, err := h.run(ctx, "systemctl", "restart", u); err != nil {
			return err
		}
	}
	return nil
}

// planKubeadmInit plans kubeadm init on the first control-plane node
// until it has run.
func planKubeadmInit(d Desired, o Observed) []Op {
	if d.Kubeadm == nil || o.KubeadmDone || d.Join != nil {
		return nil
	}
	return []Op{InitControlPlane{Init: d.Kubeadm, KubernetesVersion: d.KubernetesVersion, Because: "the control plane is not initialized"}}
}

// planKubeadmJoin plans kubeadm join until the node has joined. A
// control-plane node joins once its etcd member is added: its etcd
// configuration (rendered from the recorded membership) is then final.
func planKubeadmJoin(d Desired, o Observed) []Op {
	if d.Join == nil || o.Joined || (d.EtcdMember != nil && !o.EtcdMemberAdded) {
		return nil
	}
	return []Op{JoinCluster{Join: d.Join, Etcd: d.EtcdMember, KubernetesVersion: d.KubernetesVersion, Because: "the node has not joined the cluster"}}
}

// planKubeadmUpgrade plans kubeadm's upgrade on a node set up for another
// Kubernetes version than the bundle's; otherwise, on a control plane
// whose kubeadm inputs changed since kubeadm last ran, a reconfiguration
// (an upgrade renders the static Pods from the current inputs itself).
func planKubeadmUpgrade(d Desired, o Observed) []Op {
	if d.Upgrade != nil && (o.KubeadmDone || o.Joined) && o.Applied[VersionRecord] != d.KubernetesVersion {
		from := o.Applied[VersionRecord]
		if from == "" {
			from = "an unrecorded version"
		}
		op := UpgradeKubernetes{Upgrade: d.Upgrade, KubernetesVersion: d.KubernetesVersion, Because: Because("the node runs " + from)}
		if d.Kubeadm != nil {
			op.InputDigest = d.Kubeadm.InputDigest
		}
		return []Op{op}
	}
	if d.Kubeadm != nil && o.KubeadmDone && d.Kubeadm.InputDigest != "" && o.Applied[KubeadmRecord] != d.Kubeadm.InputDigest {
		return []Op{ReconfigureControlPlane{Init: d.Kubeadm, Because: "its configuration or patches changed since kubeadm last ran"}}
	}
	return nil
}

// planKubeconfigs points the kubeconfigs that kubeadm or the kubelet
// write at the proxy once they exist, or right after the init or join
// planned before that writes them.
func planKubeconfigs(d Desired, o Observed, planned []Op) []Op {
	writes := slices.ContainsFunc(planned, func(op Op) bool {
		switch op.(type) {
		case InitControlPlane, JoinCluster:
			return true
		}
		return false
	})
	var ops []Op
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
			ops = append(ops, PointKubeconfig{Kubeconfig: kc, Because: Because(reason)})
		}
	}
	return ops
}

// rewriteServer sets every "server:" of a kubeconfig to url.
func rewriteServer(p, url string) error {
	data, err := os.ReadFile(p)
	if err != nil {
		return err
	}
	lines := strings.Split(string(data), "\n")
	n := 0
	for i, l := range lines {
		if t := strings.TrimSpace(l); strings.HasPrefix(t, "server: ") {
			lines[i] = l[:len(l)-len(strings.TrimLeft(l, " "))] + "server: " + url
			n++
		}
	}
	if n == 0 {
		return fmt.Errorf("%s names no server", p)
	}
	fi, err := os.Stat(p)
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(p, []byte(strings.Join(lines, "\n")), fi.Mode().Perm())
}

// serversAndOwners points kubeconfigs at names and gives the control
// plane's files to their users.
func (h *Host) serversAndOwners(servers map[string]string, owned []Owned) error {
	for _, kc := range sortedKeys(servers) {
		if err := rewriteServer(h.path(kc), servers[kc]); err != nil {
			return err
		}
	}
	for _, o := range owned {
		p := h.path(o.Path)
		if o.Dir {
			if err := os.MkdirAll(p, o.Mode.Perm()); err != nil {
				return err
			}
		} else if _, err := os.Stat(p); errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err := os.Chmod(p, o.Mode); err != nil {
			return err
		}
		if err := h.chown(p, o.Owner, o.Group); err != nil {
			return fmt.Errorf("%s: %w", o.Path, err)
		}
	}
	return nil
}
