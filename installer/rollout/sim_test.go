package rollout

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"

	"golang.org/x/mod/semver"
)

// simDaemon stands in for Ferry's node daemon: THE FAKE BOUNDARY. kwok
// simulates each node's kubelet (status, leases, Pods), but nothing can
// run the node daemon (which converges a real host with dnf and kubeadm)
// on a kwok node. So this NodeUpgrader does what the daemon reports when
// it has converged: after a simulated per-node work time it sets the
// node's kubelet version and its AnnotationVersion. Its work is detached
// from the orchestrator's context: a node keeps converging when the
// orchestrator is killed.
type simDaemon struct {
	client  kubernetes.Interface
	work    time.Duration
	kubelet string

	mu        sync.Mutex
	started   map[string]string // node → version asked
	never     map[string]bool   // nodes that never come back
	stageFail map[string]string // node → the reason its staging fails
	staged    map[string]string // node → version asked to stage
	// stageDelay: how long staging takes; stageSilent: nodes whose
	// daemon never reports.
	stageDelay  time.Duration
	stageSilent map[string]bool
	// orders, when set, is a node's client (system:nodes): before it
	// moves a node to an older version, the simulated daemon checks the
	// rollback order with it (RollbackOrdered), as the real daemon does,
	// and reports its refusal (AnnotationTargetRefused) when there is none.
	orders kubernetes.Interface
	wg     sync.WaitGroup
}

// Stage reports the node staged (or its staging failed) as the daemon
// does, after stageDelay (at once by default: staging is the node's
// download and image pulls, which the simulation has none of).
func (d *simDaemon) Stage(_ context.Context, node, version string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.staged[node] == version {
		return nil
	}
	d.staged[node] = version
	if d.stageSilent[node] {
		return nil
	}
	delay := d.stageDelay
	annotations := map[string]any{AnnotationStagedVersion: version, AnnotationStageError: nil}
	if reason, ok := d.stageFail[node]; ok {
		annotations = map[string]any{AnnotationStageError: version + ": " + reason}
	}
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		time.Sleep(delay)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		meta, _ := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": annotations}})
		if _, err := d.client.CoreV1().Nodes().Patch(ctx, node, types.MergePatchType, meta, metav1.PatchOptions{}); err != nil {
			panic(fmt.Sprintf("simulated node daemon: %s: %v", node, err))
		}
	}()
	return nil
}

func newSimDaemon(c kubernetes.Interface, work time.Duration, kubelet string) *simDaemon {
	return &simDaemon{client: c, work: work, kubelet: kubelet, started: map[string]string{}, never: map[string]bool{}, stageFail: map[string]string{}, staged: map[string]string{}, stageSilent: map[string]bool{}}
}

func (d *simDaemon) Start(_ context.Context, node, version string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.started[node] == version || d.never[node] {
		return nil
	}
	if d.orders != nil && semver.Compare("v"+version, "v1.0.0") < 0 {
		ordered, err := RollbackOrdered(context.Background(), d.orders, version)
		if err != nil || !ordered {
			meta := fmt.Appendf(nil, `{"metadata":{"annotations":{%q:%q}}}`, AnnotationTargetRefused, fmt.Sprintf("%s: older than 1.0.0, and no rollback is ordered (%v)", version, err))
			_, err := d.client.CoreV1().Nodes().Patch(context.Background(), node, types.MergePatchType, meta, metav1.PatchOptions{})
			return err
		}
	}
	d.started[node] = version
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		time.Sleep(d.work)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		status := fmt.Appendf(nil, `{"status":{"nodeInfo":{"kubeletVersion":%q}}}`, d.kubelet)
		if _, err := d.client.CoreV1().Nodes().Patch(ctx, node, types.StrategicMergePatchType, status, metav1.PatchOptions{}, "status"); err != nil {
			panic(fmt.Sprintf("simulated node daemon: %s: %v", node, err))
		}
		meta := fmt.Appendf(nil, `{"metadata":{"annotations":{%q:%q}}}`, AnnotationVersion, version)
		if _, err := d.client.CoreV1().Nodes().Patch(ctx, node, types.MergePatchType, meta, metav1.PatchOptions{}); err != nil {
			panic(fmt.Sprintf("simulated node daemon: %s: %v", node, err))
		}
	}()
	return nil
}

func (d *simDaemon) setNever(node string, never bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.never[node] = never
	if !never {
		delete(d.started, node)
	}
}

// cordonWatcher checks the invariant on every event of every node: never
// more than maxWorkers workers, nor more than one control-plane node,
// cordoned at once.
type cordonWatcher struct {
	mu            sync.Mutex
	maxCP, maxW   int
	peakCP, peakW int
	events        int
	violations    []string
	cancel        context.CancelFunc
	done          chan struct{}
}

func watchCordons(t testing.TB, c kubernetes.Interface, maxW int) *cordonWatcher {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	w := &cordonWatcher{maxCP: 1, maxW: maxW, cancel: cancel, done: make(chan struct{})}
	list, err := c.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	state := map[string]NodeState{}
	for i := range list.Items {
		state[list.Items[i].Name] = Observe(&list.Items[i])
	}
	w.check(state)
	rv := list.ResourceVersion
	go func() {
		defer close(w.done)
		for ctx.Err() == nil {
			wi, err := c.CoreV1().Nodes().Watch(ctx, metav1.ListOptions{ResourceVersion: rv})
			if err != nil {
				time.Sleep(100 * time.Millisecond)
				continue
			}
			for ev := range wi.ResultChan() {
				n, ok := ev.Object.(*corev1.Node)
				if !ok {
					continue
				}
				rv = n.ResourceVersion
				if ev.Type == watch.Deleted {
					delete(state, n.Name)
				} else {
					state[n.Name] = Observe(n)
				}
				w.check(state)
			}
			wi.Stop()
		}
	}()
	t.Cleanup(w.stop)
	return w
}

func (w *cordonWatcher) check(state map[string]NodeState) {
	cp, wk := 0, 0
	for _, s := range state {
		if !s.Unschedulable {
			continue
		}
		if s.ControlPlane {
			cp++
		} else {
			wk++
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.events++
	w.peakCP, w.peakW = max(w.peakCP, cp), max(w.peakW, wk)
	if cp > w.maxCP || wk > w.maxW {
		w.violations = append(w.violations, fmt.Sprintf("event %d: %d control-plane and %d worker nodes cordoned", w.events, cp, wk))
	}
}

func (w *cordonWatcher) stop() {
	w.cancel()
	<-w.done
}

func (w *cordonWatcher) verify(t testing.TB) {
	t.Helper()
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.violations) > 0 {
		t.Errorf("the budget was exceeded (%d events seen): %v", w.events, w.violations)
	}
	if w.events == 0 {
		t.Error("the watcher saw no node event")
	}
}
