package nodeagent

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/ferry-k8s/ferry/builder/distro/distrotest"
	"github.com/ferry-k8s/ferry/installer/bundlestore"
	"github.com/ferry-k8s/ferry/installer/layout"
	"github.com/ferry-k8s/ferry/installer/rollout"
	"github.com/ferry-k8s/ferry/internal/bundletest"
	"github.com/ferry-k8s/ferry/internal/testcluster"
)

// TestDaemonRefusesRollbackThroughTheNode: the daemon moves its node to
// the version its own Node names, and the kubelet's credentials can write
// that. Against a real API server with the Node authorizer, acting as the
// node: an older bundle is refused until an administrator orders the
// rollback (rollout.OrderRollback), and minUpgradeFrom and the Kubernetes
// skew are enforced on this path too.
func TestDaemonRefusesRollbackThroughTheNode(t *testing.T) {
	c := testcluster.Start(t, testcluster.Options{KubeAPIServer: distrotest.KubeAPIServer(t), Etcd: distrotest.Etcd(t), Authorization: "Node,RBAC"})
	ctx := context.Background()
	if _, err := c.Client.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "w1"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	node := c.ClientAs(t, "system:node:w1", "system:nodes")
	root := t.TempDir()
	bundles := filepath.Join(root, layout.BundlesDir)
	cur := bundletest.ManifestISO(t, bundles, "1.1.0", "v1.36.3", "")
	if err := bundlestore.SetTarget(root, cur); err != nil {
		t.Fatal(err)
	}
	older := bundletest.ManifestISO(t, bundles, "1.0.0", "v1.36.3", "") // the same Kubernetes
	newer := bundletest.ManifestISO(t, bundles, "1.2.0", "v1.36.4", "")
	picky := bundletest.ManifestISO(t, bundles, "1.3.0", "v1.36.4", "1.2.0")
	skewed := bundletest.ManifestISO(t, bundles, "2.0.0", "v1.38.0", "")

	// The attack: the node's own credentials name an older version.
	patch := []byte(`{"metadata":{"annotations":{"ferry.dev/desired-version":"1.0.0"}}}`)
	if _, err := node.CoreV1().Nodes().Patch(ctx, "w1", types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		t.Fatalf("the node cannot annotate itself (the attack this guards against): %v", err)
	}
	decide := func(file string) (refused, err error) { return mayMove(ctx, node, root, file) }
	// No order was ever written: nodes cannot even read one. Not a
	// decision (asked again next round), and never a move.
	if refused, err := decide(older); err == nil && refused == nil {
		t.Fatal("moved back to 1.0.0 on the node's own word")
	}
	for _, tc := range []struct{ file, want string }{
		{newer, ""},
		{picky, "upgrades from 1.2.0 or later only (its minUpgradeFrom), and 1.1.0 is installed"},
		{skewed, "upgrade one minor version at a time"},
		{cur, ""},
	} {
		refused, err := decide(tc.file)
		switch {
		case err != nil:
			t.Errorf("%s: %v", tc.file, err)
		case tc.want == "" && refused != nil:
			t.Errorf("%s: refused: %v", tc.file, refused)
		case tc.want != "" && (refused == nil || !strings.Contains(refused.Error(), tc.want)):
			t.Errorf("%s: refused=%v, want %q", tc.file, refused, tc.want)
		}
	}

	// An order for another version does not do.
	if err := rollout.OrderRollback(ctx, c.Client, "0.9.0", "test", time.Now()); err != nil {
		t.Fatal(err)
	}
	refused, err := decide(older)
	if err != nil || refused == nil || !strings.Contains(refused.Error(), "no rollback to it is ordered") {
		t.Fatalf("1.0.0 with an order for 0.9.0: refused=%v err=%v", refused, err)
	}
	t.Log(refused)
	// The administrator's order: now it moves back.
	if err := rollout.OrderRollback(ctx, c.Client, "1.0.0", "test", time.Now()); err != nil {
		t.Fatal(err)
	}
	if refused, err := decide(older); err != nil || refused != nil {
		t.Fatalf("1.0.0, ordered: refused=%v err=%v", refused, err)
	}
	// Kubernetes is never downgraded, ordered or not.
	oldKube := bundletest.ManifestISO(t, bundles, "1.0.1", "v1.35.4", "")
	if err := rollout.OrderRollback(ctx, c.Client, "1.0.1", "test", time.Now()); err != nil {
		t.Fatal(err)
	}
	if refused, err := decide(oldKube); err != nil || refused == nil || !strings.Contains(refused.Error(), "Kubernetes is never downgraded") {
		t.Fatalf("an ordered rollback to an older Kubernetes: refused=%v err=%v", refused, err)
	}
	// Withdrawn: refused again.
	if err := rollout.WithdrawRollback(ctx, c.Client); err != nil {
		t.Fatal(err)
	}
	if refused, err := decide(older); err != nil || refused == nil {
		t.Fatalf("1.0.0 after the order was withdrawn: refused=%v err=%v", refused, err)
	}
}
