package rollout

import (
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/ferry-k8s/ferry/installer/cluster"
)

// Where a roll-out keeps its state in the cluster.
const (
	// ConfigMapNamespace and ConfigMapName name the ConfigMap that holds
	// the plan (target, Kubernetes version, maxUnavailable, snapshot) and
	// a summary of every node's phase.
	ConfigMapNamespace = "kube-system"
	ConfigMapName      = "ferry-rollout"

	// AnnotationDesiredVersion is the bundle version a node's daemon
	// converges the node to; the orchestrator sets it once the node is
	// drained.
	AnnotationDesiredVersion = "ferry.dev/desired-version"
	// AnnotationVersion is the bundle version the node's daemon reports
	// once the node runs it.
	AnnotationVersion = "ferry.dev/version"
	// AnnotationPhase is the node's phase in the roll-out (see Phase),
	// written in the same request as the change it describes.
	AnnotationPhase = "ferry.dev/rollout-phase"
	// AnnotationCordoned marks a node cordoned by the roll-out (value:
	// the target version), written in the same request as the cordon: only
	// such nodes are uncordoned at the end; a node someone else cordoned
	// stays cordoned.
	AnnotationCordoned = "ferry.dev/rollout-cordoned"
	// AnnotationDrainTimeout on a Pod gives its workload longer to leave
	// than Options.DrainTimeout (a Go duration, "15m"): the node's drain
	// waits for the longest of them.
	AnnotationDrainTimeout = "ferry.dev/drain-timeout"

	// LabelControlPlane marks control-plane nodes (kubeadm's role label).
	LabelControlPlane = "node-role.kubernetes.io/control-plane"
)

// Phase is a node's place in a roll-out, as AnnotationPhase records it.
//
//	(pending) ─cordon─▶ cordoned ─drain─▶ drained ─set desired─▶ upgrading
//	   ─node reports the target version and Ready─▶ (uncordon) ─▶ done
//	any step that fails or times out ─▶ failed (the node stays cordoned;
//	the next run resumes it at the step it failed in)
type Phase string

// The phases of a node.
const (
	PhasePending   Phase = ""
	PhaseCordoned  Phase = "cordoned"
	PhaseDrained   Phase = "drained"
	PhaseUpgrading Phase = "upgrading"
	PhaseDone      Phase = "done"
	PhaseFailed    Phase = "failed"
)

func (p Phase) String() string {
	if p == PhasePending {
		return "pending"
	}
	return string(p)
}

// Target is what the roll-out brings every node to.
type Target struct {
	// Version is the bundle version ("1.3.0").
	Version string
	// KubernetesVersion is the kubelet version a node reports when it runs
	// the bundle ("v1.36.3"); empty: not checked.
	KubernetesVersion string
}

// NodeState is what the plan needs to know of a node, observed from its
// Node object.
type NodeState struct {
	Name          string
	ControlPlane  bool
	Unschedulable bool
	// Cordoned is true when the roll-out cordoned the node
	// (AnnotationCordoned).
	Cordoned       bool
	Ready          bool
	Version        string // AnnotationVersion
	Desired        string // AnnotationDesiredVersion
	KubeletVersion string
	Phase          Phase
}

// Observe reads a Node.
func Observe(n *corev1.Node) NodeState {
	s := NodeState{
		Name:           n.Name,
		Unschedulable:  n.Spec.Unschedulable,
		Version:        n.Annotations[AnnotationVersion],
		Desired:        n.Annotations[AnnotationDesiredVersion],
		KubeletVersion: n.Status.NodeInfo.KubeletVersion,
		Phase:          Phase(n.Annotations[AnnotationPhase]),
	}
	_, s.ControlPlane = n.Labels[LabelControlPlane]
	_, s.Cordoned = n.Annotations[AnnotationCordoned]
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			s.Ready = c.Status == corev1.ConditionTrue
		}
	}
	return s
}

// upgraded: the node runs the target and is Ready.
func (n NodeState) upgraded(t Target) bool {
	return n.Version == t.Version && n.Ready && (t.KubernetesVersion == "" || n.KubeletVersion == t.KubernetesVersion)
}

// Step is the next thing to do to one node.
type Step string

// The steps, in the order a node goes through them.
const (
	// StepNone: the node is done.
	StepNone Step = ""
	// StepCordon marks the node unschedulable; the only step that takes
	// from the budget of unavailable nodes.
	StepCordon Step = "cordon"
	// StepDrain evicts the node's pods.
	StepDrain Step = "drain"
	// StepSetDesired sets AnnotationDesiredVersion.
	StepSetDesired Step = "set-desired"
	// StepWait waits for the node to report the target version and Ready.
	StepWait Step = "wait"
	// StepFinish uncordons the node if the roll-out cordoned it and
	// records it done.
	StepFinish Step = "finish"
)

// NextStep is the next step for node n towards t: a pure function of the
// observed node, so that a roll-out killed at any point resumes each node
// where it stands.
func NextStep(t Target, n NodeState) Step {
	up := n.upgraded(t)
	switch {
	case up && n.Desired == t.Version && !n.Cordoned && n.Phase == PhaseDone:
		return StepNone
	case up && n.Desired == t.Version:
		return StepFinish
	case up:
		// Already at the target (a node joined with the new bundle): no
		// drain, only the record that it is meant to stay there.
		return StepSetDesired
	case !n.Unschedulable:
		return StepCordon
	case n.Desired == t.Version:
		return StepWait
	case n.Phase == PhaseDrained:
		return StepSetDesired
	default:
		return StepDrain
	}
}

// Decision is what the orchestrator does next.
type Decision struct {
	// Cordon are nodes to take into the roll-out now, in this order
	// (cordon, then the rest of their steps).
	Cordon []string
	// Resume are nodes whose next step takes nothing from the budget:
	// already cordoned, or already at the target.
	Resume []string
	// Complete is true when every node is done.
	Complete bool
	// Wait says why no node can start although some are not done (the
	// budget is used up by nodes in flight or cordoned by someone else).
	Wait string
}

// Plan decides which nodes to start, from the target, the observed nodes
// (their Unschedulable fields freshly listed from the API server) and the
// nodes already being worked on (inFlight). It is pure.
//
// Control-plane nodes go first, one at a time; workers follow once every
// control-plane node is done. A node is cordoned only while the cordoned
// nodes of its kind (whoever cordoned them) stay within the budget: one
// control-plane node, maxUnavailable workers. Nodes already cordoned, or
// already at the target, are resumed without taking from the budget.
func Plan(t Target, maxUnavailable cluster.IntOrPercent, nodes []NodeState, inFlight map[string]bool) Decision {
	var cps, workers []NodeState
	for _, n := range nodes {
		if n.ControlPlane {
			cps = append(cps, n)
		} else {
			workers = append(workers, n)
		}
	}
	byName := func(a, b NodeState) int { return strings.Compare(a.Name, b.Name) }
	slices.SortFunc(cps, byName)
	slices.SortFunc(workers, byName)

	var d Decision
	// Control plane: one at a time, those already under way (or needing no
	// cordon) before those that need one.
	var first string
	for _, n := range cps {
		step := NextStep(t, n)
		switch {
		case step == StepNone:
			continue
		case inFlight[n.Name]:
			d.Wait = fmt.Sprintf("control-plane node %s is being upgraded", n.Name)
			return d
		case step != StepCordon:
			if len(d.Resume) == 0 {
				d.Resume = []string{n.Name}
			}
		case first == "":
			first = n.Name
		}
	}
	switch {
	case len(d.Resume) > 0:
		return d
	case first == "":
	case cordoned(cps) >= 1:
		d.Wait = fmt.Sprintf("%d control-plane node(s) cordoned (%s): at most one may be", cordoned(cps), cordonedNames(cps))
		return d
	default:
		d.Cordon = []string{first}
		return d
	}

	budget := maxUnavailable.Of(len(workers))
	used := cordoned(workers)
	pending := 0
	for _, n := range workers {
		step := NextStep(t, n)
		if step == StepNone {
			continue
		}
		pending++
		if inFlight[n.Name] {
			continue
		}
		if step != StepCordon {
			d.Resume = append(d.Resume, n.Name)
			continue
		}
		if used < budget {
			d.Cordon = append(d.Cordon, n.Name)
			used++
		}
	}
	switch {
	case pending == 0:
		d.Complete = true
	case len(d.Cordon) == 0 && len(d.Resume) == 0:
		d.Wait = fmt.Sprintf("%d of at most %d workers cordoned (%s)", used, budget, cordonedNames(workers))
	}
	return d
}

func cordoned(nodes []NodeState) int {
	c := 0
	for _, n := range nodes {
		if n.Unschedulable {
			c++
		}
	}
	return c
}

func cordonedNames(nodes []NodeState) string {
	var names []string
	for _, n := range nodes {
		if n.Unschedulable {
			names = append(names, n.Name)
		}
	}
	if len(names) > 5 {
		names = append(names[:5], fmt.Sprintf("and %d more", len(names)-5))
	}
	return strings.Join(names, ", ")
}
