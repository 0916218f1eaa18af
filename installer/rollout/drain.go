package rollout

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	cmdutil "k8s.io/kubectl/pkg/cmd/util"
	"k8s.io/kubectl/pkg/drain"
)

// helper is kubectl's drain with the roll-out's policy: evictions only
// (a Pod is never deleted past its PodDisruptionBudget), DaemonSet Pods
// left alone, emptyDir data allowed to go, Pods without a controller
// refused, each Pod's own grace period.
func (r *run) helper(ctx context.Context, node string) *drain.Helper {
	out := logWriter{log: r.log, node: node}
	return &drain.Helper{
		Ctx: ctx, Client: r.Client,
		GracePeriodSeconds:   -1,
		IgnoreAllDaemonSets:  true,
		DeleteEmptyDirData:   true,
		Timeout:              r.DrainTimeout,
		EvictErrorRetryDelay: r.EvictionRetryDelay,
		Out:                  out, ErrOut: out,
	}
}

// drain evicts the node's Pods, retrying evictions a budget refuses until
// the node's drain timeout: DrainTimeout, or the longest
// AnnotationDrainTimeout of its Pods.
//
// An attempt that fails early (the API server restarting while a control
// plane upgrades, its authorizer not yet synced) is tried again within
// the same timeout: the drain only ever evicts, so a retry is safe.
func (r *run) drain(ctx context.Context, node string) error {
	deadline := time.Now().Add(r.DrainTimeout)
	for {
		err := r.drainOnce(ctx, node)
		if err == nil || ctx.Err() != nil || time.Now().Add(5*time.Second).After(deadline) {
			return err
		}
		r.log.Warn("drain failed, trying again", "node", node, "err", err)
		select {
		case <-ctx.Done():
			return err
		case <-time.After(5 * time.Second):
		}
	}
}

func (r *run) drainOnce(ctx context.Context, node string) error {
	h := r.helper(ctx, node)
	list, errs := h.GetPodsForDeletion(node)
	if len(errs) > 0 {
		return fmt.Errorf("draining node %s: %w", node, errors.Join(errs...))
	}
	pods := list.Pods()
	for _, p := range pods {
		d, err := podDrainTimeout(p)
		if err != nil {
			return fmt.Errorf("draining node %s: %w", node, err)
		}
		h.Timeout = max(h.Timeout, d)
	}
	if err := h.DeleteOrEvictPods(pods); err != nil {
		return fmt.Errorf("draining node %s (%d pods, timeout %s): %w", node, len(pods), h.Timeout, err)
	}
	return nil
}

func podDrainTimeout(p corev1.Pod) (time.Duration, error) {
	v, ok := p.Annotations[AnnotationDrainTimeout]
	if !ok {
		return 0, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 || d > maxDrainTimeout {
		return 0, fmt.Errorf("pod %s/%s: annotation %s=%q: want a duration in (0, %s]", p.Namespace, p.Name, AnnotationDrainTimeout, v, maxDrainTimeout)
	}
	return d, nil
}

// BlockedEviction is a Pod whose eviction the API server refuses now, and
// the PodDisruptionBudgets that cover it.
type BlockedEviction struct {
	Node, Namespace, Pod string
	// PDBs are the budgets whose selector matches the Pod.
	PDBs []string
	// Message is the API server's answer.
	Message string
}

func (b BlockedEviction) String() string {
	return fmt.Sprintf("pod %s/%s on node %s: blocked by PodDisruptionBudget %s (%s)", b.Namespace, b.Pod, b.Node, strings.Join(b.PDBs, ", "), b.Message)
}

// PreflightError is a preflight that found evictions blocked by
// PodDisruptionBudgets; nothing was changed.
type PreflightError struct {
	Blocked []BlockedEviction
}

func (e *PreflightError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "preflight: %d eviction(s) would be blocked by a PodDisruptionBudget; nothing was changed (resolve them, or start anyway with --force: the drain then waits for the budgets, up to the drain timeout per node)", len(e.Blocked))
	for _, x := range e.Blocked {
		b.WriteString("\n  ")
		b.WriteString(x.String())
	}
	return b.String()
}

// preflight asks the API server for a dry-run of every eviction the
// roll-out will make (the Pods of every node still to be drained) and
// returns those refused with 429 (a PodDisruptionBudget). Pods that the
// drain cannot evict at all (no controller, say) fail the preflight.
func (r *run) preflight(ctx context.Context, nodes map[string]*corev1.Node) ([]BlockedEviction, error) {
	var names []string
	for name, n := range nodes {
		if s := NextStep(r.Target, Observe(n)); s == StepCordon || s == StepDrain {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	if len(names) == 0 {
		return nil, nil
	}
	pdbs, err := r.Client.PolicyV1().PodDisruptionBudgets(metav1.NamespaceAll).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("preflight: listing PodDisruptionBudgets: %w", err)
	}
	gv, err := drain.CheckEvictionSupport(r.Client)
	if err != nil {
		return nil, fmt.Errorf("preflight: %w", err)
	}
	if gv.Empty() {
		return nil, errors.New("preflight: the API server has no eviction API")
	}
	// Each node's pods and dry-run evictions, a few nodes at a time;
	// the findings in the nodes' order.
	type finding struct {
		blocked  []BlockedEviction
		problems []error
	}
	found := make([]finding, len(names))
	var wg sync.WaitGroup
	sem := make(chan struct{}, preflightParallelism)
	for i, name := range names {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			found[i].blocked, found[i].problems = r.dryRunDrain(ctx, name, gv, pdbs.Items)
		})
	}
	wg.Wait()
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	var blocked []BlockedEviction
	var problems []error
	for _, f := range found {
		blocked = append(blocked, f.blocked...)
		problems = append(problems, f.problems...)
	}
	if len(problems) > 0 {
		return blocked, fmt.Errorf("preflight: nothing was changed: %w", errors.Join(problems...))
	}
	return blocked, nil
}

// preflightParallelism bounds the nodes whose drain is dry-run at once.
const preflightParallelism = 16

// dryRunDrain finds the pods a drain of node would evict and dry-runs
// their evictions: the ones a PodDisruptionBudget blocks, and what else
// went wrong.
func (r *run) dryRunDrain(ctx context.Context, name string, gv schema.GroupVersion, pdbs []policyv1.PodDisruptionBudget) ([]BlockedEviction, []error) {
	h := r.helper(ctx, name)
	h.DryRunStrategy = cmdutil.DryRunServer
	list, errs := h.GetPodsForDeletion(name)
	if len(errs) > 0 {
		return nil, []error{fmt.Errorf("node %s: %w", name, errors.Join(errs...))}
	}
	var blocked []BlockedEviction
	var problems []error
	for _, p := range list.Pods() {
		if _, err := podDrainTimeout(p); err != nil {
			problems = append(problems, fmt.Errorf("node %s: %w", name, err))
		}
		err := h.EvictPod(p, gv) // DryRun: All
		switch {
		case err == nil, apierrors.IsNotFound(err):
		case apierrors.IsTooManyRequests(err):
			blocked = append(blocked, BlockedEviction{Node: name, Namespace: p.Namespace, Pod: p.Name, PDBs: matchingPDBs(pdbs, &p), Message: err.Error()})
		default:
			if ctx.Err() != nil {
				return blocked, problems
			}
			problems = append(problems, fmt.Errorf("node %s: dry-run eviction of pod %s/%s: %w", name, p.Namespace, p.Name, err))
		}
	}
	return blocked, problems
}

func matchingPDBs(pdbs []policyv1.PodDisruptionBudget, p *corev1.Pod) []string {
	var names []string
	for _, b := range pdbs {
		if b.Namespace != p.Namespace || b.Spec.Selector == nil {
			continue
		}
		sel, err := metav1.LabelSelectorAsSelector(b.Spec.Selector)
		if err != nil || sel.Empty() || !sel.Matches(labels.Set(p.Labels)) {
			continue
		}
		names = append(names, b.Name)
	}
	if len(names) == 0 {
		names = []string{"(unknown)"}
	}
	return names
}
