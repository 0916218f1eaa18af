// Package rollout is the orchestrator of cluster roll-outs, the core of
// `installer upgrade --iso NEW.iso` (R6, R7, R46): it brings every node
// of the cluster to a new bundle version, control-plane nodes one at a
// time first, then workers within maxUnavailable, without ever deleting a
// Pod past its PodDisruptionBudget.
//
//	Run ─▶ API server ready? ─▶ read the ConfigMap (resume or start)
//	    ─▶ list nodes ─▶ all done? ─▶ "nothing to do" (nothing written)
//	    ─▶ preflight: dry-run eviction of every Pod to be drained
//	         (blocked by a PDB: report pod and PDB, change nothing,
//	          unless Force)
//	    ─▶ staging: every node to be upgraded is asked to stage the
//	         target (AnnotationStageVersion: its daemon fetches and
//	         verifies the bundle, a control plane serves it, every node
//	         pulls the new images) and reports it (AnnotationStagedVersion);
//	         a node that fails or does not report within NodeTimeout
//	         stops the run with a StageError, nothing cordoned
//	    ─▶ etcd snapshot (once per roll-out), restore-tested, recorded
//	    ─▶ loop: count cordoned nodes (API) ─▶ Plan ─▶ cordon admitted
//	         nodes one request after another ─▶ per node, in parallel:
//	         drain ─▶ set desired version ─▶ NodeUpgrader.Start ─▶ wait
//	         for version + Ready ─▶ uncordon ─▶ done
//	    ─▶ a failed node: no more admissions, nodes in flight finish,
//	         the ConfigMap says Stopped and where
//
// State lives in the cluster, so a killed orchestrator resumes when the
// same command runs again:
//   - Node annotations are the truth about each node: ferry.dev/rollout-phase
//     and ferry.dev/rollout-cordoned are written in the same request as the
//     change they describe (cordon, drained, desired version, uncordon), each
//     a merge patch conditional on the resourceVersion observed. The node's
//     daemon reports ferry.dev/version. NextStep derives a node's next step
//     from these alone, so resumption needs no journal.
//   - The ConfigMap kube-system/ferry-rollout holds the plan (target, Kubernetes
//     version, maxUnavailable, the snapshot, status, the run that holds it) and
//     a summary of every node's phase, written by one goroutine with
//     resourceVersion preconditions; every run rewrites the summary from the
//     annotations. A new run takes the roll-out over (Holder); an older run
//     still writing then fails with ErrSuperseded.
//
// The budget is counted from the API server before every admission (a
// List of nodes with spec.unschedulable=true), whoever cordoned them; only
// the main loop cordons, one node after the other, so no count can miss a
// cordon of its own. A node someone else cordoned is upgraded without
// taking from the budget and left cordoned. Plan and NextStep are pure.
//
// Policies:
//   - Preflight: blocked evictions (429 from a dry-run, DryRun: All) are
//     reported with the PDBs that select the Pod; the run refuses to start
//     unless Options.Force. Pods the drain cannot evict at all (no
//     controller) fail the preflight even with Force.
//   - Drain: kubectl's drain helper; evictions only; DaemonSet Pods stay;
//     emptyDir data may go; each Pod's own grace period; evictions refused
//     by a budget are retried every EvictionRetryDelay until the node's
//     drain timeout (DrainTimeout, or the longest ferry.dev/drain-timeout of
//     its Pods: the per-workload policy), then the node fails.
//   - Rollback (rollback.go): a node's daemon refuses a desired version older
//     than the bundle it runs (a kubelet's credentials can write its own
//     Node's annotations) unless the ConfigMap kube-system/ferry-rollback,
//     which only administrators write and nodes may only read, orders a
//     rollback to that version. A run with Options.Rollback records that
//     order after the snapshot and before the first node changes, and
//     deletes it once the roll-out is complete. A daemon that refuses
//     reports ferry.dev/target-refused ("<version>: <reason>"); the wait
//     stops that node with ErrRefused and the reason at once.
//   - A node that does not report the version and Ready within NodeTimeout
//     fails: it stays cordoned with phase failed, nodes done stay done, no
//     other node is started, and the run returns a StoppedError. The next
//     run retries it from the step it failed in.
//   - A roll-out to another version that is not Complete is refused
//     (ErrOtherRollout).
//
// Progress: a table (WriteTable: node, phase, version, elapsed), and a
// Kubernetes Event on the node (source ferry-rollout) at every phase.
package rollout
