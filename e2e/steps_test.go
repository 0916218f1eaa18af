//go:build e2e

package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ferry-k8s/ferry/builder"
	"github.com/ferry-k8s/ferry/bundle/validity"
	"github.com/ferry-k8s/ferry/bundle/verify"
	"github.com/ferry-k8s/ferry/signing"
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
// zeroChanges matches the installer's summary when it counts exactly no
// change ("node n converged to b: 0 changes in 1 round(s)"); "10 changes"
// does not match.
var zeroChanges = regexp.MustCompile(`: 0 changes in `)

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

// validityStatements are two validity statements for b's bundle: one that
// ended a minute ago (issued two minutes ago), and a newer one from
// builder extend that extends it 400 days. A signed statement whose expiry
// has passed ends a bundle's validity on a real node as the calendar
// passing the manifest's expiry would, without moving the node's clock.
func validityStatements(t *testing.T, b *distroBundle) (ended, renewed []byte) {
	t.Helper()
	ring, err := signing.LoadKeyringFile(b.pub)
	if err != nil {
		t.Fatal(err)
	}
	vb, err := verify.Open(b.iso, ring, verify.Options{Installed: true})
	if err != nil {
		t.Fatal(err)
	}
	st := &validity.Statement{SchemaVersion: validity.SchemaVersion, Kind: validity.Kind,
		Bundle: validity.BundleRef{Name: vb.Manifest.Name, Version: vb.Manifest.Version, ManifestSHA256: vb.ManifestSHA256}}
	vb.Close()
	now := time.Now().UTC().Truncate(time.Second)
	st.Issued, st.Expires = now.Add(-2*time.Minute), now.Add(-time.Minute)
	if ended, err = validity.Sign(st, b.signer); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "renewed.validity")
	if _, _, err := builder.Extend(builder.ExtendOptions{ISO: b.iso, Until: now.Add(400 * 24 * time.Hour), Signer: b.signer, Output: p}); err != nil {
		t.Fatal(err)
	}
	if renewed, err = os.ReadFile(p); err != nil {
		t.Fatal(err)
	}
	return ended, renewed
}

// extendOn hands a validity statement to n's content service (installer
// bundle extend) and waits until the service serves it beside the bundle.
func extendOn(t *testing.T, n *Node, fqdn string, statement []byte) {
	t.Helper()
	n.WriteFile("/root/statement.validity", statement, 0o644)
	installer(t, n, "bundle", "extend", "--validity", "/root/statement.validity")
	deadline := time.Now().Add(2 * time.Minute)
	for {
		out, err := n.Exec("curl", "-sS", "--max-time", "10", "--cacert", "/etc/ferry/pki/content/ca.crt", "https://"+fqdn+":5443/bundles/ferry-kubernetes-1.0.0.validity")
		if err == nil && out == string(statement) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s's content service does not serve the statement: %v %s", n.Name, err, firstN(out, 300))
		}
		time.Sleep(time.Second)
	}
}
