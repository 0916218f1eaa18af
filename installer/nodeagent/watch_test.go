package nodeagent

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/ferry-k8s/ferry/builder/distro/distrotest"
	"github.com/ferry-k8s/ferry/installer/bootstrap"
	"github.com/ferry-k8s/ferry/installer/bundlestore"
	"github.com/ferry-k8s/ferry/installer/layout"
	"github.com/ferry-k8s/ferry/installer/rollout"
	"github.com/ferry-k8s/ferry/internal/bundletest"
	"github.com/ferry-k8s/ferry/internal/testcluster"
	"github.com/ferry-k8s/ferry/signing"
)

const watchCluster = `apiVersion: ferry.dev/v1alpha1
kind: Cluster
metadata: {name: lab}
spec:
  controlPlaneEndpoint: api.lab.example.com:6443
  nodes:
    - {name: cp1, hostname: cp1.lab.example.com, roles: [control-plane]}
    - {name: w1, hostname: w1.lab.example.com, roles: [worker]}
`

// TestDaemonWatchCarriesOutTheSteps: the daemon's rounds (watchOnce) as
// worker w1, with its own credentials against a real API server (Node
// authorizer), carry out what rollout.NodeStep decides: a failure to
// decide writes nothing; a refusal is reported; a failed staging is
// reported and comes before the desired version; while an apply runs,
// nothing is written.
func TestDaemonWatchCarriesOutTheSteps(t *testing.T) {
	c := testcluster.Start(t, testcluster.Options{KubeAPIServer: distrotest.KubeAPIServer(t), Etcd: distrotest.Etcd(t), Authorization: "Node,RBAC"})
	ctx := context.Background()
	nodes := c.Client.CoreV1().Nodes()
	if _, err := nodes.Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "w1", Annotations: map[string]string{
		rollout.AnnotationVersion: "1.1.0", rollout.AnnotationDesiredVersion: "1.0.0",
	}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	write := func(p string, data []byte) {
		t.Helper()
		p = filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(layout.ClusterConfig, []byte(watchCluster))
	_, public, err := signing.GenerateKey(signing.KeyOptions{Name: "Ferry Test", Email: "test@example.invalid"})
	if err != nil {
		t.Fatal(err)
	}
	write(layout.KeyringFile, public)
	cert, key, err := c.CA.IssueClient("system:node:w1", "system:nodes")
	if err != nil {
		t.Fatal(err)
	}
	write("/var/lib/kubelet/pki/client.crt", cert)
	write("/var/lib/kubelet/pki/client.key", key)
	write("/etc/kubernetes/kubelet.conf", fmt.Appendf(nil, `apiVersion: v1
kind: Config
clusters: [{name: lab, cluster: {server: %q, certificate-authority: %q, tls-server-name: localhost}}]
users: [{name: w1, user: {client-certificate: %q, client-key: %q}}]
contexts: [{name: lab, context: {cluster: lab, user: w1}}]
current-context: lab
`, c.Config.Host, c.CAFile, filepath.Join(root, "/var/lib/kubelet/pki/client.crt"), filepath.Join(root, "/var/lib/kubelet/pki/client.key")))
	bundles := filepath.Join(root, layout.BundlesDir)
	cur := bundletest.ManifestISO(t, bundles, "1.1.0", "v1.36.3", "")
	if err := bundlestore.SetTarget(root, cur); err != nil {
		t.Fatal(err)
	}
	bundletest.ManifestISO(t, bundles, "1.0.0", "v1.36.3", "")
	bundletest.ManifestISO(t, bundles, "1.2.0", "v1.36.4", "") // not signed: staging it fails
	d := New(Options{Apply: bootstrap.Options{Root: root, Node: "w1"}})
	get := func() *corev1.Node {
		t.Helper()
		n, err := nodes.Get(ctx, "w1", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	annotate := func(a map[string]string) {
		t.Helper()
		patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": a}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := nodes.Patch(ctx, "w1", types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
			t.Fatal(err)
		}
	}

	// No rollback order was ever written, so the node cannot read one: no
	// decision, nothing written (the next round asks again).
	before := get().ResourceVersion
	if err := d.watchOnce(ctx); err == nil || !strings.Contains(err.Error(), "reading the rollback order") {
		t.Fatalf("a round without a readable order: %v", err)
	}
	if n := get(); n.ResourceVersion != before {
		t.Fatalf("the node was written: %v", n.Annotations)
	}

	// An order for another version: the daemon refuses 1.0.0 and says why.
	if err := rollout.OrderRollback(ctx, c.Client, "0.9.0", "test", time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := d.watchOnce(ctx); err != nil {
		t.Fatal(err)
	}
	n := get()
	if got := n.Annotations[rollout.AnnotationTargetRefused]; !strings.HasPrefix(got, "1.0.0: bundle 1.0.0 is older than the installed 1.1.0, and no rollback to it is ordered") {
		t.Fatalf("refusal %q", got)
	}
	if n.Annotations[rollout.AnnotationVersion] != "1.1.0" || readTarget(t, root) != cur {
		t.Fatalf("the node moved: %v, target %s", n.Annotations, readTarget(t, root))
	}
	if !managedBy(n, "ferry-node") {
		t.Fatalf("the refusal was not written by the daemon's field manager: %v", n.ManagedFields)
	}
	// The next round refuses again. (That it writes nothing is
	// rollout.TestNodeStep's: the API server keeps the resourceVersion
	// of a patch that changes nothing, so it cannot tell here.)
	if err := d.watchOnce(ctx); err != nil {
		t.Fatal(err)
	}
	if got := get().Annotations[rollout.AnnotationTargetRefused]; !strings.HasPrefix(got, "1.0.0: ") {
		t.Fatalf("refusal after a second round %q", got)
	}

	// Staging comes first, and its failure is reported.
	annotate(map[string]string{rollout.AnnotationStageVersion: "1.2.0"})
	if err := d.watchOnce(ctx); err != nil {
		t.Fatal(err)
	}
	n = get()
	if got := n.Annotations[rollout.AnnotationStageError]; !strings.HasPrefix(got, "1.2.0: ") {
		t.Fatalf("stage error %q (annotations %v)", got, n.Annotations)
	}
	if _, ok := n.Annotations[rollout.AnnotationStagedVersion]; ok {
		t.Fatalf("reported staged: %v", n.Annotations)
	}
	t.Log(n.Annotations[rollout.AnnotationStageError])

	// Desired back to the version the node runs: withdrawing the refusal
	// needs an apply, and while one runs nothing is written.
	annotate(map[string]string{rollout.AnnotationDesiredVersion: "1.1.0"})
	before = get().ResourceVersion
	d.mu.Lock()
	err = d.watchOnce(ctx)
	d.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	if n := get(); n.ResourceVersion != before || n.Annotations[rollout.AnnotationTargetRefused] == "" {
		t.Fatalf("written while an apply runs: %v", n.Annotations)
	}
}

func readTarget(t *testing.T, root string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(root, layout.TargetFile))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(data))
}

func managedBy(n *corev1.Node, manager string) bool {
	for _, f := range n.ManagedFields {
		if f.Manager == manager {
			return true
		}
	}
	return false
}
