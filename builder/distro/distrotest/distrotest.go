package distrotest

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

// Versions are the versions tests run: the default bundle's.
var Versions = bundle.ComponentVersions{Kubernetes: "v1.36.3", Containerd: "v2.2.9", Etcd: "v3.6.8"}

// BuildTime stamps the Kubernetes binaries (their build date) as the
// builder's tests do (builder/build_test.go), so that all of them find the
// same entries in the builder's binary cache.
var BuildTime = time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)

var tools struct {
	sync.Mutex
	paths map[string]string
}

// Tool finds a program: the file named by $env, or binary of component
// (one of distro.Components at Versions, or of extra) built by
// distro.GoBuilder (a wrapper module pinned to the upstream version, go.sum
// checked by the checksum database) into the builder's cache,
// $FERRY_CACHE_DIR/distro/go or <user cache>/ferry/distro/go. The whole
// component is built as the builder builds it, so they share one cache
// entry: with the builder's cache warm it is instant; cold, it compiles for
// minutes. A missing program fails the test.
func Tool(t testing.TB, env, component, binary string, extra ...distro.Component) string {
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
	for _, c := range append(distro.Components(Versions), extra...) {
		if c.Name == component && slices.ContainsFunc(c.Binaries, func(b distro.Binary) bool { return b.Name == binary }) {
			comp = &c
		}
	}
	if comp == nil {
		t.Fatalf("no binary %s in component %s", binary, component)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	g := &distro.GoBuilder{CacheDir: filepath.Join(cache, "distro", "go"), BuildTime: BuildTime}
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

// KubeAPIServer, Etcd and Etcdutl are the control plane's programs, for
// internal/testcluster: $FERRY_KUBE_APISERVER, $FERRY_ETCD, $FERRY_ETCDUTL,
// or the builder's own builds at Versions.
func KubeAPIServer(t testing.TB) string {
	t.Helper()
	return Tool(t, "FERRY_KUBE_APISERVER", "kubernetes", "kube-apiserver")
}

// Etcd: see KubeAPIServer.
func Etcd(t testing.TB) string {
	t.Helper()
	return Tool(t, "FERRY_ETCD", "etcd", "etcd")
}

// Etcdutl: see KubeAPIServer.
func Etcdutl(t testing.TB) string {
	t.Helper()
	return Tool(t, "FERRY_ETCDUTL", "etcd", "etcdutl")
}
