package rollout

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/ferry-k8s/ferry/installer/cluster"
)

// TestRolloutRollback: a node moves back to an older bundle only on an
// order no node can write. The attack first: with a kubelet's identity, a
// node sets its own desired version (NodeRestriction allows it) but can
// neither write nor forge the order. A roll-out back without the order is
// refused by the first node, which stops it with the node's reason at
// once; with Rollback the order is recorded before any node changes, read
// by the nodes, and withdrawn when every node is back.
func TestRolloutRollback(t *testing.T) {
	c := startCluster(t)
	names := c.addNodes(t, "rb", 3, 1)
	ctx := context.Background()
	node := c.cp.ClientAs(t, "system:node:"+names[1], "system:nodes")

	// What a kubelet credential can do: edit its own Node's annotations.
	patch := []byte(`{"metadata":{"annotations":{"ferry.dev/desired-version":"0.9.0"}}}`)
	if _, err := node.CoreV1().Nodes().Patch(ctx, names[1], types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		t.Fatalf("the kubelet's identity cannot annotate its own Node (the attack this guards against): %v", err)
	}
	// What it cannot: order a rollback, or read one that does not exist.
	forged := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: RollbackConfigMap, Namespace: ConfigMapNamespace}, Data: map[string]string{RollbackKeyVersion: "0.9.0"}}
	if _, err := node.CoreV1().ConfigMaps(ConfigMapNamespace).Create(ctx, forged, metav1.CreateOptions{}); !apierrors.IsForbidden(err) {
		t.Fatalf("a node created the rollback order: %v", err)
	}
	if ok, err := RollbackOrdered(ctx, node, "0.9.0"); ok || err == nil {
		t.Fatalf("no order yet: ordered=%v err=%v", ok, err)
	}
	// Put the node back as the roll-out expects it.
	patch = []byte(`{"metadata":{"annotations":{"ferry.dev/desired-version":"1.0.0"}}}`)
	if _, err := c.client.CoreV1().Nodes().Patch(ctx, names[1], types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}

	d := newSimDaemon(c.client, 200*time.Millisecond, testNewKubelet)
	d.orders = node
	opts := c.options(t, c.client, d, "0.9.0", cluster.Int(1))
	opts.NodeTimeout = 10 * time.Minute // a refusal must not wait it out
	_, err := Run(ctx, opts)
	var se *StoppedError
	if !errors.As(err, &se) || len(se.Failed) != 1 || !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "no rollback is ordered") {
		t.Fatalf("a roll-out back without the order: want the first node to refuse it, got %v", err)
	}
	t.Log(err)
	c.checkWarning(t, se.Failed[0].Node, "UpgradeFailed", "no rollback is ordered")
	if _, err := c.client.CoreV1().ConfigMaps(ConfigMapNamespace).Get(ctx, RollbackConfigMap, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("an order exists although none was given: %v", err)
	}

	// Ordered: the same call resumes, the refused node decides again.
	opts.Rollback = true
	rep, err := Run(ctx, opts)
	if err != nil || !rep.Resumed {
		t.Fatalf("the ordered rollback: resumed=%v %v", rep.Resumed, err)
	}
	c.checkDone(t, "0.9.0")
	st, _, err := ReadStatus(ctx, c.client)
	if err != nil || !st.Plan.Rollback {
		t.Fatalf("the roll-out's record does not say it was a rollback: %+v %v", st, err)
	}
	// Complete: the order is withdrawn; a node can no longer move back.
	if ok, err := RollbackOrdered(ctx, node, "0.9.0"); ok || err != nil {
		t.Fatalf("after the roll-out: ordered=%v err=%v, want the order withdrawn", ok, err)
	}
	for _, n := range names {
		got, err := c.client.CoreV1().Nodes().Get(ctx, n, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if v, ok := got.Annotations[AnnotationTargetRefused]; ok {
			t.Errorf("node %s still reports a refusal: %q", n, v)
		}
	}
}
