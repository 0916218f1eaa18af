package nodeconfig

import (
	"fmt"
	"maps"
	"net"
	"strconv"

	"github.com/ferry-k8s/ferry/installer/cluster"
)

// kubeadm v1.36.3 patches these targets (cmd/kubeadm/app/util/patches:
// etcd, kube-apiserver, kube-controller-manager, kube-scheduler,
// kubeletconfiguration, corednsdeployment), from files named
// <target>[suffix][+json|merge|strategic].yaml in the patches directory.
// The patches are the node's own: kubeadm applies them on this node at
// init, join and upgrade, while the ClusterConfiguration is shared. So the
// per-node settings (addresses, R31) go here, as extra container args:
// the container runs command + args, and for a flag given twice each
// component (pflag; Go's flag package in etcd) takes the last value.

// staticPod is a control-plane static Pod and how Ferry patches it.
type staticPod struct {
	name string // kubeadm's patch target and the container's name
	user SystemUser
	// supplementalGroups of the Pod (by ID).
	groups []int
	// args are the node's own flags.
	args func(r *renderer) []string
	// annotations of the Pod (etcd's advertised client URL).
	annotations func(r *renderer) map[string]string
	// readOnly are kubeadm's mounts (by path) to make read-only.
	readOnly []string
}

var staticPods = []staticPod{
	{name: "etcd", user: EtcdUser, args: etcdArgs, annotations: etcdAnnotations,
		readOnly: []string{CertificatesDir + "/etcd"}},
	{name: "kube-apiserver", user: KubeAPIServerUser, groups: []int{ServiceAccountKeyGroup.ID},
		// The API server listens on the control-plane plane only (R31).
		args: func(r *renderer) []string { return []string{"--bind-address=" + r.cpIP.String()} }},
	{name: "kube-controller-manager", user: KubeControllerManagerUser, groups: []int{ServiceAccountKeyGroup.ID}},
	{name: "kube-scheduler", user: KubeSchedulerUser},
}

const (
	etcdClientPort = 2379
	etcdPeerPort   = 2380
)

// etcdArgs bind etcd's client and peer listeners to the node's etcd-plane
// address (clients also on the loopback, where the API server reaches
// it: https://localhost:2379) and advertise the node's hostname (R29:
// certificates carry DNS names, so peers and kubeadm dial names). The
// initial cluster is this member alone on the first node (`kubeadm
// init`); on a control-plane node that joins, the membership Ferry
// recorded when it added the member, with --initial-cluster-state
// existing. Either only counts when etcd starts with an empty data
// directory.
func etcdArgs(r *renderer) []string {
	etcdURL := func(host string, port int) string { return "https://" + net.JoinHostPort(host, strconv.Itoa(port)) }
	args := []string{
		"--listen-client-urls=" + etcdURL("127.0.0.1", etcdClientPort) + "," + etcdURL(r.etcdIP.String(), etcdClientPort),
		"--advertise-client-urls=" + etcdURL(r.n.Hostname, etcdClientPort),
		"--listen-peer-urls=" + etcdURL(r.etcdIP.String(), etcdPeerPort),
		"--initial-advertise-peer-urls=" + etcdURL(r.n.Hostname, etcdPeerPort),
	}
	if r.f.EtcdInitialCluster != "" {
		return append(args, "--initial-cluster="+r.f.EtcdInitialCluster, "--initial-cluster-state=existing")
	}
	return append(args, "--initial-cluster="+r.n.Name+"="+etcdURL(r.n.Hostname, etcdPeerPort))
}

// EtcdPeerURL is a control-plane node's etcd peer URL (its hostname, R29).
func EtcdPeerURL(n *cluster.Node) string {
	return "https://" + net.JoinHostPort(n.Hostname, strconv.Itoa(etcdPeerPort))
}

// EtcdClientURL is a control-plane node's etcd client URL.
func EtcdClientURL(n *cluster.Node) string {
	return "https://" + net.JoinHostPort(n.Hostname, strconv.Itoa(etcdClientPort))
}

// etcdAnnotations: kubeadm finds the etcd members it talks to (join,
// upgrade) by this annotation of the etcd Pods; by name, as above.
func etcdAnnotations(r *renderer) map[string]string {
	return map[string]string{"kubeadm.kubernetes.io/etcd.advertise-client-urls": "https://" + net.JoinHostPort(r.n.Hostname, strconv.Itoa(etcdClientPort))}
}

// podPatch is a strategic merge patch of the static Pod p: it runs as
// p's user without privileges (R12), on a read-only root filesystem with
// an emptyDir for /tmp (R14), with the node's own flags.
func (r *renderer) podPatch(p staticPod) func() (File, error) {
	return func() (File, error) {
		container := map[string]any{
			"name": p.name,
			"securityContext": map[string]any{
				"allowPrivilegeEscalation": false,
				"readOnlyRootFilesystem":   true,
				"capabilities":             map[string]any{"drop": []string{"ALL"}},
			},
		}
		mounts := []map[string]any{{"name": "ferry-tmp", "mountPath": "/tmp"}}
		for _, m := range p.readOnly {
			mounts = append(mounts, map[string]any{"mountPath": m, "readOnly": true})
		}
		container["volumeMounts"] = mounts
		if p.args != nil {
			container["args"] = p.args(r)
		}
		podSecurity := map[string]any{
			"runAsUser":    p.user.ID,
			"runAsGroup":   p.user.ID,
			"runAsNonRoot": true,
		}
		if len(p.groups) > 0 {
			podSecurity["supplementalGroups"] = p.groups
		}
		patch := map[string]any{
			"spec": map[string]any{
				"securityContext": podSecurity,
				"containers":      []any{container},
				"volumes":         []any{map[string]any{"name": "ferry-tmp", "emptyDir": map[string]any{}}},
			},
		}
		if p.annotations != nil {
			patch["metadata"] = map[string]any{"annotations": p.annotations(r)}
		}
		body, err := yamlDocs(patch)
		if err != nil {
			return File{}, err
		}
		return r.rootFile(0o644, body), nil
	}
}

// kubeletPatch is the node's kubeletconfiguration patch (a JSON merge
// patch over the cluster's KubeletConfiguration): its overrides from the
// cluster configuration (nodeDefaults, then the node's, key by key;
// cluster.KubeletKnobs), the address it serves on (R31), the cgroup
// driver containerd uses too, and failCgroupV1: false on a cgroup v1 host
// unless the configuration says otherwise (R15: v1 tolerated).
func (r *renderer) kubeletPatch() (File, error) {
	patch := maps.Clone(r.n.Kubelet)
	if patch == nil {
		patch = map[string]any{}
	}
	patch["address"] = r.cpIP.String()
	patch["cgroupDriver"] = r.cgroupDriver
	if _, set := patch["failCgroupV1"]; !set && r.f.CgroupVersion == 1 {
		patch["failCgroupV1"] = false
	}
	body, err := yamlDocs(patch)
	if err != nil {
		return File{}, fmt.Errorf("kubelet overrides: %w", err)
	}
	return r.rootFile(0o644, body), nil
}
