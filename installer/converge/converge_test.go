package converge

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ferry-k8s/ferry/repo/rpmbuild"
)

func kinds(ops []Op) []string {
	var k []string
	for _, o := range ops {
		k = append(k, o.Kind()+" "+o.Target())
	}
	return k
}

func TestPlanIsEmptyWhenConverged(t *testing.T) {
	d := Desired{
		Packages: map[string]string{"kubelet": "1.36.3-1.ferry"},
		Dirs:     []Dir{{Path: "/etc/ferry", Mode: 0o755}},
		Files:    []File{{Path: "/etc/ferry/a", Mode: 0o644, Content: []byte("a")}},
		Units:    []Unit{{Name: "containerd.service", Start: true}},
		Kubeadm:  &KubeadmInit{Config: "/etc/ferry/kubeadm/kubeadm.yaml"},
		Labels:   map[string]string{"zone": "a"},
	}
	o := Observed{
		Packages:    map[string]string{"kubelet": "1.36.3-1.ferry", "bash": "5"},
		Files:       map[string]FileState{"/etc/ferry": {Exists: true, Dir: true, Mode: 0o755 | os.ModeDir, Owner: "root", Group: "root"}, "/etc/ferry/a": {Exists: true, Mode: 0o644, Owner: "root", Group: "root", SHA256: Digest([]byte("a"))}},
		Units:       map[string]UnitState{"containerd.service": {Enabled: true, Active: true}},
		KubeadmDone: true,
		NodeLabels:  map[string]string{"zone": "a", "other": "x"},
	}
	if ops := Plan(d, o); len(ops) != 0 {
		t.Fatalf("converged node, plan %v", kinds(ops))
	}
	if got := Format(nil); got != "0 changes\n" {
		t.Errorf("Format: %q", got)
	}
}

func TestPlanOrderAndReasons(t *testing.T) {
	d := Desired{
		Packages: map[string]string{"kubelet": "1.36.3-1.ferry", "containerd": "2.2.9-1.ferry"},
		Dirs:     []Dir{{Path: "/var/lib/etcd", Mode: 0o700, Owner: "etcd", Group: "etcd"}, {Path: "/etc/ferry", Mode: 0o755}},
		Files: []File{
			{Path: "/etc/containerd/config.toml", Mode: 0o644, Content: []byte("new"), Restarts: []string{"containerd.service"}},
			{Path: "/etc/sysctl.d/90-ferry.conf", Mode: 0o644, Content: []byte("x=1"), After: []string{"sysctl --system"}},
			{Path: "/etc/ferry/tls.key", Mode: 0o640, Group: "ferry", Content: []byte("k"), Secret: true},
		},
		Units:        []Unit{{Name: "containerd.service", Start: true}, {Name: "kubelet.service"}},
		Kubeadm:      &KubeadmInit{Config: "/etc/ferry/kubeadm/kubeadm.yaml"},
		Labels:       map[string]string{"zone": "a"},
		RemoveTaints: []string{"node-role.kubernetes.io/control-plane:NoSchedule"},
	}
	o := Observed{
		Packages: map[string]string{"kubelet": "1.35.4-1.ferry"},
		Files: map[string]FileState{
			"/etc/containerd/config.toml": {Exists: true, Mode: 0o644, Owner: "root", Group: "root", SHA256: Digest([]byte("old"))},
			"/etc/ferry":                  {Exists: true, Dir: true, Mode: 0o700 | os.ModeDir, Owner: "root", Group: "root"},
		},
		Units:       map[string]UnitState{"containerd.service": {Enabled: true, Active: true}, "kubelet.service": {}},
		KubeadmDone: true,
		NodeTaints:  []string{"node-role.kubernetes.io/control-plane:NoSchedule"},
	}
	got := kinds(Plan(d, o))
	want := []string{
		"set owner and mode /etc/ferry",
		"write file /etc/containerd/config.toml",
		"write file /etc/sysctl.d/90-ferry.conf",
		"install packages containerd-2.2.9-1.ferry kubelet-1.36.3-1.ferry",
		"run sysctl --system",
		"create directory /var/lib/etcd",
		"write file /etc/ferry/tls.key",
		"reload systemd daemon-reload",
		"restart unit containerd.service",
		"enable unit kubelet.service",
		"label node zone",
		"remove taint node-role.kubernetes.io/control-plane:NoSchedule",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("plan:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	ops := Plan(d, o)
	if r := ops[3].Reason(); r != "1 missing, 1 at another version" {
		t.Errorf("install reason %q", r)
	}
	if !strings.Contains(Format(ops), "12 changes") {
		t.Errorf("Format:\n%s", Format(ops))
	}
}

// Observe → Plan → Apply on a real directory tree and a real rpm database
// filled by dnf from a local repository; then the same again plans nothing.
func TestApplyThenNothingToDo(t *testing.T) {
	for _, p := range []string{"rpm", "dnf", "createrepo_c"} {
		if _, err := exec.LookPath(p); err != nil {
			t.Fatalf("%s is required (make deps): %v", p, err)
		}
	}
	ctx := context.Background()
	root := t.TempDir()
	repoDir := t.TempDir()
	pkg := rpmbuild.Package{Name: "ferry-test-tool", Version: "1.0", Release: "1", Arch: "noarch", Summary: "test", License: "Apache-2.0",
		BuildTime: time.Unix(1767225600, 0), Files: []rpmbuild.File{{Path: "/usr/share/ferry-test/tool", Body: []byte("tool\n"), Mode: 0o644}}}
	if err := rpmbuild.WriteFile(filepath.Join(repoDir, pkg.FileName()), pkg, rpmbuild.Options{}); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("createrepo_c", repoDir).CombinedOutput(); err != nil {
		t.Fatalf("createrepo_c: %v\n%s", err, out)
	}
	d := Desired{
		Packages: map[string]string{"ferry-test-tool": "1.0-1"},
		Dirs:     []Dir{{Path: "/etc/ferry", Mode: 0o750}},
		Files: []File{
			{Path: "/etc/ferry/serve.yaml", Mode: 0o640, Content: []byte("kind: ContentService\n")},
			{Path: "/etc/ferry/nested/deeper/file", Mode: 0o600, Content: []byte("x")},
		},
	}
	h := &Host{Root: root, StateDir: "/var/lib/ferry",
		DNFArgs: []string{"--setopt=reposdir=/dev/null", "--setopt=cachedir=" + t.TempDir(), "--releasever=1", "--disableplugin=*",
			"--repofrompath=local," + repoDir, "--repo=local", "--setopt=local.gpgcheck=0"}}
	o, err := h.Observe(ctx, d)
	if err != nil {
		t.Fatal(err)
	}
	ops := Plan(d, o)
	if len(ops) != 4 {
		t.Fatalf("fresh root: plan %v", kinds(ops))
	}
	if n, err := h.Apply(ctx, ops); err != nil || n != 4 {
		t.Fatalf("apply: %d, %v", n, err)
	}
	if data, err := os.ReadFile(filepath.Join(root, "usr/share/ferry-test/tool")); err != nil || string(data) != "tool\n" {
		t.Fatalf("package not installed: %q %v", data, err)
	}
	if fi, err := os.Stat(filepath.Join(root, "etc/ferry/serve.yaml")); err != nil || fi.Mode().Perm() != 0o640 {
		t.Fatalf("serve.yaml: %v %v", fi, err)
	}
	o, err = h.Observe(ctx, d)
	if err != nil {
		t.Fatal(err)
	}
	if ops := Plan(d, o); len(ops) != 0 {
		t.Fatalf("second run: plan %v", kinds(ops))
	}
	// A local edit and a mode change are both reverted, and nothing else.
	os.WriteFile(filepath.Join(root, "etc/ferry/serve.yaml"), []byte("edited"), 0o640)
	os.Chmod(filepath.Join(root, "etc/ferry"), 0o755)
	o, _ = h.Observe(ctx, d)
	ops = Plan(d, o)
	if got := strings.Join(kinds(ops), ";"); got != "set owner and mode /etc/ferry;write file /etc/ferry/serve.yaml" {
		t.Fatalf("after edits: %s", got)
	}
	// The journal has a started and a done record for every step.
	data, err := os.ReadFile(filepath.Join(root, "var/lib/ferry/journal.jsonl"))
	if err != nil || strings.Count(string(data), `"status":"done"`) != 4 || strings.Count(string(data), `"status":"started"`) != 4 {
		t.Fatalf("journal: %s %v", data, err)
	}
}

// A failing step stops the apply, names the step, and is journaled.
func TestApplyStopsAtTheFailingStep(t *testing.T) {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "etc"), 0o755)
	os.WriteFile(filepath.Join(root, "etc/blocker"), []byte("file"), 0o644)
	d := Desired{
		Dirs:  []Dir{{Path: "/etc/blocker", Mode: 0o755}},
		Files: []File{{Path: "/etc/after", Mode: 0o644, Content: []byte("x")}},
	}
	h := &Host{Root: root, StateDir: "/var/lib/ferry"}
	o, err := h.Observe(context.Background(), d)
	if err != nil {
		t.Fatal(err)
	}
	ops := Plan(d, o)
	n, err := h.Apply(context.Background(), ops)
	if err == nil || n != 0 || !strings.Contains(err.Error(), "step 1 of 2") || !strings.Contains(err.Error(), "/etc/blocker") {
		t.Fatalf("want a failure at step 1 naming /etc/blocker, got %d, %v", n, err)
	}
	if _, err := os.Stat(filepath.Join(root, "etc/after")); err == nil {
		t.Fatal("apply went on after a failed step")
	}
	data, _ := os.ReadFile(filepath.Join(root, "var/lib/ferry/journal.jsonl"))
	if !strings.Contains(string(data), `"status":"failed"`) {
		t.Fatalf("journal lacks the failure: %s", data)
	}
}

// R30: after init, a change of kubeadm's inputs (a new node address in its
// configuration) plans a reconfiguration, once; unchanged inputs plan none.
func TestPlanReconfiguresKubeadmWhenItsInputsChange(t *testing.T) {
	d := Desired{Kubeadm: &KubeadmInit{Config: "/etc/ferry/kubeadm/kubeadm.yaml", InputDigest: "new"}}
	for _, tc := range []struct {
		name string
		o    Observed
		want string
	}{
		{"not initialized", Observed{Applied: map[string]string{}}, "kubeadm init /etc/ferry/kubeadm/kubeadm.yaml"},
		{"inputs changed", Observed{KubeadmDone: true, Applied: map[string]string{KubeadmRecord: "old"}}, "kubeadm reconfigure /etc/ferry/kubeadm/kubeadm.yaml"},
		{"inputs unchanged", Observed{KubeadmDone: true, Applied: map[string]string{KubeadmRecord: "new"}}, ""},
	} {
		if got := strings.Join(kinds(Plan(d, tc.o)), "\n"); got != tc.want {
			t.Errorf("%s: plan %q, want %q", tc.name, got, tc.want)
		}
	}
}

// A control plane that joins: its etcd member first (a learner), then
// kubeadm join once the membership is recorded, then the promotion; a
// taint it lacks is added. Each step only once.
func TestPlanControlPlaneJoin(t *testing.T) {
	m := &EtcdMember{Name: "cp2", PeerURL: "https://cp2.example.com:2380", StateFile: "/s", PromotedFile: "/p"}
	d := Desired{Join: &KubeadmJoin{Config: "/j", ControlPlane: true}, EtcdMember: m,
		Kubeadm: &KubeadmInit{Config: "/k"}, Taints: []string{"node-role.kubernetes.io/control-plane:NoSchedule", "gpu=a100:NoExecute"}}
	for _, tc := range []struct {
		name string
		o    Observed
		want string
	}{
		{"new", Observed{APIUnknown: true}, "add etcd member cp2 https://cp2.example.com:2380"},
		{"member added", Observed{APIUnknown: true, EtcdMemberAdded: true}, "kubeadm join /j"},
		{"joined, not promoted", Observed{APIUnknown: true, EtcdMemberAdded: true, Joined: true, KubeadmDone: true}, "promote etcd member cp2"},
		{"promoted, taints missing", Observed{EtcdMemberAdded: true, Joined: true, KubeadmDone: true, EtcdPromoted: true, NodeTaints: []string{"node-role.kubernetes.io/control-plane:NoSchedule"}},
			"taint node gpu=a100:NoExecute"},
		{"done", Observed{EtcdMemberAdded: true, Joined: true, KubeadmDone: true, EtcdPromoted: true, NodeTaints: []string{"gpu:NoExecute", "node-role.kubernetes.io/control-plane:NoSchedule"}}, ""},
	} {
		if got := strings.Join(kinds(Plan(d, tc.o)), "\n"); got != tc.want {
			t.Errorf("%s: plan %q, want %q", tc.name, got, tc.want)
		}
	}
}

// R50: a Node Ferry manages that cluster.yaml no longer lists is removed;
// unmanaged Nodes and the configuration's own are left alone.
func TestPlanRemovesNodesNotInTheConfiguration(t *testing.T) {
	d := Desired{Kubeadm: &KubeadmInit{Config: "/k"}, Labels: map[string]string{"a": "b"}, ClusterNodes: []string{"cp1", "w1"}}
	o := Observed{KubeadmDone: true, NodeLabels: map[string]string{"a": "b"}, ClusterNodes: []string{"cp1", "w1", "w2"}}
	if got := strings.Join(kinds(Plan(d, o)), "\n"); got != "remove node w2" {
		t.Errorf("plan %q", got)
	}
	o.APIUnknown = true
	if got := Plan(d, o); len(got) != 0 {
		t.Errorf("API unknown: plan %v", kinds(got))
	}
	d.ClusterNodes = nil
	o.APIUnknown = false
	if got := Plan(d, o); len(got) != 0 {
		t.Errorf("not checked: plan %v", kinds(got))
	}
}
