package compose

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/ferry-k8s/ferry/images"
	"github.com/ferry-k8s/ferry/internal/testutil"

	digest "github.com/opencontainers/go-digest"
	imgspecv1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// helloSrc is the program the run test puts in an RPM: it reports who and
// where it runs, and what it sees of the image's files.
const helloSrc = `package main

import (
	"encoding/json"
	"fmt"
	"os"
	"syscall"
)

var version = "dev"

func main() {
	wd, _ := os.Getwd()
	files := map[string]string{}
	for _, p := range []string{"/var/lib/hello", "/tmp", "/usr/bin/hello", "/usr/share/hello/motd", "/usr/share/doc/hello/README"} {
		var st syscall.Stat_t
		if err := syscall.Lstat(p, &st); err != nil {
			files[p] = err.Error()
			continue
		}
		files[p] = fmt.Sprintf("%d:%d %o nlink=%d", st.Uid, st.Gid, st.Mode&07777, st.Nlink)
	}
	motd, err := os.ReadFile("/usr/share/hello/motd")
	if err != nil {
		motd = []byte(err.Error())
	}
	json.NewEncoder(os.Stdout).Encode(map[string]any{
		"version": version, "uid": os.Getuid(), "gid": os.Getgid(), "args": os.Args,
		"cwd": wd, "path": os.Getenv("PATH"), "files": files, "motd": string(motd),
	})
}
`

// helloSpec packages the program the way a component RPM would be: a
// binary with a hard link, a file readable by the image user's group, and
// the component's state directory owned by it.
const helloSpec = `Name: hello
Version: 1.2.3
Release: 1
Summary: hello
License: Apache-2.0
%global debug_package %{nil}
%global __os_install_post %{nil}
%global _build_id_links none
%description
hello
%install
install -D -m 0755 %{hellobin} %{buildroot}/usr/bin/hello
ln %{buildroot}/usr/bin/hello %{buildroot}/usr/bin/hello-link
mkdir -p %{buildroot}/var/lib/hello %{buildroot}/usr/share/hello
echo "hello from an rpm" > %{buildroot}/usr/share/hello/motd
%files
%attr(0755,root,root) /usr/bin/hello
%attr(0755,root,root) /usr/bin/hello-link
%attr(0640,root,hello) /usr/share/hello/motd
%dir %attr(0700,hello,hello) /var/lib/hello
`

const helloDocSpec = `Name: hello-doc
Version: 1.2.3
Release: 1
Summary: hello docs
License: Apache-2.0
BuildArch: noarch
%description
hello docs
%install
mkdir -p %{buildroot}/usr/share/doc/hello
echo "read me" > %{buildroot}/usr/share/doc/hello/README
%files
/usr/share/doc/hello/README
`

// rpmbuild builds spec with the real rpmbuild and returns the RPM.
func rpmbuild(t *testing.T, dir, spec, payload string, defines ...string) string {
	t.Helper()
	top := filepath.Join(dir, "rpmbuild")
	specFile := filepath.Join(dir, "package.spec")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(specFile, []byte(spec), 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{"-bb", "--quiet", "--define", "_topdir " + top, "--define", "_binary_payload " + payload}
	for _, d := range defines {
		args = append(args, "--define", d)
	}
	testutil.Need(t, "rpmbuild")
	run(t, dir, "env", append([]string{"HOME=" + dir, "rpmbuild"}, append(args, specFile)...)...)
	rpms, _ := filepath.Glob(filepath.Join(top, "RPMS", "*", "*.rpm"))
	if len(rpms) != 1 {
		t.Fatalf("rpmbuild made %v", rpms)
	}
	final := filepath.Join(dir, filepath.Base(rpms[0]))
	if err := os.Rename(rpms[0], final); err != nil {
		t.Fatal(err)
	}
	os.RemoveAll(top)
	return final
}

// TestRun composes an image from RPMs made by rpmbuild around a static Go
// program, checks it with skopeo and images.Copy, unpacks it with umoci
// (which also turns the image config into an OCI runtime config) and runs
// it with runc.
func TestRun(t *testing.T) {
	if runtime.GOOS != "linux" || os.Geteuid() != 0 {
		t.Fatal("this test runs containers: it needs Linux and root")
	}
	dir := t.TempDir()
	ctx := context.Background()

	// The program, built static.
	src := filepath.Join(dir, "src")
	os.MkdirAll(src, 0o755)
	for name, body := range map[string]string{"main.go": helloSrc, "go.mod": "module hello\n\ngo 1.22\n"} {
		if err := os.WriteFile(filepath.Join(src, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	bin := filepath.Join(dir, "hello")
	testutil.Need(t, "go")
	run(t, src, "env", "CGO_ENABLED=0", "GOFLAGS=", "GOTOOLCHAIN=local", "go", "build", "-trimpath",
		"-ldflags=-X main.version=1.2.3", "-o", bin, ".")

	hello := rpmbuild(t, filepath.Join(dir, "hello-rpm"), helloSpec, "w3.zstdio", "hellobin "+bin)
	doc := rpmbuild(t, filepath.Join(dir, "doc-rpm"), helloDocSpec, "w6.xzdio")

	const name = "registry.ferry.dev/test/hello:v1.2.3"
	layout := filepath.Join(dir, "layout")
	annotations := map[string]string{
		imgspecv1.AnnotationSource:  "https://github.com/ferry-k8s/ferry",
		imgspecv1.AnnotationVersion: "v1.2.3",
		imgspecv1.AnnotationTitle:   "hello",
	}
	res, err := Write(ctx, layout, []Image{{
		Name:         name,
		Packages:     []string{hello, doc},
		Files:        []File{{Path: "/tmp", Type: Directory, Mode: 0o1777}},
		User:         "65532:65532",
		UserName:     "hello",
		Entrypoint:   []string{"/usr/bin/hello", "--greeting=hi"},
		Cmd:          []string{"world"},
		WorkingDir:   "/var/lib/hello",
		ExposedPorts: []string{"8443/tcp"},
		Annotations:  annotations,
		Created:      created,
	}})
	if err != nil {
		t.Fatal(err)
	}
	ref := "oci:" + layout + ":" + name

	// skopeo reads the image by its full name.
	var inspect struct {
		Digest       digest.Digest
		Labels       map[string]string
		Architecture string
		Os           string
	}
	if err := json.Unmarshal(run(t, dir, "skopeo", "inspect", ref), &inspect); err != nil {
		t.Fatal(err)
	}
	if inspect.Digest != res[0].Digest || inspect.Architecture != "amd64" || inspect.Os != "linux" ||
		inspect.Labels[imgspecv1.AnnotationVersion] != "v1.2.3" {
		t.Errorf("skopeo inspect: %+v; composed %s", inspect, res[0].Digest)
	}
	var config imgspecv1.Image
	if err := json.Unmarshal(run(t, dir, "skopeo", "inspect", "--config", ref), &config); err != nil {
		t.Fatal(err)
	}
	if config.Config.User != "65532:65532" || !slices.Equal(config.Config.Entrypoint, []string{"/usr/bin/hello", "--greeting=hi"}) ||
		!slices.Equal(slices.Collect(maps.Keys(config.Config.ExposedPorts)), []string{"8443/tcp"}) ||
		!strings.Contains(config.History[0].CreatedBy, "hello-1.2.3-1.x86_64 hello-doc-1.2.3-1.noarch") {
		t.Errorf("skopeo inspect --config: %+v", config)
	}
	raw := run(t, dir, "skopeo", "inspect", "--raw", ref)
	var manifest imgspecv1.Manifest
	if err := json.Unmarshal(raw, &manifest); err != nil {
		t.Fatal(err)
	}
	if digest.FromBytes(raw) != res[0].Digest || manifest.Annotations[imgspecv1.AnnotationSource] != annotations[imgspecv1.AnnotationSource] {
		t.Errorf("skopeo inspect --raw: %s", raw)
	}

	// skopeo copy checks every blob's digest; the copy keeps the digest.
	copied := filepath.Join(dir, "copied")
	run(t, dir, "skopeo", "--insecure-policy", "copy", "--quiet", ref, "oci:"+copied+":hello")
	if d := digest.FromBytes(run(t, dir, "skopeo", "inspect", "--raw", "oci:"+copied+":hello")); d != res[0].Digest {
		t.Errorf("skopeo copy: digest %s, want %s", d, res[0].Digest)
	}
	// So does the builder's images.Copy into the bundle layout.
	bundled, err := images.Copy(ctx, filepath.Join(dir, "bundle"), []images.Source{{Ref: ref, Name: name}}, images.CopyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if bundled[0].Name != name || bundled[0].Digest != res[0].Digest {
		t.Errorf("images.Copy: %+v", bundled[0])
	}

	// umoci unpacks the layer (as root: owners kept) and writes the runtime
	// config from the image config: args, user, cwd, env.
	bundle := filepath.Join(dir, "run")
	run(t, dir, "umoci", "unpack", "--image", layout+":"+name, bundle)
	specFile := filepath.Join(bundle, "config.json")
	var spec map[string]any
	data, err := os.ReadFile(specFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &spec); err != nil {
		t.Fatal(err)
	}
	// No terminal: the test reads the output.
	spec["process"].(map[string]any)["terminal"] = false
	if data, err = json.Marshal(spec); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(specFile, data, 0o644); err != nil {
		t.Fatal(err)
	}
	id := fmt.Sprintf("ferry-compose-test-%d", os.Getpid())
	runcRoot := filepath.Join(dir, "runc")
	t.Cleanup(func() {
		// runc run removes the container when it exits; this is for a failure.
		exec.Command("runc", "--root", runcRoot, "delete", "--force", id).Run()
	})
	out := run(t, bundle, "runc", "--root", runcRoot, "run", "--bundle", bundle, id)

	var got struct {
		Version, Cwd, Path, Motd string
		UID, GID                 int
		Args                     []string
		Files                    map[string]string
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("output %q: %v", out, err)
	}
	t.Logf("container said: %s", out)
	if got.Version != "1.2.3" || got.UID != 65532 || got.GID != 65532 || got.Cwd != "/var/lib/hello" ||
		!slices.Equal(got.Args, []string{"/usr/bin/hello", "--greeting=hi", "world"}) ||
		got.Path != strings.TrimPrefix(defaultPath, "PATH=") || got.Motd != "hello from an rpm\n" {
		t.Errorf("container output %+v", got)
	}
	for p, want := range map[string]string{
		"/var/lib/hello":              "65532:65532 700 ",
		"/tmp":                        "0:0 1777 ",
		"/usr/bin/hello":              "0:0 755 nlink=2",
		"/usr/share/hello/motd":       "0:65532 640 nlink=1",
		"/usr/share/doc/hello/README": "0:0 644 nlink=1",
	} {
		if !strings.HasPrefix(got.Files[p], want) {
			t.Errorf("%s: %q, want %q…", p, got.Files[p], want)
		}
	}
}
