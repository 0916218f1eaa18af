package rpmbuild

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ferry-k8s/ferry/repo"
)

// minimal is the smallest valid package; the bad-input cases break it one
// field at a time.
func minimal() Package {
	return Package{
		Name: "kubelet", Version: "1.34.4", Release: "1", Arch: "x86_64",
		Summary: "Kubernetes node agent", License: "Apache-2.0", BuildTime: epoch,
		Files: []File{{Path: "/usr/bin/kubelet", Body: []byte("ELF"), Mode: 0o755}},
	}
}

func TestBadInput(t *testing.T) {
	dir := t.TempDir()
	notRegular := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	// A sparse file larger than a package may be: refused before reading.
	huge := filepath.Join(dir, "huge")
	if err := os.WriteFile(huge, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(huge, maxPayload+1); err != nil {
		t.Fatal(err)
	}
	file := func(f File) func(*Package) { return func(p *Package) { p.Files = append(p.Files, f) } }
	tests := []struct {
		name   string
		change func(*Package)
		opts   Options
		want   string // in the error message
	}{
		{"empty name", func(p *Package) { p.Name = "" }, Options{}, "name is empty"},
		{"name with space", func(p *Package) { p.Name = "kube let" }, Options{}, `name "kube let"`},
		{"name with leading dash", func(p *Package) { p.Name = "-kubelet" }, Options{}, `name "-kubelet"`},
		{"version with dash", func(p *Package) { p.Version = "1.34-4" }, Options{}, `version "1.34-4"`},
		{"version with colon", func(p *Package) { p.Version = "1:1.34" }, Options{}, `version "1:1.34"`},
		{"version with slash", func(p *Package) { p.Version = "1/2" }, Options{}, `version "1/2"`},
		{"empty version", func(p *Package) { p.Version = "" }, Options{}, "version is empty"},
		{"empty release", func(p *Package) { p.Release = "" }, Options{}, "release is empty"},
		{"bad release", func(p *Package) { p.Release = "1 el9" }, Options{}, `release "1 el9"`},
		{"unknown arch", func(p *Package) { p.Arch = "i386" }, Options{}, `arch "i386"`},
		{"epoch too large", func(p *Package) { p.Epoch = 1 << 31 }, Options{}, "epoch 2147483648"},
		{"no summary", func(p *Package) { p.Summary = "" }, Options{}, "summary is empty"},
		{"two-line summary", func(p *Package) { p.Summary = "a\nb" }, Options{}, "summary: control character"},
		{"no license", func(p *Package) { p.License = "" }, Options{}, "license is empty"},
		{"bad utf-8 description", func(p *Package) { p.Description = "\xff" }, Options{}, "description: not valid UTF-8"},
		{"no build time", func(p *Package) { p.BuildTime = time.Time{} }, Options{}, "build time is not set"},
		{"build time after 2038", func(p *Package) { p.BuildTime = time.Date(2040, 1, 1, 0, 0, 0, 0, time.UTC) }, Options{}, "build time 2040-01-01T00:00:00Z"},
		{"relative path", file(File{Path: "usr/bin/kubectl", Mode: 0o755}), Options{}, `file "usr/bin/kubectl": path is not absolute`},
		{"dot-dot path", file(File{Path: "/usr/bin/../../etc/shadow", Mode: 0o644}), Options{}, `file "/usr/bin/../../etc/shadow": path contains ".."`},
		{"unclean path", file(File{Path: "/usr//bin/kubectl", Mode: 0o755}), Options{}, `file "/usr//bin/kubectl": path is not clean (want "/usr/bin/kubectl")`},
		{"trailing slash", file(File{Path: "/etc/kubernetes/", Type: Dir, Mode: 0o755}), Options{}, `file "/etc/kubernetes/": path is not clean`},
		{"root directory", file(File{Path: "/", Type: Dir, Mode: 0o755}), Options{}, "the root directory cannot be packaged"},
		{"empty path", file(File{Mode: 0o644}), Options{}, `file "": path is empty`},
		{"newline in path", file(File{Path: "/etc/a\nb", Mode: 0o644}), Options{}, "control character"},
		{"duplicate path", file(File{Path: "/usr/bin/kubelet", Mode: 0o755}), Options{}, "file /usr/bin/kubelet is listed twice"},
		{"unit over a file", func(p *Package) {
			p.Files = append(p.Files, File{Path: "/usr/lib/systemd/system/kubelet.service", Mode: 0o644})
			p.Units = []Unit{{Name: "kubelet.service", Body: []byte("[Unit]\n")}}
		}, Options{}, "file /usr/lib/systemd/system/kubelet.service is listed twice"},
		{"file under a file", file(File{Path: "/usr/bin/kubelet/x", Mode: 0o644}), Options{}, "file /usr/bin/kubelet/x: its parent /usr/bin/kubelet is not a directory"},
		{"missing source", file(File{Path: "/usr/bin/kubectl", Source: filepath.Join(dir, "missing"), Mode: 0o755}), Options{}, "file /usr/bin/kubectl: reading source: stat " + filepath.Join(dir, "missing") + ": no such file"},
		{"source is a directory", file(File{Path: "/usr/bin/kubectl", Source: notRegular, Mode: 0o755}), Options{}, "is not a regular file (d"},
		{"source is a fifo", file(File{Path: "/usr/bin/kubectl", Source: fifo, Mode: 0o755}), Options{}, "is not a regular file (p"},
		{"source too large", file(File{Path: "/usr/bin/kubectl", Source: huge, Mode: 0o755}), Options{}, "too large (a package's files may total 2000 MiB)"},
		{"source and body", file(File{Path: "/usr/bin/kubectl", Source: huge, Body: []byte("x"), Mode: 0o755}), Options{}, "both Source and Body are set"},
		{"no permissions", file(File{Path: "/etc/kubelet.conf", Body: []byte("x")}), Options{}, "file /etc/kubelet.conf: mode has no permission bits"},
		{"type bits in mode", file(File{Path: "/etc/kubernetes", Mode: fs.ModeDir | 0o755}), Options{}, "file /etc/kubernetes: mode drwxr-xr-x has type bits; set Type instead"},
		{"bad owner", file(File{Path: "/var/lib/etcd", Type: Dir, Mode: 0o700, Owner: "Etcd User"}), Options{}, `file /var/lib/etcd: owner "Etcd User" is not a valid user or group name`},
		{"bad group", file(File{Path: "/var/lib/etcd", Type: Dir, Mode: 0o700, Group: "etcd:etcd"}), Options{}, `group "etcd:etcd"`},
		{"dir with content", file(File{Path: "/var/lib/etcd", Type: Dir, Mode: 0o700, Body: []byte("x")}), Options{}, "a directory has no content"},
		{"symlink without target", file(File{Path: "/usr/bin/k", Type: Symlink}), Options{}, "file /usr/bin/k: symlink has no LinkTarget"},
		{"symlink with mode", file(File{Path: "/usr/bin/k", Type: Symlink, LinkTarget: "kubectl", Mode: 0o755}), Options{}, "symlink mode is always 0777"},
		{"link target on a file", file(File{Path: "/usr/bin/k", LinkTarget: "kubectl", Mode: 0o755}), Options{}, "LinkTarget is set on a file that is not a symlink"},
		{"ghost with content", file(File{Path: "/var/log/k.log", Ghost: true, Body: []byte("x"), Mode: 0o644}), Options{}, "a ghost file has no content"},
		{"config dir", file(File{Path: "/etc/kubernetes", Type: Dir, Mode: 0o755, NoReplace: true}), Options{}, "only regular files can be config files"},
		{"unknown type", file(File{Path: "/dev/k", Type: 7, Mode: 0o644}), Options{}, "unknown type 7"},
		{"bad relation flags", func(p *Package) { p.Requires = []Relation{{Name: "containerd", Flags: "=>", Version: "2.0"}} }, Options{}, `requires "containerd => 2.0": flags "=>"`},
		{"version without flags", func(p *Package) { p.Requires = []Relation{{Name: "containerd", Version: "2.0"}} }, Options{}, "a version without flags"},
		{"flags without version", func(p *Package) { p.Requires = []Relation{{Name: "containerd", Flags: ">="}} }, Options{}, `version "" is not [epoch:]version[-release]`},
		{"bad relation version", func(p *Package) { p.Conflicts = []Relation{{Name: "containerd", Flags: "<", Version: "2.0 beta"}} }, Options{}, `conflicts "containerd < 2.0 beta": version "2.0 beta"`},
		{"relation name with operator", func(p *Package) { p.Provides = []Relation{{Name: "a>=1"}} }, Options{}, `provides "a>=1": name "a>=1"`},
		{"rich dependency", func(p *Package) { p.Requires = []Relation{{Name: "(a or b)"}} }, Options{}, "rich dependencies"},
		{"rpmlib dependency", func(p *Package) { p.Requires = []Relation{{Name: "rpmlib(PayloadIsZstd)"}} }, Options{}, "added automatically"},
		{"duplicate relation", func(p *Package) { p.Requires = []Relation{{Name: "runc"}, {Name: "runc"}} }, Options{}, `requires "runc" is listed twice`},
		{"empty relation", func(p *Package) { p.Obsoletes = []Relation{{}} }, Options{}, `obsoletes "": name is empty`},
		{"unit name", func(p *Package) { p.Units = []Unit{{Name: "kubelet", Body: []byte("[Unit]\n")}} }, Options{}, `unit "kubelet": want a unit file name`},
		{"unit path", func(p *Package) { p.Units = []Unit{{Name: "../kubelet.service", Body: []byte("[Unit]\n")}} }, Options{}, `unit "../kubelet.service"`},
		{"empty unit", func(p *Package) { p.Units = []Unit{{Name: "kubelet.service"}} }, Options{}, "unit kubelet.service is empty"},
		{"sysusers name", func(p *Package) { p.Sysusers = []Sysusers{{Name: "etcd.conf", Conf: []byte("u etcd -\n")}} }, Options{}, `sysusers "etcd.conf": want a name such as etcd`},
		{"sysusers line", func(p *Package) {
			p.Sysusers = []Sysusers{{Name: "etcd", Conf: []byte("u etcd -\nFERRY_SYSUSERS_EOF\n")}}
		}, Options{}, `sysusers "etcd": line 2: type "FERRY_SYSUSERS_EOF"`},
		{"sysusers empty", func(p *Package) { p.Sysusers = []Sysusers{{Name: "etcd", Conf: []byte("# nothing\n")}} }, Options{}, "no user or group entries"},
		{"script with NUL", func(p *Package) { p.Scripts.Post = "echo\x00" }, Options{}, "post script: control character"},
		{"compression", func(p *Package) {}, Options{Compression: "bzip2"}, `compression "bzip2": want zstd, gzip or xz`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := minimal()
			tt.change(&p)
			var b bytes.Buffer
			err := Write(&b, p, tt.opts)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want an error containing %q", err, tt.want)
			}
			if b.Len() != 0 {
				t.Errorf("%d bytes written", b.Len())
			}
			if strings.Contains(tt.name, "source") && tt.name != "source and body" {
				if errors.Is(err, ErrInvalid) {
					t.Errorf("an I/O error is reported as ErrInvalid: %v", err)
				}
			} else if !errors.Is(err, ErrInvalid) {
				t.Errorf("not ErrInvalid: %v", err)
			}
			out := t.TempDir()
			if err := WriteFile(filepath.Join(out, "x.rpm"), p, tt.opts); err == nil {
				t.Fatal("WriteFile succeeded")
			}
			if ents, _ := os.ReadDir(out); len(ents) != 0 {
				t.Errorf("WriteFile left %v", ents)
			}
		})
	}
	if err := Write(new(bytes.Buffer), withSource(minimal(), filepath.Join(dir, "missing")), Options{}); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing source: %v does not wrap fs.ErrNotExist", err)
	}
}

func withSource(p Package, src string) Package {
	p.Files = []File{{Path: "/usr/bin/kubelet", Source: src, Mode: 0o755}}
	return p
}

// TestMinimal checks the defaults: description from the summary, no epoch,
// no scriptlets and so no /bin/sh requirement, and WriteFile replacing a
// file in place.
func TestMinimal(t *testing.T) {
	p := minimal()
	path := filepath.Join(t.TempDir(), p.FileName())
	if filepath.Base(path) != "kubelet-1.34.4-1.x86_64.rpm" {
		t.Errorf("file name %s", filepath.Base(path))
	}
	if err := os.WriteFile(path, []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := WriteFile(path, p, Options{Compression: "gzip"}); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o644 {
		t.Fatalf("%v %v", fi, err)
	}
	pkg, err := repo.ReadPackage(path, "")
	if err != nil {
		t.Fatal(err)
	}
	if pkg.Description != p.Summary || pkg.Epoch != 0 || len(pkg.Requires) != 0 || len(pkg.Files) != 1 {
		t.Errorf("description %q epoch %d requires %v files %v", pkg.Description, pkg.Epoch, pkg.Requires, pkg.Files)
	}
	out := mustRun(t, "rpm", "-qp", "--qf", "%{EPOCH} [%{REQUIRENAME}\n]", path)
	if out != "(none) rpmlib(CompressedFileNames)\nrpmlib(FileDigests)\n" {
		t.Errorf("rpm: %q", out)
	}

	// A package without files (a meta package) is valid too.
	meta := Package{Name: "ferry-node", Version: "1", Release: "1", Arch: "noarch", Summary: "Node", License: "Apache-2.0", BuildTime: epoch,
		Requires: []Relation{{Name: "kubelet", Flags: "=", Version: "1.34.4-1"}}}
	mp := writeRPM(t, t.TempDir(), meta, Options{})
	if out := mustRun(t, "rpm", "-qp", "--requires", mp); out != "kubelet = 1.34.4-1\nrpmlib(PayloadIsZstd) <= 5.4.18-1\n" {
		t.Errorf("meta package requires: %q", out)
	}
	if out := mustRun(t, "rpmkeys", "--root", t.TempDir(), "--checksig", mp); !strings.HasSuffix(out, "digests OK\n") {
		t.Errorf("meta package rpmkeys -K: %s", out)
	}
}
