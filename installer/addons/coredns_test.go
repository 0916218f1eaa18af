package addons_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/yaml"

	"github.com/ferry-k8s/ferry/builder/distro/distrotest"
	"github.com/ferry-k8s/ferry/bundle"
	"github.com/ferry-k8s/ferry/installer/addon"
	"github.com/ferry-k8s/ferry/installer/addons"
	"github.com/ferry-k8s/ferry/installer/cluster"
	"github.com/ferry-k8s/ferry/installer/nodeconfig"
	"github.com/ferry-k8s/ferry/internal/testcluster"
)

const corednsImage = bundle.DefaultImageRepository + "/coredns:v1.14.2"

// corednsInput is the add-on's input for a cluster configuration file.
func corednsInput(t *testing.T, file string) addon.Input {
	t.Helper()
	c, err := cluster.Load(file)
	if err != nil {
		t.Fatal(err)
	}
	in := sampleInput(t)
	in.Cluster = c.Defaulted()
	return in
}

// kubeadmCoreDNS are kubeadm's CoreDNS objects (testdata), keyed by
// "Kind name".
func kubeadmCoreDNS(t *testing.T) map[string]*unstructured.Unstructured {
	t.Helper()
	data, err := os.ReadFile("testdata/kubeadm-coredns-v1.36.3.yaml")
	if err != nil {
		t.Fatal(err)
	}
	objs := map[string]*unstructured.Unstructured{}
	for doc := range strings.SplitSeq(string(data), "\n---\n") {
		m := map[string]any{}
		if err := yaml.Unmarshal([]byte(doc+"\n"), &m); err != nil {
			t.Fatal(err)
		}
		u := &unstructured.Unstructured{Object: m}
		objs[u.GetKind()+" "+u.GetName()] = u
	}
	return objs
}

// jsonValue is v through JSON: the numbers of YAML and of typed objects
// compare equal.
func jsonValue(t *testing.T, v any) any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestCoreDNSRender: for single.yaml and cluster.yaml the add-on renders
// kubeadm's six objects, with the cluster's domain and DNS address; for
// the inputs kubeadm's testdata was printed with, exactly kubeadm's
// objects (its Deployment with Ferry's former patch) plus the add-on's
// labels.
func TestCoreDNSRender(t *testing.T) {
	for _, file := range []string{"../nodeconfig/testdata/single.yaml", "../cluster/testdata/cluster.yaml"} {
		t.Run(file, func(t *testing.T) {
			in := corednsInput(t, file)
			d, err := addon.Render(addons.CoreDNS{}, in)
			if err != nil {
				t.Fatal(err)
			}
			var refs []string
			for _, o := range d.Objects {
				refs = append(refs, addon.RefOf(o).String())
			}
			want := []string{
				"v1 ServiceAccount kube-system/coredns",
				"rbac.authorization.k8s.io/v1 ClusterRole system:coredns",
				"rbac.authorization.k8s.io/v1 ClusterRoleBinding system:coredns",
				"v1 ConfigMap kube-system/coredns",
				"apps/v1 Deployment kube-system/coredns",
				"v1 Service kube-system/kube-dns",
			}
			if !slices.Equal(refs, want) {
				t.Errorf("objects:\n got %q\nwant %q", refs, want)
			}
			if !slices.Equal(d.Rendered.Images, []string{corednsImage}) {
				t.Errorf("images %q", d.Rendered.Images)
			}
			kubeadm := kubeadmCoreDNS(t)
			if len(kubeadm) != len(d.Objects) {
				t.Errorf("kubeadm creates %d objects, the add-on renders %d", len(kubeadm), len(d.Objects))
			}
			for _, o := range d.Objects {
				k := kubeadm[o.GetKind()+" "+o.GetName()]
				if k == nil {
					t.Errorf("%s: kubeadm has no such object", addon.RefOf(o))
					continue
				}
				got := o.DeepCopy()
				labels := got.GetLabels()
				if labels[addon.LabelAddon] != "coredns" || labels[addon.ApplySetPartOfLabel] != addon.ApplySetID("coredns") {
					t.Errorf("%s: labels %v", addon.RefOf(o), labels)
				}
				delete(labels, addon.LabelAddon)
				delete(labels, addon.ApplySetPartOfLabel)
				got.SetLabels(labels)
				if len(labels) == 0 {
					unstructured.RemoveNestedField(got.Object, "metadata", "labels")
				}
				k = k.DeepCopy()
				unstructured.RemoveNestedField(k.Object, "metadata", "resourceVersion") // kubeadm's "0", for its Update
				c := in.Cluster.Spec.Kubernetes
				if c.ServiceSubnet == "10.96.0.0/12" && c.ClusterDomain == "cluster.local" {
					if g, w := jsonValue(t, got.Object), jsonValue(t, k.Object); !reflect.DeepEqual(g, w) {
						gy, _ := yaml.Marshal(g)
						wy, _ := yaml.Marshal(w)
						t.Errorf("%s differs from kubeadm's:\n--- rendered\n%s--- kubeadm\n%s", addon.RefOf(o), gy, wy)
					}
				}
			}
		})
	}
}

// TestCoreDNSRenderRefuses: no tag on the image (kubeadm's upgrade
// preflight reads CoreDNS's version from it), no image, no DNS address.
func TestCoreDNSRenderRefuses(t *testing.T) {
	for name, change := range map[string]func(*addon.Input){
		"digest only": func(in *addon.Input) {
			in.Images["coredns"] = bundle.DefaultImageRepository + "/coredns@sha256:" + strings.Repeat("a", 64)
		},
		"no image":    func(in *addon.Input) { delete(in.Images, "coredns") },
		"tiny subnet": func(in *addon.Input) { in.Cluster.Spec.Kubernetes.ServiceSubnet = "10.96.0.0/29" },
	} {
		in := corednsInput(t, "../nodeconfig/testdata/single.yaml")
		change(&in)
		if _, err := addon.Render(addons.CoreDNS{}, in); err == nil {
			t.Errorf("%s: rendered", name)
		}
	}
	in := corednsInput(t, "../nodeconfig/testdata/single.yaml")
	in.Images["coredns"] = corednsImage + "@sha256:" + strings.Repeat("a", 64)
	if _, err := addon.Render(addons.CoreDNS{}, in); err != nil {
		t.Errorf("tag and digest: %v", err)
	}
}

// TestCoreDNSServiceIsKubeletClusterDNS: for several service subnets, the
// kube-dns Service's clusterIP is the clusterDNS of the kubelet
// configuration installer/nodeconfig renders.
func TestCoreDNSServiceIsKubeletClusterDNS(t *testing.T) {
	for _, subnet := range []string{"10.96.0.0/12", "172.20.0.0/16", "192.168.128.0/20", "10.100.7.0/24"} {
		t.Run(subnet, func(t *testing.T) {
			c, err := cluster.Load("../nodeconfig/testdata/single.yaml")
			if err != nil {
				t.Fatal(err)
			}
			c.Spec.Kubernetes.ServiceSubnet = subnet
			files, err := nodeconfig.Render(c, "n1", nodeconfig.Facts{
				KubernetesVersion: "v1.36.3",
				ImageRepository:   bundle.DefaultImageRepository,
				EtcdImageTag:      "3.6.8-0",
				CoreDNSImageTag:   "v1.14.2",
				PauseImage:        bundle.DefaultImageRepository + "/pause:3.10.2",
				ContentServices:   []string{"n1.lab.example.com:5443"},
				ContentCAFile:     "/etc/ferry/pki/content/ca.crt",
				NodeIPs:           map[string]string{nodeconfig.PlaneControlPlane: "10.10.0.11", nodeconfig.PlaneEtcd: "10.10.0.11", nodeconfig.PlaneWorkload: "10.10.0.11"},
				CgroupVersion:     2,
				HasSystemd:        true,
				EncryptionKey:     bytes.Repeat([]byte{0x5a}, nodeconfig.EncryptionKeySize),
				Version:           "1.2.0-test",
			})
			if err != nil {
				t.Fatal(err)
			}
			var kubelet []string
			for _, f := range files {
				if f.Path != nodeconfig.InitConfigFile {
					continue
				}
				_, body, err := nodeconfig.SplitHeader(f.Content)
				if err != nil {
					t.Fatal(err)
				}
				for doc := range strings.SplitSeq(string(body), "\n---\n") {
					var kc struct {
						Kind       string   `json:"kind"`
						ClusterDNS []string `json:"clusterDNS"`
					}
					if err := yaml.Unmarshal([]byte(doc), &kc); err != nil {
						t.Fatal(err)
					}
					if kc.Kind == "KubeletConfiguration" {
						kubelet = kc.ClusterDNS
					}
				}
			}
			in := corednsInput(t, "../nodeconfig/testdata/single.yaml")
			in.Cluster = c.Defaulted()
			d, err := addon.Render(addons.CoreDNS{}, in)
			if err != nil {
				t.Fatal(err)
			}
			var ip string
			for _, o := range d.Objects {
				if o.GetKind() == "Service" {
					ip, _, _ = unstructured.NestedString(o.Object, "spec", "clusterIP")
				}
			}
			if len(kubelet) != 1 || kubelet[0] != ip || ip == "" {
				t.Errorf("kubelet clusterDNS %q, Service clusterIP %q", kubelet, ip)
			}
		})
	}
}

// corednsEnv is a real control plane (no controller-manager) and the
// add-on's plans on it.
type corednsEnv struct {
	tc *testcluster.Cluster
	c  *addon.Client
	d  *addon.Desired
}

func startCoreDNS(t *testing.T) *corednsEnv {
	t.Helper()
	tc := testcluster.Start(t, testcluster.Options{KubeAPIServer: distrotest.KubeAPIServer(t), Etcd: distrotest.Etcd(t)})
	c, err := addon.NewClient(tc.Config)
	if err != nil {
		t.Fatal(err)
	}
	d, err := addon.Render(addons.CoreDNS{}, corednsInput(t, "../cluster/testdata/cluster.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	return &corednsEnv{tc: tc, c: c, d: d}
}

func (e *corednsEnv) plan(t *testing.T) (*addon.Plan, []string) {
	t.Helper()
	o, err := addon.Observe(context.Background(), e.c, e.d)
	if err != nil {
		t.Fatalf("observe: %v", err)
	}
	p := addon.MakePlan(e.d, o, addon.NewerSemver)
	var ops []string
	for _, op := range p.Ops {
		ops = append(ops, op.String())
	}
	return p, ops
}

// apply applies p while the test plays the Deployment controller.
func (e *corednsEnv) apply(t *testing.T, p *addon.Plan) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		e.tc.PlayDeploymentController(ctx)
	}()
	err := addon.Apply(context.Background(), e.c, p, addon.ApplyOptions{Timeout: time.Minute, Interval: 100 * time.Millisecond})
	cancel()
	<-done
	if err != nil {
		t.Fatalf("apply: %v", err)
	}
}

// wantOps are the operations of a first apply, each object for reason.
func (e *corednsEnv) wantOps(reason string) []string {
	ops := []string{"record add-on coredns in kube-system/ferry-addon-coredns (before applying: bundle 1.2.0, kinds ClusterRole.rbac.authorization.k8s.io,ClusterRoleBinding.rbac.authorization.k8s.io,ConfigMap,Deployment.apps,Service,ServiceAccount)"}
	for _, o := range e.d.Objects {
		ops = append(ops, fmt.Sprintf("apply object %s (%s)", addon.RefOf(o), reason))
	}
	return append(ops,
		"wait for object apps/v1 Deployment kube-system/coredns (available)",
		"record add-on coredns in kube-system/ferry-addon-coredns (bundle 1.2.0, "+e.d.Digest+")")
}

// TestCoreDNSAPI: on a cluster without CoreDNS the add-on creates every
// object, waits for the Deployment to be available (the test writes its
// status: no controller-manager runs), and then plans nothing. A new
// image is waited for too: without a controller the wait fails.
func TestCoreDNSAPI(t *testing.T) {
	e := startCoreDNS(t)
	ctx := context.Background()
	p, ops := e.plan(t)
	if want := e.wantOps("missing"); !slices.Equal(ops, want) {
		t.Fatalf("ops:\n got %q\nwant %q", ops, want)
	}
	e.apply(t, p)
	if _, again := e.plan(t); len(again) != 0 {
		t.Fatalf("after %q the next plan is %q, want 0 changes", ops, again)
	}
	for _, o := range e.d.Objects {
		live := e.live(t, o)
		if !contains(jsonValue(t, live.Object), jsonValue(t, o.Object)) {
			t.Errorf("%s: live object lacks rendered fields", addon.RefOf(o))
		}
	}
	deps := e.tc.Client.AppsV1().Deployments("kube-system")
	if dep, err := deps.Get(ctx, "coredns", metav1.GetOptions{}); err != nil || dep.Status.AvailableReplicas != 2 {
		t.Fatalf("deployment: %v %+v", err, dep.Status)
	}

	// A bundle with another CoreDNS: the new generation is waited for,
	// and nobody makes it available.
	in := corednsInput(t, "../cluster/testdata/cluster.yaml")
	in.Images["coredns"] = bundle.DefaultImageRepository + "/coredns:v1.14.3"
	d, err := addon.Render(addons.CoreDNS{}, in)
	if err != nil {
		t.Fatal(err)
	}
	e.d = d
	p, ops = e.plan(t)
	if !slices.Equal(ops, []string{
		"apply object apps/v1 Deployment kube-system/coredns (differs)",
		"wait for object apps/v1 Deployment kube-system/coredns (available)",
		"record add-on coredns in kube-system/ferry-addon-coredns (bundle 1.2.0, " + d.Digest + ")",
	}) {
		t.Fatalf("a new image: %q", ops)
	}
	err = addon.Apply(ctx, e.c, p, addon.ApplyOptions{Timeout: time.Second, Interval: 100 * time.Millisecond})
	want := "add-on coredns: wait for object apps/v1 Deployment kube-system/coredns (available): not available after 1s: generation 2 not yet observed (status.observedGeneration 1)"
	if err == nil || err.Error() != want {
		t.Fatalf("apply without a controller: %v\nwant %s", err, want)
	}
}

// TestCoreDNSAdoptsKubeadm: a cluster set up before the add-on has
// kubeadm's objects (created by kubeadm's field manager, with a
// Corefile-backup a kubeadm Corefile migration left, and scaled to 3 by
// an admin). The add-on's apply takes every field it renders, leaves
// kubeadm's other fields, and the next plan is empty.
func TestCoreDNSAdoptsKubeadm(t *testing.T) {
	e := startCoreDNS(t)
	ctx := context.Background()
	kubeadm := kubeadmCoreDNS(t)
	kubeadm["ConfigMap coredns"].Object["data"].(map[string]any)["Corefile-backup"] = ".:53 {\n    errors\n}\n"
	if err := unstructured.SetNestedField(kubeadm["Deployment coredns"].Object, int64(3), "spec", "replicas"); err != nil {
		t.Fatal(err)
	}
	for _, o := range e.d.Objects {
		k := kubeadm[o.GetKind()+" "+o.GetName()]
		if _, err := e.c.Dynamic.Resource(e.gvr(t, o)).Namespace(o.GetNamespace()).Create(ctx, k, metav1.CreateOptions{FieldManager: "kubeadm"}); err != nil {
			t.Fatalf("creating kubeadm's %s: %v", addon.RefOf(o), err)
		}
	}
	p, ops := e.plan(t)
	if want := e.wantOps("differs"); !slices.Equal(ops, want) {
		t.Fatalf("ops:\n got %q\nwant %q", ops, want)
	}
	e.apply(t, p)
	if _, again := e.plan(t); len(again) != 0 {
		t.Fatalf("after adopting, the next plan is %q, want 0 changes", again)
	}
	for _, o := range e.d.Objects {
		live := e.live(t, o)
		if !contains(jsonValue(t, live.Object), jsonValue(t, o.Object)) {
			got, _ := yaml.Marshal(live.Object)
			t.Errorf("%s: live object lacks rendered fields:\n%s", addon.RefOf(o), got)
		}
		var managers []string
		for _, mf := range live.GetManagedFields() {
			managers = append(managers, mf.Manager+"/"+string(mf.Operation))
		}
		if !slices.Contains(managers, addon.FieldManager+"/Apply") {
			t.Errorf("%s: managers %q, no %s applier", addon.RefOf(o), managers, addon.FieldManager)
		}
	}
	cm, err := e.tc.Client.CoreV1().ConfigMaps("kube-system").Get(ctx, "coredns", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := cm.Data["Corefile-backup"]; !ok {
		t.Errorf("kubeadm's Corefile-backup is gone: %v", cm.Data)
	}
	dep, err := e.tc.Client.AppsV1().Deployments("kube-system").Get(ctx, "coredns", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if *dep.Spec.Replicas != 2 || dep.Spec.Selector.MatchLabels["k8s-app"] != "kube-dns" || dep.Spec.Template.Spec.Containers[0].Image != corednsImage {
		t.Errorf("deployment: replicas %d, selector %v, image %s", *dep.Spec.Replicas, dep.Spec.Selector, dep.Spec.Template.Spec.Containers[0].Image)
	}
}

func (e *corednsEnv) gvr(t *testing.T, o *unstructured.Unstructured) schema.GroupVersionResource {
	t.Helper()
	gvk := o.GroupVersionKind()
	m, err := e.c.Mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if err != nil {
		t.Fatal(err)
	}
	return m.Resource
}

func (e *corednsEnv) live(t *testing.T, o *unstructured.Unstructured) *unstructured.Unstructured {
	t.Helper()
	live, err := e.c.Dynamic.Resource(e.gvr(t, o)).Namespace(o.GetNamespace()).Get(context.Background(), o.GetName(), metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return live
}

// contains reports whether live holds every field of want with want's
// value (lists: the same length, each element contained).
func contains(live, want any) bool {
	switch w := want.(type) {
	case map[string]any:
		l, ok := live.(map[string]any)
		if !ok {
			return false
		}
		for k, v := range w {
			if !contains(l[k], v) {
				return false
			}
		}
		return true
	case []any:
		l, ok := live.([]any)
		if !ok || len(l) != len(w) {
			return false
		}
		for i := range w {
			if !contains(l[i], w[i]) {
				return false
			}
		}
		return true
	}
	return reflect.DeepEqual(live, want)
}
