package bootstrap

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/ferry-k8s/ferry/builder/distro/distrotest"
	"github.com/ferry-k8s/ferry/bundle"
	"github.com/ferry-k8s/ferry/installer/rollout"
	"github.com/ferry-k8s/ferry/internal/testcluster"
	"github.com/ferry-k8s/ferry/iso"
)

// writeBundleISO writes, under root's BundlesDir, an ISO whose manifest
// says name, version, Kubernetes version and minUpgradeFrom: what the
// daemon's decision reads (the bundles there were verified when stored).
func writeBundleISO(t *testing.T, root, version, kube, minUpgradeFrom string) string {
	t.Helper()
	created := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	m := &bundle.Manifest{SchemaVersion: bundle.ManifestSchemaVersion, Product: bundle.Product, Name: "ferry-kubernetes", Version: version,
		KubernetesVersion: kube, MinUpgradeFrom: minUpgradeFrom, Created: created, Expires: created.Add(bundle.DefaultExpiresAfter),
		Files: []bundle.File{{Path: "SHA256SUMS", Size: 10, SHA256: strings.Repeat("c", 64)}}}
	data, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "manifest.json")
	if err := os.WriteFile(src, data, 0o644); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := iso.Write(&out, []iso.Entry{{Path: bundle.ManifestPath, Source: src, Size: int64(len(data))}}, iso.WriteOptions{VolumeID: "FERRY"}); err != nil {
		t.Fatal(err)
	}
	file := "ferry-kubernetes-" + version + ".iso"
	if err := os.MkdirAll(filepath.Join(root, BundlesDir), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, BundlesDir, file), out.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return file
}

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
	cur := writeBundleISO(t, root, "1.1.0", "v1.36.3", "")
	if err := writeState(root, TargetFile, cur); err != nil {
		t.Fatal(err)
	}
	older := writeBundleISO(t, root, "1.0.0", "v1.36.3", "") // the same Kubernetes
	newer := writeBundleISO(t, root, "1.2.0", "v1.36.4", "")
	picky := writeBundleISO(t, root, "1.3.0", "v1.36.4", "1.2.0")
	skewed := writeBundleISO(t, root, "2.0.0", "v1.38.0", "")

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
	oldKube := writeBundleISO(t, root, "1.0.1", "v1.35.4", "")
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

// TestBootstrapAgainKeepsTheRules: bootstrap or join run again with
// another bundle on a node that runs one follows the roll-out's rules.
func TestBootstrapAgainKeepsTheRules(t *testing.T) {
	root := t.TempDir()
	facts := func(v, k, min string) *BundleFacts {
		return &BundleFacts{Name: "ferry-kubernetes", Version: v, KubernetesVersion: k, MinUpgradeFrom: min}
	}
	if err := mayReplaceTarget(root, facts("1.0.0", "v1.36.3", "")); err != nil {
		t.Fatalf("a new node: %v", err)
	}
	cur := writeBundleISO(t, root, "1.1.0", "v1.36.3", "")
	if err := writeState(root, TargetFile, cur); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		next *BundleFacts
		want string
	}{
		{facts("1.1.0", "v1.36.3", ""), ""},
		{facts("1.2.0", "v1.36.4", ""), ""},
		{facts("1.0.0", "v1.36.3", ""), "this node runs ferry-kubernetes 1.1.0: bundle 1.0.0 is older than the installed 1.1.0"},
		{facts("1.3.0", "v1.36.4", "1.2.0"), "its minUpgradeFrom"},
	} {
		err := mayReplaceTarget(root, tc.next)
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%s: %v, want %q", tc.next.Version, err, tc.want)
		}
	}
}
