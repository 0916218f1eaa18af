package integration

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ferry-k8s/ferry/internal/testutil"
)

// containerd is a private containerd daemon for one test.
type containerd struct {
	sock string
	ns   string
}

// startContainerd runs Debian's containerd with its own root, state and
// socket, without the CRI plugin, and stops it when the test ends.
func startContainerd(t *testing.T) *containerd {
	t.Helper()
	bin := testutil.Need(t, "containerd")
	testutil.Need(t, "ctr")
	if os.Geteuid() != 0 {
		t.Fatal("the containerd test runs containerd, which needs root")
	}
	dir := t.TempDir()
	// A unix socket path is limited to 108 bytes: keep it short.
	sockDir, err := os.MkdirTemp("", "ctd")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sockDir) })
	c := &containerd{sock: filepath.Join(sockDir, "c.sock"), ns: "ferry-test"}
	cfg := fmt.Sprintf(`version = 2
root = %q
state = %q
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs"]
[grpc]
  address = %q
[ttrpc]
  address = %q
[debug]
  address = ""
[metrics]
  address = ""
`, filepath.Join(dir, "root"), filepath.Join(dir, "state"), c.sock, c.sock+".ttrpc")
	cfgPath := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	exited := testutil.StartProcess(t, "containerd", nil, bin, "--config", cfgPath, "--log-level", "info")
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case <-exited:
			t.Fatal("containerd exited (its log follows)")
		default:
		}
		if _, err := runErr(t, "ctr", "--address", c.sock, "version"); err == nil {
			return c
		}
		if time.Now().After(deadline) {
			t.Fatal("containerd did not start in 30 s (its log follows)")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (c *containerd) ctr(t *testing.T, args ...string) string {
	t.Helper()
	return run(t, "ctr", append([]string{"--address", c.sock, "--namespace", c.ns}, args...)...)
}

// TestContainerdPullsThroughTheMirror pulls the example image with
// containerd configured as a node is: registry.example.com (which does not
// resolve: the air gap) mirrored by the content service, with the service's
// CA. containerd sends /v2/ferry/app/…?ns=registry.example.com to the
// mirror.
func TestContainerdPullsThroughTheMirror(t *testing.T) {
	const upstream = "registry.example.com"
	if addrs, err := net.LookupHost(upstream); err == nil {
		t.Logf("note: %s resolves to %v here; the pull must still use the mirror, which hosts.toml lists first", upstream, addrs)
	}
	s := startServer(t, serveOptions{})
	c := startContainerd(t)

	hosts := t.TempDir()
	if err := os.MkdirAll(filepath.Join(hosts, upstream), 0o755); err != nil {
		t.Fatal(err)
	}
	toml := fmt.Sprintf("server = %q\n\n[host.%q]\n  capabilities = [\"pull\", \"resolve\"]\n  ca = %q\n",
		"https://"+upstream, s.url, shared.caFile)
	if err := os.WriteFile(filepath.Join(hosts, upstream, "hosts.toml"), []byte(toml), 0o644); err != nil {
		t.Fatal(err)
	}
	ref := upstream + "/ferry/app:1.0"
	out := c.ctr(t, "image", "pull", "--hosts-dir", hosts, "--snapshotter", "native", ref)
	t.Logf("ctr image pull:\n%s", out)

	ls := c.ctr(t, "image", "ls")
	if !strings.Contains(ls, ref) || !strings.Contains(ls, shared.ex.AppDigest) {
		t.Errorf("ctr image ls does not show %s with digest %s:\n%s", ref, shared.ex.AppDigest, ls)
	}
	content := c.ctr(t, "content", "ls")
	m := appManifest(t, shared.iso)
	for _, d := range append([]string{shared.ex.AppDigest, m.Config.Digest}, layerDigests(m)...) {
		if !strings.Contains(content, d) {
			t.Errorf("ctr content ls lacks %s:\n%s", d, content)
		}
	}
	// The image was unpacked: its layers are snapshots.
	if snaps := c.ctr(t, "snapshot", "--snapshotter", "native", "ls"); strings.Count(snaps, "Committed") != len(m.Layers) {
		t.Errorf("want %d committed snapshots:\n%s", len(m.Layers), snaps)
	}

	// The multi-platform image, fetched without unpacking: the index and
	// its linux/amd64 image.
	multi := upstream + "/ferry/multi:1.0"
	c.ctr(t, "content", "fetch", "--hosts-dir", hosts, "--platform", "linux/amd64", multi)
	if content := c.ctr(t, "content", "ls"); !strings.Contains(content, shared.ex.IndexAmd64) {
		t.Errorf("ctr content ls lacks the linux/amd64 manifest %s of %s:\n%s", shared.ex.IndexAmd64, multi, content)
	}

	// The mirror served it: the service counted the manifest and blob
	// requests and at least the layers' bytes.
	var layerBytes int64
	for _, l := range m.Layers {
		layerBytes += l.Size
	}
	if n := s.metric(t, "ferry_content_requests_total", `route="registry-manifests"`, `code="200"`); n < 1 {
		t.Errorf("the service served %v manifests", n)
	}
	if n := s.metric(t, "ferry_content_response_bytes_total", `route="registry-blobs"`); n < float64(layerBytes) {
		t.Errorf("the service served %v blob bytes, the layers alone are %d", n, layerBytes)
	}

	// And an image the bundle does not hold is not found (404 from the
	// mirror, then the unresolvable upstream).
	if o, err := runErr(t, "ctr", "--address", c.sock, "--namespace", c.ns, "image", "pull", "--hosts-dir", hosts, "--snapshotter", "native", upstream+"/ferry/absent:1.0"); err == nil {
		t.Errorf("ctr pulled an image the bundle does not hold:\n%s", o)
	}
}

func layerDigests(m ociManifest) []string {
	var ds []string
	for _, l := range m.Layers {
		ds = append(ds, l.Digest)
	}
	return ds
}
