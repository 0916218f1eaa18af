package cluster

import (
	"maps"
	"net"
	"slices"
	"strconv"
)

// Defaulted returns a deep copy of c with every default filled in (see
// SetDefaults); c is not changed.
func (c *Cluster) Defaulted() *Cluster {
	d := c.DeepCopy()
	d.SetDefaults()
	return d
}

// SetDefaults fills in every default, in place; applying it twice changes
// nothing more:
//   - controlPlaneEndpoint: port 6443 when none is given
//   - kubernetes: podSubnet 10.244.0.0/16, serviceSubnet 10.96.0.0/12,
//     clusterDomain cluster.local
//   - nodeDefaults.selinux: enforcing
//   - each node: selinux, kubelet and containerd from nodeDefaults where
//     the node does not set them; containerd's restrictOOMScoreAdj false
//     and systemdCgroup following the kubelet's cgroupDriver; the labels
//     node-role.kubernetes.io/<role> for its roles; the control-plane
//     taint when it is a control-plane node without the worker role
//   - encryptionAtRest: resources [secrets], provider secretbox
//   - authentication.oidc.usernameClaim: sub
//   - firewall: enabled, backend auto
//   - upgrade.maxUnavailable: 1
func (c *Cluster) SetDefaults() {
	s := &c.Spec
	if ep := s.ControlPlaneEndpoint; ep != "" {
		if _, _, err := net.SplitHostPort(ep); err != nil {
			s.ControlPlaneEndpoint = net.JoinHostPort(ep, strconv.Itoa(DefaultAPIServerPort))
		}
	}
	k := &s.Kubernetes
	k.PodSubnet = or(k.PodSubnet, DefaultPodSubnet)
	k.ServiceSubnet = or(k.ServiceSubnet, DefaultServiceSubnet)
	k.ClusterDomain = or(k.ClusterDomain, DefaultClusterDomain)
	s.NodeDefaults.SELinux = or(s.NodeDefaults.SELinux, SELinuxEnforcing)
	for i := range s.Nodes {
		s.Nodes[i].setDefaults(&s.NodeDefaults)
	}
	if len(s.EncryptionAtRest.Resources) == 0 {
		s.EncryptionAtRest.Resources = []string{DefaultEncryptedObject}
	}
	s.EncryptionAtRest.Provider = or(s.EncryptionAtRest.Provider, ProviderSecretbox)
	if o := s.Authentication.OIDC; o != nil {
		o.UsernameClaim = or(o.UsernameClaim, DefaultUsernameClaim)
	}
	if s.Firewall.Enabled == nil {
		s.Firewall.Enabled = ptr(true)
	}
	s.Firewall.Backend = or(s.Firewall.Backend, FirewallAuto)
	if s.Upgrade.MaxUnavailable == nil {
		s.Upgrade.MaxUnavailable = Int(DefaultMaxUnavailable)
	}
}

func (n *Node) setDefaults(def *NodeSettings) {
	n.SELinux = or(n.SELinux, def.SELinux, SELinuxEnforcing)
	n.Kubelet = mergeKubelet(def.Kubelet, n.Kubelet)
	cd := Containerd{}
	if def.Containerd != nil {
		cd = *def.Containerd
	}
	if n.Containerd != nil {
		if n.Containerd.RestrictOOMScoreAdj != nil {
			cd.RestrictOOMScoreAdj = n.Containerd.RestrictOOMScoreAdj
		}
		if n.Containerd.SystemdCgroup != nil {
			cd.SystemdCgroup = n.Containerd.SystemdCgroup
		}
	}
	if cd.RestrictOOMScoreAdj == nil {
		cd.RestrictOOMScoreAdj = ptr(false)
	}
	if cd.SystemdCgroup == nil {
		cd.SystemdCgroup = ptr(n.Kubelet["cgroupDriver"] != "cgroupfs")
	}
	n.Containerd = &Containerd{RestrictOOMScoreAdj: ptr(*cd.RestrictOOMScoreAdj), SystemdCgroup: ptr(*cd.SystemdCgroup)}
	for _, r := range n.Roles {
		if r != RoleControlPlane && r != RoleWorker {
			continue // Validate reports it; no label for a typo
		}
		key := "node-role.kubernetes.io/" + string(r)
		if _, ok := n.Labels[key]; !ok {
			if n.Labels == nil {
				n.Labels = map[string]string{}
			}
			n.Labels[key] = ""
		}
	}
	if n.HasRole(RoleControlPlane) && !n.HasRole(RoleWorker) && !slices.Contains(n.Taints, ControlPlaneTaint) {
		n.Taints = append(n.Taints, ControlPlaneTaint)
	}
}

// mergeKubelet is the defaults with the node's keys over them (a new map;
// nil when both are empty).
func mergeKubelet(def, node map[string]any) map[string]any {
	if len(def) == 0 && len(node) == 0 {
		return nil
	}
	out := make(map[string]any, len(def)+len(node))
	for k, v := range def {
		out[k] = copyValue(v)
	}
	for k, v := range node {
		out[k] = copyValue(v)
	}
	return out
}

// DeepCopy returns a copy of c that shares no memory with it.
func (c *Cluster) DeepCopy() *Cluster {
	d := *c
	s := &d.Spec
	s.Kubernetes.FeatureGates = maps.Clone(s.Kubernetes.FeatureGates)
	s.NodeDefaults = s.NodeDefaults.deepCopy()
	s.Nodes = slices.Clone(s.Nodes)
	for i := range s.Nodes {
		n := &s.Nodes[i]
		n.Roles = slices.Clone(n.Roles)
		n.Labels = maps.Clone(n.Labels)
		n.Taints = slices.Clone(n.Taints)
		n.Kubelet = copyMap(n.Kubelet)
		n.Containerd = n.Containerd.deepCopy()
	}
	s.EncryptionAtRest.Resources = slices.Clone(s.EncryptionAtRest.Resources)
	if o := s.Authentication.OIDC; o != nil {
		oc := *o
		s.Authentication.OIDC = &oc
	}
	s.Authentication.StaticUsers = slices.Clone(s.Authentication.StaticUsers)
	for i := range s.Authentication.StaticUsers {
		u := &s.Authentication.StaticUsers[i]
		u.Groups = slices.Clone(u.Groups)
	}
	if e := s.Firewall.Enabled; e != nil {
		s.Firewall.Enabled = ptr(*e)
	}
	if m := s.Upgrade.MaxUnavailable; m != nil {
		mc := *m
		s.Upgrade.MaxUnavailable = &mc
	}
	return &d
}

func (ns NodeSettings) deepCopy() NodeSettings {
	ns.Kubelet = copyMap(ns.Kubelet)
	ns.Containerd = ns.Containerd.deepCopy()
	return ns
}

func (cd *Containerd) deepCopy() *Containerd {
	if cd == nil {
		return nil
	}
	out := &Containerd{}
	if cd.RestrictOOMScoreAdj != nil {
		out.RestrictOOMScoreAdj = ptr(*cd.RestrictOOMScoreAdj)
	}
	if cd.SystemdCgroup != nil {
		out.SystemdCgroup = ptr(*cd.SystemdCgroup)
	}
	return out
}

func copyMap(m map[string]any) map[string]any {
	if m == nil {
		return nil
	}
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = copyValue(v)
	}
	return out
}

// copyValue copies a decoded YAML value (maps and lists deeply).
func copyValue(v any) any {
	switch x := v.(type) {
	case map[string]any:
		return copyMap(x)
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = copyValue(e)
		}
		return out
	}
	return v
}

// or is the first non-empty value.
func or[T ~string](vs ...T) T {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}

func ptr[T any](v T) *T { return &v }
