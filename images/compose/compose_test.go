package compose

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ferry-k8s/ferry/images"

	"github.com/google/rpmpack"
	imgspecv1 "github.com/opencontainers/image-spec/specs-go/v1"
)

const appName = "registry.ferry.dev/test/app:v1.0.0"

// appPackages writes two packages: app (gzip) with a binary, a hard link to
// it, a symlink, a directory and a file owned by the image user; app-conf
// (zstd) with a config file and the same data file as app.
func appPackages(t testing.TB, dir string) []string {
	t.Helper()
	app := pkg{name: "app", files: []rpmpack.RPMFile{
		reg("/usr/bin/app", "app binary", 0o755, "root"),
		reg("/usr/bin/app2", "app binary", 0o755, "root"),
		symlink("/usr/bin/app-link", "app"),
		dirent("/usr/bin", 0o711, "root"),
		reg("/usr/share/app/data", "shared data", 0o640, "app"),
		dirent("/var/lib/app", 0o700, "app"),
	}}
	// app and app2 are hard links: the same inode in the header.
	inodes := make([]int32, len(app.files))
	for i, n := range app.sortedNames() {
		inodes[i] = int32(i + 1)
		if n == "/usr/bin/app2" {
			inodes[i] = int32(slices.Index(app.sortedNames(), "/usr/bin/app") + 1)
		}
	}
	app.tags = map[int]rpmpack.IndexEntry{1096: rpmpack.EntryInt32(inodes)}
	conf := pkg{name: "app-conf", compressor: "zstd", files: []rpmpack.RPMFile{
		reg("/etc/app/config.yaml", "key: value\n", 0o644, "root"),
		reg("/usr/share/app/data", "shared data", 0o640, "app"),
	}}
	return []string{app.write(t, dir), conf.write(t, dir)}
}

func appImage(pkgs []string) Image {
	return Image{
		Name:     appName,
		Packages: pkgs,
		Files: []File{
			{Path: "/tmp", Type: Directory, Mode: 0o1777},
			{Path: "/etc/nsswitch.conf", Body: []byte("hosts: files dns\n")},
		},
		User:         "65532:65532",
		UserName:     "app",
		Entrypoint:   []string{"/usr/bin/app", "--serve"},
		Cmd:          []string{"--port=8443"},
		Env:          []string{"APP_MODE=test"},
		WorkingDir:   "/var/lib/app",
		ExposedPorts: []string{"8443/tcp", "9090"},
		Annotations: map[string]string{
			imgspecv1.AnnotationSource:   "https://github.com/ferry-k8s/ferry",
			imgspecv1.AnnotationVersion:  "v1.0.0",
			imgspecv1.AnnotationRevision: "0123456789abcdef",
			imgspecv1.AnnotationLicenses: "Apache-2.0",
			imgspecv1.AnnotationTitle:    "app",
		},
		Created: created,
	}
}

func TestWriteLayerAndConfig(t *testing.T) {
	dir := t.TempDir()
	layout := filepath.Join(dir, "layout")
	res, err := Write(context.Background(), layout, []Image{appImage(appPackages(t, dir))})
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 1 || res[0].Name != appName || res[0].Digest == "" ||
		!slices.Equal(res[0].Packages, []string{"app-1.0-1.noarch", "app-conf-1.0-1.noarch"}) {
		t.Fatalf("results %+v", res)
	}
	img := readImage(t, layout, appName)

	var names []string
	for _, h := range img.entries {
		names = append(names, h.Name)
		if !h.ModTime.Equal(created) || h.Uname != "" || h.Gname != "" || h.Format != tar.FormatUSTAR {
			t.Errorf("%s: mtime %v uname %q gname %q format %v", h.Name, h.ModTime, h.Uname, h.Gname, h.Format)
		}
	}
	want := []string{
		"etc/", "etc/app/", "etc/app/config.yaml", "etc/group", "etc/nsswitch.conf", "etc/passwd",
		"tmp/", "usr/", "usr/bin/", "usr/bin/app", "usr/bin/app-link", "usr/bin/app2",
		"usr/share/", "usr/share/app/", "usr/share/app/data", "var/", "var/lib/", "var/lib/app/",
	}
	if !slices.Equal(names, want) {
		t.Fatalf("entries\n%q\nwant\n%q", names, want)
	}
	for _, c := range []struct {
		name     string
		typ      byte
		mode     int64
		uid, gid int
		link     string
	}{
		{"usr/", tar.TypeDir, 0o755, 0, 0, ""},     // implied parent
		{"usr/bin/", tar.TypeDir, 0o711, 0, 0, ""}, // from the package
		{"usr/bin/app", tar.TypeReg, 0o755, 0, 0, ""},
		{"usr/bin/app2", tar.TypeLink, 0o755, 0, 0, "usr/bin/app"},
		{"usr/bin/app-link", tar.TypeSymlink, 0o777, 0, 0, "app"},
		{"usr/share/app/data", tar.TypeReg, 0o640, 65532, 65532, ""},
		{"var/lib/app/", tar.TypeDir, 0o700, 65532, 65532, ""},
		{"tmp/", tar.TypeDir, 0o1777, 0, 0, ""},
		{"etc/passwd", tar.TypeReg, 0o644, 0, 0, ""},
	} {
		h := img.entry(c.name)
		if h.Typeflag != c.typ || h.Mode != c.mode || h.Uid != c.uid || h.Gid != c.gid || h.Linkname != c.link {
			t.Errorf("%s: type %c mode %o owner %d:%d link %q; want %c %o %d:%d %q",
				c.name, h.Typeflag, h.Mode, h.Uid, h.Gid, h.Linkname, c.typ, c.mode, c.uid, c.gid, c.link)
		}
	}
	if got := img.content["etc/passwd"]; got != "root:x:0:0:root:/root:/sbin/nologin\napp:x:65532:65532:app:/:/sbin/nologin\n" {
		t.Errorf("/etc/passwd:\n%s", got)
	}
	if got := img.content["etc/group"]; got != "root:x:0:\napp:x:65532:\n" {
		t.Errorf("/etc/group:\n%s", got)
	}
	if img.content["usr/bin/app"] != "app binary" || img.content["usr/share/app/data"] != "shared data" {
		t.Errorf("content %q", img.content)
	}

	c := img.config
	if c.OS != "linux" || c.Architecture != "amd64" || !c.Created.Equal(created) {
		t.Errorf("platform %s/%s created %v", c.OS, c.Architecture, c.Created)
	}
	cc := c.Config
	if cc.User != "65532:65532" || !slices.Equal(cc.Entrypoint, []string{"/usr/bin/app", "--serve"}) ||
		!slices.Equal(cc.Cmd, []string{"--port=8443"}) || cc.WorkingDir != "/var/lib/app" ||
		!slices.Equal(cc.Env, []string{defaultPath, "APP_MODE=test"}) ||
		!slices.Equal(slices.Sorted(maps.Keys(cc.ExposedPorts)), []string{"8443/tcp", "9090/tcp"}) {
		t.Errorf("config %+v", cc)
	}
	wantAnn := maps.Clone(appImage(nil).Annotations)
	wantAnn[imgspecv1.AnnotationCreated] = "2026-01-01T00:00:00Z"
	if !maps.Equal(cc.Labels, wantAnn) || !maps.Equal(img.manifest.Annotations, wantAnn) {
		t.Errorf("labels %v\nannotations %v\nwant %v", cc.Labels, img.manifest.Annotations, wantAnn)
	}
	if len(c.History) != 1 || c.History[0].CreatedBy != "ferry compose from app-1.0-1.noarch app-conf-1.0-1.noarch" {
		t.Errorf("history %+v", c.History)
	}
	if img.manifest.MediaType != imgspecv1.MediaTypeImageManifest || img.manifest.Layers[0].MediaType != imgspecv1.MediaTypeImageLayerGzip {
		t.Errorf("media types %s %s", img.manifest.MediaType, img.manifest.Layers[0].MediaType)
	}

	// The project's own layout reader accepts the layout.
	listed, err := images.ReadIndex(os.DirFS(layout), ".")
	if err != nil {
		t.Fatal(err)
	}
	if len(listed) != 1 || listed[0].Name != appName || listed[0].Digest != res[0].Digest ||
		!slices.Equal(listed[0].Platforms, []string{"linux/amd64"}) {
		t.Errorf("images.ReadIndex: %+v", listed)
	}
}

func TestInclude(t *testing.T) {
	dir := t.TempDir()
	img := appImage(appPackages(t, dir))
	img.UserName, img.User = "", "65532"
	img.Files = nil
	img.Include = []string{"/usr/bin/app*", "/etc/app/"}
	layout := filepath.Join(dir, "layout")
	if _, err := Write(context.Background(), layout, []Image{img}); err != nil {
		t.Fatal(err)
	}
	got := readImage(t, layout, appName)
	var names []string
	for _, h := range got.entries {
		names = append(names, h.Name)
	}
	want := []string{"etc/", "etc/app/", "etc/app/config.yaml", "usr/", "usr/bin/", "usr/bin/app", "usr/bin/app-link", "usr/bin/app2"}
	if !slices.Equal(names, want) {
		t.Errorf("entries %q, want %q", names, want)
	}
	if h := got.entry("usr/bin/"); h.Mode != 0o711 {
		t.Errorf("usr/bin/ mode %o: the package's metadata should be kept for a parent", h.Mode)
	}

	// Only one member of a hard-link pair selected: a plain file.
	img.Include = []string{"/usr/bin/app2"}
	img.Entrypoint = []string{"/usr/bin/app2"}
	if _, err := Write(context.Background(), layout, []Image{img}); err != nil {
		t.Fatal(err)
	}
	got = readImage(t, layout, appName)
	if h := got.entry("usr/bin/app2"); h.Typeflag != tar.TypeReg || got.content["usr/bin/app2"] != "app binary" {
		t.Errorf("usr/bin/app2: type %c content %q", h.Typeflag, got.content["usr/bin/app2"])
	}
}

// TestReproducible writes the same images into two fresh layouts, in two
// orders: every file of the layouts is byte-identical.
func TestReproducible(t *testing.T) {
	dir := t.TempDir()
	pkgs := appPackages(t, dir)
	a := appImage(pkgs)
	b := appImage(pkgs[1:])
	b.Name = "registry.ferry.dev/test/conf:v1.0.0"
	b.Entrypoint = []string{"conf"} // looked up in PATH: not checked
	b.Files = nil
	first := filepath.Join(dir, "one")
	second := filepath.Join(dir, "two")
	r1, err := Write(context.Background(), first, []Image{a, b})
	if err != nil {
		t.Fatal(err)
	}
	r2, err := Write(context.Background(), second, []Image{b, a})
	if err != nil {
		t.Fatal(err)
	}
	if r1[0].Digest != r2[1].Digest || r1[1].Digest != r2[0].Digest {
		t.Fatalf("digests differ: %v %v", r1, r2)
	}
	f1, f2 := layoutFiles(t, first), layoutFiles(t, second)
	if !maps.EqualFunc(f1, f2, bytes.Equal) {
		t.Fatalf("layouts differ:\n%v\n%v", slices.Sorted(maps.Keys(f1)), slices.Sorted(maps.Keys(f2)))
	}
	// Writing again into the same layout changes nothing.
	if _, err := Write(context.Background(), first, []Image{a}); err != nil {
		t.Fatal(err)
	}
	if f3 := layoutFiles(t, first); !maps.EqualFunc(f1, f3, bytes.Equal) {
		t.Fatal("rewriting an image changed the layout")
	}
}

// TestCompressors: the payload compressor does not change the image.
func TestCompressors(t *testing.T) {
	dir := t.TempDir()
	var digests []string
	for _, comp := range []string{"gzip", "zstd", "xz", "lzma"} {
		p := pkg{name: "c-" + comp, compressor: comp, files: []rpmpack.RPMFile{
			reg("/usr/bin/c", strings.Repeat("content ", 10000), 0o755, "root"),
			symlink("/usr/bin/d", "c"),
		}}
		path := p.write(t, dir)
		img := Image{Name: "registry.ferry.dev/test/c:1", Packages: []string{path}, Entrypoint: []string{"/usr/bin/c"}, Created: created}
		layout := filepath.Join(dir, comp)
		if _, err := Write(context.Background(), layout, []Image{img}); err != nil {
			t.Fatalf("%s: %v", comp, err)
		}
		got := readImage(t, layout, img.Name)
		digests = append(digests, string(got.manifest.Layers[0].Digest))
		if got.content["usr/bin/c"] != strings.Repeat("content ", 10000) {
			t.Errorf("%s: content differs", comp)
		}
	}
	if len(slices.Compact(slices.Clone(digests))) != 1 {
		t.Errorf("layer digests differ by compressor: %v", digests)
	}
}

// TestLayoutUpdate: images are added to an existing layout, and an image
// of the same name is replaced.
func TestLayoutUpdate(t *testing.T) {
	dir := t.TempDir()
	layout := filepath.Join(dir, "layout")
	mk := func(name, body string) Image {
		p := pkg{name: "p" + body, files: []rpmpack.RPMFile{reg("/usr/bin/p", body, 0o755, "root")}}
		return Image{Name: name, Packages: []string{p.write(t, dir)}, Entrypoint: []string{"/usr/bin/p"}, Created: created}
	}
	if _, err := Write(context.Background(), layout, []Image{mk("registry.ferry.dev/test/a:1", "a")}); err != nil {
		t.Fatal(err)
	}
	if _, err := Write(context.Background(), layout, []Image{mk("registry.ferry.dev/test/b:1", "b")}); err != nil {
		t.Fatal(err)
	}
	res, err := Write(context.Background(), layout, []Image{mk("registry.ferry.dev/test/a:1", "c")})
	if err != nil {
		t.Fatal(err)
	}
	listed, err := images.ReadIndex(os.DirFS(layout), ".")
	if err != nil {
		t.Fatal(err)
	}
	if len(listed) != 2 || listed[0].Name != "registry.ferry.dev/test/a:1" || listed[0].Digest != res[0].Digest ||
		listed[1].Name != "registry.ferry.dev/test/b:1" {
		t.Errorf("index %+v", listed)
	}
	if got := readImage(t, layout, "registry.ferry.dev/test/a:1"); got.content["usr/bin/p"] != "c" {
		t.Errorf("a:1 was not replaced")
	}
}

func TestErrors(t *testing.T) {
	dir := t.TempDir()
	p := func(name string, files ...rpmpack.RPMFile) string {
		return pkg{name: name, files: files}.write(t, dir)
	}
	x1 := p("x1", reg("/etc/x", "one", 0o644, "root"))
	x2 := p("x2", reg("/etc/x", "two", 0o644, "root"))
	x3 := p("x3", reg("/etc/x", "one", 0o600, "root"))
	x4 := p("x4", reg("/etc/x", "one", 0o644, "kube"))
	kube := p("kube", reg("/usr/bin/kube", "k", 0o755, "kube"))
	kubeGroup := p("kube-group", reg("/usr/bin/kube", "k", 0o755, "root"), rpmpack.RPMFile{Name: "/etc/kube", Body: []byte("k"), Mode: 0o644, Owner: "root", Group: "kube"})
	up := p("up", reg("../x", "x", 0o644, "root"))
	up2 := p("up2", reg("/a/../../x", "x", 0o644, "root"))
	wh := p("wh", reg("/etc/.wh.passwd", "x", 0o644, "root"))
	// rpmpack cannot write a device file: override its FILEMODES.
	dev := pkg{name: "dev", files: []rpmpack.RPMFile{reg("/dev/null", "", 0o666, "root")},
		tags: map[int]rpmpack.IndexEntry{1030: rpmpack.EntryUint16([]uint16{0o020666})}}.write(t, dir)
	arm := pkg{name: "arm", arch: "aarch64", files: []rpmpack.RPMFile{reg("/usr/bin/a", "a", 0o755, "root")}}.write(t, dir)
	parent := p("parent", symlink("/bin", "usr/bin"), reg("/bin/sh", "sh", 0o755, "root"))
	badDigest := pkg{name: "baddigest", files: []rpmpack.RPMFile{reg("/usr/bin/b", "b", 0o755, "root")},
		tags: map[int]rpmpack.IndexEntry{1035: rpmpack.EntryStringSlice([]string{strings.Repeat("ab", 32)})}}.write(t, dir)
	passwd := p("passwd", reg("/etc/passwd", "root:x:0:0::/:/sbin/nologin\nkube:x:1001:1001::/:/sbin/nologin\n", 0o644, "root"))
	accounts := p("accounts", reg("/etc/passwd", "root:x:0:0::/:/sbin/nologin\nkube:x:1001:1001::/:/sbin/nologin\n", 0o644, "root"),
		reg("/etc/group", "root:x:0:\nkube:x:1001:\n", 0o644, "root"))
	badPasswd := p("bad-passwd", reg("/etc/passwd", "root:x:zero:0::/:/sbin/nologin\n", 0o644, "root"))

	notRPM := filepath.Join(dir, "not.rpm")
	os.WriteFile(notRPM, []byte("not an rpm at all, just text that is long enough to hold a lead........................................................"), 0o644)
	good, _ := os.ReadFile(x1)
	truncated := filepath.Join(dir, "truncated.rpm")
	os.WriteFile(truncated, good[:len(good)-10], 0o644)
	// A flipped byte in the middle of the gzip payload.
	corrupt := filepath.Join(dir, "corrupt.rpm")
	big := pkg{name: "big", files: []rpmpack.RPMFile{reg("/usr/bin/big", strings.Repeat("0123456789", 5000), 0o755, "root")}}.bytes(t)
	big[len(big)-40] ^= 0xff
	os.WriteFile(corrupt, big, 0o644)

	base := func(pkgs ...string) Image {
		return Image{Name: "registry.ferry.dev/test/e:1", Packages: pkgs, Entrypoint: []string{"x"}, Created: created}
	}
	with := func(img Image, f func(*Image)) Image { f(&img); return img }
	for _, c := range []struct {
		name string
		imgs []Image
		want []string
	}{
		{"conflict content", []Image{base(x1, x2)}, []string{"/etc/x", "x1-1.0-1.noarch", "x2-1.0-1.noarch", "content"}},
		{"conflict mode", []Image{base(x1, x3)}, []string{"/etc/x", "x1-1.0-1.noarch", "x3-1.0-1.noarch", "mode 0644 vs 0600"}},
		{"conflict owner", []Image{base(x1, x4, accounts)}, []string{"/etc/x", "x1-1.0-1.noarch", "x4-1.0-1.noarch", "owner 0:0 vs 1001:1001"}},
		{"conflict with files", []Image{with(base(x1), func(i *Image) { i.Files = []File{{Path: "/etc/x", Body: []byte("three")}} })}, []string{"/etc/x", "x1-1.0-1.noarch", "files[0]"}},
		{"conflict with generated passwd", []Image{with(base(passwd), func(i *Image) { i.User, i.UserName = "1:1", "kube" })}, []string{"/etc/passwd", "passwd-1.0-1.noarch", "generated for UserName"}},
		{"unknown owner", []Image{base(kube)}, []string{"/usr/bin/kube", "kube-1.0-1.noarch", `owner "kube"`, "/etc/passwd"}},
		{"unknown group", []Image{base(kubeGroup, passwd)}, []string{"/etc/kube", `group "kube"`, "/etc/group"}},
		{"bad passwd", []Image{base(kube, badPasswd)}, []string{"/etc/passwd line 1", "bad-passwd-1.0-1.noarch"}},
		{"traversal", []Image{base(up)}, []string{`"../x"`, "escapes the image root", "up-1.0-1.noarch"}},
		{"traversal inside", []Image{base(up2)}, []string{`"/a/../../x"`, "escapes the image root", "up2-1.0-1.noarch"}},
		{"whiteout", []Image{base(wh)}, []string{"/etc/.wh.passwd", "whiteout", "wh-1.0-1.noarch"}},
		{"device", []Image{base(dev)}, []string{"/dev/null", "unsupported file type", "dev-1.0-1.noarch"}},
		{"arch", []Image{base(arm)}, []string{"arm-1.0-1.aarch64", "aarch64", "amd64"}},
		{"parent symlink", []Image{base(parent)}, []string{"/bin/sh", "parent /bin is a symlink"}},
		{"file digest", []Image{base(badDigest)}, []string{"/usr/bin/b", "baddigest-1.0-1.noarch", "digest"}},
		{"missing rpm", []Image{base(filepath.Join(dir, "missing.rpm"))}, []string{"missing.rpm", "no such file"}},
		{"not an rpm", []Image{base(notRPM)}, []string{"not.rpm", "not an rpm"}},
		{"truncated rpm", []Image{base(truncated)}, []string{"truncated.rpm"}},
		{"corrupt payload", []Image{base(corrupt)}, []string{"big-1.0-1.noarch", "corrupt.rpm"}},
		{"include unused", []Image{with(base(x1), func(i *Image) { i.Include = []string{"/usr/bin/"} })}, []string{`"/usr/bin/"`, "select nothing"}},
		{"include malformed", []Image{with(base(x1), func(i *Image) { i.Include = []string{"/etc/["} })}, []string{`"/etc/["`}},
		{"name without tag", []Image{with(base(x1), func(i *Image) { i.Name = "registry.ferry.dev/test/e" })}, []string{"needs a tag"}},
		{"short name", []Image{with(base(x1), func(i *Image) { i.Name = "e:1" })}, []string{`"e:1"`}},
		{"name with digest", []Image{with(base(x1), func(i *Image) { i.Name = "registry.ferry.dev/e:1@sha256:" + strings.Repeat("a", 64) })}, []string{"digest"}},
		{"duplicate names", []Image{base(x1), base(x1)}, []string{"images 0 and 1", "registry.ferry.dev/test/e:1"}},
		{"entrypoint missing", []Image{with(base(x1), func(i *Image) { i.Entrypoint = []string{"/usr/bin/x"} })}, []string{"entrypoint /usr/bin/x", "/usr does not exist"}},
		{"entrypoint not executable", []Image{with(base(x1), func(i *Image) { i.Entrypoint = []string{"/etc/x"} })}, []string{"entrypoint /etc/x", "not an executable file"}},
		{"no entrypoint", []Image{with(base(x1), func(i *Image) { i.Entrypoint = nil })}, []string{"entrypoint"}},
		{"user name without uid", []Image{with(base(x1), func(i *Image) { i.UserName = "kube" })}, []string{`"kube"`, "numeric User"}},
		{"user name root uid", []Image{with(base(x1), func(i *Image) { i.User, i.UserName = "0:0", "kube" })}, []string{"uid 0"}},
		{"user not in passwd", []Image{with(base(x1), func(i *Image) { i.User = "kube" })}, []string{`"kube"`, "/etc/passwd"}},
		{"bad port", []Image{with(base(x1), func(i *Image) { i.ExposedPorts = []string{"70000/tcp"} })}, []string{`"70000/tcp"`}},
		{"bad env", []Image{with(base(x1), func(i *Image) { i.Env = []string{"NOVALUE"} })}, []string{`"NOVALUE"`}},
		{"relative file", []Image{with(base(x1), func(i *Image) { i.Files = []File{{Path: "etc/y"}} })}, []string{"files[0]", `"etc/y"`, "not absolute"}},
		{"file mode type bits", []Image{with(base(x1), func(i *Image) { i.Files = []File{{Path: "/etc/y", Mode: 0o100644}} })}, []string{"files[0]", "/etc/y", "mode"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			layout := filepath.Join(t.TempDir(), "layout")
			_, err := Write(context.Background(), layout, c.imgs)
			if err == nil {
				t.Fatal("no error")
			}
			t.Log(err)
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			if _, serr := os.Stat(filepath.Join(layout, "index.json")); serr == nil {
				t.Errorf("a failed Write listed images")
			}
		})
	}

	// The same file twice, identical: fine; and owners from a package's
	// /etc/passwd.
	layout := filepath.Join(dir, "ok")
	if _, err := Write(context.Background(), layout, []Image{base(x1, x1, kube, accounts)}); err != nil {
		t.Fatal(err)
	}
	if h := readImage(t, layout, "registry.ferry.dev/test/e:1").entry("usr/bin/kube"); h.Uid != 1001 || h.Gid != 1001 {
		t.Errorf("kube's owner %d:%d, want 1001:1001 from the package's /etc/passwd", h.Uid, h.Gid)
	}
}

func TestCleanPath(t *testing.T) {
	for in, want := range map[string]string{
		"/": "", "/etc/passwd": "etc/passwd", "/a b/c": "a b/c",
	} {
		if got, err := cleanPath(in); err != nil || got != want {
			t.Errorf("cleanPath(%q) = %q, %v", in, got, err)
		}
	}
	for _, in := range []string{"", "etc", "../x", "/a/../b", "/a//b", "/a/./b", "/a/", "/.wh..wh..opq", "/a\x00b", "/" + strings.Repeat("a", 256)} {
		if got, err := cleanPath(in); err == nil {
			t.Errorf("cleanPath(%q) = %q, want an error", in, got)
		}
	}
}

// TestCpioStripped reads rpm ≥ 4.12's stripped cpio form, which rpmpack
// and rpmbuild only write for files of 4 GiB or more: written by hand here.
func TestCpioStripped(t *testing.T) {
	var b bytes.Buffer
	pad := func() {
		for b.Len()%4 != 0 {
			b.WriteByte(0)
		}
	}
	b.WriteString(cpioStrippedMagic + "00000001")
	pad()
	b.WriteString("hello")
	pad()
	b.WriteString(cpioStrippedMagic + "00000000")
	pad()
	newc := func(name string) {
		b.WriteString(cpioNewcMagic)
		for i := range 13 {
			v := 0
			if i == 11 {
				v = len(name) + 1
			}
			b.WriteString(strings.ToUpper(hex.EncodeToString([]byte{0, 0, 0, byte(v)})))
		}
		b.WriteString(name + "\x00")
		pad()
	}
	newc(cpioTrailer)
	sizes := []int64{0, 5}
	cr := newCpioReader(bytes.NewReader(b.Bytes()), func(i int) (int64, error) { return sizes[i], nil })
	e, err := cr.Next()
	if err != nil || e.index != 1 || e.size != 5 {
		t.Fatalf("first entry %+v, %v", e, err)
	}
	var data bytes.Buffer
	if _, err := data.ReadFrom(cr); err != nil || data.String() != "hello" {
		t.Fatalf("data %q, %v", data.String(), err)
	}
	if e, err = cr.Next(); err != nil || e.index != 0 || e.size != 0 {
		t.Fatalf("second entry %+v, %v", e, err)
	}
	if _, err = cr.Next(); err == nil || err.Error() != "EOF" {
		t.Fatalf("after the trailer: %v", err)
	}
}

// TestSpoolDigest checks file digests with each algorithm rpm uses.
func TestSpoolDigest(t *testing.T) {
	sp, err := newSpool()
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	sum := sha256.Sum256([]byte("abc"))
	for algo, want := range map[uint64]string{
		digestMD5:    "900150983cd24fb0d6963f7d28e17f72",
		digestSHA1:   "a9993e364706816aba3e25717850c26c9cd0d89d",
		digestSHA256: hex.EncodeToString(sum[:]),
	} {
		if _, _, err := sp.add(strings.NewReader("abc"), 3, algo, want); err != nil {
			t.Errorf("algo %d: %v", algo, err)
		}
		if _, _, err := sp.add(strings.NewReader("abd"), 3, algo, want); err == nil {
			t.Errorf("algo %d: wrong content accepted", algo)
		}
	}
	if _, _, err := sp.add(strings.NewReader("ab"), 3, digestSHA256, ""); err == nil {
		t.Error("short content accepted")
	}
}

func TestLookup(t *testing.T) {
	tr := newTree()
	for _, n := range []*node{
		{path: "usr", kind: kindDir}, {path: "usr/bin", kind: kindDir},
		{path: "usr/bin/app", kind: kindReg, perm: 0o755},
		{path: "usr/bin/link", kind: kindSymlink, link: "app"},
		{path: "usr/bin/up", kind: kindSymlink, link: "../bin/./link"},
		{path: "bin", kind: kindSymlink, link: "usr/bin"},
		{path: "abs", kind: kindSymlink, link: "/bin/up"},
		{path: "loop", kind: kindSymlink, link: "loop"},
	} {
		if err := tr.add(n); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range []string{"/usr/bin/app", "/usr/bin/link", "/bin/app", "/bin/up", "/abs", "/usr/../bin/link"} {
		if n, err := tr.lookup(p); err != nil || n.path != "usr/bin/app" {
			t.Errorf("lookup(%s) = %v, %v", p, n, err)
		}
	}
	for _, p := range []string{"/loop", "/usr/bin/app/x", "/usr/bin/none", "/"} {
		if n, err := tr.lookup(p); err == nil {
			t.Errorf("lookup(%s) = %s, want an error", p, n.path)
		}
	}
}
