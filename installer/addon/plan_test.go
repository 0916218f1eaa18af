package addon_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/yaml"

	"github.com/ferry-k8s/ferry/installer/addon"
)

// testAddon renders objects from YAML documents.
type testAddon struct {
	name string
	docs []string
}

func (a testAddon) Name() string { return a.name }

func (a testAddon) Render(addon.Input) (*addon.Rendered, error) {
	r := &addon.Rendered{}
	for _, d := range a.docs {
		var m map[string]any
		if err := yaml.Unmarshal([]byte(d), &m); err != nil {
			return nil, err
		}
		r.Objects = append(r.Objects, &unstructured.Unstructured{Object: m})
	}
	return r, nil
}

func render(t *testing.T, name, version string, docs ...string) *addon.Desired {
	t.Helper()
	d, err := addon.Render(testAddon{name, docs}, addon.Input{BundleVersion: version})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func cm(ns, name, data string) string {
	return fmt.Sprintf("{apiVersion: v1, kind: ConfigMap, metadata: {namespace: %s, name: %s}, data: {k: %q}}", ns, name, data)
}

const (
	nsDoc  = "{apiVersion: v1, kind: Namespace, metadata: {name: ns1}}"
	crdDoc = `apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.example.com}
spec:
  group: example.com
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget, listKind: WidgetList}
  versions:
    - name: v1
      served: true
      storage: true
      schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}
`
	widgetDoc = "{apiVersion: example.com/v1, kind: Widget, metadata: {namespace: ns1, name: w}, spec: {size: 3}}"
	deployDoc = `apiVersion: apps/v1
kind: Deployment
metadata: {namespace: ns1, name: web}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: web, image: registry.ferry.dev/k8s/pause:3.10.2}]}
`
)

func TestAddonRenderErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		docs []string
		want []string // each in the error
	}{
		{"no name", []string{"{apiVersion: v1, kind: ConfigMap, metadata: {namespace: ns1}}"},
			[]string{"add-on demo: object 0 (v1 ConfigMap ns1/)", "no metadata.name"}},
		{"no apiVersion nor kind", []string{"{metadata: {name: x}}"},
			[]string{"add-on demo: object 0", "no apiVersion", "no kind"}},
		{"duplicate", []string{cm("ns1", "a", "1"), cm("ns1", "b", "1"), cm("ns1", "a", "2")},
			[]string{"add-on demo: object 2 (v1 ConfigMap ns1/a): rendered twice (also object 0)"}},
		{"duplicate at another version", []string{crdDoc, widgetDoc, strings.Replace(widgetDoc, "example.com/v1", "example.com/v2", 1)},
			[]string{"object 2 (example.com/v2 Widget ns1/w): rendered twice (also object 1)"}},
		{"namespaced without a namespace", []string{"{apiVersion: rbac.authorization.k8s.io/v1, kind: Role, metadata: {name: r}}"},
			[]string{"add-on demo: object 0 (rbac.authorization.k8s.io/v1 Role r): Role.rbac.authorization.k8s.io is namespaced: no metadata.namespace"}},
		{"a rendered CRD's kind without a namespace", []string{crdDoc, "{apiVersion: example.com/v1, kind: Widget, metadata: {name: w}}"},
			[]string{"object 1 (example.com/v1 Widget w): Widget.example.com is namespaced"}},
		{"cluster-scoped with a namespace", []string{"{apiVersion: rbac.authorization.k8s.io/v1, kind: ClusterRole, metadata: {name: r, namespace: ns1}}"},
			[]string{"ClusterRole.rbac.authorization.k8s.io is cluster-scoped: metadata.namespace must be empty"}},
		{"another add-on's label", []string{"{apiVersion: v1, kind: ConfigMap, metadata: {namespace: ns1, name: a, labels: {ferry.dev/addon: other}}}"},
			[]string{`label ferry.dev/addon is "other", not the add-on's`}},
		{"server fields", []string{"{apiVersion: v1, kind: ConfigMap, metadata: {namespace: ns1, name: a, resourceVersion: '3'}}"},
			[]string{"resourceVersion"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := addon.Render(testAddon{"demo", tc.docs}, addon.Input{})
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\ndoes not say %q", err, w)
				}
			}
		})
	}
	if _, err := addon.Render(testAddon{"Not_A_Label", nil}, addon.Input{}); err == nil || !strings.Contains(err.Error(), "invalid name") {
		t.Errorf("an add-on named Not_A_Label: %v", err)
	}
}

// TestAddonRender: objects are labelled for the add-on and its ApplySet,
// CRDs and Namespaces come first, the renderer's objects are not changed.
func TestAddonRender(t *testing.T) {
	a := testAddon{"demo", []string{cm("ns1", "a", "1"), crdDoc, widgetDoc, nsDoc}}
	d, err := addon.Render(a, addon.Input{BundleVersion: "1.2.0"})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, o := range d.Objects {
		got = append(got, addon.RefOf(o).String())
		if l := o.GetLabels(); l[addon.LabelAddon] != "demo" || l[addon.ApplySetPartOfLabel] != addon.ApplySetID("demo") {
			t.Errorf("%s: labels %v", addon.RefOf(o), l)
		}
	}
	want := []string{"apiextensions.k8s.io/v1 CustomResourceDefinition widgets.example.com", "v1 Namespace ns1", "v1 ConfigMap ns1/a", "example.com/v1 Widget ns1/w"}
	if !slices.Equal(got, want) {
		t.Errorf("order:\n got %q\nwant %q", got, want)
	}
	var kinds []string
	for _, gk := range d.GroupKinds {
		kinds = append(kinds, gk.String())
	}
	if w := []string{"ConfigMap", "CustomResourceDefinition.apiextensions.k8s.io", "Namespace", "Widget.example.com"}; !slices.Equal(kinds, w) {
		t.Errorf("kinds %q, want %q", kinds, w)
	}
	again, _ := a.Render(addon.Input{})
	if len(again.Objects[0].GetLabels()) != 0 {
		t.Error("Render labelled the renderer's own objects")
	}
	d2, _ := addon.Render(a, addon.Input{BundleVersion: "1.2.0"})
	d3, _ := addon.Render(testAddon{"demo", []string{cm("ns1", "a", "2"), crdDoc, widgetDoc, nsDoc}}, addon.Input{BundleVersion: "1.2.0"})
	if d.Digest != d2.Digest || d.Digest == d3.Digest || !strings.HasPrefix(d.Digest, "sha256:") {
		t.Errorf("digests: same render %s %s, another %s", d.Digest, d2.Digest, d3.Digest)
	}
	// The ApplySet id kubectl computes for the parent ConfigMap
	// kube-system/ferry-addon-demo (kubectl apply --applyset=configmap/ferry-addon-demo -n kube-system).
	if id := addon.ApplySetID("demo"); !strings.HasPrefix(id, "applyset-") || !strings.HasSuffix(id, "-v1") || len(id) != len("applyset-")+43+len("-v1") {
		t.Errorf("ApplySet id %q", id)
	}
}

// observed builds an Observed as the API server would answer for d: each
// object live (as applied, with server fields) and its dry run equal.
type observed struct {
	d *addon.Desired
	o *addon.Observed
}

func converged(d *addon.Desired) *observed {
	o := &addon.Observed{Parent: &addon.Parent{GroupKinds: d.GroupKinds, Digest: d.Digest, BundleVersion: d.BundleVersion}}
	for i, obj := range d.Objects {
		live := obj.DeepCopy()
		live.SetResourceVersion(fmt.Sprint(100 + i))
		live.SetUID("uid")
		o.Objects = append(o.Objects, addon.ObjectState{Live: live, DryRun: live.DeepCopy()})
		o.Owned = append(o.Owned, live)
	}
	return &observed{d, o}
}

func (b *observed) missing(i int) *observed {
	b.o.Objects[i] = addon.ObjectState{}
	b.o.Owned = slices.DeleteFunc(b.o.Owned, func(o *unstructured.Unstructured) bool {
		return addon.RefOf(o) == addon.RefOf(b.d.Objects[i])
	})
	return b
}

func (b *observed) drifted(i int) *observed {
	dry := b.o.Objects[i].Live.DeepCopy()
	dry.SetResourceVersion("999")
	dry.SetGeneration(7)
	dry.SetManagedFields(nil)
	b.o.Objects[i].Live = dry.DeepCopy()
	_ = unstructured.SetNestedField(b.o.Objects[i].Live.Object, "edited", "data", "k")
	b.o.Objects[i].DryRun = dry
	return b
}

func (b *observed) serverFields(i int) *observed {
	// Only what the server changes on every write differs.
	dry := b.o.Objects[i].Live.DeepCopy()
	dry.SetResourceVersion("1000")
	dry.SetGeneration(2)
	_ = unstructured.SetNestedField(dry.Object, "Something", "status", "phase")
	b.o.Objects[i].DryRun = dry
	return b
}

func (b *observed) owned(addonName, ns, name string) *observed {
	var m map[string]any
	_ = yaml.Unmarshal([]byte(cm(ns, name, "x")), &m)
	o := &unstructured.Unstructured{Object: m}
	if addonName != "" {
		o.SetLabels(map[string]string{addon.LabelAddon: addonName})
	}
	o.SetUID(types.UID("uid-" + name))
	b.o.Owned = append(b.o.Owned, o)
	return b
}

func (b *observed) ownedNamespace(name string) *observed {
	o := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "Namespace"}}
	o.SetName(name)
	o.SetLabels(map[string]string{addon.LabelAddon: "demo"})
	b.o.Owned = append(b.o.Owned, o)
	return b
}

func (b *observed) parent(p *addon.Parent) *observed { b.o.Parent = p; return b }

func TestAddonPlan(t *testing.T) {
	base := func() *addon.Desired {
		return render(t, "demo", "1.2.0", cm("ns1", "a", "1"), nsDoc, deployDoc)
	}
	// Objects in apply order: 0 Namespace ns1, 1 ConfigMap ns1/a, 2 Deployment ns1/web.
	d := base()
	rec := func(before bool, version string, kinds ...string) string {
		if before {
			return fmt.Sprintf("record add-on demo in kube-system/ferry-addon-demo (before applying: bundle %s, kinds %s)", version, strings.Join(kinds, ","))
		}
		return fmt.Sprintf("record add-on demo in kube-system/ferry-addon-demo (bundle %s, %s)", version, d.Digest)
	}
	allKinds := []string{"ConfigMap", "Deployment.apps", "Namespace"}
	for _, tc := range []struct {
		name  string
		in    *observed
		want  []string
		notes []string
	}{
		{name: "converged", in: converged(d)},
		{name: "server fields only", in: converged(d).serverFields(1).serverFields(2)},
		{name: "first apply", in: converged(d).missing(0).missing(1).missing(2).parent(nil), want: []string{
			rec(true, "1.2.0", allKinds...),
			"apply object v1 Namespace ns1 (missing)",
			"apply object v1 ConfigMap ns1/a (missing)",
			"apply object apps/v1 Deployment ns1/web (missing)",
			"wait for object apps/v1 Deployment ns1/web (available)",
			rec(false, "1.2.0"),
		}},
		{name: "drift", in: converged(d).drifted(1), want: []string{
			"apply object v1 ConfigMap ns1/a (differs)",
		}},
		{name: "prune: only the add-on's own", in: converged(d).owned("demo", "ns1", "old").owned("other", "ns1", "theirs").owned("", "ns1", "plain"), want: []string{
			"prune object v1 ConfigMap ns1/old (no longer rendered)",
		}},
		{name: "a Namespace no longer rendered", in: converged(d).ownedNamespace("ns2").owned("demo", "ns2", "x"), want: []string{
			"prune object v1 ConfigMap ns2/x (no longer rendered)",
		}, notes: []string{"add-on demo: v1 Namespace ns2 is no longer rendered but left in place: deleting it deletes what it holds (delete it by hand)"}},
		{name: "parent not recorded", in: converged(d).parent(nil), want: []string{rec(false, "1.2.0")}},
		{name: "a newer bundle of mine", in: converged(d).parent(&addon.Parent{GroupKinds: d.GroupKinds, Digest: d.Digest, BundleVersion: "1.1.0"}),
			want: []string{rec(false, "1.2.0")}},
		{name: "a new kind", in: converged(d).missing(2).parent(&addon.Parent{GroupKinds: []schema.GroupKind{{Kind: "ConfigMap"}, {Kind: "Namespace"}, {Kind: "Secret"}}, Digest: "sha256:old", BundleVersion: "1.2.0"}), want: []string{
			rec(true, "1.2.0", "ConfigMap", "Deployment.apps", "Namespace", "Secret"),
			"apply object apps/v1 Deployment ns1/web (missing)",
			"wait for object apps/v1 Deployment ns1/web (available)",
			rec(false, "1.2.0"),
		}},
		{name: "version guard", in: converged(d).drifted(1).missing(2).owned("demo", "ns1", "old").parent(&addon.Parent{GroupKinds: d.GroupKinds, Digest: "sha256:theirs", BundleVersion: "1.10.0"}),
			notes: []string{"add-on demo: left as bundle 1.10.0 applied it: this node's bundle 1.2.0 is older"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := addon.MakePlan(d, tc.in.o, addon.NewerSemver)
			var got []string
			for _, op := range p.Ops {
				got = append(got, op.String())
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("ops:\n got %q\nwant %q", got, tc.want)
			}
			if !slices.Equal(p.Notes, tc.notes) {
				t.Errorf("notes:\n got %q\nwant %q", p.Notes, tc.notes)
			}
		})
	}
}

func TestAddonNewerSemver(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want bool
	}{
		{"1.10.0", "1.2.0", true}, {"1.2.0", "1.10.0", false}, {"1.2.0", "1.2.0", false},
		{"v1.3.0", "1.2.0", true}, {"junk", "1.2.0", false}, {"1.2.0", "junk", true},
		{"1.2.0", "1.2.0-rc.1", true},
	} {
		if got := addon.NewerSemver(tc.a, tc.b); got != tc.want {
			t.Errorf("NewerSemver(%q, %q) = %v", tc.a, tc.b, got)
		}
	}
}
