package addon

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
)

const (
	// FieldManager is the one server-side apply field manager of every
	// add-on's objects and parents.
	FieldManager = "ferry"
	// LabelAddon names the add-on an object belongs to: only objects with
	// it are ever pruned, and only by their own add-on.
	LabelAddon = "ferry.dev/addon"

	// The ApplySet labels and annotations (KEP-3659, as kubectl apply
	// --applyset writes them): each add-on is an ApplySet whose parent is
	// the ConfigMap ParentNamespace/ParentName(add-on).
	ApplySetPartOfLabel       = "applyset.kubernetes.io/part-of"
	ApplySetIDLabel           = "applyset.kubernetes.io/id"
	ApplySetToolingAnnotation = "applyset.kubernetes.io/tooling"
	ApplySetGKsAnnotation     = "applyset.kubernetes.io/contains-group-kinds"
	// ApplySetTooling is the parents' tooling annotation: kubectl leaves
	// ApplySets of other tooling alone.
	ApplySetTooling = "ferry/v1"

	// AnnotationDigest and AnnotationBundleVersion on the parent record
	// the digest of the objects last applied and the bundle version of
	// the node that applied them.
	AnnotationDigest        = "ferry.dev/addon-digest"
	AnnotationBundleVersion = "ferry.dev/bundle-version"

	// ParentNamespace holds the add-ons' parent ConfigMaps.
	ParentNamespace = "kube-system"
)

// ParentName is the name of addon's parent ConfigMap.
func ParentName(addon string) string { return "ferry-addon-" + addon }

// ApplySetID is the ApplySet id of addon's parent (KEP-3659:
// base64url(sha256(name.namespace.kind.group)) in "applyset-%s-v1").
func ApplySetID(addon string) string {
	h := sha256.Sum256([]byte(ParentName(addon) + "." + ParentNamespace + ".ConfigMap."))
	return "applyset-" + base64.RawURLEncoding.EncodeToString(h[:]) + "-v1"
}

var configMaps = schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}

// Client reaches the API server: a dynamic client and a RESTMapper from
// discovery (reset when a kind is not found, for kinds of CRDs applied
// since).
type Client struct {
	Dynamic dynamic.Interface
	Mapper  meta.ResettableRESTMapper
}

// NewClient is a Client for cfg (an administrator's: add-ons may own any
// kind).
func NewClient(cfg *rest.Config) (*Client, error) {
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("add-on client: %w", err)
	}
	disc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("add-on client: %w", err)
	}
	return &Client{Dynamic: dyn, Mapper: restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(disc))}, nil
}

// mapping finds gk's resource (at version, or the preferred one),
// discovering again once when the kind is unknown.
func (c *Client) mapping(gk schema.GroupKind, version string) (*meta.RESTMapping, error) {
	var vs []string
	if version != "" {
		vs = []string{version}
	}
	m, err := c.Mapper.RESTMapping(gk, vs...)
	if meta.IsNoMatchError(err) {
		c.Mapper.Reset()
		m, err = c.Mapper.RESTMapping(gk, vs...)
	}
	return m, err
}

// resource is the client of r's resource, with its scope checked.
func (c *Client) resource(r Ref) (dynamic.ResourceInterface, error) {
	gvk := schema.FromAPIVersionAndKind(r.APIVersion, r.Kind)
	m, err := c.mapping(gvk.GroupKind(), gvk.Version)
	if err != nil {
		return nil, err
	}
	if m.Scope.Name() != meta.RESTScopeNameNamespace {
		if r.Namespace != "" {
			return nil, fmt.Errorf("%s is cluster-scoped: metadata.namespace must be empty", gvk.GroupKind())
		}
		return c.Dynamic.Resource(m.Resource), nil
	}
	if r.Namespace == "" {
		return nil, fmt.Errorf("%s is namespaced: no metadata.namespace", gvk.GroupKind())
	}
	return c.Dynamic.Resource(m.Resource).Namespace(r.Namespace), nil
}

// Observe reads what the cluster has of d: its parent, each desired
// object with a server-side apply dry run of it, and the objects labelled
// for the add-on of the kinds it owns. It changes nothing.
func Observe(ctx context.Context, c *Client, d *Desired) (*Observed, error) {
	o := &Observed{}
	parent, err := c.Dynamic.Resource(configMaps).Namespace(ParentNamespace).Get(ctx, ParentName(d.Name), metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
	case err != nil:
		return nil, fmt.Errorf("add-on %s: reading its parent %s/%s: %w", d.Name, ParentNamespace, ParentName(d.Name), err)
	default:
		if o.Parent, err = parseParent(d.Name, parent); err != nil {
			return nil, err
		}
	}
	crds := renderedCRDScopes(d.Objects)
	for _, obj := range d.Objects {
		ref := RefOf(obj)
		st, err := observeObject(ctx, c, obj, crds)
		if err != nil {
			return nil, fmt.Errorf("add-on %s: object %s: %w", d.Name, ref, err)
		}
		o.Objects = append(o.Objects, st)
	}
	kinds := d.GroupKinds
	if o.Parent != nil {
		kinds = unionKinds(o.Parent.GroupKinds, d.GroupKinds)
	}
	selector := LabelAddon + "=" + d.Name + "," + ApplySetPartOfLabel + "=" + ApplySetID(d.Name)
	for _, gk := range kinds {
		m, err := c.mapping(gk, "")
		if meta.IsNoMatchError(err) {
			continue // the kind is gone, and its objects with it
		}
		if err != nil {
			return nil, fmt.Errorf("add-on %s: kind %s: %w", d.Name, gk, err)
		}
		list, err := c.Dynamic.Resource(m.Resource).List(ctx, metav1.ListOptions{LabelSelector: selector})
		if err != nil {
			return nil, fmt.Errorf("add-on %s: listing its %s: %w", d.Name, gk, err)
		}
		for i := range list.Items {
			o.Owned = append(o.Owned, &list.Items[i])
		}
	}
	return o, nil
}

func observeObject(ctx context.Context, c *Client, obj *unstructured.Unstructured, crds map[schema.GroupKind]bool) (ObjectState, error) {
	ref := RefOf(obj)
	res, err := c.resource(ref)
	if meta.IsNoMatchError(err) {
		if _, ok := crds[ref.GroupKind()]; ok {
			return ObjectState{}, nil // its CRD comes with the add-on
		}
		return ObjectState{}, fmt.Errorf("the API server does not serve the kind: %w", err)
	}
	if err != nil {
		return ObjectState{}, err
	}
	live, err := res.Get(ctx, ref.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return ObjectState{}, nil
	}
	if err != nil {
		return ObjectState{}, fmt.Errorf("reading: %w", err)
	}
	dry, err := res.Apply(ctx, ref.Name, obj, metav1.ApplyOptions{FieldManager: FieldManager, Force: true, DryRun: []string{metav1.DryRunAll}})
	if err != nil {
		return ObjectState{}, fmt.Errorf("server-side apply dry run: %w", err)
	}
	return ObjectState{Live: live, DryRun: dry}, nil
}

func parseParent(addon string, cm *unstructured.Unstructured) (*Parent, error) {
	a := cm.GetAnnotations()
	if cm.GetLabels()[ApplySetIDLabel] != ApplySetID(addon) || a[ApplySetToolingAnnotation] != ApplySetTooling {
		return nil, fmt.Errorf("add-on %s: %s/%s exists but is not its ApplySet parent (label %s, annotation %s=%q)", addon, ParentNamespace, ParentName(addon), ApplySetIDLabel, ApplySetToolingAnnotation, a[ApplySetToolingAnnotation])
	}
	p := &Parent{Digest: a[AnnotationDigest], BundleVersion: a[AnnotationBundleVersion]}
	set := map[schema.GroupKind]bool{}
	for s := range strings.SplitSeq(a[ApplySetGKsAnnotation], ",") {
		if s != "" {
			set[schema.ParseGroupKind(s)] = true
		}
	}
	p.GroupKinds = sortedGroupKinds(set)
	return p, nil
}

// parentObject is the parent ConfigMap recording p.
func parentObject(addon string, p Parent) *unstructured.Unstructured {
	kinds := make([]string, 0, len(p.GroupKinds))
	for _, gk := range p.GroupKinds {
		kinds = append(kinds, gk.String())
	}
	cm := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "ConfigMap"}}
	cm.SetNamespace(ParentNamespace)
	cm.SetName(ParentName(addon))
	cm.SetLabels(map[string]string{ApplySetIDLabel: ApplySetID(addon), "app.kubernetes.io/managed-by": "ferry"})
	cm.SetAnnotations(map[string]string{
		ApplySetToolingAnnotation: ApplySetTooling,
		ApplySetGKsAnnotation:     strings.Join(kinds, ","),
		AnnotationDigest:          p.Digest,
		AnnotationBundleVersion:   p.BundleVersion,
	})
	return cm
}

// ApplyOptions tune Apply.
type ApplyOptions struct {
	// Timeout bounds each wait for readiness (default 5 minutes);
	// Interval is how often readiness is checked (default 2 seconds).
	Timeout, Interval time.Duration
	// Log, when set, is told each operation before it runs.
	Log func(Op)
}

// Apply runs p's operations in order and stops at the first that fails;
// the next Observe and MakePlan take it from there.
func Apply(ctx context.Context, c *Client, p *Plan, o ApplyOptions) error {
	for _, op := range p.Ops {
		if o.Log != nil {
			o.Log(op)
		}
		if err := ApplyOp(ctx, c, op, o); err != nil {
			return fmt.Errorf("add-on %s: %s: %w", p.Addon, op, err)
		}
	}
	return nil
}

// ApplyOp runs one operation of a plan (the node's converge loop journals
// each one with the node's own operations). Like every operation, it
// changes nothing more when run again.
func ApplyOp(ctx context.Context, c *Client, op Op, o ApplyOptions) error {
	if o.Timeout <= 0 {
		o.Timeout = 5 * time.Minute
	}
	if o.Interval <= 0 {
		o.Interval = 2 * time.Second
	}
	return runOp(ctx, c, op, o)
}

func runOp(ctx context.Context, c *Client, op Op, o ApplyOptions) error {
	switch op := op.(type) {
	case RecordParent:
		cm := parentObject(op.Addon, op.Parent)
		_, err := c.Dynamic.Resource(configMaps).Namespace(ParentNamespace).Apply(ctx, cm.GetName(), cm, metav1.ApplyOptions{FieldManager: FieldManager, Force: true})
		return err
	case ApplyObject:
		res, err := c.resource(RefOf(op.Object))
		if err != nil {
			return err
		}
		_, err = res.Apply(ctx, op.Object.GetName(), op.Object, metav1.ApplyOptions{FieldManager: FieldManager, Force: true})
		return err
	case WaitReady:
		return waitReady(ctx, c, op, o)
	case PruneObject:
		res, err := c.resource(op.Ref)
		if err != nil {
			return err
		}
		bg := metav1.DeletePropagationBackground
		opts := metav1.DeleteOptions{PropagationPolicy: &bg}
		if op.UID != "" {
			uid := types.UID(op.UID)
			opts.Preconditions = &metav1.Preconditions{UID: &uid}
		}
		err = res.Delete(ctx, op.Ref.Name, opts)
		if apierrors.IsNotFound(err) {
			return nil
		}
		return err
	}
	return fmt.Errorf("unknown operation %T", op)
}

func waitReady(ctx context.Context, c *Client, op WaitReady, o ApplyOptions) error {
	res, err := c.resource(op.Ref)
	if err != nil {
		return err
	}
	state := "not read yet"
	var failed error
	err = wait.PollUntilContextTimeout(ctx, o.Interval, o.Timeout, true, func(ctx context.Context) (bool, error) {
		obj, err := res.Get(ctx, op.Ref.Name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			state = "not found"
			return false, nil
		}
		if err != nil {
			if ctx.Err() == nil { // not the deadline's own error
				state = err.Error()
			}
			return false, nil
		}
		ok, s, err := ready(obj)
		state = s
		if err != nil {
			failed = err
			return false, err
		}
		if ok && op.Ref.GroupKind() == gkCRD {
			// Established, but its kind is not always in discovery yet.
			group, _, _ := unstructured.NestedString(obj.Object, "spec", "group")
			kind, _, _ := unstructured.NestedString(obj.Object, "spec", "names", "kind")
			if _, err := c.mapping(schema.GroupKind{Group: group, Kind: kind}, ""); err != nil {
				state = "established, " + kind + " not discovered yet: " + err.Error()
				return false, nil
			}
		}
		return ok, nil
	})
	switch {
	case failed != nil:
		return failed
	case ctx.Err() != nil:
		return fmt.Errorf("not %s (%s): %w", op.For, state, ctx.Err())
	case errors.Is(err, context.DeadlineExceeded) || wait.Interrupted(err):
		return fmt.Errorf("not %s after %s: %s", op.For, o.Timeout, state)
	}
	return err
}
