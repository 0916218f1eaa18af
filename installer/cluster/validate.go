package cluster

import (
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/ferry-k8s/ferry/bundle"
)

// Validate checks the configuration as it will be applied (with defaults
// filled in, without changing c) and returns every problem, each naming
// its field path ("spec.nodes[2].roles[0]: …"), joined.
func (c *Cluster) Validate() error {
	v := &validator{}
	if c.APIVersion != bundle.APIVersion {
		v.add("apiVersion", "must be %q, got %q", bundle.APIVersion, c.APIVersion)
	}
	if c.Kind != KindCluster {
		v.add("kind", "must be %q, got %q", KindCluster, c.Kind)
	}
	if err := checkDNSLabel(c.Metadata.Name); err != nil {
		v.add("metadata.name", "%v", err)
	}
	s := &c.Spec
	v.endpoint(s.ControlPlaneEndpoint)
	// Field by field on what the file says, so each problem is reported
	// once, where it was written …
	v.kubernetes(&s.Kubernetes)
	planes := v.networks(&s.Networks)
	v.nodeSettings("spec.nodeDefaults", &s.NodeDefaults)
	v.nodes(s.Nodes)
	v.encryption(&s.EncryptionAtRest)
	v.authentication(&s.Authentication)
	v.firewall(&s.Firewall)
	if m := s.Upgrade.MaxUnavailable; m != nil {
		if err := m.check(); err != nil {
			v.add("spec.upgrade.maxUnavailable", "%v", err)
		}
	}
	// … then what only the defaulted whole can show.
	d := c.Defaulted()
	v.subnets(&d.Spec.Kubernetes, planes, len(d.Spec.Nodes))
	v.effectiveNodes(c, d)
	return errors.Join(v.errs...)
}

type validator struct{ errs []error }

func (v *validator) add(field, format string, args ...any) {
	v.errs = append(v.errs, fieldErr(field, format, args...))
}

func (v *validator) endpoint(ep string) {
	const f = "spec.controlPlaneEndpoint"
	if ep == "" {
		v.add(f, "required: the API servers' DNS name, such as api.example.com:6443")
		return
	}
	host := ep
	if h, port, err := net.SplitHostPort(ep); err == nil {
		host = h
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 || strconv.Itoa(n) != port {
			v.add(f, "port %q: must be a number from 1 to 65535", port)
		}
	}
	if err := checkDNSName(host, false); err != nil {
		v.add(f, "%v", err)
	}
}

func (v *validator) kubernetes(k *Kubernetes) {
	for _, sub := range []struct{ field, value string }{
		{"spec.kubernetes.podSubnet", k.PodSubnet},
		{"spec.kubernetes.serviceSubnet", k.ServiceSubnet},
	} {
		if sub.value == "" {
			continue
		}
		if _, err := parseCIDR(sub.value); err != nil {
			v.add(sub.field, "%v", err)
		}
	}
	if k.ClusterDomain != "" {
		if err := checkDNSName(k.ClusterDomain, false); err != nil {
			v.add("spec.kubernetes.clusterDomain", "%v", err)
		}
	}
	for _, name := range sortedKeys(k.FeatureGates) {
		if !featureGateRE.MatchString(name) {
			v.add("spec.kubernetes.featureGates."+name, "not a feature gate name (CamelCase letters and digits)")
		}
	}
}

// plane is a parsed per-plane network.
type plane struct {
	field  string
	prefix netip.Prefix
}

func (v *validator) networks(n *Networks) []plane {
	var out []plane
	for _, p := range []struct{ field, value string }{
		{"spec.networks.controlPlane", n.ControlPlane},
		{"spec.networks.workload", n.Workload},
		{"spec.networks.etcd", n.Etcd},
	} {
		if p.value == "" {
			continue
		}
		pr, err := parseCIDR(p.value)
		if err != nil {
			v.add(p.field, "%v", err)
			continue
		}
		out = append(out, plane{p.field, pr})
	}
	return out
}

// subnets checks the pod and service subnets (defaulted) against each other
// and the planes. Planes may share networks with each other.
func (v *validator) subnets(k *Kubernetes, planes []plane, nodes int) {
	pod, errPod := parseCIDR(k.PodSubnet)
	svc, errSvc := parseCIDR(k.ServiceSubnet)
	if errPod == nil && errSvc == nil {
		if pod.Overlaps(svc) {
			v.add("spec.kubernetes.serviceSubnet", "%s overlaps the pod subnet %s", svc, pod)
		}
		if pod.Addr().Is4() != svc.Addr().Is4() {
			v.add("spec.kubernetes.serviceSubnet", "%s and the pod subnet %s are of different IP families (dual-stack is not supported yet)", svc, pod)
		}
	}
	if errSvc == nil {
		// kube-apiserver allocates service IPs from at most 2^20 addresses.
		if hostBits := svc.Addr().BitLen() - svc.Bits(); hostBits > 20 {
			v.add("spec.kubernetes.serviceSubnet", "%s is too large: at most /%d (2^20 addresses)", svc, svc.Addr().BitLen()-20)
		}
	}
	if errPod == nil {
		// Each node gets a /24 (IPv4) or /64 (IPv6) of the pod subnet.
		nodeBits := 24
		if !pod.Addr().Is4() {
			nodeBits = 64
		}
		switch {
		case pod.Bits() > nodeBits:
			v.add("spec.kubernetes.podSubnet", "%s is smaller than one node's /%d", pod, nodeBits)
		case nodeBits-pod.Bits() < 31 && 1<<(nodeBits-pod.Bits()) < nodes:
			v.add("spec.kubernetes.podSubnet", "%s has room for %d nodes' /%d, the cluster has %d nodes", pod, 1<<(nodeBits-pod.Bits()), nodeBits, nodes)
		}
	}
	for _, p := range planes {
		if errPod == nil && p.prefix.Overlaps(pod) {
			v.add(p.field, "%s overlaps the pod subnet %s", p.prefix, pod)
		}
		if errSvc == nil && p.prefix.Overlaps(svc) {
			v.add(p.field, "%s overlaps the service subnet %s", p.prefix, svc)
		}
	}
}

func (v *validator) nodeSettings(p string, ns *NodeSettings) {
	switch ns.SELinux {
	case "", SELinuxEnforcing, SELinuxPermissive, SELinuxDisabled:
	default:
		v.add(p+".selinux", "must be enforcing, permissive or disabled, got %q", ns.SELinux)
	}
	v.errs = append(v.errs, checkKubelet(p+".kubelet", ns.Kubelet)...)
}

// kubeletOwnedLabels are set by the kubelet itself.
var kubeletOwnedLabels = []string{"kubernetes.io/hostname", "kubernetes.io/os", "kubernetes.io/arch", "beta.kubernetes.io/os", "beta.kubernetes.io/arch"}

func (v *validator) nodes(nodes []Node) {
	if len(nodes) == 0 {
		v.add("spec.nodes", "required: at least one node with the control-plane role")
		return
	}
	names, hosts := map[string]int{}, map[string]int{}
	controlPlanes := 0
	for i := range nodes {
		n := &nodes[i]
		p := fmt.Sprintf("spec.nodes[%d]", i)
		if err := checkDNSLabel(n.Name); err != nil {
			v.add(p+".name", "%v", err)
		} else if j, dup := names[n.Name]; dup {
			v.add(p+".name", "%q is also spec.nodes[%d].name", n.Name, j)
		} else {
			names[n.Name] = i
		}
		if err := checkDNSName(n.Hostname, true); err != nil {
			v.add(p+".hostname", "%v", err)
		} else if j, dup := hosts[n.Hostname]; dup {
			v.add(p+".hostname", "%q is also spec.nodes[%d].hostname", n.Hostname, j)
		} else {
			hosts[n.Hostname] = i
		}
		if len(n.Roles) == 0 {
			v.add(p+".roles", "required: control-plane, worker, or both")
		}
		for j, r := range n.Roles {
			switch {
			case r != RoleControlPlane && r != RoleWorker:
				v.add(fmt.Sprintf("%s.roles[%d]", p, j), "unknown role %q (want control-plane or worker)", r)
			case slices.Index(n.Roles, r) < j:
				v.add(fmt.Sprintf("%s.roles[%d]", p, j), "%q is listed twice", r)
			}
		}
		if n.HasRole(RoleControlPlane) {
			controlPlanes++
		}
		for _, k := range sortedKeys(n.Labels) {
			lp := p + ".labels." + k
			if err := checkLabelKey(k); err != nil {
				v.add(lp, "%v", err)
				continue
			}
			if err := checkLabelValue(n.Labels[k]); err != nil {
				v.add(lp, "%v", err)
			}
			if slices.Contains(kubeletOwnedLabels, k) {
				v.add(lp, "set by the kubelet, not by the configuration")
			}
			if role, ok := strings.CutPrefix(k, "node-role.kubernetes.io/"); ok && (role == string(RoleControlPlane) || role == string(RoleWorker)) && !n.HasRole(Role(role)) {
				v.add(lp, "the node does not have the %s role (set roles instead)", role)
			}
		}
		seen := map[string]int{}
		for j, s := range n.Taints {
			tp := fmt.Sprintf("%s.taints[%d]", p, j)
			t, err := ParseTaint(s)
			if err != nil {
				v.add(tp, "%v", err)
				continue
			}
			id := t.Key + ":" + t.Effect
			if k, dup := seen[id]; dup {
				v.add(tp, "%s:%s is also taints[%d]", t.Key, t.Effect, k)
			}
			seen[id] = j
		}
		v.nodeSettings(p, &NodeSettings{SELinux: n.SELinux, Kubelet: n.Kubelet})
	}
	switch {
	case controlPlanes == 0:
		v.add("spec.nodes", "no node has the control-plane role")
	case controlPlanes > MaxControlPlanes:
		v.add("spec.nodes", "%d control-plane nodes: etcd runs a member on each, and more than %d members only slow its writes (R54: 1, 3, 5 or 7)", controlPlanes, MaxControlPlanes)
	case controlPlanes%2 == 0:
		v.add("spec.nodes", "%d control-plane nodes: etcd runs a member on each and needs an odd number of them (R54: 1, 3, 5 or 7); %d members tolerate %d failed, as %d do, with one more node that can fail", controlPlanes, controlPlanes, controlPlanes/2-1, controlPlanes-1)
	}
}

// MaxControlPlanes is the most control-plane nodes (etcd members) a
// cluster has (R54).
const MaxControlPlanes = 7

// effectiveNodes checks each node's settings as merged with nodeDefaults;
// raw is the configuration as written (to say where a value came from).
func (v *validator) effectiveNodes(raw, d *Cluster) {
	for i := range d.Spec.Nodes {
		n := &d.Spec.Nodes[i]
		p := fmt.Sprintf("spec.nodes[%d]", i)
		if n.HasRole(RoleControlPlane) && (n.SELinux == SELinuxPermissive || n.SELinux == SELinuxDisabled) &&
			!d.Spec.Security.AllowNonEnforcingControlPlane {
			from := ""
			if i < len(raw.Spec.Nodes) && raw.Spec.Nodes[i].SELinux == "" {
				from = " (from spec.nodeDefaults.selinux)"
			}
			v.add(p+".selinux", "%q%s on a control-plane node needs spec.security.allowNonEnforcingControlPlane: true (R13: only workers may leave enforcing)", n.SELinux, from)
		}
		v.errs = append(v.errs, checkEffectiveKubelet(p+".kubelet", n.Kubelet)...)
		if driver, _ := n.Kubelet["cgroupDriver"].(string); n.Containerd != nil && n.Containerd.SystemdCgroup != nil {
			if systemd := *n.Containerd.SystemdCgroup; systemd != (driver != "cgroupfs") {
				if driver == "" {
					driver = "systemd (the default)"
				}
				v.add(p+".containerd.systemdCgroup", "%v disagrees with the kubelet's cgroupDriver %s: both must use the same cgroup manager", systemd, driver)
			}
		}
	}
}

// validEncryptedResource: resource, resource.group, *.group, *. (the core
// group) or *.* — the forms of an EncryptionConfiguration.
func validEncryptedResource(r string) bool {
	name, group, dotted := strings.Cut(r, ".")
	switch {
	case r == "*.*" || r == "*.":
		return true
	case name == "*":
		return checkDNSName(group, false) == nil
	case checkDNSLabel(name) != nil:
		return false
	}
	return !dotted || checkDNSName(group, false) == nil
}

func (v *validator) encryption(e *EncryptionAtRest) {
	const p = "spec.encryptionAtRest"
	switch e.Provider {
	case "", ProviderSecretbox, ProviderAESGCM:
	default:
		v.add(p+".provider", "must be secretbox or aesgcm, got %q", e.Provider)
	}
	if len(e.Resources) == 0 {
		return // default: secrets
	}
	coversSecrets := false
	for i, r := range e.Resources {
		rp := fmt.Sprintf("%s.resources[%d]", p, i)
		switch {
		case !validEncryptedResource(r):
			v.add(rp, "%q: want resource, resource.group, *.group, *. (every core resource) or *.*", r)
		case slices.Index(e.Resources, r) < i:
			v.add(rp, "%q is listed twice", r)
		}
		if r == "secrets" || r == "*." || r == "*.*" {
			coversSecrets = true
		}
	}
	if !coversSecrets {
		v.add(p+".resources", "must include secrets (R9)")
	}
}

func (v *validator) authentication(a *Authentication) {
	const p = "spec.authentication"
	if o := a.OIDC; o != nil {
		v.issuer(o.IssuerURL)
		if strings.TrimSpace(o.ClientID) == "" {
			v.add(p+".oidc.clientID", "required: the audience tokens are issued for")
		}
		for _, c := range []struct{ field, value string }{
			{"usernameClaim", o.UsernameClaim}, {"groupsClaim", o.GroupsClaim},
			{"usernamePrefix", o.UsernamePrefix}, {"groupsPrefix", o.GroupsPrefix},
		} {
			if c.value != strings.TrimSpace(c.value) || strings.ContainsAny(c.value, "\x00\n\r\t") {
				v.add(p+".oidc."+c.field, "%q: no surrounding spaces or control characters", c.value)
			}
		}
		if o.CAFile != "" && strings.ContainsRune(o.CAFile, 0) {
			v.add(p+".oidc.caFile", "not a file name")
		}
	}
	names := map[string]int{}
	for i, u := range a.StaticUsers {
		up := fmt.Sprintf("%s.staticUsers[%d]", p, i)
		switch {
		case !validSubjectName(u.Name):
			v.add(up+".name", "%q: want a non-empty name without control characters or surrounding spaces", u.Name)
		case strings.HasPrefix(u.Name, "system:"):
			v.add(up+".name", "%q: the system: prefix is Kubernetes'", u.Name)
		default:
			if j, dup := names[u.Name]; dup {
				v.add(up+".name", "%q is also staticUsers[%d]", u.Name, j)
			}
			names[u.Name] = i
		}
		for j, g := range u.Groups {
			gp := fmt.Sprintf("%s.groups[%d]", up, j)
			switch {
			case !validSubjectName(g):
				v.add(gp, "%q: want a non-empty name without control characters or surrounding spaces", g)
			case g == "system:masters":
				v.add(gp, "system:masters bypasses RBAC and a client certificate cannot be revoked: bind a group such as kubeadm:cluster-admins to cluster-admin instead")
			case slices.Index(u.Groups, g) < j:
				v.add(gp, "%q is listed twice", g)
			}
		}
	}
}

// validSubjectName: a user or group name that fits a certificate subject.
func validSubjectName(s string) bool {
	return s != "" && len(s) <= 256 && s == strings.TrimSpace(s) && !strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f })
}

func (v *validator) issuer(raw string) {
	const f = "spec.authentication.oidc.issuerURL"
	u, err := url.Parse(raw)
	switch {
	case raw == "":
		v.add(f, "required: the OIDC issuer, such as https://login.example.com")
	case err != nil:
		v.add(f, "%q is not a URL", raw)
	case u.Scheme != "https":
		v.add(f, "%q: must be https (R21)", raw)
	case u.User != nil || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "":
		v.add(f, "%q: no user info, query or fragment", raw)
	default:
		host := u.Hostname()
		if err := checkDNSName(host, false); err != nil {
			v.add(f, "host %v", err)
		}
		if port := u.Port(); port != "" {
			if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
				v.add(f, "port %q: must be a number from 1 to 65535", port)
			}
		}
	}
}

func (v *validator) firewall(f *Firewall) {
	switch f.Backend {
	case "", FirewallAuto, FirewallFirewalld, FirewallNftables:
	default:
		v.add("spec.firewall.backend", "must be auto, firewalld or nftables, got %q", f.Backend)
	}
}

func sortedKeys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }
