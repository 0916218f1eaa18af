package rollout

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

// The versions the tests run: the default bundle's control plane, and
// kwok for simulated nodes.
const (
	testKubernetesVersion = "v1.36.3"
	testContainerdVersion = "v2.2.9"
	testEtcdVersion       = "v3.6.8"
	testKwokVersion       = "v0.8.0"
)

// toolBuildTime stamps the Kubernetes binaries as the builder's tests do
// (builder/build_test.go), so that all find the same cache entries.
var toolBuildTime = time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)

var tools struct {
	sync.Mutex
	paths map[string]string
}

func kubeAPIServer(t testing.TB) string {
	return tool(t, "FERRY_KUBE_APISERVER", "kubernetes", "kube-apiserver")
}
func etcd(t testing.TB) string    { return tool(t, "FERRY_ETCD", "etcd", "etcd") }
func etcdutl(t testing.TB) string { return tool(t, "FERRY_ETCDUTL", "etcd", "etcdutl") }
func kwok(t testing.TB) string    { return tool(t, "FERRY_KWOK", "kwok", "kwok") }

// kwokComponent builds kwok (sigs.k8s.io/kwok) the way the builder builds
// the distribution: a wrapper module pinned to the release, go.sum checked
// by the checksum database.
var kwokComponent = distro.Component{
	Name: "kwok", Module: "sigs.k8s.io/kwok", Version: testKwokVersion,
	Binaries: []distro.Binary{{Name: "kwok", Package: "sigs.k8s.io/kwok/cmd/kwok"}},
	License:  "Apache-2.0", URL: "https://kwok.sigs.k8s.io",
}

// tool finds a program: the file named by $env, or the binary built by
// distro.GoBuilder into the builder's cache ($FERRY_CACHE_DIR/distro/go
// or <user cache>/ferry/distro/go). With the builder's cache warm it is
// instant; cold, it compiles for minutes. A missing program fails the test.
func tool(t testing.TB, env, component, binary string) string {
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
	all := append(distro.Components(bundle.ComponentVersions{Kubernetes: testKubernetesVersion, Containerd: testContainerdVersion, Etcd: testEtcdVersion}), kwokComponent)
	for _, c := range all {
		if c.Name == component && slices.ContainsFunc(c.Binaries, func(b distro.Binary) bool { return b.Name == binary }) {
			comp = &c
		}
	}
	if comp == nil {
		t.Fatalf("no binary %s in component %s", binary, component)
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
	for _, p := range []string{kubeAPIServer(t), etcd(t), etcdutl(t), kwok(t)} {
		t.Log(p)
	}
}
