package yum

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/url"
	"strings"
	"testing"

	"github.com/ferry-k8s/ferry/repo"
)

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// pkg makes a repodata package: "name-version-release.arch" plus
// provides, requires (rpm syntax: "a >= 1") and files.
func pkg(nvra string, provides, requires, files []string) *repo.Package {
	nvr, arch, _ := strings.Cut(nvra, ".")
	if i := strings.LastIndex(nvra, "."); i > 0 {
		nvr, arch = nvra[:i], nvra[i+1:]
	}
	i := strings.LastIndex(nvr, "-")
	j := strings.LastIndex(nvr[:i], "-")
	p := &repo.Package{Name: nvr[:j], Version: nvr[j+1 : i], Release: nvr[i+1:], Arch: arch, Location: "Packages/" + nvra + ".rpm", Checksum: sha256Hex([]byte(nvra)), Size: 1}
	p.Provides = deps(provides)
	p.Requires = deps(requires)
	for _, f := range files {
		p.Files = append(p.Files, repo.File{Path: f})
	}
	return p
}

func deps(ss []string) []repo.Dependency {
	var out []repo.Dependency
	for _, s := range ss {
		if strings.HasPrefix(s, "(") {
			out = append(out, repo.Dependency{Name: s})
			continue
		}
		f := strings.Fields(s)
		d := repo.Dependency{Name: f[0]}
		if len(f) == 3 {
			d.Flags = map[string]string{"=": "EQ", "<": "LT", "<=": "LE", ">": "GT", ">=": "GE"}[f[1]]
			v := f[2]
			d.Epoch = "0"
			if e, rest, ok := strings.Cut(v, ":"); ok {
				d.Epoch, v = e, rest
			}
			d.Version, d.Release, _ = strings.Cut(v, "-")
		}
		out = append(out, d)
	}
	return out
}

func index(name string, pkgs ...*repo.Package) *Index {
	u, _ := url.Parse("https://mirror.example/" + name + "/")
	return &Index{Repo: Repository{Name: name}, Packages: pkgs, base: u}
}

func TestResolveRichAndPreferences(t *testing.T) {
	first := index("first",
		pkg("app-1-1.x86_64", nil, []string{"(a or b)", "(c if d)", "(e if app)", "mta", "(z with z-feature)", "(y without y-bad)"}, nil),
		pkg("b-1-1.noarch", nil, nil, nil),
		pkg("c-1-1.noarch", nil, nil, nil),
		pkg("e-1-1.noarch", nil, nil, nil),
		pkg("sendmail-1-1.x86_64", []string{"mta"}, nil, nil),
		pkg("postfix-3-1.x86_64", []string{"mta"}, nil, nil),
		pkg("z-1-1.noarch", nil, nil, nil),
		pkg("z-2-1.noarch", []string{"z-feature"}, nil, nil),
		pkg("z-3-1.noarch", nil, nil, nil),
		pkg("y-2-1.noarch", []string{"y-bad"}, nil, nil),
		pkg("y-1-1.noarch", nil, nil, nil),
	)
	second := index("second",
		pkg("a-1-1.noarch", nil, nil, nil),
		pkg("mta-9-1.x86_64", nil, nil, nil),
	)
	got, err := Resolve([]*Index{first, second}, Request{Names: []string{"app"}})
	if err != nil {
		t.Fatal(err)
	}
	// (a or b): a is only in the later repository but first in the or;
	// alternatives are tried in order, so a, from second. (c if d): d is
	// nowhere, so no c. (e if app): app is selected, so e. mta: the first
	// repository wins over a package named mta in the second, and postfix
	// (higher version) over sendmail. with/without pick the one package
	// that has both / not the other.
	want := "a-1-1.noarch app-1-1.x86_64 e-1-1.noarch postfix-3-1.x86_64 y-1-1.noarch z-2-1.noarch"
	if names(got) != want {
		t.Fatalf("closure %s\nwant    %s", names(got), want)
	}
	for _, p := range got {
		if p.Package.Name == "a" && (p.Repo != "second" || p.URL != "https://mirror.example/second/Packages/a-1-1.noarch.rpm") {
			t.Errorf("a: %+v", p)
		}
	}

	// An already selected provider is preferred, and a second version of a
	// selected name.arch is not added: the conflict is reported.
	ix := index("r",
		pkg("top-1-1.noarch", nil, []string{"lib >= 2", "cap"}, nil),
		pkg("lib-1-1.noarch", []string{"cap"}, nil, nil),
		pkg("lib-2-1.noarch", nil, nil, nil),
		pkg("alt-9-1.noarch", []string{"cap"}, nil, nil),
	)
	_, err = Resolve([]*Index{ix}, Request{Names: []string{"lib = 1", "top"}})
	var ue *UnmetError
	if !errors.As(err, &ue) || len(ue.Unmet) != 1 || ue.Unmet[0] != "top-1-1.noarch requires lib >= 2: lib-2-1.noarch provides it, but lib-1-1.noarch is selected" {
		t.Fatalf("conflict: %v", err)
	}
	got, err = Resolve([]*Index{ix}, Request{Names: []string{"lib = 2", "top"}})
	if err != nil {
		t.Fatal(err)
	}
	// cap: alt (version 9) would win among new providers, but nothing
	// selected provides it; lib-2 does not, so alt comes in.
	if names(got) != "alt-9-1.noarch lib-2-1.noarch top-1-1.noarch" {
		t.Errorf("closure %s", names(got))
	}
	// A name asked for twice (a provide and a name) is one package.
	got, err = Resolve([]*Index{ix}, Request{Names: []string{"lib", "lib-alias"}})
	if err == nil || !strings.Contains(err.Error(), "lib-alias: no package matches") {
		t.Errorf("unknown alias: %s %v", names(got), err)
	}
	// Malformed rich requirements are reported, not fatal.
	bad := index("r", pkg("odd-1-1.noarch", nil, []string{"(a or"}, nil))
	if _, err := Resolve([]*Index{bad}, Request{Names: []string{"odd"}}); err == nil || !strings.Contains(err.Error(), "odd-1-1.noarch requires (a or: malformed rich dependency") {
		t.Errorf("malformed: %v", err)
	}
}

func TestParseRich(t *testing.T) {
	for in, want := range map[string]string{
		"(a or b)":                                "(a or b)",
		"(a or b or c)":                           "(a or b or c)",
		"(a >= 1.0-2 and (b < 2 or c))":           "(a >= 1.0-2 and (b < 2 or c))",
		"(libc.so.6(GLIBC_2.34)(64bit) with x)":   "(libc.so.6(GLIBC_2.34)(64bit) with x)",
		"(kernel-modules if kernel else kmod-ng)": "(kernel-modules if kernel else kmod-ng)",
		"(a unless b)":                            "(a unless b)",
		"((a))":                                   "a",
		"(  a   >=   1:2   )":                     "a >= 1:2",
	} {
		n, err := parseRich(in)
		if err != nil || n.String() != want {
			t.Errorf("%q: %v, %v; want %q", in, n, err, want)
		}
	}
	for _, in := range []string{"a or b", "(a or b", "(a or b) x", "(a or b and c)", "(a xor b)", "(a else b)", "()", "(a if b else c else d)", "(a >= )", strings.Repeat("(", 40) + "a" + strings.Repeat(")", 40)} {
		if n, err := parseRich(in); err == nil {
			t.Errorf("%q parsed as %v", in, n)
		}
	}
}

func FuzzParseRich(f *testing.F) {
	for _, s := range []string{"(a or b)", "(a >= 1 and (b if c else d))", "(x(y) with z)", "((("} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := parseRich(s)
		if err != nil {
			return
		}
		// What parses prints back to something that parses the same.
		again, err := parseRich("(" + n.String() + ")")
		if err != nil || again.String() != n.String() {
			t.Fatalf("%q → %q → %v, %v", s, n.String(), again, err)
		}
	})
}
