//go:build e2e

package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// upgradeFrom is the Kubernetes the cluster starts at: the minor before
// the default bundle's (built from source like it).
const upgradeFrom = "v1.35.4"

// TestUpgrade rolls bundle 1.1.0 (the default Kubernetes) over a four-node
// cluster installed from bundle 1.0.0 (the minor before): node1 bootstraps
// from 1.0.0, node2 joins as a worker, node3 and node4 as control planes
// (R54: three etcd members; the two-control-plane cluster is one
// Ferry refuses); a
// Deployment with a PodDisruptionBudget serves a client that requests it
// all along from node3's host. `installer upgrade --iso` on node1
// verifies and imports the new bundle, snapshots etcd, and rolls it node
// by node. Every node ends at 1.1.0 with the new kubelet, the API server
// runs the new Kubernetes, no client request failed, the snapshot is
// there, and a second `installer upgrade` has nothing to do.
func TestUpgrade(t *testing.T) {
	st := newSteps(t)
	phase := st.phase
	Prerequisites(t)
	dir := t.TempDir()
	v1 := buildDistroBundleOf(t, filepath.Join(dir, "v1"), upgradeFrom, "1.0.0")
	phase("bundle 1.0.0 (" + upgradeFrom + ") built")
	v2 := buildDistroBundleOf(t, filepath.Join(dir, "v2"), "", "1.1.0")
	phase("bundle 1.1.0 built")

	c := NewCluster(t, NodeSpec{Name: "node1"}, NodeSpec{Name: "node2"}, NodeSpec{Name: "node3"}, NodeSpec{Name: "node4"})
	n1, n2, n3, n4 := c.Nodes[0], c.Nodes[1], c.Nodes[2], c.Nodes[3]
	prepareNodes(t, c, v1)
	installer := func(n *Node, args ...string) string { t.Helper(); return installer(t, n, args...) }
	installer(n1, "bootstrap", "--iso", "/root/ferry.iso", "--config", "/root/cluster.yaml", "--keyring", "/root/release.pub.asc",
		"--root-passphrase-file", "/root/passphrase", ignorePreflight)
	phase("node1 bootstrapped from 1.0.0")
	_, node2Key := tokenCreate(t, n1, "node2", "/root/node2.join")
	data, err := os.ReadFile(filepath.Join(n1.Root, "root", "node2.join"))
	if err != nil {
		t.Fatal(err)
	}
	n2.WriteFile("/root/node2.join", data, 0o600)
	installer(n2, "join", "--join-file", "/root/node2.join", "--certificate-key", node2Key, ignorePreflight)
	joinControlPlane(t, n1, n3)
	joinControlPlane(t, n1, n4)
	phase("node2, node3 and node4 joined")
	kubectl := func(args ...string) (string, error) { return kubectl(n1, args...) }
	st.waitFor("four nodes Ready at "+upgradeFrom, 5*time.Minute, func() (bool, string) {
		out, err := kubectl("get", "nodes", "-o", `jsonpath={range .items[*]}{.status.conditions[?(@.type=="Ready")].status} {.status.nodeInfo.kubeletVersion}{"\n"}{end}`)
		return err == nil && strings.Count(out, "True "+upgradeFrom) == 4, out
	})

	// The workload: three replicas spread when they can, a budget of one
	// unavailable, and a preStop pause so that a Pod leaves the Service's
	// endpoints before it stops answering.
	web{Replicas: 3, PDB: "maxUnavailable: 1", PodSpec: `      terminationGracePeriodSeconds: 15
      affinity:
        podAntiAffinity:
          preferredDuringSchedulingIgnoredDuringExecution:
            - weight: 100
              podAffinityTerm: {labelSelector: {matchLabels: {app: web}}, topologyKey: kubernetes.io/hostname}
`, Container: `          readinessProbe: {httpGet: {path: /, port: 8080}, periodSeconds: 1}
          lifecycle: {preStop: {sleep: {seconds: 5}}}
`}.apply(t, n1)
	st.waitFor("web available", 3*time.Minute, func() (bool, string) {
		out, err := kubectl("get", "deployment", "web", "-o", "jsonpath={.status.availableReplicas}")
		return err == nil && out == "3", out
	})
	svcIP, err := kubectl("get", "service", "web", "-o", "jsonpath={.spec.clusterIP}")
	if err != nil {
		t.Fatal(err)
	}
	// The client: a request every 200 ms from node3's host (not a Pod: it
	// is not evicted), each line the status or 000 for a failure.
	n3.MustExec(t, "/bin/sh", "-c", fmt.Sprintf(`nohup setsid /bin/sh -c 'while [ ! -e /root/client.stop ]; do curl -s -o /dev/null --max-time 2 -w "%%{http_code} %%{time_total} $(date -u +%%H:%%M:%%S.%%N)\n" http://%s/ >> /root/client.log; sleep 0.2; done' >/dev/null 2>&1 &`, svcIP))
	// Steady before the roll-out starts: the last 10 answers (2 s) all 200
	// (kube-proxy on node3 programs the Service while the Pods turn Ready).
	st.waitFor("the client gets answers, 10 in a row", time.Minute, func() (bool, string) {
		out, _ := n3.Exec("sh", "-c", "tail -n 10 /root/client.log | grep -c '^200 ' || true")
		return strings.TrimSpace(out) == "10", out
	})

	if err := n1.CopyIn(v2.iso, "/root/ferry-1.1.0.iso", 0o644); err != nil {
		t.Fatal(err)
	}
	// The roll-out's requests are those from here on.
	warmup, err := strconv.Atoi(strings.TrimSpace(n3.MustExec(t, "sh", "-c", "wc -l < /root/client.log")))
	if err != nil {
		t.Fatal(err)
	}
	phase("roll-out of 1.1.0 starts")
	start := time.Now()
	out, err := n1.execTimeout(25*time.Minute, nil, nodeInstaller, "upgrade", "--iso", "/root/ferry-1.1.0.iso", "--node-timeout", "10m")
	t.Logf("installer upgrade:\n%s", out)
	if err != nil {
		for _, n := range c.Nodes {
			journal, _ := n.Exec("journalctl", "-u", "ferry-node", "--no-pager", "-n", "40")
			t.Logf("%s ferry-node:\n%s", n.Name, journal)
		}
		t.Fatalf("installer upgrade: %v", err)
	}
	took := time.Since(start)
	phase(fmt.Sprintf("roll-out done in %s", took.Round(time.Second)))
	n3.MustExec(t, "touch", "/root/client.stop")

	nodes, err := kubectl("get", "nodes", "-o", `jsonpath={range .items[*]}{.metadata.name} {.metadata.annotations.ferry\.dev/version} {.status.nodeInfo.kubeletVersion} {.spec.unschedulable}{"\n"}{end}`)
	if err != nil {
		t.Fatal(err)
	}
	// Every node staged 1.1.0 (bundle, images) before the first drain.
	staged, err := kubectl("get", "nodes", "-o", `jsonpath={range .items[*]}{.metadata.name}={.metadata.annotations.ferry\.dev/staged-version}{" "}{end}`)
	if err != nil || strings.Count(staged, "=1.1.0") != len(c.Nodes) {
		t.Errorf("staged versions: %v %s", err, staged)
	}
	// ... and in that order: each daemon's journal time of its staging
	// against the orchestrator's record of the first cordon (the same
	// host clock: nspawn machines share it).
	firstCordon := firstCordonTime(t, kubectl)
	for _, n := range c.Nodes {
		at, err := stagedAt(n, "1.1.0")
		switch {
		case err != nil:
			t.Errorf("%s's staging: %v", n.Name, err)
		case !at.Before(firstCordon):
			t.Errorf("%s staged 1.1.0 at %s, not before the first cordon at %s", n.Name, at.Format(time.StampMicro), firstCordon.Format(time.StampMicro))
		default:
			t.Logf("%s staged %s before the first cordon", n.Name, firstCordon.Sub(at).Round(time.Millisecond))
		}
	}
	for _, n := range c.Nodes {
		if !strings.Contains(nodes, n.Name+" 1.1.0 v1.36.3 \n") {
			t.Errorf("node %s is not at 1.1.0 / v1.36.3, uncordoned:\n%s", n.Name, nodes)
		}
	}
	if v, err := kubectl("get", "--raw", "/version"); err != nil || !strings.Contains(v, `"gitVersion": "v1.36.3"`) {
		t.Errorf("API server version: %v %s", err, v)
	}
	if snaps := n1.MustExec(t, "sh", "-c", "ls /var/lib/ferry/snapshots/"); !strings.Contains(snaps, "etcd-1.1.0-") {
		t.Errorf("no etcd snapshot for 1.1.0: %q", snaps)
	}
	log := n3.MustExec(t, "cat", "/root/client.log")
	total, failed := 0, 0
	for i, l := range strings.Split(strings.TrimSpace(log), "\n") {
		if i < warmup {
			continue // before the roll-out
		}
		total++
		if !strings.HasPrefix(l, "200 ") {
			failed++
			if failed <= 40 {
				t.Logf("client: failed request: %s", l)
			}
		}
	}
	t.Logf("client: %d requests during the roll-out, %d failed", total, failed)
	if failed > 0 || total < 10 {
		t.Errorf("client: %d of %d requests failed", failed, total)
		proxyLog, _ := n3.Exec("journalctl", "-u", "kube-proxy", "-u", "ferry-apiproxy", "--no-pager", "-n", "80", "-o", "short-precise")
		t.Logf("node3's kube-proxy and API proxy:\n%s", proxyLog)
		events, _ := kubectl("get", "events", "-A", "--sort-by=.lastTimestamp", "-o", `custom-columns=T:.lastTimestamp,NS:.metadata.namespace,OBJ:.involvedObject.name,R:.reason,M:.message`)
		t.Logf("events:\n%s", events)
	}
	out = installer(n1, "upgrade", "--iso", "/root/ferry-1.1.0.iso")
	if !strings.Contains(out, "nothing to do") {
		t.Errorf("a second installer upgrade:\n%s", out)
	}
	for _, n := range c.Nodes {
		if out := installer(n, "apply"); !zeroChanges.MatchString(out) {
			t.Errorf("installer apply on %s after the roll-out:\n%s", n.Name, out)
		}
	}
	c.AssertNoForwarding(t)
}

// firstCordonTime is when the roll-out cordoned its first node, from its
// record (kube-system/ferry-rollout: each node's started time is that of
// its cordon).
func firstCordonTime(t *testing.T, kubectl func(...string) (string, error)) time.Time {
	t.Helper()
	out, err := kubectl("get", "configmap", "-n", "kube-system", "ferry-rollout", "-o", "json")
	if err != nil {
		t.Fatalf("the roll-out's record: %v", err)
	}
	var cm struct {
		Data map[string]string `json:"data"`
	}
	if err := json.Unmarshal([]byte(out), &cm); err != nil {
		t.Fatal(err)
	}
	var first time.Time
	for k, v := range cm.Data {
		if !strings.HasPrefix(k, "node.") {
			continue
		}
		var rec struct {
			Started time.Time `json:"started"`
		}
		if err := json.Unmarshal([]byte(v), &rec); err != nil || rec.Started.IsZero() {
			t.Fatalf("the roll-out's record of %s: %q %v", k, v, err)
		}
		if first.IsZero() || rec.Started.Before(first) {
			first = rec.Started
		}
	}
	if first.IsZero() {
		t.Fatalf("the roll-out's record names no node: %v", cm.Data)
	}
	return first
}

// stagedAt is when n's daemon logged that it staged version (journal
// time, microseconds).
func stagedAt(n *Node, version string) (time.Time, error) {
	out, err := n.Exec("journalctl", "-u", "ferry-node", "--no-pager", "-o", "json")
	if err != nil {
		return time.Time{}, err
	}
	for _, line := range strings.Split(out, "\n") {
		var e struct {
			Message any    `json:"MESSAGE"`
			Time    string `json:"__REALTIME_TIMESTAMP"`
		}
		if json.Unmarshal([]byte(line), &e) != nil {
			continue
		}
		msg, ok := e.Message.(string)
		if !ok || !strings.Contains(msg, "roll-out: staged") || !strings.Contains(msg, version) {
			continue
		}
		us, err := strconv.ParseInt(e.Time, 10, 64)
		if err != nil {
			return time.Time{}, fmt.Errorf("journal time %q: %w", e.Time, err)
		}
		return time.UnixMicro(us), nil
	}
	return time.Time{}, fmt.Errorf("the daemon's journal does not say it staged %s", version)
}
