//go:build e2e

package e2e

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// e2eNodeYAML is a node of cluster.yaml with the systemd-nspawn machine
// overrides (documented in E2E-NODES.md; see TestBootstrapSingleServer).
func e2eNodeYAML(name, roles string) string {
	return fmt.Sprintf(`    - name: %[1]s
      hostname: %[1]s.%[2]s
      roles: [%[3]s]
      labels: {topology.kubernetes.io/zone: e2e-%[1]s}
      selinux: disabled
      kubelet:
        cgroupDriver: cgroupfs
        cgroupRoot: /%[1]s
        failCgroupV1: false
        failSwapOn: false
        evictionHard: {memory.available: 100Mi, nodefs.available: 1%%, imagefs.available: 1%%, nodefs.inodesFree: 1%%}
        imageGCHighThresholdPercent: 100
        imageGCLowThresholdPercent: 99
      containerd:
        restrictOOMScoreAdj: true
`, name, e2eDomain, roles)
}

// TestJoin grows a bootstrapped server into an HA cluster (R54: three
// control planes) with a worker: `installer token create` on the server
// writes a join file per node; on each new node, `installer join` fetches
// the bundle from the server's content service (the nodes have no ISO),
// verifies it, installs, and joins. The worker goes Ready with its labels;
// its pods pull through the server's registry; pods on different nodes
// reach each other through the pod routes and Services work from every
// node; the worker's firewall admits the control planes only on the
// kubelet's port. The control planes join with the sealed CAs
// (certificate key): their etcd members are added by name, their API
// servers and content services serve. `installer apply` then changes
// nothing anywhere.
//
// Then the first node dies (R32): the worker stays Ready through its
// node-local API proxy, pulls an image it does not have and reads the
// repositories from the other control planes' content services, and
// Ferry's own commands work on a surviving control plane. Finally the
// dead node and the worker leave cluster.yaml for a replacement not yet
// joined (R50): an apply on a surviving control plane deletes both Nodes
// and removes the dead node's etcd member.
func TestJoin(t *testing.T) {
	st := newSteps(t)
	phase := st.phase
	Prerequisites(t)
	b := buildDistroBundle(t, t.TempDir())
	phase("bundle built")

	c := NewCluster(t, NodeSpec{Name: "node1"}, NodeSpec{Name: "node2"}, NodeSpec{Name: "node3"}, NodeSpec{Name: "node4"})
	n1, n2, n3, n4 := c.Nodes[0], c.Nodes[1], c.Nodes[2], c.Nodes[3]
	phase(fmt.Sprintf("nodes booted at %s, %s, %s and %s", n1.IP, n2.IP, n3.IP, n4.IP))
	prepareNodes(t, c, b)

	installer := func(n *Node, args ...string) string { t.Helper(); return installer(t, n, args...) }
	ignore := ignorePreflight
	installer(n1, "bootstrap", "--iso", "/root/ferry.iso", "--config", "/root/cluster.yaml", "--keyring", "/root/release.pub.asc",
		"--root-passphrase-file", "/root/passphrase", ignore)
	phase("node1 bootstrapped")

	// A readable file where the join file goes: it keeps neither its
	// content nor its mode. A symbolic link there is refused.
	if err := n1.WriteFile("/root/node2.join", []byte("an older file\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	n1.MustExec(t, "ln", "-s", "/root/elsewhere", "/root/link.join")
	if out, err := n1.Exec(nodeInstaller, "token", "create", "--node", "node2", "--out", "/root/link.join"); err == nil || !strings.Contains(out, "is a symbolic link") {
		t.Errorf("token create through a symbolic link: %v\n%s", err, out)
	}
	if _, err := n1.Exec("test", "-e", "/root/elsewhere"); err == nil {
		t.Error("token create wrote through a symbolic link")
	}
	out, node2Key := tokenCreate(t, n1, "node2", "/root/node2.join")
	if !strings.Contains(out, "join file for node node2 written to /root/node2.join") {
		t.Errorf("token create: %s", out)
	}
	if out := n1.MustExec(t, "stat", "-c", "%a %F", "/root/node2.join"); strings.TrimSpace(out) != "600 regular file" {
		t.Errorf("join file mode %s, want 600 regular file", out)
	}
	if _, err := n1.Exec(nodeInstaller, "token", "create", "--node", "node9"); err == nil {
		t.Error("token create for a node not in cluster.yaml succeeded")
	}
	joinFile, err := os.ReadFile(filepath.Join(n1.Root, "root/node2.join"))
	if err != nil {
		t.Fatal(err)
	}
	n2.WriteFile("/root/node2.join", joinFile, 0o600)
	// A worker's join file is authenticated too: without its key, or
	// altered (another keyring), it is refused before node2 changes.
	tampered := strings.Replace(string(joinFile), "-----BEGIN PGP PUBLIC KEY BLOCK-----", "-----BEGIN PGP PUBLIC KEY BLOCK-----\\nComment: the attacker's", 1)
	if tampered == string(joinFile) {
		t.Fatal("the join file has no armored keyring to alter")
	}
	if err := n2.WriteFile("/root/tampered.join", []byte(tampered), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := n2.Exec(nodeInstaller, "join", "--join-file", "/root/node2.join", ignore); err == nil || !strings.Contains(out, "give --certificate-key") {
		t.Errorf("join without the key: %v\n%s", err, firstN(out, 2000))
	}
	if out, err := n2.Exec(nodeInstaller, "join", "--join-file", "/root/tampered.join", "--certificate-key", node2Key, ignore); err == nil || !strings.Contains(out, "the file was altered") {
		t.Errorf("join with an altered file: %v\n%s", err, firstN(out, 2000))
	}
	if out, err := n2.Exec("/bin/sh", "-c", "ls -d /var/lib/ferry/bundles /var/lib/ferry/journal.jsonl 2>/dev/null"); strings.TrimSpace(out) != "" {
		t.Errorf("a refused join changed node2: %v\n%s", err, out)
	}
	// R59: with the bundle's validity ended (a statement node1's content
	// service serves beside the bundle), the join is refused before node2
	// changes; a newer statement extends it, and node2 joins with it.
	ended, renewed := validityStatements(t, b)
	extendOn(t, n1, "node1."+e2eDomain, ended)
	if out, err := n2.Exec(nodeInstaller, "join", "--join-file", "/root/node2.join", "--certificate-key", node2Key, ignore); err == nil || !strings.Contains(out, "ended on") {
		t.Errorf("join with the bundle's validity ended: %v\n%s", err, firstN(out, 2000))
	}
	if out, err := n2.Exec("/bin/sh", "-c", "ls -d /var/lib/ferry/bundles /var/lib/ferry/journal.jsonl 2>/dev/null"); strings.TrimSpace(out) != "" {
		t.Errorf("the refused join changed node2: %v\n%s", err, out)
	}
	extendOn(t, n1, "node1."+e2eDomain, renewed)
	phase("join refused with the validity ended, allowed once extended")
	out = installer(n2, "join", "--join-file", "/root/node2.join", "--certificate-key", node2Key, ignore)
	t.Logf("join:\n%s", out)
	phase("installer join done on node2")

	kubectl := func(args ...string) (string, error) { return kubectl(n1, args...) }
	waitFor := st.waitFor
	waitFor("node2 Ready with its zone label", 5*time.Minute, func() (bool, string) {
		out, err := kubectl("get", "node", "node2", "-o", `jsonpath={.status.conditions[?(@.type=="Ready")].status} {.metadata.labels.topology\.kubernetes\.io/zone}`)
		return err == nil && out == "True e2e-node2", out
	})
	if out := n2.MustExec(t, "ls", "/var/lib/ferry/bundles"); !strings.Contains(out, ".iso") {
		t.Errorf("node2 has no imported bundle: %s", out)
	}
	if _, err := n2.Exec("test", "-e", "/etc/ferry/kubeadm/discovery.conf"); err == nil {
		t.Error("the discovery kubeconfig (bootstrap token) is still on node2")
	}

	// One web pod per node (anti-affinity): node2 pulls its image through
	// node1's registry.
	web{Replicas: 2, PodSpec: `      affinity:
        podAntiAffinity:
          requiredDuringSchedulingIgnoredDuringExecution:
            - {labelSelector: {matchLabels: {app: web}}, topologyKey: kubernetes.io/hostname}
`}.apply(t, n1)
	waitFor("web on both nodes", 4*time.Minute, func() (bool, string) {
		out, err := kubectl("get", "deployment", "web", "-o", "jsonpath={.status.availableReplicas}")
		if err == nil && out == "2" {
			return true, out
		}
		pods, _ := kubectl("get", "pods", "-o", "wide")
		return false, out + "\n" + pods
	})
	pods, err := kubectl("get", "pods", "-l", "app=web", "-o", `jsonpath={range .items[*]}{.spec.nodeName}={.status.podIP}{"\n"}{end}`)
	if err != nil {
		t.Fatal(err)
	}
	podIPs := map[string]string{}
	for _, l := range strings.Fields(pods) {
		node, ip, _ := strings.Cut(l, "=")
		podIPs[node] = ip
	}
	if podIPs["node1"] == "" || podIPs["node2"] == "" {
		t.Fatalf("web pods: %q", pods)
	}
	// Pod addresses across nodes (the routes), and the Service from both
	// nodes (kube-proxy on each).
	svcIP, err := kubectl("get", "service", "web", "-o", "jsonpath={.spec.clusterIP}")
	if err != nil {
		t.Fatal(err)
	}
	for _, check := range []struct {
		from *Node
		url  string
	}{
		{n1, "http://" + net.JoinHostPort(podIPs["node2"], "8080") + "/"},
		{n2, "http://" + net.JoinHostPort(podIPs["node1"], "8080") + "/"},
		{n2, "http://" + svcIP + "/"},
		{n1, "http://" + svcIP + "/"},
	} {
		waitFor(fmt.Sprintf("%s reaches %s", check.from.Name, check.url), time.Minute, func() (bool, string) {
			out, err := check.from.Exec("curl", "-sS", "--max-time", "5", check.url)
			return err == nil && strings.HasPrefix(out, "ferry-e2e-web web-"), out
		})
	}
	// kubectl logs goes from the API server to node2's kubelet: the
	// firewall admits the control plane and the serving certificate is
	// the one from the join file.
	if out, err := kubectl("logs", "--tail", "1", "deployment/web", "--all-pods"); err != nil {
		t.Errorf("kubectl logs (API server → node2's kubelet): %v %s", err, out)
	}
	// R26 on the worker: the kubelet from the control plane only.
	if out, err := n1.Exec("curl", "-sk", "--max-time", "5", "-o", "/dev/null", "-w", "%{http_code}", "https://node2."+e2eDomain+":10250/healthz"); err != nil || out == "000" {
		t.Errorf("node2's kubelet from node1: %v %s", err, out)
	}
	if conn, err := net.DialTimeout("tcp", net.JoinHostPort(n2.IP.String(), "10250"), 3*time.Second); err == nil {
		conn.Close()
		t.Error("node2's kubelet is reachable from the bridge (not a control-plane node)")
	}

	// The second control plane: its join file's CAs are sealed; the key
	// comes apart from it.
	_, certKey := tokenCreate(t, n1, "node3", "/root/node3.join")
	joinFile, err = os.ReadFile(filepath.Join(n1.Root, "root/node3.join"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(joinFile), "PRIVATE KEY") || strings.Contains(string(joinFile), certKey) {
		t.Fatal("the control-plane join file carries a key in the clear")
	}
	n3.WriteFile("/root/node3.join", joinFile, 0o600)
	if out, err := n3.Exec(nodeInstaller, "join", "--join-file", "/root/node3.join", "--certificate-key", strings.Repeat("0", 64), ignore); err == nil || !strings.Contains(out, "the certificate key is not the one installer token create printed") {
		t.Errorf("join with a wrong certificate key: %v\n%s", err, out)
	}
	// A control plane's join waits for its etcd member to catch up: more
	// than Exec's default timeout on a busy machine.
	out, err = n3.execTimeout(8*time.Minute, nil, nodeInstaller, "join", "--join-file", "/root/node3.join", "--certificate-key", certKey, ignore)
	if err != nil {
		etcdLog, _ := n1.Shell(`crictl logs --tail 40 $(crictl ps -q --name etcd) 2>&1`)
		members, _ := n1.Exec("etcdctl", "--endpoints=https://localhost:2379", "--cacert=/etc/kubernetes/pki/etcd/ca.crt",
			"--cert=/etc/kubernetes/pki/etcd/healthcheck-client.crt", "--key=/etc/kubernetes/pki/etcd/healthcheck-client.key", "member", "list")
		journal, _ := n3.Exec("tail", "-n", "12", "/var/lib/ferry/journal.jsonl")
		kubelet, _ := n3.Exec("journalctl", "-u", "kubelet", "--no-pager", "-n", "30")
		t.Fatalf("node3: installer join: %v\n%s\nnode3 journal:\n%s\nnode3 kubelet:\n%s\nnode1 etcd members:\n%s\nnode1 etcd:\n%s", err, out, journal, kubelet, members, etcdLog)
	}
	t.Logf("control-plane join:\n%s", out)
	phase("installer join done on node3 (control plane)")
	waitFor("node3 Ready as a control plane", 5*time.Minute, func() (bool, string) {
		out, err := kubectl("get", "node", "node3", "-o", `jsonpath={.status.conditions[?(@.type=="Ready")].status} {.metadata.labels.node-role\.kubernetes\.io/control-plane}`)
		return err == nil && out == "True ", out
	})
	waitFor("node3's API server, controller-manager, scheduler and etcd running", 3*time.Minute, func() (bool, string) {
		out, err := kubectl("get", "pods", "-n", "kube-system", "--field-selector", "spec.nodeName=node3,status.phase=Running", "-o", "jsonpath={.items[*].metadata.name}")
		ok := err == nil
		for _, p := range []string{"etcd-node3", "kube-apiserver-node3", "kube-controller-manager-node3", "kube-scheduler-node3"} {
			ok = ok && strings.Contains(out, p)
		}
		return ok, out
	})
	members := etcdMembers(t, n3)
	for _, want := range []string{"node1, https://node1." + e2eDomain + ":2380", "node3, https://node3." + e2eDomain + ":2380"} {
		if !strings.Contains(members, want) {
			t.Errorf("etcd members lack %q:\n%s", want, members)
		}
	}
	// node3's API server answers by its own name (its certificate is its own).
	if out, err := n1.Exec("kubectl", "--kubeconfig", "/etc/kubernetes/admin.conf", "--server", "https://node3."+e2eDomain+":6443", "get", "nodes", "-o", "name"); err != nil || !strings.Contains(out, "node/node3") {
		t.Errorf("node3's API server: %v %s", err, out)
	}
	// node3's content service serves the bundle's repositories.
	if out, err := n3.Exec("curl", "-sS", "--max-time", "10", "--cacert", "/etc/ferry/pki/content/ca.crt", "-o", "/dev/null", "-w", "%{http_code}", "https://node3."+e2eDomain+":5443/readyz"); err != nil || out != "200" {
		t.Errorf("node3's content service: %v %s", err, out)
	}

	// The third control plane (R54: an odd number of etcd members).
	out = joinControlPlane(t, n1, n4)
	t.Logf("node4 control-plane join:\n%s", out)
	phase("installer join done on node4 (control plane)")
	waitFor("node4 Ready as a control plane", 5*time.Minute, func() (bool, string) {
		out, err := kubectl("get", "node", "node4", "-o", `jsonpath={.status.conditions[?(@.type=="Ready")].status} {.metadata.labels.node-role\.kubernetes\.io/control-plane}`)
		return err == nil && out == "True ", out
	})
	members = etcdMembers(t, n4)
	for _, m := range []string{"node1", "node3", "node4"} {
		if want := m + ", https://" + m + "." + e2eDomain + ":2380"; !strings.Contains(members, want) {
			t.Errorf("etcd members lack %q:\n%s", want, members)
		}
	}
	if strings.Contains(members, ", true") {
		t.Errorf("a learner is left among the etcd members:\n%s", members)
	}

	if out := installer(n4, "apply"); !zeroChanges.MatchString(out) {
		t.Errorf("installer apply on node4 after join:\n%s", out)
	}
	if out := installer(n3, "apply"); !zeroChanges.MatchString(out) {
		t.Errorf("installer apply on node3 after join:\n%s", out)
	}
	if out := installer(n2, "apply"); !zeroChanges.MatchString(out) {
		t.Errorf("installer apply on node2 after join:\n%s", out)
	}
	if out := installer(n1, "apply"); !zeroChanges.MatchString(out) {
		t.Errorf("installer apply on node1 after node2 joined:\n%s", out)
	}
	// The join file is single-use in effect: joining again changes nothing.
	if out := installer(n2, "join", "--join-file", "/root/node2.join", "--certificate-key", node2Key, ignore); !zeroChanges.MatchString(out) {
		t.Errorf("installer join again:\n%s", out)
	}

	st.waitFor("every node's daemon reports its version", 2*time.Minute, func() (bool, string) {
		out, err := kubectl("get", "nodes", "-o", `jsonpath={range .items[*]}{.metadata.name}={.metadata.annotations.ferry\.dev/version}{" "}{end}`)
		return err == nil && strings.Count(out, "=1.0.0") == 4, out
	})

	// R32: every node runs the API server proxy; the worker's kubelet and
	// every kube-proxy reach the API through it.
	for _, n := range c.Nodes {
		if out, err := n.Exec("systemctl", "is-active", "ferry-apiproxy.service"); err != nil || strings.TrimSpace(out) != "active" {
			t.Errorf("%s: ferry-apiproxy.service %v %s", n.Name, err, out)
		}
		if out := n.MustExec(t, "grep", "server:", "/etc/kubernetes/kube-proxy.conf"); !strings.Contains(out, "https://127.0.0.1:6444") {
			t.Errorf("%s: kube-proxy's kubeconfig names %s", n.Name, out)
		}
	}
	if out := n2.MustExec(t, "cat", "/etc/kubernetes/kubelet.conf"); !strings.Contains(out, "server: https://127.0.0.1:6444") || !strings.Contains(out, "tls-server-name: "+apiEndpoint) {
		t.Errorf("node2's kubelet.conf does not name the proxy:\n%s", out)
	}
	// An image node2 does not have (etcd's: it runs on control planes only).
	etcdImage, err := kubectl("get", "pod", "-n", "kube-system", "etcd-node3", "-o", "jsonpath={.spec.containers[0].image}")
	if err != nil || etcdImage == "" {
		t.Fatalf("etcd image: %v %q", err, etcdImage)
	}
	if out, err := n2.Exec("crictl", "inspecti", etcdImage); err == nil {
		t.Fatalf("node2 has %s already:\n%s", etcdImage, out)
	}

	// The first node dies: no shutdown, its address gone from the bridge.
	n1.Kill()
	phase("node1 killed")
	proxied := func(n *Node, args ...string) (string, error) {
		return n.Exec(append([]string{"kubectl", "--kubeconfig", "/etc/kubernetes/admin.conf", "--server", "https://127.0.0.1:6444", "--tls-server-name", apiEndpoint, "--request-timeout=10s"}, args...)...)
	}
	ready := func(n *Node, node string) string {
		out, _ := proxied(n, "get", "node", node, "-o", `jsonpath={.status.conditions[?(@.type=="Ready")].status}`)
		return out
	}
	// node1 turns NotReady (the controller-manager on node3 or node4 sees
	// its lease lapse) while node2 — whose kubelet reached the API server
	// on node1 as often as any other — stays Ready all along.
	waitFor("node1 NotReady, node2 Ready, seen through node3's proxy", 3*time.Minute, func() (bool, string) {
		r1, r2 := ready(n3, "node1"), ready(n3, "node2")
		if r2 != "True" && r1 != "" {
			t.Errorf("node2 is %q after node1 died", r2)
		}
		return r1 == "Unknown" && r2 == "True", "node1=" + r1 + " node2=" + r2
	})
	if out := n2.MustExec(t, "sh", "-c", "journalctl -u kubelet --since -30s --no-pager | grep -c 'Error updating node status' || true"); strings.TrimSpace(out) != "0" {
		t.Errorf("node2's kubelet failed to update its status in the last 30 s (%s times)", strings.TrimSpace(out))
	}
	// By state too: node2's Lease keeps being renewed (every 10 s) with
	// node1 dead.
	leaseRenewed := func() time.Time {
		out, err := proxied(n3, "get", "lease", "-n", "kube-node-lease", "node2", "-o", "jsonpath={.spec.renewTime}")
		if err != nil {
			t.Fatalf("node2's lease: %v %s", err, out)
		}
		at, err := time.Parse(time.RFC3339Nano, out)
		if err != nil {
			t.Fatalf("node2's lease renewTime %q: %v", out, err)
		}
		return at
	}
	first := leaseRenewed()
	waitFor("node2's lease renewed with node1 dead", time.Minute, func() (bool, string) {
		at := leaseRenewed()
		return at.After(first), "renewTime " + at.Format(time.RFC3339Nano)
	})
	// The registry and the repositories, from the content services left.
	if out, err := n2.execTimeout(5*time.Minute, nil, "crictl", "pull", etcdImage); err != nil {
		t.Errorf("node2 pulls %s with node1 dead: %v\n%s", etcdImage, err, out)
	}
	if out, err := n2.execTimeout(5*time.Minute, nil, "dnf", "-q", "--setopt=timeout=5", "--setopt=retries=1", "makecache", "--refresh"); err != nil {
		t.Errorf("node2 reads the repositories with node1 dead: %v\n%s", err, out)
	}
	// Ferry's commands on a surviving control plane.
	if out := installer(n3, "apply"); !zeroChanges.MatchString(out) {
		t.Errorf("installer apply on node3 with node1 dead:\n%s", out)
	}
	if out := installer(n3, "token", "create", "--node", "node2", "--out", "/root/node2-again.join"); !strings.Contains(out, "join file for node node2") {
		t.Errorf("token create on node3 with node1 dead:\n%s", out)
	}
	phase("the cluster works without node1")

	// R50: node1 (dead) and node2 leave cluster.yaml for node5, a
	// replacement not joined yet (the control planes stay three, R54).
	// An apply on node3 drains and deletes both and removes node1's etcd
	// member, which the other two outvote.
	cfg := n3.MustExec(t, "cat", "/etc/ferry/cluster.yaml")
	i := strings.Index(cfg, "    - name: node1\n")
	k := strings.Index(cfg, "    - name: node3\n")
	if i < 0 || k < i {
		t.Fatalf("cluster.yaml:\n%s", cfg)
	}
	n3.WriteFile("/root/cluster-replaced.yaml", []byte(cfg[:i]+cfg[k:]+e2eNodeYAML("node5", "control-plane")), 0o644)
	out = installer(n3, "apply", "--config", "/root/cluster-replaced.yaml")
	for _, want := range []string{"remove node node1 (not in the cluster configuration)", "remove node node2 (not in the cluster configuration)"} {
		if !strings.Contains(out, want) {
			t.Errorf("apply without node1 and node2 lacks %q:\n%s", want, out)
		}
	}
	if out, err := proxied(n3, "get", "nodes", "-o", "name"); err != nil || strings.Fields(out)[0] != "node/node3" || len(strings.Fields(out)) != 2 {
		t.Errorf("nodes after the removal: %v %s", err, out)
	}
	members = etcdMembers(t, n3)
	if strings.Contains(members, "node1") || !strings.Contains(members, "node3") || !strings.Contains(members, "node4") {
		t.Errorf("etcd members after node1's removal:\n%s", members)
	}
	if out := installer(n3, "apply"); !zeroChanges.MatchString(out) {
		t.Errorf("installer apply after the removal:\n%s", out)
	}
	// The other nodes take the new cluster.yaml too (firewall, routes,
	// proxy backends, content services without node1).
	replaced := n3.MustExec(t, "cat", "/root/cluster-replaced.yaml")
	n4.WriteFile("/root/cluster-replaced.yaml", []byte(replaced), 0o644)
	installer(n4, "apply", "--config", "/root/cluster-replaced.yaml")
	if out := installer(n4, "apply"); !zeroChanges.MatchString(out) {
		t.Errorf("installer apply on node4 after the removal:\n%s", out)
	}
	if out := n4.MustExec(t, "cat", "/etc/ferry/apiproxy.yaml"); strings.Contains(out, "node1.") || !strings.Contains(out, "node5.") {
		t.Errorf("node4's API proxy backends after the replacement:\n%s", out)
	}
	c.AssertNoForwarding(t)
}

// etcdMembers is `etcdctl member list` on a control-plane node.
func etcdMembers(t *testing.T, n *Node) string {
	t.Helper()
	return n.MustExec(t, "etcdctl", "--endpoints=https://localhost:2379", "--cacert=/etc/kubernetes/pki/etcd/ca.crt",
		"--cert=/etc/kubernetes/pki/etcd/healthcheck-client.crt", "--key=/etc/kubernetes/pki/etcd/healthcheck-client.key", "member", "list")
}

// tokenCreate runs installer token create on n for node, the join file
// at out on n: what it printed, and the file's key (carried apart).
func tokenCreate(t *testing.T, n *Node, node, out string) (printed, key string) {
	t.Helper()
	printed = installer(t, n, "token", "create", "--node", node, "--out", out)
	for _, l := range strings.Split(printed, "\n") {
		if k, ok := strings.CutPrefix(l, "certificate key (carry it apart from the file): "); ok {
			key = strings.TrimSpace(k)
		}
	}
	if len(key) != 64 {
		t.Fatalf("token create for %s printed no certificate key:\n%s", node, printed)
	}
	return printed, key
}

// joinControlPlane makes a join file for n on the first node and joins n
// with it as a control plane, with the certificate key carried apart.
func joinControlPlane(t *testing.T, first, n *Node) string {
	t.Helper()
	_, certKey := tokenCreate(t, first, n.Name, "/root/"+n.Name+".join")
	data, err := os.ReadFile(filepath.Join(first.Root, "root", n.Name+".join"))
	if err != nil {
		t.Fatal(err)
	}
	n.WriteFile("/root/"+n.Name+".join", data, 0o600)
	// A control plane's join waits for its etcd member to catch up: more
	// than Exec's default timeout on a busy machine.
	out, err := n.execTimeout(8*time.Minute, nil, nodeInstaller, "join", "--join-file", "/root/"+n.Name+".join", "--certificate-key", certKey, ignorePreflight)
	if err != nil {
		journal, _ := n.Exec("tail", "-n", "12", "/var/lib/ferry/journal.jsonl")
		kubelet, _ := n.Exec("journalctl", "-u", "kubelet", "--no-pager", "-n", "30")
		t.Fatalf("%s: installer join: %v\n%s\njournal:\n%s\nkubelet:\n%s", n.Name, err, out, journal, kubelet)
	}
	return out
}

// prepareNodes readies the four nodes of the multi-node suites: node1
// (control plane and worker, the bundle, cluster.yaml and a root key
// passphrase in /root), node2 (worker), node3 and node4 (control planes):
// names in /etc/hosts (node5 too: a replacement that never boots), a
// resolver, the kubelet's cgroup, the installer under test.
func prepareNodes(t *testing.T, c *Cluster, b *distroBundle) {
	t.Helper()
	n1 := c.Nodes[0]
	hosts := fmt.Sprintf("%s node1.%s %s\n", n1.IP, e2eDomain, apiEndpoint)
	for _, n := range c.Nodes[1:] {
		hosts += fmt.Sprintf("%s %s.%s\n", n.IP, n.Name, e2eDomain)
	}
	hosts += fmt.Sprintf("%s node5.%s\n", c.Bridge().IP(99), e2eDomain)
	for _, n := range c.Nodes {
		n.MustExec(t, "/bin/sh", "-ec", fmt.Sprintf("printf '%s' >> /etc/hosts; echo 'nameserver %s' > /etc/resolv.conf; for h in /sys/fs/cgroup/*/; do mkdir -p \"$h/%s\"; done",
			hosts, c.Bridge().HostIP, n.Name))
		if err := n.CopyIn(b.installer, nodeInstaller, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	clusterYAML := fmt.Sprintf(`apiVersion: ferry.dev/v1alpha1
kind: Cluster
metadata: {name: e2e}
spec:
  controlPlaneEndpoint: %s:6443
  security:
    allowNonEnforcingControlPlane: true
  nodes:
`, apiEndpoint) + e2eNodeYAML("node1", "control-plane, worker") + e2eNodeYAML("node2", "worker") + e2eNodeYAML("node3", "control-plane") + e2eNodeYAML("node4", "control-plane")
	for src, dst := range map[string]string{b.iso: "/root/ferry.iso", b.pub: "/root/release.pub.asc"} {
		if err := n1.CopyIn(src, dst, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	n1.WriteFile("/root/cluster.yaml", []byte(clusterYAML), 0o644)
	n1.WriteFile("/root/passphrase", []byte("e2e root key passphrase\n"), 0o600)
}
