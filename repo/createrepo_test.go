package repo

import (
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ferry-k8s/ferry/internal/testutil"
)

// TestMatchesCreaterepo builds the fixture packages, writes repodata for
// them with WriteRepodata in one directory and with createrepo_c in
// another, and compares primary.xml, filelists.xml and other.xml element by
// element (names, attributes, text, order), package by package.
//
// Differences we accept, and how the test removes them:
//   - <time file=>: createrepo_c writes the rpm's mtime; we write FileTime
//     or the revision. The test sets the mtimes to the revision, so they
//     match.
//   - The order of packages: createrepo_c writes them in its directory walk
//     order, we sort by name, epoch, version, release, arch and location.
//     The test pairs packages by checksum.
//   - The compressed files differ (gzip implementation and level), so the
//     names and <checksum> in repomd.xml differ; the uncompressed content
//     is compared, and repomd.xml is compared on everything else.
//   - createrepo_c skips a package whose text holds control characters and
//     goes on; WriteRepodata fails instead (tested elsewhere), so no
//     fixture has them.
func TestMatchesCreaterepo(t *testing.T) {
	testutil.Need(t, "createrepo_c")
	ours, theirs := t.TempDir(), t.TempDir()
	paths := buildFixtures(t, ours, nil)
	rev := time.Unix(testRevision, 0)
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		q := filepath.Join(theirs, filepath.Base(p))
		if err := os.WriteFile(q, data, 0o644); err != nil {
			t.Fatal(err)
		}
		for _, f := range []string{p, q} {
			if err := os.Chtimes(f, rev, rev); err != nil {
				t.Fatal(err)
			}
		}
	}
	pkgs := readAll(t, paths)
	if _, err := WriteRepodata(ours, pkgs, RepodataOptions{Revision: testRevision}); err != nil {
		t.Fatal(err)
	}
	out := mustRun(t, nil, "createrepo_c", "--no-database", "--workers=1",
		"--revision="+strconv.Itoa(testRevision), "--set-timestamp-to-revision", theirs)
	if strings.Contains(out, "Warning") && !strings.Contains(out, "Bad epoch") {
		t.Logf("createrepo_c: %s", out)
	}

	identical := true
	for _, kind := range []string{"primary", "filelists", "other"} {
		a := readGzipFile(t, repodataFile(t, ours, kind))
		b := readGzipFile(t, repodataFile(t, theirs, kind))
		if string(a) != string(b) {
			identical = false
		}
		ta, err := parseXMLTree(a)
		if err != nil {
			t.Fatalf("our %s: %v", kind, err)
		}
		tb, err := parseXMLTree(b)
		if err != nil {
			t.Fatalf("createrepo_c's %s: %v", kind, err)
		}
		sortByPkgID(ta)
		sortByPkgID(tb)
		if len(ta.children) != len(pkgs) {
			t.Errorf("%s: %d packages, want %d", kind, len(ta.children), len(pkgs))
		}
		var diffs []string
		diffXMLTree(ta, tb, "", &diffs, 20)
		for _, d := range diffs {
			t.Errorf("%s (ours vs createrepo_c): %s", kind, d)
		}
	}
	// With this createrepo_c (0.17.3, Debian 12) the uncompressed files are
	// byte-identical; the element comparison above says where they differ
	// if a createrepo_c update changes that.
	if !identical {
		t.Errorf("uncompressed metadata is not byte-identical to createrepo_c's")
	}

	// repomd.xml: same entries and fields apart from checksums of the
	// compressed files and the hrefs derived from them.
	ma, err := os.ReadFile(filepath.Join(ours, "repodata", "repomd.xml"))
	if err != nil {
		t.Fatal(err)
	}
	mb, err := os.ReadFile(filepath.Join(theirs, "repodata", "repomd.xml"))
	if err != nil {
		t.Fatal(err)
	}
	ra, err := parseXMLTree(ma)
	if err != nil {
		t.Fatal(err)
	}
	rb, err := parseXMLTree(mb)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []*xnode{ra, rb} {
		for _, data := range r.children {
			for _, f := range data.children {
				switch local(f.name) {
				case "checksum", "size":
					f.text = "(compressed)"
				case "location":
					f.attrs = []string{"(compressed)"}
				}
			}
		}
	}
	var diffs []string
	diffXMLTree(ra, rb, "", &diffs, 20)
	for _, d := range diffs {
		t.Errorf("repomd.xml (ours vs createrepo_c): %s", d)
	}
}

func local(name string) string { return name[strings.LastIndexByte(name, ' ')+1:] }

// sortByPkgID orders the <package> children of a metadata root by the
// package checksum (primary) or pkgid attribute (filelists, other).
func sortByPkgID(root *xnode) {
	key := func(n *xnode) string {
		for _, a := range n.attrs {
			if strings.HasPrefix(a, " pkgid=") {
				return a
			}
		}
		for _, c := range n.children {
			if local(c.name) == "checksum" {
				return c.text
			}
		}
		return ""
	}
	sort.SliceStable(root.children, func(i, j int) bool { return key(root.children[i]) < key(root.children[j]) })
}
