package rpmbuild

import (
	"bytes"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/cavaliergopher/cpio"

	"github.com/ferry-k8s/ferry/internal/testutil"
	"github.com/ferry-k8s/ferry/repo"
)

const demoUnit = "[Unit]\nDescription=Ferry demo\n\n[Service]\nExecStart=/usr/bin/ferry-demo\n"

// demoPackage is a package with every kind of file, a unit, a sysusers
// user owning some of its files, dependencies of each kind and a script.
// conf is the content of its %config(noreplace) file demo.yaml.
func demoPackage(t testing.TB, release, conf string) Package {
	t.Helper()
	helper := filepath.Join(t.TempDir(), "helper")
	if err := os.WriteFile(helper, []byte("#!/bin/sh\necho helper "+release+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return Package{
		Name: "ferry-demo", Version: "1.0", Release: release, Arch: "x86_64", Epoch: 2,
		Summary: "Ferry demo daemon", Description: "A demo daemon.\nIt has two lines.", License: "Apache-2.0",
		URL: "https://ferry.invalid/demo", Vendor: "Ferry", Packager: "Ferry Release <release@ferry.invalid>", Group: "System/Daemons",
		BuildTime: epoch,
		Files: []File{
			// Declared out of order: the package sorts them.
			{Path: "/usr/bin/ferry-demo", Body: []byte("#!/bin/sh\necho demo\n"), Mode: 0o755},
			{Path: "/usr/bin/fdemo", Type: Symlink, LinkTarget: "ferry-demo"},
			{Path: "/etc/ferry-demo", Type: Dir, Mode: 0o750, Group: "ferry-demo"},
			{Path: "/etc/ferry-demo/demo.yaml", Body: []byte(conf), Mode: 0o640, Group: "ferry-demo", NoReplace: true},
			{Path: "/etc/ferry-demo/defaults.yaml", Body: []byte("release: " + release + "\n"), Mode: 0o644, NoReplace: true},
			{Path: "/var/lib/ferry-demo", Type: Dir, Mode: 0o700, Owner: "ferry-demo", Group: "ferry-demo"},
			{Path: "/var/log/ferry-demo.log", Ghost: true, Mode: 0o600, Owner: "ferry-demo", Group: "ferry-demo"},
			{Path: "/usr/share/doc/ferry-demo/README", Body: []byte("read me\n"), Mode: 0o644, Doc: true},
			{Path: "/usr/libexec/ferry-demo/helper", Source: helper, Mode: fs.ModeSetgid | 0o750, Group: "ferry-demo"},
		},
		Units:      []Unit{{Name: "ferry-demo.service", Body: []byte(demoUnit)}},
		Sysusers:   []Sysusers{{Name: "ferry-demo", Conf: []byte("g ferry-demo -\nu ferry-demo - \"Ferry demo\" /var/lib/ferry-demo\n")}},
		Requires:   []Relation{{Name: "ferry-demo-lib", Flags: ">=", Version: "1.0"}, {Name: "ferry-demo-api", Flags: ">=", Version: "2"}},
		Provides:   []Relation{{Name: "ferry-demo-daemon", Flags: "=", Version: "1.0"}},
		Conflicts:  []Relation{{Name: "other-demo"}},
		Obsoletes:  []Relation{{Name: "ferry-demo-old", Flags: "<", Version: "1:0.9-1"}},
		Recommends: []Relation{{Name: "ferry-demo-extras"}},
		Scripts:    Scripts{Post: "echo \"post $1\" >> /var/lib/ferry-demo/scripts.log\n"},
	}
}

// libPackage is what demoPackage requires.
func libPackage() Package {
	return Package{
		Name: "ferry-demo-lib", Version: "1.2", Release: "3", Arch: "noarch",
		Summary: "Ferry demo library", License: "MIT", BuildTime: epoch,
		Files: []File{
			{Path: "/usr/share/ferry-demo-lib", Type: Dir, Mode: 0o755},
			{Path: "/usr/share/ferry-demo-lib/lib.txt", Body: []byte("lib\n"), Mode: 0o644},
		},
		Provides: []Relation{{Name: "ferry-demo-api", Flags: "=", Version: "2.1"}},
	}
}

// demoListing is rpm -qlvp's view of demoPackage: mode, owner, group, path.
var demoListing = []string{
	"drwxr-x--- root ferry-demo /etc/ferry-demo",
	"-rw-r--r-- root root /etc/ferry-demo/defaults.yaml",
	"-rw-r----- root ferry-demo /etc/ferry-demo/demo.yaml",
	"lrwxrwxrwx root root /usr/bin/fdemo -> ferry-demo",
	"-rwxr-xr-x root root /usr/bin/ferry-demo",
	"-rw-r--r-- root root /usr/lib/systemd/system/ferry-demo.service",
	"-rw-r--r-- root root /usr/lib/sysusers.d/ferry-demo.conf",
	"-rwxr-s--- root ferry-demo /usr/libexec/ferry-demo/helper",
	"-rw-r--r-- root root /usr/share/doc/ferry-demo/README",
	"drwx------ ferry-demo ferry-demo /var/lib/ferry-demo",
	"-rw------- ferry-demo ferry-demo /var/log/ferry-demo.log",
}

// TestRPMReadsPackage checks the header through rpm's own queries.
func TestRPMReadsPackage(t *testing.T) {
	key := newKey(t, "Ferry Test")
	p := writeRPM(t, t.TempDir(), demoPackage(t, "1", "a: 1\n"), Options{Signer: key.signer})
	// An rpmdb that knows the key: rpm checks the signature on every
	// query and would add a warning to the output otherwise.
	db := t.TempDir()
	mustRun(t, "rpmkeys", "--dbpath", db, "--import", key.pubPath)
	q := func(args ...string) string {
		return mustRun(t, "rpm", append(append([]string{"--dbpath", db, "-qp"}, args...), p)...)
	}

	info := q("-i")
	for _, want := range []string{
		"Name        : ferry-demo", "Epoch       : 2", "Version     : 1.0", "Release     : 1",
		"Architecture: x86_64", "License     : Apache-2.0", "Summary     : Ferry demo daemon",
		"Build Host  : localhost", "URL         : https://ferry.invalid/demo", "Vendor      : Ferry",
		"Group       : System/Daemons", "Packager    : Ferry Release <release@ferry.invalid>",
		"Signature   : EdDSA/SHA256, Thu Jan  1 00:00:00 2026, Key ID", "Build Date  : Thu Jan  1 00:00:00 2026",
		"Description :\nA demo daemon.\nIt has two lines.",
	} {
		if !strings.Contains(info, want) {
			t.Errorf("rpm -qip lacks %q:\n%s", want, info)
		}
	}
	if got := q("--qf", "%{BUILDTIME} %{PAYLOADCOMPRESSOR} %{SOURCERPM}"); got != "1767225600 zstd ferry-demo-1.0-1.src.rpm" {
		t.Errorf("build time, compressor, source rpm: %q", got)
	}

	// Files: modes, owners, link targets, in sorted order.
	// (rpm -qlvp shows the same, with names cut to 8 characters.)
	var listing []string
	for _, l := range lines(q("--qf", "[%{FILEMODES:perms} %{FILEUSERNAME} %{FILEGROUPNAME} %{FILENAMES} -> %{FILELINKTOS}\n]")) {
		listing = append(listing, strings.TrimSuffix(l, " ->"))
	}
	if !slices.Equal(listing, demoListing) {
		t.Errorf("rpm -qp files:\n%s\nwant:\n%s", strings.Join(listing, "\n"), strings.Join(demoListing, "\n"))
	}
	if n := len(lines(q("-lv"))); n != len(demoListing) {
		t.Errorf("rpm -qlvp lists %d files, want %d", n, len(demoListing))
	}
	if got := q("--qf", "[%{FILEMTIMES} ]"); strings.Trim(strings.ReplaceAll(got, "1767225600", ""), " ") != "" {
		t.Errorf("file mtimes are not the build time: %s", got)
	}
	flags := q("--qf", "[%{FILEFLAGS:fflags} %{FILENAMES}\n]")
	for _, want := range []string{"cn /etc/ferry-demo/demo.yaml", "cn /etc/ferry-demo/defaults.yaml", "g /var/log/ferry-demo.log", "d /usr/share/doc/ferry-demo/README", " /usr/bin/ferry-demo"} {
		if !slices.Contains(strings.Split(flags, "\n"), want) {
			t.Errorf("file flags lack %q:\n%s", want, flags)
		}
	}
	if got := lines(q("--configfiles")); !slices.Equal(got, []string{"/etc/ferry-demo/defaults.yaml", "/etc/ferry-demo/demo.yaml"}) {
		t.Errorf("rpm --configfiles: %q", got)
	}
	if got := lines(q("--docfiles")); !slices.Equal(got, []string{"/usr/share/doc/ferry-demo/README"}) {
		t.Errorf("rpm --docfiles: %q", got)
	}

	// Dependencies as declared, plus what rpmbuild adds.
	deps := []struct{ query, want string }{
		{"--provides", "ferry-demo = 2:1.0-1\nferry-demo(x86-64) = 2:1.0-1\nferry-demo-daemon = 1.0"},
		{"--requires", "/bin/sh\n/bin/sh\n/bin/sh\n/bin/sh\nferry-demo-api >= 2\nferry-demo-lib >= 1.0\n" +
			"rpmlib(CompressedFileNames) <= 3.0.4-1\nrpmlib(FileDigests) <= 4.6.0-1\nrpmlib(PayloadIsZstd) <= 5.4.18-1"},
		{"--conflicts", "other-demo"},
		{"--obsoletes", "ferry-demo-old < 1:0.9-1"},
		{"--recommends", "ferry-demo-extras"},
	}
	for _, d := range deps {
		got := strings.Join(lines(q(d.query)), "\n")
		if d.query == "--provides" || d.query == "--requires" {
			got = strings.Join(sortedLines(got), "\n")
		}
		if got != d.want {
			t.Errorf("rpm %s:\n%s\nwant:\n%s", d.query, got, d.want)
		}
	}
	if got := q("--qf", "[%{REQUIRENAME} %{REQUIREFLAGS:deptype}\n]"); !strings.Contains(got, "/bin/sh pre,interp\n/bin/sh post,interp\n/bin/sh preun,interp\n/bin/sh postun,interp\n") {
		t.Errorf("scriptlet interpreter requirements:\n%s", got)
	}

	// Scriptlets: users first, then the unit's reloads, then ours.
	scripts := q("--scripts")
	for _, want := range []string{
		"preinstall scriptlet (using /bin/sh):\nif sysusers=$(command -v systemd-sysusers); then\n    \"$sysusers\" --replace=/usr/lib/sysusers.d/ferry-demo.conf - <<'FERRY_SYSUSERS_EOF'\ng ferry-demo -\nu ferry-demo - \"Ferry demo\" /var/lib/ferry-demo\nFERRY_SYSUSERS_EOF\n",
		"postinstall scriptlet (using /bin/sh):\nif [ -d /run/systemd/system ]; then\n    systemctl daemon-reload || :\nfi\necho \"post $1\" >> /var/lib/ferry-demo/scripts.log\n",
		"preuninstall scriptlet (using /bin/sh):\nif [ \"$1\" -eq 0 ] && [ -d /run/systemd/system ]; then\n    systemctl --no-reload disable --now ferry-demo.service || :\nfi\n",
		"postuninstall scriptlet (using /bin/sh):\nif [ -d /run/systemd/system ]; then\n    systemctl daemon-reload || :\nfi\n",
	} {
		if !strings.Contains(scripts, want) {
			t.Errorf("rpm --scripts lacks\n%s\nin:\n%s", want, scripts)
		}
	}

	// The signature header's archive size is the real cpio archive's.
	archive := mustRun(t, "sh", "-c", `rpm2cpio "$1"`, "sh", p)
	if got := q("--qf", "%{ARCHIVESIZE}"); got != strconv.Itoa(len(archive)) {
		t.Errorf("ARCHIVESIZE %s, the payload is %d bytes", got, len(archive))
	}
}

func sortedLines(s string) []string {
	l := lines(s)
	slices.Sort(l)
	return l
}

// TestRPMKeysChecksSignatures has rpmkeys check the signatures against an
// rpmdb holding the public key, one without it, and a tampered package.
func TestRPMKeysChecksSignatures(t *testing.T) {
	key := newKey(t, "Ferry Test")
	dir := t.TempDir()
	p := writeRPM(t, dir, libPackage(), Options{Signer: key.signer})

	root := t.TempDir()
	mustRun(t, "rpmkeys", "--root", root, "--import", key.pubPath)
	out := mustRun(t, "rpmkeys", "--root", root, "--checksig", "-v", p)
	for _, want := range []string{"Header V4 EdDSA/SHA256 Signature, key ID", "Header SHA256 digest: OK", "Payload SHA256 digest: OK", "    V4 EdDSA/SHA256 Signature, key ID"} {
		if !strings.Contains(out, want) {
			t.Errorf("rpmkeys -Kv lacks %q:\n%s", want, out)
		}
	}
	if strings.Count(out, ": OK") != 4 {
		t.Errorf("rpmkeys -Kv: not four checks OK:\n%s", out)
	}
	if out := mustRun(t, "rpmkeys", "--root", root, "--checksig", p); !strings.HasSuffix(out, "digests signatures OK\n") {
		t.Errorf("rpmkeys -K: %s", out)
	}

	// An unknown key: rpmkeys fails with NOKEY.
	other := newKey(t, "Someone Else")
	otherRoot := t.TempDir()
	mustRun(t, "rpmkeys", "--root", otherRoot, "--import", other.pubPath)
	if out, err := run(t, "rpmkeys", "--root", otherRoot, "--checksig", "-v", p); err == nil || !strings.Contains(out, "Signature, key ID") || !strings.Contains(out, "NOKEY") {
		t.Errorf("rpmkeys with another key: err %v\n%s", err, out)
	}
	// Unsigned packages are refused where a signature is required.
	unsigned := writeRPM(t, t.TempDir(), libPackage(), Options{})
	if out := mustRun(t, "rpmkeys", "--root", root, "--checksig", unsigned); !strings.HasSuffix(out, "digests OK\n") {
		t.Errorf("unsigned rpmkeys -K: %s", out)
	}
	if out, err := run(t, "rpmkeys", "--root", root, "--checksig", "--define", "_pkgverify_level signature", unsigned); err == nil {
		t.Errorf("rpmkeys accepted an unsigned package at _pkgverify_level signature:\n%s", out)
	}

	// One flipped byte in the payload, or in the header, fails the check.
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	pkg, err := repo.ReadPackage(p, "")
	if err != nil {
		t.Fatal(err)
	}
	for name, off := range map[string]int{"payload": len(data) - 20, "header": int(pkg.HeaderStart) + 100} {
		bad := bytes.Clone(data)
		bad[off] ^= 0x01
		bp := filepath.Join(dir, name+"-tampered.rpm")
		if err := os.WriteFile(bp, bad, 0o644); err != nil {
			t.Fatal(err)
		}
		if out, err := run(t, "rpmkeys", "--root", root, "--checksig", bp); err == nil {
			t.Errorf("rpmkeys accepted a package with a flipped %s byte:\n%s", name, out)
		}
	}
}

// TestCompressions checks that rpm unpacks each payload compression and
// finds the files we put in.
func TestCompressions(t *testing.T) {
	for _, c := range []string{"zstd", "gzip", "xz"} {
		t.Run(c, func(t *testing.T) {
			p := writeRPM(t, t.TempDir(), demoPackage(t, "1", "a: 1\n"), Options{Compression: c})
			if got := mustRun(t, "rpm", "-qp", "--qf", "%{PAYLOADCOMPRESSOR}", p); got != c {
				t.Errorf("compressor %q", got)
			}
			cmd := exec.Command(testutil.Need(t, "rpm2cpio"), p)
			archive, err := cmd.Output()
			if err != nil {
				t.Fatalf("rpm2cpio: %v", err)
			}
			got := map[string]string{}
			r := cpio.NewReader(bytes.NewReader(archive))
			for {
				h, err := r.Next()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatalf("reading rpm2cpio's archive: %v", err)
				}
				body, err := io.ReadAll(r)
				if err != nil {
					t.Fatal(err)
				}
				if h.Linkname != "" {
					body = []byte(h.Linkname)
				}
				got[h.Name] = string(body)
			}
			for name, want := range map[string]string{
				"/usr/bin/ferry-demo":                        "#!/bin/sh\necho demo\n",
				"/usr/bin/fdemo":                             "ferry-demo",
				"/usr/lib/systemd/system/ferry-demo.service": demoUnit,
				"/etc/ferry-demo/demo.yaml":                  "a: 1\n",
			} {
				if got[name] != want {
					t.Errorf("%s: %q, want %q", name, got[name], want)
				}
			}
			if _, ok := got["/var/log/ferry-demo.log"]; ok {
				t.Error("the ghost file is in the payload")
			}
		})
	}
}

// TestReproducible writes the same package twice, the second time with
// another GOMAXPROCS (compressors may split work by it), and compares.
func TestReproducible(t *testing.T) {
	key := newKey(t, "Ferry Test")
	p := demoPackage(t, "1", "a: 1\n")
	for _, c := range []string{"zstd", "gzip", "xz"} {
		var a, b bytes.Buffer
		if err := Write(&a, p, Options{Signer: key.signer, Compression: c}); err != nil {
			t.Fatal(err)
		}
		prev := runtime.GOMAXPROCS(1)
		err := Write(&b, p, Options{Signer: key.signer, Compression: c})
		runtime.GOMAXPROCS(prev)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(a.Bytes(), b.Bytes()) {
			t.Errorf("%s: two writes of the same package differ", c)
		}
	}
	// Declaration order does not matter either.
	q := demoPackage(t, "1", "a: 1\n")
	slices.Reverse(q.Files)
	slices.Reverse(q.Requires)
	var a, b bytes.Buffer
	if err := Write(&a, p, Options{}); err != nil {
		t.Fatal(err)
	}
	if err := Write(&b, q, Options{}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Error("the order of files and requires changes the package")
	}
}

// TestReadPackage checks that repo.ReadPackage, which writes the
// repodata, reads our packages as we described them.
func TestReadPackage(t *testing.T) {
	p := writeRPM(t, t.TempDir(), demoPackage(t, "1", "a: 1\n"), Options{})
	pkg, err := repo.ReadPackage(p, "")
	if err != nil {
		t.Fatal(err)
	}
	if pkg.NEVRA() != "ferry-demo-2:1.0-1.x86_64" || pkg.License != "Apache-2.0" || pkg.BuildTime != epoch.Unix() || pkg.BuildHost != "localhost" {
		t.Errorf("got %s license %q built %d on %q", pkg.NEVRA(), pkg.License, pkg.BuildTime, pkg.BuildHost)
	}
	var files []string
	for _, f := range pkg.Files {
		files = append(files, f.Path+":"+f.Type)
	}
	want := []string{
		"/etc/ferry-demo:dir", "/etc/ferry-demo/defaults.yaml:", "/etc/ferry-demo/demo.yaml:",
		"/usr/bin/fdemo:", "/usr/bin/ferry-demo:", "/usr/lib/systemd/system/ferry-demo.service:",
		"/usr/lib/sysusers.d/ferry-demo.conf:", "/usr/libexec/ferry-demo/helper:", "/usr/share/doc/ferry-demo/README:",
		"/var/lib/ferry-demo:dir", "/var/log/ferry-demo.log:ghost",
	}
	if !slices.Equal(files, want) {
		t.Errorf("files:\n%q\nwant:\n%q", files, want)
	}
	deps := func(ds []repo.Dependency) []string {
		var out []string
		for _, d := range ds {
			s := d.Name + " " + d.Flags + " " + d.Epoch + ":" + d.Version + "-" + d.Release
			if d.Pre {
				s += " pre"
			}
			out = append(out, s)
		}
		return out
	}
	for _, c := range []struct {
		name      string
		got, want []string
	}{
		{"requires", deps(pkg.Requires), []string{"/bin/sh  :- pre", "/bin/sh  :-", "ferry-demo-api GE 0:2-", "ferry-demo-lib GE 0:1.0-"}},
		{"provides", deps(pkg.Provides), []string{"ferry-demo EQ 2:1.0-1", "ferry-demo(x86-64) EQ 2:1.0-1", "ferry-demo-daemon EQ 0:1.0-"}},
		{"conflicts", deps(pkg.Conflicts), []string{"other-demo  :-"}},
		{"obsoletes", deps(pkg.Obsoletes), []string{"ferry-demo-old LT 1:0.9-1"}},
		{"recommends", deps(pkg.Recommends), []string{"ferry-demo-extras  :-"}},
	} {
		if !slices.Equal(c.got, c.want) {
			t.Errorf("%s: %q, want %q", c.name, c.got, c.want)
		}
	}
}
