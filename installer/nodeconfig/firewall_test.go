package nodeconfig

import (
	"encoding/xml"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ferry-k8s/ferry/installer/cluster"
)

const firewallCluster = `apiVersion: ferry.dev/v1alpha1
kind: Cluster
metadata: {name: fw}
spec:
  controlPlaneEndpoint: api.fw.example.com:6443
  nodes:
    - {name: cp1, hostname: cp1.fw.example.com, roles: [control-plane]}
    - {name: w1, hostname: w1.fw.example.com, roles: [worker]}
`

func loadCluster(t *testing.T, y string) *cluster.Cluster {
	t.Helper()
	p := filepath.Join(t.TempDir(), "cluster.yaml")
	if err := os.WriteFile(p, []byte(y), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := cluster.Load(p)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// netns is a named network namespace (ip netns), removed at cleanup.
func netns(t *testing.T, name string) string {
	t.Helper()
	name = fmt.Sprintf("ferry-fw-%d-%s", os.Getpid(), name)
	run(t, "ip", "netns", "add", name)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", name).Run() })
	run(t, "ip", "-n", name, "link", "set", "lo", "up")
	return name
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// inNetns runs fn on a thread in the named namespace: sockets made there
// belong to it.
func inNetns(ns string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		// The thread is not unlocked: it leaves with the goroutine, so
		// no other goroutine runs in the namespace.
		f, err := os.Open("/run/netns/" + ns)
		if err != nil {
			errc <- err
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("setns %s: %w", ns, err)
			return
		}
		errc <- fn()
	}()
	return <-errc
}

// The nftables ruleset is loaded by the real nft into a network namespace
// (a "node") and filters real TCP connections from another namespace
// whose addresses play a control-plane node, a worker and a stranger.
func TestFirewallNftablesFilters(t *testing.T) {
	for _, tool := range []string{"nft", "ip"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is needed (make deps installs nftables and iproute2): %v", tool, err)
		}
	}
	if os.Geteuid() != 0 {
		t.Fatal("network namespaces and nftables need root (CI runs as root)")
	}
	c := loadCluster(t, firewallCluster)
	cpPeer, worker, stranger := "10.99.0.2", "10.99.0.3", "10.99.0.4"
	in := FirewallInput{Backend: FirewallBackendNftables, ContentPort: 5443, Version: "test",
		ControlPlane: []netip.Addr{netip.MustParseAddr("10.99.0.1"), netip.MustParseAddr(cpPeer)},
		Nodes:        []netip.Addr{netip.MustParseAddr(worker)}}
	files, err := Firewall(c, "cp1", in)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 2 || files[0].Path != FirewallNftFile || files[1].Path != FirewallUnitFile {
		t.Fatalf("files: %v", files)
	}
	if _, _, err := SplitHeader(files[0].Content); err != nil {
		t.Errorf("ruleset header: %v", err)
	}
	rules := filepath.Join(t.TempDir(), "firewall.nft")
	os.WriteFile(rules, files[0].Content, 0o644)

	node, peers := netns(t, "node"), netns(t, "peers")
	run(t, "ip", "link", "add", "fwa", "netns", node, "type", "veth", "peer", "name", "fwb", "netns", peers)
	run(t, "ip", "-n", node, "addr", "add", "10.99.0.1/24", "dev", "fwa")
	run(t, "ip", "-n", node, "link", "set", "fwa", "up")
	for _, a := range []string{cpPeer, worker, stranger} {
		run(t, "ip", "-n", peers, "addr", "add", a+"/24", "dev", "fwb")
	}
	run(t, "ip", "-n", peers, "link", "set", "fwb", "up")
	// Loaded twice: the file replaces the table (idempotent reload).
	run(t, "ip", "netns", "exec", node, "nft", "-f", rules)
	run(t, "ip", "netns", "exec", node, "nft", "-f", rules)
	if out := run(t, "ip", "netns", "exec", node, "nft", "list", "tables"); strings.Count(out, "table inet ferry") != 1 {
		t.Fatalf("tables after two loads:\n%s", out)
	}

	ports := []int{6443, 2379, 2380, 10250, 5443, 10257, 10256, 30080}
	var listeners []net.Listener
	err = inNetns(node, func() error {
		for _, p := range ports {
			l, err := net.Listen("tcp4", fmt.Sprintf("0.0.0.0:%d", p))
			if err != nil {
				return err
			}
			listeners = append(listeners, l)
			go func() {
				for {
					c, err := l.Accept()
					if err != nil {
						return
					}
					c.Close()
				}
			}()
		}
		return nil
	})
	t.Cleanup(func() {
		for _, l := range listeners {
			l.Close()
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	// reach reports whether from can open a TCP connection to the node's
	// port. A dropped SYN is never answered: the dial gives up after a
	// while (reachability, not a timing assertion).
	reach := func(from string, port int) bool {
		var ok bool
		err := inNetns(peers, func() error {
			d := net.Dialer{Timeout: 1500 * time.Millisecond, LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
			c, err := d.Dial("tcp4", fmt.Sprintf("10.99.0.1:%d", port))
			if err == nil {
				c.Close()
				ok = true
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return nil
			}
			return err
		})
		if err != nil {
			t.Fatalf("dial from %s to port %d: %v", from, port, err)
		}
		return ok
	}
	want := map[int]map[string]bool{
		6443:  {cpPeer: true, worker: true, stranger: true},
		2379:  {cpPeer: true, worker: false, stranger: false},
		2380:  {cpPeer: true, worker: false, stranger: false},
		10250: {cpPeer: true, worker: false, stranger: false},
		5443:  {cpPeer: true, worker: true, stranger: false},
		10257: {cpPeer: false, worker: false, stranger: false},
		10256: {cpPeer: false, worker: false, stranger: false},
		30080: {cpPeer: true, worker: true, stranger: true}, // NodePorts and other ports are the site's
	}
	for _, p := range ports {
		for _, from := range []string{cpPeer, worker, stranger} {
			if got := reach(from, p); got != want[p][from] {
				t.Errorf("port %d from %s: reachable %v, want %v", p, from, got, want[p][from])
			}
		}
	}

	// Disabled: the ruleset removes the table.
	off := false
	c.Spec.Firewall.Enabled = &off
	files, err = Firewall(c, "cp1", in)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(rules, files[0].Content, 0o644)
	run(t, "ip", "netns", "exec", node, "nft", "-f", rules)
	if out := run(t, "ip", "netns", "exec", node, "nft", "list", "tables"); strings.Contains(out, "ferry") {
		t.Fatalf("firewall disabled, tables:\n%s", out)
	}
	if !reach(stranger, 2379) {
		t.Error("firewall disabled: etcd's port still filtered")
	}
	// ... and loading it again on a host without the table is fine too.
	run(t, "ip", "netns", "exec", node, "nft", "-f", rules)
}

func TestFirewallRoles(t *testing.T) {
	c := loadCluster(t, firewallCluster)
	in := FirewallInput{Backend: FirewallBackendNftables, ContentPort: 5443, Version: "test",
		ControlPlane: []netip.Addr{netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("fd00::1")},
		Nodes:        []netip.Addr{netip.MustParseAddr("10.0.0.2"), netip.MustParseAddr("10.0.0.1")}}
	files, err := Firewall(c, "w1", in)
	if err != nil {
		t.Fatal(err)
	}
	w := string(files[0].Content)
	for _, s := range []string{"tcp dport 10250 ip saddr { 10.0.0.1 } accept", "tcp dport 10250 ip6 saddr { fd00::1 } accept", "tcp dport 10250 drop"} {
		if !strings.Contains(w, s) {
			t.Errorf("worker ruleset lacks %q:\n%s", s, w)
		}
	}
	for _, s := range []string{"2379", "6443", "5443"} {
		if strings.Contains(w, s) {
			t.Errorf("worker ruleset mentions control-plane port %s:\n%s", s, w)
		}
	}
	// Same input, same bytes (R3), whatever the order of the addresses.
	in.Nodes = []netip.Addr{netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2")}
	again, _ := Firewall(c, "w1", in)
	if string(again[0].Content) != w {
		t.Error("the ruleset depends on the order of the addresses")
	}

	in.ControlPlane = nil
	if _, err := Firewall(c, "w1", in); err == nil || !strings.Contains(err.Error(), "no control-plane node address") {
		t.Errorf("no control-plane addresses: %v", err)
	}
	in.ControlPlane = []netip.Addr{netip.MustParseAddr("10.0.0.1")}
	in.Backend = "iptables"
	if _, err := Firewall(c, "w1", in); err == nil || !strings.Contains(err.Error(), `backend "iptables"`) {
		t.Errorf("unknown backend: %v", err)
	}
	if _, err := Firewall(c, "nope", in); !errors.Is(err, ErrUnknownNode) {
		t.Errorf("unknown node: %v", err)
	}
}

// firewalld's zones: well-formed XML with the header as a comment, the
// control-plane nodes' zone opens etcd and the kubelet, the other nodes'
// zone does not.
func TestFirewalldZones(t *testing.T) {
	c := loadCluster(t, firewallCluster)
	in := FirewallInput{Backend: FirewallBackendFirewalld, ContentPort: 5443, Version: "test",
		ControlPlane: []netip.Addr{netip.MustParseAddr("10.0.0.1")},
		Nodes:        []netip.Addr{netip.MustParseAddr("10.0.0.2"), netip.MustParseAddr("10.0.0.3")}}
	files, err := Firewall(c, "cp1", in)
	if err != nil {
		t.Fatal(err)
	}
	type zone struct {
		Target  string `xml:"target,attr"`
		Sources []struct {
			Address string `xml:"address,attr"`
		} `xml:"source"`
		Ports []struct {
			Protocol string `xml:"protocol,attr"`
			Port     string `xml:"port,attr"`
		} `xml:"port"`
	}
	read := func(f File) (z zone, sources, ports string) {
		if !strings.HasPrefix(string(f.Content), "<!-- Generated by Ferry test ") {
			t.Errorf("%s: no header comment:\n%s", f.Path, f.Content)
		}
		if err := xml.Unmarshal(f.Content, &z); err != nil {
			t.Fatalf("%s: %v", f.Path, err)
		}
		var s, p []string
		for _, x := range z.Sources {
			s = append(s, x.Address)
		}
		for _, x := range z.Ports {
			p = append(p, x.Port+"/"+x.Protocol)
		}
		return z, strings.Join(s, " "), strings.Join(p, " ")
	}
	if len(files) != 2 {
		t.Fatalf("files: %v", files)
	}
	_, s, p := read(files[0])
	if files[0].Path != FirewalldZonesDir+"/ferry-control-plane.xml" || s != "10.0.0.1" ||
		p != "10250/tcp 6443/tcp 5443/tcp 2379-2380/tcp 30000-32767/tcp 30000-32767/udp" {
		t.Errorf("control-plane zone %s: sources %q ports %q", files[0].Path, s, p)
	}
	_, s, p = read(files[1])
	if files[1].Path != FirewalldZonesDir+"/ferry-nodes.xml" || s != "10.0.0.2 10.0.0.3" ||
		p != "6443/tcp 5443/tcp 30000-32767/tcp 30000-32767/udp" {
		t.Errorf("nodes zone %s: sources %q ports %q", files[1].Path, s, p)
	}
}
