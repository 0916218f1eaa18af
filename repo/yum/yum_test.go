package yum

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferry-k8s/ferry/internal/fetch"
	"github.com/ferry-k8s/ferry/repo/rpmtest"
	"github.com/ferry-k8s/ferry/repo/yum/yumtest"
	"github.com/ferry-k8s/ferry/signing"
)

// upstreamSpecs are an upstream repository: app needs a three-level chain
// (app → libmid by a soname → base-tool >= 2 → /bin/sh, which the
// excluded bash provides), a file (/usr/bin/helper), a rich requirement,
// and packages the target OS has (glibc, bash, systemd).
func upstreamSpecs() []rpmtest.Spec {
	return []rpmtest.Spec{
		{Name: "app", Version: "1.0", Arch: "x86_64", Files: map[string][]byte{"/usr/bin/app": []byte("app")},
			Requires: []string{"libmid.so.1()(64bit)", "/usr/bin/helper", "libc.so.6()(64bit)", "systemd", "(gamma or delta)"}},
		{Name: "libmid", Version: "2.0", Arch: "x86_64", Provides: []string{"libmid.so.1()(64bit)"}, Requires: []string{"base-tool >= 2"},
			Files: map[string][]byte{"/usr/lib64/libmid.so.1": []byte("mid")}},
		{Name: "libmid", Version: "2.0", Arch: "i686", Provides: []string{"libmid.so.1"}},
		{Name: "base-tool", Version: "1.0"},
		{Name: "base-tool", Version: "2.1", Requires: []string{"/bin/sh"}},
		{Name: "base-tool", Version: "3.0", Requires: []string{"/bin/sh"}},
		{Name: "helper", Version: "1", Arch: "x86_64", Files: map[string][]byte{"/usr/bin/helper": []byte("h")}},
		{Name: "delta", Version: "1"},
		{Name: "glibc", Version: "2.34", Arch: "x86_64", Provides: []string{"libc.so.6()(64bit)"}},
		{Name: "bash", Version: "5.1", Arch: "x86_64", Provides: []string{"/bin/sh"}, Files: map[string][]byte{"/usr/bin/bash": []byte("sh")}},
		{Name: "socat", Version: "1.7.3", Release: "1.el9", Arch: "x86_64"},
		{Name: "socat", Version: "1.7.4", Release: "2.el9", Arch: "x86_64"},
		{Name: "socat", Version: "1.8.0", Release: "1.el9", Arch: "x86_64"},
		{Name: "broken", Version: "1", Requires: []string{"libmissing.so.1()(64bit)", "other >= 5", "half"}},
		{Name: "other", Version: "4"},
		{Name: "half", Version: "1", Requires: []string{"nothere"}},
	}
}

type upstream struct {
	key    *yumtest.Key
	repo   *yumtest.Repo
	server *yumtest.Server
	client *fetch.Client
	ring   *signing.Keyring
}

func newUpstream(t *testing.T, signRepomd bool) *upstream {
	t.Helper()
	u := &upstream{key: yumtest.NewKey(t, "Upstream <upstream@example.invalid>")}
	u.repo = yumtest.BuildRepo(t, t.TempDir(), upstreamSpecs(), u.key, signRepomd)
	u.server = yumtest.NewServer(t, u.repo.Dir)
	c, err := fetch.New(fetch.Options{CacheDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	ca, err := os.ReadFile(u.server.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	if u.client, err = c.WithCA(ca); err != nil {
		t.Fatal(err)
	}
	if u.ring, err = signing.LoadKeyringFile(u.key.PublicKey); err != nil {
		t.Fatal(err)
	}
	return u
}

func (u *upstream) load(t *testing.T) *Index {
	t.Helper()
	ix, err := Load(context.Background(), u.client, Repository{Name: "up", BaseURL: u.server.URL + "/", Keyring: u.ring})
	if err != nil {
		t.Fatal(err)
	}
	return ix
}

func names(ps []Pinned) string {
	var out []string
	for _, p := range ps {
		out = append(out, p.Package.NEVRA())
	}
	return strings.Join(out, " ")
}

func TestResolveFromUpstream(t *testing.T) {
	u := newUpstream(t, true)
	ix := u.load(t)
	if !ix.Signed || len(ix.Packages) != len(upstreamSpecs()) {
		t.Fatalf("index: signed %v, %d packages", ix.Signed, len(ix.Packages))
	}
	req := Request{Names: []string{"app"}, Exclude: []string{"glibc", "bash", "systemd*"}}
	got, err := Resolve([]*Index{ix}, req)
	if err != nil {
		t.Fatal(err)
	}
	want := "app-1.0-1.x86_64 base-tool-3.0-1.noarch delta-1-1.noarch helper-1-1.x86_64 libmid-2.0-1.x86_64"
	if names(got) != want {
		t.Fatalf("closure %s\nwant    %s", names(got), want)
	}
	by := map[string]Pinned{}
	for _, p := range got {
		by[p.Package.Name] = p
	}
	if a := by["app"]; len(a.Requested) != 1 || a.Requested[0] != "app" || a.RequiredBy != "" || a.Repo != "up" {
		t.Errorf("app: %+v", a)
	}
	if m := by["libmid"]; m.RequiredBy != "app-1.0-1.x86_64 (libmid.so.1()(64bit))" {
		t.Errorf("libmid required by %q", m.RequiredBy)
	}
	if b := by["base-tool"]; b.RequiredBy != "libmid-2.0-1.x86_64 (base-tool >= 2)" {
		t.Errorf("base-tool required by %q", b.RequiredBy)
	}
	if h := by["helper"]; h.RequiredBy != "app-1.0-1.x86_64 (/usr/bin/helper)" || h.URL != u.server.URL+"/Packages/h/helper-1-1.x86_64.rpm" {
		t.Errorf("helper: %+v", h)
	}
	// The pins are the repository's: sha256 and size of the served files.
	for _, p := range got {
		data, err := os.ReadFile(u.repo.Files[filepath.Base(p.URL)])
		if err != nil {
			t.Fatal(err)
		}
		if p.Package.Size != int64(len(data)) || p.Package.Checksum != sha256Hex(data) {
			t.Errorf("%s: size %d sha256 %s, file %d %s", p.Package.NEVRA(), p.Package.Size, p.Package.Checksum, len(data), sha256Hex(data))
		}
	}

	// Without the excludes the target OS's packages are carried too.
	got, err = Resolve([]*Index{ix}, Request{Names: []string{"app"}, Exclude: []string{"systemd"}})
	if err != nil {
		t.Fatal(err)
	}
	if n := names(got); !strings.Contains(n, "glibc-2.34-1.x86_64") || !strings.Contains(n, "bash-5.1-1.x86_64") {
		t.Errorf("closure without excludes: %s", n)
	}
	// systemd is not in the repository: only the exclude meets it.
	_, err = Resolve([]*Index{ix}, Request{Names: []string{"app"}, Exclude: []string{"glibc", "bash"}})
	var ue *UnmetError
	if !errors.As(err, &ue) || len(ue.Unmet) != 1 || ue.Unmet[0] != "app-1.0-1.x86_64 requires systemd: nothing provides it" {
		t.Errorf("without excluding systemd: %v", err)
	}
}

func TestResolveConstraints(t *testing.T) {
	ix := newUpstream(t, false).load(t)
	if ix.Signed {
		t.Error("unsigned repomd.xml reported as signed")
	}
	for item, want := range map[string]string{
		"socat":                "socat-1.8.0-1.el9.x86_64",
		"socat >= 1.7.4":       "socat-1.8.0-1.el9.x86_64",
		"socat = 1.7.4":        "socat-1.7.4-2.el9.x86_64",
		"socat = 1.7.4-2.el9":  "socat-1.7.4-2.el9.x86_64",
		"socat < 1.8":          "socat-1.7.4-2.el9.x86_64",
		"socat <= 1.7.3-1.el9": "socat-1.7.3-1.el9.x86_64",
		"socat > 1.7.3-1.el9":  "socat-1.8.0-1.el9.x86_64",
		"socat >= 1.8.0~rc1":   "socat-1.8.0-1.el9.x86_64",
		"base-tool >= 2":       "base-tool-3.0-1.noarch",
		"base-tool < 3":        "base-tool-2.1-1.noarch",
		"base-tool = 1.0":      "base-tool-1.0-1.noarch",
	} {
		got, err := Resolve([]*Index{ix}, Request{Names: []string{item}, Exclude: []string{"bash"}})
		if err != nil {
			t.Errorf("%s: %v", item, err)
			continue
		}
		if got[0].Package.NEVRA() != want || got[0].Requested[0] != item {
			t.Errorf("%s: %s, want %s", item, names(got), want)
		}
	}
	_, err := Resolve([]*Index{ix}, Request{Names: []string{"socat > 2", "nosuch"}})
	if err == nil || !strings.Contains(err.Error(), "socat > 2: no package matches in repositories up (arches x86_64, noarch); there are socat-1.7.3-1.el9.x86_64, socat-1.7.4-2.el9.x86_64, socat-1.8.0-1.el9.x86_64") ||
		!strings.Contains(err.Error(), "nosuch: no package matches") {
		t.Errorf("unmatched names: %v", err)
	}
	// The i686 build is not taken by default, and is when asked for.
	got, err := Resolve([]*Index{ix}, Request{Names: []string{"libmid"}, Arches: []string{"i686"}})
	if err != nil || names(got) != "libmid-2.0-1.i686" {
		t.Errorf("i686: %s, %v", names(got), err)
	}
}

func TestResolveListsEveryUnmetRequirement(t *testing.T) {
	ix := newUpstream(t, true).load(t)
	_, err := Resolve([]*Index{ix}, Request{Names: []string{"broken"}})
	var ue *UnmetError
	if !errors.As(err, &ue) {
		t.Fatalf("error %v, want *UnmetError", err)
	}
	want := []string{
		"broken-1-1.noarch requires libmissing.so.1()(64bit): nothing provides it",
		"broken-1-1.noarch requires other >= 5: nothing provides it",
		"half-1-1.noarch requires nothere: nothing provides it",
	}
	if strings.Join(ue.Unmet, "\n") != strings.Join(want, "\n") {
		t.Fatalf("unmet:\n%s\nwant:\n%s", strings.Join(ue.Unmet, "\n"), strings.Join(want, "\n"))
	}
	if !strings.Contains(err.Error(), "3 unmet requirement(s):\n  broken-1-1.noarch requires libmissing.so.1()(64bit): nothing provides it\n") {
		t.Errorf("message %q", err)
	}
}

func TestLoadRefusesAnotherKey(t *testing.T) {
	u := newUpstream(t, true)
	other := yumtest.NewKey(t, "Someone Else <else@example.invalid>")
	ring, err := signing.LoadKeyringFile(other.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	_, err = Load(context.Background(), u.client, Repository{Name: "up", BaseURL: u.server.URL, Keyring: ring})
	if err == nil || !errors.Is(err, signing.ErrUnknownKey) || !strings.Contains(err.Error(), "repository up: repodata/repomd.xml.asc does not verify") {
		t.Fatalf("another key: %v", err)
	}
	// A repomd.xml changed after signing.
	md := filepath.Join(u.repo.Dir, "repodata", "repomd.xml")
	data, err := os.ReadFile(md)
	if err != nil {
		t.Fatal(err)
	}
	u.server.Replace("/repodata/repomd.xml", append(data, ' '))
	if _, err := Load(context.Background(), u.client, Repository{Name: "up", BaseURL: u.server.URL, Keyring: u.ring}); !errors.Is(err, signing.ErrBadSignature) {
		t.Fatalf("changed repomd.xml: %v", err)
	}
	// Primary metadata that differs from what repomd.xml says.
	u.server.Replace("/repodata/repomd.xml", data)
	prim, _ := filepath.Glob(filepath.Join(u.repo.Dir, "repodata", "*-primary.xml.gz"))
	u.server.Replace("/repodata/"+filepath.Base(prim[0]), []byte("not the primary file"))
	if _, err := Load(context.Background(), u.client, Repository{Name: "up", BaseURL: u.server.URL, Keyring: u.ring}); !errors.Is(err, fetch.ErrMismatch) {
		t.Fatalf("changed primary: %v", err)
	}
}
