package converge

import (
	"context"
	"reflect"
	"strings"
	"testing"
)

func TestPlanRemovedNodes(t *testing.T) {
	d := Desired{ClusterNodes: []string{"cp1", "w1"}}
	runPlanCases(t, alone(planRemovedNodes), []planCase{
		{name: "one gone", d: d, o: Observed{ClusterNodes: []string{"cp1", "w1", "w2", "w3"}},
			want: []string{"remove node w2 (not in the cluster configuration)", "remove node w3 (not in the cluster configuration)"}},
		{name: "all there", d: d, o: Observed{ClusterNodes: []string{"cp1", "w1"}}},
		{name: "API unknown", d: d, o: Observed{APIUnknown: true, ClusterNodes: []string{"w2"}}},
		{name: "not checked (worker)", d: Desired{}, o: Observed{ClusterNodes: []string{"w2"}}},
		{name: "an empty configuration is checked", d: Desired{ClusterNodes: []string{}}, o: Observed{ClusterNodes: []string{"w2"}},
			want: []string{"remove node w2 (not in the cluster configuration)"}},
	})
	// The removal carries the local etcd member it removes the node's
	// member through: it applies alone.
	m := &EtcdMember{Endpoints: []string{"https://localhost:2379"}}
	ops := planRemovedNodes(Desired{ClusterNodes: []string{}, LocalEtcd: m}, Observed{ClusterNodes: []string{"w2"}})
	if r, ok := ops[0].(RemoveNode); !ok || r.Etcd != m || r.Name != "w2" {
		t.Errorf("remove op %#v", ops[0])
	}
}

func TestPlanNodeObject(t *testing.T) {
	d := Desired{Labels: map[string]string{"zone": "a", "node-role.kubernetes.io/worker": ""}, Taints: []string{"gpu=a100:NoExecute", "node-role.kubernetes.io/control-plane:NoSchedule"},
		RemoveTaints: []string{"node-role.kubernetes.io/control-plane:NoSchedule"}}
	runPlanCases(t, alone(planNodeObject), []planCase{
		{name: "bare Node", d: d, o: Observed{}, want: []string{"label node node-role.kubernetes.io/worker,zone (missing or different)",
			"taint node gpu=a100:NoExecute (missing)", "taint node node-role.kubernetes.io/control-plane:NoSchedule (missing)"}},
		{name: "a label differs, a taint to remove", d: d, o: Observed{NodeLabels: map[string]string{"zone": "b", "node-role.kubernetes.io/worker": ""},
			NodeTaints: []string{"gpu:NoExecute", "node-role.kubernetes.io/control-plane:NoSchedule"}},
			want: []string{"label node zone (missing or different)", "remove taint node-role.kubernetes.io/control-plane:NoSchedule (single server runs workloads (R4))"}},
		{name: "API unknown", d: d, o: Observed{APIUnknown: true}},
		{name: "converged", d: Desired{Labels: map[string]string{"zone": "a"}, Taints: []string{"gpu=a100:NoExecute"}}, o: Observed{NodeLabels: map[string]string{"zone": "a", "x": "y"}, NodeTaints: []string{"gpu:NoExecute"}}},
	})
}

func TestNeedsAPI(t *testing.T) {
	k := &KubeadmInit{}
	for _, tc := range []struct {
		name string
		d    Desired
		want bool
	}{
		{"labels", Desired{Kubeadm: k, Labels: map[string]string{"a": "b"}}, true},
		{"taints", Desired{Kubeadm: k, Taints: []string{"a:NoSchedule"}}, true},
		{"taints to remove", Desired{Kubeadm: k, RemoveTaints: []string{"a:NoSchedule"}}, true},
		{"nodes to remove", Desired{Kubeadm: k, ClusterNodes: []string{}}, true},
		{"nothing in the API", Desired{Kubeadm: k}, false},
		{"no control plane", Desired{Labels: map[string]string{"a": "b"}}, false},
	} {
		if got := tc.d.NeedsAPI(); got != tc.want {
			t.Errorf("%s: NeedsAPI %v", tc.name, got)
		}
	}
}

// A Node that is down is drained without grace, deleted, and its etcd
// member removed through the member the operation carries.
func TestRemoveNodeApply(t *testing.T) {
	s := &script{answer: func(cmd string) ([]byte, error) {
		switch {
		case strings.Contains(cmd, "get node w2"):
			return []byte("w2 Unknown"), nil
		case strings.Contains(cmd, "member list"):
			return []byte(`{"members":[{"ID":1,"name":"cp1"},{"ID":4096,"name":"w2"}]}`), nil
		}
		return nil, nil
	}}
	h := &Host{Root: t.TempDir(), Kubeconfig: "/a.conf", Run: s.run}
	op := RemoveNode{Name: "w2", Etcd: &EtcdMember{Endpoints: []string{"https://localhost:2379"}}}
	if err := op.Apply(context.Background(), h); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range s.ran {
		if strings.HasPrefix(r, "etcdctl ") {
			r = "etcdctl " + r[strings.Index(r, "--command-timeout=30s ")+len("--command-timeout=30s "):]
		}
		got = append(got, r)
	}
	want := []string{
		`kubectl --kubeconfig /a.conf get node w2 --ignore-not-found -o jsonpath={.metadata.name} {.status.conditions[?(@.type=="Ready")].status}`,
		"kubectl --kubeconfig /a.conf drain w2 --ignore-daemonsets --delete-emptydir-data --timeout=5m --grace-period=1 --skip-wait-for-delete-timeout=1",
		"kubectl --kubeconfig /a.conf delete node w2 --ignore-not-found",
		"etcdctl member list -w json",
		"etcdctl member remove 1000",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ran:\n%q\nwant:\n%q", got, want)
	}
}

func TestNodeObjectOpsApply(t *testing.T) {
	s := &script{}
	h := &Host{Root: t.TempDir(), NodeName: "cp1", Kubeconfig: "/a.conf", Server: "https://127.0.0.1:6444", TLSServerName: "api", Run: s.run}
	for _, op := range []Op{LabelNode{Labels: map[string]string{"zone": "a", "app": ""}}, TaintNode{Taint: "gpu=a100:NoExecute"}, UntaintNode{Taint: "t:NoSchedule"}} {
		if err := op.Apply(context.Background(), h); err != nil {
			t.Fatal(err)
		}
	}
	base := "kubectl --kubeconfig /a.conf --server https://127.0.0.1:6444 --tls-server-name api "
	want := []string{base + "label node cp1 --overwrite app= zone=a", base + "taint node cp1 --overwrite gpu=a100:NoExecute", base + "taint node cp1 t:NoSchedule-"}
	if !reflect.DeepEqual(s.ran, want) {
		t.Errorf("ran:\n%q\nwant:\n%q", s.ran, want)
	}
}
