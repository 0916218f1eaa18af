package converge

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

func TestPlanFiles(t *testing.T) {
	dirs := []Dir{{Path: "/etc/ferry", Mode: 0o755}, {Path: "/var/lib/etcd", Mode: 0o700, Owner: "etcd", Group: "etcd"}}
	files := []File{{Path: "/etc/ferry/a", Mode: 0o644, Content: []byte("a")}, {Path: "/etc/ferry/k", Mode: 0o640, Group: "ferry", Content: []byte("k")}}
	d := Desired{Dirs: dirs, Files: files}
	rootDir := FileState{Exists: true, Dir: true, Mode: 0o755 | os.ModeDir, Owner: "root", Group: "root"}
	etcdDir := FileState{Exists: true, Dir: true, Mode: 0o700 | os.ModeDir, Owner: "etcd", Group: "etcd"}
	fileA := FileState{Exists: true, Mode: 0o644, Owner: "root", Group: "root", SHA256: Digest([]byte("a"))}
	fileK := FileState{Exists: true, Mode: 0o640, Owner: "root", Group: "ferry", SHA256: Digest([]byte("k"))}
	converged := map[string]FileState{"/etc/ferry": rootDir, "/var/lib/etcd": etcdDir, "/etc/ferry/a": fileA, "/etc/ferry/k": fileK}
	with := func(p string, st FileState) map[string]FileState {
		m := map[string]FileState{}
		for k, v := range converged {
			m[k] = v
		}
		m[p] = st
		return m
	}
	root := func(d Desired, o Observed, _ []Op) []Op { return planFiles(d, o, true) }
	users := func(d Desired, o Observed, _ []Op) []Op { return planFiles(d, o, false) }
	runPlanCases(t, root, []planCase{
		{name: "nothing there", d: d, o: Observed{}, want: []string{"create directory /etc/ferry (missing)", "write file /etc/ferry/a (missing)"}},
		{name: "converged", d: d, o: Observed{Files: converged}},
		{name: "a file where the directory goes", d: d, o: Observed{Files: with("/etc/ferry", FileState{Exists: true, Mode: 0o644})},
			want: []string{"create directory /etc/ferry (a file is in the way)"}},
		{name: "directory mode", d: d, o: Observed{Files: with("/etc/ferry", FileState{Exists: true, Dir: true, Mode: 0o700 | os.ModeDir, Owner: "root", Group: "root"})},
			want: []string{"set owner and mode /etc/ferry (is -rwx------ root:root, want -rwxr-xr-x root:root)"}},
		{name: "content differs", d: d, o: Observed{Files: with("/etc/ferry/a", FileState{Exists: true, Mode: 0o600, Owner: "root", Group: "root", SHA256: Digest([]byte("b"))})},
			want: []string{"write file /etc/ferry/a (content differs)"}},
		{name: "a directory where the file goes", d: d, o: Observed{Files: with("/etc/ferry/a", rootDir)},
			want: []string{"write file /etc/ferry/a (a directory is in the way)"}},
		{name: "file owner", d: d, o: Observed{Files: with("/etc/ferry/a", FileState{Exists: true, Mode: 0o644, Owner: "ferry", Group: "root", SHA256: Digest([]byte("a"))})},
			want: []string{"set owner and mode /etc/ferry/a (is -rw-r--r-- ferry:root, want -rw-r--r-- root:root)"}},
	})
	runPlanCases(t, users, []planCase{
		{name: "nothing there", d: d, o: Observed{}, want: []string{"create directory /var/lib/etcd (missing)", "write file /etc/ferry/k (missing)"}},
		{name: "converged", d: d, o: Observed{Files: converged}},
		{name: "group", d: d, o: Observed{Files: with("/etc/ferry/k", FileState{Exists: true, Mode: 0o640, Owner: "root", Group: "root", SHA256: Digest([]byte("k"))})},
			want: []string{"set owner and mode /etc/ferry/k (is -rw-r----- root:root, want -rw-r----- root:ferry)"}},
	})
}

func TestPlanOwned(t *testing.T) {
	owned := []Owned{{Path: "/etc/kubernetes/admin.conf", Mode: 0o640, Group: "kube"}, {Path: "/etc/kubernetes/pki/sa.key", Mode: 0o640, Group: "kube"}}
	wrong := map[string]FileState{"/etc/kubernetes/admin.conf": {Exists: true, Mode: 0o600, Owner: "root", Group: "root"}}
	runPlanCases(t, alone(planOwned), []planCase{
		{name: "before kubeadm init", d: Desired{Owned: owned, Kubeadm: &KubeadmInit{}}, o: Observed{Files: wrong}},
		{name: "after kubeadm init: only what exists", d: Desired{Owned: owned, Kubeadm: &KubeadmInit{}}, o: Observed{KubeadmDone: true, Files: wrong},
			want: []string{"set owner and mode /etc/kubernetes/admin.conf (is -rw------- root:root, want -rw-r----- root:kube)"}},
		{name: "no kubeadm init on the node", d: Desired{Owned: owned}, o: Observed{Files: wrong},
			want: []string{"set owner and mode /etc/kubernetes/admin.conf (is -rw------- root:root, want -rw-r----- root:kube)"}},
		{name: "right", d: Desired{Owned: owned}, o: Observed{Files: map[string]FileState{"/etc/kubernetes/admin.conf": {Exists: true, Mode: 0o640, Owner: "root", Group: "kube"}}}},
	})
}

// FixPerms applies alone, on a real file, with the node's group names;
// a second apply changes nothing.
func TestFixPermsApply(t *testing.T) {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "etc"), 0o755)
	if err := os.WriteFile(filepath.Join(root, "etc/group"), []byte("root:x:0:\nkube:x:4242:\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(root, "etc/admin.conf")
	if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	h := &Host{Root: root, StateDir: "/var/lib/ferry"}
	op := FixPerms{Path: "/etc/admin.conf", Mode: 0o640, Group: "kube"}
	for range 2 {
		if err := op.Apply(context.Background(), h); err != nil {
			t.Fatal(err)
		}
	}
	d := Desired{Owned: []Owned{{Path: "/etc/admin.conf", Mode: 0o640, Group: "kube"}}}
	o, err := h.Observe(context.Background(), d)
	if err != nil {
		t.Fatal(err)
	}
	if st := o.Files["/etc/admin.conf"]; st.Mode.Perm() != 0o640 || st.Group != "kube" || st.Owner != "root" {
		t.Errorf("after apply: %+v", st)
	}
	if ops := Plan(d, o); len(ops) != 0 {
		t.Errorf("plan after apply: %q", strs(ops))
	}
	if err := (FixPerms{Path: "/etc/admin.conf", Mode: 0o640, Group: "nosuch"}).Apply(context.Background(), h); err == nil {
		t.Error("an unknown group is accepted")
	}
}
