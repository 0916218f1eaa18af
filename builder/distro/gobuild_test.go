package distro

import (
	"context"
	"crypto/sha256"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/ferry-k8s/ferry/bundle"
)

var testBuildTime = time.Unix(1767225600, 0).UTC()

func fileSum(t *testing.T, p string) [32]byte {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	var s [32]byte
	copy(s[:], h.Sum(nil))
	return s
}

func component(t *testing.T, v bundle.ComponentVersions, name string) Component {
	t.Helper()
	for _, c := range Components(v) {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no component %s", name)
	return Component{}
}

// The pause program is built from the source embedded in the builder: it
// runs, reports the version stamped by the linker, comes from the binary
// cache the second time and is reproducible in a fresh cache.
func TestBuildPauseIsCachedAndReproducible(t *testing.T) {
	ctx := context.Background()
	c := component(t, bundle.ComponentVersions{Pause: "3.10.2"}, "pause")
	g := &GoBuilder{CacheDir: t.TempDir(), BuildTime: testBuildTime}
	b1, err := g.Build(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	if b1.Cached {
		t.Fatal("first build reported as cached")
	}
	out, err := exec.Command(b1.Binaries["pause"], "--version").CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "pause 3.10.2 (ferry)" {
		t.Fatalf("pause --version: %q, %v", out, err)
	}
	b2, err := g.Build(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	if !b2.Cached || b2.Binaries["pause"] != b1.Binaries["pause"] {
		t.Fatalf("second build not from the cache: %+v", b2)
	}
	g3 := &GoBuilder{CacheDir: t.TempDir(), BuildTime: testBuildTime}
	b3, err := g3.Build(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	if fileSum(t, b1.Binaries["pause"]) != fileSum(t, b3.Binaries["pause"]) {
		t.Fatal("two builds of the same pause source differ")
	}
}

// A module version that does not exist fails with the go command's reason
// and the component's name, and leaves no binaries behind.
func TestBuildUnknownVersionFails(t *testing.T) {
	c := component(t, bundle.ComponentVersions{CRITools: "v0.0.0-does-not-exist"}, "cri-tools")
	g := &GoBuilder{CacheDir: t.TempDir(), BuildTime: testBuildTime}
	_, err := g.Build(context.Background(), c)
	if err == nil || !strings.Contains(err.Error(), "cri-tools") || !strings.Contains(err.Error(), "v0.0.0-does-not-exist") {
		t.Fatalf("want an error naming cri-tools and the version, got %v", err)
	}
	if entries, _ := os.ReadDir(g.CacheDir + "/bin"); len(entries) != 0 {
		t.Fatalf("failed build left %d entries in the binary cache", len(entries))
	}
}

// The Kubernetes wrapper replaces every staging module with its
// v0.<minor>.<patch> release, read from k8s.io/kubernetes' own go.mod.
func TestKubernetesWrapperReplacesStaging(t *testing.T) {
	c := component(t, bundle.ComponentVersions{Kubernetes: "v1.36.3"}, "kubernetes")
	g := &GoBuilder{CacheDir: t.TempDir()}
	if err := g.init(context.Background()); err != nil {
		t.Fatal(err)
	}
	mod, err := c.wrapperGoMod(context.Background(), g)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"\tk8s.io/kubernetes v1.36.3\n", "\tk8s.io/api => k8s.io/api v0.36.3\n", "\tk8s.io/client-go => k8s.io/client-go v0.36.3\n", "\tk8s.io/kubelet => k8s.io/kubelet v0.36.3\n"} {
		if !strings.Contains(string(mod), want) {
			t.Errorf("wrapper go.mod lacks %q:\n%s", want, mod)
		}
	}
	if strings.Contains(string(mod), "./staging") {
		t.Errorf("wrapper go.mod points at staging directories:\n%s", mod)
	}
}

// Two builds of one component sharing a cache (parallel test packages, two
// builders) take turns: both succeed with the same binary.
func TestConcurrentBuildsShareTheCache(t *testing.T) {
	c := component(t, bundle.ComponentVersions{Pause: "3.10.2"}, "pause")
	dir := t.TempDir()
	type out struct {
		b   *Built
		err error
	}
	res := make(chan out, 2)
	for range 2 {
		go func() {
			g := &GoBuilder{CacheDir: dir, BuildTime: testBuildTime}
			b, err := g.Build(context.Background(), c)
			res <- out{b, err}
		}()
	}
	a, b := <-res, <-res
	if a.err != nil || b.err != nil {
		t.Fatalf("concurrent builds: %v, %v", a.err, b.err)
	}
	if a.b.Binaries["pause"] != b.b.Binaries["pause"] || (a.b.Cached == b.b.Cached) {
		t.Fatalf("want one compile and one cache hit of the same binary: %+v %+v", a.b, b.b)
	}
}
