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

// TestJoinWorker grows a bootstrapped server by a worker: `installer token
// create` on the server writes a join file; on the new node, `installer
// join` fetches the bundle from the server's content service (the node has
// no ISO), verifies it, installs, and joins. The worker goes Ready with its
// labels; its pods pull through the server's registry; pods on the two
// nodes reach each other through the pod routes and Services work from
// both; the worker's firewall admits the control plane only on the
// kubelet's port; `installer apply` on the worker then changes nothing.
func TestJoinWorker(t *testing.T) {
	st := newSteps(t)
	phase := st.phase
	Prerequisites(t)
	b := buildDistroBundle(t, t.TempDir())
	phase("bundle built")

	c := NewCluster(t, NodeSpec{Name: "node1"}, NodeSpec{Name: "node2"})
	n1, n2 := c.Nodes[0], c.Nodes[1]
	phase(fmt.Sprintf("nodes booted at %s and %s", n1.IP, n2.IP))
	hosts := fmt.Sprintf("%s node1.%s %s\n%s node2.%s\n", n1.IP, e2eDomain, apiEndpoint, n2.IP, e2eDomain)
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
`, apiEndpoint) + e2eNodeYAML("node1", "control-plane, worker") + e2eNodeYAML("node2", "worker")
	for src, dst := range map[string]string{b.iso: "/root/ferry.iso", b.pub: "/root/release.pub.asc"} {
		if err := n1.CopyIn(src, dst, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	n1.WriteFile("/root/cluster.yaml", []byte(clusterYAML), 0o644)
	n1.WriteFile("/root/passphrase", []byte("e2e root key passphrase\n"), 0o600)

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
	workload := fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: default}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      affinity:
        podAntiAffinity:
          requiredDuringSchedulingIgnoredDuringExecution:
            - {labelSelector: {matchLabels: {app: web}}, topologyKey: kubernetes.io/hostname}
      securityContext: {runAsNonRoot: true, seccompProfile: {type: RuntimeDefault}}
      containers:
        - name: web
          image: %s
          ports: [{containerPort: 8080}]
          securityContext: {readOnlyRootFilesystem: true, allowPrivilegeEscalation: false, capabilities: {drop: [ALL]}}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
`, webImage)
	if out, err := n1.ExecInput(strings.NewReader(workload), "kubectl", "--kubeconfig", "/etc/kubernetes/admin.conf", "apply", "-f", "-"); err != nil {
		t.Fatalf("kubectl apply: %v\n%s", err, out)
	}
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
	c.AssertNoForwarding(t)
}
