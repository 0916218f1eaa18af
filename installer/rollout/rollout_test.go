package rollout

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"

	"github.com/ferry-k8s/ferry/installer/cluster"
)

const (
	testOldKubelet = "v1.35.4"
	testNewKubelet = "v1.36.3"
)

func target(v string) Target { return Target{Version: v, KubernetesVersion: testNewKubelet} }

// options is a run against tc with the real etcd snapshotter.
func (tc *testCluster) options(t testing.TB, c kubernetes.Interface, d *simDaemon, v string, maxUnavailable *cluster.IntOrPercent) Options {
	return Options{
		Client: c, Target: target(v), MaxUnavailable: maxUnavailable, Upgrader: d,
		Snapshotter:  &EtcdSnapshotter{Endpoint: tc.etcdURL, TLS: tc.etcdTLS, Dir: tc.dir + "/snapshots", Etcdutl: etcdutl(t)},
		DrainTimeout: time.Minute, NodeTimeout: time.Minute, EvictionRetryDelay: 200 * time.Millisecond,
	}
}

// addPods puts perNode Pods of a (pretend) ReplicaSet on every worker, and
// a DaemonSet Pod (which the drain leaves alone) on each.
func (tc *testCluster) addPods(t testing.TB, nodes []string, perNode int) {
	t.Helper()
	ctx := context.Background()
	ctrl := true
	// The DaemonSet exists (the drain looks it up); no controller runs it.
	labels := map[string]string{"app": "daemonset"}
	ds, err := tc.client.AppsV1().DaemonSets("default").Get(ctx, "agent", metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		ds, err = tc.client.AppsV1().DaemonSets("default").Create(ctx, &appsv1.DaemonSet{ObjectMeta: metav1.ObjectMeta{Name: "agent", Namespace: "default"},
			Spec: appsv1.DaemonSetSpec{Selector: &metav1.LabelSelector{MatchLabels: labels}, Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "registry.ferry.dev/agent:1"}}}}}}, metav1.CreateOptions{})
	}
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		for i := range perNode + 1 {
			owner := metav1.OwnerReference{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "web", UID: "00000000-0000-0000-0000-000000000001", Controller: &ctrl}
			name := fmt.Sprintf("web-%s-%d", n, i)
			if i == perNode {
				owner = metav1.OwnerReference{APIVersion: "apps/v1", Kind: "DaemonSet", Name: "agent", UID: ds.UID, Controller: &ctrl}
				name = "agent-" + n
			}
			p := &corev1.Pod{
				ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", Labels: map[string]string{"app": strings.ToLower(owner.Kind)}, OwnerReferences: []metav1.OwnerReference{owner}},
				Spec: corev1.PodSpec{NodeName: n, TerminationGracePeriodSeconds: ptr(int64(1)), Containers: []corev1.Container{{Name: "c", Image: "registry.ferry.dev/app:1"}},
					Volumes:     []corev1.Volume{{Name: "scratch", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}},
					Tolerations: []corev1.Toleration{{Operator: corev1.TolerationOpExists}}},
			}
			if _, err := tc.client.CoreV1().Pods("default").Create(ctx, p, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
		}
	}
	// kwok starts them (a Pending Pod is evicted past any budget).
	deadline := time.Now().Add(2 * time.Minute)
	for {
		pods, err := tc.client.CoreV1().Pods("default").List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		running := 0
		for _, p := range pods.Items {
			if p.Status.Phase == corev1.PodRunning {
				running++
			}
		}
		if running == len(pods.Items) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d pods running after 2 minutes", running, len(pods.Items))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// checkDone checks that every node is uncordoned, at v, done, and the
// ConfigMap says Complete.
func (tc *testCluster) checkDone(t testing.TB, v string) {
	t.Helper()
	ctx := context.Background()
	list, err := tc.client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range list.Items {
		s := Observe(&list.Items[i])
		if s.Unschedulable || s.Version != v || s.Desired != v || s.Phase != PhaseDone || s.Cordoned || s.KubeletVersion != testNewKubelet || !s.Ready {
			t.Errorf("node %s not done at %s: %+v", s.Name, v, s)
		}
		if a := list.Items[i].Annotations; a[AnnotationStagedVersion] != v {
			t.Errorf("node %s was upgraded to %s without staging it: %v", s.Name, v, a)
		}
	}
	st, rows, err := ReadStatus(ctx, tc.client)
	if err != nil || st == nil {
		t.Fatalf("reading the status: %v %v", st, err)
	}
	if st.Plan.Version != v || st.Plan.Status != StatusComplete || len(rows) != len(list.Items) {
		t.Errorf("configmap: %+v, %d rows for %d nodes", st.Plan, len(rows), len(list.Items))
	}
	for _, r := range rows {
		if r.Phase != PhaseDone || r.Version != v {
			t.Errorf("configmap row %+v", r)
		}
	}
	if st.Plan.Snapshot == nil || !st.Plan.Snapshot.Verified || st.Plan.Snapshot.Revision == 0 || len(st.Plan.Snapshot.SHA256) != 64 {
		t.Errorf("snapshot record: %+v", st.Plan.Snapshot)
	}
}

// checkWarning checks that node has a Warning event of reason whose
// message contains text.
func (tc *testCluster) checkWarning(t testing.TB, node, reason, text string) {
	t.Helper()
	evs, err := tc.client.CoreV1().Events(eventNamespace).List(context.Background(), metav1.ListOptions{FieldSelector: "involvedObject.name=" + node})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(evs.Items, func(e corev1.Event) bool {
		return e.Reason == reason && e.Type == corev1.EventTypeWarning && strings.Contains(e.Message, text)
	}) {
		t.Errorf("no %s Warning event on %s saying %q: %d events", reason, node, text, len(evs.Items))
	}
}

// TestRolloutScale rolls a new bundle over 3, 50 and 500 kwok nodes and
// prints the figures: orchestration overhead beyond the simulated work,
// API requests per node, the test process's heap.
func TestRolloutScale(t *testing.T) {
	for _, tc := range []struct {
		nodes, perNodePods int
		max                *cluster.IntOrPercent
		work               time.Duration
	}{
		{3, 2, cluster.Int(1), 2 * time.Second},
		{50, 2, cluster.Percent(10), 5 * time.Second},
		{50, 0, cluster.Percent(10), 5 * time.Second}, // no Pods: the orchestration alone
		{500, 1, cluster.Percent(10), 5 * time.Second},
		{500, 0, cluster.Percent(10), 5 * time.Second},
	} {
		if v := os.Getenv("FERRY_ROLLOUT_WORK"); v != "" && tc.nodes > 3 {
			// make bench-rollout: a real node's work (a worker's
			// converge takes about 30 s in the e2e roll-out).
			w, err := time.ParseDuration(v)
			if err != nil || w <= 0 {
				t.Fatalf("FERRY_ROLLOUT_WORK=%q: want a positive duration (30s): %v", v, err)
			}
			tc.work = w
		}
		t.Run(fmt.Sprintf("%d-nodes-%d-pods", tc.nodes, tc.perNodePods), func(t *testing.T) {
			if tc.nodes >= 500 && testing.Short() {
				t.Skip("-short: 500 nodes take about two and a half minutes")
			}
			c := startCluster(t)
			names := c.addNodes(t, "n", tc.nodes, 1)
			c.addPods(t, names[1:], tc.perNodePods)
			workers := tc.nodes - 1
			budget := tc.max.Of(workers)
			w := watchCordons(t, c.client, budget)
			d := newSimDaemon(c.client, tc.work, testNewKubelet)
			var requests atomic.Int64
			opts := c.options(t, c.countingClient(&requests), d, "2.0.0", tc.max)
			clock := newPhaseClock()
			opts.Log = slog.New(clock)

			runtime.GC()
			var base runtime.MemStats
			runtime.ReadMemStats(&base)
			var peak atomic.Uint64
			stop := make(chan struct{})
			var sampler sync.WaitGroup
			sampler.Go(func() {
				var m runtime.MemStats
				for {
					runtime.ReadMemStats(&m)
					if m.HeapInuse > peak.Load() {
						peak.Store(m.HeapInuse)
					}
					select {
					case <-stop:
						return
					case <-time.After(100 * time.Millisecond):
					}
				}
			})
			begin := time.Now()
			rep, err := Run(context.Background(), opts)
			wall := time.Since(begin)
			close(stop)
			sampler.Wait()
			if err != nil {
				t.Fatal(err)
			}
			c.checkDone(t, "2.0.0")
			w.verify(t, c.client)
			waves := 1 + (workers+budget-1)/budget
			ideal := time.Duration(waves) * tc.work
			var table bytes.Buffer
			if err := WriteTable(&table, rep.Rows); err != nil {
				t.Fatal(err)
			}
			if tc.nodes <= 3 {
				t.Logf("progress table:\n%s", table.String())
			}
			t.Logf("FIGURES %d nodes (1 control plane, %d workers, maxUnavailable %s = %d, %d pods per worker): wall %s, simulated work %s (%d waves × %s), overhead %s (%.1f%%), %d API requests (%.1f per node), heap in use %.1f MiB at peak (%.1f MiB before), peak cordoned %d workers",
				tc.nodes, workers, tc.max, budget, tc.perNodePods, wall.Round(10*time.Millisecond), ideal, waves, tc.work,
				(wall - ideal).Round(10*time.Millisecond), 100*float64(wall-ideal)/float64(ideal),
				requests.Load(), float64(requests.Load())/float64(tc.nodes),
				float64(peak.Load())/(1<<20), float64(base.HeapInuse)/(1<<20), w.peakW)

			t.Logf("BREAKDOWN %d nodes, %d pods per worker: %s", tc.nodes, tc.perNodePods, clock.breakdown(begin, tc.work))

			// A second run has nothing to do, and writes nothing.
			requests.Store(0)
			rep, err = Run(context.Background(), opts)
			if err != nil || !rep.NothingToDo {
				t.Fatalf("second run: %+v %v", rep, err)
			}
			t.Logf("second run: nothing to do, %d API requests", requests.Load())
		})
	}
}

// TestRolloutPDBBlocks: a PodDisruptionBudget that allows no disruption
// is reported by the preflight (pod and budget), and nothing is changed.
func TestRolloutPDBBlocks(t *testing.T) {
	c := startCluster(t)
	names := c.addNodes(t, "n", 3, 1)
	c.addPods(t, names[1:], 1)
	ctx := context.Background()
	minAvailable := intstr.FromInt32(2)
	pdb := &policyv1.PodDisruptionBudget{ObjectMeta: metav1.ObjectMeta{Name: "web-pdb", Namespace: "default"},
		Spec: policyv1.PodDisruptionBudgetSpec{MinAvailable: &minAvailable, Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "replicaset"}}}}
	if _, err := c.client.PolicyV1().PodDisruptionBudgets("default").Create(ctx, pdb, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// The disruption controller (not running here) would say: 2 healthy,
	// 2 needed, no disruption allowed.
	pdb, err := c.client.PolicyV1().PodDisruptionBudgets("default").Get(ctx, "web-pdb", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pdb.Status = policyv1.PodDisruptionBudgetStatus{ObservedGeneration: pdb.Generation, CurrentHealthy: 2, DesiredHealthy: 2, ExpectedPods: 2, DisruptionsAllowed: 0}
	if _, err := c.client.PolicyV1().PodDisruptionBudgets("default").UpdateStatus(ctx, pdb, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	d := newSimDaemon(c.client, time.Second, testNewKubelet)
	rep, err := Run(ctx, c.options(t, c.client, d, "2.0.0", nil))
	var pe *PreflightError
	if !errors.As(err, &pe) {
		t.Fatalf("want a PreflightError, got %v", err)
	}
	t.Log(err)
	if len(pe.Blocked) != 2 || len(rep.Blocked) != 2 {
		t.Fatalf("blocked: %+v", pe.Blocked)
	}
	for _, b := range pe.Blocked {
		if !slices.Equal(b.PDBs, []string{"web-pdb"}) || !strings.HasPrefix(b.Pod, "web-n-00") || b.Namespace != "default" {
			t.Errorf("blocked eviction %+v", b)
		}
		if !strings.Contains(err.Error(), "pod default/"+b.Pod+" on node "+b.Node+": blocked by PodDisruptionBudget web-pdb") {
			t.Errorf("the error does not name %s and its budget: %v", b.Pod, err)
		}
	}
	list, err := c.client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range list.Items {
		if s := Observe(&list.Items[i]); s.Unschedulable || s.Phase != PhasePending || s.Desired != "1.0.0" {
			t.Errorf("node %s was touched: %+v", s.Name, s)
		}
	}
	if _, err := c.client.CoreV1().ConfigMaps(ConfigMapNamespace).Get(ctx, ConfigMapName, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("the ConfigMap was written: %v", err)
	}
	// The dry-run evicted nothing.
	pods, err := c.client.CoreV1().Pods("default").List(ctx, metav1.ListOptions{})
	if err != nil || len(pods.Items) != 4 {
		t.Fatalf("pods after the preflight: %d %v", len(pods.Items), err)
	}
	for _, p := range pods.Items {
		if p.DeletionTimestamp != nil {
			t.Errorf("pod %s is being deleted", p.Name)
		}
	}

	// --force starts anyway; the drain still respects the budget, retries
	// for the drain timeout, then fails the node, which stops the roll-out.
	opts := c.options(t, c.client, d, "2.0.0", nil)
	opts.Force, opts.DrainTimeout = true, 2*time.Second
	rep, err = Run(ctx, opts)
	var se *StoppedError
	if !errors.As(err, &se) || len(se.Failed) != 1 || se.Failed[0].Node != "n-001" || se.Failed[0].Step != StepDrain || len(rep.Blocked) != 2 {
		t.Fatalf("with --force: want the roll-out stopped in the drain of n-001: %v", err)
	}
	t.Log(err)
	if p, err := c.client.CoreV1().Pods("default").Get(ctx, "web-n-001-0", metav1.GetOptions{}); err != nil || p.DeletionTimestamp != nil {
		t.Errorf("the protected pod was evicted: %v", err)
	}
	n, err := c.client.CoreV1().Nodes().Get(ctx, "n-001", metav1.GetOptions{})
	if s := Observe(n); err != nil || !s.Unschedulable || s.Phase != PhaseFailed || s.Desired != "1.0.0" {
		t.Errorf("n-001 after the failed drain: %+v %v", s, err)
	}
}

// TestRolloutNodeNeverComesBack: a node that does not report the new
// version within its timeout stops the roll-out; the report and the
// ConfigMap name it; nodes done stay done, nodes not started are
// untouched. Once the node comes back, the same call finishes the job.
func TestRolloutNodeNeverComesBack(t *testing.T) {
	c := startCluster(t)
	names := c.addNodes(t, "n", 7, 1)
	c.addPods(t, names[1:], 1)
	w := watchCordons(t, c.client, 2)
	d := newSimDaemon(c.client, 500*time.Millisecond, testNewKubelet)
	bad := names[3]
	d.setNever(bad, true)
	opts := c.options(t, c.client, d, "2.0.0", cluster.Int(2))
	opts.NodeTimeout = 4 * time.Second
	ctx := context.Background()
	rep, err := Run(ctx, opts)
	var se *StoppedError
	if !errors.As(err, &se) || len(se.Failed) != 1 || se.Failed[0].Node != bad || se.Failed[0].Step != StepWait || !errors.Is(err, ErrNodeTimeout) {
		t.Fatalf("want the roll-out stopped at %s: %v", bad, err)
	}
	t.Log(err)
	var table bytes.Buffer
	_ = WriteTable(&table, rep.Rows)
	t.Logf("progress table:\n%s", table.String())
	if !strings.Contains(table.String(), bad) || !strings.Contains(table.String(), "failed") {
		t.Errorf("the table does not show the failed node")
	}
	st, _, err := ReadStatus(ctx, c.client)
	if err != nil || st.Plan.Status != StatusStopped || !slices.Equal(st.Plan.StoppedAt, []string{bad}) || !strings.Contains(st.Plan.Reason, bad) {
		t.Fatalf("configmap: %+v %v", st, err)
	}
	list, err := c.client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	done := 0
	for i := range list.Items {
		s := Observe(&list.Items[i])
		switch {
		case s.Name == bad:
			if !s.Unschedulable || s.Phase != PhaseFailed || s.Desired != "2.0.0" {
				t.Errorf("failed node %+v", s)
			}
		case s.Phase == PhaseDone:
			done++
			if s.Unschedulable || s.Version != "2.0.0" {
				t.Errorf("done node %+v", s)
			}
		case s.Phase == PhasePending:
			if s.Unschedulable || s.Desired != "1.0.0" {
				t.Errorf("untouched node %+v", s)
			}
		default:
			t.Errorf("node left half-way: %+v", s)
		}
	}
	if done < 2 {
		t.Errorf("%d nodes done: the control-plane node and the first workers should be", done)
	}
	// An event says so, on the node.
	c.checkWarning(t, bad, "UpgradeFailed", "did not come back")

	d.setNever(bad, false)
	rep, err = Run(ctx, opts)
	if err != nil || !rep.Resumed {
		t.Fatalf("the resumed run: resumed=%v %v", rep.Resumed, err)
	}
	c.checkDone(t, "2.0.0")
	w.verify(t, c.client)
}

// TestRolloutStageFails: a node that cannot stage the new bundle stops the
// roll-out before anything is cordoned or drained, with the node's reason;
// once it can, the same call rolls the bundle out.
func TestRolloutStageFails(t *testing.T) {
	c := startCluster(t)
	names := c.addNodes(t, "n", 5, 1)
	c.addPods(t, names[1:], 1)
	d := newSimDaemon(c.client, 200*time.Millisecond, testNewKubelet)
	bad := names[2]
	d.stageFail[bad] = "fetching ferry-2.0.0.iso: no content service answers"
	opts := c.options(t, c.client, d, "2.0.0", cluster.Int(2))
	ctx := context.Background()
	_, err := Run(ctx, opts)
	var se *StageError
	if !errors.As(err, &se) || len(se.Failed) != 1 || !strings.Contains(se.Failed[bad], "no content service answers") {
		t.Fatalf("want the roll-out refused for %s's staging: %v", bad, err)
	}
	if !strings.Contains(err.Error(), "nothing was drained") {
		t.Errorf("error: %v", err)
	}
	t.Log(err)
	c.checkWarning(t, bad, "StageFailed", "no content service answers")
	list, err := c.client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range list.Items {
		s := Observe(&list.Items[i])
		if s.Unschedulable || s.Cordoned || s.Desired != "1.0.0" || s.Phase != PhasePending {
			t.Errorf("node %s changed although staging failed: %+v", s.Name, s)
		}
	}
	pods, err := c.client.CoreV1().Pods("default").List(ctx, metav1.ListOptions{})
	if err != nil || len(pods.Items) != 4*2 {
		t.Errorf("pods after the refused roll-out: %d, %v", len(pods.Items), err)
	}
	if st, _, err := ReadStatus(ctx, c.client); err != nil || st != nil {
		t.Errorf("the refused roll-out wrote its state: %+v %v", st, err)
	}

	d.mu.Lock()
	delete(d.stageFail, bad)
	delete(d.staged, bad)
	d.mu.Unlock()
	if _, err := Run(ctx, opts); err != nil {
		t.Fatal(err)
	}
	c.checkDone(t, "2.0.0")
}

// TestRolloutStageWatch: reports of staging that come a while after the
// nodes were asked are seen (the orchestrator watches the nodes), and a
// node deleted while it is awaited stops the roll-out at once, not after
// the node timeout: that is an hour here, so only noticing the deletion
// ends the roll-out before the test's deadline (its context), and the
// reason names the deletion, not the timeout.
func TestRolloutStageWatch(t *testing.T) {
	c := startCluster(t)
	names := c.addNodes(t, "n", 4, 1)
	d := newSimDaemon(c.client, 200*time.Millisecond, testNewKubelet)
	d.stageDelay = 2 * time.Second
	gone := names[3]
	d.stageSilent[gone] = true
	opts := c.options(t, c.client, d, "2.0.0", cluster.Int(1))
	opts.NodeTimeout = time.Hour
	// The test's deadline, far below the node timeout.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	deleted := make(chan error, 1)
	go func() {
		// Once the roll-out has asked the silent node to stage, and the
		// others have reported (late), the node is deleted.
		for {
			list, err := c.client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
			if err != nil {
				deleted <- err
				return
			}
			asked, staged := false, 0
			for _, n := range list.Items {
				asked = asked || n.Name == gone && n.Annotations[AnnotationStageVersion] == "2.0.0"
				if n.Annotations[AnnotationStagedVersion] == "2.0.0" {
					staged++
				}
			}
			if asked && staged == len(names)-1 {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		deleted <- c.client.CoreV1().Nodes().Delete(ctx, gone, metav1.DeleteOptions{})
	}()
	_, err := Run(ctx, opts)
	if derr := <-deleted; derr != nil {
		t.Fatal(derr)
	}
	// The node was deleted once the others had reported (late): the
	// roll-out took those reports in and stopped only for the deleted
	// node, without waiting for the node timeout.
	var se *StageError
	if !errors.As(err, &se) || len(se.Failed) != 1 || se.Failed[gone] != "the node was deleted" {
		t.Fatalf("want the roll-out refused for the deleted node %s before the test's deadline: %v", gone, err)
	}
	list, err := c.client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range list.Items {
		if s := Observe(&list.Items[i]); s.Unschedulable || s.Phase != PhasePending {
			t.Errorf("node %s changed although staging failed: %+v", s.Name, s)
		}
	}
	if len(list.Items) != len(names)-1 {
		t.Fatalf("%d nodes, want %d", len(list.Items), len(names)-1)
	}
	// Without the deleted node, the same call rolls the bundle out: the
	// others' reports stand (checkDone: every node staged).
	if _, err := Run(ctx, opts); err != nil {
		t.Fatal(err)
	}
	c.checkDone(t, "2.0.0")
}

// TestRolloutStageTimeout: a node that never reports its staging stops
// the roll-out once the node timeout has passed, named with the reason.
func TestRolloutStageTimeout(t *testing.T) {
	c := startCluster(t)
	names := c.addNodes(t, "n", 3, 1)
	d := newSimDaemon(c.client, 200*time.Millisecond, testNewKubelet)
	silent := names[2]
	d.stageSilent[silent] = true
	opts := c.options(t, c.client, d, "2.0.0", cluster.Int(1))
	opts.NodeTimeout = 3 * time.Second
	_, err := Run(context.Background(), opts)
	var se *StageError
	if !errors.As(err, &se) || len(se.Failed) != 1 || se.Failed[silent] != "did not report 2.0.0 staged within 3s" {
		t.Fatalf("want the roll-out refused for the silent node %s: %v", silent, err)
	}
	c.checkWarning(t, silent, "StageFailed", "did not report 2.0.0 staged")
}

// TestRolloutKilled kills the orchestrator (cancels its context) at a
// random point of each of 20 roll-outs and resumes it with a new one; the
// invariant is checked on every node event throughout, and every roll-out
// ends with every node uncordoned at its version.
func TestRolloutKilled(t *testing.T) {
	c := startCluster(t)
	names := c.addNodes(t, "n", 12, 2)
	c.addPods(t, names[2:], 1)
	const budget = 3
	w := watchCordons(t, c.client, budget)
	d := newSimDaemon(c.client, 300*time.Millisecond, testNewKubelet)
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 1))
	runs := 20
	if testing.Short() {
		runs = 5
	}
	ctx := context.Background()
	for i := range runs {
		v := fmt.Sprintf("2.%d.0", i)
		opts := c.options(t, c.client, d, v, cluster.Int(budget))
		kctx, kill := context.WithCancel(ctx)
		after := time.Duration(rng.Int64N(int64(2 * time.Second)))
		timer := time.AfterFunc(after, kill)
		_, err := Run(kctx, opts)
		timer.Stop()
		kill()
		killed := err != nil
		if err != nil && !errors.Is(err, context.Canceled) {
			t.Fatalf("run %d (%s): killed after %s: %v", i, v, after, err)
		}
		// Killed before the plan was recorded, the next run starts afresh;
		// after, it resumes.
		st, _, err := ReadStatus(ctx, c.client)
		if err != nil {
			t.Fatal(err)
		}
		recorded := st != nil && st.Plan.Version == v && st.Plan.Status == StatusRunning
		rep, err := Run(ctx, opts)
		if err != nil {
			t.Fatalf("run %d (%s): resuming: %v", i, v, err)
		}
		if killed && recorded != rep.Resumed {
			t.Errorf("run %d: killed after %s with the plan recorded=%v, the next run resumed=%v", i, after, recorded, rep.Resumed)
		}
		t.Logf("run %d: killed after %s (killed=%v), resumed=%v nothingToDo=%v", i, after.Round(time.Millisecond), killed, rep.Resumed, rep.NothingToDo)
		c.checkDone(t, v)
		rep, err = Run(ctx, opts)
		if err != nil || !rep.NothingToDo {
			t.Fatalf("run %d: a third run: %+v %v", i, rep, err)
		}
		if t.Failed() {
			break
		}
	}
	w.verify(t, c.client)
	t.Logf("peak cordoned: %d control-plane, %d workers (budget %d)", w.peakCP, w.peakW, budget)
}
