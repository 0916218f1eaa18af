package converge

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"k8s.io/client-go/tools/clientcmd"
)

// kubeletConf is a kubelet.conf as the kubelet writes it after its TLS
// bootstrap: the endpoint kubeadm join used, the rotated client
// certificate by path.
const kubeletConf = `apiVersion: v1
clusters:
- cluster:
    certificate-authority-data: Y2EK
    server: https://api.lab.example.com:6443
  name: default-cluster
contexts:
- context:
    cluster: default-cluster
    namespace: default
    user: default-auth
  name: default-context
current-context: default-context
kind: Config
preferences: {}
users:
- name: default-auth
  user:
    client-certificate: /var/lib/kubelet/pki/kubelet-client-current.pem
    client-key: /var/lib/kubelet/pki/kubelet-client-current.pem
`

func TestPointKubeconfig(t *testing.T) {
	p := filepath.Join(t.TempDir(), "kubelet.conf")
	if err := os.WriteFile(p, []byte(kubeletConf), 0o600); err != nil {
		t.Fatal(err)
	}
	st, err := observeKubeconfig(p)
	if err != nil {
		t.Fatal(err)
	}
	if want := (KubeconfigState{Exists: true, Server: "https://api.lab.example.com:6443"}); st != want {
		t.Fatalf("observed %+v, want %+v", st, want)
	}
	if err := pointKubeconfig(p, "https://127.0.0.1:6444", "api.lab.example.com"); err != nil {
		t.Fatal(err)
	}
	if st, err = observeKubeconfig(p); err != nil {
		t.Fatal(err)
	}
	if want := (KubeconfigState{Exists: true, Server: "https://127.0.0.1:6444", TLSServerName: "api.lab.example.com"}); st != want {
		t.Fatalf("after pointing: %+v, want %+v", st, want)
	}
	// Everything else is kept: credentials, CA, context; and the mode.
	before, _ := clientcmd.Load([]byte(kubeletConf))
	after, err := clientcmd.LoadFromFile(p)
	if err != nil {
		t.Fatal(err)
	}
	after.Clusters["default-cluster"].Server = before.Clusters["default-cluster"].Server
	after.Clusters["default-cluster"].TLSServerName = ""
	after.Clusters["default-cluster"].LocationOfOrigin = ""
	for _, a := range after.AuthInfos {
		a.LocationOfOrigin = ""
	}
	for _, c := range after.Contexts {
		c.LocationOfOrigin = ""
	}
	if !reflect.DeepEqual(before.AuthInfos, after.AuthInfos) || !reflect.DeepEqual(before.Contexts, after.Contexts) ||
		!reflect.DeepEqual(before.Clusters, after.Clusters) || after.CurrentContext != before.CurrentContext {
		t.Errorf("pointing changed more than the server:\n%+v\n%+v", before, after)
	}
	if fi, _ := os.Stat(p); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode().Perm())
	}

	// Missing: not an error (planned after the join that writes it);
	// garbage: an error naming the file.
	if st, err := observeKubeconfig(filepath.Join(t.TempDir(), "none")); err != nil || st.Exists {
		t.Errorf("missing kubeconfig: %+v %v", st, err)
	}
	bad := filepath.Join(t.TempDir(), "bad.conf")
	os.WriteFile(bad, []byte("clusters: [[["), 0o600)
	if _, err := observeKubeconfig(bad); err == nil || !strings.Contains(err.Error(), bad) {
		t.Errorf("garbage kubeconfig: %v", err)
	}
	if err := pointKubeconfig(bad, "https://127.0.0.1:6444", "x"); err == nil || !strings.Contains(err.Error(), bad) {
		t.Errorf("pointing a garbage kubeconfig: %v", err)
	}
}

func TestPlanKubeconfigs(t *testing.T) {
	kc := Kubeconfig{Path: "/etc/kubernetes/kubelet.conf", Server: "https://127.0.0.1:6444", TLSServerName: "api.lab.example.com", Restarts: []string{"kubelet.service"}}
	d := Desired{Kubeconfigs: []Kubeconfig{kc}, Join: &KubeadmJoin{Config: "/etc/ferry/kubeadm/join.yaml"},
		Units: []Unit{{Name: "ferry-apiproxy.service", Start: true, NoBlock: true}}}
	for _, tc := range []struct {
		name string
		o    Observed
		want []string
	}{
		{"joins: pointed right after", Observed{Units: map[string]UnitState{"ferry-apiproxy.service": {}}}, []string{"enable unit ferry-apiproxy.service", "start unit ferry-apiproxy.service",
			"kubeadm join /etc/ferry/kubeadm/join.yaml", "point kubeconfig /etc/kubernetes/kubelet.conf → https://127.0.0.1:6444"}},
		{"joined, at the endpoint", Observed{Joined: true, Kubeconfigs: map[string]KubeconfigState{kc.Path: {Exists: true, Server: "https://api.lab.example.com:6443"}}},
			[]string{"point kubeconfig /etc/kubernetes/kubelet.conf → https://127.0.0.1:6444"}},
		{"joined, another name", Observed{Joined: true, Kubeconfigs: map[string]KubeconfigState{kc.Path: {Exists: true, Server: kc.Server, TLSServerName: "old.lab.example.com"}}},
			[]string{"point kubeconfig /etc/kubernetes/kubelet.conf → https://127.0.0.1:6444"}},
		{"joined, one cluster of two differs", Observed{Joined: true, Kubeconfigs: map[string]KubeconfigState{kc.Path: {Exists: true, Server: kc.Server, TLSServerName: kc.TLSServerName, Mixed: true}}},
			[]string{"point kubeconfig /etc/kubernetes/kubelet.conf → https://127.0.0.1:6444"}},
		{"converged", Observed{Joined: true, Kubeconfigs: map[string]KubeconfigState{kc.Path: {Exists: true, Server: kc.Server, TLSServerName: kc.TLSServerName}}}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := tc.o
			if o.Units == nil {
				o.Units = map[string]UnitState{"ferry-apiproxy.service": {Enabled: true, Active: true}}
			}
			ops := Plan(d, o)
			if got := kinds(ops); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("plan %q, want %q", got, tc.want)
			}
			for _, op := range ops {
				if s, ok := op.(StartUnit); ok && !s.NoBlock {
					t.Error("the proxy is started waiting for its readiness")
				}
			}
		})
	}
	// Without a join or init that writes it, a missing kubeconfig is left
	// alone (a node that has not joined yet, and cannot).
	if ops := Plan(Desired{Kubeconfigs: []Kubeconfig{kc}}, Observed{}); len(ops) != 0 {
		t.Errorf("missing kubeconfig, nothing writes it: plan %q", kinds(ops))
	}
}

// TestApplyKubeconfig points the file and restarts the units that read
// it, without blocking on --no-block units.
func TestApplyKubeconfig(t *testing.T) {
	root := t.TempDir()
	p := filepath.Join(root, "etc/kubernetes/kubelet.conf")
	os.MkdirAll(filepath.Dir(p), 0o755)
	if err := os.WriteFile(p, []byte(kubeletConf), 0o600); err != nil {
		t.Fatal(err)
	}
	var ran []string
	// systemctl is the boundary: the test machine's systemd is not the
	// node's, so its calls are recorded instead of run.
	h := &Host{Root: root, StateDir: "/var/lib/ferry", Run: func(_ context.Context, name string, args ...string) ([]byte, error) {
		ran = append(ran, name+" "+strings.Join(args, " "))
		return nil, nil
	}}
	kc := Kubeconfig{Path: "/etc/kubernetes/kubelet.conf", Server: "https://127.0.0.1:6444", TLSServerName: "api.lab.example.com", Restarts: []string{"kubelet.service"}}
	d := Desired{Kubeconfigs: []Kubeconfig{kc}, Units: []Unit{{Name: "ferry-apiproxy.service", Start: true, NoBlock: true}}}
	o, err := h.Observe(context.Background(), d)
	if err != nil {
		t.Fatal(err)
	}
	o.Joined = true
	ops := Plan(d, o)
	if _, err := h.Apply(context.Background(), ops); err != nil {
		t.Fatal(err)
	}
	want := []string{"systemctl enable ferry-apiproxy.service", "systemctl --no-block start ferry-apiproxy.service", "systemctl restart kubelet.service"}
	var got []string
	for _, r := range ran {
		if !strings.HasPrefix(r, "systemctl is-") {
			got = append(got, r)
		}
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ran %q, want %q", got, want)
	}
	if o, err = h.Observe(context.Background(), d); err != nil {
		t.Fatal(err)
	}
	if st := o.Kubeconfigs[kc.Path]; st.Server != kc.Server || st.TLSServerName != kc.TLSServerName {
		t.Errorf("after apply: %+v", st)
	}
}

// TestUnitOnItsWayUpIsNotStartedAgain: a Type=notify unit that is not
// ready yet (systemctl is-active says activating) is left alone.
func TestUnitOnItsWayUpIsNotStartedAgain(t *testing.T) {
	for state, wantStart := range map[string]bool{"active": false, "activating": false, "reloading": false, "inactive": true, "failed": true} {
		// systemctl is the boundary (the test machine's systemd is not the
		// node's): its answers are scripted.
		h := &Host{Root: t.TempDir(), StateDir: "/var/lib/ferry", Run: func(_ context.Context, name string, args ...string) ([]byte, error) {
			switch {
			case len(args) > 0 && args[0] == "is-enabled":
				return []byte("enabled\n"), nil
			case len(args) > 0 && args[0] == "is-active":
				return []byte(state + "\n"), nil
			}
			return nil, nil
		}}
		d := Desired{Units: []Unit{{Name: "ferry-apiproxy.service", Start: true, NoBlock: true}}}
		o, err := h.Observe(context.Background(), d)
		if err != nil {
			t.Fatal(err)
		}
		if got := len(Plan(d, o)) > 0; got != wantStart {
			t.Errorf("is-active %s: plan %q", state, kinds(Plan(d, o)))
		}
	}
}
