package cluster

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
)

// The ports Ferry's services listen on, on every node of a cluster: one
// definition for the renderers, the installer and the content service.
const (
	// ContentPort is the content service's, on every control-plane node.
	ContentPort = 5443
	// APIServerPort is every control plane's API server's.
	APIServerPort = 6443
	// APIProxyPort is the node-local API server proxy's, on 127.0.0.1
	// (R32).
	APIProxyPort = 6444
)

// APIServerName is the name the API servers' certificates carry for every
// client: the control-plane endpoint's host.
func (c *Cluster) APIServerName() string {
	host, _, err := net.SplitHostPort(c.Spec.ControlPlaneEndpoint)
	if err != nil {
		return c.Spec.ControlPlaneEndpoint
	}
	return host
}

// APIServers are the control planes' API servers, host:port by name.
func (c *Cluster) APIServers() []string {
	var out []string
	for i := range c.Spec.Nodes {
		if n := &c.Spec.Nodes[i]; n.HasRole(RoleControlPlane) {
			out = append(out, net.JoinHostPort(n.Hostname, strconv.Itoa(APIServerPort)))
		}
	}
	return out
}

// ContentServices are the control-plane nodes' content services
// (host:port), in the configuration's order.
func (c *Cluster) ContentServices() []string {
	var out []string
	for i := range c.Spec.Nodes {
		if n := &c.Spec.Nodes[i]; n.HasRole(RoleControlPlane) {
			out = append(out, fmt.Sprintf("%s:%d", n.Hostname, ContentPort))
		}
	}
	return out
}

// NodeContentServices are the content services in the order node n asks
// them (its containerd and dnf): a control plane its own first, a worker
// starting at the i-th service for the i-th worker, so that the workers'
// pulls spread over the services while all are up. Each service is listed
// once; when one is down, the next is asked.
func (c *Cluster) NodeContentServices(n *Node) []string {
	services := c.ContentServices()
	own := fmt.Sprintf("%s:%d", n.Hostname, ContentPort)
	if i := slices.Index(services, own); i >= 0 {
		return append([]string{own}, slices.Delete(slices.Clone(services), i, i+1)...)
	}
	if len(services) == 0 {
		return nil
	}
	worker := 0
	for i := range c.Spec.Nodes {
		if c.Spec.Nodes[i].Name == n.Name {
			break
		}
		if !c.Spec.Nodes[i].HasRole(RoleControlPlane) {
			worker++
		}
	}
	k := worker % len(services)
	return append(slices.Clone(services[k:]), services[:k]...)
}

// PodCIDR is node n's pod range: the i-th /24 of the pod subnet for the
// i-th node of the configuration, a pure function of it (so that the
// routes between nodes are too).
func (c *Cluster) PodCIDR(n *Node) (netip.Prefix, error) {
	pfx, err := netip.ParsePrefix(c.Spec.Kubernetes.PodSubnet)
	if err != nil {
		return netip.Prefix{}, err
	}
	idx := -1
	for i := range c.Spec.Nodes {
		if c.Spec.Nodes[i].Name == n.Name {
			idx = i
		}
	}
	if pfx.Bits() > 24 || idx < 0 || idx >= 1<<(24-pfx.Bits()) {
		return netip.Prefix{}, fmt.Errorf("spec.kubernetes.podSubnet %s has no /24 for node %s", pfx, n.Name)
	}
	a := pfx.Masked().Addr().As4()
	base := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8
	base += uint32(idx) << 8
	return netip.PrefixFrom(netip.AddrFrom4([4]byte{byte(base >> 24), byte(base >> 16), byte(base >> 8), 0}), 24), nil
}

// ClusterDNS is the cluster DNS Service's address: the tenth address of
// the service subnet, as kubeadm chooses it. The kubelet's clusterDNS
// (installer/nodeconfig) and the kube-dns Service's clusterIP (the CoreDNS
// add-on) both come from here, so they cannot disagree.
func (k Kubernetes) ClusterDNS() (netip.Addr, error) {
	p, err := netip.ParsePrefix(k.ServiceSubnet)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("spec.kubernetes.serviceSubnet %q: %w", k.ServiceSubnet, err)
	}
	a := p.Masked().Addr()
	for range 10 {
		a = a.Next()
	}
	if !p.Contains(a) {
		return netip.Addr{}, fmt.Errorf("spec.kubernetes.serviceSubnet %s has no tenth address for the cluster DNS service", p)
	}
	return a, nil
}
