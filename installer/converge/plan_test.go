package converge

import (
	"reflect"
	"testing"
)

// planCase is one row of a sub-planner's table: desired and observed
// state (and the operations planned before, for planners that read them)
// in, the operations as plans show them out.
type planCase struct {
	name    string
	d       Desired
	o       Observed
	planned []Op
	want    []string
}

func runPlanCases(t *testing.T, plan func(Desired, Observed, []Op) []Op, cases []planCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := strs(plan(tc.d, tc.o, tc.planned)); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("plan:\n%q\nwant:\n%q", got, tc.want)
			}
		})
	}
}

// alone adapts a sub-planner that reads only desired and observed state.
func alone(plan func(Desired, Observed) []Op) func(Desired, Observed, []Op) []Op {
	return func(d Desired, o Observed, _ []Op) []Op { return plan(d, o) }
}

func strs(ops []Op) []string {
	var s []string
	for _, op := range ops {
		s = append(s, op.String())
	}
	return s
}

// The operations' strings are what plans, journals and the end-to-end
// suites read: "kind target (reason)", the reason left out when empty.
func TestOpStrings(t *testing.T) {
	for _, tc := range []struct {
		op   Op
		want string
	}{
		{CreateDir{Dir: Dir{Path: "/etc/ferry"}, Because: "missing"}, "create directory /etc/ferry (missing)"},
		{WriteFile{File: File{Path: "/etc/x"}, Because: "missing"}, "write file /etc/x (missing)"},
		{FixPerms{Path: "/etc/x", Because: "is -rw-r--r-- root:root, want -rw------- root:root"}, "set owner and mode /etc/x (is -rw-r--r-- root:root, want -rw------- root:root)"},
		{InstallPackages{Packages: []string{"a-1-1", "b-2-1"}, Because: "2 missing"}, "install packages a-1-1 b-2-1 (2 missing)"},
		{RunCommand{Command: []string{"sysctl", "--system"}}, "run sysctl --system"},
		{ReloadSystemd{Because: "units or their configuration changed"}, "reload systemd daemon-reload (units or their configuration changed)"},
		{EnableUnit{Unit: "kubelet.service", Because: "disabled"}, "enable unit kubelet.service (disabled)"},
		{StartUnit{Unit: "containerd.service", Because: "not running"}, "start unit containerd.service (not running)"},
		{RestartUnit{Unit: "containerd.service", Because: "its configuration changed"}, "restart unit containerd.service (its configuration changed)"},
		{InitControlPlane{Init: &KubeadmInit{Config: "/k.yaml"}, Because: "the control plane is not initialized"}, "kubeadm init /k.yaml (the control plane is not initialized)"},
		{ReconfigureControlPlane{Init: &KubeadmInit{Config: "/k.yaml"}}, "kubeadm reconfigure /k.yaml"},
		{JoinCluster{Join: &KubeadmJoin{Config: "/j.yaml"}}, "kubeadm join /j.yaml"},
		{UpgradeKubernetes{KubernetesVersion: "v1.36.3", Because: "the node runs v1.35.4"}, "kubeadm upgrade v1.36.3 (the node runs v1.35.4)"},
		{PointKubeconfig{Kubeconfig: Kubeconfig{Path: "/kc", Server: "https://127.0.0.1:6444"}, Because: "names https://a:6443"}, "point kubeconfig /kc → https://127.0.0.1:6444 (names https://a:6443)"},
		{AddEtcdMember{Member: &EtcdMember{Name: "cp2", PeerURL: "https://cp2:2380"}}, "add etcd member cp2 https://cp2:2380"},
		{PromoteEtcdMember{Member: &EtcdMember{Name: "cp2"}}, "promote etcd member cp2"},
		{RemoveNode{Name: "w2", Because: "not in the cluster configuration"}, "remove node w2 (not in the cluster configuration)"},
		{LabelNode{Labels: map[string]string{"zone": "a", "app": "b"}}, "label node app,zone"},
		{TaintNode{Taint: "gpu=a100:NoExecute", Because: "missing"}, "taint node gpu=a100:NoExecute (missing)"},
		{UntaintNode{Taint: "t:NoSchedule"}, "remove taint t:NoSchedule"},
	} {
		if got := tc.op.String(); got != tc.want {
			t.Errorf("%T: %q, want %q", tc.op, got, tc.want)
		}
		if got := Format([]Op{tc.op}); got != "  1. "+tc.want+"\n1 changes\n" {
			t.Errorf("%T: Format %q", tc.op, got)
		}
	}
}

// A plan's steps come in the order the sub-planners give, across
// families: files, packages, commands, owned files, units, kubeadm,
// kubeconfigs, owned paths, the Node object.
func TestPlanComposesTheSubPlanners(t *testing.T) {
	d := Desired{
		Packages:     map[string]string{"kubelet": "1.36.3-1.ferry"},
		Files:        []File{{Path: "/etc/sysusers.d/ferry.conf", Mode: 0o644, Content: []byte("u"), After: []string{"systemd-sysusers /etc/sysusers.d/ferry.conf"}}, {Path: "/etc/ferry/k", Mode: 0o600, Owner: "ferry", Content: []byte("k")}},
		Units:        []Unit{{Name: "kubelet.service"}},
		Kubeadm:      &KubeadmInit{Config: "/k"},
		Kubeconfigs:  []Kubeconfig{{Path: "/etc/kubernetes/kubelet.conf", Server: "https://127.0.0.1:6444"}},
		Owned:        []Owned{{Path: "/etc/kubernetes/admin.conf", Mode: 0o640, Group: "kube"}},
		Labels:       map[string]string{"zone": "a"},
		ClusterNodes: []string{"cp1"},
	}
	o := Observed{ClusterNodes: []string{"cp1", "gone"}}
	want := []string{
		"remove node gone (not in the cluster configuration)",
		"write file /etc/sysusers.d/ferry.conf (missing)",
		"install packages kubelet-1.36.3-1.ferry (1 missing)",
		"run systemd-sysusers /etc/sysusers.d/ferry.conf (its configuration changed)",
		"write file /etc/ferry/k (missing)",
		"reload systemd daemon-reload (units or their configuration changed)",
		"enable unit kubelet.service (disabled)",
		"kubeadm init /k (the control plane is not initialized)",
		"point kubeconfig /etc/kubernetes/kubelet.conf → https://127.0.0.1:6444 (written by kubeadm above)",
		"label node zone (missing or different)",
	}
	if got := strs(Plan(d, o)); !reflect.DeepEqual(got, want) {
		t.Errorf("plan:\n%q\nwant:\n%q", got, want)
	}
}
