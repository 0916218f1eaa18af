package nodestate

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/ferry-k8s/ferry/installer/cluster"
	"github.com/ferry-k8s/ferry/installer/desired"
	"github.com/ferry-k8s/ferry/installer/layout"
	"github.com/ferry-k8s/ferry/installer/nodeconfig"
)

// ThisNode is the node of c this host is: the one named name, else the
// one whose hostname (or name, or hostname's first label) is the host's.
func ThisNode(c *cluster.Cluster, name string) (*cluster.Node, error) {
	if name != "" {
		if n := c.Node(name); n != nil {
			return n, nil
		}
		return nil, fmt.Errorf("node %q is not in the cluster configuration", name)
	}
	host, err := os.Hostname()
	if err != nil {
		return nil, err
	}
	for i := range c.Spec.Nodes {
		n := &c.Spec.Nodes[i]
		if n.Hostname == host || n.Name == host || strings.SplitN(n.Hostname, ".", 2)[0] == host {
			return n, nil
		}
	}
	return nil, fmt.Errorf("this host (%s) is not a node of the cluster configuration: give --node", host)
}

// Host reads what the host contributes to the desired node: its address
// on each plane, that interface's MTU, cgroups, systemd, SELinux, every
// node's resolved addresses and the firewall backend. version is
// Ferry's (for the firewall's R19 header).
func Host(ctx context.Context, root string, c *cluster.Cluster, n *cluster.Node, version string) (desired.Host, error) {
	h := desired.Host{IPs: map[string]string{}, CgroupVersion: 1}
	if fileExists(filepath.Join(root, "/sys/fs/cgroup/cgroup.controllers")) {
		h.CgroupVersion = 2
	}
	h.Systemd = fileExists(filepath.Join(root, "/run/systemd/system"))
	addrs, err := localAddrs()
	if err != nil {
		return h, err
	}
	planes := map[string]string{
		nodeconfig.PlaneControlPlane: c.Spec.Networks.ControlPlane,
		nodeconfig.PlaneWorkload:     c.Spec.Networks.Workload,
		nodeconfig.PlaneEtcd:         c.Spec.Networks.Etcd,
	}
	for plane, cidr := range planes {
		ip, err := planeAddr(addrs, cidr)
		if err != nil {
			return h, fmt.Errorf("node %s: spec.networks.%s: %w", n.Name, plane, err)
		}
		h.IPs[plane] = ip
	}
	h.MTU = addrMTU(h.IPs[nodeconfig.PlaneWorkload])
	h.SELinux = selinux(root)
	if h.Peers, err = resolvePeers(ctx, c, n, h.IPs); err != nil {
		return h, err
	}
	if h.Firewall, err = firewall(ctx, root, c, n, h.Peers, version); err != nil {
		return h, err
	}
	return h, nil
}

// HasShell says whether rpm knows a provider of /bin/sh on the node (the
// distribution's scriptlets need one; a host not managed by rpm gets the
// host-provides package).
func HasShell(root string) bool {
	return exec.Command("rpm", "--root", root, "-q", "--whatprovides", "/bin/sh").Run() == nil
}

func selinux(root string) *desired.SELinux {
	data, err := os.ReadFile(filepath.Join(root, layout.SELinuxConfig))
	if err != nil {
		return nil
	}
	return &desired.SELinux{Config: data, Enabled: exec.Command("selinuxenabled").Run() == nil}
}

// firewall finds the firewall backend (spec.firewall.backend auto:
// firewalld when it runs, nftables otherwise) and lists every node's
// addresses: the rules admit nodes by address, and an address changed in
// DNS is picked up by the next apply (R30).
func firewall(ctx context.Context, root string, c *cluster.Cluster, n *cluster.Node, peers map[string][]netip.Addr, version string) (*nodeconfig.FirewallInput, error) {
	enabled := c.Spec.Firewall.Enabled == nil || *c.Spec.Firewall.Enabled
	nft := fileExists(filepath.Join(root, "/usr/sbin/nft"))
	firewalld := fileExists(filepath.Join(root, "/usr/bin/firewall-cmd")) &&
		exec.CommandContext(ctx, "systemctl", "is-active", "--quiet", "firewalld.service").Run() == nil
	in := &nodeconfig.FirewallInput{ContentPort: cluster.ContentPort, Version: version}
	switch b := c.Spec.Firewall.Backend; {
	case b == cluster.FirewallFirewalld || (b != cluster.FirewallNftables && firewalld):
		in.Backend = nodeconfig.FirewallBackendFirewalld
	default:
		in.Backend = nodeconfig.FirewallBackendNftables
	}
	if !enabled {
		if in.Backend == nodeconfig.FirewallBackendNftables && nft {
			return in, nil // the ruleset that removes Ferry's table
		}
		return nil, nil
	}
	if in.Backend == nodeconfig.FirewallBackendNftables && !nft {
		return nil, fmt.Errorf("node %s: spec.firewall: the nftables backend needs /usr/sbin/nft: install nftables, run firewalld, or set spec.firewall.enabled: false", n.Name)
	}
	if in.Backend == nodeconfig.FirewallBackendFirewalld && !fileExists(filepath.Join(root, "/usr/bin/firewall-cmd")) {
		return nil, fmt.Errorf("node %s: spec.firewall.backend firewalld: firewall-cmd is not installed", n.Name)
	}
	for i := range c.Spec.Nodes {
		peer := &c.Spec.Nodes[i]
		addrs := peers[peer.Name]
		in.Nodes = append(in.Nodes, addrs...)
		if peer.HasRole(cluster.RoleControlPlane) {
			in.ControlPlane = append(in.ControlPlane, addrs...)
		}
	}
	return in, nil
}

// resolvePeers resolves every node's hostname (R29: nodes are names; the
// addresses are DNS's, read at each apply so that a change reaches the
// firewall and the pod routes, R30). This node's own plane addresses are
// included whatever DNS says.
func resolvePeers(ctx context.Context, c *cluster.Cluster, n *cluster.Node, ips map[string]string) (map[string][]netip.Addr, error) {
	out := map[string][]netip.Addr{}
	for i := range c.Spec.Nodes {
		peer := &c.Spec.Nodes[i]
		var addrs []netip.Addr
		lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		found, err := net.DefaultResolver.LookupNetIP(lctx, "ip", peer.Hostname)
		cancel()
		if err != nil && peer.Name != n.Name {
			return nil, fmt.Errorf("node %s: node %s's hostname %s does not resolve: %w (the pod routes and the firewall need every node's address: add it to DNS or /etc/hosts)", n.Name, peer.Name, peer.Hostname, err)
		}
		for _, a := range found {
			addrs = append(addrs, a.Unmap())
		}
		if peer.Name == n.Name {
			for _, plane := range nodeconfig.Planes {
				if a, err := netip.ParseAddr(ips[plane]); err == nil && !slices.Contains(addrs, a) {
					addrs = append(addrs, a)
				}
			}
		}
		out[peer.Name] = addrs
	}
	return out, nil
}

// localAddrs are the host's global unicast addresses, in interface order.
func localAddrs() ([]netip.Addr, error) {
	ifs, err := net.Interfaces()
	if err != nil {
		return nil, err
	}
	var out []netip.Addr
	for _, i := range ifs {
		if i.Flags&net.FlagUp == 0 || i.Flags&net.FlagLoopback != 0 {
			continue
		}
		as, _ := i.Addrs()
		for _, a := range as {
			if pfx, err := netip.ParsePrefix(a.String()); err == nil && pfx.Addr().Is4() && pfx.Addr().IsGlobalUnicast() {
				out = append(out, pfx.Addr())
			}
		}
	}
	return out, nil
}

// addrMTU is the MTU of the interface that holds addr, 0 when none does.
func addrMTU(addr string) int {
	want, err := netip.ParseAddr(addr)
	if err != nil {
		return 0
	}
	ifs, err := net.Interfaces()
	if err != nil {
		return 0
	}
	for _, i := range ifs {
		as, _ := i.Addrs()
		for _, a := range as {
			if pfx, err := netip.ParsePrefix(a.String()); err == nil && pfx.Addr() == want {
				return i.MTU
			}
		}
	}
	return 0
}

// planeAddr is the host's address in cidr, or its first address when the
// plane is not configured.
func planeAddr(addrs []netip.Addr, cidr string) (string, error) {
	if len(addrs) == 0 {
		return "", errors.New("the host has no IPv4 address")
	}
	if cidr == "" {
		return addrs[0].String(), nil
	}
	pfx, err := netip.ParsePrefix(cidr)
	if err != nil {
		return "", err
	}
	for _, a := range addrs {
		if pfx.Contains(a) {
			return a.String(), nil
		}
	}
	return "", fmt.Errorf("the host has no address in %s", cidr)
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
