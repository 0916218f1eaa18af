package bootstrap

import (
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ferry-k8s/ferry/builder/distro/distrotest"
	"github.com/ferry-k8s/ferry/installer/addon"
	"github.com/ferry-k8s/ferry/installer/addons"
	"github.com/ferry-k8s/ferry/installer/cluster"
	"github.com/ferry-k8s/ferry/installer/cluster/clustertest"
	"github.com/ferry-k8s/ferry/installer/converge"
	"github.com/ferry-k8s/ferry/installer/desired"
	"github.com/ferry-k8s/ferry/installer/rollout"
	"github.com/ferry-k8s/ferry/internal/testcluster"
)

// TestAddonsInTheNodePlan: on a converged control plane the registered
// add-ons join the node's plan as operations it prints, journals and
// counts; applied through the node's own Apply, a second plan is empty
// ("0 changes"), and an older bundle leaves them alone. In a roll-out they
// follow the control plane: none is planned while another control plane
// reports an older bundle.
func TestAddonsInTheNodePlan(t *testing.T) {
	tc := testcluster.Start(t, testcluster.Options{KubeAPIServer: distrotest.KubeAPIServer(t), Etcd: distrotest.Etcd(t)})
	ctx := context.Background()
	client, err := addon.NewClient(tc.Config)
	if err != nil {
		t.Fatal(err)
	}
	c, err := cluster.Parse([]byte(clustertest.HA))
	if err != nil {
		t.Fatal(err)
	}
	c = c.Defaulted()
	in := desired.AddonInput(c, desired.Bundle{Name: "ferry", Version: "1.2.0", KubernetesVersion: "v1.36.3", ImageRepository: "registry.ferry.dev/k8s",
		Images: map[string]string{"coredns": "registry.ferry.dev/k8s/coredns:v1.14.2", "pause": "registry.ferry.dev/k8s/pause:3.10"}})
	// cp2 still runs 1.1.0, cp3 has no Node yet.
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "cp2", Annotations: map[string]string{rollout.AnnotationVersion: "1.1.0"}}}
	if node, err = tc.Client.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	ops, notes, err := planAddons(ctx, client, c, "cp1", in)
	if err != nil || len(ops) != 0 || len(notes) != 1 || !strings.Contains(notes[0], "cp2 runs 1.1.0") {
		t.Fatalf("another control plane behind: %v, %d operations, notes %q", err, len(ops), notes)
	}
	node.Annotations[rollout.AnnotationVersion] = "1.2.0"
	if _, err := tc.Client.CoreV1().Nodes().Update(ctx, node, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	ops, notes, err = planAddons(ctx, client, c, "cp1", in)
	if err != nil {
		t.Fatal(err)
	}
	if len(ops) == 0 || len(notes) != 0 {
		t.Fatalf("first plan: %d operations, notes %q", len(ops), notes)
	}
	for _, a := range addons.All() {
		if !strings.Contains(converge.Format(ops), "add-on "+a.Name()+": ") {
			t.Errorf("the plan has no operation of add-on %s:\n%s", a.Name(), converge.Format(ops))
		}
	}
	// The test plays the Deployment controller (CoreDNS is waited for).
	pctx, stop := context.WithCancel(ctx)
	defer stop()
	go tc.PlayDeploymentController(pctx)
	h := &converge.Host{Root: t.TempDir(), StateDir: "/var/lib/ferry"}
	if n, err := h.Apply(ctx, ops); err != nil || n != len(ops) {
		t.Fatalf("applied %d of %d: %v", n, len(ops), err)
	}
	if ops, _, err := planAddons(ctx, client, c, "cp1", in); err != nil || len(ops) != 0 {
		t.Fatalf("after applying: %v\n%s", err, converge.Format(ops))
	}
	// A control plane still on an older bundle (a roll-out under way)
	// does not roll the add-ons back.
	old := in
	old.BundleVersion = "1.1.0"
	ops, notes, err = planAddons(ctx, client, c, "cp1", old)
	if err != nil || len(ops) != 0 || len(notes) == 0 {
		t.Fatalf("older bundle: %v, %d operations, notes %q", err, len(ops), notes)
	}
}
