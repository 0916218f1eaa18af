package nodeconfig

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/ferry-k8s/ferry/bundle"
	"github.com/ferry-k8s/ferry/installer/cluster"
)

// Bad input is refused with an error that names the node and the field,
// never a panic and never a partial set of files.
func TestRenderRefuses(t *testing.T) {
	example := load(t, exampleConfig)
	single := load(t, singleConfig)
	tests := []struct {
		name  string
		c     *cluster.Cluster
		node  string
		facts func(Facts) Facts
		want  []string
	}{
		{"node not in the cluster", example, "cp9", nil, []string{`node "cp9"`, "not in the cluster configuration", "cp1, cp2, cp3, gpu1, lab1"}},
		{"no control-plane address", example, "gpu1", func(f Facts) Facts {
			delete(f.NodeIPs, PlaneControlPlane)
			return f
		}, []string{"node gpu1", "facts.NodeIPs.controlPlane: missing", "192.168.10.0/24"}},
		{"no etcd address on a control plane", example, "cp2", func(f Facts) Facts {
			delete(f.NodeIPs, PlaneEtcd)
			return f
		}, []string{"node cp2", "facts.NodeIPs.etcd: missing"}},
		{"address outside its plane", example, "cp1", func(f Facts) Facts {
			f.NodeIPs[PlaneEtcd] = "192.168.10.11"
			return f
		}, []string{"node cp1", "facts.NodeIPs.etcd: 192.168.10.11 is not in spec.networks.etcd (192.168.30.0/24)"}},
		{"not an address", single, "n1", func(f Facts) Facts {
			f.NodeIPs[PlaneControlPlane] = "n1.lab.example.com"
			return f
		}, []string{"facts.NodeIPs.controlPlane", "not a unicast address"}},
		{"loopback", single, "n1", func(f Facts) Facts {
			f.NodeIPs[PlaneControlPlane] = "127.0.0.1"
			return f
		}, []string{"facts.NodeIPs.controlPlane", `"127.0.0.1"`}},
		{"unknown plane", single, "n1", func(f Facts) Facts {
			f.NodeIPs["storage"] = "10.10.0.11"
			return f
		}, []string{"facts.NodeIPs.storage: unknown plane"}},
		{"short key", single, "n1", func(f Facts) Facts {
			f.EncryptionKey = make(SecretKey, 16)
			return f
		}, []string{"facts.EncryptionKey: must be 32 bytes", "got 16"}},
		{"cgroup version", single, "n1", func(f Facts) Facts {
			f.CgroupVersion = 3
			return f
		}, []string{"facts.CgroupVersion: must be 1 or 2"}},
		{"systemd cgroups without systemd", example, "gpu1", func(f Facts) Facts {
			f.HasSystemd = false
			return f
		}, nil}, // gpu1 sets no driver: cgroupfs, no error (see TestKubeletPerNode)
		{"old Kubernetes", single, "n1", func(f Facts) Facts {
			f.KubernetesVersion = "v1.33.9"
			return f
		}, []string{"facts.KubernetesVersion: v1.33.9 is older than v1.34.0"}},
		{"not a version", single, "n1", func(f Facts) Facts {
			f.KubernetesVersion = "1.36"
			return f
		}, []string{"facts.KubernetesVersion", `"1.36"`}},
		{"content service by address", single, "n1", func(f Facts) Facts {
			f.ContentServices = []string{"10.10.0.1:5443"}
			return f
		}, []string{"facts.ContentServices[0]", "not an IP address (R29)"}},
		{"content service without port", single, "n1", func(f Facts) Facts {
			f.ContentServices = []string{"a.lab.example.com:5443", "bootstrap.lab.example.com"}
			return f
		}, []string{"facts.ContentServices[1]", "host:port"}},
		{"no content service", single, "n1", func(f Facts) Facts {
			f.ContentServices = nil
			return f
		}, []string{"facts.ContentServices: required"}},
		{"content service twice", single, "n1", func(f Facts) Facts {
			f.ContentServices = []string{"a.lab.example.com:5443", "a.lab.example.com:5443"}
			return f
		}, []string{`facts.ContentServices[1]: "a.lab.example.com:5443" is also ContentServices[0]`}},
		{"relative CA path", single, "n1", func(f Facts) Facts {
			f.ContentCAFile = "ca.crt"
			return f
		}, []string{"facts.ContentCAFile"}},
		{"image repository without a host", single, "n1", func(f Facts) Facts {
			f.ImageRepository = "k8s"
			return f
		}, []string{"facts.ImageRepository", `"k8s"`}},
		{"bad pause image", single, "n1", func(f Facts) Facts {
			f.PauseImage = "pause"
			return f
		}, []string{"facts.PauseImage"}},
		{"bad registry", single, "n1", func(f Facts) Facts {
			f.Registries = []string{"quay.io", "../etc"}
			return f
		}, []string{"facts.Registries[1]", `"../etc"`}},
		{"bad etcd tag", single, "n1", func(f Facts) Facts {
			f.EtcdImageTag = ""
			return f
		}, []string{"facts.EtcdImageTag"}},
		{"no OIDC CA", example, "cp1", func(f Facts) Facts {
			f.OIDCCA = nil
			return f
		}, []string{"facts.OIDCCA", "oidc-ca.pem", "empty"}},
		{"OIDC CA not a certificate", example, "cp1", func(f Facts) Facts {
			f.OIDCCA = []byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
			return f
		}, []string{"facts.OIDCCA", "PRIVATE KEY"}},
		{"version with a space", single, "n1", func(f Facts) Facts {
			f.Version = "1.0 beta"
			return f
		}, []string{"facts.Version", "R19"}},
		{"invalid cluster", &cluster.Cluster{APIVersion: bundle.APIVersion, Kind: cluster.KindCluster}, "n1", nil,
			[]string{"cluster configuration", "metadata.name", "spec.nodes"}},
		{"no cluster", nil, "n1", nil, []string{"no cluster configuration"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := facts()
			if tc.c == example {
				node := tc.node
				if _, ok := exampleIPs[node]; !ok {
					node = "cp1"
				}
				f = exampleFacts(t, node)
			}
			if tc.facts != nil {
				f = tc.facts(f)
			}
			files, err := Render(tc.c, tc.node, f)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil || files != nil {
				t.Fatalf("rendered %d files, want an error", len(files))
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
		})
	}
	_, err := Render(example, "cp9", exampleFacts(t, "cp1"))
	if !errors.Is(err, ErrUnknownNode) {
		t.Errorf("unknown node: %v, want ErrUnknownNode", err)
	}
	var fe *bundle.FieldError
	f := facts()
	delete(f.NodeIPs, PlaneEtcd)
	if _, err := Render(single, "n1", f); !errors.As(err, &fe) || fe.Field != "facts.NodeIPs.etcd" {
		t.Errorf("missing etcd address: %v, want a FieldError for facts.NodeIPs.etcd", err)
	}
	// The systemd cgroup driver asked for on a host without systemd.
	c := single.DeepCopy()
	c.Spec.Nodes[0].Kubelet = map[string]any{"cgroupDriver": "systemd"}
	f = facts()
	f.HasSystemd = false
	if _, err := Render(c, "n1", f); err == nil || !strings.Contains(err.Error(), "spec.nodes[0].kubelet.cgroupDriver") || !strings.Contains(err.Error(), "needs systemd") {
		t.Errorf("systemd driver without systemd: %v", err)
	}
}

// The key never shows in a printed Facts or File.
func TestSecretsDoNotPrint(t *testing.T) {
	f := facts()
	files := render(t, load(t, singleConfig), "n1", f)
	enc := files[EncryptionConfigFile]
	js, err := json.Marshal(f)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{sprint("%v %+v %#v %s %x", f, f, f, f.EncryptionKey, f.EncryptionKey), sprint("%v %s", enc, enc), string(js)} {
		if strings.Contains(s, "WlpaWlpa") || strings.Contains(s, "5a5a5a5a") || strings.Contains(s, "ZZZZ") || strings.Contains(s, "90 90 90") {
			t.Errorf("the key shows: %s", s)
		}
	}
	if !enc.Secret || enc.Mode != 0o600 || enc.Owner != KubeAPIServerUser.Name {
		t.Errorf("encryption config: %v secret=%t, want a secret 0600 file of %s", enc, enc.Secret, KubeAPIServerUser.Name)
	}
}

// systemd-sysusers and systemd-tmpfiles (the real ones, in a root
// directory) make the control plane's accounts with their fixed IDs and
// give the files their owners and modes.
func TestSysusersAndTmpfiles(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("systemd-tmpfiles needs root to change owners")
	}
	for _, prog := range []string{"systemd-sysusers", "systemd-tmpfiles"} {
		if _, err := exec.LookPath(prog); err != nil {
			t.Fatalf("%s (Debian package systemd): %v", prog, err)
		}
	}
	files := render(t, load(t, singleConfig), "n1", facts())
	root := t.TempDir()
	writeRoot(t, root, files)
	if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	// The files kubeadm and Ferry write before the control plane starts.
	for _, o := range ControlPlaneOwnership() {
		if o.Dir || o.Path == EncryptionConfigFile {
			continue
		}
		p := filepath.Join(root, o.Path)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("key\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := exec.Command("systemd-sysusers", "--root="+root, filepath.Join(root, SysusersFile)).CombinedOutput(); err != nil {
		t.Fatalf("systemd-sysusers: %v\n%s", err, out)
	}
	passwd, _ := os.ReadFile(filepath.Join(root, "etc/passwd"))
	group, _ := os.ReadFile(filepath.Join(root, "etc/group"))
	for _, u := range Users() {
		line := sprint("%s:x:%d:%d:%s:%s:/usr/sbin/nologin\n", u.Name, u.ID, u.ID, u.Comment, u.Home)
		if !strings.Contains(string(passwd), line) {
			t.Errorf("/etc/passwd lacks %q:\n%s", line, passwd)
		}
	}
	if want := sprint("%s:x:%d:%s,%s\n", ServiceAccountKeyGroup.Name, ServiceAccountKeyGroup.ID, KubeAPIServerUser.Name, KubeControllerManagerUser.Name); !strings.Contains(string(group), want) {
		t.Errorf("/etc/group lacks %q:\n%s", want, group)
	}
	if out, err := exec.Command("systemd-tmpfiles", "--root="+root, "--create", filepath.Join(root, TmpfilesFile)).CombinedOutput(); err != nil {
		t.Fatalf("systemd-tmpfiles: %v\n%s", err, out)
	}
	ids := map[string]int{"root": 0, ServiceAccountKeyGroup.Name: ServiceAccountKeyGroup.ID}
	for _, u := range Users() {
		ids[u.Name] = u.ID
	}
	for _, o := range ControlPlaneOwnership() {
		uid, gid, mode, err := owner(filepath.Join(root, o.Path))
		if err != nil {
			t.Error(err)
			continue
		}
		if uid != ids[o.Owner] || gid != ids[o.Group] || mode != o.Mode.Perm() {
			t.Errorf("%s: %d:%d %04o, want %s:%s %04o", o.Path, uid, gid, mode, o.Owner, o.Group, o.Mode.Perm())
		}
	}
}

// The kernel settings name settings this kernel has (the bridge ones once
// br_netfilter is loaded) and the modules-load.d file lists modules by
// name only.
func TestKernelFiles(t *testing.T) {
	files := render(t, load(t, singleConfig), "n1", facts())
	for _, line := range strings.Split(string(files[SysctlFile].Body()), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		key, value, ok := strings.Cut(line, " = ")
		if !ok || value == "" {
			t.Errorf("sysctl.d line %q: want key = value", line)
			continue
		}
		p := filepath.Join("/proc/sys", strings.ReplaceAll(key, ".", "/"))
		if _, err := os.Stat(p); err != nil && !(strings.HasPrefix(key, "net.bridge.") && !exists("/proc/sys/net/bridge")) {
			t.Errorf("sysctl %s: %v", key, err)
		}
	}
	var mods []string
	for _, line := range strings.Split(string(files[ModulesFile].Body()), "\n") {
		if line != "" && !strings.HasPrefix(line, "#") {
			mods = append(mods, line)
		}
	}
	if strings.Join(mods, ",") != "overlay,br_netfilter" {
		t.Errorf("modules-load.d: %q", mods)
	}
}

func sprint(format string, args ...any) string { return fmt.Sprintf(format, args...) }

// owner is a file's uid, gid and permission bits.
func owner(p string) (uid, gid int, mode fs.FileMode, err error) {
	fi, err := os.Lstat(p)
	if err != nil {
		return 0, 0, 0, err
	}
	st := fi.Sys().(*syscall.Stat_t)
	return int(st.Uid), int(st.Gid), fi.Mode().Perm(), nil
}
