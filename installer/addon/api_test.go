package addon_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/ferry-k8s/ferry/builder/distro/distrotest"
	"github.com/ferry-k8s/ferry/installer/addon"
	"github.com/ferry-k8s/ferry/internal/testcluster"
)

// apiEnv is a real control plane (etcd and kube-apiserver, no
// controller-manager) shared by the subtests; each uses its own add-on
// name and namespace.
type apiEnv struct {
	tc *testcluster.Cluster
	c  *addon.Client
}

func startAPI(t *testing.T) *apiEnv {
	tc := testcluster.Start(t, testcluster.Options{KubeAPIServer: distrotest.KubeAPIServer(t), Etcd: distrotest.Etcd(t)})
	c, err := addon.NewClient(tc.Config)
	if err != nil {
		t.Fatal(err)
	}
	return &apiEnv{tc: tc, c: c}
}

// plan observes d and plans; the plan's operations as strings.
func (e *apiEnv) plan(t *testing.T, d *addon.Desired) (*addon.Plan, []string) {
	t.Helper()
	o, err := addon.Observe(context.Background(), e.c, d)
	if err != nil {
		t.Fatalf("observe: %v", err)
	}
	p := addon.MakePlan(d, o, addon.NewerSemver)
	var ops []string
	for _, op := range p.Ops {
		ops = append(ops, op.String())
	}
	return p, ops
}

// converge plans and applies d and checks that the next plan is empty.
func (e *apiEnv) converge(t *testing.T, d *addon.Desired) []string {
	t.Helper()
	p, ops := e.plan(t, d)
	if err := addon.Apply(context.Background(), e.c, p, addon.ApplyOptions{Timeout: time.Minute, Interval: 100 * time.Millisecond}); err != nil {
		t.Fatalf("apply %q: %v", ops, err)
	}
	if _, again := e.plan(t, d); len(again) != 0 {
		t.Fatalf("after applying %q, the next plan is %q, want 0 changes", ops, again)
	}
	return ops
}

func (e *apiEnv) get(t *testing.T, gvr schema.GroupVersionResource, ns, name string) *unstructured.Unstructured {
	t.Helper()
	o, err := e.c.Dynamic.Resource(gvr).Namespace(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return o
}

var (
	gvrCM     = schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}
	gvrWidget = schema.GroupVersionResource{Group: "example.com", Version: "v1", Resource: "widgets"}
)

func TestAddonAPI(t *testing.T) {
	e := startAPI(t)
	ctx := context.Background()

	// Apply: a Namespace, a CRD and an object of its kind (unknown to the
	// API server until the CRD is established), a ConfigMap.
	t.Run("apply", func(t *testing.T) {
		d := render(t, "demo", "1.2.0", cm("ns1", "a", "1"), widgetDoc, crdDoc, nsDoc)
		ops := e.converge(t, d)
		want := []string{
			"record add-on demo in kube-system/ferry-addon-demo (before applying: bundle 1.2.0, kinds ConfigMap,CustomResourceDefinition.apiextensions.k8s.io,Namespace,Widget.example.com)",
			"apply object apiextensions.k8s.io/v1 CustomResourceDefinition widgets.example.com (missing)",
			"apply object v1 Namespace ns1 (missing)",
			"wait for object apiextensions.k8s.io/v1 CustomResourceDefinition widgets.example.com (established)",
			"apply object v1 ConfigMap ns1/a (missing)",
			"apply object example.com/v1 Widget ns1/w (missing)",
			"record add-on demo in kube-system/ferry-addon-demo (bundle 1.2.0, " + d.Digest + ")",
		}
		if !slices.Equal(ops, want) {
			t.Errorf("ops:\n got %q\nwant %q", ops, want)
		}
		for _, o := range []*unstructured.Unstructured{e.get(t, gvrCM, "ns1", "a"), e.get(t, gvrWidget, "ns1", "w")} {
			if l := o.GetLabels(); l[addon.LabelAddon] != "demo" || l[addon.ApplySetPartOfLabel] != addon.ApplySetID("demo") {
				t.Errorf("%s: labels %v", addon.RefOf(o), l)
			}
			mf := o.GetManagedFields()
			if len(mf) != 1 || mf[0].Manager != addon.FieldManager || mf[0].Operation != metav1.ManagedFieldsOperationApply {
				t.Errorf("%s: managed fields %+v, want one applier %q", addon.RefOf(o), mf, addon.FieldManager)
			}
		}
		parent := e.get(t, gvrCM, addon.ParentNamespace, addon.ParentName("demo"))
		a := parent.GetAnnotations()
		if parent.GetLabels()[addon.ApplySetIDLabel] != addon.ApplySetID("demo") || a[addon.ApplySetToolingAnnotation] != "ferry/v1" ||
			a[addon.ApplySetGKsAnnotation] != "ConfigMap,CustomResourceDefinition.apiextensions.k8s.io,Namespace,Widget.example.com" ||
			a[addon.AnnotationDigest] != d.Digest || a[addon.AnnotationBundleVersion] != "1.2.0" {
			t.Errorf("parent: labels %v annotations %v", parent.GetLabels(), a)
		}
	})

	// Drift: another client changes a field the add-on owns; another
	// manager's own field is left alone.
	t.Run("drift", func(t *testing.T) {
		d := render(t, "drift", "1.2.0", "{apiVersion: v1, kind: Namespace, metadata: {name: ns-drift}}", cm("ns-drift", "a", "1"), cm("ns-drift", "b", "1"))
		e.converge(t, d)
		cms := e.tc.Client.CoreV1().ConfigMaps("ns-drift")
		a, err := cms.Get(ctx, "a", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		a.Data["k"] = "edited"
		if _, err := cms.Update(ctx, a, metav1.UpdateOptions{FieldManager: "someone"}); err != nil {
			t.Fatal(err)
		}
		b, _ := cms.Get(ctx, "b", metav1.GetOptions{})
		b.Annotations = map[string]string{"someone.example/note": "mine"}
		if _, err := cms.Update(ctx, b, metav1.UpdateOptions{FieldManager: "someone"}); err != nil {
			t.Fatal(err)
		}
		_, ops := e.plan(t, d)
		if want := []string{"apply object v1 ConfigMap ns-drift/a (differs)"}; !slices.Equal(ops, want) {
			t.Fatalf("after the edit: %q, want %q", ops, want)
		}
		e.converge(t, d)
		if a, _ := cms.Get(ctx, "a", metav1.GetOptions{}); a.Data["k"] != "1" {
			t.Errorf("not restored: %v", a.Data)
		}
		if b, _ := cms.Get(ctx, "b", metav1.GetOptions{}); b.Annotations["someone.example/note"] != "mine" {
			t.Errorf("another manager's annotation was removed: %v", b.Annotations)
		}
		// A field the add-on stops rendering is removed.
		d2 := render(t, "drift", "1.2.0", "{apiVersion: v1, kind: Namespace, metadata: {name: ns-drift}}", cm("ns-drift", "a", "1"),
			"{apiVersion: v1, kind: ConfigMap, metadata: {namespace: ns-drift, name: b}}")
		if _, ops := e.plan(t, d2); !slices.Contains(ops, "apply object v1 ConfigMap ns-drift/b (differs)") {
			t.Fatalf("a field no longer rendered: %q", ops)
		}
		e.converge(t, d2)
		if b, _ := cms.Get(ctx, "b", metav1.GetOptions{}); b.Data != nil {
			t.Errorf("data no longer rendered is still there: %v", b.Data)
		}
	})

	// Prune: what the add-on no longer renders goes; another add-on's
	// object and an unlabelled one of the same kind stay.
	t.Run("prune", func(t *testing.T) {
		ns := "{apiVersion: v1, kind: Namespace, metadata: {name: ns-prune}}"
		role := "{apiVersion: rbac.authorization.k8s.io/v1, kind: Role, metadata: {namespace: ns-prune, name: r}, rules: []}"
		e.converge(t, render(t, "prune", "1.2.0", ns, cm("ns-prune", "keep", "1"), cm("ns-prune", "gone", "1"), role))
		other := render(t, "other", "1.2.0", cm("ns-prune", "theirs", "1"))
		e.converge(t, other)
		plain := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "ns-prune", Name: "plain"}}
		if _, err := e.tc.Client.CoreV1().ConfigMaps("ns-prune").Create(ctx, plain, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		d := render(t, "prune", "1.2.0", ns, cm("ns-prune", "keep", "1"))
		ops := e.converge(t, d)
		want := []string{
			"prune object v1 ConfigMap ns-prune/gone (no longer rendered)",
			"prune object rbac.authorization.k8s.io/v1 Role ns-prune/r (no longer rendered)",
			"record add-on prune in kube-system/ferry-addon-prune (bundle 1.2.0, " + d.Digest + ")",
		}
		if !slices.Equal(ops, want) {
			t.Errorf("ops:\n got %q\nwant %q", ops, want)
		}
		for name, wantThere := range map[string]bool{"keep": true, "theirs": true, "plain": true, "gone": false} {
			_, err := e.tc.Client.CoreV1().ConfigMaps("ns-prune").Get(ctx, name, metav1.GetOptions{})
			if there := err == nil; there != wantThere || (err != nil && !apierrors.IsNotFound(err)) {
				t.Errorf("configmap %s: there=%v (%v), want %v", name, there, err, wantThere)
			}
		}
		if _, err := e.tc.Client.RbacV1().Roles("ns-prune").Get(ctx, "r", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Errorf("role r not pruned: %v", err)
		}
		if a := e.get(t, gvrCM, addon.ParentNamespace, addon.ParentName("prune")).GetAnnotations(); a[addon.ApplySetGKsAnnotation] != "ConfigMap,Namespace" {
			t.Errorf("parent's kinds after pruning: %q", a[addon.ApplySetGKsAnnotation])
		}
	})

	// The version guard: a node with an older bundle leaves the add-on as
	// a newer one applied it.
	t.Run("version guard", func(t *testing.T) {
		e.converge(t, render(t, "guard", "1.10.0", cm("kube-system", "guard-a", "new")))
		old := render(t, "guard", "1.9.0", cm("kube-system", "guard-a", "old"), cm("kube-system", "guard-b", "old"))
		p, ops := e.plan(t, old)
		if len(ops) != 0 || len(p.Notes) != 1 || p.Notes[0] != "add-on guard: left as bundle 1.10.0 applied it: this node's bundle 1.9.0 is older" {
			t.Fatalf("an older bundle plans %q, notes %q", ops, p.Notes)
		}
		newer := render(t, "guard", "1.11.0", cm("kube-system", "guard-a", "newer"))
		if _, ops := e.plan(t, newer); len(ops) != 3 || ops[1] != "apply object v1 ConfigMap kube-system/guard-a (differs)" {
			t.Fatalf("a newer bundle plans %q", ops)
		}
	})

	// Readiness: a Deployment is waited for until its status says it is
	// available (set here: no controller-manager runs), and a wait that
	// never ends names the object and what it waits for.
	t.Run("readiness", func(t *testing.T) {
		ns := "{apiVersion: v1, kind: Namespace, metadata: {name: ns1-ready}}"
		dep := strings.ReplaceAll(deployDoc, "namespace: ns1", "namespace: ns1-ready")
		d := render(t, "ready", "1.2.0", ns, dep)
		p, ops := e.plan(t, d)
		if !slices.Contains(ops, "wait for object apps/v1 Deployment ns1-ready/web (available)") {
			t.Fatalf("no wait: %q", ops)
		}
		deps := e.tc.Client.AppsV1().Deployments("ns1-ready")
		done := make(chan error, 1)
		go func() { done <- makeAvailable(ctx, deps, "web") }()
		if err := addon.Apply(ctx, e.c, p, addon.ApplyOptions{Timeout: time.Minute, Interval: 100 * time.Millisecond}); err != nil {
			t.Fatalf("apply: %v", err)
		}
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		// Two replicas now: the next generation is never observed.
		d2 := render(t, "ready", "1.2.0", ns, strings.Replace(dep, "replicas: 1", "replicas: 2", 1))
		p, _ = e.plan(t, d2)
		err := addon.Apply(ctx, e.c, p, addon.ApplyOptions{Timeout: time.Second, Interval: 100 * time.Millisecond})
		want := "add-on ready: wait for object apps/v1 Deployment ns1-ready/web (available): not available after 1s: generation 2 not yet observed (status.observedGeneration 1)"
		if err == nil || err.Error() != want {
			t.Fatalf("got %v\nwant %s", err, want)
		}
	})
}

// makeAvailable waits until Deployment name exists and writes the status
// a controller would: every replica updated and available.
func makeAvailable(ctx context.Context, deps interface {
	Get(context.Context, string, metav1.GetOptions) (*appsv1.Deployment, error)
	UpdateStatus(context.Context, *appsv1.Deployment, metav1.UpdateOptions) (*appsv1.Deployment, error)
}, name string) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for {
		d, err := deps.Get(ctx, name, metav1.GetOptions{})
		if err == nil {
			n := *d.Spec.Replicas
			d.Status = appsv1.DeploymentStatus{ObservedGeneration: d.Generation, Replicas: n, UpdatedReplicas: n, ReadyReplicas: n, AvailableReplicas: n}
			_, err = deps.UpdateStatus(ctx, d, metav1.UpdateOptions{})
			if err == nil {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(50 * time.Millisecond):
		}
	}
}
