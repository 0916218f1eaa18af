package addon

import (
	"fmt"
	"reflect"
	"slices"
	"strings"

	"golang.org/x/mod/semver"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// Ref names an object: "apps/v1 Deployment kube-system/coredns".
type Ref struct {
	APIVersion, Kind, Namespace, Name string
}

// RefOf is o's Ref.
func RefOf(o *unstructured.Unstructured) Ref {
	return Ref{APIVersion: o.GetAPIVersion(), Kind: o.GetKind(), Namespace: o.GetNamespace(), Name: o.GetName()}
}

func (r Ref) String() string {
	if r.Namespace == "" {
		return r.APIVersion + " " + r.Kind + " " + r.Name
	}
	return r.APIVersion + " " + r.Kind + " " + r.Namespace + "/" + r.Name
}

// GroupKind is r's group and kind.
func (r Ref) GroupKind() schema.GroupKind {
	return schema.FromAPIVersionAndKind(r.APIVersion, r.Kind).GroupKind()
}

// key is r without its version: the same object served at two versions
// has one key.
func (r Ref) key() Ref {
	return Ref{APIVersion: r.GroupKind().Group, Kind: r.Kind, Namespace: r.Namespace, Name: r.Name}
}

// Observed is what the cluster has of one add-on (Observe).
type Observed struct {
	// Parent is the add-on's parent ConfigMap as recorded; nil: the
	// add-on was never applied.
	Parent *Parent
	// Objects holds, for each object of Desired.Objects (same index),
	// the live object and the result of a server-side apply dry run of
	// the desired one; both nil when it does not exist.
	Objects []ObjectState
	// Owned are the objects that carry the add-on's label, of the kinds
	// the parent records or the add-on renders: candidates for pruning.
	Owned []*unstructured.Unstructured
}

// ObjectState is one desired object in the cluster.
type ObjectState struct {
	Live, DryRun *unstructured.Unstructured
}

// Parent is what the parent ConfigMap records of the last apply.
type Parent struct {
	GroupKinds    []schema.GroupKind
	Digest        string
	BundleVersion string
}

// Reason says why an object is applied.
type Reason string

const (
	ReasonMissing Reason = "missing"
	ReasonDiffers Reason = "differs"
)

// Op is one step of a Plan; String is how the plan prints it.
type Op interface {
	String() string
}

// ApplyObject applies Object (server-side, field manager FieldManager,
// forced).
type ApplyObject struct {
	Object *unstructured.Unstructured
	Reason Reason
}

func (o ApplyObject) String() string {
	return fmt.Sprintf("apply object %s (%s)", RefOf(o.Object), o.Reason)
}

// WaitReady waits until an applied object is ready: For says what for.
type WaitReady struct {
	Ref Ref
	For string
}

func (o WaitReady) String() string { return fmt.Sprintf("wait for object %s (%s)", o.Ref, o.For) }

// PruneObject deletes an object of the add-on that it no longer renders.
type PruneObject struct {
	Ref Ref
	UID string // the object listed: a precondition of the delete
}

func (o PruneObject) String() string {
	return fmt.Sprintf("prune object %s (no longer rendered)", o.Ref)
}

// RecordParent writes the add-on's parent ConfigMap. Before the objects
// are applied it records the kinds it is about to own (so that a run
// that stops half-way still prunes them later); at the end, what was
// applied.
type RecordParent struct {
	Addon  string
	Parent Parent
	Before bool
}

func (o RecordParent) String() string {
	var kinds []string
	for _, gk := range o.Parent.GroupKinds {
		kinds = append(kinds, gk.String())
	}
	if o.Before {
		return fmt.Sprintf("record add-on %s in %s/%s (before applying: bundle %s, kinds %s)", o.Addon, ParentNamespace, ParentName(o.Addon), o.Parent.BundleVersion, strings.Join(kinds, ","))
	}
	return fmt.Sprintf("record add-on %s in %s/%s (bundle %s, %s)", o.Addon, ParentNamespace, ParentName(o.Addon), o.Parent.BundleVersion, o.Parent.Digest)
}

// Plan is what converging one add-on takes: Ops in order, and Notes
// (why nothing is done, for instance).
type Plan struct {
	Addon string
	Ops   []Op
	Notes []string
}

// Newer reports whether bundle version a is newer than b.
type Newer func(a, b string) bool

// NewerSemver is a Newer for semantic versions, with or without a
// leading "v": an invalid a is never newer, a valid a is newer than an
// invalid b.
func NewerSemver(a, b string) bool {
	sv := func(v string) string {
		if !strings.HasPrefix(v, "v") {
			return "v" + v
		}
		return v
	}
	a, b = sv(a), sv(b)
	if !semver.IsValid(a) {
		return false
	}
	return !semver.IsValid(b) || semver.Compare(a, b) > 0
}

// MakePlan decides what converging d takes, from what Observe found:
//   - nothing, with a note, when a newer bundle than d's applied the add-on
//     last (newer(applied, mine)): a node must not roll it back;
//   - apply each object that is missing or whose dry run differs from the
//     live object (CRDs and Namespaces first), then wait for those that
//     have a readiness condition;
//   - prune each labelled object of the add-on it no longer renders, but
//     for Namespaces and CRDs: a note says they are left in place;
//   - record the parent: before applying when it does not yet name all
//     the kinds, and at the end when what it records is not d.
//
// A converged add-on gives no operation.
func MakePlan(d *Desired, o *Observed, newer Newer) *Plan {
	p := &Plan{Addon: d.Name}
	if o.Parent != nil && o.Parent.BundleVersion != "" && newer(o.Parent.BundleVersion, d.BundleVersion) {
		p.Notes = append(p.Notes, fmt.Sprintf("add-on %s: left as bundle %s applied it: this node's bundle %s is older", d.Name, o.Parent.BundleVersion, d.BundleVersion))
		return p
	}
	var applies [2][]Op
	var waits [2][]Op
	rendered := map[Ref]bool{}
	for i, obj := range d.Objects {
		ref := RefOf(obj)
		rendered[ref.key()] = true
		var st ObjectState
		if i < len(o.Objects) {
			st = o.Objects[i]
		}
		var reason Reason
		switch {
		case st.Live == nil:
			reason = ReasonMissing
		case differs(st.Live, st.DryRun):
			reason = ReasonDiffers
		default:
			continue
		}
		phase := applyPhase(ref)
		applies[phase] = append(applies[phase], ApplyObject{Object: obj, Reason: reason})
		if what := readyFor(ref.GroupKind()); what != "" {
			waits[phase] = append(waits[phase], WaitReady{Ref: ref, For: what})
		}
	}
	var prunes []Op
	kept := map[schema.GroupKind]bool{}
	for _, obj := range o.Owned {
		ref := RefOf(obj)
		if obj.GetLabels()[LabelAddon] != d.Name || rendered[ref.key()] {
			continue
		}
		if ref.Namespace == ParentNamespace && ref.Name == ParentName(d.Name) && ref.GroupKind() == (schema.GroupKind{Kind: "ConfigMap"}) {
			continue
		}
		if applyPhase(ref) == 0 {
			// Deleting a Namespace or a CRD deletes what it holds, which
			// may not be the add-on's: never automatically. Its kind stays
			// recorded, so the note stays until someone deletes it.
			p.Notes = append(p.Notes, fmt.Sprintf("add-on %s: %s is no longer rendered but left in place: deleting it deletes what it holds (delete it by hand)", d.Name, ref))
			kept[ref.GroupKind()] = true
			continue
		}
		prunes = append(prunes, PruneObject{Ref: ref, UID: string(obj.GetUID())})
	}

	final := Parent{GroupKinds: d.GroupKinds, Digest: d.Digest, BundleVersion: d.BundleVersion}
	if len(kept) > 0 {
		final.GroupKinds = unionKinds(d.GroupKinds, sortedGroupKinds(kept))
	}
	changes := len(applies[0]) + len(applies[1]) + len(prunes)
	if changes > 0 && (o.Parent == nil || !coversKinds(o.Parent.GroupKinds, d.GroupKinds) || o.Parent.BundleVersion != d.BundleVersion) {
		before := Parent{GroupKinds: d.GroupKinds, BundleVersion: d.BundleVersion}
		if o.Parent != nil {
			before.Digest = o.Parent.Digest
			before.GroupKinds = unionKinds(o.Parent.GroupKinds, d.GroupKinds)
		}
		p.Ops = append(p.Ops, RecordParent{Addon: d.Name, Parent: before, Before: true})
	}
	p.Ops = append(p.Ops, applies[0]...)
	p.Ops = append(p.Ops, waits[0]...)
	p.Ops = append(p.Ops, applies[1]...)
	p.Ops = append(p.Ops, waits[1]...)
	p.Ops = append(p.Ops, prunes...)
	if o.Parent == nil || !sameParent(*o.Parent, final) {
		p.Ops = append(p.Ops, RecordParent{Addon: d.Name, Parent: final})
	}
	return p
}

// differs compares a live object with the dry run of applying the
// desired one, without what the server changes on every write
// (managedFields, resourceVersion, generation) and status (never applied).
func differs(live, dryRun *unstructured.Unstructured) bool {
	if dryRun == nil {
		return true
	}
	return !reflect.DeepEqual(normalized(live), normalized(dryRun))
}

func normalized(o *unstructured.Unstructured) map[string]any {
	c := o.DeepCopy()
	c.SetManagedFields(nil)
	c.SetResourceVersion("")
	c.SetGeneration(0)
	delete(c.Object, "status")
	return c.Object
}

// coversKinds reports whether recorded holds every kind of want.
func coversKinds(recorded, want []schema.GroupKind) bool {
	for _, gk := range want {
		if !slices.Contains(recorded, gk) {
			return false
		}
	}
	return true
}

func unionKinds(a, b []schema.GroupKind) []schema.GroupKind {
	set := map[schema.GroupKind]bool{}
	for _, gk := range append(slices.Clone(a), b...) {
		set[gk] = true
	}
	return sortedGroupKinds(set)
}

func sameParent(a, b Parent) bool {
	return a.Digest == b.Digest && a.BundleVersion == b.BundleVersion && slices.Equal(a.GroupKinds, b.GroupKinds)
}
