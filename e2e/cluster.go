//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// NodeSpec describes one node of a Cluster.
type NodeSpec struct {
	// Name is the node's hostname; default node1, node2, …
	Name string
	// Host is the last octet of its address on the bridge; default 11, 12, …
	Host int
}

// Bridge is the cluster's network: a Linux bridge with the host at .1 and
// no route out (no NAT, forwarding off on the bridge).
type Bridge struct {
	Name   string
	HostIP net.IP     // 10.10.N.1
	Net    *net.IPNet // 10.10.N.0/24
}

// IP returns the address with last octet host on the bridge's subnet.
func (b Bridge) IP(host int) net.IP {
	ip := slices4(b.Net.IP)
	ip[3] = byte(host)
	return ip
}

func slices4(ip net.IP) net.IP { return append(net.IP(nil), ip.To4()...) }

// Cluster is a set of systemd-nspawn machines booted from the cached rootfs
// on one air-gapped bridge. Everything is torn down when the test ends.
type Cluster struct {
	t      testing.TB
	state  runState
	stateF string // CacheDir/runs/<run>.json, locked while the run lives
	runID  string
	dir    string // per-run state: node roots, consoles
	bridge Bridge
	Nodes  []*Node
}

// Node is one running machine.
type Node struct {
	Name    string // hostname
	Machine string // systemd-nspawn --machine (unique per run)
	IP      net.IP
	Root    string // the node's root directory on the host
	Console string // the console log
	c       *Cluster
	cmd     *exec.Cmd
	exited  chan struct{}
	waitErr error
	pid     int // the node's systemd (PID 1 inside), seen from the host
	// containerdDir is bound at /var/lib/containerd in the node.
	containerdDir string
	cgroups       []string // the launcher's v1/v2 cgroups on the host
}

// Prerequisites checks what the harness needs on the host and fails the
// test (never skips) when something is missing.
func Prerequisites(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("the e2e suites need root (systemd-nspawn, bridges, overlay mounts)")
	}
	for _, p := range []string{"systemd-nspawn", "debootstrap", "nsenter", "ip", "mount", "umount"} {
		need(t, p)
	}
}

// NewCluster builds (or reuses) the rootfs, makes the bridge, and boots one
// machine per spec, returning when every node's systemd reports running
// (or degraded: the failed units are logged).
func NewCluster(t testing.TB, specs ...NodeSpec) *Cluster {
	t.Helper()
	Prerequisites(t)
	if len(specs) == 0 {
		specs = []NodeSpec{{}}
	}
	base := Rootfs(t)
	c := &Cluster{t: t, runID: randomHex(2), dir: t.TempDir()}
	sweepStaleRuns(t)
	c.startRecording()
	c.record(func(s *runState) { s.Dir = c.dir })
	c.bridge = newBridge(t, c.record)
	seen := map[string]bool{}
	for i, s := range specs {
		if s.Name == "" {
			s.Name = fmt.Sprintf("node%d", i+1)
		}
		if s.Host == 0 {
			s.Host = 11 + i
		}
		if seen[s.Name] || s.Host < 2 || s.Host > 254 {
			t.Fatalf("bad or duplicate node spec %+v", s)
		}
		seen[s.Name] = true
		n := &Node{Name: s.Name, Machine: s.Name + "-" + c.runID, IP: c.bridge.IP(s.Host), c: c}
		c.prepareNode(n, base)
		c.Nodes = append(c.Nodes, n)
	}
	// Power every launched node off in parallel when the test ends (before
	// the overlays are unmounted and the bridge removed: cleanups run
	// last-registered first).
	t.Cleanup(func() {
		if t.Failed() { // the state at the failure, before shutdown scrolls it away
			for _, n := range c.Nodes {
				if n.cmd == nil {
					continue
				}
				failed, _ := n.execTimeout(10*time.Second, nil, "systemctl", "--failed", "--no-legend", "--plain")
				t.Logf("node %s: failed units: %q; console (last lines):\n%s", n.Name, strings.TrimSpace(failed), tail(n.Console, 40))
			}
		}
		var wg sync.WaitGroup
		for _, n := range c.Nodes {
			if n.cmd == nil {
				continue
			}
			wg.Add(1)
			go func() { defer wg.Done(); n.PowerOff(30 * time.Second) }()
		}
		wg.Wait()
		for _, n := range c.Nodes {
			n.removeCgroups()
		}
	})
	for _, n := range c.Nodes {
		n.launch()
	}
	// Boot in parallel; a node that does not come up fails the test.
	var wg sync.WaitGroup
	errs := make([]error, len(c.Nodes))
	for i, n := range c.Nodes {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = n.waitBooted(2 * time.Minute) }()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err) // the cleanup logs the consoles
	}
	return c
}

// Bridge returns the cluster's network.
func (c *Cluster) Bridge() Bridge { return c.bridge }

// Node returns the node named name.
func (c *Cluster) Node(name string) *Node {
	for _, n := range c.Nodes {
		if n.Name == name {
			return n
		}
	}
	c.t.Fatalf("no node %q", name)
	return nil
}

// newBridge makes br-ferry-e2e with 10.10.0.1/24, or br-ferry-e2eN with
// 10.10.N.1/24 when a stale or concurrent run holds the name or the subnet.
// Forwarding is off on it (so nothing entering from the nodes is routed,
// whatever the host's ip_forward), IPv6 is off on it, and nothing NATs it.
func newBridge(t testing.TB, record func(func(*runState))) Bridge {
	t.Helper()
	ipBin := need(t, "ip")
	for n := range 10 {
		name := "br-ferry-e2e"
		if n > 0 {
			name += strconv.Itoa(n)
		}
		_, subnet, _ := net.ParseCIDR(fmt.Sprintf("10.10.%d.0/24", n))
		if _, err := net.InterfaceByName(name); err == nil || subnetInUse(subnet) {
			continue
		}
		record(func(s *runState) { s.Bridge = name })
		if out, err := exec.Command(ipBin, "link", "add", name, "type", "bridge").CombinedOutput(); err != nil {
			record(func(s *runState) { s.Bridge = "" })
			if strings.Contains(string(out), "exists") {
				continue // a concurrent run took it
			}
			t.Fatalf("ip link add %s type bridge: %v: %s", name, err, out)
		}
		b := Bridge{Name: name, HostIP: slices4(subnet.IP), Net: subnet}
		b.HostIP[3] = 1
		t.Cleanup(func() {
			if out, err := exec.Command(ipBin, "link", "del", name).CombinedOutput(); err != nil {
				t.Errorf("removing bridge %s: %v: %s", name, err, out)
			}
		})
		for _, kv := range [][2]string{
			{"/proc/sys/net/ipv6/conf/" + name + "/disable_ipv6", "1"},
			{"/proc/sys/net/ipv4/conf/" + name + "/forwarding", "0"},
		} {
			if err := os.WriteFile(kv[0], []byte(kv[1]), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		b.guardForwarding(t, record)
		for _, args := range [][]string{
			{"addr", "add", b.HostIP.String() + "/24", "dev", name},
			{"link", "set", name, "up"},
		} {
			if out, err := exec.Command(ipBin, args...).CombinedOutput(); err != nil {
				t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
			}
		}
		return b
	}
	t.Fatal("no free bridge name/subnet among br-ferry-e2e[1-9] / 10.10.[0-9].0/24: remove stale ones (ip link del br-ferry-e2eN)")
	return Bridge{}
}

// guardForwarding adds, where iptables exists, FORWARD rules dropping
// everything routed into or out of the bridge, removed at the end: a second
// lock on the air gap should something set net.ipv4.ip_forward=1 during the
// run (writing it resets the per-device forwarding flags). Traffic between
// the nodes is bridged, yet with br_netfilter it passes FORWARD too (in and
// out both the bridge): it is accepted explicitly.
func (b Bridge) guardForwarding(t testing.TB, record func(func(*runState))) {
	ipt, err := exec.LookPath("iptables")
	if err != nil {
		t.Logf("no iptables: the air gap relies on forwarding=0 on %s", b.Name)
		return
	}
	comment := []string{"-m", "comment", "--comment", "ferry-e2e air gap"}
	for _, rule := range [][]string{ // each inserted first: the last one ends on top
		{"FORWARD", "-i", b.Name, "!", "-o", b.Name, "-j", "DROP"},
		{"FORWARD", "!", "-i", b.Name, "-o", b.Name, "-j", "DROP"},
		{"FORWARD", "-i", b.Name, "-o", b.Name, "-j", "ACCEPT"},
	} {
		rule = append(rule, comment...)
		record(func(s *runState) { s.Rules = append(s.Rules, rule) })
		if out, err := exec.Command(ipt, append([]string{"-w", "-I"}, rule...)...).CombinedOutput(); err != nil {
			t.Logf("iptables -I %s: %v: %s (the air gap relies on forwarding=0)", strings.Join(rule, " "), err, bytes.TrimSpace(out))
			continue
		}
		t.Cleanup(func() {
			if out, err := exec.Command(ipt, append([]string{"-w", "-D"}, rule...)...).CombinedOutput(); err != nil {
				t.Errorf("iptables -D %s: %v: %s", strings.Join(rule, " "), err, out)
			}
		})
	}
}

// subnetInUse reports whether a host interface has an address in subnet.
func subnetInUse(subnet *net.IPNet) bool {
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok && (subnet.Contains(ipn.IP) || ipn.Contains(subnet.IP)) {
			return true
		}
	}
	return false
}

// AssertNoForwarding fails the test if packets from the nodes could be
// routed anywhere by the host: forwarding must be off on the bridge
// (IPv4: checked on the input device, whatever net.ipv4.ip_forward says)
// and IPv6 off on it.
func (c *Cluster) AssertNoForwarding(t testing.TB) {
	t.Helper()
	for _, f := range []struct{ path, want string }{
		{"/proc/sys/net/ipv4/conf/" + c.bridge.Name + "/forwarding", "0"},
		{"/proc/sys/net/ipv6/conf/" + c.bridge.Name + "/disable_ipv6", "1"},
	} {
		b, err := os.ReadFile(f.path)
		if err != nil || strings.TrimSpace(string(b)) != f.want {
			t.Errorf("%s = %q (%v), want %s: the nodes could reach beyond the bridge", f.path, b, err, f.want)
		}
	}
}

// prepareNode makes the node's root: an overlay of base with a per-node
// upper directory (or, where overlayfs is unavailable, a reflink/plain copy),
// its identity (hostname, machine-id, hosts) and its oneshot units.
func (c *Cluster) prepareNode(n *Node, base string) {
	t := c.t
	dir := filepath.Join(c.dir, n.Name)
	n.Root = filepath.Join(dir, "root")
	n.Console = filepath.Join(dir, "console.log")
	upper, work := filepath.Join(dir, "upper"), filepath.Join(dir, "work")
	n.containerdDir = filepath.Join(dir, "containerd")
	for _, d := range []string{n.Root, upper, work, n.containerdDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	c.record(func(s *runState) { s.Mounts = append(s.Mounts, n.Root) })
	opts := "lowerdir=" + base + ",upperdir=" + upper + ",workdir=" + work
	if out, err := exec.Command(need(t, "mount"), "-t", "overlay", "overlay", "-o", opts, n.Root).CombinedOutput(); err == nil {
		t.Cleanup(func() {
			// After the node is gone (cleanups run last-registered first).
			if out, err := exec.Command("umount", n.Root).CombinedOutput(); err != nil {
				t.Errorf("umount %s: %v: %s", n.Root, err, out)
			}
		})
	} else {
		t.Logf("overlay mount failed (%v: %s); copying the rootfs instead", err, bytes.TrimSpace(out))
		if err := os.Remove(n.Root); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command("cp", "-a", "--reflink=auto", base, n.Root).CombinedOutput(); err != nil {
			t.Fatalf("copying the rootfs: %v: %s", err, out)
		}
	}
	files := map[string]string{
		"etc/hostname":   n.Name + "\n",
		"etc/machine-id": randomHex(16) + "\n",
		"etc/hosts":      "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n" + n.IP.String() + "\t" + n.Name + "\n",
		// nspawn mounts the v1 controllers read-only; a plain remount,rw is
		// refused (busy), a bind remount works.
		"etc/systemd/system/ferry-e2e-cgroups.service": `[Unit]
Description=Ferry e2e: cgroup hierarchies writable
DefaultDependencies=no
Before=sysinit.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/sh -c 'for h in /sys/fs/cgroup/*/; do mount -o remount,bind,rw "$h" || true; done'

[Install]
WantedBy=sysinit.target
`,
		// systemd-networkd stays pending in these machines: a static address.
		"etc/systemd/system/ferry-e2e-network.service": fmt.Sprintf(`[Unit]
Description=Ferry e2e: static address on host0
DefaultDependencies=no
Wants=network.target
Before=network.target network-online.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/ip link set lo up
ExecStart=/bin/ip link set host0 up
ExecStart=/bin/ip addr replace %s/24 dev host0
ExecStart=/bin/ip route replace default via %s

[Install]
WantedBy=multi-user.target
`, n.IP, c.bridge.HostIP),
	}
	for name, content := range files {
		p := filepath.Join(n.Root, name)
		_ = os.Remove(p)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for unit, target := range map[string]string{"ferry-e2e-cgroups.service": "sysinit.target", "ferry-e2e-network.service": "multi-user.target"} {
		wants := filepath.Join(n.Root, "etc/systemd/system", target+".wants")
		if err := os.MkdirAll(wants, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink("/etc/systemd/system/"+unit, filepath.Join(wants, unit)); err != nil {
			t.Fatal(err)
		}
	}
}

// launch starts systemd-nspawn for the node in the background, from a
// launcher that first moves itself into its own cgroup in every hierarchy
// (the node's systemd then manages that subtree; the host's PID 1 is not
// systemd, so there is no machined/scope to ask for one).
func (n *Node) launch() {
	t := n.c.t
	nspawn := need(t, "systemd-nspawn")
	procs := n.makeCgroups()
	console, err := os.Create(n.Console)
	if err != nil {
		t.Fatal(err)
	}
	script := `for f in "$@"; do [ "$f" = -- ] && break; echo $$ > "$f" || exit 1; done
while [ "$1" != -- ]; do shift; done; shift
exec "$@"`
	args := append([]string{"-c", script, "launcher"}, procs...)
	args = append(args, "--", nspawn, "-D", n.Root, "--register=no", "--keep-unit", "-b",
		"--machine="+n.Machine, "--capability=all", "--system-call-filter=@keyring bpf",
		"--bind=/dev/kmsg", "--network-bridge="+n.c.bridge.Name,
		// containerd's overlayfs snapshots cannot live on the node's own
		// overlay root (an upper directory on overlayfs is refused): on a
		// real server /var/lib/containerd is a plain file system, here a
		// directory of the host's.
		"--bind="+n.containerdDir+":/var/lib/containerd",
		"--resolv-conf=off", "--timezone=off", "--link-journal=no", "--console=read-only",
		"--setenv=SYSTEMD_COLORS=0")
	n.cmd = exec.Command("/bin/sh", args...)
	n.cmd.Env = append(os.Environ(), "SYSTEMD_NSPAWN_API_VFS_WRITABLE=1")
	n.cmd.Stdin = nil
	n.cmd.Stdout, n.cmd.Stderr = console, console
	// Its own process group: a Ctrl-C on the test does not reach the node
	// directly; the cleanup powers it off. Should the test process die
	// without cleaning up (killed, go test's -timeout), systemd-nspawn gets
	// SIGTERM and powers the node off (the next run sweeps the rest: see
	// sweepStaleRuns).
	n.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if err := n.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	n.exited = make(chan struct{})
	go func() {
		n.waitErr = n.cmd.Wait()
		console.Close()
		close(n.exited)
	}()
}

// makeCgroups creates nspawn/<machine> in every cgroup hierarchy and
// returns the cgroup.procs files to join. cpuset needs cpus and mems copied
// down from its parent before a task can join.
func (n *Node) makeCgroups() []string {
	t := n.c.t
	hs, _ := filepath.Glob("/sys/fs/cgroup/*")
	var procs []string
	for _, h := range hs {
		if fi, err := os.Lstat(h); err != nil || !fi.IsDir() {
			continue // cpu,cpuacct symlinks and the like
		}
		parent := h
		for _, d := range []string{"nspawn", n.Machine} {
			dir := filepath.Join(parent, d)
			if err := os.Mkdir(dir, 0o755); err != nil && !os.IsExist(err) {
				t.Fatalf("cgroup %s: %v", dir, err)
			}
			for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
				if v, err := os.ReadFile(filepath.Join(parent, f)); err == nil {
					if cur, _ := os.ReadFile(filepath.Join(dir, f)); len(bytes.TrimSpace(cur)) == 0 {
						if err := os.WriteFile(filepath.Join(dir, f), v, 0o644); err != nil {
							t.Fatalf("%s/%s: %v", dir, f, err)
						}
					}
				}
			}
			parent = dir
		}
		n.cgroups = append(n.cgroups, parent)
		n.c.record(func(s *runState) { s.Cgroups = append(s.Cgroups, parent) })
		procs = append(procs, filepath.Join(parent, "cgroup.procs"))
	}
	return procs
}

// removeCgroups removes the node's cgroups, deepest first (best effort:
// they are empty once the node is gone).
func (n *Node) removeCgroups() {
	for _, cg := range n.cgroups {
		var dirs []string
		_ = filepath.WalkDir(cg, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		for i := len(dirs) - 1; i >= 0; i-- {
			_ = os.Remove(dirs[i])
		}
	}
}

// waitBooted finds the node's systemd (the child of systemd-nspawn) and
// waits until `systemctl is-system-running` says running or degraded.
func (n *Node) waitBooted(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	nspawnPID := n.cmd.Process.Pid // sh exec'd systemd-nspawn
	last := ""
	for {
		select {
		case <-n.exited:
			return fmt.Errorf("node %s: systemd-nspawn exited during boot: %v", n.Name, n.waitErr)
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("node %s not booted after %s (systemctl is-system-running: %q)", n.Name, timeout, last)
		}
		if n.pid == 0 {
			n.pid = childNamed(nspawnPID, "systemd")
		}
		if n.pid != 0 {
			out, _ := n.execTimeout(10*time.Second, nil, "systemctl", "is-system-running")
			last = strings.TrimSpace(out)
			switch last {
			case "running":
				return nil
			case "degraded":
				failed, _ := n.Exec("systemctl", "--failed", "--no-legend", "--plain")
				n.c.t.Logf("node %s booted degraded; failed units:\n%s", n.Name, failed)
				return nil
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// childNamed returns the PID of a child of ppid whose comm is name, or 0.
func childNamed(ppid int, name string) int {
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid …; comm may hold spaces and parens.
		s := string(b)
		open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
		if open < 0 || end < open {
			continue
		}
		f := strings.Fields(s[end+1:])
		if len(f) < 2 || f[1] != strconv.Itoa(ppid) || s[open+1:end] != name {
			continue
		}
		return pid
	}
	return 0
}

// PID is the host PID of the node's systemd.
func (n *Node) PID() int { return n.pid }

// DefaultExecTimeout bounds Exec.
const DefaultExecTimeout = 3 * time.Minute

// Exec runs argv inside the node (all its namespaces, a clean environment)
// and returns its combined output.
func (n *Node) Exec(argv ...string) (string, error) {
	return n.execTimeout(DefaultExecTimeout, nil, argv...)
}

// ExecInput is Exec with stdin.
func (n *Node) ExecInput(stdin io.Reader, argv ...string) (string, error) {
	return n.execTimeout(DefaultExecTimeout, stdin, argv...)
}

// MustExec is Exec that fails the test when the command fails.
func (n *Node) MustExec(t testing.TB, argv ...string) string {
	t.Helper()
	out, err := n.Exec(argv...)
	if err != nil {
		t.Fatalf("%s: %s: %v\n%s", n.Name, strings.Join(argv, " "), err, out)
	}
	return out
}

// Shell runs a sh -e script inside the node.
func (n *Node) Shell(script string) (string, error) {
	return n.Exec("/bin/sh", "-ec", script)
}

func (n *Node) execTimeout(timeout time.Duration, stdin io.Reader, argv ...string) (string, error) {
	if n.pid == 0 {
		return "", fmt.Errorf("node %s is not running", n.Name)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	args := []string{"-t", strconv.Itoa(n.pid), "-a", "--", "/usr/bin/env", "-i",
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"HOME=/root", "LANG=C.UTF-8", "TERM=dumb"}
	cmd := exec.CommandContext(ctx, "nsenter", append(args, argv...)...)
	if stdin != nil {
		cmd.Stdin = stdin
	}
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		err = fmt.Errorf("%w (timed out after %s)", err, timeout)
	}
	return string(out), err
}

// CopyIn copies the host file src to dst inside the node, with mode,
// creating dst's directory. It writes through the node's own view (its
// mounts, its symlinks), never through a path on the host.
func (n *Node) CopyIn(src, dst string, mode os.FileMode) error {
	f, err := os.Open(src)
	if err != nil {
		return err
	}
	defer f.Close()
	return n.writeFrom(f, dst, mode)
}

// WriteFile writes data to path inside the node (as CopyIn).
func (n *Node) WriteFile(path string, data []byte, mode os.FileMode) error {
	return n.writeFrom(bytes.NewReader(data), path, mode)
}

func (n *Node) writeFrom(r io.Reader, path string, mode os.FileMode) error {
	if !filepath.IsAbs(path) || filepath.Clean(path) != path {
		return fmt.Errorf("node path %q: want a clean absolute path", path)
	}
	// Written next to path, then renamed: a reader never sees half a file.
	script := `d=$(dirname "$1"); mkdir -p "$d"; tmp=$(mktemp "$d/.ferry-e2e.XXXXXX")
cat > "$tmp"; chmod "$2" "$tmp"; mv -f "$tmp" "$1"`
	out, err := n.execTimeout(DefaultExecTimeout, r, "/bin/sh", "-ec", script, "copy-in", path, fmt.Sprintf("%o", mode.Perm()))
	if err != nil {
		return fmt.Errorf("%s: writing %s: %v: %s", n.Name, path, err, strings.TrimSpace(out))
	}
	return nil
}

// Kill ends the node at once, as a power failure would: its PID 1 gets
// SIGKILL (which ends every process of its namespace) and its address
// leaves the bridge with its veth.
func (n *Node) Kill() {
	if n.cmd == nil || n.exited == nil {
		return
	}
	if n.pid != 0 {
		_ = syscall.Kill(n.pid, syscall.SIGKILL)
	}
	select {
	case <-n.exited:
		return
	case <-time.After(30 * time.Second):
	}
	_ = n.cmd.Process.Kill()
	select {
	case <-n.exited:
	case <-time.After(10 * time.Second):
		n.c.t.Errorf("node %s: systemd-nspawn (pid %d) still running after SIGKILL", n.Name, n.cmd.Process.Pid)
	}
}

// PowerOff asks the node's systemd to power off and waits up to timeout for
// systemd-nspawn to exit; then it kills the node's PID 1 (which ends every
// process of the node) and systemd-nspawn. It reports whether the node
// powered off by itself.
func (n *Node) PowerOff(timeout time.Duration) (clean bool) {
	if n.cmd == nil || n.exited == nil {
		return true
	}
	select {
	case <-n.exited:
		return true
	default:
	}
	if n.pid != 0 {
		_, _ = n.execTimeout(15*time.Second, nil, "systemctl", "--no-block", "poweroff")
	} else {
		_ = n.cmd.Process.Signal(syscall.SIGTERM) // nspawn asks the node's init to halt
	}
	select {
	case <-n.exited:
		return true
	case <-time.After(timeout):
	}
	n.c.t.Logf("node %s did not power off within %s: killing it; console (last lines):\n%s", n.Name, timeout, tail(n.Console, 20))
	if n.pid != 0 {
		_ = syscall.Kill(n.pid, syscall.SIGKILL)
	}
	_ = n.cmd.Process.Kill()
	select {
	case <-n.exited:
	case <-time.After(10 * time.Second):
		n.c.t.Errorf("node %s: systemd-nspawn (pid %d) still running after SIGKILL", n.Name, n.cmd.Process.Pid)
	}
	return false
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

// runState is what a run created on the host outside its temporary
// directory, recorded (before creating each thing) in
// CacheDir/runs/<run>.json while the run holds the lock <run>.lock. A later
// run that can take the lock knows its owner died without cleaning up
// (SIGKILL, go test's -timeout) and removes what it lists.
type runState struct {
	Dir     string     `json:"dir,omitempty"` // node roots, overlay upper dirs
	Bridge  string     `json:"bridge,omitempty"`
	Mounts  []string   `json:"mounts,omitempty"`
	Rules   [][]string `json:"iptablesRules,omitempty"`
	Cgroups []string   `json:"cgroups,omitempty"`
}

func runsDir() string { return filepath.Join(CacheDir(), "runs") }

// startRecording takes this run's lock (held until the process ends or the
// cluster is torn down) and removes the record when the test ends cleanly.
func (c *Cluster) startRecording() {
	t := c.t
	if err := os.MkdirAll(runsDir(), 0o755); err != nil {
		t.Fatal(err)
	}
	base := filepath.Join(runsDir(), fmt.Sprintf("%d-%s", os.Getpid(), c.runID))
	lock, err := os.OpenFile(base+".lock", os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		t.Fatal(err)
	}
	c.stateF = base + ".json"
	t.Cleanup(func() { // registered first: runs after every other cleanup
		os.Remove(c.stateF)
		os.Remove(base + ".lock")
		lock.Close()
	})
}

// record applies change to the run's record and writes it out.
func (c *Cluster) record(change func(*runState)) {
	change(&c.state)
	b, err := json.Marshal(c.state)
	if err == nil {
		tmp := c.stateF + ".tmp"
		if err = os.WriteFile(tmp, b, 0o644); err == nil {
			err = os.Rename(tmp, c.stateF)
		}
	}
	if err != nil {
		c.t.Fatalf("recording the run's host state: %v", err)
	}
}

// sweepStaleRuns removes what dead runs left on the host.
func sweepStaleRuns(t testing.TB) {
	recs, _ := filepath.Glob(filepath.Join(runsDir(), "*.json"))
	for _, rec := range recs {
		base := strings.TrimSuffix(rec, ".json")
		lock, err := os.OpenFile(base+".lock", os.O_CREATE|os.O_RDWR, 0o644)
		if err != nil {
			continue
		}
		if syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) != nil {
			lock.Close() // its run is alive
			continue
		}
		var s runState
		if b, err := os.ReadFile(rec); err == nil && json.Unmarshal(b, &s) == nil {
			t.Logf("removing what a dead e2e run left (%s): %+v", filepath.Base(base), s)
			unmounted := true
			for _, m := range s.Mounts {
				if exec.Command("umount", m).Run() != nil && exec.Command("umount", "-l", m).Run() != nil {
					unmounted = !isMountPoint(m)
				}
			}
			if unmounted && s.Dir != "" && filepath.IsAbs(s.Dir) && filepath.Dir(s.Dir) != "/" {
				_ = os.RemoveAll(s.Dir)
				// The dead test's whole t.TempDir root (its bundle, PKI…).
				if root := filepath.Dir(s.Dir); filepath.Dir(root) == filepath.Clean(os.TempDir()) && strings.HasPrefix(filepath.Base(root), "Test") {
					_ = os.RemoveAll(root)
				}
			}
			for _, r := range s.Rules {
				_ = exec.Command("iptables", append([]string{"-w", "-D"}, r...)...).Run()
			}
			if s.Bridge != "" {
				_ = exec.Command("ip", "link", "del", s.Bridge).Run()
			}
			for _, cg := range s.Cgroups {
				(&Node{cgroups: []string{cg}}).removeCgroups()
			}
		}
		os.Remove(rec)
		os.Remove(base + ".lock")
		lock.Close()
	}
}

// isMountPoint reports whether p is listed in /proc/self/mountinfo.
func isMountPoint(p string) bool {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return true // unknown: assume the worst
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 4 && f[4] == p {
			return true
		}
	}
	return false
}
