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

// TestJoin grows a bootstrapped server by a worker and a second control
// plane: `installer token create` on the server writes a join file per
// node; on each new node, `installer join` fetches the bundle from the
// server's content service (the nodes have no ISO), verifies it, installs,
// and joins. The worker goes Ready with its labels; its pods pull through
// the server's registry; pods on different nodes reach each other through
// the pod routes and Services work from every node; the worker's firewall
// admits the control planes only on the kubelet's port. The control plane
// joins with the sealed CAs (certificate key): its etcd member is added by
// name, its API server and content service serve. `installer apply` then
// changes nothing anywhere.
func TestJoin(t *testing.T) {
	st := newSteps(t)
	phase := st.phase
	Prerequisites(t)
	b := buildDistroBundle(t, t.TempDir())
	phase("bundle built")

	c := NewCluster(t, NodeSpec{Name: "node1"}, NodeSpec{Name: "node2"}, NodeSpec{Name: "node3"})
	n1, n2, n3 := c.Nodes[0], c.Nodes[1], c.Nodes[2]
	phase(fmt.Sprintf("nodes booted at %s, %s and %s", n1.IP, n2.IP, n3.IP))
	prepareThreeNodes(t, c, b)

	installer := func(n *Node, args ...string) string { t.Helper(); return installer(t, n, args...) }
	ignore := ignorePreflight
	installer(n1, "bootstrap", "--iso", "/root/ferry.iso", "--config", "/root/cluster.yaml", "--keyring", "/root/release.pub.asc",
		"--root-passphrase-file", "/root/passphrase", ignore)
	phase("node1 bootstrapped")

	out := installer(n1, "token", "create", "--node", "node2", "--out", "/root/node2.join")
	if !strings.Contains(out, "join file for node node2 written to /root/node2.join") {
		t.Errorf("token create: %s", out)
	}
	if out := n1.MustExec(t, "stat", "-c", "%a", "/root/node2.join"); strings.TrimSpace(out) != "600" {
		t.Errorf("join file mode %s, want 600", out)
	}
	if _, err := n1.Exec(nodeInstaller, "token", "create", "--node", "node9"); err == nil {
		t.Error("token create for a node not in cluster.yaml succeeded")
	}
	joinFile, err := os.ReadFile(filepath.Join(n1.Root, "root/node2.join"))
	if err != nil {
		t.Fatal(err)
	}
	n2.WriteFile("/root/node2.join", joinFile, 0o600)
	out = installer(n2, "join", "--join-file", "/root/node2.join", ignore)
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
	out = installer(n1, "token", "create", "--node", "node3", "--out", "/root/node3.join")
	var certKey string
	for _, l := range strings.Split(out, "\n") {
		if k, ok := strings.CutPrefix(l, "certificate key (carry it apart from the file): "); ok {
			certKey = strings.TrimSpace(k)
		}
	}
	if len(certKey) != 64 {
		t.Fatalf("token create for a control plane printed no certificate key:\n%s", out)
	}
	joinFile, err = os.ReadFile(filepath.Join(n1.Root, "root/node3.join"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(joinFile), "PRIVATE KEY") || strings.Contains(string(joinFile), certKey) {
		t.Fatal("the control-plane join file carries a key in the clear")
	}
	n3.WriteFile("/root/node3.join", joinFile, 0o600)
	if out, err := n3.Exec(nodeInstaller, "join", "--join-file", "/root/node3.join", "--certificate-key", strings.Repeat("0", 64), ignore); err == nil || !strings.Contains(out, "do not open with this certificate key") {
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
	members := n3.MustExec(t, "etcdctl", "--endpoints=https://localhost:2379", "--cacert=/etc/kubernetes/pki/etcd/ca.crt",
		"--cert=/etc/kubernetes/pki/etcd/healthcheck-client.crt", "--key=/etc/kubernetes/pki/etcd/healthcheck-client.key", "member", "list")
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

	if out := installer(n3, "apply"); !strings.Contains(out, "0 changes") {
		t.Errorf("installer apply on node3 after join:\n%s", out)
	}
	if out := installer(n2, "apply"); !strings.Contains(out, "0 changes") {
		t.Errorf("installer apply on node2 after join:\n%s", out)
	}
	if out := installer(n1, "apply"); !strings.Contains(out, "0 changes") {
		t.Errorf("installer apply on node1 after node2 joined:\n%s", out)
	}
	// The join file is single-use in effect: joining again changes nothing.
	if out := installer(n2, "join", "--join-file", "/root/node2.join", ignore); !strings.Contains(out, "0 changes") {
		t.Errorf("installer join again:\n%s", out)
	}

	// R50: node2 and node3 leave cluster.yaml; an apply on node1 drains and
	// deletes them and removes node3's etcd member.
	st.waitFor("every node's daemon reports its version", 2*time.Minute, func() (bool, string) {
		out, err := kubectl("get", "nodes", "-o", `jsonpath={range .items[*]}{.metadata.name}={.metadata.annotations.ferry\.dev/version}{" "}{end}`)
		return err == nil && strings.Count(out, "=1.0.0") == 3, out
	})
	cfg := n1.MustExec(t, "cat", "/etc/ferry/cluster.yaml")
	i := strings.Index(cfg, "    - name: node2\n")
	if i < 0 {
		t.Fatalf("cluster.yaml:\n%s", cfg)
	}
	n1.WriteFile("/root/cluster-node1.yaml", []byte(cfg[:i]), 0o644)
	out = installer(n1, "apply", "--config", "/root/cluster-node1.yaml")
	for _, want := range []string{"remove node node2 (not in the cluster configuration)", "remove node node3 (not in the cluster configuration)"} {
		if !strings.Contains(out, want) {
			t.Errorf("apply without node2 and node3 lacks %q:\n%s", want, out)
		}
	}
	if out, err := kubectl("get", "nodes", "-o", "name"); err != nil || strings.TrimSpace(out) != "node/node1" {
		t.Errorf("nodes after the removal: %v %s", err, out)
	}
	members = n1.MustExec(t, "etcdctl", "--endpoints=https://localhost:2379", "--cacert=/etc/kubernetes/pki/etcd/ca.crt",
		"--cert=/etc/kubernetes/pki/etcd/healthcheck-client.crt", "--key=/etc/kubernetes/pki/etcd/healthcheck-client.key", "member", "list")
	if strings.Contains(members, "node3") || !strings.Contains(members, "node1") {
		t.Errorf("etcd members after node3's removal:\n%s", members)
	}
	st.waitFor("web available again on node1", 3*time.Minute, func() (bool, string) {
		out, err := kubectl("get", "pods", "-l", "app=web", "-o", `jsonpath={range .items[*]}{.spec.nodeName}={.status.phase}{" "}{end}`)
		return err == nil && strings.Contains(out, "node1=Running"), out
	})
	if out := installer(n1, "apply"); !strings.Contains(out, "0 changes") {
		t.Errorf("installer apply after the removal:\n%s", out)
	}
	c.AssertNoForwarding(t)
}

// prepareThreeNodes readies node1 (control plane and worker, the bundle,
// cluster.yaml and a root key passphrase in /root), node2 (worker) and
// node3 (control plane): names in /etc/hosts, a resolver, the kubelet's
// cgroup, the installer under test.
func prepareThreeNodes(t *testing.T, c *Cluster, b *distroBundle) {
	t.Helper()
	n1, n2, n3 := c.Nodes[0], c.Nodes[1], c.Nodes[2]
	hosts := fmt.Sprintf("%s node1.%s %s\n%s node2.%s\n%s node3.%s\n", n1.IP, e2eDomain, apiEndpoint, n2.IP, e2eDomain, n3.IP, e2eDomain)
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
`, apiEndpoint) + e2eNodeYAML("node1", "control-plane, worker") + e2eNodeYAML("node2", "worker") + e2eNodeYAML("node3", "control-plane")
	for src, dst := range map[string]string{b.iso: "/root/ferry.iso", b.pub: "/root/release.pub.asc"} {
		if err := n1.CopyIn(src, dst, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	n1.WriteFile("/root/cluster.yaml", []byte(clusterYAML), 0o644)
	n1.WriteFile("/root/passphrase", []byte("e2e root key passphrase\n"), 0o600)

}
