package repo

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"math/rand"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/ferry-k8s/ferry/repo/rpmtest"
)

// primaryView is what primary.xml keeps of a package read from an rpm:
// everything but changelogs and non-primary files, with FileTime as written.
func primaryView(p *Package, opts RepodataOptions) Package {
	v := *p
	v.Changelogs = nil
	v.FileTime = fileTime(p, opts)
	v.Files = nil
	for _, f := range p.Files {
		if isPrimaryFile(f.Path) {
			v.Files = append(v.Files, f)
		}
	}
	return v
}

func TestRoundTrip(t *testing.T) {
	dir := t.TempDir()
	pkgs := readAll(t, buildFixtures(t, dir, nil))
	opts := RepodataOptions{Revision: testRevision}
	pkgs[1].FileTime = 1234 // kept when set
	if _, err := WriteRepodata(dir, pkgs, opts); err != nil {
		t.Fatal(err)
	}
	back, err := ReadRepodata(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(back) != len(pkgs) {
		t.Fatalf("read %d packages, wrote %d", len(back), len(pkgs))
	}
	byLoc := map[string]*Package{}
	for _, p := range back {
		byLoc[p.Location] = p
	}
	for _, p := range pkgs {
		got, ok := byLoc[p.Location]
		if !ok {
			t.Errorf("%s missing from repodata", p.Location)
			continue
		}
		want := primaryView(p, opts)
		if p.Location == pkgs[1].Location && got.FileTime != 1234 {
			t.Errorf("%s: FileTime %d, want 1234", p.Location, got.FileTime)
		}
		// Latin-1 text is written as UTF-8, which is what reads back.
		if p.Name == "latin" {
			want.Summary, want.Description = "café", "déjà"
		}
		if !reflect.DeepEqual(*got, want) {
			t.Errorf("%s round trip:\n got %+v\nwant %+v", p.Location, *got, want)
		}
	}
	// Sorted by name.
	for i := 1; i < len(back); i++ {
		if back[i-1].Name > back[i].Name {
			t.Errorf("packages not sorted: %s before %s", back[i-1].Name, back[i].Name)
		}
	}
}

func TestReadPackageFields(t *testing.T) {
	dir := t.TempDir()
	paths := buildFixtures(t, dir, nil)
	alphaPath := paths[0]
	alpha, err := ReadPackage(alphaPath, "Packages/a/alpha.rpm")
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(alphaPath)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	checks := []struct {
		what      string
		got, want any
	}{
		{"name", alpha.Name, "alpha"},
		{"epoch", alpha.Epoch, 2},
		{"version", alpha.Version, "1.2.3"},
		{"release", alpha.Release, "4.el9"},
		{"arch", alpha.Arch, "x86_64"},
		{"nevra", alpha.NEVRA(), "alpha-2:1.2.3-4.el9.x86_64"},
		{"location", alpha.Location, "Packages/a/alpha.rpm"},
		{"checksum", alpha.Checksum, hex.EncodeToString(sum[:])},
		{"size", alpha.Size, int64(len(data))},
		{"build time", alpha.BuildTime, rpmtest.BuildTime.Unix()},
		{"vendor", alpha.Vendor, "Ferry"},
		{"group", alpha.Group, "System/Tools"},
		{"url", alpha.URL, "https://example.invalid/alpha"},
		{"packager", alpha.Packager, "Ferry Team <team@example.invalid>"},
		{"source rpm", alpha.SourceRPM, "alpha-1.2.3-4.el9.src.rpm"},
		{"license", alpha.License, "Apache-2.0"},
		{"header start", alpha.HeaderStart, int64(272)},
		{"files", alpha.Files, []File{
			{"/etc/alpha.conf", FileRegular}, {"/usr/bin/alpha", FileRegular},
			{"/usr/share/doc/alpha", FileDir}, {"/usr/share/doc/alpha/README", FileRegular},
			{"/var/log/alpha.log", FileGhost},
		}},
		{"provides", alpha.Provides, []Dependency{
			{Name: "alpha-cap", Flags: "EQ", Epoch: "0", Version: "5"},
			{Name: "selfprov"},
			{Name: "alpha", Flags: "EQ", Epoch: "2", Version: "1.2.3", Release: "4.el9"},
		}},
		// rpmlib(), /usr/bin/alpha (own primary file) and selfprov (own
		// provide) are dropped; /bin/sh is not a file of this package.
		{"requires", alpha.Requires, []Dependency{
			{Name: "beta", Flags: "GE", Epoch: "0", Version: "1.0"},
			{Name: "/bin/sh"},
			{Name: "(gamma or delta)"},
			{Name: "alpha-libs", Flags: "EQ", Epoch: "2", Version: "1.2.3", Release: "4.el9"},
			{Name: "shadow-utils", Pre: true},
		}},
		{"conflicts", alpha.Conflicts, []Dependency{{Name: "oldalpha", Flags: "LT", Epoch: "0", Version: "1"}}},
		{"obsoletes", alpha.Obsoletes, []Dependency{{Name: "alpha-legacy", Flags: "LE", Epoch: "0", Version: "0.9"}}},
		{"recommends", alpha.Recommends, []Dependency{{Name: "beta-extras"}}},
		{"suggests", alpha.Suggests, []Dependency{{Name: "alpha-doc", Flags: "GT", Epoch: "1", Version: "0"}}},
	}
	for _, c := range checks {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("%s: got %#v, want %#v", c.what, c.got, c.want)
		}
	}
	if alpha.HeaderEnd <= alpha.HeaderStart || alpha.HeaderEnd >= alpha.Size {
		t.Errorf("header range %d-%d in a %d-byte file", alpha.HeaderStart, alpha.HeaderEnd, alpha.Size)
	}

	gamma, err := ReadPackage(paths[2], "")
	if err != nil {
		t.Fatal(err)
	}
	// What createrepo_c 0.17.3 writes for these requires (see
	// TestMatchesCreaterepo): provided and own primary files dropped,
	// duplicates dropped only against the last kept entry, missingok moved
	// to recommends, bad epochs dropped, the highest libc.so.6 last.
	wantReq := []Dependency{
		{Name: "foo"},
		{Name: "/usr/share/gamma/x"},
		{Name: "prereq", Pre: true},
		{Name: "postreq", Pre: true},
		{Name: "preunreq"},
		{Name: "noflagver"},
		{Name: "emptyepoch", Flags: "GE", Epoch: "0", Version: "1.0", Release: "2"},
		{Name: "dupe", Flags: "GE", Epoch: "0", Version: "1"},
		{Name: "dupe", Flags: "GE", Epoch: "0", Version: "2"},
		{Name: "dupe", Flags: "GE", Epoch: "0", Version: "1"},
		{Name: "prover", Flags: "EQ", Epoch: "0", Version: "1.0", Pre: true},
		{Name: "libc.so.6(GLIBC_2.34)(64bit)"},
	}
	if !reflect.DeepEqual(gamma.Requires, wantReq) {
		t.Errorf("gamma requires:\n got %+v\nwant %+v", gamma.Requires, wantReq)
	}
	if want := []Dependency{{Name: "weakold"}}; !reflect.DeepEqual(gamma.Recommends, want) {
		t.Errorf("gamma recommends %+v, want %+v", gamma.Recommends, want)
	}
	if want := []Dependency{{Name: "(kernel and gamma-mod)"}}; !reflect.DeepEqual(gamma.Supplements, want) {
		t.Errorf("gamma supplements %+v, want %+v", gamma.Supplements, want)
	}
	if want := []Dependency{{Name: "delta", Flags: "GE", Epoch: "0", Version: "2"}}; !reflect.DeepEqual(gamma.Enhances, want) {
		t.Errorf("gamma enhances %+v, want %+v", gamma.Enhances, want)
	}
	src, err := ReadPackage(paths[5], "")
	if err != nil {
		t.Fatal(err)
	}
	if src.Arch != "src" {
		t.Errorf("source package arch %q, want src", src.Arch)
	}
	if len(gamma.Changelogs) != 12 || gamma.Changelogs[0].Date != 1700000000 || !strings.HasPrefix(gamma.Changelogs[0].Author, "Dev 0") {
		t.Errorf("gamma changelogs: %+v", gamma.Changelogs)
	}

	// The digest variant trusts the given digest and reads the same header.
	fake := strings.Repeat("ab", 32)
	alpha2, err := ReadPackageWithDigest(alphaPath, "Packages/a/alpha.rpm", fake)
	if err != nil {
		t.Fatal(err)
	}
	alpha2.Checksum = alpha.Checksum
	if !reflect.DeepEqual(alpha, alpha2) {
		t.Errorf("ReadPackageWithDigest differs:\n%+v\n%+v", alpha2, alpha)
	}
	if _, err := ReadPackageWithDigest(alphaPath, "", "xyz"); err == nil {
		t.Error("ReadPackageWithDigest accepted a bad digest")
	}
	// ReadPackageFrom reads the same from memory.
	alpha3, err := ReadPackageFrom(bytes.NewReader(data), int64(len(data)), "Packages/a/alpha.rpm")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(alpha, alpha3) {
		t.Errorf("ReadPackageFrom differs:\n%+v\n%+v", alpha3, alpha)
	}
	// Default location is the base name.
	if p, err := ReadPackage(alphaPath, ""); err != nil || p.Location != filepath.Base(alphaPath) {
		t.Errorf("default location: %v %v", p, err)
	}
}

func TestChangelogsForOther(t *testing.T) {
	in := []Changelog{
		{Author: "c  ", Date: 300, Text: "3"},
		{Author: "b", Date: 200, Text: "2b"},
		{Author: "b", Date: 200, Text: "2a"},
		{Author: "a", Date: 100, Text: "1"},
	}
	got := changelogsForOther(in, 3)
	want := []Changelog{{"b", 200, "2a"}, {"b", 201, "2b"}, {"c", 300, "3"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
	if got := changelogsForOther(in, -1); len(got) != 4 {
		t.Errorf("no limit: %d entries", len(got))
	}
}

// repodataBytes returns the content of every file in dir/repodata by name.
func repodataBytes(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(dir, "repodata"))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(dir, "repodata", e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out[e.Name()] = data
	}
	return out
}

func TestDeterminism(t *testing.T) {
	src := t.TempDir()
	pkgs := readAll(t, buildFixtures(t, src, nil))
	opts := RepodataOptions{Revision: testRevision}
	a, b := t.TempDir(), t.TempDir()
	pa, err := WriteRepodata(a, pkgs, opts)
	if err != nil {
		t.Fatal(err)
	}
	// Another order of the same packages, copied, and a second run in
	// the same directory, must give the same bytes.
	shuffled := make([]*Package, len(pkgs))
	for i, j := range rand.New(rand.NewSource(1)).Perm(len(pkgs)) {
		c := *pkgs[j]
		shuffled[i] = &c
	}
	if _, err := WriteRepodata(b, shuffled, opts); err != nil {
		t.Fatal(err)
	}
	ba, bb := repodataBytes(t, a), repodataBytes(t, b)
	if !reflect.DeepEqual(ba, bb) {
		t.Errorf("two runs differ: %d vs %d files", len(ba), len(bb))
	}
	if len(ba) != 4 || len(pa) != 4 {
		t.Errorf("want 4 files, have %d (returned %v)", len(ba), pa)
	}
	for _, p := range pa {
		if _, ok := ba[filepath.Base(p)]; !ok {
			t.Errorf("returned path %s not written", p)
		}
	}
	// A re-run replaces the directory: same content, nothing stale left.
	if err := os.WriteFile(filepath.Join(b, "repodata", "stale.xml"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := WriteRepodata(b, pkgs, opts); err != nil {
		t.Fatal(err)
	}
	if bb2 := repodataBytes(t, b); !reflect.DeepEqual(ba, bb2) {
		t.Errorf("re-run differs or left stale files: %d files", len(bb2))
	}
	entries, _ := os.ReadDir(b)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".repodata") {
			t.Errorf("temporary %s left behind", e.Name())
		}
	}
	// File times are the revision.
	for _, p := range append(pa, filepath.Join(a, "repodata")) {
		if st, err := os.Stat(p); err != nil {
			t.Error(err)
		} else if st.ModTime().Unix() != testRevision {
			t.Errorf("%s: mtime %v, want the revision", p, st.ModTime())
		}
	}
	// The gzip header carries no mtime and no name.
	for name, data := range ba {
		if strings.HasSuffix(name, ".gz") && (data[4]|data[5]|data[6]|data[7] != 0 || data[3]&0x08 != 0) {
			t.Errorf("%s: gzip header has an mtime or a name: % x", name, data[:10])
		}
	}
	// A different revision changes repomd.xml.
	c := t.TempDir()
	if _, err := WriteRepodata(c, pkgs, RepodataOptions{Revision: testRevision + 1}); err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(repodataBytes(t, c)["repomd.xml"], ba["repomd.xml"]) {
		t.Error("revision did not change repomd.xml")
	}
}

func TestWriteRepodataRejects(t *testing.T) {
	src := t.TempDir()
	good := readAll(t, buildFixtures(t, src, nil))
	opts := RepodataOptions{Revision: testRevision}
	ctrlPath, err := rpmtest.Build(src, rpmtest.Spec{Name: "ctrl", Version: "1", Summary: "bell\x07here"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctrl, err := ReadPackage(ctrlPath, "")
	if err != nil {
		t.Fatal(err)
	}
	dup := *good[0]
	badSum := *good[0]
	badSum.Location, badSum.Checksum = "other.rpm", "nope"
	dotSlash := *good[0]
	dotSlash.Location = "./" + dotSlash.Location
	cases := map[string][]*Package{
		"unclean location":  {&dotSlash},
		"control character": {good[0], ctrl},
		"same location":     {good[0], &dup},
		"bad checksum":      {&badSum},
		"nil package":       {nil},
	}
	for name, pkgs := range cases {
		dir := t.TempDir()
		if _, err := WriteRepodata(dir, pkgs, opts); err == nil {
			t.Errorf("%s: no error", name)
		} else if !strings.Contains(err.Error(), dir) {
			t.Errorf("%s: error %q does not name the directory", name, err)
		}
		if _, err := os.Stat(filepath.Join(dir, "repodata")); err == nil {
			t.Errorf("%s: repodata written despite the error", name)
		}
	}
	// An empty repository is valid.
	dir := t.TempDir()
	if _, err := WriteRepodata(dir, nil, opts); err != nil {
		t.Fatal(err)
	}
	if pkgs, err := ReadRepodata(dir); err != nil || len(pkgs) != 0 {
		t.Errorf("empty repo: %v %v", pkgs, err)
	}
}

// TestReadPackageHeader: the header alone gives the same package as the
// whole file, but for the checksum; FileName is rpmbuild's name.
func TestReadPackageHeader(t *testing.T) {
	dir := t.TempDir()
	p, err := rpmtest.Build(dir, rpmtest.Spec{Name: "hdr", Version: "1.2", Release: "3.el9", Arch: "x86_64", Epoch: 2}, nil)
	if err != nil {
		t.Fatal(err)
	}
	full, err := ReadPackage(p, "")
	if err != nil {
		t.Fatal(err)
	}
	hdr, err := ReadPackageHeader(p)
	if err != nil {
		t.Fatal(err)
	}
	if hdr.Checksum != "" {
		t.Errorf("header-only checksum %q, want none", hdr.Checksum)
	}
	full.Checksum = ""
	if !reflect.DeepEqual(hdr, full) {
		t.Errorf("header-only %+v\nwhole file %+v", hdr, full)
	}
	if got, want := hdr.FileName(), "hdr-1.2-3.el9.x86_64.rpm"; got != want || got != filepath.Base(p) {
		t.Errorf("FileName %q, want %q (rpmtest wrote %s)", got, want, filepath.Base(p))
	}
	if hdr.NEVRA() != "hdr-2:1.2-3.el9.x86_64" {
		t.Errorf("NEVRA %q", hdr.NEVRA())
	}
	junk := filepath.Join(dir, "junk.rpm")
	if err := os.WriteFile(junk, []byte("not an rpm"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadPackageHeader(junk); err == nil || !strings.Contains(err.Error(), junk) {
		t.Errorf("junk: %v, want an error naming it", err)
	}
	if _, err := ReadPackageHeader(dir); err == nil {
		t.Error("a directory was read as an rpm")
	}
}
