package cluster

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/ferry-k8s/ferry/bundle"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

const minimal = `apiVersion: ferry.dev/v1alpha1
kind: Cluster
metadata: {name: lab}
spec:
  controlPlaneEndpoint: api.lab.example.com
  nodes:
    - {name: n1, hostname: n1.lab.example.com, roles: [control-plane, worker]}
`

func mustParse(t *testing.T, data string) *Cluster {
	t.Helper()
	c, err := Parse([]byte(data))
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	return c
}

// TestExampleGolden loads the documented example and compares its
// defaulted form with testdata/cluster.defaulted.yaml (-update rewrites it).
func TestExampleGolden(t *testing.T) {
	c, err := Load("testdata/cluster.yaml")
	if err != nil {
		t.Fatal(err)
	}
	abs, _ := filepath.Abs("testdata")
	if c.Dir != abs || c.Path(c.Spec.Authentication.OIDC.CAFile) != filepath.Join(abs, "oidc-ca.pem") {
		t.Errorf("Dir %q, caFile resolves to %q", c.Dir, c.Path(c.Spec.Authentication.OIDC.CAFile))
	}
	d := c.Defaulted()
	got, err := yaml.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	golden := "testdata/cluster.defaulted.yaml"
	if *update {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test -run TestExampleGolden -update)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("defaulted example differs from %s (-update rewrites it):\n%s", golden, got)
	}
	// The defaulted form is itself a valid configuration that defaults to itself.
	again, err := Parse(got)
	if err != nil {
		t.Fatal(err)
	}
	if err := again.Validate(); err != nil {
		t.Errorf("defaulted example does not validate: %v", err)
	}
	if d2 := again.Defaulted(); !reflect.DeepEqual(d2.Spec, again.Spec) {
		t.Errorf("defaulting the defaulted example changed it")
	}
}

func TestDefaults(t *testing.T) {
	c := mustParse(t, minimal+`    - {name: n2, hostname: n2.lab.example.com, roles: [control-plane]}
    - name: n3
      hostname: n3.lab.example.com
      roles: [worker]
      selinux: permissive
      kubelet: {cgroupDriver: cgroupfs, maxPods: 50}
      containerd: {restrictOOMScoreAdj: true}
    - {name: n4, hostname: n4.lab.example.com, roles: [control-plane]}
  nodeDefaults:
    kubelet: {maxPods: 100, failSwapOn: false}
  authentication:
    oidc: {issuerURL: "https://id.example.com", clientID: k8s}
`)
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	before := c.DeepCopy()
	d := c.Defaulted()
	if !reflect.DeepEqual(c, before) {
		t.Fatal("Defaulted changed its receiver")
	}
	s := d.Spec
	if s.ControlPlaneEndpoint != "api.lab.example.com:6443" || s.Kubernetes.PodSubnet != DefaultPodSubnet ||
		s.Kubernetes.ServiceSubnet != DefaultServiceSubnet || s.Kubernetes.ClusterDomain != "cluster.local" {
		t.Errorf("cluster defaults: %+v %+v", s.ControlPlaneEndpoint, s.Kubernetes)
	}
	if !*s.Firewall.Enabled || s.Firewall.Backend != FirewallAuto || *s.Upgrade.MaxUnavailable != *Int(1) ||
		s.EncryptionAtRest.Provider != ProviderSecretbox || !reflect.DeepEqual(s.EncryptionAtRest.Resources, []string{"secrets"}) ||
		s.Authentication.OIDC.UsernameClaim != "sub" {
		t.Errorf("defaults: %+v %+v %+v %+v", s.Firewall, s.Upgrade, s.EncryptionAtRest, s.Authentication.OIDC)
	}
	n1, n2, n3 := d.Node("n1"), d.Node("n2"), d.Node("n3")
	if len(n1.Taints) != 0 || !reflect.DeepEqual(n2.Taints, []string{ControlPlaneTaint}) || len(n3.Taints) != 0 {
		t.Errorf("taints: %v %v %v", n1.Taints, n2.Taints, n3.Taints)
	}
	if !reflect.DeepEqual(n1.Labels, map[string]string{"node-role.kubernetes.io/control-plane": "", "node-role.kubernetes.io/worker": ""}) ||
		!reflect.DeepEqual(n3.Labels, map[string]string{"node-role.kubernetes.io/worker": ""}) {
		t.Errorf("labels: %v %v", n1.Labels, n3.Labels)
	}
	if n1.SELinux != SELinuxEnforcing || n3.SELinux != SELinuxPermissive {
		t.Errorf("selinux: %s %s", n1.SELinux, n3.SELinux)
	}
	if !reflect.DeepEqual(n1.Kubelet, map[string]any{"maxPods": 100.0, "failSwapOn": false}) ||
		!reflect.DeepEqual(n3.Kubelet, map[string]any{"maxPods": 50.0, "failSwapOn": false, "cgroupDriver": "cgroupfs"}) {
		t.Errorf("kubelet: %v %v", n1.Kubelet, n3.Kubelet)
	}
	if *n1.Containerd.SystemdCgroup != true || *n1.Containerd.RestrictOOMScoreAdj != false ||
		*n3.Containerd.SystemdCgroup != false || *n3.Containerd.RestrictOOMScoreAdj != true {
		t.Errorf("containerd: %+v %+v", n1.Containerd, n3.Containerd)
	}
	if len(d.ControlPlaneNodes()) != 3 || d.Node("nope") != nil {
		t.Errorf("ControlPlaneNodes %v", d.ControlPlaneNodes())
	}
	// No memory shared: changing the copy leaves the original alone.
	d.Spec.Nodes[2].Kubelet["maxPods"] = 1.0
	d.Spec.NodeDefaults.Kubelet["maxPods"] = 1.0
	if c.Spec.Nodes[2].Kubelet["maxPods"] != 50.0 || c.Spec.NodeDefaults.Kubelet["maxPods"] != 100.0 {
		t.Error("Defaulted shares maps with its receiver")
	}
	// An explicit port stays.
	c.Spec.ControlPlaneEndpoint = "api.lab.example.com:443"
	if got := c.Defaulted().Spec.ControlPlaneEndpoint; got != "api.lab.example.com:443" {
		t.Errorf("endpoint %s", got)
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct {
		name, data string
		want       []string
	}{
		{"unknown fields by path", strings.Replace(minimal, "roles: [control-plane, worker]}", "roles: [control-plane], rolez: [x]}", 1) + "  firewal: {}\nextra: 1\n",
			[]string{"spec.nodes[0].rolez: unknown field", "spec.firewal: unknown field", "extra: unknown field"}},
		{"unknown nested field", minimal + "  authentication:\n    oidc: {issuer: x}\n", []string{"spec.authentication.oidc.issuer: unknown field"}},
		{"wrong type", strings.Replace(minimal, "roles: [control-plane, worker]", "roles: worker", 1), []string{"spec.nodes.roles: must be a list, got string"}},
		{"wrong type bool", minimal + "  firewall: {enabled: yes please}\n", []string{"spec.firewall.enabled: must be true or false, got string"}},
		{"apiVersion and kind", strings.Replace(strings.Replace(minimal, "v1alpha1", "v1", 1), "kind: Cluster", "kind: Bundle", 1),
			[]string{`apiVersion: must be "ferry.dev/v1alpha1", got "ferry.dev/v1"`, `kind: must be "Cluster", got "Bundle"`}},
		{"syntax", "spec: [", []string{"parsing: "}},
		{"duplicate key", minimal + "  firewall: {}\n  firewall: {}\n", []string{"parsing: ", "firewall"}},
		{"too large", minimal + "# " + strings.Repeat("x", MaxFileSize) + "\n", []string{"larger than 1048576 bytes"}},
		{"not a mapping", "- a\n- b\n", []string{"parsing: "}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.data))
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
		})
	}
}

func TestValidateErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		yaml string // appended to minimal's spec (indented two spaces), or a whole file when it starts with "apiVersion"
		edit func(c *Cluster)
		want []string
	}{
		// metadata, endpoint
		{name: "cluster name", edit: func(c *Cluster) { c.Metadata.Name = "Prod_1" }, want: []string{"metadata.name: must be a DNS label"}},
		{name: "endpoint missing", edit: func(c *Cluster) { c.Spec.ControlPlaneEndpoint = "" }, want: []string{"spec.controlPlaneEndpoint: required"}},
		{name: "endpoint IP", edit: func(c *Cluster) { c.Spec.ControlPlaneEndpoint = "10.0.0.1:6443" }, want: []string{`spec.controlPlaneEndpoint: "10.0.0.1" is an IP address: use a DNS name (R29)`}},
		{name: "endpoint IPv6", edit: func(c *Cluster) { c.Spec.ControlPlaneEndpoint = "[fd00::1]:6443" }, want: []string{`spec.controlPlaneEndpoint: "fd00::1" is an IP address`}},
		{name: "endpoint bare IPv6", edit: func(c *Cluster) { c.Spec.ControlPlaneEndpoint = "fd00::1" }, want: []string{`spec.controlPlaneEndpoint: `}},
		{name: "endpoint port", edit: func(c *Cluster) { c.Spec.ControlPlaneEndpoint = "api.example.com:70000" }, want: []string{`spec.controlPlaneEndpoint: port "70000"`}},
		{name: "endpoint name", edit: func(c *Cluster) { c.Spec.ControlPlaneEndpoint = "API_server.example.com" }, want: []string{"spec.controlPlaneEndpoint: must be a DNS name"}},
		// kubernetes
		{name: "pod subnet syntax", edit: func(c *Cluster) { c.Spec.Kubernetes.PodSubnet = "10.244.0.0" }, want: []string{`spec.kubernetes.podSubnet: "10.244.0.0" is not a CIDR`}},
		{name: "service subnet host bits", edit: func(c *Cluster) { c.Spec.Kubernetes.ServiceSubnet = "10.96.0.1/12" }, want: []string{"spec.kubernetes.serviceSubnet: \"10.96.0.1/12\" has host bits set: did you mean 10.96.0.0/12?"}},
		{name: "pod and service overlap", edit: func(c *Cluster) { c.Spec.Kubernetes.PodSubnet = "10.96.0.0/16" }, want: []string{"spec.kubernetes.serviceSubnet: 10.96.0.0/12 overlaps the pod subnet 10.96.0.0/16"}},
		{name: "families differ", edit: func(c *Cluster) { c.Spec.Kubernetes.ServiceSubnet = "fd00:10:96::/112" }, want: []string{"different IP families"}},
		{name: "service subnet too large", edit: func(c *Cluster) { c.Spec.Kubernetes.ServiceSubnet = "10.0.0.0/8" }, want: []string{"spec.kubernetes.serviceSubnet: 10.0.0.0/8 is too large: at most /12"}},
		{name: "pod subnet too small", edit: func(c *Cluster) { c.Spec.Kubernetes.PodSubnet = "10.244.0.0/25" }, want: []string{"spec.kubernetes.podSubnet: 10.244.0.0/25 is smaller than one node's /24"}},
		{name: "pod subnet too few nodes", yaml: "  kubernetes: {podSubnet: 10.244.0.0/24}\n", edit: func(c *Cluster) {
			c.Spec.Nodes = append(c.Spec.Nodes, Node{Name: "n2", Hostname: "n2.lab.example.com", Roles: []Role{RoleWorker}})
		}, want: []string{"spec.kubernetes.podSubnet: 10.244.0.0/24 has room for 1 nodes' /24, the cluster has 2 nodes"}},
		{name: "cluster domain", edit: func(c *Cluster) { c.Spec.Kubernetes.ClusterDomain = "cluster..local" }, want: []string{"spec.kubernetes.clusterDomain: must be a DNS name"}},
		{name: "feature gate", yaml: "  kubernetes: {featureGates: {not-a-gate: true}}\n", want: []string{"spec.kubernetes.featureGates.not-a-gate: not a feature gate name"}},
		// networks
		{name: "plane syntax", edit: func(c *Cluster) { c.Spec.Networks.Etcd = "192.168.1.0/33" }, want: []string{`spec.networks.etcd: "192.168.1.0/33" is not a CIDR`}},
		{name: "plane overlaps pods", edit: func(c *Cluster) { c.Spec.Networks.Workload = "10.244.0.0/24" }, want: []string{"spec.networks.workload: 10.244.0.0/24 overlaps the pod subnet 10.244.0.0/16"}},
		{name: "plane overlaps services", edit: func(c *Cluster) { c.Spec.Networks.ControlPlane = "10.0.0.0/8" }, want: []string{"spec.networks.controlPlane: 10.0.0.0/8 overlaps the service subnet 10.96.0.0/12", "overlaps the pod subnet"}},
		// nodes
		{name: "no nodes", edit: func(c *Cluster) { c.Spec.Nodes = nil }, want: []string{"spec.nodes: required"}},
		{name: "even control planes (R54)", yaml: "    - {name: n2, hostname: n2.lab.example.com, roles: [control-plane]}\n    - {name: n3, hostname: n3.lab.example.com, roles: [worker]}\n",
			want: []string{"spec.nodes: 2 control-plane nodes: etcd runs a member on each and needs an odd number of them (R54: 1, 3, 5 or 7); 2 members tolerate 0 failed, as 1 do"}},
		{name: "eight control planes (R54)", edit: func(c *Cluster) {
			for i := 2; i <= 9; i++ {
				c.Spec.Nodes = append(c.Spec.Nodes, Node{Name: fmt.Sprintf("n%d", i), Hostname: fmt.Sprintf("n%d.lab.example.com", i), Roles: []Role{RoleControlPlane}})
			}
		}, want: []string{"spec.nodes: 9 control-plane nodes: etcd runs a member on each, and more than 7 members only slow its writes"}},
		{name: "no control plane", edit: func(c *Cluster) { c.Spec.Nodes[0].Roles = []Role{RoleWorker} }, want: []string{"spec.nodes: no node has the control-plane role"}},
		{name: "node name", edit: func(c *Cluster) { c.Spec.Nodes[0].Name = "N1.lab" }, want: []string{"spec.nodes[0].name: must be a DNS label"}},
		{name: "duplicate names and hostnames", edit: func(c *Cluster) { c.Spec.Nodes = append(c.Spec.Nodes, c.Spec.Nodes[0]) },
			want: []string{`spec.nodes[1].name: "n1" is also spec.nodes[0].name`, `spec.nodes[1].hostname: "n1.lab.example.com" is also spec.nodes[0].hostname`}},
		{name: "hostname not FQDN", edit: func(c *Cluster) { c.Spec.Nodes[0].Hostname = "n1" }, want: []string{"spec.nodes[0].hostname: must be a fully qualified DNS name"}},
		{name: "hostname IP", edit: func(c *Cluster) { c.Spec.Nodes[0].Hostname = "192.168.1.10" }, want: []string{`spec.nodes[0].hostname: "192.168.1.10" is an IP address`}},
		{name: "no roles", edit: func(c *Cluster) { c.Spec.Nodes[0].Roles = nil }, want: []string{"spec.nodes[0].roles: required"}},
		{name: "unknown role", yaml: "    - {name: n2, hostname: n2.lab.example.com, roles: [worker, master]}\n", want: []string{`spec.nodes[1].roles[1]: unknown role "master" (want control-plane or worker)`}},
		{name: "duplicate role", edit: func(c *Cluster) { c.Spec.Nodes[0].Roles = []Role{RoleWorker, RoleControlPlane, RoleWorker} }, want: []string{`spec.nodes[0].roles[2]: "worker" is listed twice`}},
		{name: "label key", edit: func(c *Cluster) { c.Spec.Nodes[0].Labels = map[string]string{"-bad": "x", "ex_ample.com/zone": "a"} },
			want: []string{`spec.nodes[0].labels.-bad: label key "-bad"`, `spec.nodes[0].labels.ex_ample.com/zone: label key "ex_ample.com/zone": prefix must be a DNS name`}},
		{name: "label value", edit: func(c *Cluster) {
			c.Spec.Nodes[0].Labels = map[string]string{"topology.kubernetes.io/zone": "zone a", "x": strings.Repeat("a", 64)}
		}, want: []string{`spec.nodes[0].labels.topology.kubernetes.io/zone: label value "zone a"`, "spec.nodes[0].labels.x: label value"}},
		{name: "kubelet's label", edit: func(c *Cluster) { c.Spec.Nodes[0].Labels = map[string]string{"kubernetes.io/hostname": "x"} },
			want: []string{"spec.nodes[0].labels.kubernetes.io/hostname: set by the kubelet"}},
		{name: "role label without role", edit: func(c *Cluster) {
			c.Spec.Nodes[0].Roles = []Role{RoleControlPlane}
			c.Spec.Nodes[0].Labels = map[string]string{"node-role.kubernetes.io/worker": ""}
		}, want: []string{"spec.nodes[0].labels.node-role.kubernetes.io/worker: the node does not have the worker role"}},
		{name: "taint syntax", edit: func(c *Cluster) {
			c.Spec.Nodes[0].Taints = []string{"dedicated=gpu", "a=b:Sometimes", "bad key:NoSchedule"}
		},
			want: []string{`spec.nodes[0].taints[0]: taint "dedicated=gpu": want key[=value]:Effect`, `spec.nodes[0].taints[1]: taint "a=b:Sometimes": effect must be`, `spec.nodes[0].taints[2]: taint "bad key:NoSchedule": label key`}},
		{name: "duplicate taint", edit: func(c *Cluster) { c.Spec.Nodes[0].Taints = []string{"a=1:NoSchedule", "a=2:NoSchedule", "a:NoExecute"} },
			want: []string{"spec.nodes[0].taints[1]: a:NoSchedule is also taints[0]"}},
		{name: "selinux mode", edit: func(c *Cluster) { c.Spec.Nodes[0].SELinux = "off" }, want: []string{`spec.nodes[0].selinux: must be enforcing, permissive or disabled, got "off"`}},
		{name: "selinux default mode", edit: func(c *Cluster) { c.Spec.NodeDefaults.SELinux = "Enforcing" }, want: []string{`spec.nodeDefaults.selinux: must be enforcing, permissive or disabled`}},
		{name: "selinux control plane", edit: func(c *Cluster) { c.Spec.Nodes[0].SELinux = SELinuxPermissive },
			want: []string{`spec.nodes[0].selinux: "permissive" on a control-plane node needs spec.security.allowNonEnforcingControlPlane: true (R13`}},
		{name: "selinux control plane from defaults", edit: func(c *Cluster) { c.Spec.NodeDefaults.SELinux = SELinuxDisabled },
			want: []string{`spec.nodes[0].selinux: "disabled" (from spec.nodeDefaults.selinux) on a control-plane node`}},
		// kubelet and containerd
		{name: "kubelet owned knob", yaml: "  nodeDefaults: {kubelet: {readOnlyPort: 10255}}\n", want: []string{"spec.nodeDefaults.kubelet.readOnlyPort: not overridable: always 0: no unauthenticated port (R27)"}},
		{name: "kubelet unknown knob", yaml: "    - {name: n2, hostname: n2.lab.example.com, roles: [worker], kubelet: {maxpods: 3}}\n",
			want: []string{"spec.nodes[1].kubelet.maxpods: not a kubelet setting Ferry lets you override (allowed: cgroupDriver, cgroupRoot,"}},
		{name: "kubelet knob types", yaml: `  nodeDefaults:
    kubelet:
      failSwapOn: "false"
      maxPods: 1.5
      cgroupDriver: systemd-cgroup
      cgroupRoot: relative/path
      evictionHard: {memory.available: lots, disk.available: 1Gi}
      systemReserved: [cpu]
      reservedSystemCPUs: "0-1,x"
      evictionSoftGracePeriod: {memory.available: soon}
      containerLogMaxFiles: 1
`, want: []string{
			`spec.nodeDefaults.kubelet.failSwapOn: must be true or false, got "false"`,
			"spec.nodeDefaults.kubelet.maxPods: must be a whole number from 1 to 10000, got 1.5",
			`spec.nodeDefaults.kubelet.cgroupDriver: must be one of systemd, cgroupfs, got "systemd-cgroup"`,
			`spec.nodeDefaults.kubelet.cgroupRoot: must be a clean absolute path such as /kubepods, got "relative/path"`,
			"spec.nodeDefaults.kubelet.evictionHard: disk.available: unknown key",
			"spec.nodeDefaults.kubelet.systemReserved: must be a mapping such as {memory: 1Gi}, got a list",
			`spec.nodeDefaults.kubelet.reservedSystemCPUs: must be a cpuset such as 0-1,6, got "0-1,x"`,
			`spec.nodeDefaults.kubelet.evictionSoftGracePeriod: memory.available: must be a duration such as 1m30s, got "soon"`,
			"spec.nodeDefaults.kubelet.containerLogMaxFiles: must be a whole number from 2 to 1000, got 1",
		}},
		{name: "kubelet eviction quantity", yaml: "  nodeDefaults: {kubelet: {evictionHard: {memory.available: lots}}}\n",
			want: []string{`spec.nodeDefaults.kubelet.evictionHard: memory.available: must be a quantity such as 1Gi or a percentage such as 10%, got "lots"`}},
		{name: "kubelet image GC thresholds merged", yaml: "  nodeDefaults: {kubelet: {imageGCHighThresholdPercent: 70}}\n",
			edit: func(c *Cluster) { c.Spec.Nodes[0].Kubelet = map[string]any{"imageGCLowThresholdPercent": 75.0} },
			want: []string{"spec.nodes[0].kubelet.imageGCLowThresholdPercent: 75 must be below imageGCHighThresholdPercent (70)"}},
		{name: "containerd and kubelet cgroup driver disagree", yaml: "  nodeDefaults: {containerd: {systemdCgroup: true}}\n",
			edit: func(c *Cluster) { c.Spec.Nodes[0].Kubelet = map[string]any{"cgroupDriver": "cgroupfs"} },
			want: []string{"spec.nodes[0].containerd.systemdCgroup: true disagrees with the kubelet's cgroupDriver cgroupfs"}},
		{name: "containerd cgroupfs with default driver", edit: func(c *Cluster) { c.Spec.Nodes[0].Containerd = &Containerd{SystemdCgroup: ptr(false)} },
			want: []string{"spec.nodes[0].containerd.systemdCgroup: false disagrees with the kubelet's cgroupDriver systemd (the default)"}},
		// encryption at rest
		{name: "encryption provider", edit: func(c *Cluster) { c.Spec.EncryptionAtRest.Provider = "aescbc" }, want: []string{`spec.encryptionAtRest.provider: must be secretbox or aesgcm, got "aescbc"`}},
		{name: "encryption resources", edit: func(c *Cluster) {
			c.Spec.EncryptionAtRest.Resources = []string{"configmaps", "Secrets", "configmaps", "*", "a.*", "*.apps"}
		}, want: []string{
			`spec.encryptionAtRest.resources[1]: "Secrets": want resource`, `spec.encryptionAtRest.resources[2]: "configmaps" is listed twice`,
			`spec.encryptionAtRest.resources[3]: "*"`, `spec.encryptionAtRest.resources[4]: "a.*"`, "spec.encryptionAtRest.resources: must include secrets (R9)"}},
		// authentication
		{name: "oidc required fields", yaml: "  authentication: {oidc: {issuerURL: ''}}\n",
			want: []string{"spec.authentication.oidc.issuerURL: required", "spec.authentication.oidc.clientID: required"}},
		{name: "oidc http", yaml: "  authentication: {oidc: {issuerURL: 'http://id.example.com', clientID: k}}\n", want: []string{`spec.authentication.oidc.issuerURL: "http://id.example.com": must be https (R21)`}},
		{name: "oidc IP host", yaml: "  authentication: {oidc: {issuerURL: 'https://10.1.1.1:8443/x', clientID: k}}\n", want: []string{`spec.authentication.oidc.issuerURL: host "10.1.1.1" is an IP address`}},
		{name: "oidc query", yaml: "  authentication: {oidc: {issuerURL: 'https://id.example.com/?a=b', clientID: k}}\n", want: []string{"spec.authentication.oidc.issuerURL: \"https://id.example.com/?a=b\": no user info, query or fragment"}},
		{name: "oidc bad port", yaml: "  authentication: {oidc: {issuerURL: 'https://id.example.com:0', clientID: k}}\n", want: []string{`spec.authentication.oidc.issuerURL: port "0"`}},
		{name: "oidc claim spaces", yaml: "  authentication: {oidc: {issuerURL: 'https://id.example.com', clientID: k, groupsClaim: ' groups'}}\n", want: []string{`spec.authentication.oidc.groupsClaim: " groups": no surrounding spaces`}},
		{name: "static users", yaml: `  authentication:
    staticUsers:
      - {name: alice, groups: [system:masters]}
      - {name: alice}
      - {name: "system:kube-proxy"}
      - {name: "", groups: ["", dev, dev]}
`, want: []string{
			"spec.authentication.staticUsers[0].groups[0]: system:masters bypasses RBAC",
			`spec.authentication.staticUsers[1].name: "alice" is also staticUsers[0]`,
			`spec.authentication.staticUsers[2].name: "system:kube-proxy": the system: prefix is Kubernetes'`,
			`spec.authentication.staticUsers[3].name: "": want a non-empty name`,
			`spec.authentication.staticUsers[3].groups[0]: "": want a non-empty name`,
			`spec.authentication.staticUsers[3].groups[2]: "dev" is listed twice`,
		}},
		// firewall, upgrade
		{name: "firewall backend", edit: func(c *Cluster) { c.Spec.Firewall.Backend = "iptables" }, want: []string{`spec.firewall.backend: must be auto, firewalld or nftables, got "iptables"`}},
		{name: "maxUnavailable zero", yaml: "  upgrade: {maxUnavailable: 0}\n", want: []string{"spec.upgrade.maxUnavailable: 0: must be at least 1"}},
		{name: "maxUnavailable percent", yaml: "  upgrade: {maxUnavailable: 150%}\n", want: []string{"spec.upgrade.maxUnavailable: 150%: a percentage must be 1%–100%"}},
		{name: "maxUnavailable word", yaml: "  upgrade: {maxUnavailable: many}\n", want: []string{`spec.upgrade.maxUnavailable: "many" is neither a whole number nor a percentage`}},
		{name: "maxUnavailable fraction", yaml: "  upgrade: {maxUnavailable: 1.5}\n", want: []string{"spec.upgrade.maxUnavailable: 1.5 is neither a whole number nor a percentage"}},
		{name: "apiVersion and kind", edit: func(c *Cluster) { c.APIVersion, c.Kind = "v1", "Node" }, want: []string{`apiVersion: must be "ferry.dev/v1alpha1"`, `kind: must be "Cluster"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := mustParse(t, minimal+tc.yaml)
			if tc.edit != nil {
				tc.edit(c)
			}
			err := c.Validate()
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
			var fe *bundle.FieldError
			if !errors.As(err, &fe) {
				t.Errorf("no FieldError in %v", err)
			}
		})
	}
}

func TestValidAlternatives(t *testing.T) {
	for _, tc := range []struct {
		name string
		yaml string
		edit func(c *Cluster)
	}{
		{name: "minimal"},
		{name: "control plane may leave enforcing when allowed", yaml: "  security: {allowNonEnforcingControlPlane: true}\n  nodeDefaults: {selinux: disabled}\n"},
		{name: "worker may leave enforcing", yaml: "    - {name: w, hostname: w.lab.example.com, roles: [worker], selinux: permissive}\n"},
		{name: "planes may share a network", edit: func(c *Cluster) { c.Spec.Networks = Networks{"192.168.0.0/24", "192.168.0.0/24", "192.168.0.0/24"} }},
		{name: "IPv6 subnets", edit: func(c *Cluster) {
			c.Spec.Kubernetes.PodSubnet, c.Spec.Kubernetes.ServiceSubnet = "fd00:244::/56", "fd00:96::/112"
		}},
		{name: "encryption wildcards", edit: func(c *Cluster) { c.Spec.EncryptionAtRest.Resources = []string{"*.", "*.apps", "widgets.example.com"} }},
		{name: "endpoint without port", edit: func(c *Cluster) { c.Spec.ControlPlaneEndpoint = "api" }},
		{name: "percent", yaml: "  upgrade: {maxUnavailable: 100%}\n"},
		{name: "kubelet plain pid number", yaml: "  nodeDefaults: {kubelet: {systemReserved: {pid: 1000, memory: 1Gi}}}\n"},
		{name: "custom role label", edit: func(c *Cluster) { c.Spec.Nodes[0].Labels = map[string]string{"node-role.kubernetes.io/infra": ""} }},
		{name: "containerd cgroupfs with cgroupfs kubelet", yaml: "  nodeDefaults: {kubelet: {cgroupDriver: cgroupfs}, containerd: {systemdCgroup: false}}\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := mustParse(t, minimal+tc.yaml)
			if tc.edit != nil {
				tc.edit(c)
			}
			if err := c.Validate(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	if _, err := Load(filepath.Join(dir, "missing.yaml")); err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
	big := filepath.Join(dir, "big.yaml")
	if err := os.WriteFile(big, []byte(minimal+"#"+strings.Repeat("x", MaxFileSize)), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(big); err == nil || !strings.Contains(err.Error(), "big.yaml is larger than") {
		t.Errorf("big file: %v", err)
	}
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte(strings.Replace(minimal, "name: lab", "name: Lab", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(bad); err == nil || !strings.Contains(err.Error(), "bad.yaml: metadata.name: must be a DNS label") {
		t.Errorf("invalid file: %v", err)
	}
}

func TestIntOrPercent(t *testing.T) {
	for _, tc := range []struct {
		in    string
		want  IntOrPercent
		of10  int
		valid bool
	}{
		{"3", *Int(3), 3, true},
		{"25%", *Percent(25), 2, true},
		{"5%", *Percent(5), 1, true}, // at least one
		{"100%", *Percent(100), 10, true},
		{"40", *Int(40), 10, true}, // at most the total
		{"0", *Int(0), 1, false},
		{"-1", *Int(-1), 1, false},
		{`"0%"`, *Percent(0), 1, false},
	} {
		var v IntOrPercent
		if err := yaml.Unmarshal([]byte(tc.in), &v); err != nil {
			t.Errorf("%s: %v", tc.in, err)
			continue
		}
		if v != tc.want || v.Of(10) != tc.of10 || (v.check() == nil) != tc.valid {
			t.Errorf("%s: got %+v, Of(10) %d, check %v", tc.in, v, v.Of(10), v.check())
		}
		out, err := yaml.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		var back IntOrPercent
		if err := yaml.Unmarshal(out, &back); err != nil || back != v {
			t.Errorf("%s: round trip %s gives %+v %v", tc.in, out, back, err)
		}
	}
	for _, bad := range []string{`"-5%"`, `"%"`, `"+5%"`, `"5"`, "1.5", "{a: 1}"} {
		var v IntOrPercent
		if err := yaml.Unmarshal([]byte(bad), &v); err == nil && v.check() == nil {
			t.Errorf("%s accepted as %+v", bad, v)
		}
	}
}

func TestParseTaint(t *testing.T) {
	for in, want := range map[string]Taint{
		"dedicated=gpu:NoSchedule":                         {"dedicated", "gpu", "NoSchedule"},
		"node-role.kubernetes.io/control-plane:NoSchedule": {"node-role.kubernetes.io/control-plane", "", "NoSchedule"},
		"example.com/maintenance=:NoExecute":               {"example.com/maintenance", "", "NoExecute"},
	} {
		got, err := ParseTaint(in)
		if err != nil || got != want {
			t.Errorf("%s: %+v %v", in, got, err)
		}
		if strings.TrimSuffix(in, "=:NoExecute") != strings.TrimSuffix(got.String(), ":NoExecute") {
			t.Errorf("%s: String %s", in, got.String())
		}
	}
	for _, bad := range []string{"", "a", "a:b:NoSchedule", "=v:NoSchedule", "a=b c:NoSchedule", "a:noschedule"} {
		if _, err := ParseTaint(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	n := Node{Taints: []string{"a:NoSchedule", "b"}}
	if _, err := n.ParsedTaints(); err == nil {
		t.Error("ParsedTaints accepted a bad taint")
	}
}

// FuzzParse: whatever the input, Parse, Validate and Defaulted return
// (never panic), and a configuration that validates survives a round trip
// through YAML unchanged.
func FuzzParse(f *testing.F) {
	example, err := os.ReadFile("testdata/cluster.yaml")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(example)
	f.Add([]byte(minimal))
	f.Add([]byte(minimal + "  upgrade: {maxUnavailable: 10%}\n  nodeDefaults: {kubelet: {evictionHard: {memory.available: 5%}}}\n"))
	f.Add([]byte("apiVersion: ferry.dev/v1alpha1\nkind: Cluster\nspec: {nodes: [{roles: [x]}], networks: {etcd: '::/0'}}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data)
		if err != nil {
			return
		}
		verr := c.Validate()
		d := c.Defaulted()
		_ = d.Validate()
		if verr != nil {
			return
		}
		out, err := yaml.Marshal(d)
		if err != nil {
			t.Fatalf("marshal: %v", err)
		}
		back, err := Parse(out)
		if err != nil {
			t.Fatalf("the defaulted form does not parse: %v\n%s", err, out)
		}
		if err := back.Validate(); err != nil {
			t.Fatalf("the defaulted form does not validate: %v\n%s", err, out)
		}
		if !reflect.DeepEqual(back.Defaulted().Spec, back.Spec) {
			t.Fatalf("defaults are not stable:\n%s", out)
		}
	})
}
