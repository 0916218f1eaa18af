package rollout

import (
	"testing"

	"github.com/ferry-k8s/ferry/builder/distro"
	"github.com/ferry-k8s/ferry/builder/distro/distrotest"
)

// The versions the tests run: the default bundle's control plane, and
// kwok for simulated nodes.
const (
	testKwokVersion = "v0.8.0"
)

func etcdutl(t testing.TB) string { return distrotest.Etcdutl(t) }
func kwok(t testing.TB) string    { return tool(t, "FERRY_KWOK", "kwok", "kwok") }

// kwokComponent builds kwok (sigs.k8s.io/kwok) the way the builder builds
// the distribution: a wrapper module pinned to the release, go.sum checked
// by the checksum database.
var kwokComponent = distro.Component{
	Name: "kwok", Module: "sigs.k8s.io/kwok", Version: testKwokVersion,
	Binaries: []distro.Binary{{Name: "kwok", Package: "sigs.k8s.io/kwok/cmd/kwok"}},
	License:  "Apache-2.0", URL: "https://kwok.sigs.k8s.io",
}

// tool is distrotest.Tool (with kwok): $env, or the builder's own build.
func tool(t testing.TB, env, component, binary string) string {
	t.Helper()
	return distrotest.Tool(t, env, component, binary, kwokComponent)
}

// TestTools builds (or finds) the programs the other tests run.
func TestTools(t *testing.T) {
	for _, p := range []string{distrotest.KubeAPIServer(t), distrotest.Etcd(t), etcdutl(t), kwok(t)} {
		t.Log(p)
	}
}
