package nodeconfig

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/ferry-k8s/ferry/installer/cluster"
)

// Host firewall (R26). The rules restrict Kubernetes' own ports and leave
// every other port of the host as the site configured it: a node keeps its
// SSH and monitoring agents, and the site's firewall policy (firewalld's
// default zone, the site's nftables tables) still applies on top.
//
//	port                 on                 reachable from
//	6443 (API server)     control planes     anywhere (clients, pods)
//	2379-2380 (etcd)      control planes     control-plane nodes only
//	10257, 10259          control planes     the node itself only (they bind 127.0.0.1)
//	content service       control planes     cluster nodes only
//	10250 (kubelet)       every node         control-plane nodes only
//	10256 (kube-proxy)    every node         the node itself only
//
// Loopback is always accepted; sources are every address of the nodes in
// cluster.yaml, resolved from their hostnames (R29) when the plan is made,
// so that an address change in DNS reaches the firewall at the next apply
// (R30).
const (
	// FirewallNftFile is the nftables ruleset: one table, inet ferry,
	// replaced atomically by `nft -f` (the file deletes and recreates it).
	FirewallNftFile = "/etc/ferry/firewall.nft"
	// FirewallUnitFile loads FirewallNftFile at boot, before the kubelet
	// and etcd listen.
	FirewallUnitFile = "/etc/systemd/system/ferry-firewall.service"
	// FirewallUnit is its name.
	FirewallUnit = "ferry-firewall.service"
	// FirewalldZonesDir holds the firewalld zones Ferry writes when
	// firewalld manages the host's firewall.
	FirewalldZonesDir = "/etc/firewalld/zones"
	// FirewallTable is the nftables table.
	FirewallTable = "ferry"
)

// Kubernetes' ports the firewall knows.
const (
	portEtcdClient        = 2379
	portEtcdPeer          = 2380
	portKubelet           = 10250
	portKubeProxyHealth   = 10256
	portControllerManager = 10257
	portScheduler         = 10259
	nodePortRange         = "30000-32767"
)

// Firewall backends as observed on a node (cluster.FirewallAuto is
// resolved by the caller).
const (
	FirewallBackendNftables  = cluster.FirewallNftables
	FirewallBackendFirewalld = cluster.FirewallFirewalld
)

// FirewallInput is what Firewall needs beyond cluster.yaml.
type FirewallInput struct {
	// Backend is nftables or firewalld (auto resolved by observation).
	Backend string
	// ControlPlane are the addresses of every control-plane node;
	// Nodes those of every node (control planes included).
	ControlPlane, Nodes []netip.Addr
	// ContentPort is the content service's port on control-plane nodes.
	ContentPort int
	// Version goes into the R19 header.
	Version string
}

// Firewall renders node's host firewall: with nftables, the ruleset and
// the unit that loads it at boot; with firewalld, two zones whose sources
// are the control-plane nodes and the other nodes. With the firewall
// disabled (spec.firewall.enabled: false) and nftables, the ruleset only
// removes Ferry's table, so that turning the firewall off is an apply too.
func Firewall(c *cluster.Cluster, node string, in FirewallInput) ([]File, error) {
	d := c.Defaulted()
	n := d.Node(node)
	if n == nil {
		return nil, fmt.Errorf("node %q: %w", node, ErrUnknownNode)
	}
	_, portStr, err := net.SplitHostPort(d.Spec.ControlPlaneEndpoint)
	if err != nil {
		return nil, fmt.Errorf("spec.controlPlaneEndpoint: %w", err)
	}
	apiPort, _ := strconv.Atoi(portStr)
	enabled := d.Spec.Firewall.Enabled == nil || *d.Spec.Firewall.Enabled
	if enabled && len(in.ControlPlane) == 0 {
		return nil, errors.New("firewall: no control-plane node address: the firewall would shut the kubelet off from the API server")
	}
	cp := sortedAddrs(in.ControlPlane)
	nodes := sortedAddrs(append(slices.Clone(in.Nodes), in.ControlPlane...))
	controlPlane := n.HasRole(cluster.RoleControlPlane)
	switch in.Backend {
	case FirewallBackendNftables:
		var body string
		if enabled {
			body = nftRuleset(controlPlane, apiPort, in.ContentPort, cp, nodes)
		} else {
			body = fmt.Sprintf("# spec.firewall.enabled is false: Ferry's table is removed.\ntable inet %[1]s\ndelete table inet %[1]s\n", FirewallTable)
		}
		unit := `[Unit]
Description=Ferry host firewall (nftables table inet ` + FirewallTable + `)
DefaultDependencies=no
Before=network-pre.target kubelet.service containerd.service
Wants=network-pre.target
After=local-fs.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/sbin/nft -f ` + FirewallNftFile + `
ExecReload=/usr/sbin/nft -f ` + FirewallNftFile + `

[Install]
WantedBy=multi-user.target
`
		return []File{
			{Path: FirewallNftFile, Mode: 0o644, Owner: "root", Group: "root", Content: WithHeader(in.Version, []byte(body))},
			{Path: FirewallUnitFile, Mode: 0o644, Owner: "root", Group: "root", Content: WithHeader(in.Version, []byte(unit))},
		}, nil
	case FirewallBackendFirewalld:
		if !enabled {
			return nil, nil
		}
		cpZone, err := firewalldZone("ferry-control-plane", "Ferry: Kubernetes ports for the cluster's control-plane nodes", cp,
			firewalldPorts(controlPlane, true, apiPort, in.ContentPort), in.Version)
		if err != nil {
			return nil, err
		}
		var others []netip.Addr
		for _, a := range nodes {
			if !slices.Contains(cp, a) {
				others = append(others, a)
			}
		}
		nodesZone, err := firewalldZone("ferry-nodes", "Ferry: Kubernetes ports for the cluster's other nodes", others,
			firewalldPorts(controlPlane, false, apiPort, in.ContentPort), in.Version)
		if err != nil {
			return nil, err
		}
		return []File{
			{Path: FirewalldZonesDir + "/ferry-control-plane.xml", Mode: 0o644, Owner: "root", Group: "root", Content: cpZone},
			{Path: FirewalldZonesDir + "/ferry-nodes.xml", Mode: 0o644, Owner: "root", Group: "root", Content: nodesZone},
		}, nil
	}
	return nil, fmt.Errorf("firewall backend %q: want %s or %s", in.Backend, FirewallBackendNftables, FirewallBackendFirewalld)
}

func sortedAddrs(as []netip.Addr) []netip.Addr {
	out := slices.Clone(as)
	slices.SortFunc(out, func(a, b netip.Addr) int { return a.Compare(b) })
	return slices.Compact(out)
}

// nftSet is an nftables set literal of addrs of one family, or "" when
// there are none.
func nftSet(addrs []netip.Addr, v4 bool) string {
	var s []string
	for _, a := range addrs {
		if a.Is4() == v4 {
			s = append(s, a.String())
		}
	}
	if len(s) == 0 {
		return ""
	}
	return "{ " + strings.Join(s, ", ") + " }"
}

// nftRuleset is the table: loopback first, then per port an accept for
// the admitted sources and a drop for the rest. The chain's policy is
// accept: other ports are the site's.
func nftRuleset(controlPlane bool, apiPort, contentPort int, cp, nodes []netip.Addr) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# Ferry's host firewall (R26): Kubernetes' ports, reachable only from\n# the nodes that need them. Loaded by %s; `nft list table inet %s`.\n", FirewallUnit, FirewallTable)
	// Declaring the table first makes the delete succeed on a host that
	// does not have it yet; both run in the one transaction of `nft -f`.
	fmt.Fprintf(&b, "table inet %[1]s\ndelete table inet %[1]s\n\ntable inet %[1]s {\n", FirewallTable)
	b.WriteString("\tchain input {\n\t\ttype filter hook input priority filter - 10; policy accept;\n\t\tiifname \"lo\" accept\n")
	only := func(comment string, ports string, from []netip.Addr) {
		for _, v4 := range []bool{true, false} {
			if set := nftSet(from, v4); set != "" {
				family := "ip"
				if !v4 {
					family = "ip6"
				}
				fmt.Fprintf(&b, "\t\ttcp dport %s %s saddr %s accept comment %q\n", ports, family, set, comment)
			}
		}
		fmt.Fprintf(&b, "\t\ttcp dport %s drop comment %q\n", ports, comment+": from elsewhere")
	}
	if controlPlane {
		only("etcd from control-plane nodes", fmt.Sprintf("{ %d, %d }", portEtcdClient, portEtcdPeer), cp)
		only("controller-manager and scheduler: local only", fmt.Sprintf("{ %d, %d }", portControllerManager, portScheduler), nil)
		only("content service from cluster nodes", strconv.Itoa(contentPort), nodes)
		fmt.Fprintf(&b, "\t\ttcp dport %d accept comment %q\n", apiPort, "API server")
	}
	only("kubelet from control-plane nodes", strconv.Itoa(portKubelet), cp)
	only("kube-proxy health: local only", strconv.Itoa(portKubeProxyHealth), nil)
	b.WriteString("\t}\n}\n")
	return b.String()
}

type firewalldPort struct {
	Protocol string `xml:"protocol,attr"`
	Port     string `xml:"port,attr"`
}

// firewalldPorts are the ports a zone of sources opens on this node:
// fromControlPlane for the control-plane nodes' zone.
func firewalldPorts(controlPlane, fromControlPlane bool, apiPort, contentPort int) []firewalldPort {
	tcp := func(p string) firewalldPort { return firewalldPort{Protocol: "tcp", Port: p} }
	var ps []firewalldPort
	if fromControlPlane {
		ps = append(ps, tcp(strconv.Itoa(portKubelet)))
	}
	if controlPlane {
		ps = append(ps, tcp(strconv.Itoa(apiPort)), tcp(strconv.Itoa(contentPort)))
		if fromControlPlane {
			ps = append(ps, tcp(fmt.Sprintf("%d-%d", portEtcdClient, portEtcdPeer)))
		}
	}
	return append(ps, tcp(nodePortRange), firewalldPort{Protocol: "udp", Port: nodePortRange})
}

// firewalldZone is a zone file: its sources get exactly these ports.
func firewalldZone(name, description string, sources []netip.Addr, ports []firewalldPort, version string) ([]byte, error) {
	type source struct {
		Address string `xml:"address,attr"`
	}
	zone := struct {
		XMLName     xml.Name        `xml:"zone"`
		Target      string          `xml:"target,attr"`
		Short       string          `xml:"short"`
		Description string          `xml:"description"`
		Sources     []source        `xml:"source"`
		Ports       []firewalldPort `xml:"port"`
	}{Target: "default", Short: name, Description: description, Ports: ports}
	for _, a := range sources {
		zone.Sources = append(zone.Sources, source{Address: a.String()})
	}
	body, err := xml.MarshalIndent(zone, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("firewalld zone %s: %w", name, err)
	}
	body = append(body, '\n')
	// The R19 header as an XML comment (a "#" line is not XML; a comment
	// may come before the root element when there is no XML declaration).
	hdr := WithHeader(version, body)
	line := strings.TrimPrefix(string(hdr[:bytes.IndexByte(hdr, '\n')]), "# ")
	var b bytes.Buffer
	fmt.Fprintf(&b, "<!-- %s -->\n", strings.ReplaceAll(line, "--", "- -"))
	b.Write(body)
	return b.Bytes(), nil
}
