package converge

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestPlanKubeadmInit(t *testing.T) {
	k := &KubeadmInit{Config: "/etc/ferry/kubeadm/kubeadm.yaml"}
	runPlanCases(t, alone(planKubeadmInit), []planCase{
		{name: "not initialized", d: Desired{Kubeadm: k}, o: Observed{}, want: []string{"kubeadm init /etc/ferry/kubeadm/kubeadm.yaml (the control plane is not initialized)"}},
		{name: "initialized", d: Desired{Kubeadm: k}, o: Observed{KubeadmDone: true}},
		{name: "a control plane that joins", d: Desired{Kubeadm: k, Join: &KubeadmJoin{Config: "/j"}}, o: Observed{}},
		{name: "a worker", d: Desired{Join: &KubeadmJoin{Config: "/j"}}, o: Observed{}},
	})
}

func TestPlanKubeadmJoin(t *testing.T) {
	j := &KubeadmJoin{Config: "/etc/ferry/kubeadm/join.yaml"}
	m := &EtcdMember{Name: "cp2"}
	runPlanCases(t, alone(planKubeadmJoin), []planCase{
		{name: "worker", d: Desired{Join: j}, o: Observed{}, want: []string{"kubeadm join /etc/ferry/kubeadm/join.yaml (the node has not joined the cluster)"}},
		{name: "worker joined", d: Desired{Join: j}, o: Observed{Joined: true}},
		{name: "control plane, member not added", d: Desired{Join: j, EtcdMember: m}, o: Observed{}},
		{name: "control plane, member added", d: Desired{Join: j, EtcdMember: m}, o: Observed{EtcdMemberAdded: true},
			want: []string{"kubeadm join /etc/ferry/kubeadm/join.yaml (the node has not joined the cluster)"}},
		{name: "first control plane", d: Desired{Kubeadm: &KubeadmInit{Config: "/k"}}, o: Observed{}},
	})
}

func TestPlanKubeadmUpgrade(t *testing.T) {
	up := &KubeadmUpgrade{Config: "/etc/ferry/kubeadm/upgrade.yaml", ControlPlane: true}
	k := &KubeadmInit{Config: "/k", InputDigest: "new"}
	v := "v1.36.3"
	runPlanCases(t, alone(planKubeadmUpgrade), []planCase{
		{name: "set up for another version", d: Desired{Kubeadm: k, Upgrade: up, KubernetesVersion: v}, o: Observed{KubeadmDone: true, Applied: map[string]string{VersionRecord: "v1.35.4", KubeadmRecord: "old"}},
			want: []string{"kubeadm upgrade v1.36.3 (the node runs v1.35.4)"}},
		{name: "no version recorded", d: Desired{Upgrade: up, KubernetesVersion: v}, o: Observed{Joined: true},
			want: []string{"kubeadm upgrade v1.36.3 (the node runs an unrecorded version)"}},
		{name: "not set up yet", d: Desired{Kubeadm: k, Upgrade: up, KubernetesVersion: v}, o: Observed{}},
		{name: "inputs changed", d: Desired{Kubeadm: k, Upgrade: up, KubernetesVersion: v}, o: Observed{KubeadmDone: true, Applied: map[string]string{VersionRecord: v, KubeadmRecord: "old"}},
			want: []string{"kubeadm reconfigure /k (its configuration or patches changed since kubeadm last ran)"}},
		{name: "inputs not digested", d: Desired{Kubeadm: &KubeadmInit{Config: "/k"}}, o: Observed{KubeadmDone: true, Applied: map[string]string{KubeadmRecord: "old"}}},
		{name: "a worker's inputs", d: Desired{Join: &KubeadmJoin{Config: "/j", InputDigest: "new"}}, o: Observed{Joined: true, Applied: map[string]string{KubeadmRecord: "old"}}},
		{name: "converged", d: Desired{Kubeadm: k, Upgrade: up, KubernetesVersion: v}, o: Observed{KubeadmDone: true, Applied: map[string]string{VersionRecord: v, KubeadmRecord: "new"}}},
	})
	// The upgrade carries the inputs it records: it applies alone.
	ops := planKubeadmUpgrade(Desired{Kubeadm: k, Upgrade: up, KubernetesVersion: v}, Observed{KubeadmDone: true})
	if u, ok := ops[0].(UpgradeKubernetes); !ok || u.InputDigest != "new" || u.KubernetesVersion != v || u.Upgrade != up {
		t.Errorf("upgrade op %#v", ops[0])
	}
}

func TestPlanKubeconfigsAfterInitOrJoin(t *testing.T) {
	kc := Kubeconfig{Path: "/etc/kubernetes/kubelet.conf", Server: "https://127.0.0.1:6444", TLSServerName: "api"}
	d := Desired{Kubeconfigs: []Kubeconfig{kc}}
	runPlanCases(t, planKubeconfigs, []planCase{
		{name: "missing, nothing writes it", d: d, o: Observed{}, planned: []Op{WriteFile{File: File{Path: "/x"}}}},
		{name: "missing, init writes it", d: d, o: Observed{}, planned: []Op{InitControlPlane{Init: &KubeadmInit{}}},
			want: []string{"point kubeconfig /etc/kubernetes/kubelet.conf → https://127.0.0.1:6444 (written by kubeadm above)"}},
		{name: "missing, join writes it", d: d, o: Observed{}, planned: []Op{JoinCluster{Join: &KubeadmJoin{}}},
			want: []string{"point kubeconfig /etc/kubernetes/kubelet.conf → https://127.0.0.1:6444 (written by kubeadm above)"}},
		{name: "names the endpoint", d: d, o: Observed{Kubeconfigs: map[string]KubeconfigState{kc.Path: {Exists: true, Server: "https://api:6443"}}},
			want: []string{"point kubeconfig /etc/kubernetes/kubelet.conf → https://127.0.0.1:6444 (names https://api:6443)"}},
		{name: "another name", d: d, o: Observed{Kubeconfigs: map[string]KubeconfigState{kc.Path: {Exists: true, Server: kc.Server, TLSServerName: "old"}}},
			want: []string{"point kubeconfig /etc/kubernetes/kubelet.conf → https://127.0.0.1:6444 (names https://127.0.0.1:6444 as old)"}},
		{name: "pointed", d: d, o: Observed{Kubeconfigs: map[string]KubeconfigState{kc.Path: {Exists: true, Server: kc.Server, TLSServerName: "api"}}}},
	})
}

// script is the boundary of the kubeadm, kubectl and etcdctl tests: the
// test machine has none of them (and no cluster), so their calls are
// recorded and answered by answer.
type script struct {
	ran    []string
	answer func(cmd string) ([]byte, error)
}

func (s *script) run(_ context.Context, name string, args ...string) ([]byte, error) {
	cmd := name + " " + strings.Join(args, " ")
	s.ran = append(s.ran, cmd)
	if s.answer != nil {
		return s.answer(cmd)
	}
	return nil, nil
}

// applied reads the node's applied record back through Observe.
func applied(t *testing.T, h *Host) map[string]string {
	t.Helper()
	o, err := h.Observe(context.Background(), Desired{})
	if err != nil {
		t.Fatal(err)
	}
	return o.Applied
}

// kubeadm init records the version and the inputs it carries; the owned
// directories are made before the rest of init.
func TestInitControlPlaneApply(t *testing.T) {
	s := &script{}
	h := &Host{Root: t.TempDir(), StateDir: "/var/lib/ferry", Run: s.run}
	op := InitControlPlane{Init: &KubeadmInit{Config: "/k.yaml", SkipPhases: []string{"addon/kube-proxy"}, InputDigest: "in1",
		IgnorePreflightErrors: []string{"Swap"}, Owned: []Owned{{Path: "/etc/kubernetes/tmp", Mode: 0o750, Dir: true}}}, KubernetesVersion: "v1.36.3"}
	if err := op.Apply(context.Background(), h); err != nil {
		t.Fatal(err)
	}
	want := []string{"kubeadm init phase certs all --config /k.yaml", "kubeadm init phase kubeconfig all --config /k.yaml",
		"kubeadm init --config /k.yaml --skip-phases certs,kubeconfig,addon/kube-proxy --ignore-preflight-errors Swap"}
	if !reflect.DeepEqual(s.ran, want) {
		t.Errorf("ran %q, want %q", s.ran, want)
	}
	if fi, err := os.Stat(filepath.Join(h.Root, "etc/kubernetes/tmp")); err != nil || fi.Mode().Perm() != 0o750 {
		t.Errorf("owned directory: %v %v", fi, err)
	}
	if got := applied(t, h); got[VersionRecord] != "v1.36.3" || got[KubeadmRecord] != "in1" {
		t.Errorf("applied record %v", got)
	}
}

// The first control plane of a roll-out uploads the configuration, runs
// upgrade apply and marks kubeadm-config; the others run upgrade node.
// Both restart the kubelet and record what the operation carries.
func TestUpgradeKubernetesApply(t *testing.T) {
	for _, tc := range []struct {
		name, marked string
		want         []string
	}{
		{"first", "v1.35.4", []string{
			"kubectl --kubeconfig /etc/kubernetes/admin.conf --request-timeout=20s -n kube-system get configmap kubeadm-config -o jsonpath={.metadata.annotations.ferry\\.dev/upgraded-to}",
			"kubeadm init phase upload-config kubeadm --config /k.yaml",
			"kubeadm upgrade apply --config /u.yaml --yes",
			"kubectl --kubeconfig /etc/kubernetes/admin.conf --request-timeout=20s -n kube-system annotate --overwrite configmap kubeadm-config ferry.dev/upgraded-to=v1.36.3",
			"systemctl restart kubelet.service"}},
		{"next", "v1.36.3", []string{
			"kubectl --kubeconfig /etc/kubernetes/admin.conf --request-timeout=20s -n kube-system get configmap kubeadm-config -o jsonpath={.metadata.annotations.ferry\\.dev/upgraded-to}",
			"kubeadm upgrade node --config /u.yaml",
			"systemctl restart kubelet.service"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &script{answer: func(cmd string) ([]byte, error) {
				if strings.Contains(cmd, "get configmap") {
					return []byte(tc.marked), nil
				}
				return nil, nil
			}}
			h := &Host{Root: t.TempDir(), StateDir: "/var/lib/ferry", Kubeconfig: "/etc/kubernetes/admin.conf", Run: s.run}
			op := UpgradeKubernetes{Upgrade: &KubeadmUpgrade{Config: "/u.yaml", ControlPlane: true, InitConfig: "/k.yaml"}, KubernetesVersion: "v1.36.3", InputDigest: "in2"}
			if err := op.Apply(context.Background(), h); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(s.ran, tc.want) {
				t.Errorf("ran:\n%q\nwant:\n%q", s.ran, tc.want)
			}
			if got := applied(t, h); got[VersionRecord] != "v1.36.3" || got[KubeadmRecord] != "in2" {
				t.Errorf("applied record %v", got)
			}
		})
	}
}

// A worker's join: refused without a join file; with one, the discovery
// kubeconfig is there for kubeadm join only, and the version recorded.
func TestJoinClusterApply(t *testing.T) {
	root := t.TempDir()
	var during []byte
	s := &script{answer: func(cmd string) ([]byte, error) {
		if strings.HasPrefix(cmd, "kubeadm join") {
			during, _ = os.ReadFile(filepath.Join(root, "etc/kubernetes/discovery.conf"))
		}
		return nil, nil
	}}
	h := &Host{Root: root, StateDir: "/var/lib/ferry", Run: s.run}
	op := JoinCluster{Join: &KubeadmJoin{Config: "/j.yaml", Discovery: "/etc/kubernetes/discovery.conf"}, KubernetesVersion: "v1.36.3"}
	if err := op.Apply(context.Background(), h); err == nil || !strings.Contains(err.Error(), "no join file") {
		t.Fatalf("without a join file: %v", err)
	}
	op.Join.DiscoveryContent = []byte("discovery")
	op.Join.InputDigest = "in3"
	if err := op.Apply(context.Background(), h); err != nil {
		t.Fatal(err)
	}
	if want := []string{"kubeadm join --config /j.yaml"}; !reflect.DeepEqual(s.ran, want) {
		t.Errorf("ran %q, want %q", s.ran, want)
	}
	if string(during) != "discovery" {
		t.Errorf("discovery during the join: %q", during)
	}
	if _, err := os.Stat(filepath.Join(root, "etc/kubernetes/discovery.conf")); err == nil {
		t.Error("the discovery kubeconfig is left on the node")
	}
	if got := applied(t, h); got[VersionRecord] != "v1.36.3" || got[KubeadmRecord] != "in3" {
		t.Errorf("applied record %v", got)
	}
}
