package cluster

import (
	"strings"
	"testing"

	"github.com/ferry-k8s/ferry/installer/cluster/clustertest"
)

// TestNodeContentServices: a control plane asks its own service first; the
// workers start at different services, in turn; every list holds each
// service once.
func TestNodeContentServices(t *testing.T) {
	c, err := Parse([]byte(clustertest.HA))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	c = c.Defaulted()
	want := map[string]string{
		"cp1": "cp1 cp2 cp3",
		"cp2": "cp2 cp1 cp3",
		"cp3": "cp3 cp1 cp2",
		"w1":  "cp1 cp2 cp3",
		"w2":  "cp2 cp3 cp1",
		"w3":  "cp3 cp1 cp2",
		"w4":  "cp1 cp2 cp3",
	}
	for name, w := range want {
		var got []string
		for _, s := range c.NodeContentServices(c.Node(name)) {
			got = append(got, strings.TrimSuffix(s, ".lab.example:5443"))
		}
		if strings.Join(got, " ") != w {
			t.Errorf("%s asks %v, want %s", name, got, w)
		}
	}
}

// TestClusterDNS: the tenth address of the service subnet (kubeadm's
// rule), or an error when the subnet has none.
func TestClusterDNS(t *testing.T) {
	for _, tc := range []struct{ subnet, want string }{
		{"10.96.0.0/12", "10.96.0.10"},
		{"172.20.0.0/16", "172.20.0.10"},
		{"192.168.7.0/28", "192.168.7.10"},
		{"fd00:10:96::/108", "fd00:10:96::a"},
		{"192.168.7.0/29", ""},
		{"not a subnet", ""},
	} {
		got, err := Kubernetes{ServiceSubnet: tc.subnet}.ClusterDNS()
		if tc.want == "" {
			if err == nil {
				t.Errorf("%s: %s, want an error", tc.subnet, got)
			}
			continue
		}
		if err != nil || got.String() != tc.want {
			t.Errorf("%s: %v %v, want %s", tc.subnet, got, err, tc.want)
		}
	}
}
