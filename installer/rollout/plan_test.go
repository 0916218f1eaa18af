package rollout

import (
	"bytes"
	"errors"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/ferry-k8s/ferry/installer/cluster"
)

var tgt = Target{Version: "2.0.0", KubernetesVersion: "v1.36.3"}

// Fixtures: a node at the old bundle, and ways to move it along.
func old(name string) NodeState {
	return NodeState{Name: name, Ready: true, Version: "1.0.0", Desired: "1.0.0", KubeletVersion: "v1.35.4", Phase: PhaseDone}
}
func cp(n NodeState) NodeState { n.ControlPlane = true; return n }
func cordonedByUs(n NodeState) NodeState {
	n.Unschedulable, n.Cordoned, n.Phase = true, true, PhaseCordoned
	return n
}
func drained(n NodeState) NodeState { n = cordonedByUs(n); n.Phase = PhaseDrained; return n }
func upgrading(n NodeState) NodeState {
	n = drained(n)
	n.Desired, n.Phase = tgt.Version, PhaseUpgrading
	return n
}
func upgraded(n NodeState) NodeState {
	n = upgrading(n)
	n.Version, n.KubeletVersion = tgt.Version, tgt.KubernetesVersion
	return n
}
func done(n NodeState) NodeState {
	n = upgraded(n)
	n.Unschedulable, n.Cordoned, n.Phase = false, false, PhaseDone
	return n
}
func external(n NodeState) NodeState { n.Unschedulable = true; return n }

func TestNextStep(t *testing.T) {
	for _, tc := range []struct {
		name string
		n    NodeState
		want Step
	}{
		{"old node", old("a"), StepCordon},
		{"cordoned", cordonedByUs(old("a")), StepDrain},
		{"cordoned by someone else", external(old("a")), StepDrain},
		{"failed in the drain", func() NodeState { n := cordonedByUs(old("a")); n.Phase = PhaseFailed; return n }(), StepDrain},
		{"drained", drained(old("a")), StepSetDesired},
		{"desired set", upgrading(old("a")), StepWait},
		{"failed waiting", func() NodeState { n := upgrading(old("a")); n.Phase = PhaseFailed; return n }(), StepWait},
		{"at the version but not Ready", func() NodeState { n := upgraded(old("a")); n.Ready = false; return n }(), StepWait},
		{"at the version, old kubelet", func() NodeState { n := upgraded(old("a")); n.KubeletVersion = "v1.35.4"; return n }(), StepWait},
		{"upgraded", upgraded(old("a")), StepFinish},
		{"upgraded, cordoned by someone else", func() NodeState { n := upgraded(old("a")); n.Cordoned = false; return n }(), StepFinish},
		{"done", done(old("a")), StepNone},
		{"done, cordoned by someone else since", external(done(old("a"))), StepNone},
		{"joined at the new version", func() NodeState { n := done(old("a")); n.Desired, n.Phase = "", PhasePending; return n }(), StepSetDesired},
		{"uncordoned by someone mid-upgrade", func() NodeState { n := upgrading(old("a")); n.Unschedulable = false; return n }(), StepCordon},
	} {
		if got := NextStep(tgt, tc.n); got != tc.want {
			t.Errorf("%s: NextStep = %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestPlan(t *testing.T) {
	workers := func(n int, f func(NodeState) NodeState) []NodeState {
		var out []NodeState
		for i := range n {
			out = append(out, f(old("w"+string(rune('a'+i)))))
		}
		return out
	}
	id := func(n NodeState) NodeState { return n }
	for _, tc := range []struct {
		name     string
		max      *cluster.IntOrPercent
		nodes    []NodeState
		inFlight []string
		cordon   []string
		resume   []string
		complete bool
		wait     string
	}{
		{name: "control plane first, one at a time", max: cluster.Int(3),
			nodes:  append([]NodeState{cp(old("c2")), cp(old("c1"))}, workers(3, id)...),
			cordon: []string{"c1"}},
		{name: "a control-plane node in flight: nothing else", max: cluster.Int(3),
			nodes:    append([]NodeState{cp(cordonedByUs(old("c1"))), cp(old("c2"))}, workers(3, id)...),
			inFlight: []string{"c1"}, wait: "control-plane node c1 is being upgraded"},
		{name: "a control-plane node half-way is resumed", max: cluster.Int(3),
			nodes:  append([]NodeState{cp(done(old("c1"))), cp(upgrading(old("c2")))}, workers(3, id)...),
			resume: []string{"c2"}},
		{name: "a control-plane node cordoned by someone else is upgraded first (no new cordon)", max: cluster.Int(3),
			nodes:  []NodeState{cp(old("c1")), cp(external(old("c2")))},
			resume: []string{"c2"}},
		{name: "workers once the control plane is done", max: cluster.Int(2),
			nodes:  append([]NodeState{cp(done(old("c1")))}, workers(4, id)...),
			cordon: []string{"wa", "wb"}},
		{name: "the budget counts nodes cordoned by anyone", max: cluster.Int(2),
			nodes:  append([]NodeState{cp(done(old("c1"))), external(done(old("x")))}, workers(4, id)...),
			cordon: []string{"wa"}},
		{name: "in flight count against the budget", max: cluster.Int(2),
			nodes:    append([]NodeState{cp(done(old("c1"))), upgrading(old("x"))}, workers(2, id)...),
			inFlight: []string{"x"}, cordon: []string{"wa"}},
		{name: "budget used up", max: cluster.Int(1),
			nodes:    append([]NodeState{cp(done(old("c1"))), upgrading(old("x"))}, workers(2, id)...),
			inFlight: []string{"x"}, wait: "1 of at most 1 workers cordoned (x)"},
		{name: "resumed after a kill: cordoned ones first, the budget already full", max: cluster.Int(2),
			nodes:  append([]NodeState{cp(done(old("c1"))), drained(old("x")), upgraded(old("y"))}, workers(2, id)...),
			resume: []string{"x", "y"}},
		{name: "percent of the workers", max: cluster.Percent(50),
			nodes:  append([]NodeState{cp(done(old("c1")))}, workers(5, id)...),
			cordon: []string{"wa", "wb"}},
		{name: "already at the target: no cordon, no budget", max: cluster.Int(1),
			nodes: append([]NodeState{cp(done(old("c1"))), func() NodeState {
				n := done(old("new"))
				n.Desired, n.Phase = "", PhasePending
				return n
			}()}, workers(1, id)...),
			cordon: []string{"wa"}, resume: []string{"new"}},
		{name: "all done", max: cluster.Int(1),
			nodes:    append([]NodeState{cp(done(old("c1")))}, workers(3, done)...),
			complete: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			inFlight := map[string]bool{}
			for _, n := range tc.inFlight {
				inFlight[n] = true
			}
			d := Plan(tgt, *tc.max, tc.nodes, inFlight)
			if !slices.Equal(d.Cordon, tc.cordon) || !slices.Equal(d.Resume, tc.resume) || d.Complete != tc.complete || d.Wait != tc.wait {
				t.Errorf("Plan = %+v\nwant cordon %v resume %v complete %v wait %q", d, tc.cordon, tc.resume, tc.complete, tc.wait)
			}
		})
	}
}

// TestPlanSimulated runs Plan to the end over many nodes, moving every
// started node one step per round, and checks the budget at every round.
func TestPlanSimulated(t *testing.T) {
	nodes := map[string]NodeState{}
	for i := range 3 {
		n := cp(old("c" + string(rune('0'+i))))
		nodes[n.Name] = n
	}
	for i := range 40 {
		n := old("w" + string(rune('A'+i)))
		nodes[n.Name] = n
	}
	inFlight := map[string]bool{}
	for round := 0; ; round++ {
		if round > 1000 {
			t.Fatal("no end")
		}
		list := slices.Collect(mapValues(nodes))
		d := Plan(tgt, *cluster.Percent(25), list, inFlight)
		if d.Complete && len(inFlight) == 0 {
			break
		}
		for _, name := range d.Cordon {
			nodes[name] = cordonedByUs(nodes[name])
			inFlight[name] = true
		}
		for _, name := range d.Resume {
			inFlight[name] = true
		}
		cps, ws := 0, 0
		for _, n := range nodes {
			if n.Unschedulable && n.ControlPlane {
				cps++
			} else if n.Unschedulable {
				ws++
			}
		}
		if cps > 1 || ws > 10 {
			t.Fatalf("round %d: %d control-plane, %d workers cordoned", round, cps, ws)
		}
		if cps > 0 && ws > 0 {
			t.Fatalf("round %d: workers started before the control plane was done", round)
		}
		// Every node in flight advances one step.
		for name := range inFlight {
			n := nodes[name]
			switch NextStep(tgt, n) {
			case StepDrain:
				n = drained(n)
			case StepSetDesired:
				n = upgrading(n)
			case StepWait:
				n = upgraded(n)
			case StepFinish:
				n = done(n)
			case StepNone:
				delete(inFlight, name)
			}
			nodes[name] = n
		}
	}
	for _, n := range nodes {
		if NextStep(tgt, n) != StepNone {
			t.Errorf("node %s not done: %+v", n.Name, n)
		}
	}
}

func mapValues[K comparable, V any](m map[K]V) func(func(V) bool) {
	return func(yield func(V) bool) {
		for _, v := range m {
			if !yield(v) {
				return
			}
		}
	}
}

func TestParseState(t *testing.T) {
	s := &State{Plan: PlanRecord{Version: "2.0.0", MaxUnavailable: "25%", Status: StatusRunning, Started: time.Unix(100, 0).UTC(),
		Snapshot: &SnapshotRecord{Path: "/var/lib/ferry/etcd-2.0.0.db", SHA256: strings.Repeat("a", 64), Revision: 7, Verified: true}},
		Nodes: map[string]NodeRecord{"n1": {Phase: PhaseDone, Version: "2.0.0", Started: time.Unix(100, 0).UTC(), Finished: time.Unix(130, 0).UTC()}, "n2": {Phase: PhaseCordoned, Started: time.Unix(120, 0).UTC()}}}
	back, err := ParseState(s.Data())
	if err != nil {
		t.Fatal(err)
	}
	if back.Plan.Version != "2.0.0" || back.Plan.Snapshot.Revision != 7 || len(back.Nodes) != 2 || back.Nodes["n1"].Phase != PhaseDone {
		t.Errorf("round trip: %+v", back)
	}
	var buf bytes.Buffer
	if err := WriteTable(&buf, back.Rows(time.Unix(150, 0))); err != nil {
		t.Fatal(err)
	}
	want := "NODE  PHASE     VERSION  ELAPSED  \nn1    done      2.0.0    30s      \nn2    cordoned  -        30s      \n"
	if buf.String() != want {
		t.Errorf("table:\n%s\nwant:\n%s", buf.String(), want)
	}
	for _, tc := range []struct {
		name string
		data map[string]string
		want string
	}{
		{"no plan", map[string]string{}, "key plan: no plan"},
		{"not JSON", map[string]string{"plan": "{"}, "key plan: unexpected EOF"},
		{"unknown field", map[string]string{"plan": `{"version":"2","status":"Running","bogus":1}`}, `key plan: json: unknown field "bogus"`},
		{"no version", map[string]string{"plan": `{"status":"Running"}`}, "key plan: no target version"},
		{"bad status", map[string]string{"plan": `{"version":"2","status":"Sideways"}`}, `key plan: unknown status "Sideways"`},
		{"bad phase", map[string]string{"plan": `{"version":"2","status":"Running"}`, "node.n1": `{"phase":"flying"}`}, `key node.n1: unknown phase "flying"`},
		{"trailing data", map[string]string{"plan": `{"version":"2","status":"Running"} {}`}, "key plan: data after the JSON value"},
		{"too big", map[string]string{"plan": `{"version":"2","status":"Running"}`, "node.n1": strings.Repeat(" ", maxStateValue+1)}, "key node.n1: 65537 bytes"},
	} {
		_, err := ParseState(tc.data)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
	if _, err := ParseState(map[string]string{}); !errors.Is(err, errNoPlan) {
		t.Errorf("no plan: %v", err)
	}
}

func TestCheckVersion(t *testing.T) {
	for _, v := range []string{"1.3.0", "2.0.0-rc.1", "1.2.3+build.4"} {
		if err := checkVersion(v); err != nil {
			t.Errorf("%s: %v", v, err)
		}
	}
	for _, v := range []string{"", "../etc", "1/2", ".1", "-1", strings.Repeat("1", 64), "1 2"} {
		if err := checkVersion(v); err == nil {
			t.Errorf("%q accepted", v)
		}
	}
}

// FuzzParseState: whatever the ConfigMap holds, ParseState returns a
// state or an error, never panics, and what it accepts survives a round
// trip through Data whole (deep-equal; times compared as instants, as
// JSON keeps the offset but not the *time.Location).
func FuzzParseState(f *testing.F) {
	f.Add(`{"version":"2.0.0","maxUnavailable":"1","status":"Running","started":"2026-01-01T00:00:00Z","updated":"2026-01-01T00:00:00Z"}`, "n1", `{"phase":"done","version":"2.0.0"}`)
	f.Add(`{"version":"2","status":"Stopped","stoppedAt":["n1"],"snapshot":{"path":"/x","sha256":"","size":1,"revision":2,"taken":"2026-01-01T00:00:00Z","verified":true}}`, "n1", `{"phase":"failed","error":"x"}`)
	f.Fuzz(func(t *testing.T, plan, node, rec string) {
		s, err := ParseState(map[string]string{"plan": plan, "node." + node: rec})
		if err != nil {
			return
		}
		back, err := ParseState(s.Data())
		if err != nil {
			t.Fatalf("round trip: %v", err)
		}
		if want, got := instants(s), instants(back); !reflect.DeepEqual(got, want) {
			t.Fatalf("round trip changed the state:\n%#v\n→ %q\n→ %#v", want, s.Data(), got)
		}
		_ = WriteTable(&bytes.Buffer{}, s.Rows(time.Now()))
	})
}

// instants is a deep copy of s with every time in UTC: the same instants,
// comparable with reflect.DeepEqual.
func instants(s *State) *State {
	c := &State{Plan: s.Plan, Nodes: map[string]NodeRecord{}}
	c.Plan.Started, c.Plan.Updated = c.Plan.Started.UTC(), c.Plan.Updated.UTC()
	c.Plan.StoppedAt = slices.Clone(s.Plan.StoppedAt)
	if s.Plan.Snapshot != nil {
		snap := *s.Plan.Snapshot
		snap.Taken = snap.Taken.UTC()
		c.Plan.Snapshot = &snap
	}
	for name, r := range s.Nodes {
		r.Started, r.Finished = r.Started.UTC(), r.Finished.UTC()
		c.Nodes[name] = r
	}
	return c
}

func TestTransientErrors(t *testing.T) {
	gr := schema.GroupResource{Resource: "nodes"}
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{apierrors.NewNotFound(gr, "n1"), false},
		{apierrors.NewBadRequest("no"), false},
		// A restarting API server refuses until its RBAC cache syncs.
		{apierrors.NewForbidden(gr, "n1", errors.New("no")), true},
		{apierrors.NewUnauthorized("no"), true},
		{apierrors.NewServiceUnavailable("restarting"), true},
		{apierrors.NewTimeoutError("slow", 1), true},
		{apierrors.NewTooManyRequests("busy", 1), true},
		{&url.Error{Op: "Get", URL: "https://api:6443", Err: errors.New("connect: connection refused")}, true},
	} {
		if got := transient(tc.err); got != tc.want {
			t.Errorf("transient(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}
