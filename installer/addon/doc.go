// Package addon applies cluster add-ons: sets of Kubernetes objects (a
// network plug-in, monitoring, Ferry's own RBAC) rendered from
// cluster.yaml and the bundle, kept as rendered, and pruned when no longer
// rendered. The renderers live in installer/addons; this package is the
// machinery, for the node's converge loop.
//
//	Addon.Render(Input) ─▶ Render: check (apiVersion, kind, name,
//	      namespace, duplicates), label (LabelAddon, ApplySet part-of),
//	      order (CRDs, Namespaces first), digest ─▶ Desired
//	Desired ─▶ Observe (API: parent ConfigMap, live object + server-side
//	      apply dry run of each, labelled objects of the owned kinds)
//	      ─▶ Observed
//	Desired + Observed + Newer ─▶ MakePlan (pure) ─▶ Plan:
//	      parent applied by a newer bundle ─▶ no ops, a note
//	      record parent (kinds about to be owned, before applying)
//	      apply CRDs, Namespaces ─▶ wait (CRDs established)
//	      apply the rest ─▶ wait (Deployments available, StatefulSets and
//	           DaemonSets ready, Jobs complete)
//	      prune labelled objects no longer rendered (Namespaces and
//	           CRDs: a note, never deleted automatically)
//	      record parent (kinds, digest, bundle version)
//	Plan ─▶ Apply: each op in order, stop at the first error; the next
//	      loop observes and plans again. Converged: 0 operations.
//
// Decisions:
//   - One field manager (FieldManager, "ferry"), server-side apply with
//     Force: the rendered objects win over edits by others; fields the
//     add-on stops rendering are removed by the API server.
//   - "Differs" is what the API server says: the dry run of the apply
//     compared with the live object, without managedFields,
//     resourceVersion, generation and status. Defaults the server fills in
//     are the same in both, so they never count as a difference.
//   - Each add-on is an ApplySet (KEP-3659): its parent is the ConfigMap
//     kube-system/ferry-addon-<name>, with kubectl's id label, tooling and
//     contains-group-kinds annotations, plus the digest of the objects and
//     the bundle version that applied them. Pruning lists only the kinds
//     the parent records (or the add-on renders), and only objects with
//     both LabelAddon=<name> and the ApplySet's part-of label: an object
//     without them, or another add-on's, is never deleted. Nor is a
//     Namespace or a CRD: deleting it would delete what it holds, which
//     may be anyone's; a note asks for it to be deleted by hand.
//   - Version guard: a node whose bundle is older than the one that last
//     applied an add-on leaves it alone (a roll-out in progress must not
//     flap between two renders).
//   - Readiness is waited for only after an apply: a converged cluster
//     whose Deployment is unavailable plans nothing (that is health, not
//     configuration).
package addon
