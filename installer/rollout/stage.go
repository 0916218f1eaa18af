package rollout

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/cache"
	watchtools "k8s.io/client-go/tools/watch"
)

// Staging: before the first node is cordoned, every node that will be
// upgraded fetches and verifies the new bundle, control planes serve it
// from their content services, and every node pulls the new images it
// will run. A node that cannot stage stops the roll-out while nothing has
// been drained.
const (
	// AnnotationStageVersion asks a node's daemon to stage a bundle
	// version; the orchestrator sets it before the first cordon.
	AnnotationStageVersion = "ferry.dev/stage-version"
	// AnnotationStagedVersion is the version the node's daemon reports
	// staged.
	AnnotationStagedVersion = "ferry.dev/staged-version"
	// AnnotationStageError is the daemon's report of a failed staging:
	// "<version>: <reason>".
	AnnotationStageError = "ferry.dev/stage-error"
)

// NodeStager is the optional staging side of a NodeUpgrader: once a
// node's AnnotationStageVersion is set, Stage asks the node to stage the
// version; the orchestrator then waits for AnnotationStagedVersion (or
// AnnotationStageError). Stage must be idempotent.
type NodeStager interface {
	Stage(ctx context.Context, node, version string) error
}

// Stage implements NodeStager: the daemons watch AnnotationStageVersion.
func (AnnotationUpgrader) Stage(context.Context, string, string) error { return nil }

// StageError is a roll-out that did not start: nodes that failed to stage
// the target (their daemon's reason) or did not report within the node
// timeout. No node was cordoned.
type StageError struct {
	Version string
	Failed  map[string]string // node → reason
}

func (e *StageError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "staging %s: %d node(s) did not stage it, nothing was drained", e.Version, len(e.Failed))
	names := make([]string, 0, len(e.Failed))
	for n := range e.Failed {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		fmt.Fprintf(&b, "; node %s: %s", n, e.Failed[n])
	}
	return b.String()
}

// toStage are the nodes that will be upgraded and have not staged the
// target: not at it, not asked to converge to it yet (a resumed roll-out
// staged them before its first cordon), not staged.
func (r *run) toStage(nodes map[string]*corev1.Node) []string {
	var out []string
	for name, n := range nodes {
		a := n.Annotations
		if a[AnnotationVersion] == r.Target.Version || a[AnnotationDesiredVersion] == r.Target.Version || a[AnnotationStagedVersion] == r.Target.Version {
			continue
		}
		out = append(out, name)
	}
	slices.Sort(out)
	return out
}

// stage asks every node of toStage to stage the target and waits until
// all have, one fails, or the node timeout passes. nodes is updated with
// what it read.
func (r *run) stage(ctx context.Context, nodes map[string]*corev1.Node) error {
	pending := r.toStage(nodes)
	if len(pending) == 0 {
		return nil
	}
	r.log.Info("staging the new bundle", "version", r.Target.Version, "nodes", len(pending))
	stager, _ := r.Upgrader.(NodeStager)
	// The requests, in parallel (a few at a time).
	asked := make([]*corev1.Node, len(pending))
	errs := make([]error, len(pending))
	var wg sync.WaitGroup
	sem := make(chan struct{}, stageParallelism)
	for i, name := range pending {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			asked[i], errs[i] = r.askToStage(ctx, nodes[name], stager)
		}()
	}
	wg.Wait()
	for i, name := range pending {
		if errs[i] != nil {
			return errs[i]
		}
		nodes[name] = asked[i]
	}
	err := r.awaitStaged(ctx, nodes, pending)
	var se *StageError
	if errors.As(err, &se) {
		// A Warning event on each node that did not stage, with its reason.
		for name, reason := range se.Failed {
			if n := nodes[name]; n != nil {
				r.event(ctx, n, corev1.EventTypeWarning, "StageFailed", fmt.Sprintf("staging %s: %s; the roll-out did not start", r.Target.Version, reason))
			}
		}
	}
	return err
}

// awaitStaged waits until every node of pending (sorted) reports the
// target staged, one reports a failure or is deleted, or the node timeout
// passes: it watches the nodes (client-go's UntilWithSync lists, watches,
// and lists again when a watch breaks).
func (r *run) awaitStaged(ctx context.Context, nodes map[string]*corev1.Node, pending []string) error {
	wctx, cancel := context.WithTimeout(ctx, r.NodeTimeout)
	defer cancel()
	prefix := r.Target.Version + ": "
	waiting := make(map[string]bool, len(pending))
	for _, name := range pending {
		waiting[name] = true
	}
	failed := map[string]string{}
	// see takes in what a node reports; gone, that it was deleted.
	see := func(n *corev1.Node) {
		if _, ok := slices.BinarySearch(pending, n.Name); !ok {
			return
		}
		nodes[n.Name] = n
		a := n.Annotations
		switch {
		case a[AnnotationStagedVersion] == r.Target.Version || a[AnnotationVersion] == r.Target.Version:
			delete(waiting, n.Name)
		case strings.HasPrefix(a[AnnotationStageError], prefix):
			delete(waiting, n.Name)
			failed[n.Name] = strings.TrimPrefix(a[AnnotationStageError], prefix)
		}
	}
	gone := func(name string) {
		if waiting[name] {
			delete(waiting, name)
			failed[name] = "the node was deleted"
		}
	}
	settled := func() bool { return len(waiting) == 0 || len(failed) > 0 }
	api := r.Client.CoreV1().Nodes()
	lw := &cache.ListWatch{
		ListWithContextFunc:  func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) { return api.List(ctx, o) },
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) { return api.Watch(ctx, o) },
	}
	_, err := watchtools.UntilWithSync(wctx, lw, &corev1.Node{}, func(store cache.Store) (bool, error) {
		for _, name := range pending {
			if obj, ok, _ := store.GetByKey(name); ok {
				see(obj.(*corev1.Node))
			} else {
				gone(name)
			}
		}
		return settled(), nil
	}, func(ev watch.Event) (bool, error) {
		if n, ok := ev.Object.(*corev1.Node); ok {
			if ev.Type == watch.Deleted {
				gone(n.Name)
			} else {
				see(n)
			}
		}
		return settled(), nil
	})
	switch {
	case len(failed) > 0:
		return &StageError{Version: r.Target.Version, Failed: failed}
	case len(waiting) == 0:
		r.log.Info("staged on every node", "version", r.Target.Version, "nodes", len(pending))
		return nil
	case ctx.Err() != nil:
		return ctx.Err()
	case wctx.Err() != nil:
		for name := range waiting {
			failed[name] = fmt.Sprintf("did not report %s staged within %s", r.Target.Version, r.NodeTimeout)
		}
		return &StageError{Version: r.Target.Version, Failed: failed}
	default:
		return fmt.Errorf("staging %s: watching the nodes: %w", r.Target.Version, err)
	}
}

// askToStage sets n's AnnotationStageVersion (and removes the report of
// an earlier failure: the daemon tries again and reports anew), then asks
// the stager, if any.
func (r *run) askToStage(ctx context.Context, n *corev1.Node, stager NodeStager) (*corev1.Node, error) {
	name := n.Name
	if n.Annotations[AnnotationStageVersion] != r.Target.Version || n.Annotations[AnnotationStageError] != "" {
		for {
			next, err := r.patch(ctx, n, map[string]any{AnnotationStageVersion: r.Target.Version, AnnotationStageError: nil}, nil)
			if err == nil {
				n = next
				break
			}
			if !apierrors.IsConflict(err) {
				return nil, fmt.Errorf("asking node %s to stage %s: %w", name, r.Target.Version, err)
			}
			if n, err = r.Client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{}); err != nil {
				return nil, fmt.Errorf("asking node %s to stage %s: %w", name, r.Target.Version, err)
			}
		}
	}
	if stager != nil {
		if err := stager.Stage(ctx, name, r.Target.Version); err != nil {
			return nil, fmt.Errorf("asking node %s to stage %s: %w", name, r.Target.Version, err)
		}
	}
	return n, nil
}

// stageParallelism bounds the staging requests sent at once.
const stageParallelism = 16
