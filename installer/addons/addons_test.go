package addons_test

import (
	"context"
	"slices"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ferry-k8s/ferry/builder/distro/distrotest"
	"github.com/ferry-k8s/ferry/bundle"
	"github.com/ferry-k8s/ferry/installer/addon"
	"github.com/ferry-k8s/ferry/installer/addons"
	"github.com/ferry-k8s/ferry/installer/cluster"
	"github.com/ferry-k8s/ferry/installer/rollout"
	"github.com/ferry-k8s/ferry/internal/testcluster"
)

func sampleInput(t *testing.T) addon.Input {
	t.Helper()
	c, err := cluster.Load("../cluster/testdata/cluster.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return addon.Input{
		Cluster:           c.Defaulted(),
		KubernetesVersion: "v1.36.3",
		BundleName:        "ferry",
		BundleVersion:     "1.2.0",
		ImageRepository:   bundle.DefaultImageRepository,
		Images: map[string]string{"pause": bundle.DefaultImageRepository + "/pause:3.10.2",
			"coredns": bundle.DefaultImageRepository + "/coredns:v1.14.2"},
	}
}

// TestAddonRegistry: every add-on renders the sample cluster.yaml, and
// the names are distinct.
func TestAddonRegistry(t *testing.T) {
	in := sampleInput(t)
	var names []string
	for _, a := range addons.All() {
		d, err := addon.Render(a, in)
		if err != nil {
			t.Errorf("%v", err)
			continue
		}
		if len(d.Objects) == 0 {
			t.Errorf("add-on %s renders nothing", a.Name())
		}
		if slices.Contains(names, a.Name()) {
			t.Errorf("two add-ons named %s", a.Name())
		}
		names = append(names, a.Name())
	}
	if len(names) == 0 {
		t.Fatal("no add-ons")
	}
}

// TestAddonNodeRBAC: the node-rbac add-on and rollout.OrderRollback write
// the same Role and RoleBinding; neither undoes the other (a cluster set
// up before add-ons, then converged; a rollback ordered afterwards).
func TestAddonNodeRBAC(t *testing.T) {
	tc := testcluster.Start(t, testcluster.Options{KubeAPIServer: distrotest.KubeAPIServer(t), Etcd: distrotest.Etcd(t)})
	ctx := context.Background()
	c, err := addon.NewClient(tc.Config)
	if err != nil {
		t.Fatal(err)
	}
	d, err := addon.Render(addons.NodeRBAC{}, sampleInput(t))
	if err != nil {
		t.Fatal(err)
	}
	plan := func() []string {
		t.Helper()
		o, err := addon.Observe(ctx, c, d)
		if err != nil {
			t.Fatal(err)
		}
		p := addon.MakePlan(d, o, addon.NewerSemver)
		if err := addon.Apply(ctx, c, p, addon.ApplyOptions{Timeout: time.Minute}); err != nil {
			t.Fatal(err)
		}
		var ops []string
		for _, op := range p.Ops {
			ops = append(ops, op.String())
		}
		return ops
	}

	// An older cluster: the rollback order created the objects.
	if err := rollout.OrderRollback(ctx, tc.Client, "1.1.0", "test", time.Now()); err != nil {
		t.Fatal(err)
	}
	ops := plan()
	want := []string{
		"record add-on node-rbac in kube-system/ferry-addon-node-rbac (before applying: bundle 1.2.0, kinds Role.rbac.authorization.k8s.io,RoleBinding.rbac.authorization.k8s.io)",
		"apply object rbac.authorization.k8s.io/v1 Role kube-system/ferry:rollback-reader (differs)",
		"apply object rbac.authorization.k8s.io/v1 RoleBinding kube-system/ferry:rollback-reader (differs)",
		"record add-on node-rbac in kube-system/ferry-addon-node-rbac (bundle 1.2.0, " + d.Digest + ")",
	}
	if !slices.Equal(ops, want) {
		t.Fatalf("ops:\n got %q\nwant %q", ops, want)
	}
	if ops := plan(); len(ops) != 0 {
		t.Fatalf("converged: %q", ops)
	}
	// A rollback ordered on the converged cluster leaves the add-on's
	// labels: still 0 changes.
	if err := rollout.OrderRollback(ctx, tc.Client, "1.1.0", "test", time.Now()); err != nil {
		t.Fatal(err)
	}
	if ops := plan(); len(ops) != 0 {
		t.Fatalf("after OrderRollback: %q", ops)
	}
	role, err := tc.Client.RbacV1().Roles(rollout.ConfigMapNamespace).Get(ctx, rollout.RollbackReader, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if role.Labels[addon.LabelAddon] != "node-rbac" || len(role.Rules) != 1 || role.Rules[0].ResourceNames[0] != rollout.RollbackConfigMap {
		t.Errorf("role: labels %v rules %+v", role.Labels, role.Rules)
	}
	// A node may read the order, and only it.
	node := tc.ClientAs(t, "system:node:n1", "system:nodes")
	if ok, err := rollout.RollbackOrdered(ctx, node, "1.1.0"); !ok || err != nil {
		t.Errorf("a node reads the order: %v %v", ok, err)
	}
	if _, err := node.CoreV1().ConfigMaps(addon.ParentNamespace).Get(ctx, addon.ParentName("node-rbac"), metav1.GetOptions{}); err == nil {
		t.Error("a node reads another ConfigMap of kube-system")
	}
}
