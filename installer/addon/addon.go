package addon

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/ferry-k8s/ferry/installer/cluster"
)

// Addon is one cluster add-on: a set of Kubernetes objects (and the host
// files, units and images they need) rendered from cluster.yaml and the
// bundle. Render is pure: no client, no file, the same Input gives the
// same Rendered.
type Addon interface {
	// Name is a DNS label, unique among add-ons: the value of LabelAddon
	// on every object and the suffix of the parent ConfigMap's name.
	Name() string
	Render(in Input) (*Rendered, error)
}

// Input is what renderers render from: data only.
type Input struct {
	// Cluster is cluster.yaml, defaulted (cluster.Defaulted).
	Cluster *cluster.Cluster
	// KubernetesVersion is the bundle's ("v1.36.3").
	KubernetesVersion string
	// BundleName and BundleVersion name the bundle this node runs.
	BundleName, BundleVersion string
	// ImageRepository prefixes the images built from source
	// (bundle.DefaultImageRepository unless the bundle says otherwise).
	ImageRepository string
	// Images maps an image's base name ("coredns") to the pinned
	// reference the bundle carries ("registry.ferry.dev/k8s/coredns@sha256:…").
	Images map[string]string
}

// Rendered is an add-on as a renderer wants it.
type Rendered struct {
	// Objects are applied with server-side apply; each needs apiVersion,
	// kind, metadata.name and, when namespaced, metadata.namespace.
	Objects []*unstructured.Unstructured
	// Files, Units and Images are what the add-on needs on each node
	// (a CNI's configuration, a unit, images to pull): the node's
	// converge plan carries them.
	Files  []File
	Units  []string
	Images []string
}

// File is a host file an add-on needs on each node.
type File struct {
	Path    string
	Mode    fs.FileMode
	Content []byte
}

// Desired is one add-on as this node renders it: validated, every object
// labelled for the add-on and its ApplySet, in apply order.
type Desired struct {
	Name          string
	BundleVersion string
	// Objects are deep copies of the rendered ones with LabelAddon and
	// the ApplySet part-of label set.
	Objects []*unstructured.Unstructured
	// GroupKinds are the kinds of Objects, sorted by GroupKind.String.
	GroupKinds []schema.GroupKind
	// Digest is the sha256 of Objects (as applied), recorded in the parent.
	Digest string
	// Rendered is the renderer's result (Files, Units and Images for the
	// node's own plan).
	Rendered *Rendered
}

// Render renders a, checks the result and prepares it for applying.
// Errors name the add-on and the object.
func Render(a Addon, in Input) (*Desired, error) {
	name := a.Name()
	if errs := validation.IsDNS1123Label(name); len(errs) > 0 {
		return nil, fmt.Errorf("add-on %q: invalid name: %s", name, strings.Join(errs, "; "))
	}
	r, err := a.Render(in)
	if err != nil {
		return nil, fmt.Errorf("add-on %s: rendering: %w", name, err)
	}
	if r == nil {
		r = &Rendered{}
	}
	d := &Desired{Name: name, BundleVersion: in.BundleVersion, Rendered: r}
	var errs []error
	seen := map[Ref]int{}
	crdScopes := renderedCRDScopes(r.Objects)
	gks := map[schema.GroupKind]bool{}
	for i, o := range r.Objects {
		if o == nil {
			errs = append(errs, fmt.Errorf("add-on %s: object %d is nil", name, i))
			continue
		}
		ref := RefOf(o)
		what := fmt.Sprintf("add-on %s: object %d (%s)", name, i, ref)
		if err := checkObject(o, crdScopes); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", what, err))
			continue
		}
		if j, dup := seen[ref.key()]; dup {
			errs = append(errs, fmt.Errorf("%s: rendered twice (also object %d)", what, j))
			continue
		}
		seen[ref.key()] = i
		c := o.DeepCopy()
		labels := c.GetLabels()
		if labels == nil {
			labels = map[string]string{}
		}
		if v, ok := labels[LabelAddon]; ok && v != name {
			errs = append(errs, fmt.Errorf("%s: label %s is %q, not the add-on's", what, LabelAddon, v))
			continue
		}
		labels[LabelAddon] = name
		labels[ApplySetPartOfLabel] = ApplySetID(name)
		c.SetLabels(labels)
		d.Objects = append(d.Objects, c)
		gks[ref.GroupKind()] = true
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	slices.SortStableFunc(d.Objects, func(a, b *unstructured.Unstructured) int { return applyPhase(RefOf(a)) - applyPhase(RefOf(b)) })
	d.GroupKinds = sortedGroupKinds(gks)
	h := sha256.New()
	for _, o := range d.Objects {
		b, err := json.Marshal(o.Object)
		if err != nil {
			return nil, fmt.Errorf("add-on %s: object %s: %w", name, RefOf(o), err)
		}
		h.Write(b)
		h.Write([]byte{'\n'})
	}
	d.Digest = "sha256:" + hex.EncodeToString(h.Sum(nil))
	return d, nil
}

// checkObject checks the fields every object needs and, for the kinds
// whose scope is known without the API (Kubernetes' own, the CRDs the
// add-on renders), the namespace. Observe checks the rest against the API
// server's discovery.
func checkObject(o *unstructured.Unstructured, crdScopes map[schema.GroupKind]bool) error {
	var errs []error
	gv, err := schema.ParseGroupVersion(o.GetAPIVersion())
	switch {
	case o.GetAPIVersion() == "":
		errs = append(errs, errors.New("no apiVersion"))
	case err != nil:
		errs = append(errs, fmt.Errorf("apiVersion: %w", err))
	}
	if o.GetKind() == "" {
		errs = append(errs, errors.New("no kind"))
	}
	if o.GetName() == "" {
		errs = append(errs, errors.New("no metadata.name"))
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	if o.GetGenerateName() != "" || o.GetResourceVersion() != "" || o.GetUID() != "" || len(o.GetManagedFields()) > 0 {
		return errors.New("metadata.generateName, resourceVersion, uid and managedFields are the server's")
	}
	gk := gv.WithKind(o.GetKind()).GroupKind()
	namespaced, known := crdScopes[gk]
	if !known {
		namespaced, known = builtinScope(gk)
	}
	switch {
	case known && namespaced && o.GetNamespace() == "":
		return fmt.Errorf("%s is namespaced: no metadata.namespace", gk)
	case known && !namespaced && o.GetNamespace() != "":
		return fmt.Errorf("%s is cluster-scoped: metadata.namespace must be empty", gk)
	}
	return nil
}

// renderedCRDScopes maps the kinds the rendered CRDs define to whether
// they are namespaced.
func renderedCRDScopes(objs []*unstructured.Unstructured) map[schema.GroupKind]bool {
	m := map[schema.GroupKind]bool{}
	for _, o := range objs {
		if o == nil || RefOf(o).GroupKind() != gkCRD {
			continue
		}
		group, _, _ := unstructured.NestedString(o.Object, "spec", "group")
		kind, _, _ := unstructured.NestedString(o.Object, "spec", "names", "kind")
		scope, _, _ := unstructured.NestedString(o.Object, "spec", "scope")
		if kind != "" {
			m[schema.GroupKind{Group: group, Kind: kind}] = scope != "Cluster"
		}
	}
	return m
}

var (
	gkCRD       = schema.GroupKind{Group: "apiextensions.k8s.io", Kind: "CustomResourceDefinition"}
	gkNamespace = schema.GroupKind{Kind: "Namespace"}
)

// builtinGroups are the API groups Kubernetes itself serves: their kinds
// are namespaced unless listed in clusterScoped.
var builtinGroups = map[string]bool{
	"": true, "apps": true, "batch": true, "autoscaling": true, "policy": true,
	"rbac.authorization.k8s.io": true, "networking.k8s.io": true, "storage.k8s.io": true,
	"scheduling.k8s.io": true, "node.k8s.io": true, "coordination.k8s.io": true,
	"discovery.k8s.io": true, "events.k8s.io": true, "admissionregistration.k8s.io": true,
	"apiextensions.k8s.io": true, "apiregistration.k8s.io": true, "certificates.k8s.io": true,
	"flowcontrol.apiserver.k8s.io": true, "resource.k8s.io": true,
}

// clusterScoped are the cluster-scoped kinds of builtinGroups.
var clusterScoped = map[schema.GroupKind]bool{}

func init() {
	for _, gk := range []string{
		"Namespace", "Node", "PersistentVolume", "ComponentStatus",
		"ClusterRole.rbac.authorization.k8s.io", "ClusterRoleBinding.rbac.authorization.k8s.io",
		"StorageClass.storage.k8s.io", "CSIDriver.storage.k8s.io", "CSINode.storage.k8s.io",
		"VolumeAttachment.storage.k8s.io", "VolumeAttributesClass.storage.k8s.io",
		"PriorityClass.scheduling.k8s.io", "RuntimeClass.node.k8s.io",
		"IngressClass.networking.k8s.io", "IPAddress.networking.k8s.io", "ServiceCIDR.networking.k8s.io",
		"ValidatingWebhookConfiguration.admissionregistration.k8s.io",
		"MutatingWebhookConfiguration.admissionregistration.k8s.io",
		"ValidatingAdmissionPolicy.admissionregistration.k8s.io",
		"ValidatingAdmissionPolicyBinding.admissionregistration.k8s.io",
		"MutatingAdmissionPolicy.admissionregistration.k8s.io",
		"MutatingAdmissionPolicyBinding.admissionregistration.k8s.io",
		"CustomResourceDefinition.apiextensions.k8s.io", "APIService.apiregistration.k8s.io",
		"CertificateSigningRequest.certificates.k8s.io", "ClusterTrustBundle.certificates.k8s.io",
		"FlowSchema.flowcontrol.apiserver.k8s.io", "PriorityLevelConfiguration.flowcontrol.apiserver.k8s.io",
		"DeviceClass.resource.k8s.io", "ResourceSlice.resource.k8s.io",
	} {
		clusterScoped[schema.ParseGroupKind(gk)] = true
	}
}

// builtinScope says whether gk, a kind of Kubernetes' own API groups, is
// namespaced; known is false for other groups.
func builtinScope(gk schema.GroupKind) (namespaced, known bool) {
	if !builtinGroups[gk.Group] {
		return false, false
	}
	return !clusterScoped[gk], true
}

// applyPhase orders objects: CRDs and Namespaces first (the rest may need
// them), then everything else.
func applyPhase(r Ref) int {
	if gk := r.GroupKind(); gk == gkCRD || gk == gkNamespace {
		return 0
	}
	return 1
}

func sortedGroupKinds(set map[schema.GroupKind]bool) []schema.GroupKind {
	gks := make([]schema.GroupKind, 0, len(set))
	for gk := range set {
		gks = append(gks, gk)
	}
	slices.SortFunc(gks, func(a, b schema.GroupKind) int { return strings.Compare(a.String(), b.String()) })
	return gks
}
