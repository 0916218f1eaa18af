//go:build e2e

package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// The nspawn machines need kubeadm to skip these preflight checks (see
// E2E-NODES.md: no swap accounting, a kernel config kubeadm cannot read,
// br_netfilter's sysctl not namespaced).
const ignorePreflight = "--ignore-preflight-errors=Swap,SystemVerification,FileContent--proc-sys-net-bridge-bridge-nf-call-iptables"

// nodeInstaller is where the tests copy the installer under test.
const nodeInstaller = "/usr/local/sbin/ferry-bootstrap-installer"

// steps logs a test's phases with the time since its start and waits for
// conditions.
type steps struct {
	t     *testing.T
	start time.Time
}

func newSteps(t *testing.T) *steps { return &steps{t: t, start: time.Now()} }

func (s *steps) phase(what string) {
	s.t.Helper()
	s.t.Logf("[%6.1fs] %s", time.Since(s.start).Seconds(), what)
}

// waitFor polls ok until it holds (then logs what as a phase) or fails
// the test after timeout with ok's last words.
func (s *steps) waitFor(what string, timeout time.Duration, ok func() (bool, string)) {
	s.t.Helper()
	deadline := time.Now().Add(timeout)
	last := ""
	for time.Now().Before(deadline) {
		var done bool
		if done, last = ok(); done {
			s.phase(what)
			return
		}
		time.Sleep(3 * time.Second)
	}
	s.t.Fatalf("%s: not within %s; last: %s", what, timeout, last)
}

// installer runs the installer under test on n; a failure fails the test
// with the node's journal, kubelet log and containers.
func installer(t *testing.T, n *Node, args ...string) string {
	t.Helper()
	out, err := n.Exec(append([]string{nodeInstaller}, args...)...)
	if err != nil {
		journal, _ := n.Exec("tail", "-n", "20", "/var/lib/ferry/journal.jsonl")
		kubelet, _ := n.Exec("journalctl", "-u", "kubelet", "--no-pager", "-n", "60")
		containers, _ := n.Shell(`crictl ps -a; for c in $(crictl ps -a --state exited -q | head -n 6) $(crictl ps -q --name kube-apiserver); do echo "== $c"; crictl logs --tail 25 "$c" 2>&1; done`)
		t.Fatalf("%s: installer %v: %v\n%s\njournal:\n%s\nkubelet:\n%s\ncontainers:\n%s", n.Name, args, err, out, journal, kubelet, containers)
	}
	return out
}

// kubectl runs kubectl as the cluster admin on a control-plane node.
func kubectl(n *Node, args ...string) (string, error) {
	return n.Exec(append([]string{"kubectl", "--kubeconfig", "/etc/kubernetes/admin.conf"}, args...)...)
}

// web is the e2e workload: a Deployment of the web image (non-root,
// read-only, no capabilities) behind a Service, and a PodDisruptionBudget
// when pdb (its spec line, "minAvailable: 1") is set. podSpec and
// container are extra YAML lines of the Pod's spec (6 spaces of
// indentation) and of its container (10).
type web struct {
	Replicas           int
	PodSpec, Container string
	PDB                string
}

func (w web) manifest() string {
	pdb := ""
	if w.PDB != "" {
		pdb = "---\napiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata: {name: web, namespace: default}\nspec:\n  " + w.PDB + "\n  selector: {matchLabels: {app: web}}\n"
	}
	return fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: default}
spec:
  replicas: %d
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
%s      securityContext: {runAsNonRoot: true, seccompProfile: {type: RuntimeDefault}}
      containers:
        - name: web
          image: %s
          ports: [{containerPort: 8080}]
%s          securityContext: {readOnlyRootFilesystem: true, allowPrivilegeEscalation: false, capabilities: {drop: [ALL]}}
%s---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
`, w.Replicas, w.PodSpec, webImage, w.Container, pdb)
}

// apply applies the workload with the admin kubeconfig of control plane n.
func (w web) apply(t *testing.T, n *Node) {
	t.Helper()
	if out, err := n.ExecInput(strings.NewReader(w.manifest()), "kubectl", "--kubeconfig", "/etc/kubernetes/admin.conf", "apply", "-f", "-"); err != nil {
		t.Fatalf("kubectl apply: %v\n%s", err, out)
	}
}
