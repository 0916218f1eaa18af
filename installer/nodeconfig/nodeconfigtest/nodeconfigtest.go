package nodeconfigtest

import (
	"bytes"
	"testing"

	"github.com/ferry-k8s/ferry/bundle"
	"github.com/ferry-k8s/ferry/installer/cluster"
	"github.com/ferry-k8s/ferry/installer/cluster/clustertest"
	"github.com/ferry-k8s/ferry/installer/nodeconfig"
)

// AuthenticationConfig is the API server's AuthenticationConfiguration
// as installer/nodeconfig renders it for the control-plane node of
// clustertest.SingleNode (no OIDC): for testcluster.Options, to run the API
// server as Ferry configures its anonymous access.
func AuthenticationConfig(t testing.TB) []byte {
	t.Helper()
	c, err := cluster.Parse([]byte(clustertest.SingleNode))
	if err != nil {
		t.Fatal(err)
	}
	ip := "10.10.0.11"
	files, err := nodeconfig.Render(c, "node1", nodeconfig.Facts{
		KubernetesVersion: "v1.36.3",
		ImageRepository:   bundle.DefaultImageRepository,
		EtcdImageTag:      "3.6.8-0",
		CoreDNSImageTag:   "v1.14.2",
		PauseImage:        bundle.DefaultImageRepository + "/pause:3.10.2",
		ContentServices:   []string{"node1.lab.example:5443"},
		ContentCAFile:     "/etc/ferry/pki/content/ca.crt",
		NodeIPs:           map[string]string{nodeconfig.PlaneControlPlane: ip, nodeconfig.PlaneEtcd: ip, nodeconfig.PlaneWorkload: ip},
		CgroupVersion:     2,
		HasSystemd:        true,
		EncryptionKey:     bytes.Repeat([]byte{0x5a}, nodeconfig.EncryptionKeySize),
		Version:           "1.2.0-test",
	})
	if err != nil {
		t.Fatalf("rendering the node's configuration: %v", err)
	}
	for _, f := range files {
		if f.Path == nodeconfig.AuthenticationConfigFile {
			_, body, err := nodeconfig.SplitHeader(f.Content)
			if err != nil {
				t.Fatal(err)
			}
			return body
		}
	}
	t.Fatalf("nodeconfig rendered no %s", nodeconfig.AuthenticationConfigFile)
	return nil
}
