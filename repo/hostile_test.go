package repo

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/ferry-k8s/ferry/repo/rpmtest"
)

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func gzipBytes(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// repomdFor returns a repomd.xml naming file (at href) with the given
// checksums and sizes; an empty string leaves a field out.
func repomdFor(href, sum, openSum, size, openSize string) string {
	var b strings.Builder
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?>` + "\n")
	b.WriteString(`<repomd xmlns="http://linux.duke.edu/metadata/repo"><revision>1</revision><data type="primary">`)
	if sum != "" {
		b.WriteString(`<checksum type="sha256">` + sum + `</checksum>`)
	}
	if openSum != "" {
		b.WriteString(`<open-checksum type="sha256">` + openSum + `</open-checksum>`)
	}
	b.WriteString(`<location href="` + href + `"/>`)
	if size != "" {
		b.WriteString(`<size>` + size + `</size>`)
	}
	if openSize != "" {
		b.WriteString(`<open-size>` + openSize + `</open-size>`)
	}
	b.WriteString("</data></repomd>\n")
	return b.String()
}

// repoFS is an in-memory repository whose repomd.xml correctly describes
// file (compressed content of open) at href.
func repoFS(href string, file, open []byte) fstest.MapFS {
	return fstest.MapFS{
		"repodata/repomd.xml": {Data: []byte(repomdFor(href, sha256Hex(file), sha256Hex(open), fmt.Sprint(len(file)), fmt.Sprint(len(open))))},
		href:                  {Data: file},
	}
}

// validPrimary returns the primary.xml WriteRepodata writes for the
// fixtures.
func validPrimary(t *testing.T) []byte {
	t.Helper()
	dir := t.TempDir()
	pkgs := readAll(t, buildFixtures(t, dir, nil))
	if _, err := WriteRepodata(dir, pkgs, RepodataOptions{Revision: testRevision}); err != nil {
		t.Fatal(err)
	}
	return readGzipFile(t, repodataFile(t, dir, "primary"))
}

func TestHostileRepodata(t *testing.T) {
	prim := validPrimary(t)
	gz := gzipBytes(t, prim)
	const href = "repodata/x-primary.xml.gz"
	ok := repoFS(href, gz, prim)
	if pkgs, err := ReadRepodataFS(ok, "."); err != nil || len(pkgs) != len(fixtureSpecs()) {
		t.Fatalf("valid repository: %d packages, %v", len(pkgs), err)
	}
	// Under a sub-directory, and plain (uncompressed) XML.
	sub := fstest.MapFS{}
	for k, v := range repoFS("repodata/primary.xml", prim, prim) {
		sub["iso/"+k] = v
	}
	if pkgs, err := ReadRepodataFS(sub, "iso"); err != nil || len(pkgs) != len(fixtureSpecs()) {
		t.Fatalf("plain primary.xml under iso/: %d packages, %v", len(pkgs), err)
	}

	bomb := gzipBytes(t, append(append([]byte(`<metadata packages="0">`), bytes.Repeat([]byte(" "), 50<<20)...), "</metadata>"...))
	withPrimary := func(p []byte) fstest.MapFS { z := gzipBytes(t, p); return repoFS(href, z, p) }
	replaced := func(old, new string) fstest.MapFS {
		if !bytes.Contains(prim, []byte(old)) {
			t.Fatalf("%q not in primary.xml", old)
		}
		return withPrimary(bytes.Replace(prim, []byte(old), []byte(new), 1))
	}
	withRepomd := func(md string) fstest.MapFS {
		return fstest.MapFS{"repodata/repomd.xml": {Data: []byte(md)}, href: {Data: gz}}
	}
	bad := sha256Hex([]byte("other"))
	count := fmt.Sprintf("packages=\"%d\"", len(fixtureSpecs()))
	n, on := fmt.Sprint(len(gz)), fmt.Sprint(len(prim))
	small := ReadOptions{MaxPrimaryOpenSize: 1 << 20}
	cases := []struct {
		name    string
		fsys    fs.FS
		limits  ReadOptions
		wantErr string
		tooBig  bool
	}{
		{"no repomd.xml", fstest.MapFS{}, ReadOptions{}, "repomd.xml", false},
		{"missing primary file", withRepomd(repomdFor("repodata/gone.xml.gz", sha256Hex(gz), "", "", "")), ReadOptions{}, "gone.xml.gz", false},
		{"bad checksum", withRepomd(repomdFor(href, bad, sha256Hex(prim), n, on)), ReadOptions{}, "checksum mismatch", false},
		{"bad open-checksum", withRepomd(repomdFor(href, sha256Hex(gz), bad, n, on)), ReadOptions{}, "open-checksum mismatch", false},
		{"wrong size", withRepomd(repomdFor(href, sha256Hex(gz), sha256Hex(prim), fmt.Sprint(len(gz)+1), on)), ReadOptions{}, "size is", false},
		{"wrong open-size", withRepomd(repomdFor(href, sha256Hex(gz), sha256Hex(prim), n, fmt.Sprint(len(prim)+1))), ReadOptions{}, "open-size is", false},
		{"smaller declared size", withRepomd(repomdFor(href, sha256Hex(gz), "", fmt.Sprint(len(gz)-1), "")), ReadOptions{}, "", true},
		{"smaller declared open-size", withRepomd(repomdFor(href, sha256Hex(gz), "", "", fmt.Sprint(len(prim)/2))), ReadOptions{}, "", true},
		{"huge declared size", withRepomd(repomdFor(href, sha256Hex(gz), "", "4611686018427387904", "")), ReadOptions{}, "", true},
		{"huge declared open-size", withRepomd(repomdFor(href, sha256Hex(gz), "", "", "4611686018427387904")), ReadOptions{}, "", true},
		{"negative size", withRepomd(repomdFor(href, sha256Hex(gz), "", "-1", "")), ReadOptions{}, "bad size", false},
		{"no checksum", withRepomd(repomdFor(href, "", "", "", "")), ReadOptions{}, "no checksum", false},
		{"sha1 checksum", withRepomd(strings.Replace(repomdFor(href, sha256Hex(gz), "", "", ""), `"sha256"`, `"sha1"`, 1)), ReadOptions{}, "only sha256", false},
		{"no primary entry", withRepomd(strings.Replace(repomdFor(href, sha256Hex(gz), "", "", ""), `"primary"`, `"other"`, 1)), ReadOptions{}, "no primary", false},
		{"two primary entries", withRepomd(strings.Replace(repomdFor(href, sha256Hex(gz), "", "", ""), "</data>", `</data><data type="primary"><location href="a"/></data>`, 1)), ReadOptions{}, "more than one", false},
		{"href with ..", withRepomd(repomdFor("../../etc/passwd", sha256Hex(gz), "", "", "")), ReadOptions{}, "not a relative path", false},
		{"absolute href", withRepomd(repomdFor("/etc/passwd", sha256Hex(gz), "", "", "")), ReadOptions{}, "not a relative path", false},
		{"repomd too large", withRepomd(repomdFor(href, sha256Hex(gz), "", "", "") + strings.Repeat(" ", 2000)), ReadOptions{MaxRepomdSize: 1000}, "", true},
		{"repomd not xml", withRepomd("{}"), ReadOptions{}, "parsing", false},
		{"truncated gzip, matching checksum", repoFS(href, gz[:len(gz)-12], prim), ReadOptions{}, "unexpected EOF", false},
		{"truncated gzip, original checksum", fstest.MapFS{"repodata/repomd.xml": {Data: []byte(repomdFor(href, sha256Hex(gz), "", "", ""))}, href: {Data: gz[:len(gz)/2]}}, ReadOptions{}, "", false},
		{"garbage after gzip", repoFS(href, append(append([]byte{}, gz...), "garbage"...), prim), ReadOptions{}, "", false},
		{"not compressed", repoFS("repodata/p.xml.xz", []byte("\xfd7zXZ\x00...."), prim), ReadOptions{}, "unsupported compression", false},
		{"decompression bomb", fstest.MapFS{"repodata/repomd.xml": {Data: []byte(repomdFor(href, sha256Hex(bomb), "", fmt.Sprint(len(bomb)), ""))}, href: {Data: bomb}}, small, "more than 1048576 bytes", true},
		{"decompression bomb, small open-size", repoFS(href, bomb, []byte("<metadata/>")), ReadOptions{}, "more than 11 bytes", true},
		{"too many packages", ok, ReadOptions{MaxPackages: 2}, "", true},
		{"not xml", withPrimary([]byte("hello")), ReadOptions{}, "", false},
		{"wrong root", withPrimary([]byte("<repomd/>")), ReadOptions{}, "not <metadata>", false},
		{"packages count", replaced(count, `packages="99"`), ReadOptions{}, "packages attribute says 99", false},
		{"bad count", replaced(count, `packages="-6"`), ReadOptions{}, "bad packages count", false},
		{"unclosed", withPrimary(prim[:len(prim)-20]), ReadOptions{}, "", false},
		{"second root", withPrimary(append(append([]byte{}, prim...), "<metadata/>"...)), ReadOptions{}, "after the root", false},
		{"entity expansion", withPrimary([]byte(`<?xml version="1.0"?><!DOCTYPE m [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]><metadata><package><name>&b;</name></package></metadata>`)), ReadOptions{}, "", false},
		{"bad epoch", replaced(`epoch="2"`, `epoch="two"`), ReadOptions{}, "not an integer", false},
		{"negative epoch", replaced(`epoch="2"`, `epoch="-2"`), ReadOptions{}, "out of range", false},
		{"huge size", replaced(`<size package="`, `<size package="99999999999999999999`), ReadOptions{}, "not an integer", false},
		{"bad package checksum", replaced(`pkgid="YES">`, `pkgid="YES">zz`), ReadOptions{}, "bad sha256", false},
		{"location with ..", replaced(`href="`, `href="../../`), ReadOptions{}, "not a relative path", false},
		{"xml:base", replaced(`<location href=`, `<location xml:base="http://evil.invalid/" href=`), ReadOptions{}, "xml:base", false},
		{"no location", replaced(`<location href=`, `<nolocation href=`), ReadOptions{}, "not a relative path", false},
		{"nameless dependency", replaced(`<rpm:entry name="alpha-cap"`, `<rpm:entry name=""`), ReadOptions{}, "without a name", false},
		{"unknown flags", replaced(`flags="EQ"`, `flags="XX"`), ReadOptions{}, "unknown flags", false},
		{"unknown file type", replaced(`<file>/etc/alpha.conf`, `<file type="socket">/etc/alpha.conf`), ReadOptions{}, "unknown file type", false},
		{"element in text", replaced(`<name>alpha</name>`, `<name>al<b/>pha</name>`), ReadOptions{}, "unexpected <b>", false},
		{"no name", replaced(`<name>alpha</name>`, `<name></name>`), ReadOptions{}, "no name", false},
		{"not rpm", replaced(`type="rpm"`, `type="deb"`), ReadOptions{}, "not rpm", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			pkgs, err := ReadRepodataFSWithOptions(c.fsys, ".", c.limits)
			if err == nil {
				t.Fatalf("no error, %d packages", len(pkgs))
			}
			t.Log(err)
			if c.tooBig != errors.Is(err, ErrTooLarge) {
				t.Errorf("errors.Is(err, ErrTooLarge) = %v: %v", !c.tooBig, err)
			}
			if !strings.Contains(err.Error(), c.wantErr) {
				t.Errorf("error %q does not mention %q", err, c.wantErr)
			}
			if pkgs != nil {
				t.Errorf("packages returned with an error")
			}
		})
	}
}

func TestHostileRPM(t *testing.T) {
	key := newGPGKey(t, "Ferry Test <test@ferry.invalid>")
	dir := t.TempDir()
	spec := fixtureSpecs()[0]
	data, err := rpmtest.Bytes(spec, key.sign)
	if err != nil {
		t.Fatal(err)
	}
	good, err := ReadPackageFrom(bytes.NewReader(data), int64(len(data)), "x.rpm")
	if err != nil {
		t.Fatal(err)
	}
	read := func(b []byte) (*Package, error) {
		return ReadPackageFrom(bytes.NewReader(b), int64(len(b)), "x.rpm")
	}
	// Every truncation is an error (past the header, the signature
	// header's size tag catches it).
	for n := 0; n < len(data); n++ {
		if _, err := read(data[:n]); err == nil {
			t.Fatalf("truncated to %d of %d bytes: no error", n, len(data))
		}
	}
	// Extra bytes too.
	if _, err := read(append(append([]byte{}, data...), 0)); err == nil || !strings.Contains(err.Error(), "signature header says") {
		t.Errorf("padded file: %v", err)
	}
	// Every single-byte change in the headers gives an error or a
	// package, never a panic; in the main header the sha256 digest the
	// signature header holds catches all of them.
	for i := 0; i < int(good.HeaderEnd); i++ {
		for _, x := range []byte{0x01, 0x80, 0xff} {
			b := append([]byte{}, data...)
			b[i] ^= x
			p, err := read(b)
			if i >= int(good.HeaderStart) && err == nil {
				t.Fatalf("byte %d ^ %#x in the main header: accepted", i, x)
			}
			if err == nil && (p.HeaderEnd != good.HeaderEnd || p.Checksum != sha256Hex(b)) {
				t.Fatalf("byte %d ^ %#x: inconsistent package %+v", i, x, p)
			}
		}
	}
	// Not an rpm, empty, a directory.
	if _, err := read([]byte("#!/bin/sh\necho not an rpm, but long enough to hold a lead .............................................................")); err == nil || !strings.Contains(err.Error(), "not an rpm") {
		t.Errorf("text file: %v", err)
	}
	if _, err := ReadPackage(dir, ""); err == nil || !strings.Contains(err.Error(), dir) {
		t.Errorf("directory: %v", err)
	}
	if _, err := ReadPackage(filepath.Join(dir, "missing.rpm"), ""); err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
	// A header declaring the most rpm allows in a small file fails before
	// allocating anything of that size.
	b := append([]byte{}, data[:leadSize+headerIntroSize]...)
	binary.BigEndian.PutUint32(b[leadSize+8:], maxHeaderTags)
	binary.BigEndian.PutUint32(b[leadSize+12:], maxHeaderData)
	b = append(b, make([]byte, 1000)...)
	allocs := testing.AllocsPerRun(5, func() { _, _ = read(b) })
	if _, err := read(b); err == nil || !strings.Contains(err.Error(), "past the end") {
		t.Errorf("huge declared header: %v", err)
	}
	if allocs > 50 {
		t.Errorf("huge declared header: %v allocations", allocs)
	}
	// Larger than rpm allows.
	binary.BigEndian.PutUint32(b[leadSize+8:], maxHeaderTags+1)
	if _, err := read(b); err == nil || !strings.Contains(err.Error(), "more than rpm allows") {
		t.Errorf("too many tags: %v", err)
	}
}

// entryBlob builds an index (one entry per row: tag, type, offset, count)
// followed by data, as checkEntries takes it.
func entryBlob(rows [][4]int32, data []byte) ([]byte, int64, int64) {
	var b bytes.Buffer
	for _, r := range rows {
		for _, v := range r {
			_ = binary.Write(&b, binary.BigEndian, v)
		}
	}
	b.Write(data)
	return b.Bytes(), int64(len(rows)), int64(len(data))
}

func TestCheckEntries(t *testing.T) {
	data := []byte("abc\x00de\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01") // 16 bytes
	cases := []struct {
		name string
		rows [][4]int32
		ok   bool
	}{
		{"valid", [][4]int32{{1000, typeString, 0, 1}, {1001, typeStringArray, 4, 1}, {1002, typeInt32, 8, 2}}, true},
		{"region entry first", [][4]int32{{63, typeBin, 0, 16}, {1000, typeString, 0, 1}}, true},
		{"bad type", [][4]int32{{1000, 42, 0, 1}}, false},
		{"null type", [][4]int32{{1000, typeNull, 0, 1}}, false},
		{"negative offset", [][4]int32{{1000, typeBin, -4, 1}}, false},
		{"offset past data", [][4]int32{{1000, typeBin, 16, 1}}, false},
		{"zero count", [][4]int32{{1000, typeBin, 0, 0}}, false},
		{"negative count", [][4]int32{{1000, typeInt32, 0, -1}}, false},
		{"huge count", [][4]int32{{1000, typeInt64, 8, 1 << 30}}, false},
		{"int past data", [][4]int32{{1000, typeInt32, 12, 2}}, false},
		{"misaligned", [][4]int32{{1000, typeInt32, 2, 1}}, false},
		{"string count 2", [][4]int32{{1000, typeString, 0, 2}}, false},
		{"unterminated strings", [][4]int32{{1000, typeStringArray, 4, 12}}, false},
		{"unterminated string", [][4]int32{{1000, typeString, 15, 1}}, false},
		{"overlap", [][4]int32{{1000, typeStringArray, 0, 2}, {1001, typeString, 4, 1}}, false},
		{"out of order", [][4]int32{{1000, typeString, 4, 1}, {1001, typeString, 0, 1}}, false},
		{"region not first", [][4]int32{{1000, typeString, 4, 1}, {63, typeBin, 0, 16}}, false},
	}
	for _, c := range cases {
		blob, n, dl := entryBlob(c.rows, data)
		err := checkEntries(blob, n, dl)
		if (err == nil) != c.ok {
			t.Errorf("%s: err = %v, want ok=%v", c.name, err, c.ok)
		}
	}
}
