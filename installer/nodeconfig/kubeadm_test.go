package nodeconfig

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// The rendered files name their paths on the node (/etc/ferry/kubeadm/…);
// the tests write them under a temporary root and point kubeadm there by
// rewriting that one directory in the kubeadm configurations.
func relocate(t *testing.T, root string, f File) string {
	t.Helper()
	p := filepath.Join(root, f.Path)
	content := bytes.ReplaceAll(f.Content, []byte(KubeadmDir+"/"), []byte(filepath.Join(root, KubeadmDir)+"/"))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, content, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// nodeRoot writes a node's files under a new root and returns it.
func nodeRoot(t *testing.T, files map[string]File) string {
	t.Helper()
	root := t.TempDir()
	for _, f := range files {
		relocate(t, root, f)
	}
	// join.yaml discovers the cluster from a kubeconfig written at join
	// time; kubeadm checks that it exists.
	disc := filepath.Join(root, DiscoveryFile)
	if err := os.WriteFile(disc, []byte(discoveryKubeconfig), 0o600); err != nil {
		t.Fatal(err)
	}
	return root
}

const discoveryKubeconfig = `apiVersion: v1
kind: Config
clusters:
- name: lab
  cluster:
    server: https://api.lab.example.com:6443
contexts:
- name: bootstrap
  context: {cluster: lab, user: bootstrap}
current-context: bootstrap
users:
- name: bootstrap
  user: {token: abcdef.0123456789abcdef}
`

// runKubeadm runs kubeadm with its dry-run directory set to dryRun, so a
// dry run writes nothing outside it.
func runKubeadm(t *testing.T, dryRun string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(kubeadm(t), args...)
	cmd.Env = append(os.Environ(), "KUBEADM_INIT_DRYRUN_DIR="+dryRun)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

type kubeadmCase struct {
	name, config, node string
	facts              func(t *testing.T) Facts
}

func kubeadmCases() []kubeadmCase {
	ex := func(node string) func(t *testing.T) Facts {
		return func(t *testing.T) Facts { return exampleFacts(t, node) }
	}
	return []kubeadmCase{
		{"single", singleConfig, "n1", func(*testing.T) Facts { return facts() }},
		{"example-cp1", exampleConfig, "cp1", ex("cp1")},
		{"example-gpu1", exampleConfig, "gpu1", ex("gpu1")},
		{"example-lab1", exampleConfig, "lab1", ex("lab1")},
	}
}

// kubeadm itself accepts every configuration Ferry renders: init (on
// control-plane nodes), join and upgrade. Its decoding is strict, so a
// misspelt field of any document fails.
func TestKubeadmConfigValidate(t *testing.T) {
	for _, tc := range kubeadmCases() {
		t.Run(tc.name, func(t *testing.T) {
			files := render(t, load(t, tc.config), tc.node, tc.facts(t))
			root := nodeRoot(t, files)
			configs := []string{JoinConfigFile, UpgradeConfigFile}
			if _, ok := files[InitConfigFile]; ok {
				configs = append(configs, InitConfigFile)
			}
			for _, c := range configs {
				out, err := runKubeadm(t, t.TempDir(), "config", "validate", "--config", filepath.Join(root, c))
				if err != nil || !strings.Contains(out, "ok") {
					t.Errorf("kubeadm config validate %s: %v\n%s", c, err, out)
				}
			}
		})
	}
}

// A minimal Pod, as kubeadm writes static Pod manifests.
type pod struct {
	Metadata struct {
		Annotations map[string]string `json:"annotations"`
	} `json:"metadata"`
	Spec struct {
		SecurityContext struct {
			RunAsUser          *int64  `json:"runAsUser"`
			RunAsGroup         *int64  `json:"runAsGroup"`
			RunAsNonRoot       *bool   `json:"runAsNonRoot"`
			SupplementalGroups []int64 `json:"supplementalGroups"`
		} `json:"securityContext"`
		Containers []struct {
			Name            string   `json:"name"`
			Command         []string `json:"command"`
			Args            []string `json:"args"`
			SecurityContext struct {
				ReadOnlyRootFilesystem   *bool `json:"readOnlyRootFilesystem"`
				AllowPrivilegeEscalation *bool `json:"allowPrivilegeEscalation"`
				Capabilities             struct {
					Add  []string `json:"add"`
					Drop []string `json:"drop"`
				} `json:"capabilities"`
			} `json:"securityContext"`
			VolumeMounts []struct {
				Name      string `json:"name"`
				MountPath string `json:"mountPath"`
				ReadOnly  bool   `json:"readOnly"`
			} `json:"volumeMounts"`
		} `json:"containers"`
		Volumes []struct {
			Name     string `json:"name"`
			HostPath *struct {
				Path string `json:"path"`
				Type string `json:"type"`
			} `json:"hostPath"`
			EmptyDir *struct{} `json:"emptyDir"`
		} `json:"volumes"`
	} `json:"spec"`
}

func readYAML(t *testing.T, file string, v any) {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(data, v); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
}

// flags are a container's effective flags: command, then args; the last
// of a repeated flag wins (as in pflag and Go's flag package).
func flags(command, args []string) map[string]string {
	m := map[string]string{}
	for _, a := range append(slices.Clone(command), args...) {
		if name, value, ok := strings.Cut(strings.TrimPrefix(a, "--"), "="); ok && strings.HasPrefix(a, "--") {
			m[name] = value
		}
	}
	return m
}

// `kubeadm init --dry-run` with the rendered configuration and patches
// (as root, without a kubelet or container runtime: preflight errors are
// ignored, nothing is written outside the dry-run directory) writes the
// static Pod manifests and the kubelet's configuration as a real init
// would. They run every component as its own user on a read-only root
// filesystem, bind each to its plane's address, keep profiling off and
// mount the encryption configuration.
func TestKubeadmInitDryRun(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("kubeadm init --dry-run needs root")
	}
	for _, tc := range kubeadmCases()[:2] {
		t.Run(tc.name, func(t *testing.T) {
			f := tc.facts(t)
			c := load(t, tc.config)
			files := render(t, c, tc.node, f)
			root := nodeRoot(t, files)
			dry := t.TempDir()
			etcBefore := exists("/etc/kubernetes")
			out, err := runKubeadm(t, dry, "init", "--config", filepath.Join(root, InitConfigFile), "--dry-run", "--ignore-preflight-errors=all")
			if err != nil {
				t.Fatalf("kubeadm init --dry-run: %v\n%s", err, out)
			}
			if !etcBefore && exists("/etc/kubernetes") {
				t.Error("kubeadm init --dry-run created /etc/kubernetes")
			}
			for _, p := range staticPods {
				if !strings.Contains(out, `[patches] Applied patch of type "application/strategic-merge-patch+json" to target "`+p.name+`"`) {
					t.Errorf("kubeadm did not apply the %s patch:\n%s", p.name, out)
				}
			}
			cpIP, etcdIP := f.NodeIPs[PlaneControlPlane], f.NodeIPs[PlaneEtcd]
			host := c.Node(tc.node).Hostname
			for _, sp := range staticPods {
				var p pod
				readYAML(t, filepath.Join(dry, sp.name+".yaml"), &p)
				checkPod(t, sp, &p)
				fl := flags(p.Spec.Containers[0].Command, p.Spec.Containers[0].Args)
				if fl["profiling"] == "true" {
					t.Errorf("%s: --profiling=true", sp.name)
				}
				want := map[string]string{}
				switch sp.name {
				case "etcd":
					want = map[string]string{
						"listen-client-urls":          "https://127.0.0.1:2379,https://" + etcdIP + ":2379",
						"listen-peer-urls":            "https://" + etcdIP + ":2380",
						"advertise-client-urls":       "https://" + host + ":2379",
						"initial-advertise-peer-urls": "https://" + host + ":2380",
						"initial-cluster":             tc.node + "=https://" + host + ":2380",
						"data-dir":                    EtcdDataDir,
						"tls-min-version":             "TLS1.2",
						"client-cert-auth":            "true",
						"peer-client-cert-auth":       "true",
					}
					if got := p.Metadata.Annotations["kubeadm.kubernetes.io/etcd.advertise-client-urls"]; got != "https://"+host+":2379" {
						t.Errorf("etcd's advertise-client-urls annotation: %q", got)
					}
				case "kube-apiserver":
					want = map[string]string{
						"bind-address":               cpIP,
						"advertise-address":          cpIP,
						"profiling":                  "false",
						"encryption-provider-config": EncryptionConfigFile,
						"authentication-config":      AuthenticationConfigFile,
						"etcd-servers":               "https://localhost:2379",
						"tls-min-version":            "VersionTLS12",
					}
					for _, file := range []string{EncryptionConfigFile, AuthenticationConfigFile} {
						if !mounted(&p, file, true) {
							t.Errorf("kube-apiserver does not mount %s read-only from the host", file)
						}
					}
					if _, set := fl["anonymous-auth"]; set {
						t.Error("kube-apiserver: --anonymous-auth is set (the authentication configuration says it)")
					}
				case "kube-controller-manager", "kube-scheduler":
					want = map[string]string{"bind-address": "127.0.0.1", "profiling": "false"}
				}
				for k, v := range want {
					if fl[k] != v {
						t.Errorf("%s: --%s=%q, want %q", sp.name, k, fl[k], v)
					}
				}
			}
			// R27: the port is off explicitly (kubeadm leaves a zero out of
			// the file it writes; the kubelet's default for a missing one is 0).
			if !strings.Contains(string(files[InitConfigFile].Body()), "\nreadOnlyPort: 0\n") {
				t.Error("the KubeletConfiguration does not set readOnlyPort: 0")
			}
			var kc map[string]any
			readYAML(t, filepath.Join(dry, "config.yaml"), &kc)
			checkKubelet(t, kc, map[string]any{"address": cpIP, "cgroupDriver": "systemd", "tlsCertFile": KubeletServingCert, "serverTLSBootstrap": nil})
			env, err := os.ReadFile(filepath.Join(dry, "kubeadm-flags.env"))
			if err != nil || !strings.Contains(string(env), "--node-ip="+cpIP) {
				t.Errorf("kubeadm-flags.env lacks --node-ip=%s: %s %v", cpIP, env, err)
			}
		})
	}
}

func exists(p string) bool { _, err := os.Lstat(p); return err == nil }

// checkPod: the component runs as its user, unprivileged, on a read-only
// root filesystem with /tmp an emptyDir (R12, R14).
func checkPod(t *testing.T, sp staticPod, p *pod) {
	t.Helper()
	sc := p.Spec.SecurityContext
	id := int64(sp.user.ID)
	if sc.RunAsUser == nil || *sc.RunAsUser != id || sc.RunAsGroup == nil || *sc.RunAsGroup != id || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot {
		t.Errorf("%s: pod securityContext %+v, want runAsUser = runAsGroup = %d, runAsNonRoot", sp.name, sc, id)
	}
	for _, g := range sp.groups {
		if !slices.Contains(sc.SupplementalGroups, int64(g)) {
			t.Errorf("%s: supplementalGroups %v lack %d", sp.name, sc.SupplementalGroups, g)
		}
	}
	if len(p.Spec.Containers) != 1 {
		t.Fatalf("%s: %d containers", sp.name, len(p.Spec.Containers))
	}
	ctr := p.Spec.Containers[0]
	csc := ctr.SecurityContext
	if csc.ReadOnlyRootFilesystem == nil || !*csc.ReadOnlyRootFilesystem {
		t.Errorf("%s: root filesystem not read-only", sp.name)
	}
	if csc.AllowPrivilegeEscalation == nil || *csc.AllowPrivilegeEscalation {
		t.Errorf("%s: privilege escalation allowed", sp.name)
	}
	if !slices.Equal(csc.Capabilities.Drop, []string{"ALL"}) || len(csc.Capabilities.Add) > 0 {
		t.Errorf("%s: capabilities %+v, want all dropped", sp.name, csc.Capabilities)
	}
	tmp := false
	for _, m := range ctr.VolumeMounts {
		for _, v := range p.Spec.Volumes {
			if v.Name == m.Name && m.MountPath == "/tmp" && v.EmptyDir != nil {
				tmp = true
			}
		}
		if m.MountPath == CertificatesDir+"/etcd" && !m.ReadOnly {
			t.Errorf("%s: etcd's certificates mounted writable", sp.name)
		}
	}
	if !tmp {
		t.Errorf("%s: /tmp is not an emptyDir", sp.name)
	}
}

// mounted: file is a hostPath volume of the pod (type File) mounted at the
// same path.
func mounted(p *pod, file string, readOnly bool) bool {
	for _, v := range p.Spec.Volumes {
		if v.HostPath == nil || v.HostPath.Path != file || v.HostPath.Type != "File" {
			continue
		}
		for _, m := range p.Spec.Containers[0].VolumeMounts {
			if m.Name == v.Name && m.MountPath == file && m.ReadOnly == readOnly {
				return true
			}
		}
	}
	return false
}

// checkKubelet checks a kubelet configuration as kubeadm wrote it: Ferry's
// fixed settings (R22, R27) and want (nil: absent or false).
func checkKubelet(t *testing.T, kc map[string]any, want map[string]any) {
	t.Helper()
	if p, ok := kc["readOnlyPort"]; ok && p != float64(0) {
		t.Errorf("kubelet readOnlyPort %v (R27)", p)
	}
	get := func(path ...string) any {
		var v any = kc
		for _, k := range path {
			m, _ := v.(map[string]any)
			v = m[k]
		}
		return v
	}
	if get("authentication", "anonymous", "enabled") != false || get("authentication", "webhook", "enabled") != true || get("authorization", "mode") != "Webhook" {
		t.Errorf("kubelet authentication %v, authorization %v", kc["authentication"], kc["authorization"])
	}
	if kc["enableProfilingHandler"] == true || kc["enableContentionProfiling"] == true {
		t.Error("kubelet profiling on (R27)")
	}
	for k, v := range want {
		got := kc[k]
		if v == nil {
			if got != nil && got != false {
				t.Errorf("kubelet %s: %v, want it unset", k, got)
			}
			continue
		}
		if n, ok := v.(int); ok {
			v = float64(n)
		}
		if !equalYAML(got, v) {
			t.Errorf("kubelet %s: %v, want %v", k, got, v)
		}
	}
}

func equalYAML(a, b any) bool {
	ya, _ := yaml.Marshal(a)
	yb, _ := yaml.Marshal(b)
	return bytes.Equal(ya, yb)
}

// The per-node kubelet settings, as kubeadm writes them on that node: the
// cluster's KubeletConfiguration with the node's patch. kubeadm applies
// the patch at init and join alike; the test uses
// `kubeadm init phase kubelet-start --dry-run` with a control-plane
// node's init configuration and the node's own patches directory.
func TestKubeletPerNode(t *testing.T) {
	c := load(t, exampleConfig)
	v1 := func(f Facts) Facts { f.CgroupVersion = 1; return f }
	noSystemd := func(f Facts) Facts { f.HasSystemd = false; return f }
	tests := []struct {
		name, node string
		facts      func(Facts) Facts
		kubelet    map[string]any
		containerd []string
	}{
		{"cp1", "cp1", nil,
			map[string]any{"cgroupDriver": "systemd", "maxPods": 110, "evictionHard": map[string]any{"memory.available": "200Mi", "nodefs.available": "10%"},
				"cpuManagerPolicy": "none", "topologyManagerPolicy": "none", "address": "192.168.10.11", "failCgroupV1": nil},
			[]string{"SystemdCgroup = true", "restrict_oom_score_adj = false", "enable_selinux = true"}},
		{"gpu1 static CPUs, NUMA (R55)", "gpu1", nil,
			map[string]any{"cpuManagerPolicy": "static", "topologyManagerPolicy": "single-numa-node", "reservedSystemCPUs": "0-1", "maxPods": 110, "address": "192.168.10.21"},
			[]string{"SystemdCgroup = true"}},
		{"lab1 systemd-nspawn", "lab1", nil,
			map[string]any{"cgroupDriver": "cgroupfs", "cgroupRoot": "/lab1", "failCgroupV1": false, "failSwapOn": false, "maxPods": 110},
			[]string{"SystemdCgroup = false", "restrict_oom_score_adj = true", "enable_selinux = false"}},
		{"lab1 on cgroup v1", "lab1", v1,
			map[string]any{"cgroupDriver": "cgroupfs", "failCgroupV1": false},
			[]string{"SystemdCgroup = false"}},
		{"cp1 on cgroup v1: cgroupfs, v1 tolerated", "cp1", v1,
			map[string]any{"cgroupDriver": "cgroupfs", "failCgroupV1": false},
			[]string{"SystemdCgroup = false"}},
		{"cp1 without systemd", "cp1", noSystemd,
			map[string]any{"cgroupDriver": "cgroupfs", "failCgroupV1": nil},
			[]string{"SystemdCgroup = false"}},
	}
	init := render(t, c, "cp1", exampleFacts(t, "cp1"))[InitConfigFile]
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := exampleFacts(t, tc.node)
			if tc.facts != nil {
				f = tc.facts(f)
			}
			files := render(t, c, tc.node, f)
			root := nodeRoot(t, files)
			initFile := relocate(t, root, init) // cp1's, with this node's patches directory
			dry := t.TempDir()
			out, err := runKubeadm(t, dry, "init", "phase", "kubelet-start", "--config", initFile, "--dry-run")
			if err != nil {
				t.Fatalf("kubeadm init phase kubelet-start: %v\n%s", err, out)
			}
			var kc map[string]any
			readYAML(t, filepath.Join(dry, "config.yaml"), &kc)
			checkKubelet(t, kc, tc.kubelet)
			toml := string(files[ContainerdConfigFile].Content)
			for _, want := range tc.containerd {
				if !strings.Contains(toml, "\n  "+want+"\n") {
					t.Errorf("config.toml lacks %q:\n%s", want, toml)
				}
			}
		})
	}
}
