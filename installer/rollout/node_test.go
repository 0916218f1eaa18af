package rollout

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// nodeEffects are the outcomes of the effects a daemon carries out in a
// round, as a test plays them.
type nodeEffects struct {
	stage NodeResult
	fetch map[string]NodeResult // by version
	apply NodeResult
}

// nodeRound plays one round of a node's daemon: NodeStep, then the
// effect's outcome recorded, until a step needs no effect (at most
// MaxNodeSteps, the daemon's bound). It returns every step.
func nodeRound(t *testing.T, in NodeInput, fx nodeEffects) []NodeAction {
	t.Helper()
	var trace []NodeAction
	for range MaxNodeSteps {
		a := NodeStep(in)
		trace = append(trace, a)
		switch a.Kind {
		case NodeStage:
			in.Record(a, fx.stage)
		case NodeFetch:
			r, ok := fx.fetch[a.Version]
			if !ok {
				r = NodeResult{File: "ferry-kubernetes-" + a.Version + ".iso"}
			}
			in.Record(a, r)
		case NodeMove, NodeApply:
			in.Record(a, fx.apply)
		default:
			return trace
		}
	}
	t.Fatalf("no decision after %d steps: %s", MaxNodeSteps, describeAll(trace))
	return nil
}

// describe is one step as the table spells it: kind, version, then what
// it carries (file, reason, patch, error).
func describe(a NodeAction) string {
	s := string(a.Kind) + " " + a.Version
	if a.File != "" {
		s += " file=" + a.File
	}
	if a.Reason != "" {
		s += " reason=" + a.Reason
	}
	if a.Patch != nil {
		b, err := json.Marshal(a.Patch) // sorted keys
		if err != nil {
			panic(err)
		}
		s += " patch=" + string(b)
	}
	if a.Err != nil {
		s += " err=" + a.Err.Error()
	}
	return s
}

func describeAll(trace []NodeAction) string {
	var out []string
	for _, a := range trace {
		out = append(out, describe(a))
	}
	return strings.Join(out, " → ")
}

// TestNodeStep: every branch of a node daemon's round, as the sequence of
// steps it takes from what it observed and the outcomes of its effects.
// The node targets 1.1.0 in every case.
func TestNodeStep(t *testing.T) {
	const tooOld = "bundle 1.0.0 is older than the installed 1.1.0, and no rollback to it is ordered"
	at := func(in NodeInput) NodeInput { in.Current = "1.1.0"; return in }
	boom := errors.New("boom")
	refusedOld := map[string]NodeResult{"1.0.0": {File: "ferry-kubernetes-1.0.0.iso", Refused: tooOld}}
	for _, tc := range []struct {
		name string
		in   NodeInput
		fx   nodeEffects
		want []string
	}{
		// Idle.
		{"idle: converged and reported", at(NodeInput{Desired: "1.1.0", Reported: "1.1.0"}), nodeEffects{},
			[]string{"idle 1.1.0"}},
		{"idle: no roll-out ever, reported", at(NodeInput{Reported: "1.1.0"}), nodeEffects{},
			[]string{"idle 1.1.0"}},

		// Reporting the version the node targets, after an apply.
		{"a new node reports its version", at(NodeInput{}), nodeEffects{},
			[]string{"apply 1.1.0", `report-version 1.1.0 patch={"ferry.dev/target-refused":null,"ferry.dev/version":"1.1.0"}`}},
		{"desired == current, not reported yet", at(NodeInput{Desired: "1.1.0", Reported: "1.0.0"}), nodeEffects{},
			[]string{"apply 1.1.0", `report-version 1.1.0 patch={"ferry.dev/target-refused":null,"ferry.dev/version":"1.1.0"}`}},
		{"no report while an apply runs", at(NodeInput{Desired: "1.1.0", Reported: "1.0.0"}), nodeEffects{apply: NodeResult{Busy: true}},
			[]string{"apply 1.1.0", "idle 1.1.0"}},
		{"no report of a failed apply", at(NodeInput{Desired: "1.1.0", Reported: "1.0.0"}), nodeEffects{apply: NodeResult{Err: boom}},
			[]string{"apply 1.1.0", "fail 1.1.0 err=converging to 1.1.0: boom"}},

		// Staging.
		{"staging asked", at(NodeInput{Desired: "1.1.0", Reported: "1.1.0", Stage: "1.2.0"}), nodeEffects{},
			[]string{"stage 1.2.0", `report-staged 1.2.0 patch={"ferry.dev/stage-error":null,"ferry.dev/staged-version":"1.2.0"}`}},
		{"staging asked, fails", at(NodeInput{Desired: "1.1.0", Reported: "1.1.0", Stage: "1.2.0"}), nodeEffects{stage: NodeResult{Err: errors.New("fetching ferry-kubernetes-1.2.0.iso: no route")}},
			[]string{"stage 1.2.0", `report-stage-error 1.2.0 patch={"ferry.dev/stage-error":"1.2.0: fetching ferry-kubernetes-1.2.0.iso: no route"}`}},
		{"staging asked while an apply runs: the next round", at(NodeInput{Desired: "1.1.0", Reported: "1.1.0", Stage: "1.2.0"}), nodeEffects{stage: NodeResult{Busy: true}},
			[]string{"stage 1.2.0", "idle 1.2.0"}},
		{"staging done", at(NodeInput{Desired: "1.1.0", Reported: "1.1.0", Stage: "1.2.0", Staged: "1.2.0"}), nodeEffects{},
			[]string{"idle 1.1.0"}},
		{"staging failed: stands until the orchestrator asks again", at(NodeInput{Desired: "1.1.0", Reported: "1.1.0", Stage: "1.2.0", StageError: "1.2.0: no route"}), nodeEffects{},
			[]string{"idle 1.1.0"}},
		{"a failure of another version stands too", at(NodeInput{Desired: "1.1.0", Reported: "1.1.0", Stage: "1.3.0", StageError: "1.2.0: no route"}), nodeEffects{},
			[]string{"idle 1.1.0"}},
		{"staging the version the node targets: nothing to stage", at(NodeInput{Desired: "1.1.0", Reported: "1.1.0", Stage: "1.1.0"}), nodeEffects{},
			[]string{"idle 1.1.0"}},
		{"staging a version already desired: the move instead", at(NodeInput{Desired: "1.2.0", Reported: "1.1.0", Stage: "1.2.0"}), nodeEffects{},
			[]string{"fetch 1.2.0", "move 1.2.0 file=ferry-kubernetes-1.2.0.iso",
				`report-version 1.2.0 patch={"ferry.dev/target-refused":null,"ferry.dev/version":"1.2.0"}`}},
		{"staging comes before another desired version", at(NodeInput{Desired: "1.2.0", Reported: "1.1.0", Stage: "1.3.0"}), nodeEffects{},
			[]string{"stage 1.3.0", `report-staged 1.3.0 patch={"ferry.dev/stage-error":null,"ferry.dev/staged-version":"1.3.0"}`}},
		{"staged, then the desired version", at(NodeInput{Desired: "1.2.0", Reported: "1.1.0", Stage: "1.2.0", Staged: "1.2.0"}), nodeEffects{},
			[]string{"fetch 1.2.0", "move 1.2.0 file=ferry-kubernetes-1.2.0.iso",
				`report-version 1.2.0 patch={"ferry.dev/target-refused":null,"ferry.dev/version":"1.2.0"}`}},

		// The desired version.
		{"desired newer", at(NodeInput{Desired: "1.2.0", Reported: "1.1.0"}), nodeEffects{},
			[]string{"fetch 1.2.0", "move 1.2.0 file=ferry-kubernetes-1.2.0.iso",
				`report-version 1.2.0 patch={"ferry.dev/target-refused":null,"ferry.dev/version":"1.2.0"}`}},
		{"desired newer, moved while an apply runs: the next round reports", at(NodeInput{Desired: "1.2.0", Reported: "1.1.0"}), nodeEffects{apply: NodeResult{Busy: true}},
			[]string{"fetch 1.2.0", "move 1.2.0 file=ferry-kubernetes-1.2.0.iso", "idle 1.2.0"}},
		{"the next round, targeting it", NodeInput{Desired: "1.2.0", Reported: "1.1.0", Current: "1.2.0"}, nodeEffects{},
			[]string{"apply 1.2.0", `report-version 1.2.0 patch={"ferry.dev/target-refused":null,"ferry.dev/version":"1.2.0"}`}},
		{"desired newer, the apply fails", at(NodeInput{Desired: "1.2.0", Reported: "1.1.0"}), nodeEffects{apply: NodeResult{Err: boom}},
			[]string{"fetch 1.2.0", "move 1.2.0 file=ferry-kubernetes-1.2.0.iso", "fail 1.2.0 err=converging to 1.2.0: boom"}},
		{"desired newer, too far (Kubernetes skew)", at(NodeInput{Desired: "2.0.0", Reported: "1.1.0"}),
			nodeEffects{fetch: map[string]NodeResult{"2.0.0": {File: "ferry-kubernetes-2.0.0.iso", Refused: "upgrade one minor version at a time"}}},
			[]string{"fetch 2.0.0", `refuse 2.0.0 reason=upgrade one minor version at a time patch={"ferry.dev/target-refused":"2.0.0: upgrade one minor version at a time"}`}},
		{"desired older, no rollback order", at(NodeInput{Desired: "1.0.0", Reported: "1.1.0"}), nodeEffects{fetch: refusedOld},
			[]string{"fetch 1.0.0", `refuse 1.0.0 reason=` + tooOld + ` patch={"ferry.dev/target-refused":"1.0.0: ` + tooOld + `"}`}},
		{"desired older, the refusal already reported: not written again", at(NodeInput{Desired: "1.0.0", Reported: "1.1.0", Refused: "1.0.0: " + tooOld}), nodeEffects{fetch: refusedOld},
			[]string{"fetch 1.0.0", "refuse 1.0.0 reason=" + tooOld}},
		{"a refusal with another reason is rewritten", at(NodeInput{Desired: "1.0.0", Reported: "1.1.0", Refused: "1.0.0: something else"}), nodeEffects{fetch: refusedOld},
			[]string{"fetch 1.0.0", `refuse 1.0.0 reason=` + tooOld + ` patch={"ferry.dev/target-refused":"1.0.0: ` + tooOld + `"}`}},
		{"desired older, rollback ordered", at(NodeInput{Desired: "1.0.0", Reported: "1.1.0", Refused: "1.0.0: " + tooOld}), nodeEffects{},
			[]string{"fetch 1.0.0", "move 1.0.0 file=ferry-kubernetes-1.0.0.iso",
				`report-version 1.0.0 patch={"ferry.dev/target-refused":null,"ferry.dev/version":"1.0.0"}`}},

		// A refusal withdrawn.
		{"refusal withdrawn: desired back to the current version", at(NodeInput{Desired: "1.1.0", Reported: "1.1.0", Refused: "1.0.0: " + tooOld}), nodeEffects{},
			[]string{"apply 1.1.0", `report-version 1.1.0 patch={"ferry.dev/target-refused":null,"ferry.dev/version":"1.1.0"}`}},
		{"refusal withdrawn: desired removed", at(NodeInput{Reported: "1.1.0", Refused: "1.0.0: " + tooOld}), nodeEffects{},
			[]string{"apply 1.1.0", `report-version 1.1.0 patch={"ferry.dev/target-refused":null,"ferry.dev/version":"1.1.0"}`}},
		{"refusal withdrawn: desired changed to a newer version", at(NodeInput{Desired: "1.2.0", Reported: "1.1.0", Refused: "1.0.0: " + tooOld}), nodeEffects{fetch: refusedOld},
			[]string{"fetch 1.2.0", "move 1.2.0 file=ferry-kubernetes-1.2.0.iso",
				`report-version 1.2.0 patch={"ferry.dev/target-refused":null,"ferry.dev/version":"1.2.0"}`}},
		{"a refusal stands while the apply that withdraws it cannot run", at(NodeInput{Desired: "1.1.0", Reported: "1.1.0", Refused: "1.0.0: " + tooOld}), nodeEffects{apply: NodeResult{Busy: true}},
			[]string{"apply 1.1.0", "idle 1.1.0"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			trace := nodeRound(t, tc.in, tc.fx)
			var got []string
			for _, a := range trace {
				got = append(got, describe(a))
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("steps:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(tc.want, "\n  "))
			}
		})
	}
}

// TestNodeStepRules: over every combination of annotations (versions
// around the one the node targets) and effect outcomes, a round ends
// within the daemon's bound, the daemon writes only what a node reports
// (never the orchestrator's annotations), reports a version only after
// an apply of it succeeded, and never moves to a bundle it refused.
func TestNodeStepRules(t *testing.T) {
	versions := []string{"", "1.0.0", "1.1.0", "1.2.0"}
	refusals := []string{"", "1.0.0: older", "1.2.0: skew"}
	outcomes := []NodeResult{{}, {Busy: true}, {Err: errors.New("boom")}}
	rounds := 0
	for _, desired := range versions {
		for _, reported := range versions {
			for _, stage := range versions {
				for _, staged := range versions {
					for _, stageErr := range []string{"", "1.2.0: no route"} {
						for _, refused := range refusals {
							for _, stageFx := range outcomes {
								for _, applyFx := range outcomes {
									for _, refuse := range []bool{false, true} {
										in := NodeInput{Desired: desired, Reported: reported, Stage: stage, Staged: staged, StageError: stageErr, Refused: refused, Current: "1.1.0"}
										fetch := map[string]NodeResult{}
										if refuse {
											for _, v := range versions {
												fetch[v] = NodeResult{File: v + ".iso", Refused: "no"}
											}
										}
										fx := nodeEffects{stage: stageFx, fetch: fetch, apply: applyFx}
										name := fmt.Sprintf("%+v %+v refuse=%v", in, fx, refuse)
										checkNodeRules(t, name, nodeRound(t, in, fx), fx, refuse)
										rounds++
									}
								}
							}
						}
					}
				}
			}
		}
	}
	t.Logf("%d rounds", rounds)
}

func checkNodeRules(t *testing.T, name string, trace []NodeAction, fx nodeEffects, refuse bool) {
	t.Helper()
	nodeWrites := map[string]bool{AnnotationVersion: true, AnnotationStagedVersion: true, AnnotationStageError: true, AnnotationTargetRefused: true}
	for i, a := range trace {
		for k := range a.Patch {
			if !nodeWrites[k] {
				t.Fatalf("%s: step %d writes %s: %s", name, i, k, describeAll(trace))
			}
		}
		switch a.Kind {
		case NodeReportVersion:
			if i == 0 || (trace[i-1].Kind != NodeApply && trace[i-1].Kind != NodeMove) || fx.apply.Busy || fx.apply.Err != nil || trace[i-1].Version != a.Version {
				t.Fatalf("%s: a version reported without its apply: %s", name, describeAll(trace))
			}
		case NodeMove:
			if refuse {
				t.Fatalf("%s: moved to a refused bundle: %s", name, describeAll(trace))
			}
		}
	}
	last := trace[len(trace)-1]
	switch last.Kind {
	case NodeStage, NodeFetch, NodeMove, NodeApply:
		t.Fatalf("%s: the round ends with an effect: %s", name, describeAll(trace))
	}
}

// ObserveNodeInput reads the roll-out's annotations of a Node.
func TestObserveNodeInput(t *testing.T) {
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "w1", Annotations: map[string]string{
		AnnotationDesiredVersion: "1.2.0", AnnotationVersion: "1.1.0", AnnotationStageVersion: "1.3.0",
		AnnotationStagedVersion: "1.2.0", AnnotationStageError: "1.3.0: x", AnnotationTargetRefused: "1.0.0: y",
		AnnotationPhase: "upgrading",
	}}}
	want := NodeInput{Desired: "1.2.0", Reported: "1.1.0", Stage: "1.3.0", Staged: "1.2.0", StageError: "1.3.0: x", Refused: "1.0.0: y", Current: "1.1.0"}
	if got := ObserveNodeInput(n, "1.1.0"); got != want {
		t.Fatalf("ObserveNodeInput = %+v, want %+v", got, want)
	}
}
