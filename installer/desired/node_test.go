package desired

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ferry-k8s/ferry/installer/cluster"
	"github.com/ferry-k8s/ferry/installer/converge"
	"github.com/ferry-k8s/ferry/installer/layout"
	"github.com/ferry-k8s/ferry/installer/nodeconfig"
	"github.com/ferry-k8s/ferry/installer/pki"
)

var update = flag.Bool("update", false, "rewrite testdata/golden")

// The golden cases: every role × mode Ferry installs, and an address
// change.
var cases = []struct {
	name, config, node, mode string
	// ip is the node's address on every plane.
	ip string
	// join: the node joins with a join file.
	join bool
}{
	{"single-server", "../nodeconfig/testdata/single.yaml", "n1", ModeBootstrap, "192.0.2.10", false},
	{"first-control-plane", "../cluster/testdata/cluster.yaml", "cp1", ModeBootstrap, "192.168.10.11", false},
	{"control-plane-joins", "../cluster/testdata/cluster.yaml", "cp2", ModeJoin, "192.168.10.12", true},
	{"control-plane-joined", "../cluster/testdata/cluster.yaml", "cp2", ModeJoin, "192.168.10.12", false},
	{"worker-joins", "../cluster/testdata/cluster.yaml", "gpu1", ModeJoin, "192.168.20.21", true},
	{"worker-nspawn", "../cluster/testdata/cluster.yaml", "lab1", ModeJoin, "192.168.20.22", false},
	{"address-change", "../cluster/testdata/cluster.yaml", "cp1", ModeBootstrap, "192.168.10.99", false},
}

// input is a fixed Input for a case: the PKI's files are placeholders
// named by path, so the golden files are stable.
func input(t *testing.T, config, node, mode, ip string, join bool) Input {
	t.Helper()
	c, err := cluster.Load(config)
	if err != nil {
		t.Fatal(err)
	}
	c = c.Defaulted()
	if o := c.Spec.Authentication.OIDC; o != nil && o.CAFile != "" {
		o.CAFile = "" // nodestate reads the file; its content is checked by nodeconfig
	}
	n := c.Node(node)
	if n == nil {
		t.Fatalf("%s has no node %s", config, node)
	}
	placeholder := func(p string) []byte { return []byte("-----PLACEHOLDER " + p + "-----\n") }
	peers := map[string][]netip.Addr{}
	for i := range c.Spec.Nodes {
		peers[c.Spec.Nodes[i].Name] = []netip.Addr{netip.AddrFrom4([4]byte{192, 168, 20, byte(10 + i)})}
	}
	peers[n.Name] = []netip.Addr{netip.MustParseAddr(ip)}
	in := Input{
		Cluster: c, Node: n, Mode: mode, Version: "1.2.3",
		ClusterConfig: []byte("# cluster.yaml as the admin wrote it\n"),
		Keyring:       []byte("-----BEGIN PGP PUBLIC KEY BLOCK-----\n"),
		Bundle: Bundle{Name: "ferry", Version: "1.2.0", KubernetesVersion: "v1.36.3", Repo: "el9-x86_64",
			Packages:        map[string]string{},
			ImageRepository: "registry.ferry.dev/k8s",
			Images: map[string]string{"pause": "registry.ferry.dev/k8s/pause:3.10", "etcd": "registry.ferry.dev/k8s/etcd:3.6.8-0",
				"coredns": "registry.ferry.dev/k8s/coredns:v1.14.2"}},
		Host: Host{IPs: planeIPs(c, ip),
			MTU: 1500, CgroupVersion: 2, Systemd: true, Peers: peers,
			SELinux: &SELinux{Config: []byte("SELINUX=permissive\nSELINUXTYPE=targeted\n"), Enabled: true}},
		HostProvidesRPM:       layout.HostProvidesRPM,
		IgnorePreflightErrors: []string{"SystemVerification"},
	}
	for _, p := range NodePackages {
		in.Bundle.Packages[p] = "1.36.3-1.ferry"
	}
	var fw []netip.Addr
	for _, a := range peers {
		fw = append(fw, a...)
	}
	slices.SortFunc(fw, func(a, b netip.Addr) int { return a.Compare(b) })
	in.Host.Firewall = &nodeconfig.FirewallInput{Backend: nodeconfig.FirewallBackendNftables, Nodes: fw, ControlPlane: fw[:1], ContentPort: cluster.ContentPort, Version: "1.2.3"}
	if join {
		in.Discovery = []byte("apiVersion: v1\nkind: Config\n# discovery\n")
	}
	if n.HasRole(cluster.RoleControlPlane) {
		in.EncryptionKey = bytes.Repeat([]byte{7}, nodeconfig.EncryptionKeySize)
		in.ServedISOs = []string{layout.BundlesDir + "/ferry-1.2.0.iso"}
		if mode == ModeJoin && !join {
			in.EtcdInitialCluster = "cp1=https://cp1.prod.example.com:2380,cp2=https://cp2.prod.example.com:2380"
		}
		leaves, err := ControlPlaneLeaves(c, n, in.Host.IPs[nodeconfig.PlaneControlPlane])
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range ControlPlaneRealms {
			for _, f := range []string{pki.CACertFile, pki.CAKeyFile} {
				p := filepath.Join(layout.PKIDir, r, f)
				in.PKI = append(in.PKI, converge.File{Path: p, Mode: 0o644, Content: placeholder(p)})
			}
		}
		in.PKI = append(in.PKI, converge.File{Path: layout.ClusterCA, Mode: 0o644, Content: placeholder(layout.ClusterCA)})
		for _, l := range leaves {
			in.PKI = append(in.PKI, converge.File{Path: l.Cert, Mode: 0o644, Content: placeholder(l.Cert)},
				converge.File{Path: l.Key, Mode: 0o600, Content: placeholder(l.Key), Secret: true})
		}
		return in
	}
	for _, l := range WorkerLeaves(n) {
		in.PKI = append(in.PKI, converge.File{Path: l.Cert, Mode: 0o644, Content: placeholder(l.Cert)},
			converge.File{Path: l.Key, Mode: 0o600, Content: placeholder(l.Key), Secret: true})
	}
	in.ClusterCA, in.ContentCA = placeholder(layout.ClusterCA), placeholder(ContentCAFile)
	return in
}

// planeIPs puts ip's last byte into each plane's network (ip itself where
// the plane has none).
func planeIPs(c *cluster.Cluster, ip string) map[string]string {
	a := netip.MustParseAddr(ip).As4()
	out := map[string]string{}
	for plane, cidr := range map[string]string{nodeconfig.PlaneControlPlane: c.Spec.Networks.ControlPlane,
		nodeconfig.PlaneWorkload: c.Spec.Networks.Workload, nodeconfig.PlaneEtcd: c.Spec.Networks.Etcd} {
		out[plane] = ip
		if pfx, err := netip.ParsePrefix(cidr); err == nil {
			b := pfx.Addr().As4()
			b[3] = a[3]
			out[plane] = netip.AddrFrom4(b).String()
		}
	}
	return out
}

// dump prints a desired node for a golden file: every field, files with
// their content unless secret (a digest then) or rendered by nodeconfig
// (whose own golden files pin them: a digest here).
func dump(d converge.Desired, warnings []string) []byte {
	var b bytes.Buffer
	digest := func(c []byte) string { s := sha256.Sum256(c); return hex.EncodeToString(s[:8]) }
	fmt.Fprintf(&b, "kubernetesVersion: %s\n", d.KubernetesVersion)
	fmt.Fprintf(&b, "packages:\n")
	for _, k := range sortedKeys(d.Packages) {
		fmt.Fprintf(&b, "  %s-%s\n", k, d.Packages[k])
	}
	for _, k := range sortedKeys(d.LocalPackages) {
		fmt.Fprintf(&b, "  local %s: %s\n", k, d.LocalPackages[k])
	}
	for _, k := range sortedKeys(d.PackageRestarts) {
		fmt.Fprintf(&b, "  upgrading %s restarts %v\n", k, d.PackageRestarts[k])
	}
	fmt.Fprintf(&b, "dirs:\n")
	for _, x := range d.Dirs {
		fmt.Fprintf(&b, "  %s %s %s:%s\n", x.Path, x.Mode, x.Owner, x.Group)
	}
	fmt.Fprintf(&b, "files:\n")
	for _, f := range d.Files {
		fmt.Fprintf(&b, "- %s %s %s:%s restarts=%v after=%q secret=%v\n", f.Path, f.Mode, f.Owner, f.Group, f.Restarts, f.After, f.Secret)
		switch {
		case f.Secret:
			fmt.Fprintf(&b, "  [secret, %d bytes, sha256 %s]\n", len(f.Content), digest(f.Content))
		case rendered[f.Path] || strings.HasPrefix(f.Path, nodeconfig.PatchesDir) || strings.HasPrefix(f.Path, nodeconfig.ContainerdHostsDir):
			fmt.Fprintf(&b, "  [nodeconfig, %d bytes, sha256 %s]\n", len(f.Content), digest(f.Content))
		default:
			for _, l := range strings.Split(strings.TrimSuffix(string(f.Content), "\n"), "\n") {
				fmt.Fprintf(&b, "  | %s\n", l)
			}
		}
	}
	fmt.Fprintf(&b, "units:\n")
	for _, u := range d.Units {
		fmt.Fprintf(&b, "  %+v\n", u)
	}
	fmt.Fprintf(&b, "owned:\n")
	for _, o := range d.Owned {
		fmt.Fprintf(&b, "  %+v\n", o)
	}
	show := func(name string, v any) { fmt.Fprintf(&b, "%s: %+v\n", name, v) }
	if d.Kubeadm != nil {
		k := *d.Kubeadm
		k.Owned = nil
		show("kubeadm", k)
	}
	if d.Join != nil {
		j := *d.Join
		j.Owned = nil
		show("join", j)
		fmt.Fprintf(&b, "join.discoveryContent: %q\n", d.Join.DiscoveryContent)
	}
	if d.EtcdMember != nil {
		show("etcdMember", *d.EtcdMember)
	}
	if d.LocalEtcd != nil {
		show("localEtcd", *d.LocalEtcd)
	}
	if d.Upgrade != nil {
		show("upgrade", *d.Upgrade)
	}
	show("clusterNodes", d.ClusterNodes)
	show("labels", d.Labels)
	show("taints", d.Taints)
	show("removeTaints", d.RemoveTaints)
	show("kubeconfigs", d.Kubeconfigs)
	show("warnings", warnings)
	return b.Bytes()
}

// rendered are nodeconfig's files (pinned by its golden files).
var rendered = map[string]bool{}

func init() {
	for _, p := range []string{nodeconfig.InitConfigFile, nodeconfig.JoinConfigFile, nodeconfig.UpgradeConfigFile, nodeconfig.ContainerdConfigFile,
		nodeconfig.SysctlFile, nodeconfig.ModulesFile, nodeconfig.SysusersFile, nodeconfig.TmpfilesFile, nodeconfig.EncryptionConfigFile,
		nodeconfig.AuthenticationConfigFile} {
		rendered[p] = true
	}
}

func sortedKeys[V any](m map[string]V) []string {
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// TestGolden renders each case and compares it with
// testdata/golden/CASE.txt (-update rewrites them).
func TestGolden(t *testing.T) {
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d, warnings, err := Node(input(t, tc.config, tc.node, tc.mode, tc.ip, tc.join))
			if err != nil {
				t.Fatal(err)
			}
			got := dump(d, warnings)
			p := filepath.Join("testdata", "golden", tc.name+".txt")
			if *update {
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(p, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(p)
			if err != nil {
				t.Fatalf("%v (go test -update writes it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s differs from its golden file (go test -update rewrites it; review the diff):\n%s", p, lineDiff(string(want), string(got)))
			}
		})
	}
}

// lineDiff lists the lines only in want (-) or only in got (+).
func lineDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	var out []string
	for _, l := range w {
		if !slices.Contains(g, l) {
			out = append(out, "- "+l)
		}
	}
	for _, l := range g {
		if !slices.Contains(w, l) {
			out = append(out, "+ "+l)
		}
	}
	return strings.Join(out, "\n")
}

// The same input gives the same node: nothing reads the clock, the node or
// a random source.
func TestDeterministic(t *testing.T) {
	for _, tc := range cases {
		a, _, err := Node(input(t, tc.config, tc.node, tc.mode, tc.ip, tc.join))
		if err != nil {
			t.Fatal(err)
		}
		b, _, err := Node(input(t, tc.config, tc.node, tc.mode, tc.ip, tc.join))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(dump(a, nil), dump(b, nil)) {
			t.Errorf("%s: two renders differ", tc.name)
		}
	}
}
