package nodeconfig

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/ferry-k8s/ferry/builder/distro"
	"github.com/ferry-k8s/ferry/bundle"
)

// The versions the tests render for and run: the default bundle's.
const (
	testKubernetesVersion = "v1.36.3"
	testContainerdVersion = "v2.2.9"
	testEtcdVersion       = "v3.6.8"
)

// toolBuildTime stamps the Kubernetes binaries (their build date) as the
// builder's tests do (builder/build_test.go), so that both find the same
// entries in the builder's binary cache.
var toolBuildTime = time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)

var tools struct {
	sync.Mutex
	paths map[string]string
}

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
func kubeAPIServer(t *testing.T) string {
	return tool(t, "FERRY_KUBE_APISERVER", "kubernetes", "kube-apiserver")
}

// etcd and etcdctl: $FERRY_ETCD and $FERRY_ETCDCTL, or built from
// go.etcd.io/etcd at testEtcdVersion.
func etcd(t *testing.T) string    { return tool(t, "FERRY_ETCD", "etcd", "etcd") }
func etcdctl(t *testing.T) string { return tool(t, "FERRY_ETCDCTL", "etcd", "etcdctl") }

// tool finds a program of the distribution: the file named by $env, or the
// binary built by distro.GoBuilder (the builder's own source build: a
// wrapper module pinned to the upstream version, go.sum checked by the
// checksum database) into the builder's cache,
// $FERRY_CACHE_DIR/distro/go or <user cache>/ferry/distro/go. The whole
// component is built, exactly as the builder builds it, so the two share
// one cache entry (and one wrapper module): with the builder's cache warm
// it is instant; cold, it compiles for minutes. A missing program fails
// the test.
func tool(t *testing.T, env, component, binary string) string {
	t.Helper()
	if p := os.Getenv(env); p != "" {
		if fi, err := os.Stat(p); err != nil || !fi.Mode().IsRegular() {
			t.Fatalf("$%s=%s: not a file (%v)", env, p, err)
		}
		return p
	}
	tools.Lock()
	defer tools.Unlock()
	key := component + "/" + binary
	if p, ok := tools.paths[key]; ok {
		return p
	}
	cache := os.Getenv("FERRY_CACHE_DIR")
	if cache == "" {
		d, err := os.UserCacheDir()
		if err != nil {
			t.Fatalf("no cache directory for building %s (set $FERRY_CACHE_DIR or $%s): %v", binary, env, err)
		}
		cache = filepath.Join(d, "ferry")
	}
	var comp *distro.Component
	for _, c := range distro.Components(bundle.ComponentVersions{Kubernetes: testKubernetesVersion, Containerd: testContainerdVersion, Etcd: testEtcdVersion}) {
		if c.Name == component && slices.ContainsFunc(c.Binaries, func(b distro.Binary) bool { return b.Name == binary }) {
			comp = &c
		}
	}
	if comp == nil {
		t.Fatalf("the distribution has no binary %s in component %s", binary, component)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	g := &distro.GoBuilder{CacheDir: filepath.Join(cache, "distro", "go"), BuildTime: toolBuildTime}
	built, err := g.Build(ctx, *comp)
	if err != nil {
		t.Fatalf("building %s for the test (set $%s to a %s binary instead): %v", binary, env, binary, err)
	}
	if !built.Cached {
		t.Logf("compiled %s %s into %s (set $%s to use another binary)", binary, comp.Version, g.CacheDir, env)
	}
	if tools.paths == nil {
		tools.paths = map[string]string{}
	}
	for name, p := range built.Binaries {
		tools.paths[component+"/"+name] = p
	}
	return built.Binaries[binary]
}

// TestTools builds (or finds) the programs the other tests run.
func TestTools(t *testing.T) {
	for _, p := range []string{kubeadm(t), containerd(t), ctr(t), kubeAPIServer(t), etcd(t), etcdctl(t)} {
		t.Log(p)
	}
}
