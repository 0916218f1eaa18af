package rollout

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"

	"github.com/ferry-k8s/ferry/installer/cluster"
)

// NodeUpgrader is the node side of a roll-out, at the boundary between the
// orchestrator and the node daemons. Once a node's desired version is
// set, Start asks the node to converge to it; the orchestrator then waits
// for the node to report the version and Ready. Start must be idempotent:
// a resumed roll-out calls it again for a node it already asked.
type NodeUpgrader interface {
	Start(ctx context.Context, node, version string) error
}

// AnnotationUpgrader is the NodeUpgrader of a Ferry cluster: every node's
// daemon watches its own Node's AnnotationDesiredVersion, so setting the
// annotation is the whole request and Start does nothing.
type AnnotationUpgrader struct{}

// Start implements NodeUpgrader.
func (AnnotationUpgrader) Start(context.Context, string, string) error { return nil }

// Defaults of Options.
const (
	DefaultDrainTimeout       = 5 * time.Minute
	DefaultNodeTimeout        = 30 * time.Minute
	DefaultEvictionRetryDelay = 5 * time.Second
	// maxDrainTimeout bounds what a Pod's AnnotationDrainTimeout may ask.
	maxDrainTimeout = 24 * time.Hour
	// eventNamespace is where node events go (as the kubelet's do).
	eventNamespace = metav1.NamespaceDefault
)

// Options is one run of a roll-out.
type Options struct {
	// Client talks to the cluster as an administrator.
	Client kubernetes.Interface
	// Target is what every node is brought to.
	Target Target
	// MaxUnavailable is how many workers may be cordoned at once
	// (cluster.yaml spec.upgrade.maxUnavailable); nil: 1.
	MaxUnavailable *cluster.IntOrPercent
	// Upgrader asks a node to converge; nil: AnnotationUpgrader.
	Upgrader NodeUpgrader
	// Snapshotter takes the etcd snapshot before the first change; it is
	// required (R46).
	Snapshotter Snapshotter
	// Force starts the roll-out although the preflight's dry-run found
	// evictions that a PodDisruptionBudget blocks now. The drain still
	// never deletes a Pod against its budget: a budget that stays
	// blocking fails that node after its drain timeout, which stops the
	// roll-out.
	Force bool
	// Rollback says the target is older than the bundle the nodes run
	// (installer upgrade --allow-downgrade): the roll-out records the
	// order nodes check before they move back (OrderRollback), before the
	// first node changes, and withdraws it once every node is done.
	// Without it, nodes refuse an older target.
	Rollback bool
	// DrainTimeout bounds a node's drain, retries of evictions that a
	// budget refuses included; a Pod's AnnotationDrainTimeout may extend
	// it for its node. Default DefaultDrainTimeout.
	DrainTimeout time.Duration
	// NodeTimeout bounds the wait for a node to report the target version
	// and Ready. Default DefaultNodeTimeout.
	NodeTimeout time.Duration
	// EvictionRetryDelay is the pause before retrying an eviction a
	// budget refused. Default DefaultEvictionRetryDelay.
	EvictionRetryDelay time.Duration
	// Preflight, when set, is checked before a roll-out starts (not when
	// one resumes): the caller's own health checks (every API server
	// ready, disk space). Its error refuses the roll-out.
	Preflight func(ctx context.Context) error
	// Log receives progress; nil discards it.
	Log *slog.Logger
}

// Report is the outcome of a run.
type Report struct {
	Target Target
	// NothingToDo is true when every node was already done.
	NothingToDo bool
	// Resumed is true when the run continued a roll-out the ConfigMap
	// recorded.
	Resumed  bool
	Snapshot *SnapshotRecord
	// Blocked are the evictions the preflight's dry-run found blocked.
	Blocked []BlockedEviction
	// Rows is the progress table at the end of the run.
	Rows []Row
}

// Errors callers branch on.
var (
	// ErrOtherRollout: the ConfigMap records an unfinished roll-out to
	// another version.
	ErrOtherRollout = errors.New("another roll-out is unfinished")
	// ErrSuperseded: another orchestrator took the roll-out over.
	ErrSuperseded = errors.New("another orchestrator took over the roll-out")
	// ErrNodeTimeout: a node did not come back within Options.NodeTimeout.
	ErrNodeTimeout = errors.New("node did not come back in time")
)

// NodeError is a node that failed: the step it failed in and why.
type NodeError struct {
	Node string
	Step Step
	Err  error
}

func (e *NodeError) Error() string { return fmt.Sprintf("node %s: %s: %v", e.Node, e.Step, e.Err) }
func (e *NodeError) Unwrap() error { return e.Err }

// StoppedError is a roll-out stopped by failed nodes; nodes already
// upgraded stay so, and the ConfigMap records where it stopped.
type StoppedError struct {
	Target Target
	Failed []*NodeError
}

func (e *StoppedError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "roll-out to %s stopped: %d node(s) failed", e.Target.Version, len(e.Failed))
	for _, f := range e.Failed {
		b.WriteString("; ")
		b.WriteString(f.Error())
	}
	return b.String()
}

// Unwrap gives the nodes' errors.
func (e *StoppedError) Unwrap() []error {
	errs := make([]error, len(e.Failed))
	for i, f := range e.Failed {
		errs[i] = f
	}
	return errs
}

// Run brings every node to o.Target, or continues the roll-out the
// ConfigMap records for it (a run killed at any point is resumed by the
// same call). See the package documentation for the order of things.
func Run(ctx context.Context, o Options) (*Report, error) {
	if err := o.defaults(); err != nil {
		return nil, err
	}
	r := &run{Options: o, id: newID(), report: &Report{Target: o.Target}, log: o.Log}
	rep, err := r.run(ctx)
	if err != nil && ctx.Err() != nil && !errors.Is(err, ctx.Err()) {
		// Cancelled under a program it ran (etcdutl): say so first.
		err = fmt.Errorf("%w: %w", ctx.Err(), err)
	}
	return rep, err
}

func (o *Options) defaults() error {
	if o.Client == nil {
		return errors.New("roll-out: no Kubernetes client")
	}
	if err := checkVersion(o.Target.Version); err != nil {
		return fmt.Errorf("roll-out: target: %w", err)
	}
	if o.MaxUnavailable == nil {
		o.MaxUnavailable = cluster.Int(1)
	}
	if m := o.MaxUnavailable; m.Value < 1 || m.Percent && m.Value > 100 {
		return fmt.Errorf("roll-out: maxUnavailable %s: must be at least 1, or a percentage in 1%%–100%%", m)
	}
	if o.Upgrader == nil {
		o.Upgrader = AnnotationUpgrader{}
	}
	if o.DrainTimeout <= 0 {
		o.DrainTimeout = DefaultDrainTimeout
	}
	if o.NodeTimeout <= 0 {
		o.NodeTimeout = DefaultNodeTimeout
	}
	if o.EvictionRetryDelay <= 0 {
		o.EvictionRetryDelay = DefaultEvictionRetryDelay
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	return nil
}

func newID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

type run struct {
	Options
	id     string
	report *Report
	log    *slog.Logger
	rec    *recorder
}

type result struct {
	node *corev1.Node
	err  *NodeError
	// recheck: the node needs a decision of the main loop again (someone
	// uncordoned it).
	recheck bool
}

func (r *run) run(ctx context.Context) (*Report, error) {
	c := r.Client
	if _, err := c.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx); err != nil {
		return nil, fmt.Errorf("preflight: the API server is not ready: %w", err)
	}
	state, cm, err := r.readState(ctx)
	if err != nil {
		return nil, err
	}
	if state != nil && state.Plan.Version != r.Target.Version && state.Plan.Status != StatusComplete {
		return nil, fmt.Errorf("roll-out to %s: configmap %s/%s records the roll-out to %s (%s, started %s): %w",
			r.Target.Version, ConfigMapNamespace, ConfigMapName, state.Plan.Version, state.Plan.Status, state.Plan.Started.Format(time.RFC3339), ErrOtherRollout)
	}
	if state != nil && state.Plan.Version != r.Target.Version {
		state = nil // a finished roll-out to another version: start anew
	}
	r.report.Resumed = state != nil && state.Plan.Status != StatusComplete

	list, err := c.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("listing nodes: %w", err)
	}
	nodes := make(map[string]*corev1.Node, len(list.Items))
	for i := range list.Items {
		nodes[list.Items[i].Name] = &list.Items[i]
	}
	list = nil
	if len(nodes) == 0 {
		return nil, errors.New("roll-out: the cluster has no nodes")
	}
	if Plan(r.Target, *r.MaxUnavailable, states(nodes), nil).Complete {
		r.report.NothingToDo = true
		if err := WithdrawRollback(ctx, c); err != nil {
			return nil, err
		}
		if state != nil {
			r.report.Snapshot = state.Plan.Snapshot
			if state.Plan.Status != StatusComplete {
				// Killed after the last node and before the record.
				state.Plan.Status, state.Plan.Updated = StatusComplete, time.Now().UTC()
				r.summarize(state, nodes)
				if _, err := r.writeState(ctx, state, cm); err != nil {
					return nil, err
				}
			}
			r.report.Rows = state.Rows(time.Now())
		}
		return r.report, nil
	}

	// Preflight: etcd healthy (when the roll-out starts: a resumed one
	// may find a member restarting for its upgrade), then the evictions
	// the roll-out will ask for, dry-run.
	if hc, ok := r.Snapshotter.(HealthChecker); ok && state == nil {
		if err := hc.CheckHealth(ctx); err != nil {
			return r.report, fmt.Errorf("preflight: %w", err)
		}
	}
	if r.Preflight != nil && state == nil {
		if err := r.Preflight(ctx); err != nil {
			return r.report, fmt.Errorf("preflight: %w", err)
		}
	}
	blocked, err := r.preflight(ctx, nodes)
	r.report.Blocked = blocked
	if err != nil {
		return r.report, err
	}
	if len(blocked) > 0 && !r.Force {
		return r.report, &PreflightError{Blocked: blocked}
	}

	// Staging: the bundle and its images on every node before the
	// first node is drained.
	if err := r.stage(ctx, nodes); err != nil {
		return r.report, err
	}

	if state == nil {
		state = &State{Plan: PlanRecord{Version: r.Target.Version, KubernetesVersion: r.Target.KubernetesVersion, Started: time.Now().UTC()}, Nodes: map[string]NodeRecord{}}
	}
	if state.Plan.Snapshot == nil {
		if r.Snapshotter == nil {
			return r.report, errors.New("roll-out: no etcd snapshotter (a snapshot is taken before the first change)")
		}
		snap, err := r.Snapshotter.Snapshot(ctx, r.Target.Version)
		if err != nil {
			return r.report, fmt.Errorf("etcd snapshot before the roll-out: %w", err)
		}
		r.log.Info("etcd snapshot", "path", snap.Path, "revision", snap.Revision, "sha256", snap.SHA256)
		state.Plan.Snapshot = snap
	}
	r.report.Snapshot = state.Plan.Snapshot
	if r.Rollback {
		if err := OrderRollback(ctx, c, r.Target.Version, r.id, time.Now()); err != nil {
			return r.report, err
		}
		r.log.Info("rollback ordered", "version", r.Target.Version, "configmap", ConfigMapNamespace+"/"+RollbackConfigMap)
		state.Plan.Rollback = true
	}
	state.Plan.Status, state.Plan.StoppedAt, state.Plan.Reason = StatusRunning, nil, ""
	state.Plan.MaxUnavailable = r.MaxUnavailable.String()
	state.Plan.KubernetesVersion = r.Target.KubernetesVersion
	state.Plan.Holder = r.id
	state.Plan.Updated = time.Now().UTC()
	r.summarize(state, nodes)
	cm, err = r.writeState(ctx, state, cm)
	if err != nil {
		return r.report, err
	}
	r.rec = newRecorder(c, state, r.id, r.log)
	r.rec.cm = cm
	recDone := make(chan struct{})
	recCtx, stopRec := context.WithCancel(ctx)
	go func() { r.rec.run(recCtx); close(recDone) }()

	failed, loopErr := r.loop(ctx, nodes)

	stopRec()
	<-recDone
	if ctx.Err() != nil {
		// Killed: the nodes' annotations hold the progress; the next
		// run rewrites the summary from them.
		return r.report, ctx.Err()
	}
	r.rec.mu.Lock()
	st := r.rec.state
	st.Plan.Updated = time.Now().UTC()
	var runErr error
	switch {
	case loopErr != nil:
		st.Plan.Status, st.Plan.Reason = StatusStopped, loopErr.Error()
		runErr = loopErr
	case len(failed) > 0:
		st.Plan.Status = StatusStopped
		se := &StoppedError{Target: r.Target, Failed: failed}
		for _, f := range failed {
			st.Plan.StoppedAt = append(st.Plan.StoppedAt, f.Node)
		}
		st.Plan.Reason = se.Error()
		runErr = se
	default:
		st.Plan.Status = StatusComplete
	}
	r.report.Rows = st.Rows(time.Now())
	complete := st.Plan.Status == StatusComplete
	r.rec.mu.Unlock()
	if err := r.rec.flush(ctx); err != nil {
		return r.report, errors.Join(runErr, err)
	}
	if complete {
		// Every node is back: no node may move back on its own word.
		if err := WithdrawRollback(ctx, c); err != nil {
			return r.report, err
		}
	}
	return r.report, runErr
}

// loop starts nodes as Plan decides and collects them, until every node is
// done, a node failed, or ctx ends.
func (r *run) loop(ctx context.Context, nodes map[string]*corev1.Node) ([]*NodeError, error) {
	inFlight := map[string]bool{}
	results := make(chan result)
	start := func(n *corev1.Node) {
		inFlight[n.Name] = true
		go func() { results <- r.work(ctx, n) }()
	}
	var failed []*NodeError
	var loopErr error
	stopping := false
	for {
		if !stopping && ctx.Err() == nil {
			done, err := r.admit(ctx, nodes, inFlight, start)
			switch {
			case err != nil && ctx.Err() == nil:
				loopErr, stopping = err, true
			case done && len(inFlight) == 0:
				return failed, nil
			}
		}
		if len(inFlight) == 0 {
			return failed, loopErr
		}
		collect := func(res result) {
			delete(inFlight, res.node.Name)
			nodes[res.node.Name] = res.node
			if res.err != nil {
				if ctx.Err() == nil {
					failed = append(failed, res.err)
					r.log.Error("node failed; stopping the roll-out", "node", res.err.Node, "step", res.err.Step, "err", res.err.Err)
				}
				stopping = true
			}
		}
		collect(<-results)
		// Nodes that finished meanwhile are collected too, so that one
		// admission (one count of the cordoned nodes) takes in all of
		// them: nodes of one wave finish close together.
		for more := true; more; {
			select {
			case res := <-results:
				collect(res)
			default:
				more = false
			}
		}
	}
}

// admit counts the cordoned nodes from the API server, plans, cordons
// what the plan takes in (one request after the other, so that the next
// count sees them) and starts the nodes' workers. done: every node is done
// or in flight with nothing more to start.
func (r *run) admit(ctx context.Context, nodes map[string]*corev1.Node, inFlight map[string]bool, start func(*corev1.Node)) (bool, error) {
	for {
		var cordoned *corev1.NodeList
		err := retryAPI(ctx, func() (err error) {
			cordoned, err = r.Client.CoreV1().Nodes().List(ctx, metav1.ListOptions{FieldSelector: fields.OneTermEqualSelector("spec.unschedulable", "true").String()})
			return err
		})
		if err != nil {
			return false, fmt.Errorf("listing cordoned nodes: %w", err)
		}
		now := map[string]bool{}
		for _, n := range cordoned.Items {
			now[n.Name] = true
		}
		st := states(nodes)
		for i := range st {
			st[i].Unschedulable = now[st[i].Name]
		}
		d := Plan(r.Target, *r.MaxUnavailable, st, inFlight)
		for _, name := range d.Resume {
			start(nodes[name])
		}
		again := false
		for _, name := range d.Cordon {
			n, changed, err := r.cordon(ctx, nodes[name])
			if err != nil {
				return false, &NodeError{Node: name, Step: StepCordon, Err: err}
			}
			nodes[name] = n
			if changed {
				// Changed since it was listed: decide again.
				again = true
				break
			}
			start(n)
		}
		if again {
			continue
		}
		if d.Wait != "" && len(inFlight) == 0 {
			return false, fmt.Errorf("roll-out cannot proceed: %s", d.Wait)
		}
		if d.Wait != "" {
			r.log.Debug("waiting", "why", d.Wait)
		}
		return d.Complete, nil
	}
}

func states(nodes map[string]*corev1.Node) []NodeState {
	st := make([]NodeState, 0, len(nodes))
	for _, n := range nodes {
		st = append(st, Observe(n))
	}
	return st
}

// cordon marks n unschedulable and cordoned by the roll-out, on the
// condition that n is still as listed (its resourceVersion). When it is
// not, the fresh node is returned with changed set, and nothing is done
// unless it still needs a cordon.
func (r *run) cordon(ctx context.Context, n *corev1.Node) (*corev1.Node, bool, error) {
	out, err := r.patch(ctx, n, map[string]any{AnnotationCordoned: r.Target.Version, AnnotationPhase: string(PhaseCordoned)}, ptr(true))
	if apierrors.IsConflict(err) {
		fresh, err := r.Client.CoreV1().Nodes().Get(ctx, n.Name, metav1.GetOptions{})
		if err != nil {
			return n, false, fmt.Errorf("reading node %s: %w", n.Name, err)
		}
		return fresh, true, nil
	}
	if err != nil {
		return n, false, err
	}
	r.progress(ctx, out, PhaseCordoned, "Cordoned", "cordoned for the upgrade to "+r.Target.Version)
	return out, false, nil
}

func ptr[T any](v T) *T { return &v }

// patch changes n's annotations (nil value: remove) and, unless
// unschedulable is nil, its cordon, if n's resourceVersion is still the
// one observed (optimistic concurrency: a Conflict error otherwise).
func (r *run) patch(ctx context.Context, n *corev1.Node, annotations map[string]any, unschedulable *bool) (*corev1.Node, error) {
	body := map[string]any{"metadata": map[string]any{"resourceVersion": n.ResourceVersion, "annotations": annotations}}
	if unschedulable != nil {
		if *unschedulable {
			body["spec"] = map[string]any{"unschedulable": true}
		} else {
			body["spec"] = map[string]any{"unschedulable": nil}
		}
	}
	data, err := json.Marshal(body)
	if err != nil {
		return nil, err
	}
	var out *corev1.Node
	err = retryAPI(ctx, func() (err error) {
		out, err = r.Client.CoreV1().Nodes().Patch(ctx, n.Name, types.MergePatchType, data, metav1.PatchOptions{})
		return err
	})
	return out, err
}

// apiRetryWindow is how long a request the API server fails transiently
// (it restarts while its own control plane upgrades) is tried again.
const apiRetryWindow = 3 * time.Minute

// retryAPI runs f again while it fails transiently, for apiRetryWindow.
// A conflict is returned at once: the caller observes again. A patch is
// conditional on the resourceVersion it saw, so a retry of one that was
// applied but whose answer was lost ends in a conflict, never twice.
func retryAPI(ctx context.Context, f func() error) error {
	deadline := time.Now().Add(apiRetryWindow)
	for {
		err := f()
		if err == nil || apierrors.IsConflict(err) || !transient(err) || time.Now().After(deadline) || !pause(ctx) {
			return err
		}
	}
}

// work takes one node through its steps (NextStep, after the cordon) until
// it is done.
func (r *run) work(ctx context.Context, n *corev1.Node) result {
	for {
		step := NextStep(r.Target, Observe(n))
		var next *corev1.Node
		var err error
		switch step {
		case StepNone:
			return result{node: n}
		case StepCordon:
			return result{node: n, recheck: true}
		case StepDrain:
			if err = r.drain(ctx, n.Name); err == nil {
				next, err = r.patch(ctx, n, map[string]any{AnnotationPhase: string(PhaseDrained)}, nil)
				if err == nil {
					r.progress(ctx, next, PhaseDrained, "Drained", "drained")
				}
			}
		case StepSetDesired:
			phase := PhaseUpgrading
			if Observe(n).upgraded(r.Target) {
				phase = PhaseDone
			}
			next, err = r.patch(ctx, n, map[string]any{AnnotationDesiredVersion: r.Target.Version, AnnotationPhase: string(phase), AnnotationTargetRefused: nil}, nil)
			if err == nil {
				r.progress(ctx, next, phase, "DesiredVersion", "desired version set to "+r.Target.Version)
			}
		case StepWait:
			if refusal(n, r.Target.Version) != "" {
				// From an earlier run: the daemon decides again (the
				// rollback may be ordered now).
				var cleared *corev1.Node
				if cleared, err = r.patch(ctx, n, map[string]any{AnnotationTargetRefused: nil}, nil); err != nil {
					break
				}
				n = cleared
			}
			if err = r.Upgrader.Start(ctx, n.Name, r.Target.Version); err == nil {
				next, err = r.wait(ctx, n)
			}
		case StepFinish:
			var unschedulable *bool
			if Observe(n).Cordoned {
				unschedulable = ptr(false)
			}
			next, err = r.patch(ctx, n, map[string]any{AnnotationCordoned: nil, AnnotationPhase: string(PhaseDone)}, unschedulable)
			if err == nil {
				r.progress(ctx, next, PhaseDone, "Upgraded", "at "+r.Target.Version+", Ready and uncordoned")
			}
		}
		if apierrors.IsConflict(err) {
			// Changed since observed: observe again, decide again.
			fresh, gerr := r.Client.CoreV1().Nodes().Get(ctx, n.Name, metav1.GetOptions{})
			if gerr == nil {
				n = fresh
				continue
			}
			err = gerr
		}
		if err != nil {
			if ctx.Err() != nil {
				return result{node: n, err: &NodeError{Node: n.Name, Step: step, Err: ctx.Err()}}
			}
			ne := &NodeError{Node: n.Name, Step: step, Err: err}
			return result{node: r.fail(ctx, n, ne), err: ne}
		}
		n = next
	}
}

// fail records a failed node (its phase annotation, the summary, a
// Warning event); the node stays as it is, cordoned.
func (r *run) fail(ctx context.Context, n *corev1.Node, ne *NodeError) *corev1.Node {
	body, _ := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]any{AnnotationPhase: string(PhaseFailed)}}})
	if out, err := r.Client.CoreV1().Nodes().Patch(ctx, n.Name, types.MergePatchType, body, metav1.PatchOptions{}); err == nil {
		n = out
	}
	r.rec.node(n.Name, func(rec *NodeRecord) {
		rec.Phase, rec.Error, rec.Finished = PhaseFailed, ne.Err.Error(), time.Now().UTC()
	})
	r.event(ctx, n, corev1.EventTypeWarning, "UpgradeFailed", fmt.Sprintf("upgrade to %s failed at %s: %v", r.Target.Version, ne.Step, ne.Err))
	return n
}

// progress records a node's new phase: the summary and an event.
func (r *run) progress(ctx context.Context, n *corev1.Node, phase Phase, reason, message string) {
	r.log.Info("node", "node", n.Name, "phase", phase.String())
	now := time.Now().UTC()
	r.rec.node(n.Name, func(rec *NodeRecord) {
		if rec.Started.IsZero() || rec.Phase == PhaseDone || rec.Phase == PhasePending {
			if phase != PhaseDone || rec.Started.IsZero() {
				rec.Started = now
			}
		}
		rec.Phase, rec.Version, rec.Error = phase, n.Annotations[AnnotationVersion], ""
		if phase == PhaseDone {
			rec.Finished = now
		} else {
			rec.Finished = time.Time{}
		}
	})
	r.event(ctx, n, corev1.EventTypeNormal, reason, message)
}

// event records a Kubernetes Event on the node; a failure to record one
// is logged, never fatal.
func (r *run) event(ctx context.Context, n *corev1.Node, typ, reason, message string) {
	now := metav1.NewTime(time.Now())
	ev := &corev1.Event{
		ObjectMeta:     metav1.ObjectMeta{GenerateName: n.Name + ".ferry-", Namespace: eventNamespace},
		InvolvedObject: corev1.ObjectReference{Kind: "Node", APIVersion: "v1", Name: n.Name, UID: n.UID},
		Reason:         reason, Message: message, Type: typ,
		Source:         corev1.EventSource{Component: "ferry-rollout"},
		FirstTimestamp: now, LastTimestamp: now, Count: 1,
	}
	if _, err := r.Client.CoreV1().Events(eventNamespace).Create(ctx, ev, metav1.CreateOptions{}); err != nil && ctx.Err() == nil {
		r.log.Warn("recording an event", "node", n.Name, "reason", reason, "err", err)
	}
}

// wait watches n until it reports the target version and Ready, for at
// most NodeTimeout.
func (r *run) wait(ctx context.Context, n *corev1.Node) (*corev1.Node, error) {
	wctx, cancel := context.WithTimeout(ctx, r.NodeTimeout)
	defer cancel()
	nodes := r.Client.CoreV1().Nodes()
	for NextStep(r.Target, Observe(n)) == StepWait {
		if reason := refusal(n, r.Target.Version); reason != "" {
			return n, fmt.Errorf("%w %s: %s", ErrRefused, r.Target.Version, reason)
		}
		w, err := nodes.Watch(wctx, metav1.ListOptions{FieldSelector: fields.OneTermEqualSelector("metadata.name", n.Name).String(), ResourceVersion: n.ResourceVersion})
		if err == nil {
			n, err = r.watchNode(w, n)
			w.Stop()
		}
		switch {
		case ctx.Err() != nil:
			return n, ctx.Err()
		case wctx.Err() != nil:
			s := Observe(n)
			return n, fmt.Errorf("%w: not at version %s and Ready within %s (reports version %q, kubelet %s, Ready=%v)", ErrNodeTimeout, r.Target.Version, r.NodeTimeout, s.Version, s.KubeletVersion, s.Ready)
		case apierrors.IsGone(err) || apierrors.IsResourceExpired(err) || err == errWatchClosed:
			fresh, gerr := nodes.Get(wctx, n.Name, metav1.GetOptions{})
			if gerr != nil {
				if wctx.Err() != nil || transient(gerr) && pause(wctx) {
					continue
				}
				return n, fmt.Errorf("reading node %s: %w", n.Name, gerr)
			}
			n = fresh
		case err != nil:
			// The API server restarts while its own node upgrades: wait
			// for it within the node's timeout.
			if transient(err) && pause(wctx) {
				continue
			}
			return n, fmt.Errorf("watching node %s: %w", n.Name, err)
		}
	}
	return n, nil
}

var errWatchClosed = errors.New("watch closed")

// transient says whether an API error may pass by itself: the server
// unreachable, restarting or overloaded. A freshly restarted API server
// also refuses (403, 401) until its authorizer and authenticators have
// synced, so only a malformed request or a node that is gone are final.
func transient(err error) bool {
	return !(apierrors.IsNotFound(err) || apierrors.IsBadRequest(err) || apierrors.IsInvalid(err) || apierrors.IsMethodNotSupported(err))
}

// pause waits a little before the next try; false when ctx ends first.
func pause(ctx context.Context) bool {
	select {
	case <-ctx.Done():
		return false
	case <-time.After(2 * time.Second):
		return true
	}
}

func (r *run) watchNode(w watch.Interface, n *corev1.Node) (*corev1.Node, error) {
	for ev := range w.ResultChan() {
		switch ev.Type {
		case watch.Added, watch.Modified:
			if nn, ok := ev.Object.(*corev1.Node); ok {
				n = nn
				if NextStep(r.Target, Observe(n)) != StepWait || refusal(n, r.Target.Version) != "" {
					return n, nil
				}
			}
		case watch.Deleted:
			return n, fmt.Errorf("node %s was deleted", n.Name)
		case watch.Error:
			return n, apierrors.FromObject(ev.Object)
		}
	}
	return n, errWatchClosed
}

// summarize rewrites the summary of every node from its annotations.
func (r *run) summarize(s *State, nodes map[string]*corev1.Node) {
	names := make([]string, 0, len(nodes))
	for name := range nodes {
		names = append(names, name)
	}
	sort.Strings(names)
	for name := range s.Nodes {
		if _, ok := nodes[name]; !ok {
			delete(s.Nodes, name) // gone from the cluster
		}
	}
	for _, name := range names {
		st := Observe(nodes[name])
		rec := s.Nodes[name]
		rec.Phase, rec.Version = st.Phase, st.Version
		if NextStep(r.Target, st) != StepNone && rec.Phase == PhaseDone {
			rec.Phase = PhasePending // done in an earlier roll-out
		}
		if NextStep(r.Target, st) == StepNone && rec.Phase != PhaseDone {
			rec.Phase = PhaseDone
		}
		s.Nodes[name] = rec
	}
}

// readState reads the ConfigMap; nil, nil when there is none.
func (r *run) readState(ctx context.Context) (*State, *corev1.ConfigMap, error) {
	cm, err := r.Client.CoreV1().ConfigMaps(ConfigMapNamespace).Get(ctx, ConfigMapName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("reading configmap %s/%s: %w", ConfigMapNamespace, ConfigMapName, err)
	}
	s, err := ParseState(cm.Data)
	if err != nil {
		return nil, nil, err
	}
	return s, cm, nil
}

// writeState creates the ConfigMap, or updates the one read (cm) on the
// condition that it is unchanged since.
func (r *run) writeState(ctx context.Context, s *State, cm *corev1.ConfigMap) (*corev1.ConfigMap, error) {
	cms := r.Client.CoreV1().ConfigMaps(ConfigMapNamespace)
	var out *corev1.ConfigMap
	var err error
	if cm == nil {
		out, err = cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: ConfigMapName, Namespace: ConfigMapNamespace}, Data: s.Data()}, metav1.CreateOptions{})
	} else {
		cm = cm.DeepCopy()
		cm.Data = s.Data()
		out, err = cms.Update(ctx, cm, metav1.UpdateOptions{})
	}
	if apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err) {
		return nil, fmt.Errorf("writing configmap %s/%s: changed since read (another orchestrator?): %w", ConfigMapNamespace, ConfigMapName, ErrSuperseded)
	}
	if err != nil {
		return nil, fmt.Errorf("writing configmap %s/%s: %w", ConfigMapNamespace, ConfigMapName, err)
	}
	return out, nil
}

// ReadStatus reads the roll-out the ConfigMap records (nil when there is
// none) and its progress table.
func ReadStatus(ctx context.Context, c kubernetes.Interface) (*State, []Row, error) {
	r := &run{Options: Options{Client: c}}
	s, _, err := r.readState(ctx)
	if err != nil || s == nil {
		return nil, nil, err
	}
	return s, s.Rows(time.Now()), nil
}

var _ io.Writer = logWriter{}

// logWriter turns the drain helper's progress lines into log records.
type logWriter struct {
	log  *slog.Logger
	node string
}

func (w logWriter) Write(p []byte) (int, error) {
	for line := range strings.SplitSeq(strings.TrimSpace(string(p)), "\n") {
		if line != "" {
			w.log.Debug("drain", "node", w.node, "msg", line)
		}
	}
	return len(p), nil
}
