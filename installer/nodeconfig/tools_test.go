package nodeconfig

import (
	"testing"

	"github.com/ferry-k8s/ferry/builder/distro/distrotest"
)

// The versions the tests render for and run: the default bundle's.
const (
	testKubernetesVersion = "v1.36.3" // distrotest.Versions.Kubernetes
)

// kubeadm is the kubeadm the tests run: $FERRY_KUBEADM, or kubeadm built
// from k8s.io/kubernetes at testKubernetesVersion by the distribution
// builder (see tool).
func kubeadm(t *testing.T) string {
	return tool(t, "FERRY_KUBEADM", "kubernetes", "kubeadm")
}

// containerd is a containerd v2 binary: $FERRY_CONTAINERD, or built from
// github.com/containerd/containerd/v2 at testContainerdVersion.
func containerd(t *testing.T) string {
	return tool(t, "FERRY_CONTAINERD", "containerd", "containerd")
}

// ctr is containerd's client, built with it ($FERRY_CTR overrides).
func ctr(t *testing.T) string {
	return tool(t, "FERRY_CTR", "containerd", "ctr")
}

// kubeAPIServer is kube-apiserver ($FERRY_KUBE_APISERVER, or built like kubeadm).
func kubeAPIServer(t *testing.T) string { return distrotest.KubeAPIServer(t) }

// etcd and etcdctl: $FERRY_ETCD and $FERRY_ETCDCTL, or built from
// go.etcd.io/etcd at testEtcdVersion.
func etcd(t *testing.T) string    { return distrotest.Etcd(t) }
func etcdctl(t *testing.T) string { return tool(t, "FERRY_ETCDCTL", "etcd", "etcdctl") }

// tool is distrotest.Tool: $env, or the builder's own build of the binary.
func tool(t *testing.T, env, component, binary string) string {
	t.Helper()
	return distrotest.Tool(t, env, component, binary)
}

// TestTools builds (or finds) the programs the other tests run.
func TestTools(t *testing.T) {
	for _, p := range []string{kubeadm(t), containerd(t), ctr(t), kubeAPIServer(t), etcd(t), etcdctl(t)} {
		t.Log(p)
	}
}
