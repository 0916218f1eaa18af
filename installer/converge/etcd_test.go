package converge

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestPlanEtcd(t *testing.T) {
	m := &EtcdMember{Name: "cp2", PeerURL: "https://cp2.example.com:2380"}
	d := Desired{EtcdMember: m, Join: &KubeadmJoin{Config: "/j"}}
	both := func(d Desired, o Observed, _ []Op) []Op { return append(planEtcdAdd(d, o), planEtcdPromote(d, o)...) }
	runPlanCases(t, both, []planCase{
		{name: "no member (first control plane, worker)", d: Desired{}, o: Observed{}},
		{name: "new", d: d, o: Observed{}, want: []string{"add etcd member cp2 https://cp2.example.com:2380 (not a member of the cluster's etcd yet)"}},
		{name: "added, not joined", d: d, o: Observed{EtcdMemberAdded: true}},
		{name: "joined, not promoted", d: d, o: Observed{EtcdMemberAdded: true, Joined: true}, want: []string{"promote etcd member cp2 (a learner until its member has caught up)"}},
		{name: "promoted", d: d, o: Observed{EtcdMemberAdded: true, Joined: true, EtcdPromoted: true}},
	})
}

// A control plane's join promotes the member it carries right after
// kubeadm join, and records the promotion.
func TestJoinClusterPromotesItsMember(t *testing.T) {
	root := t.TempDir()
	s := &script{answer: func(cmd string) ([]byte, error) {
		if strings.Contains(cmd, "member list") {
			return []byte(`{"members":[{"ID":1,"name":"cp1","peerURLs":["https://cp1:2380"]},{"ID":255,"name":"cp2","peerURLs":["https://cp2:2380"],"isLearner":true}]}`), nil
		}
		return nil, nil
	}}
	h := &Host{Root: root, StateDir: "/var/lib/ferry", Run: s.run}
	m := &EtcdMember{Name: "cp2", PeerURL: "https://cp2:2380", Endpoints: []string{"https://cp1:2379"}, CACert: "/ca", Cert: "/c", Key: "/k", PromotedFile: "/var/lib/ferry/etcd-promoted"}
	op := JoinCluster{Join: &KubeadmJoin{Config: "/j.yaml", Discovery: "/d.conf", DiscoveryContent: []byte("d"), ControlPlane: true, InitConfig: "/k.yaml"}, Etcd: m, KubernetesVersion: "v1.36.3"}
	if err := op.Apply(context.Background(), h); err != nil {
		t.Fatal(err)
	}
	var kubeadm, etcdctl []string
	for _, r := range s.ran {
		if strings.HasPrefix(r, "kubeadm ") {
			kubeadm = append(kubeadm, r)
		} else if strings.HasPrefix(r, "etcdctl ") {
			etcdctl = append(etcdctl, r[strings.Index(r, "--command-timeout=30s ")+len("--command-timeout=30s "):])
		}
	}
	if len(kubeadm) != 3 || !strings.HasPrefix(kubeadm[2], "kubeadm join --config /j.yaml --skip-phases ") || !strings.HasSuffix(kubeadm[2], "--ignore-preflight-errors FileAvailable--etc-kubernetes-manifests-etcd.yaml") {
		t.Errorf("kubeadm %q", kubeadm)
	}
	if want := []string{"member list -w json", "member promote ff"}; !reflect.DeepEqual(etcdctl, want) {
		t.Errorf("etcdctl %q, want %q", etcdctl, want)
	}
	if data, err := os.ReadFile(filepath.Join(root, "var/lib/ferry/etcd-promoted")); err != nil || string(data) != "ff\n" {
		t.Errorf("promotion record %q %v", data, err)
	}
}
