package repo

import (
	"bytes"
	"encoding/binary"
	"os"
	"reflect"
	"testing"
	"testing/fstest"
	"unicode/utf8"

	"github.com/ferry-k8s/ferry/repo/rpmtest"
)

// FuzzReadRepodata feeds arbitrary primary.xml content to the parser,
// directly and through ReadRepodataFS (plain XML, with matching checksums).
// Whatever parses must survive a write and re-parse unchanged.
func FuzzReadRepodata(f *testing.F) {
	dir := f.TempDir()
	pkgs := readAll(f, buildFixtures(f, dir, nil))
	// One package per seed: small inputs keep the fuzzer's minimization of
	// new inputs quick.
	for i := range pkgs {
		var one bytes.Buffer
		if err := encodePrimary(&one, pkgs[i:i+1], RepodataOptions{Revision: testRevision}); err != nil {
			f.Fatal(err)
		}
		f.Add(one.Bytes())
	}
	f.Add([]byte(`<metadata packages="0"></metadata>`))
	f.Add([]byte(`<metadata><package><name>a</name><checksum type="sha256">` + sha256Hex(nil) + `</checksum><location href="a.rpm"/><format><rpm:requires xmlns:rpm="x"><rpm:entry name="b" flags="GE" epoch="0" ver="1" pre="1"/></rpm:requires><file type="dir">/etc/a</file></format></package></metadata>`))

	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := parsePrimary(bytes.NewReader(data), 1000)
		fsys := fstest.MapFS{
			"repodata/repomd.xml":  {Data: []byte(repomdFor("repodata/primary.xml", sha256Hex(data), sha256Hex(data), itoa(int64(len(data))), itoa(int64(len(data)))))},
			"repodata/primary.xml": {Data: data},
		}
		viaFS, fsErr := ReadRepodataFSWithOptions(fsys, ".", ReadOptions{MaxPackages: 1000})
		if (err == nil) != (fsErr == nil) || !reflect.DeepEqual(got, viaFS) {
			t.Fatalf("parsePrimary and ReadRepodataFS disagree: %v / %v", err, fsErr)
		}
		if err != nil {
			return
		}
		var out bytes.Buffer
		if err := encodePrimary(&out, got, RepodataOptions{}); err != nil {
			t.Fatalf("parsed packages do not encode: %v", err)
		}
		again, err := parsePrimary(bytes.NewReader(out.Bytes()), 1000)
		if err != nil {
			t.Fatalf("encoded packages do not parse: %v\n%s", err, out.Bytes())
		}
		if len(got) == 0 {
			got = nil
		}
		for _, p := range got {
			p.Files = primaryView(p, RepodataOptions{}).Files
			for _, l := range [][]Dependency{p.Provides, p.Requires, p.Conflicts, p.Obsoletes, p.Suggests, p.Enhances, p.Recommends, p.Supplements} {
				for i := range l {
					if l[i].Flags == "" {
						l[i].Epoch, l[i].Version, l[i].Release = "", "", ""
					}
				}
			}
		}
		if !reflect.DeepEqual(got, again) {
			t.Fatalf("round trip changed packages:\n%+v\n%+v", got, again)
		}
	})
}

// FuzzReadPackage feeds arbitrary bytes to ReadPackageFrom. Whatever reads
// must be consistent and survive a trip through primary.xml.
func FuzzReadPackage(f *testing.F) {
	dir := f.TempDir()
	for _, p := range buildFixtures(f, dir, nil) {
		data, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	small, err := rpmtest.Bytes(rpmtest.Spec{Name: "s", Version: "1"}, nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(small)
	f.Add([]byte{0xed, 0xab, 0xee, 0xdb})

	f.Fuzz(func(t *testing.T, data []byte) {
		checkReadPackage(t, data)
		// Most changes to the main header fail its sha256 digest; fix the
		// digest and size the signature header holds to reach the rest.
		if fixed := fixSigDigests(data); fixed != nil {
			checkReadPackage(t, fixed)
		}
	})
}

// fixSigDigests returns a copy of data whose signature header sha256 and
// size tags match the rest of the file, or nil if data has no usable
// signature header.
func fixSigDigests(data []byte) []byte {
	raw, err := readRawHeaders(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		return nil
	}
	out := append([]byte{}, data...)
	n := int(binary.BigEndian.Uint32(out[leadSize+8:]))
	index := out[leadSize+headerIntroSize:]
	dataStart := leadSize + headerIntroSize + 16*n
	for i := 0; i < n; i++ {
		e := index[16*i:]
		tag, typ := binary.BigEndian.Uint32(e), binary.BigEndian.Uint32(e[4:])
		off := dataStart + int(binary.BigEndian.Uint32(e[8:]))
		switch {
		case tag == 273 && typ == typeString && off+64 <= int(raw.start):
			copy(out[off:], sha256Hex(out[raw.start:raw.end]))
		case tag == 1000 && typ == typeInt32 && off+4 <= int(raw.start):
			binary.BigEndian.PutUint32(out[off:], uint32(len(out)-int(raw.start)))
		}
	}
	return out
}

func checkReadPackage(t *testing.T, data []byte) {
	{
		pkg, err := ReadPackageFrom(bytes.NewReader(data), int64(len(data)), "fuzz.rpm")
		if err != nil {
			return
		}
		if pkg.Checksum != sha256Hex(data) || pkg.Size != int64(len(data)) ||
			pkg.HeaderStart <= leadSize || pkg.HeaderEnd <= pkg.HeaderStart || pkg.HeaderEnd > pkg.Size {
			t.Fatalf("inconsistent package: %+v", pkg)
		}
		var out bytes.Buffer
		if err := encodePrimary(&out, []*Package{pkg}, RepodataOptions{}); err != nil {
			return // text XML cannot carry, refused as createrepo_c does
		}
		back, err := parsePrimary(bytes.NewReader(out.Bytes()), 10)
		if err != nil {
			t.Fatalf("our own primary.xml does not parse: %v\n%s", err, out.Bytes())
		}
		if !allUTF8(pkg) {
			return // Latin-1 text comes back as UTF-8
		}
		want := primaryView(pkg, RepodataOptions{})
		if len(back) != 1 || !reflect.DeepEqual(*back[0], want) {
			t.Fatalf("round trip changed the package:\n%+v\n%+v", back, want)
		}
	}
}

// allUTF8 reports whether every string primary.xml carries for p is valid
// UTF-8.
func allUTF8(p *Package) bool {
	s := []string{p.Name, p.Arch, p.Version, p.Release, p.Summary, p.Description, p.URL, p.License,
		p.Vendor, p.Group, p.BuildHost, p.SourceRPM, p.Packager, p.Location}
	for _, l := range [][]Dependency{p.Provides, p.Requires, p.Conflicts, p.Obsoletes, p.Suggests, p.Enhances, p.Recommends, p.Supplements} {
		for _, d := range l {
			s = append(s, d.Name, d.Flags, d.Epoch, d.Version, d.Release)
		}
	}
	for _, f := range p.Files {
		s = append(s, f.Path)
	}
	for _, x := range s {
		if !utf8.ValidString(x) {
			return false
		}
	}
	return true
}
