package rollout

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
)

// The node side of roll-outs: a node's daemon observes its own Node and
// the bundle it targets, and NodeStep says what it does about it. A round
// of the daemon is a few steps: an effect whose outcome decides what is
// reported (staging, fetching and checking the desired bundle, applying)
// is carried out, recorded in the input (NodeInput.Record), and NodeStep
// asked again, until it names a report, a refusal, nothing, or a failure:
//
//	stage asked ─▶ NodeStage ─▶ NodeReportStaged | NodeReportStageError
//	desired ≠ current ─▶ NodeFetch ─▶ NodeRefuse
//	                              └─▶ NodeMove ─▶ NodeReportVersion
//	not reported, or a refusal to withdraw ─▶ NodeApply ─▶ NodeReportVersion
//
// An apply already running (Busy) ends the round with nothing written:
// the next round, which observes again, carries on.

// MaxNodeSteps bounds the steps of a round: at most fetch, move and
// report (TestNodeStepRules holds NodeStep to it).
const MaxNodeSteps = 4

// NodeActionKind is what a node's daemon does next.
type NodeActionKind string

// The actions of a node's daemon.
const (
	// NodeIdle: nothing to do (or nothing more this round).
	NodeIdle NodeActionKind = "idle"
	// NodeStage: stage Version (fetch and verify the bundle, serve it on
	// a control plane, pull the images), then Record the outcome.
	NodeStage NodeActionKind = "stage"
	// NodeReportStaged: write Patch (the staged version).
	NodeReportStaged NodeActionKind = "report-staged"
	// NodeReportStageError: write Patch (the staging's failure).
	NodeReportStageError NodeActionKind = "report-stage-error"
	// NodeFetch: have the bundle Version here (fetched from the content
	// services and verified when it is not), decide whether the node may
	// move to it, and Record the file and the refusal, if any. A failure
	// to fetch or decide ends the round with an error, nothing written.
	NodeFetch NodeActionKind = "fetch"
	// NodeRefuse: the node does not move to Version, for Reason; write
	// Patch (AnnotationTargetRefused) unless it is nil (already reported).
	NodeRefuse NodeActionKind = "refuse"
	// NodeMove: make File (the bundle Version) the node's target and
	// apply, then Record the apply's outcome.
	NodeMove NodeActionKind = "move"
	// NodeApply: apply the node's target (Version), then Record the
	// outcome.
	NodeApply NodeActionKind = "apply"
	// NodeReportVersion: the node converged to Version; write Patch (the
	// version, and no refusal).
	NodeReportVersion NodeActionKind = "report-version"
	// NodeFail: the round failed with Err, nothing is reported.
	NodeFail NodeActionKind = "fail"
)

// NodeAction is one step of a node's daemon.
type NodeAction struct {
	Kind NodeActionKind
	// Version is the bundle version the action is about.
	Version string
	// File is the bundle's file (NodeMove).
	File string
	// Reason is why the node refuses Version (NodeRefuse).
	Reason string
	// Patch is the node's annotations to write (a merge patch: nil
	// removes one); nil: nothing to write.
	Patch map[string]any
	// Err is why the round failed (NodeFail).
	Err error
}

// NodeInput is what a node's daemon observed: its Node's annotations and
// the bundle it targets; and the outcomes of the effects it carried out
// this round, recorded as NodeStep asked for them.
type NodeInput struct {
	Desired    string // AnnotationDesiredVersion
	Reported   string // AnnotationVersion
	Stage      string // AnnotationStageVersion
	Staged     string // AnnotationStagedVersion
	StageError string // AnnotationStageError
	Refused    string // AnnotationTargetRefused
	// Current is the version of the bundle the node targets.
	Current string

	// Staging is the outcome of NodeStage; nil: not tried this round.
	Staging *NodeResult
	// Target is the desired bundle, here and checked (NodeFetch); nil:
	// not yet this round.
	Target *NodeTarget
	// Applied is the outcome of NodeMove or NodeApply; nil: no apply
	// this round.
	Applied *NodeResult
}

// NodeResult is the outcome of an effect a node's daemon carried out.
type NodeResult struct {
	// Busy: another apply was running, nothing was done.
	Busy bool
	// Err: the effect failed.
	Err error
	// File is the fetched bundle's file, and Refused why the node may
	// not move to it, or "" (NodeFetch).
	File    string
	Refused string
}

// NodeTarget is the desired bundle, here and checked.
type NodeTarget struct {
	Version string
	File    string
	// Refused is why the node may not move to it (an older bundle
	// without the orchestrator's rollback order, a Kubernetes skew, …),
	// or "".
	Refused string
}

// ObserveNodeInput reads a node's roll-out annotations; current is the
// version of the bundle the node targets.
func ObserveNodeInput(n *corev1.Node, current string) NodeInput {
	a := n.Annotations
	return NodeInput{
		Desired:    a[AnnotationDesiredVersion],
		Reported:   a[AnnotationVersion],
		Stage:      a[AnnotationStageVersion],
		Staged:     a[AnnotationStagedVersion],
		StageError: a[AnnotationStageError],
		Refused:    a[AnnotationTargetRefused],
		Current:    current,
	}
}

// Record takes in the outcome r of a, an effect NodeStep asked for.
func (in *NodeInput) Record(a NodeAction, r NodeResult) {
	switch a.Kind {
	case NodeStage:
		in.Staging = &r
	case NodeFetch:
		in.Target = &NodeTarget{Version: a.Version, File: r.File, Refused: r.Refused}
	case NodeMove:
		// The target was moved before the apply: the node targets it,
		// converged or not.
		in.Current = a.Version
		in.Applied = &r
	case NodeApply:
		in.Applied = &r
	}
}

// NodeStep is the next thing a node's daemon does: a pure function of
// what it observed and did this round.
//
// In order: staging, when the orchestrator asks for a version the node
// neither runs, is asked to converge to, has staged, nor failed to stage
// (the orchestrator clears a failure to ask again); then the desired
// version, when the node targets another: the node moves to it unless it
// refuses (an older bundle needs the orchestrator's rollback order, which
// no node can write); then the report of the version the node targets,
// after an apply, when it is not the one reported or a refusal stands.
func NodeStep(in NodeInput) NodeAction {
	switch {
	case in.Applied != nil && in.Applied.Busy:
		return NodeAction{Kind: NodeIdle, Version: in.Current} // the next round reports
	case in.Applied != nil && in.Applied.Err != nil:
		return NodeAction{Kind: NodeFail, Version: in.Current, Err: fmt.Errorf("converging to %s: %w", in.Current, in.Applied.Err)}
	case in.Applied != nil:
		return NodeAction{Kind: NodeReportVersion, Version: in.Current,
			Patch: map[string]any{AnnotationVersion: in.Current, AnnotationTargetRefused: nil}}
	case in.Staging != nil && in.Staging.Busy:
		return NodeAction{Kind: NodeIdle, Version: in.Stage} // the next round stages
	case in.Staging != nil && in.Staging.Err != nil:
		return NodeAction{Kind: NodeReportStageError, Version: in.Stage,
			Patch: map[string]any{AnnotationStageError: in.Stage + ": " + in.Staging.Err.Error()}}
	case in.Staging != nil:
		return NodeAction{Kind: NodeReportStaged, Version: in.Stage,
			Patch: map[string]any{AnnotationStagedVersion: in.Stage, AnnotationStageError: nil}}
	case in.Stage != "" && in.Stage != in.Current && in.Desired != in.Stage && in.Staged != in.Stage && in.StageError == "":
		return NodeAction{Kind: NodeStage, Version: in.Stage}
	case in.Desired != "" && in.Desired != in.Current:
		t := in.Target
		switch {
		case t == nil || t.Version != in.Desired:
			return NodeAction{Kind: NodeFetch, Version: in.Desired}
		case t.Refused != "":
			a := NodeAction{Kind: NodeRefuse, Version: in.Desired, Reason: t.Refused}
			if msg := in.Desired + ": " + t.Refused; in.Refused != msg {
				a.Patch = map[string]any{AnnotationTargetRefused: msg}
			}
			return a
		default:
			return NodeAction{Kind: NodeMove, Version: in.Desired, File: t.File}
		}
	case in.Reported == in.Current && in.Refused == "":
		return NodeAction{Kind: NodeIdle, Version: in.Current}
	default:
		return NodeAction{Kind: NodeApply, Version: in.Current}
	}
}
