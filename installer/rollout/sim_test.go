package rollout

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
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
// cordoned at once. A watch that fails (an error event, a watch that
// cannot be made again from the last resource version) leaves the bound
// unchecked from then on, so it is a violation too; verify also fails
// when no node event came, or when the watcher has not caught up with the
// nodes (it stopped following without a word).
type cordonWatcher struct {
	mu            sync.Mutex
	maxCP, maxW   int
	peakCP, peakW int
	events        int               // node events from the watch (not the initial list)
	seen          map[string]string // node → last resource version seen
	violations    []string
	cancel        context.CancelFunc
	done          chan struct{}
}

// maxEmptyWatches bounds the watches in a row that close without an
// event: the API server ends a watch after its timeout (30 minutes or
// more), not at once.
const maxEmptyWatches = 3

func watchCordons(t testing.TB, c kubernetes.Interface, maxW int) *cordonWatcher {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	w := &cordonWatcher{maxCP: 1, maxW: maxW, seen: map[string]string{}, cancel: cancel, done: make(chan struct{})}
	list, err := c.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	state := map[string]NodeState{}
	for i := range list.Items {
		n := &list.Items[i]
		state[n.Name] = Observe(n)
		w.seen[n.Name] = n.ResourceVersion
	}
	w.check(state, false) // the listed state is checked, but is no event
	rv := list.ResourceVersion
	go func() {
		defer close(w.done)
		empty := 0
		for {
			n, err := w.follow(ctx, c, state, &rv)
			switch {
			case ctx.Err() != nil:
				return
			case err != nil:
				w.broken(err)
				return
			case n > 0:
				empty = 0
			default:
				if empty++; empty >= maxEmptyWatches {
					w.broken(fmt.Errorf("%d watches in a row closed without an event", empty))
					return
				}
			}
			// The watch closed: the next one resumes from rv.
		}
	}()
	t.Cleanup(w.stop)
	return w
}

// follow watches the nodes from *rv until the watch closes or fails,
// checking the invariant on every node event; it returns how many came.
func (w *cordonWatcher) follow(ctx context.Context, c kubernetes.Interface, state map[string]NodeState, rv *string) (int, error) {
	wi, err := c.CoreV1().Nodes().Watch(ctx, metav1.ListOptions{ResourceVersion: *rv})
	if err != nil {
		return 0, fmt.Errorf("watching the nodes from resource version %s: %w", *rv, err)
	}
	defer wi.Stop()
	n := 0
	for ev := range wi.ResultChan() {
		switch ev.Type {
		case watch.Added, watch.Modified, watch.Deleted:
		case watch.Error:
			return n, fmt.Errorf("watching the nodes from resource version %s: %w", *rv, apierrors.FromObject(ev.Object))
		default: // no bookmarks are asked for
			return n, fmt.Errorf("watching the nodes: unexpected %s event", ev.Type)
		}
		node, ok := ev.Object.(*corev1.Node)
		if !ok {
			return n, fmt.Errorf("watching the nodes: a %s event holds a %T", ev.Type, ev.Object)
		}
		n++
		*rv = node.ResourceVersion
		if ev.Type == watch.Deleted {
			delete(state, node.Name)
		} else {
			state[node.Name] = Observe(node)
		}
		w.mu.Lock()
		if ev.Type == watch.Deleted {
			delete(w.seen, node.Name)
		} else {
			w.seen[node.Name] = node.ResourceVersion
		}
		w.mu.Unlock()
		w.check(state, true)
	}
	return n, nil
}

// broken records that the watch stopped: the bound is unchecked from then.
func (w *cordonWatcher) broken(err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.violations = append(w.violations, fmt.Sprintf("after %d events the watch broke, the budget is unchecked from then: %v", w.events, err))
}

// check checks the invariant on state; event says whether a watch event
// brought it.
func (w *cordonWatcher) check(state map[string]NodeState, event bool) {
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
	if event {
		w.events++
	}
	w.peakCP, w.peakW = max(w.peakCP, cp), max(w.peakW, wk)
	if cp > w.maxCP || wk > w.maxW {
		w.violations = append(w.violations, fmt.Sprintf("event %d: %d control-plane and %d worker nodes cordoned", w.events, cp, wk))
	}
}

func (w *cordonWatcher) stop() {
	w.cancel()
	<-w.done
}

// verify fails the test if the budget was exceeded, the watch broke, no
// node event came, or the watcher has not caught up with the nodes as
// they are now (each at the resource version listed, or later) within a
// minute: a test deadline, not a performance bound.
func (w *cordonWatcher) verify(t testing.TB, c kubernetes.Interface) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	list, err := c.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	behind := ""
	for {
		if behind = w.behind(list.Items); behind == "" || ctx.Err() != nil {
			break
		}
		select {
		case <-ctx.Done():
		case <-w.done:
			cancel() // stopped: it will not catch up
		case <-time.After(50 * time.Millisecond):
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.violations) > 0 {
		t.Errorf("the budget was exceeded or went unchecked (%d events seen): %v", w.events, w.violations)
	}
	if w.events == 0 {
		t.Error("the watcher saw no node event")
	}
	if behind != "" {
		t.Errorf("the watcher stopped following the nodes: %s", behind)
	}
}

// behind names a listed node the watcher has not seen at its listed
// resource version (or a later one), or returns "".
func (w *cordonWatcher) behind(nodes []corev1.Node) string {
	w.mu.Lock()
	defer w.mu.Unlock()
	for i := range nodes {
		n := &nodes[i]
		seen, ok := w.seen[n.Name]
		if !ok {
			return fmt.Sprintf("node %s (resource version %s) not seen", n.Name, n.ResourceVersion)
		}
		// etcd's resource versions are revisions: later is larger.
		want, err1 := strconv.ParseUint(n.ResourceVersion, 10, 64)
		got, err2 := strconv.ParseUint(seen, 10, 64)
		if err1 != nil || err2 != nil || got < want {
			return fmt.Sprintf("node %s seen at resource version %s, listed at %s", n.Name, seen, n.ResourceVersion)
		}
	}
	return ""
}
